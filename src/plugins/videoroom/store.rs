//! The room store (`room_db`): rooms created with `permanent: true` are kept in a Redis
//! hash (field = room id, value = the room's configuration as JSON), read back at start,
//! so a restarted proxy, or another proxy on the same Redis, still knows them. With
//! `memory`, such rooms last as long as the process and `permanent` answers false.
//! A request that changes a kept room is answered once Redis has the change (at most
//! [`crate::core::cluster::written`]'s wait), so a proxy killed right after its answer
//! cannot lose what its client was told is kept.

use super::room::RoomConfig;
use crate::plugins::Host;
use crate::store::redis_hash::RedisHash;
use crate::store::Written;

/// The Redis hash of the rooms.
const KEY: &str = "janus-cloud:videoroom:rooms";

/// The room store service (only present with a Redis `room_db`).
pub struct RoomDb(RedisHash);

/// The rooms read from the store at start.
pub type StoredRooms = Vec<(u64, RoomConfig)>;

/// Opens `room_db` and reads its rooms (start-up only: it blocks). `None` for `memory`.
///
/// # Errors
/// Redis unreachable.
pub fn open(room_db: &str) -> Result<Option<(RoomDb, StoredRooms)>, String> {
    if room_db == "memory" {
        return Ok(None);
    }
    let (hash, fields) =
        RedisHash::open(room_db, KEY).map_err(|e| format!("videoroom.room_db: {e}"))?;
    let mut rooms = Vec::new();
    for (field, value) in fields {
        match (
            field.parse::<u64>(),
            serde_json::from_str::<RoomConfig>(&value),
        ) {
            (Ok(id), Ok(config)) => rooms.push((id, config)),
            _ => tracing::warn!(field, "unreadable room in the room store skipped"),
        }
    }
    Ok(Some((RoomDb(hash), rooms)))
}

/// Keeps room `id`: the write to await before answering, `None` when there is no store
/// to keep it in.
pub fn save(host: &Host, id: u64, config: &RoomConfig) -> Option<Written> {
    let db = host.service::<RoomDb>()?;
    let text = serde_json::to_string(config).ok()?;
    Some(db.0.set(id.to_string(), text))
}

/// Forgets room `id`: the write to await before answering.
pub fn delete(host: &Host, id: u64) -> Option<Written> {
    host.service::<RoomDb>().map(|db| db.0.del(id.to_string()))
}
