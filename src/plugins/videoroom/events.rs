//! The room-level events and answers the proxy makes itself, in Janus 1.1.2's shapes
//! (`janus_videoroom.c`: `joined` l.9485, publisher announcements l.4112, `joining`
//! l.4229, leave/unpublish l.4249). Pure functions.

use serde_json::{json, Map, Value};

/// A publisher in `publishers` lists: `id`, `display`, the codecs of its first audio and
/// video streams (Janus keeps them for old clients), its `streams`, and `talking` when its
/// room tracks audio levels.
pub fn publisher_entry(
    id: u64,
    display: Option<&str>,
    streams: &[Value],
    talking: Option<bool>,
) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    if let Some(d) = display {
        m.insert("display".into(), json!(d));
    }
    let first_codec = |ty: &str| {
        streams
            .iter()
            .find(|s| s["type"] == ty && s.get("disabled").is_none())
            .and_then(|s| s.get("codec").cloned())
    };
    if let Some(c) = first_codec("audio") {
        m.insert("audio_codec".into(), c);
    }
    if let Some(c) = first_codec("video") {
        m.insert("video_codec".into(), c);
    }
    let has_audio = streams.iter().any(|s| s["type"] == "audio");
    m.insert("streams".into(), json!(streams));
    if let (Some(t), true) = (talking, has_audio) {
        m.insert("talking".into(), json!(t));
    }
    Value::Object(m)
}

/// An `attendees` entry: a participant not publishing.
pub fn attendee(id: u64, display: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    if let Some(d) = display {
        m.insert("display".into(), json!(d));
    }
    Value::Object(m)
}

/// The `joined` event of a publisher. `extra`: keys Janus adds when the request had them
/// (`audio_active_packets`, `audio_level_average`).
pub fn joined(
    room: u64,
    description: &str,
    id: u64,
    private_id: u32,
    publishers: Vec<Value>,
    attendees: Option<Vec<Value>>,
    extra: Map<String, Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("videoroom".into(), json!("joined"));
    m.insert("room".into(), json!(room));
    m.insert("description".into(), json!(description));
    m.insert("id".into(), json!(id));
    m.insert("private_id".into(), json!(private_id));
    m.insert("publishers".into(), Value::Array(publishers));
    m.extend(extra);
    if let Some(a) = attendees {
        m.insert("attendees".into(), Value::Array(a));
    }
    Value::Object(m)
}

/// `joining`: somebody joined a room that announces joins.
pub fn joining(room: u64, id: u64, display: Option<&str>) -> Value {
    json!({"videoroom": "event", "room": room, "joining": attendee(id, display)})
}

/// `publishers`: new or renegotiated publishers.
pub fn publishers(room: u64, list: Vec<Value>) -> Value {
    json!({"videoroom": "event", "room": room, "publishers": list})
}

/// Replaces the top-level `room` of a backend event (its backend room id) with the proxy
/// room id.
pub fn with_room(mut data: Value, room: u64) -> Value {
    if let Some(m) = data.as_object_mut() {
        if m.contains_key("room") {
            m.insert("room".into(), json!(room));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_shape() {
        let streams = vec![
            json!({"type": "audio", "mindex": 0, "mid": "0", "codec": "opus", "fec": true}),
            json!({"type": "video", "mindex": 1, "mid": "1", "codec": "vp8"}),
        ];
        let e = publisher_entry(5, Some("bob"), &streams, Some(false));
        let keys: Vec<_> = e.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "display",
                "audio_codec",
                "video_codec",
                "streams",
                "talking"
            ]
        );
        assert_eq!(e["audio_codec"], "opus");
        let e = publisher_entry(5, None, &streams[1..], Some(false));
        assert!(e.get("talking").is_none() && e.get("display").is_none());
    }

    #[test]
    fn joined_shape() {
        let mut extra = Map::new();
        extra.insert("audio_active_packets".into(), json!(50));
        let j = joined(1, "d", 2, 3, vec![], Some(vec![attendee(4, None)]), extra);
        let keys: Vec<_> = j.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "videoroom",
                "room",
                "description",
                "id",
                "private_id",
                "publishers",
                "audio_active_packets",
                "attendees"
            ]
        );
        assert_eq!(
            with_room(json!({"room": 99, "x": 1}), 1),
            json!({"room": 1, "x": 1})
        );
        assert_eq!(with_room(json!({"x": 1}), 1), json!({"x": 1}));
    }
}
