//! A proxy room's configuration, as Janus 1.1.2's VideoRoom computes it from a `create`
//! request (defaults, normalisations such as the 64 kbit/s bitrate floor, codec lists), and
//! what is derived from it: the `list` entry, `edit`, and the `create` body for the backend
//! rooms that carry the room's media. Pure: no I/O.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{VrError, VrResult, INVALID_ELEMENT};
use super::validate::{check, opt, pos, Ty};

/// Parameters of `create` (Janus's `create_parameters`), in Janus's order.
pub const CREATE_PARAMS: &[super::validate::Param] = &[
    opt("description", Ty::Str),
    opt("is_private", Ty::Bool),
    opt("allowed", Ty::Array),
    opt("secret", Ty::Str),
    opt("pin", Ty::Str),
    opt("require_pvtid", Ty::Bool),
    opt("signed_tokens", Ty::Bool),
    pos("bitrate"),
    opt("bitrate_cap", Ty::Bool),
    pos("fir_freq"),
    pos("publishers"),
    opt("audiocodec", Ty::Str),
    opt("videocodec", Ty::Str),
    opt("vp9_profile", Ty::Str),
    opt("h264_profile", Ty::Str),
    opt("opus_fec", Ty::Bool),
    opt("opus_dtx", Ty::Bool),
    opt("video_svc", Ty::Bool),
    opt("audiolevel_ext", Ty::Bool),
    opt("audiolevel_event", Ty::Bool),
    pos("audio_active_packets"),
    pos("audio_level_average"),
    opt("videoorient_ext", Ty::Bool),
    opt("playoutdelay_ext", Ty::Bool),
    opt("transport_wide_cc_ext", Ty::Bool),
    opt("record", Ty::Bool),
    opt("rec_dir", Ty::Str),
    opt("lock_record", Ty::Bool),
    opt("permanent", Ty::Bool),
    opt("notify_joining", Ty::Bool),
    opt("require_e2ee", Ty::Bool),
    opt("dummy_publisher", Ty::Bool),
    opt("dummy_streams", Ty::Array),
    // The proxy's own: at most this many publishers per backend before the next one is
    // used (0 = every publisher placed by `server_select`).
    pos("pack_publishers"),
];

/// Parameters of `edit` (Janus's `edit_parameters`).
pub const EDIT_PARAMS: &[super::validate::Param] = &[
    opt("secret", Ty::Str),
    opt("new_description", Ty::Str),
    opt("new_is_private", Ty::Bool),
    opt("new_secret", Ty::Str),
    opt("new_pin", Ty::Str),
    opt("new_require_pvtid", Ty::Bool),
    pos("new_bitrate"),
    pos("new_fir_freq"),
    pos("new_publishers"),
    opt("new_lock_record", Ty::Bool),
    opt("new_rec_dir", Ty::Str),
    opt("permanent", Ty::Bool),
];

const AUDIO_CODECS: &[&str] = &[
    "opus",
    "multiopus",
    "pcmu",
    "pcma",
    "g722",
    "isac32",
    "isac16",
    "l16-48",
    "l16",
];
const VIDEO_CODECS: &[&str] = &["vp8", "vp9", "h264", "av1", "h265"];

/// Everything a room is configured with (what Janus keeps in `janus_videoroom`), plus the
/// proxy's own placement option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomConfig {
    pub description: String,
    pub is_private: bool,
    pub secret: String,
    pub pin: String,
    pub require_pvtid: bool,
    pub require_e2ee: bool,
    pub max_publishers: i64,
    pub bitrate: u64,
    pub bitrate_cap: bool,
    pub fir_freq: u64,
    pub audiocodec: Vec<String>,
    pub videocodec: Vec<String>,
    pub vp9_profile: Option<String>,
    pub h264_profile: Option<String>,
    pub opus_fec: bool,
    pub opus_dtx: bool,
    pub video_svc: bool,
    pub audiolevel_ext: bool,
    pub audiolevel_event: bool,
    pub audio_active_packets: u64,
    pub audio_level_average: u64,
    pub videoorient_ext: bool,
    pub playoutdelay_ext: bool,
    pub transport_wide_cc_ext: bool,
    pub notify_joining: bool,
    pub record: bool,
    pub rec_dir: Option<String>,
    pub lock_record: bool,
    pub dummy_publisher: bool,
    /// Join tokens, when the room checks them (`allowed` given at creation).
    pub allowed: Option<BTreeSet<String>>,
    /// Publishers per backend before the next backend is used (0 = `server_select`).
    pub pack_publishers: u64,
}

