//! Rooms, each on the shard that owns it (jump hash of the room id): the configuration, the
//! participants (publishers, wherever their handles live), the backend room on each server
//! the room uses, and the mirrors of feeds onto other servers. Every room-level event
//! clients see is made here, from this state (never relayed from a backend room, which
//! only knows its share of the room). Other shards reach a room through
//! [`Host::ask`]/[`Host::ask_async`] on its owner.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use ahash::{AHashMap, AHashSet};
use futures_channel::oneshot;
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use super::error::{VrError, VrResult, ID_EXISTS, NO_SUCH_FEED, ROOM_EXISTS, UNAUTHORIZED};
use super::room::RoomConfig;
use super::validate::check_secret;
use super::{control, events, mirrors, StartRooms, VrHandle, PACKAGE};
use crate::api::reply;
use crate::plugins::directory::HandleLoc;
use crate::plugins::Host;
use crate::runtime::jump_hash::jump_hash;
use crate::store::Written;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Largest id handed out (JavaScript-safe).
pub const MAX_ID: u64 = (1 << 53) - 1;

/// Rooms, publishers and mirrors of the whole process (a service), for `max_rooms` and
/// `/metrics`.
#[derive(Default)]
pub struct Counts {
    pub rooms: AtomicUsize,
    pub participants: AtomicUsize,
    pub mirrors: AtomicUsize,
}

/// How many rooms the process holds.
pub fn count(host: &Host) -> usize {
    counts(host).map_or(0, |c| c.rooms.load(Relaxed))
}

pub fn counts(host: &Host) -> Option<&Counts> {
    host.service::<std::sync::Arc<Counts>>().map(|c| &**c)
}

/// The shard owning room `id`.
pub fn owner(host: &Host, id: u64) -> usize {
    jump_hash(id, host.shard_count())
}

/// One publisher-type participant (subscribers are not participants, as in Janus).
#[derive(Debug, Clone)]
pub struct Participant {
    pub id: u64,
    pub private_id: u32,
    pub display: Option<String>,
    /// Its client handle.
    pub loc: HandleLoc,
    /// The backend server it publishes on.
    pub server: String,
    /// Joined: its `joined` was sent (until then it gets no room events).
    pub joined: bool,
    /// Its streams as the backend described them in its last `configured` answer.
    pub streams: Option<Vec<Value>>,
    /// Media flowing (the backend's `webrtcup`): announced to the others.
    pub started: bool,
    pub talking: bool,
    pub kicked: bool,
    /// Restored from its dead owner's snapshot, its handle not adopted yet
    /// ([`super::takeover`]).
    pub adopting: bool,
}

impl Participant {
    /// Its entry in `publishers` lists (Janus's `janus_videoroom_notify_about_publisher`).
    pub fn announcement(&self, audiolevel_ext: bool) -> Value {
        events::publisher_entry(
            self.id,
            self.display.as_deref(),
            self.streams.as_deref().unwrap_or(&[]),
            audiolevel_ext.then_some(self.talking),
        )
    }
}

/// A room's room on one backend server.
pub enum BackendRoom {
    Ready(u64),
    /// Being created; these wait for its id.
    Creating(Vec<oneshot::Sender<VrResult<u64>>>),
}

pub struct Room {
    pub id: u64,
    pub config: RoomConfig,
    /// The secret of its backend rooms (only the proxy knows it).
    pub backend_secret: String,
    pub participants: BTreeMap<u64, Participant>,
    pub private_ids: AHashMap<u32, u64>,
    /// By backend URL.
    pub backends: AHashMap<String, BackendRoom>,
    pub mirrors: mirrors::Mirrors,
    /// Whether the room is kept in the room store.
    pub permanent: bool,
}

impl Room {
    pub fn new(id: u64, config: RoomConfig) -> Room {
        Room {
            id,
            config,
            backend_secret: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            participants: BTreeMap::new(),
            private_ids: AHashMap::new(),
            backends: AHashMap::new(),
            mirrors: mirrors::Mirrors::default(),
            permanent: false,
        }
    }

    /// The participants that get room events: joined, not `except`.
    pub fn audience(&self, except: Option<u64>) -> Vec<HandleLoc> {
        self.participants
            .values()
            .filter(|p| p.joined && Some(p.id) != except)
            .map(|p| p.loc)
            .collect()
    }

