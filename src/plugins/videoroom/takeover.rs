//! A room outliving its owner proxy (`[cluster] session_db` with a Redis `room_db`).
//!
//! - **Snapshot.** The owner keeps what it holds of each busy room it owns in Redis (hash
//!   [`LIVE_KEY`], field = room id): the configuration, the backend rooms and their
//!   secret, the participants with their client session and handle ids, the ready
//!   mirrors. Each owner shard writes the rooms touched since its last look, every
//!   [`FLUSH`], and only when the snapshot changed; a room destroyed or empty here is
//!   deleted (so is the snapshot a dead former owner left of a room taken anew). A
//!   participant's handle records its part ([`Kept`]) in the cluster's session directory,
//!   as any adoptable handle does.
//! - **Take-over.** When the owner dies its clients claim their sessions on another proxy,
//!   which adopts their handles (`VideoRoom::adopt`). The first adopted handle of a room
//!   takes the room from the dead owner and reads its snapshot in one Redis round trip
//!   ([`take_over`]), and restores it; every adopted handle then takes its place again: a
//!   publisher its participant ([`rebind`]), a subscriber the mirrors it held. The media
//!   never stopped: the backend handles are the dead owner's, claimed on the backends.
//! - Participants whose handles are not adopted within the cluster's `adopt_timeout` leave
//!   the room as if their backend had died; mirrors nobody holds again go after
//!   `mirror_idle_timeout`.
//!
//! Must never write the snapshot of a room this proxy does not own, nor restore over a
//! room that has participants here.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use futures_channel::oneshot;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::mirrors;
use super::room::RoomConfig;
use super::rooms::{self, counts, BackendRoom, Participant, Room};
use crate::plugins::directory::HandleLoc;
use crate::plugins::Host;
use crate::runtime::jump_hash::jump_hash;
use crate::store::redis_hash::RedisHash;

/// The Redis hash of the snapshots of live rooms.
pub const LIVE_KEY: &str = "janus-cloud:videoroom:live";

/// How often an owner shard writes the snapshots of the rooms touched since.
pub const FLUSH: Duration = Duration::from_millis(250);

/// The snapshot writer (a service, with `[cluster]` and a Redis `room_db` only).
pub struct Live(pub RedisHash);

/// What the owner keeps of a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The owner's `peer_url`.
    pub owner: String,
    pub config: RoomConfig,
    pub permanent: bool,
    pub backend_secret: String,
    /// (server URL, backend room id) of the ready backend rooms.
    pub backends: Vec<(String, u64)>,
    pub participants: Vec<KeptParticipant>,
    pub mirrors: Vec<mirrors::Kept>,
}

/// A participant in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptParticipant {
    pub id: u64,
    pub private_id: u32,
    pub display: Option<String>,
    pub session: u64,
    pub handle: u64,
    pub server: String,
    pub joined: bool,
    pub streams: Option<Vec<Value>>,
    pub started: bool,
}

/// What a participant handle records for its adoption: its room, the owner it was on,
/// and its part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub room: u64,
    pub owner: String,
    #[serde(flatten)]
    pub part: Part,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Participant `id`.
    Publisher(u64),
    /// Its backend server and the mirrors it held there (feed, mid map).
    Subscriber {
        server: String,
        held: Vec<(u64, mirrors::MidMap)>,
    },
}

/// The snapshot of `r`, owned by `owner`.
pub fn snapshot(r: &Room, owner: &str) -> Snapshot {
    let mut backends: Vec<(String, u64)> = r
        .backends
        .iter()
        .filter_map(|(url, b)| match b {
            BackendRoom::Ready(id) => Some((url.clone(), *id)),
            BackendRoom::Creating(_) => None,
        })
        .collect();
    backends.sort();
    Snapshot {
        owner: owner.to_string(),
        config: r.config.clone(),
        permanent: r.permanent,
        backend_secret: r.backend_secret.clone(),
        backends,
        participants: r
            .participants
            .values()
            .map(|p| KeptParticipant {
                id: p.id,
                private_id: p.private_id,
                display: p.display.clone(),
                session: p.loc.session_id,
                handle: p.loc.handle_id,
                server: p.server.clone(),
                joined: p.joined,
                streams: p.streams.clone(),
                started: p.started,
            })
            .collect(),
        mirrors: r.mirrors.snapshot(),
    }
}