fn codec_list(
    value: Option<&str>,
    known: &[&str],
    default: &str,
    what: &str,
) -> VrResult<Vec<String>> {
    let Some(v) = value else {
        return Ok(vec![default.to_string()]);
    };
    let mut out = Vec::new();
    for (i, c) in v.split(',').enumerate() {
        if i == 5 {
            break;
        }
        if c.is_empty() || !known.contains(&c) {
            let list = if what == "audiocodec" {
                "opus, isac32, isac16, pcmu, pcma or g722"
            } else {
                "vp8, vp9, av1, h264 or h265"
            };
            return Err(VrError::new(
                INVALID_ELEMENT,
                format!("Invalid element ({what} can only be or contain {list})"),
            ));
        }
        out.push(c.to_string());
    }
    Ok(out)
}

impl RoomConfig {
    /// The configuration `create` makes of `body`, with Janus's defaults and rules, for
    /// room `id`.
    ///
    /// # Errors
    /// Janus's validation errors (429/430).
    pub fn from_create(id: u64, body: &Map<String, Value>) -> VrResult<RoomConfig> {
        check(body, CREATE_PARAMS)?;
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let b = |k: &str| body.get(k).and_then(Value::as_bool);
        let n = |k: &str| body.get(k).and_then(Value::as_u64);
        let allowed = match body.get("allowed").and_then(Value::as_array) {
            None => None,
            Some(list) => {
                let mut set = BTreeSet::new();
                for a in list {
                    let Some(t) = a.as_str() else {
                        return Err(VrError::new(
                            INVALID_ELEMENT,
                            "Invalid element in the allowed array (not a string)",
                        ));
                    };
                    set.insert(t.to_string());
                }
                Some(set)
            }
        };
        let audiocodec = codec_list(s("audiocodec"), AUDIO_CODECS, "opus", "audiocodec")?;
        let videocodec = codec_list(s("videocodec"), VIDEO_CODECS, "vp8", "videocodec")?;
        let has = |list: &[String], c: &str| list.iter().any(|x| x == c);
        let description = match s("description").filter(|d| !d.is_empty()) {
            Some(d) => d.to_string(),
            None => format!("Room {id}"),
        };
        let bitrate = match n("bitrate").unwrap_or(0) {
            b @ 1..=63_999 => b.max(64_000),
            b => b,
        };
        let opus = has(&audiocodec, "opus");
        let audiolevel_event = b("audiolevel_event").unwrap_or(false);
        Ok(RoomConfig {
            description,
            is_private: b("is_private").unwrap_or(false),
            secret: s("secret").unwrap_or_default().to_string(),
            pin: s("pin").unwrap_or_default().to_string(),
            require_pvtid: b("require_pvtid").unwrap_or(false),
            require_e2ee: b("require_e2ee").unwrap_or(false),
            max_publishers: n("publishers").map_or(3, |p| p as i64),
            bitrate,
            bitrate_cap: b("bitrate_cap").unwrap_or(false),
            fir_freq: n("fir_freq").unwrap_or(0),
            vp9_profile: s("vp9_profile")
                .filter(|_| has(&videocodec, "vp9"))
                .map(str::to_string),
            h264_profile: s("h264_profile")
                .filter(|_| has(&videocodec, "h264"))
                .map(str::to_string),
            opus_fec: b("opus_fec").is_none_or(|f| f && opus),
            opus_dtx: b("opus_dtx").is_some_and(|d| d && opus),
            video_svc: b("video_svc").unwrap_or(false) && videocodec == ["vp9"],
            audiolevel_ext: b("audiolevel_ext").unwrap_or(true),
            audiolevel_event,
            audio_active_packets: n("audio_active_packets").filter(|v| *v > 0).unwrap_or(100),
            audio_level_average: n("audio_level_average").filter(|v| *v > 0).unwrap_or(25),
            videoorient_ext: b("videoorient_ext").unwrap_or(true),
            playoutdelay_ext: b("playoutdelay_ext").unwrap_or(true),
            transport_wide_cc_ext: b("transport_wide_cc_ext").unwrap_or(true),
            notify_joining: b("notify_joining").unwrap_or(false),
            record: b("record").unwrap_or(false),
            rec_dir: s("rec_dir").map(str::to_string),
            lock_record: b("lock_record").unwrap_or(false),
            dummy_publisher: b("dummy_publisher").unwrap_or(false),
            allowed,
            pack_publishers: n("pack_publishers").unwrap_or(0),
            audiocodec,
            videocodec,
        })
    }