    /// The backend room id on `url`, if it is ready.
    pub fn backend_id(&self, url: &str) -> Option<u64> {
        match self.backends.get(url) {
            Some(BackendRoom::Ready(id)) => Some(*id),
            _ => None,
        }
    }
}

/// This shard's rooms (a shard-local slot).
#[derive(Default)]
pub struct Rooms {
    pub map: RefCell<AHashMap<u64, Room>>,
    loaded: Cell<bool>,
    /// Rooms touched since the last snapshot flush ([`super::takeover`]).
    pub touched: RefCell<AHashSet<u64>>,
    /// Digest of each room's last written snapshot.
    pub written: RefCell<AHashMap<u64, u64>>,
    /// Rooms being taken over from a dead owner, and who waits for the outcome.
    pub taking: RefCell<AHashMap<u64, Vec<oneshot::Sender<bool>>>>,
}

/// This shard's rooms, with the static and stored rooms it owns loaded on first use.
pub fn rooms(host: &Host) -> Rc<Rooms> {
    let rooms = host.slot::<Rooms>();
    if !rooms.loaded.replace(true) {
        super::takeover::start(host);
        if let Some(start) = host.service::<StartRooms>() {
            let mut map = rooms.map.borrow_mut();
            for (id, config, permanent) in &start.rooms {
                if owner(host, *id) == host.shard_id() {
                    let mut room = Room::new(*id, config.clone());
                    room.permanent = *permanent;
                    map.insert(*id, room);
                }
            }
        }
    }
    rooms
}

/// Runs `f` on room `id` of this shard.
///
/// # Errors
/// 426 when there is no such room.
pub fn with_room<T>(host: &Host, id: u64, f: impl FnOnce(&mut Room) -> VrResult<T>) -> VrResult<T> {
    let rooms = rooms(host);
    let mut map = rooms.map.borrow_mut();
    let room = map.get_mut(&id).ok_or_else(|| VrError::no_such_room(id))?;
    // Possibly changed: its snapshot is looked at on the next flush.
    rooms.touched.borrow_mut().insert(id);
    f(room)
}

/// Sends an event of `room` to the client handles at `to`.
pub fn push(host: &Host, to: &[HandleLoc], data: &Value) {
    let text = data.to_string();
    let mut by_shard: AHashMap<u16, Vec<HandleLoc>> = AHashMap::new();
    for loc in to {
        by_shard.entry(loc.shard).or_default().push(*loc);
    }
    for (shard, locs) in by_shard {
        let text = text.clone();
        host.run_on(shard as usize, move |h| {
            for loc in locs {
                if let Some((ctx, _)) = h.handle::<VrHandle>(loc.session_id, loc.handle_id) {
                    ctx.push(reply::plugin_event(ctx.addr(), None, PACKAGE, &text, None));
                }
            }
        });
    }
}

// ------------------------------------------------------------------------------------
// synchronous requests, on the owner shard

/// The answer to a room request, and the room store's write to await before giving it.
pub type Answer = (Value, Option<Written>);

/// `create` of room `id` with a validated configuration.
///
/// # Errors
/// 427 when the room exists.
pub fn create(host: &Host, id: u64, config: RoomConfig, permanent: bool) -> VrResult<Answer> {
    let rooms = rooms(host);
    let mut map = rooms.map.borrow_mut();
    if map.contains_key(&id) {
        return Err(VrError::new(
            ROOM_EXISTS,
            format!("Room {id} already exists"),
        ));
    }
    let written = if permanent {
        super::store::save(host, id, &config)
    } else {
        None
    };
    let stored = written.is_some();
    let mut room = Room::new(id, config);
    room.permanent = stored;
    map.insert(id, room);
    if let Some(c) = counts(host) {
        c.rooms.fetch_add(1, Relaxed);
    }
    Ok((
        json!({"videoroom": "created", "room": id, "permanent": stored}),
        written,
    ))
}

/// `exists`.
pub fn exists(host: &Host, id: u64) -> Value {
    let found = rooms(host).map.borrow().contains_key(&id);
    json!({"videoroom": "success", "room": id, "exists": found})
}

/// This shard's entries of `list`.
pub fn list(host: &Host, with_private: bool) -> Vec<(u64, Value)> {
    rooms(host)
        .map
        .borrow()
        .values()
        .filter(|r| with_private || !r.config.is_private)
        .map(|r| (r.id, r.config.list_entry(r.id, r.participants.len())))
        .collect()
}

