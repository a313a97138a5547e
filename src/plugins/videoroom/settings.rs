//! `[videoroom]`: where rooms are kept, static rooms, who may create rooms, and how long
//! an unused mirror stays. Every key is documented in `conf/janus-proxy.toml`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::room::RoomConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Raw {
    room_db: String,
    admin_key: String,
    max_rooms: usize,
    max_participants_per_room: usize,
    max_streams_per_request: usize,
    mirror_idle_timeout: u64,
    peer_url: String,
    owner_ttl: u64,
    rooms: Vec<toml::Table>,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            room_db: "memory".into(),
            admin_key: String::new(),
            max_rooms: 10_000,
            max_participants_per_room: 1_000,
            max_streams_per_request: 256,
            mirror_idle_timeout: 60,
            peer_url: String::new(),
            owner_ttl: 10,
            rooms: Vec::new(),
        }
    }
}

/// The checked `[videoroom]` section (a process-wide service).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `memory` (rooms made through the API last as long as the process) or `redis://…`.
    pub room_db: String,
    /// When set, `create` must carry it (`admin_key`), as in Janus.
    pub admin_key: String,
    /// Most rooms this proxy holds (static ones included).
    pub max_rooms: usize,
    /// Most publisher-type participants (publishing or not) in one room: every join and
    /// announcement costs in proportion.
    pub max_participants_per_room: usize,
    /// Most streams one subscription request may list.
    pub max_streams_per_request: usize,
    /// Seconds an unused mirror is kept for the next subscriber before it is removed.
    pub mirror_idle_timeout: u64,
    /// With a Redis `room_db`: the `ws://` URL other proxies reach this proxy's client API
    /// at, for the rooms it owns ("" = `ws://` + `ws_transport.ws_listen`, which must then
    /// not be a wildcard address).
    pub peer_url: String,
    /// Seconds a room's owner key lives in Redis (refreshed every third of it).
    pub owner_ttl: u64,
    /// `[[videoroom.rooms]]`, as `create` bodies make them.
    pub static_rooms: Vec<(u64, RoomConfig)>,
}

impl Settings {
    /// Reads and checks the section (defaults when absent).
    ///
    /// # Errors
    /// Unknown keys, wrong types, values out of range, or a static room `create` refuses,
    /// naming the key.
    pub fn from_section(section: Option<&toml::Value>) -> Result<Settings, String> {
        let raw: Raw = match section {
            None => Raw::default(),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e| format!("[videoroom]: {e}"))?,
        };
        if raw.room_db != "memory" && !raw.room_db.starts_with("redis://") {
            return Err(format!(
                "invalid value for `videoroom.room_db`: {:?} (must be \"memory\" or redis://host:port/db)",
                raw.room_db
            ));
        }
        if !(1..=86_400).contains(&raw.mirror_idle_timeout) {
            return Err(format!(
                "invalid value for `videoroom.mirror_idle_timeout`: {} (must be 1..86400)",
                raw.mirror_idle_timeout
            ));
        }
        if !raw.peer_url.is_empty() && crate::config::WsUrl::parse(&raw.peer_url).is_none() {
            return Err(format!(
                "invalid value for `videoroom.peer_url`: {:?} (must be \"\" or ws://host:port[/path])",
                raw.peer_url
            ));
        }
        if !(2..=3600).contains(&raw.owner_ttl) {
            return Err(format!(
                "invalid value for `videoroom.owner_ttl`: {} (must be 2..3600)",
                raw.owner_ttl
            ));
        }
        for (key, v) in [
            ("max_rooms", raw.max_rooms),
            ("max_participants_per_room", raw.max_participants_per_room),
            ("max_streams_per_request", raw.max_streams_per_request),
        ] {
            if v == 0 {
                return Err(format!(
                    "invalid value for `videoroom.{key}`: 0 (must be at least 1)"
                ));
            }
        }
        let mut static_rooms = Vec::new();
        for (i, table) in raw.rooms.iter().enumerate() {
            let body: Map<String, Value> = serde_json::to_value(table)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            let id = body
                .get("room")
                .and_then(Value::as_u64)
                .filter(|r| *r > 0 && *r <= super::rooms::MAX_ID)
                .ok_or_else(|| {
                    format!(
                        "invalid value for `videoroom.rooms[{i}].room`: must be an integer 1..2^53"
                    )
                })?;
            if static_rooms.iter().any(|(r, _)| *r == id) {
                return Err(format!("`videoroom.rooms[{i}]`: room {id} twice"));
            }
            let mut body = body;
            body.remove("room");
            let config = RoomConfig::from_create(id, &body)
                .map_err(|e| format!("`videoroom.rooms[{i}]` (room {id}): {}", e.text))?;
            static_rooms.push((id, config));
        }
        Ok(Settings {
            room_db: raw.room_db,
            admin_key: raw.admin_key,
            max_rooms: raw.max_rooms,
            max_participants_per_room: raw.max_participants_per_room,
            max_streams_per_request: raw.max_streams_per_request,
            mirror_idle_timeout: raw.mirror_idle_timeout,
            peer_url: raw.peer_url,
            owner_ttl: raw.owner_ttl,
            static_rooms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, String> {
        let v: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        Settings::from_section(v.get("videoroom"))
    }

    #[test]
    fn defaults_and_static_rooms() {
        let s = Settings::from_section(None).unwrap();
        assert_eq!((s.room_db.as_str(), s.mirror_idle_timeout), ("memory", 60));
        let s = parse(
            "[videoroom]\n[[videoroom.rooms]]\nroom = 1234\ndescription = \"Demo\"\npublishers = 6\nsecret = \"x\"\n",
        )
        .unwrap();
        assert_eq!(s.static_rooms.len(), 1);
        assert_eq!(s.static_rooms[0].0, 1234);
        assert_eq!(s.static_rooms[0].1.max_publishers, 6);
    }

    #[test]
    fn refuses_bad_values() {
        assert!(parse("[videoroom]\nroom_db = \"file\"\n")
            .unwrap_err()
            .contains("room_db"));
        assert!(parse("[videoroom]\npeer_url = \"http://x\"\n")
            .unwrap_err()
            .contains("peer_url"));
        assert!(parse("[videoroom]\nowner_ttl = 1\n")
            .unwrap_err()
            .contains("owner_ttl"));
        assert!(parse("[videoroom]\nnope = 1\n")
            .unwrap_err()
            .contains("nope"));
        assert!(
            parse("[videoroom]\n[[videoroom.rooms]]\ndescription = \"x\"\n")
                .unwrap_err()
                .contains("rooms[0].room")
        );
        assert!(
            parse("[videoroom]\n[[videoroom.rooms]]\nroom = 1\npublishers = \"x\"\n")
                .unwrap_err()
                .contains("publishers")
        );
        assert!(parse(
            "[videoroom]\n[[videoroom.rooms]]\nroom = 1\n[[videoroom.rooms]]\nroom = 1\n"
        )
        .unwrap_err()
        .contains("twice"));
    }
}