    /// Applies an `edit` (already authorised).
    ///
    /// # Errors
    /// Janus's validation errors.
    pub fn edit(&mut self, body: &Map<String, Value>) -> VrResult<()> {
        check(body, EDIT_PARAMS)?;
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let b = |k: &str| body.get(k).and_then(Value::as_bool);
        let n = |k: &str| body.get(k).and_then(Value::as_u64);
        if let Some(d) = s("new_description").filter(|d| !d.is_empty()) {
            self.description = d.to_string();
        }
        if let Some(v) = b("new_is_private") {
            self.is_private = v;
        }
        if let Some(v) = b("new_require_pvtid") {
            self.require_pvtid = v;
        }
        if let Some(v) = s("new_secret") {
            self.secret = v.to_string();
        }
        if let Some(v) = s("new_pin") {
            self.pin = v.to_string();
        }
        if let Some(v) = n("new_bitrate") {
            self.bitrate = if (1..64_000).contains(&v) { 64_000 } else { v };
        }
        if let Some(v) = n("new_fir_freq") {
            self.fir_freq = v;
        }
        if let Some(v) = n("new_publishers") {
            self.max_publishers = v as i64;
        }
        if let Some(v) = b("new_lock_record") {
            self.lock_record = v;
        }
        if let Some(v) = s("new_rec_dir") {
            self.rec_dir = Some(v.to_string());
        }
        Ok(())
    }