/// `edit`.
///
/// # Errors
/// 426, the secret check, validation.
pub fn edit(host: &Host, id: u64, body: &Map<String, Value>) -> VrResult<Answer> {
    let permanent = body.get("permanent").and_then(Value::as_bool) == Some(true);
    let (config, was_permanent) = with_room(host, id, |r| {
        check_secret(body, "secret", &r.config.secret)?;
        r.config.edit(body)?;
        Ok((r.config.clone(), r.permanent))
    })?;
    let written = if permanent || was_permanent {
        super::store::save(host, id, &config)
    } else {
        None
    };
    let saved = written.is_some() && permanent;
    Ok((
        json!({"videoroom": "edited", "room": id, "permanent": saved}),
        written,
    ))
}

/// `allowed`: enable, disable, add or remove join tokens.
///
/// # Errors
/// 426, the secret check, 430 for a bad action or token.
pub fn allowed(host: &Host, id: u64, body: &Map<String, Value>) -> VrResult<Value> {
    with_room(host, id, |r| {
        check_secret(body, "secret", &r.config.secret)?;
        let action = body
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let tokens: Vec<String> = match body.get("allowed") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    VrError::new(
                        super::error::INVALID_ELEMENT,
                        "Invalid element in the allowed array (not a string)",
                    )
                })?,
            Some(_) => Vec::new(),
        };
        match action {
            "enable" => {
                r.config.allowed.get_or_insert_with(Default::default);
            }
            "disable" => r.config.allowed = None,
            "add" | "remove" if body.get("allowed").is_none() => {
                return Err(VrError::new(
                    super::error::MISSING_ELEMENT,
                    "Missing mandatory element (allowed)",
                ))
            }
            "add" => r
                .config
                .allowed
                .get_or_insert_with(Default::default)
                .extend(tokens),
            "remove" => {
                if let Some(set) = r.config.allowed.as_mut() {
                    for t in tokens {
                        set.remove(&t);
                    }
                }
            }
            _ => {
                return Err(VrError::new(
                    super::error::INVALID_ELEMENT,
                    "Unsupported action '".to_string() + action + "' (allowed)",
                ))
            }
        }
        let mut reply = json!({"videoroom": "success", "room": id});
        if let (Some(set), Some(m)) = (&r.config.allowed, reply.as_object_mut()) {
            m.insert("allowed".into(), json!(set));
        }
        Ok(reply)
    })
}

/// `listparticipants`.
///
/// # Errors
/// 426.
pub fn list_participants(host: &Host, id: u64) -> VrResult<Value> {
    with_room(host, id, |r| {
        let list: Vec<Value> = r
            .participants
            .values()
            .filter(|p| p.joined)
            .map(|p| {
                let mut m = Map::new();
                m.insert("id".into(), json!(p.id));
                if let Some(d) = &p.display {
                    m.insert("display".into(), json!(d));
                }
                m.insert("publisher".into(), json!(p.started));
                if p.started && r.config.audiolevel_ext {
                    m.insert("talking".into(), json!(p.talking));
                }
                Value::Object(m)
            })
            .collect();
        Ok(json!({"videoroom": "participants", "room": id, "participants": list}))
    })
}

/// The publishers of room `id` with where each publishes (the admin API's view).
///
/// # Errors
/// 426.
pub fn placements(host: &Host, id: u64) -> VrResult<Vec<Value>> {
    with_room(host, id, |r| {
        Ok(r.participants
            .values()
            .map(|p| {
                let name = host
                    .backend_by_url(&p.server)
                    .map(|l| l.server.name.clone())
                    .unwrap_or_default();
                let mut m = Map::new();
                m.insert("id".into(), json!(p.id));
                m.insert("publisher".into(), json!(p.started));
                if let Some(d) = &p.display {
                    m.insert("display".into(), json!(d));
                }
                if p.started && r.config.audiolevel_ext {
                    m.insert("talking".into(), json!(p.talking));
                }
                m.insert(
                    "backend_server".into(),
                    json!(format!("{name} ({})", p.server)),
                );
                m.insert("backend_room_id".into(), json!(r.backend_id(&p.server)));
                Value::Object(m)
            })
            .collect())
    })
}