/// Room `id` as its snapshot describes it, on a proxy with `shards` shards: every
/// participant waits for its handle's adoption.
pub fn restore(id: u64, snap: Snapshot, shards: usize) -> Room {
    let mut room = Room::new(id, snap.config);
    room.permanent = snap.permanent;
    room.backend_secret = snap.backend_secret;
    for (url, b) in snap.backends {
        room.backends.insert(url, BackendRoom::Ready(b));
    }
    for p in snap.participants {
        room.private_ids.insert(p.private_id, p.id);
        room.participants.insert(
            p.id,
            Participant {
                id: p.id,
                private_id: p.private_id,
                display: p.display,
                loc: HandleLoc {
                    shard: jump_hash(p.session, shards) as u16,
                    session_id: p.session,
                    handle_id: p.handle,
                },
                server: p.server,
                joined: p.joined,
                streams: p.streams,
                started: p.started,
                talking: false,
                kicked: false,
                adopting: true,
            },
        );
    }
    room.mirrors.restore(snap.mirrors);
    room
}

/// Whether a room is worth a snapshot: someone is in it, or it has backend rooms.
fn busy(r: &Room) -> bool {
    !r.participants.is_empty() || !r.backends.is_empty()
}

fn digest(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Writes the snapshots of this shard's rooms touched since the last call (the owner
/// shard's loop, every [`FLUSH`]).
pub fn flush(host: &Host) {
    let Some(live) = host.service::<Live>() else {
        return;
    };
    let Some(me) = super::relay::me(host) else {
        return;
    };
    let rooms = rooms::rooms(host);
    let touched: Vec<u64> = rooms.touched.borrow_mut().drain().collect();
    let map = rooms.map.borrow();
    let mut written = rooms.written.borrow_mut();
    for id in touched {
        match map.get(&id) {
            Some(r) if super::relay::owns(host, id) => {
                if !busy(r) {
                    // Empty here: no snapshot (not even one a dead former owner left).
                    written.remove(&id);
                    drop(live.0.del(id.to_string()));
                    continue;
                }
                let Ok(text) = serde_json::to_string(&snapshot(r, &me)) else {
                    continue;
                };
                let d = digest(&text);
                if written.insert(id, d) != Some(d) {
                    drop(live.0.set(id.to_string(), text));
                }
            }
            // Another proxy's now: its snapshot is that proxy's to write.
            Some(_) => {
                written.remove(&id);
            }
            // Destroyed here.
            None => {
                if written.remove(&id).is_some() {
                    drop(live.0.del(id.to_string()));
                }
            }
        }
    }
}

/// Starts this shard's snapshot loop (once, from the shard's first use of its rooms).
pub fn start(host: &Host) {
    if host.service::<Live>().is_none() {
        return;
    }
    let host = host.clone();
    monoio::spawn(async move {
        loop {
            monoio::time::sleep(FLUSH).await;
            flush(&host);
        }
    });
}

/// Makes room `id` this proxy's, from `dead`, its owner that died, with what it held of
/// it; on the room's owner shard. True when the room is here and owned by this proxy
/// (restored now, or by an earlier call).
pub async fn take_over(host: &Host, id: u64, dead: &str) -> bool {
    let rooms = rooms::rooms(host);
    if super::relay::owns(host, id) && rooms.map.borrow().contains_key(&id) {
        return true;
    }
    // One take-over per room: the others wait for its outcome.
    let (tx, rx) = oneshot::channel();
    let first = {
        let mut waiting = rooms.taking.borrow_mut();
        match waiting.get_mut(&id) {
            Some(list) => {
                list.push(tx);
                false
            }
            None => {
                waiting.insert(id, Vec::new());
                true
            }
        }
    };
    if !first {
        return rx.await.unwrap_or(false);
    }
    let done = take_over_now(host, id, dead).await;
    let waiters = rooms.taking.borrow_mut().remove(&id).unwrap_or_default();
    for w in waiters {
        let _ = w.send(done);
    }
    done
}

async fn take_over_now(host: &Host, id: u64, dead: &str) -> bool {
    let Some((taken, me)) = super::relay::take_over(host, id, dead).await else {
        return false;
    };
    let (owner, state) = match taken {
        Ok(x) => x,
        Err(e) => {
            warn!(room = id, error = %e, "room not taken over: room directory unavailable");
            return false;
        }
    };
    if owner != me {
        info!(room = id, %owner, "room taken by another proxy first: not restored here");
        return false;
    }
    let snap = state.and_then(|s| serde_json::from_str::<Snapshot>(&s).ok());
    let Some(snap) = snap.filter(|s| s.owner == dead) else {
        info!(room = id, %dead, "no snapshot of the dead owner: room not restored");
        return false;
    };
    let rooms = rooms::rooms(host);
    let room = restore(id, snap, host.shard_count());
    let (participants, mirrors) = (room.participants.len(), room.mirrors.len());
    let idle = room.mirrors.idle();
    {
        let mut map = rooms.map.borrow_mut();
        if map.get(&id).is_some_and(|r| !r.participants.is_empty()) {
            warn!(
                room = id,
                "room has participants here already: not restored"
            );
            return false;
        }
        if map.insert(id, room).is_none() {
            if let Some(c) = counts(host) {
                c.rooms.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    if let Some(c) = counts(host) {
        c.participants
            .fetch_add(participants, std::sync::atomic::Ordering::Relaxed);
    }
    mirrors::mirrors_changed(host, mirrors as i64);
    rooms.touched.borrow_mut().insert(id);
    info!(room = id, %dead, participants, mirrors, "room taken over from its dead owner");
    for key in idle {
        mirrors::expire_idle(host, id, key);
    }
    let grace = Duration::from_secs(host.config().cluster.adopt_timeout.max(1));
    let host = host.clone();
    monoio::spawn(async move {
        monoio::time::sleep(grace).await;
        let stray: Vec<u64> = rooms::with_room(&host, id, |r| {
            Ok(r.participants
                .values()
                .filter(|p| p.adopting)
                .map(|p| p.id)
                .collect())
        })
        .unwrap_or_default();
        for user in stray {
            warn!(
                room = id,
                user, "participant of a taken-over room never adopted: gone"
            );
            rooms::left(&host, id, user, rooms::Departure::Left, None);
        }
    });
    true
}

/// An adopted publisher handle, now at `loc`, takes its participant's place again; false
/// when the room has no such participant waiting.
pub fn rebind(host: &Host, id: u64, user: u64, loc: HandleLoc) -> bool {
    rooms::with_room(host, id, |r| {
        Ok(match r.participants.get_mut(&user) {
            Some(p) if p.adopting => {
                p.adopting = false;
                p.loc = loc;
                true
            }
            _ => false,
        })
    })
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> RoomConfig {
        RoomConfig::from_create(1234, &serde_json::Map::new()).expect("defaults")
    }

    #[test]
    fn a_room_survives_its_snapshot() {
        let mut r = Room::new(1234, config());
        r.backend_secret = "s3cret".into();
        r.backends.insert("ws://a".into(), BackendRoom::Ready(1234));
        r.backends
            .insert("ws://b".into(), BackendRoom::Creating(Vec::new()));
        r.participants.insert(
            7,
            Participant {
                id: 7,
                private_id: 99,
                display: Some("ann".into()),
                loc: HandleLoc {
                    shard: 1,
                    session_id: 11,
                    handle_id: 12,
                },
                server: "ws://a".into(),
                joined: true,
                streams: Some(vec![json!({"mid": "0", "type": "audio"})]),
                started: true,
                talking: true,
                kicked: false,
                adopting: false,
            },
        );
        r.private_ids.insert(99, 7);
        let snap = snapshot(&r, "ws://proxy-a");
        assert_eq!(
            snap.backends,
            vec![("ws://a".to_string(), 1234)],
            "only ready backend rooms"
        );
        let text = serde_json::to_string(&snap).expect("serializes");
        let back: Snapshot = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, snap);

        let restored = restore(1234, back, 4);
        let p = &restored.participants[&7];
        assert!(p.adopting, "waits for its handle");
        assert_eq!(p.loc.shard as usize, jump_hash(11, 4));
        assert_eq!((p.loc.session_id, p.loc.handle_id), (11, 12));
        assert_eq!(restored.private_ids.get(&99), Some(&7));
        assert_eq!(restored.backend_secret, "s3cret");
        assert_eq!(restored.backend_id("ws://a"), Some(1234));
        assert_eq!(restored.backend_id("ws://b"), None);
        assert_eq!(
            snapshot(&restored, "ws://proxy-a").participants,
            snap.participants
        );
    }

    #[test]
    fn a_handles_part_is_one_small_record() {
        let k = Kept {
            room: 5,
            owner: "ws://a".into(),
            part: Part::Subscriber {
                server: "ws://j1".into(),
                held: vec![(9, vec![("v".into(), "1".into())])],
            },
        };
        let text = serde_json::to_string(&k).expect("serializes");
        assert_eq!(
            text,
            r#"{"room":5,"owner":"ws://a","subscriber":{"server":"ws://j1","held":[[9,[["v","1"]]]]}}"#
        );
        assert_eq!(serde_json::from_str::<Kept>(&text).expect("parses"), k);
        let p: Kept =
            serde_json::from_str(r#"{"room":5,"owner":"ws://a","publisher":7}"#).expect("parses");
        assert_eq!(p.part, Part::Publisher(7));
    }
}