    /// The room's entry in `list` (Janus's keys and order).
    pub fn list_entry(&self, id: u64, participants: usize) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("room", json!(id));
        put("description", json!(self.description));
        put("pin_required", json!(!self.pin.is_empty()));
        put("is_private", json!(self.is_private));
        put("max_publishers", json!(self.max_publishers));
        put("bitrate", json!(self.bitrate));
        if self.bitrate_cap {
            put("bitrate_cap", json!(true));
        }
        put("fir_freq", json!(self.fir_freq));
        put("require_pvtid", json!(self.require_pvtid));
        put("require_e2ee", json!(self.require_e2ee));
        put("dummy_publisher", json!(self.dummy_publisher));
        put("notify_joining", json!(self.notify_joining));
        put("audiocodec", json!(self.audiocodec.join(",")));
        put("videocodec", json!(self.videocodec.join(",")));
        if self.opus_fec {
            put("opus_fec", json!(true));
        }
        if self.opus_dtx {
            put("opus_dtx", json!(true));
        }
        if self.video_svc {
            put("video_svc", json!(true));
        }
        put("record", json!(self.record));
        if let Some(d) = &self.rec_dir {
            put("rec_dir", json!(d));
        }
        put("lock_record", json!(self.lock_record));
        put("num_participants", json!(participants));
        put("audiolevel_ext", json!(self.audiolevel_ext));
        put("audiolevel_event", json!(self.audiolevel_event));
        if self.audiolevel_event {
            put("audio_active_packets", json!(self.audio_active_packets));
            put("audio_level_average", json!(self.audio_level_average));
        }
        put("videoorient_ext", json!(self.videoorient_ext));
        put("playoutdelay_ext", json!(self.playoutdelay_ext));
        put("transport_wide_cc_ext", json!(self.transport_wide_cc_ext));
        Value::Object(m)
    }

    /// The `create` body for a backend room carrying this room's media. Access rules
    /// (pin, tokens, private ids) are the proxy's, so the backend room has none but a
    /// secret only the proxy knows; it is private (not listed) and does not announce
    /// joins; it admits as many publishers as the proxy sends it (local and mirrored:
    /// the room's own limit is the proxy's to enforce).
    pub fn backend_create(&self, backend_id: u64, backend_secret: &str) -> Value {
        let mut body = json!({
            "request": "create",
            "room": backend_id,
            "description": format!("janus-cloud {}", self.description),
            "is_private": true,
            "secret": backend_secret,
            "publishers": 4096,
            "bitrate": self.bitrate,
            "bitrate_cap": self.bitrate_cap,
            "fir_freq": self.fir_freq,
            "audiocodec": self.audiocodec.join(","),
            "videocodec": self.videocodec.join(","),
            "opus_fec": self.opus_fec,
            "opus_dtx": self.opus_dtx,
            "video_svc": self.video_svc,
            "audiolevel_ext": self.audiolevel_ext,
            "audiolevel_event": self.audiolevel_event,
            "audio_active_packets": self.audio_active_packets,
            "audio_level_average": self.audio_level_average,
            "videoorient_ext": self.videoorient_ext,
            "playoutdelay_ext": self.playoutdelay_ext,
            "transport_wide_cc_ext": self.transport_wide_cc_ext,
            "record": self.record,
            "lock_record": self.lock_record,
            "notify_joining": false,
            "require_e2ee": self.require_e2ee,
            "permanent": false,
        });
        if let (Some(d), Some(m)) = (&self.rec_dir, body.as_object_mut()) {
            m.insert("rec_dir".into(), json!(d));
        }
        if let (Some(p), Some(m)) = (&self.vp9_profile, body.as_object_mut()) {
            m.insert("vp9_profile".into(), json!(p));
        }
        if let (Some(p), Some(m)) = (&self.h264_profile, body.as_object_mut()) {
            m.insert("h264_profile".into(), json!(p));
        }
        body
    }

    /// Whether `token` may join (no token list: anyone).
    pub fn token_allowed(&self, token: Option<&str>) -> bool {
        match &self.allowed {
            None => true,
            Some(set) => token.is_some_and(|t| set.contains(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_match_janus_list_entries() {
        // The transcript's room created with only a description and publishers = 4.
        let c = RoomConfig::from_create(
            46808015,
            &obj(json!({"description": "janus_smoke room", "publishers": 4})),
        )
        .unwrap();
        let expected = json!({
            "room": 46808015, "description": "janus_smoke room", "pin_required": false,
            "is_private": false, "max_publishers": 4, "bitrate": 0, "fir_freq": 0,
            "require_pvtid": false, "require_e2ee": false, "dummy_publisher": false,
            "notify_joining": false, "audiocodec": "opus", "videocodec": "vp8",
            "opus_fec": true, "record": false, "lock_record": false, "num_participants": 0,
            "audiolevel_ext": true, "audiolevel_event": false, "videoorient_ext": true,
            "playoutdelay_ext": true, "transport_wide_cc_ext": true
        });
        assert_eq!(c.list_entry(46808015, 0), expected);
        let keys: Vec<_> = c
            .list_entry(1, 0)
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let want: Vec<_> = expected.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, want, "key order");
    }

    #[test]
    fn janus_rules() {
        let c = RoomConfig::from_create(
            7,
            &obj(
                json!({"bitrate": 1000, "audiocodec": "pcmu", "opus_fec": true,
                "videocodec": "vp9", "video_svc": true, "audiolevel_event": true}),
            ),
        )
        .unwrap();
        assert_eq!(c.description, "Room 7");
        assert_eq!(c.bitrate, 64_000);
        assert!(!c.opus_fec, "FEC needs opus");
        assert!(c.video_svc);
        assert_eq!((c.audio_active_packets, c.audio_level_average), (100, 25));
        let e = RoomConfig::from_create(7, &obj(json!({"videocodec": "vp8,nope"}))).unwrap_err();
        assert_eq!(e.code, 430);
        let e = RoomConfig::from_create(7, &obj(json!({"allowed": [1]}))).unwrap_err();
        assert_eq!(
            e.text,
            "Invalid element in the allowed array (not a string)"
        );
        let e = RoomConfig::from_create(7, &obj(json!({"publishers": "x"}))).unwrap_err();
        assert_eq!(
            e.text,
            "Invalid element type (publishers should be a positive integer)"
        );
    }

    #[test]
    fn edit_and_tokens() {
        let mut c =
            RoomConfig::from_create(1, &obj(json!({"allowed": ["a"], "secret": "s"}))).unwrap();
        assert!(
            c.token_allowed(Some("a")) && !c.token_allowed(Some("b")) && !c.token_allowed(None)
        );
        c.edit(&obj(
            json!({"new_description": "d", "new_bitrate": 10, "new_publishers": 9}),
        ))
        .unwrap();
        assert_eq!(
            (c.description.as_str(), c.bitrate, c.max_publishers),
            ("d", 64_000, 9)
        );
        assert_eq!(
            c.edit(&obj(json!({"new_publishers": -1})))
                .unwrap_err()
                .code,
            430
        );
    }
}