/// `destroy`: every participant is told, the backend rooms go.
///
/// # Errors
/// 426, the secret check.
pub fn destroy(host: &Host, id: u64, body: &Map<String, Value>) -> VrResult<Answer> {
    let room = {
        let rooms = rooms(host);
        let mut map = rooms.map.borrow_mut();
        let Some(r) = map.get(&id) else {
            return Err(VrError::no_such_room(id));
        };
        check_secret(body, "secret", &r.config.secret)?;
        rooms.touched.borrow_mut().insert(id);
        map.remove(&id)
    };
    let Some(room) = room else {
        return Err(VrError::no_such_room(id));
    };
    if let Some(c) = counts(host) {
        c.rooms.fetch_sub(1, Relaxed);
        c.participants.fetch_sub(room.participants.len(), Relaxed);
    }
    let permanent = body.get("permanent").and_then(Value::as_bool) == Some(true);
    let written = if room.permanent || permanent {
        super::store::delete(host, id)
    } else {
        None
    };
    super::relay::release(host, id);
    end(host, room);
    Ok((
        json!({"videoroom": "destroyed", "room": id, "permanent": permanent}),
        written,
    ))
}

/// The end of a room's life here: its participants are told `destroyed` and are out, its
/// mirrors and backend rooms go.
fn end(host: &Host, room: Room) {
    let gone = json!({"videoroom": "destroyed", "room": room.id});
    let audience: Vec<HandleLoc> = room.participants.values().map(|p| p.loc).collect();
    push(host, &audience, &gone);
    for loc in audience {
        host.run_on(loc.shard as usize, move |h| {
            super::participant::room_gone(h, loc);
        });
    }
    teardown_backends(host, room);
}

/// Another proxy owns room `id` now (this one's key was lost: Redis restarted empty, or
/// could not be reached for `owner_ttl`, and another proxy took the room meanwhile). What
/// this proxy held of it ends as a destroyed room ends, so that nobody stays in a room
/// the others no longer reach; the room stays known here, empty, and its joins go to the
/// new owner.
pub fn lost(host: &Host, id: u64) {
    let old = {
        let rooms = rooms(host);
        let mut map = rooms.map.borrow_mut();
        let busy = map
            .get(&id)
            .is_some_and(|r| !r.participants.is_empty() || !r.backends.is_empty());
        if !busy {
            return;
        }
        let Some(old) = map.remove(&id) else {
            return;
        };
        let mut fresh = Room::new(id, old.config.clone());
        fresh.permanent = old.permanent;
        map.insert(id, fresh);
        rooms.touched.borrow_mut().insert(id);
        old
    };
    warn!(
        room = id,
        participants = old.participants.len(),
        "room taken by another proxy: ended here"
    );
    if let Some(c) = counts(host) {
        c.participants.fetch_sub(old.participants.len(), Relaxed);
    }
    end(host, old);
}

/// Redis lost this proxy's key of room `id` (restarted empty): what the room store and
/// the room's snapshot held of it is written again (a permanent room's configuration,
/// and the snapshot at the next flush).
pub fn restored(host: &Host, id: u64) {
    let rooms = rooms(host);
    let config = match rooms.map.borrow().get(&id) {
        Some(r) if r.permanent => Some(r.config.clone()),
        Some(_) => None,
        None => return,
    };
    if let Some(config) = config {
        drop(super::store::save(host, id, &config));
    }
    rooms.written.borrow_mut().remove(&id);
    rooms.touched.borrow_mut().insert(id);
}

/// Removes a room's mirrors, then its backend rooms (Janus 1.1.2 leaves a remote
/// publisher's ports open when its room is destroyed under it).
fn teardown_backends(host: &Host, mut room: Room) {
    mirrors::mirrors_changed(host, -(room.mirrors.len() as i64));
    for (feed, ends) in room.mirrors.take_all() {
        mirrors::teardown(host, &room.backend_secret, feed, ends);
    }
    let host = host.clone();
    monoio::spawn(async move {
        // The mirrors' removal was queued first on the same control handles.
        for (url, b) in &room.backends {
            if let BackendRoom::Ready(backend_id) = b {
                let body = json!({"request": "destroy", "room": backend_id, "secret": room.backend_secret});
                if let Err(e) = control::request(&host, url, &body).await {
                    debug!(server = %url, room = backend_id, error = %e.text, "backend room not destroyed");
                }
            }
        }
    });
}

/// `kick`: the participant is told `leaving` (reason kicked), the others `kicked`.
///
/// # Errors
/// 426, the secret check, 428 for an unknown participant.
pub fn kick(host: &Host, id: u64, user: u64, body: &Map<String, Value>) -> VrResult<Value> {
    let kicked = with_room(host, id, |r| {
        check_secret(body, "secret", &r.config.secret)?;
        let p = r.participants.get_mut(&user).ok_or_else(|| {
            VrError::new(NO_SUCH_FEED, format!("No such user {user} in room {id}"))
        })?;
        if p.kicked {
            return Ok(None);
        }
        p.kicked = true;
        Ok(Some(p.loc))
    })?;
    if let Some(loc) = kicked {
        push(
            host,
            &[loc],
            &json!({"videoroom": "event", "room": id, "leaving": "ok", "reason": "kicked"}),
        );
        left(host, id, user, Departure::Kicked, None);
        host.run_on(loc.shard as usize, move |h| {
            super::participant::room_gone(h, loc);
        });
    }
    Ok(json!({"videoroom": "success"}))
}

// ------------------------------------------------------------------------------------
// participants, on the owner shard

/// What a publisher's handle needs to join its backend room.
#[derive(Debug, Clone)]
pub struct Admission {
    pub id: u64,
    /// Where it publishes, and the room there.
    pub server: String,
    pub backend_room: u64,
}

/// Admits a publisher (access checks, id, placement) and makes sure its backend room
/// exists. The participant gets room events once [`joined`] ran.
///
/// # Errors
/// 426, pin/token (433), 436 for a taken id, no backend (502/503).
pub async fn admit(
    host: &Host,
    id: u64,
    body: Map<String, Value>,
    loc: HandleLoc,
) -> VrResult<Admission> {
    let (user, server) = with_room(host, id, |r| {
        check_secret(&body, "pin", &r.config.pin)?;
        let token = body.get("token").and_then(Value::as_str);
        if !r.config.token_allowed(token) {
            return Err(VrError::new(
                UNAUTHORIZED,
                "Unauthorized (not in the allowed list)",
            ));
        }
        let max = host
            .service::<super::Settings>()
            .map_or(1_000, |s| s.max_participants_per_room);
        if r.participants.len() >= max {
            return Err(VrError::new(
                super::error::PUBLISHERS_FULL,
                format!("Maximum number of participants ({max}) already reached"),
            ));
        }
        let user = match body.get("id").and_then(Value::as_u64).filter(|u| *u > 0) {
            Some(u) if r.participants.contains_key(&u) => {
                return Err(VrError::new(
                    ID_EXISTS,
                    format!("User ID {u} already exists"),
                ))
            }
            Some(u) => u,
            None => loop {
                let u = fastrand::u64(1..=MAX_ID);
                if !r.participants.contains_key(&u) {
                    break u;
                }
            },
        };
        let private_id = loop {
            let p = fastrand::u32(1..=u32::MAX);
            if !r.private_ids.contains_key(&p) {
                break p;
            }
        };
        let server = place(host, r)?;
        r.private_ids.insert(private_id, user);
        if let Some(c) = counts(host) {
            c.participants.fetch_add(1, Relaxed);
        }
        r.participants.insert(
            user,
            Participant {
                id: user,
                private_id,
                display: body
                    .get("display")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                loc,
                server: server.clone(),
                joined: false,
                streams: None,
                started: false,
                talking: false,
                kicked: false,
                adopting: false,
            },
        );
        Ok((user, server))
    })?;
    match backend_room(host, id, &server).await {
        Ok(backend_room) => Ok(Admission {
            id: user,
            server,
            backend_room,
        }),
        Err(e) => {
            forget_participant(host, id, user);
            Err(e)
        }
    }
}

/// Where a new publisher goes: with `pack_publishers`, the busiest backend of the room
/// still under that many publishers; else (or when all are full) `server_select`.
fn place(host: &Host, r: &Room) -> VrResult<String> {
    let pack = r.config.pack_publishers;
    if pack > 0 {
        let mut counts: AHashMap<&str, u64> = AHashMap::new();
        for p in r.participants.values() {
            *counts.entry(p.server.as_str()).or_default() += 1;
        }
        let best = counts
            .into_iter()
            .filter(|(url, n)| *n < pack && host.backend_by_url(url).is_some_and(|l| l.is_up()))
            .max_by_key(|(_, n)| *n);
        if let Some((url, _)) = best {
            return Ok(url.to_string());
        }
    }
    Ok(host.select_backend()?.server.url.clone())
}

/// Drops a participant that never made it into the room.
pub fn forget_participant(host: &Host, id: u64, user: u64) {
    let _ = with_room(host, id, |r| {
        if let Some(p) = r.participants.remove(&user) {
            r.private_ids.remove(&p.private_id);
            if let Some(c) = counts(host) {
                c.participants.fetch_sub(1, Relaxed);
            }
        }
        Ok(())
    });
}

/// Room access for a join (Janus's `janus_videoroom_access_room`): the room exists and
/// the pin, if any, is given.
///
/// # Errors
/// 426, or the pin check's.
pub fn access(host: &Host, id: u64, body: &Map<String, Value>) -> VrResult<()> {
    with_room(host, id, |r| check_secret(body, "pin", &r.config.pin))
}

/// 432 when publisher `user` may not start publishing: the room has as many publishers
/// as it admits.
///
/// # Errors
/// 426, 432.
pub fn may_publish(host: &Host, id: u64, user: u64) -> VrResult<()> {
    with_room(host, id, |r| {
        let publishing = r
            .participants
            .values()
            .filter(|p| p.id != user && p.started)
            .count() as i64;
        if publishing >= r.config.max_publishers {
            return Err(VrError::new(
                super::error::PUBLISHERS_FULL,
                format!(
                    "Maximum number of publishers ({}) already reached",
                    r.config.max_publishers
                ),
            ));
        }
        Ok(())
    })
}

/// A feed a subscription asks for, and where it publishes.
#[derive(Debug, Clone)]
pub struct FeedInfo {
    pub id: u64,
    pub server: String,
}

/// The feeds of a subscription request, checked as Janus checks them: each publishing
/// (428 "No such feed"), each `mid` one of its streams; with `private_id` = `Some(p)`
/// (a join), rooms with `require_pvtid` want `p` to be a participant's.
///
/// # Errors
/// 426, 428, 433.
pub fn feeds(
    host: &Host,
    id: u64,
    want: &[(u64, Option<String>)],
    private_id: Option<Option<u64>>,
) -> VrResult<Vec<FeedInfo>> {
    with_room(host, id, |r| {
        let mut out = Vec::with_capacity(want.len());
        for (feed, mid) in want {
            let p = r
                .participants
                .get(feed)
                .filter(|p| p.started)
                .ok_or_else(|| VrError::no_such_feed(*feed))?;
            if let Some(mid) = mid {
                let known = p
                    .streams
                    .iter()
                    .flatten()
                    .any(|s| s.get("mid").and_then(Value::as_str) == Some(mid));
                if !known {
                    return Err(VrError::new(
                        NO_SUCH_FEED,
                        format!("No such mid '{mid}' in feed ({feed})"),
                    ));
                }
            }
            out.push(FeedInfo {
                id: *feed,
                server: p.server.clone(),
            });
        }
        if let Some(pvt) = private_id {
            let known = pvt
                .is_some_and(|p| p <= u32::MAX as u64 && r.private_ids.contains_key(&(p as u32)));
            if r.config.require_pvtid && !known {
                return Err(VrError::new(
                    UNAUTHORIZED,
                    "Unauthorized (this room requires a valid private_id)",
                ));
            }
        }
        Ok(out)
    })
}

/// The backend room of room `id` on `url`, created on first use (same id as the proxy
/// room unless the backend has a room of that id already).
///
/// # Errors
/// The room vanished meanwhile, or the backend refused or cannot be reached.
pub async fn backend_room(host: &Host, id: u64, url: &str) -> VrResult<u64> {
    let (tx, rx) = oneshot::channel();
    let start = with_room(host, id, |r| {
        match r.backends.get_mut(url) {
            Some(BackendRoom::Ready(b)) => return Ok(Some(*b)),
            Some(BackendRoom::Creating(waiters)) => {
                waiters.push(tx);
                return Ok(None);
            }
            None => {}
        }
        r.backends
            .insert(url.to_string(), BackendRoom::Creating(vec![tx]));
        Ok(Some(0))
    })?;
    match start {
        Some(0) => {
            let created = create_backend_room(host, id, url).await;
            let waiters = with_room(host, id, |r| {
                let old = match &created {
                    Ok(b) => r.backends.insert(url.to_string(), BackendRoom::Ready(*b)),
                    Err(_) => r.backends.remove(url),
                };
                Ok(match old {
                    Some(BackendRoom::Creating(w)) => w,
                    _ => Vec::new(),
                })
            })
            .unwrap_or_default();
            for w in waiters {
                let _ = w.send(created.clone());
            }
        }
        Some(b) => return Ok(b),
        None => {}
    }
    rx.await.unwrap_or_else(|_| {
        Err(VrError::new(
            super::error::UNKNOWN_ERROR,
            "backend room dropped",
        ))
    })
}

async fn create_backend_room(host: &Host, id: u64, url: &str) -> VrResult<u64> {
    let (config, secret) = with_room(host, id, |r| {
        Ok((r.config.clone(), r.backend_secret.clone()))
    })?;
    let mut backend_id = id;
    for _ in 0..3 {
        match control::request(host, url, &config.backend_create(backend_id, &secret)).await {
            Ok(_) => return Ok(backend_id),
            // That id is a room of the backend's own (e.g. its demo rooms): take another.
            Err(e) if e.code == ROOM_EXISTS => backend_id = fastrand::u64(1..=MAX_ID),
            Err(e) => return Err(e),
        }
    }
    Err(VrError::new(
        ROOM_EXISTS,
        format!("No free room id on {url}"),
    ))
}

/// The publisher was admitted and its backend joined: it gets `joined` (with the
/// publishers of the whole room, and `attendees` when the room notifies joins), and the
/// others `joining` when they are told about joins. `answer` is the JSEP of a
/// `joinandconfigure`.
pub fn joined(
    host: &Host,
    id: u64,
    user: u64,
    transaction: String,
    extra: Map<String, Value>,
    answer: Option<String>,
) {
    let made = with_room(host, id, |r| {
        let p = r
            .participants
            .get_mut(&user)
            .ok_or_else(|| VrError::no_such_feed(user))?;
        p.joined = true;
        let me = p.clone();
        let audiolevel = r.config.audiolevel_ext;
        let publishers: Vec<Value> = r
            .participants
            .values()
            .filter(|o| o.id != user && o.started && o.streams.is_some())
            .map(|o| o.announcement(audiolevel))
            .collect();
        let attendees: Option<Vec<Value>> = r.config.notify_joining.then(|| {
            r.participants
                .values()
                .filter(|o| o.id != user && o.joined && !(o.started && o.streams.is_some()))
                .map(|o| events::attendee(o.id, o.display.as_deref()))
                .collect()
        });
        let data = events::joined(
            id,
            &r.config.description,
            user,
            me.private_id,
            publishers,
            attendees,
            extra,
        );
        let joining = r.config.notify_joining.then(|| {
            (
                r.audience(Some(user)),
                events::joining(id, user, me.display.as_deref()),
            )
        });
        Ok((me.loc, data, joining))
    });
    let Ok((loc, data, joining)) = made else {
        return;
    };
    let text = data.to_string();
    host.run_on(loc.shard as usize, move |h| {
        if let Some((ctx, _)) = h.handle::<VrHandle>(loc.session_id, loc.handle_id) {
            ctx.push(reply::plugin_event(
                ctx.addr(),
                Some(&transaction),
                PACKAGE,
                &text,
                answer.as_deref(),
            ));
        }
    });
    if let Some((audience, event)) = joining {
        push(host, &audience, &event);
    }
}

/// A publisher's backend answered a `configure`/`publish` with its streams; a new
/// `display` is announced (`{"videoroom":"event","id","display"}`, as Janus: no room), and
/// a renegotiation of a publisher whose media flows is announced and reaches its mirrors.
pub fn configured(
    host: &Host,
    id: u64,
    user: u64,
    streams: Option<Vec<Value>>,
    display: Option<String>,
) {
    let changed = with_room(host, id, |r| {
        let audiolevel = r.config.audiolevel_ext;
        let audience = r.audience(Some(user));
        let p = r
            .participants
            .get_mut(&user)
            .ok_or_else(|| VrError::no_such_feed(user))?;
        let mut out = Vec::new();
        if let Some(d) = display {
            let had = p.display.replace(d.clone()).is_some();
            if had && p.joined {
                out.push(json!({"videoroom": "event", "id": user, "display": d}));
            }
        }
        let renegotiated = streams.is_some() && p.started && p.streams != streams;
        if let Some(s) = streams {
            p.streams = Some(s);
        }
        if renegotiated {
            out.push(events::publishers(id, vec![p.announcement(audiolevel)]));
        }
        Ok((audience, out, renegotiated))
    });
    if let Ok((audience, out, renegotiated)) = changed {
        for e in &out {
            push(host, &audience, e);
        }
        if renegotiated {
            mirrors::refresh(host, id, user);
        }
    }
}

/// A publisher's media flows (its backend handle's `webrtcup`): the others are told.
pub fn started(host: &Host, id: u64, user: u64) {
    let news = with_room(host, id, |r| {
        let audiolevel = r.config.audiolevel_ext;
        let audience = r.audience(Some(user));
        let p = r
            .participants
            .get_mut(&user)
            .ok_or_else(|| VrError::no_such_feed(user))?;
        if p.started || p.streams.is_none() {
            return Ok(None);
        }
        p.started = true;
        Ok(Some((
            audience,
            events::publishers(id, vec![p.announcement(audiolevel)]),
        )))
    });
    if let Ok(Some((audience, event))) = news {
        push(host, &audience, &event);
    }
}

/// How a publisher stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It unpublished (or its PeerConnection closed): it stays in the room.
    Unpublished,
    /// It left (leave, detach, its backend died).
    Left,
    /// It was kicked.
    Kicked,
}

/// A publisher stops publishing or leaves: as Janus, the others get `unpublished` (when
/// it was publishing), then `leaving` (or `kicked`); its mirrors go.
pub fn left(host: &Host, id: u64, user: u64, how: Departure, expect: Option<HandleLoc>) {
    let news = with_room(host, id, |r| {
        let audience = r.audience(Some(user));
        let Some(p) = r.participants.get_mut(&user) else {
            return Ok(None);
        };
        // A handle that is no longer this participant (its id was taken since).
        if expect.is_some_and(|l| l != p.loc) {
            return Ok(None);
        }
        let was_started = std::mem::take(&mut p.started);
        let joined = p.joined;
        if how == Departure::Unpublished {
            p.streams = None;
        } else if let Some(p) = r.participants.remove(&user) {
            r.private_ids.remove(&p.private_id);
            if let Some(c) = counts(host) {
                c.participants.fetch_sub(1, Relaxed);
            }
        }
        let mut out = Vec::new();
        if was_started {
            out.push(json!({"videoroom": "event", "room": id, "unpublished": user}));
        }
        if joined {
            match how {
                Departure::Left => {
                    out.push(json!({"videoroom": "event", "room": id, "leaving": user}))
                }
                Departure::Kicked => {
                    out.push(json!({"videoroom": "event", "room": id, "kicked": user}))
                }
                Departure::Unpublished => {}
            }
        }
        Ok(Some((audience, out)))
    });
    if let Ok(Some((audience, out))) = news {
        for e in &out {
            push(host, &audience, e);
        }
        mirrors::feed_gone(host, id, user);
    }
}

/// A talking event of a publisher's backend handle, for the whole room (rooms with
/// `audiolevel_event`): the room id is the proxy's.
pub fn talking(host: &Host, id: u64, user: u64, mut data: Value, is_talking: bool) {
    let audience = with_room(host, id, |r| {
        if let Some(p) = r.participants.get_mut(&user) {
            p.talking = is_talking;
        }
        Ok(r.audience(None))
    });
    if let Ok(audience) = audience {
        if let Some(m) = data.as_object_mut() {
            m.insert("room".into(), json!(id));
        }
        push(host, &audience, &data);
    }
}

/// A backend server is gone: on every room of this shard, its publishers leave for
/// everyone, mirrors to and from it are forgotten, its backend rooms too.
pub fn server_lost(host: &Host, url: &str) {
    // Per room: its id, its publishers there, its mirrors from or to there, its secret.
    type Affected = (u64, Vec<u64>, Vec<(u64, mirrors::Ends)>, String);
    let affected: Vec<Affected> = {
        let rooms = rooms(host);
        let mut map = rooms.map.borrow_mut();
        rooms.touched.borrow_mut().extend(map.keys().copied());
        map.values_mut()
            .map(|r| {
                r.backends.remove(url);
                let before = r.mirrors.len();
                let lost = r.mirrors.server_lost(url);
                mirrors::mirrors_changed(host, r.mirrors.len() as i64 - before as i64);
                let users = r
                    .participants
                    .values()
                    .filter(|p| p.server == url)
                    .map(|p| p.id)
                    .collect();
                (r.id, users, lost, r.backend_secret.clone())
            })
            .collect()
    };
    for (room, users, lost, secret) in affected {
        // The surviving half of each mirror goes (teardown skips the dead server).
        for (feed, ends) in lost {
            mirrors::teardown(host, &secret, feed, ends);
        }
        for user in users {
            warn!(room, user, server = %url, "publisher lost with its backend");
            left(host, room, user, Departure::Left, None);
        }
    }
}
