//! `janus.plugin.videoroom`: Janus 1.x multistream conferences whose rooms span any number
//! of backend Janus servers.
//!
//! A proxy room is owned by one shard ([`rooms`]): its configuration, its participants and
//! the backend rooms carrying its media, one per server it uses. Publishers are placed on
//! a server each (`server_select`, or packed with the room's `pack_publishers`); a
//! subscriber is placed on the server holding most of the feeds it asks for, and every
//! other feed is mirrored there as a Janus *remote publisher* ([`mirrors`]) under the same
//! id. Clients never see backend rooms or mirrors: the owner makes every room-level event
//! itself, room ids and mirror mids are rewritten both ways.
//!
//! With a Redis `room_db` a room is served by one proxy of the cluster, its owner, and
//! the other proxies relay their clients' handles of it there ([`relay`]); with proxy
//! failover (`[cluster]`) as well, a room outlives its owner ([`takeover`]).
//!
//! This module is the plugin's face: the handle state, which requests are synchronous,
//! and the routing of backend events. [`requests`] serves the room-management requests,
//! [`publisher`] and [`subscriber`] the two kinds of participant handles.

mod admin;
mod control;
mod error;
mod events;
mod mirrors;
mod participant;
mod publisher;
mod relay;
mod requests;
mod room;
mod rooms;
mod settings;
mod store;
mod subscriber;
mod takeover;
mod validate;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::*;
use crate::api::json::RawObject;
use crate::core::metrics::PluginGauge;
use error::{VrError, VrResult};
pub use settings::Settings;

pub const PACKAGE: &str = "janus.plugin.videoroom";

pub struct VideoRoom;

static META: PluginMeta = PluginMeta {
    package: PACKAGE,
    name: "videoroom",
    display_name: "JANUS VideoRoom plugin",
    author: "opensight.cn",
    description: "A Janus 1.x VideoRoom whose rooms span many backend Janus servers.",
    version: 9,
    version_string: "0.0.9",
};

/// Rooms known at start: the static ones of the config and those of the room store,
/// with whether each is permanent (kept in the store).
#[derive(Default)]
pub struct StartRooms {
    pub rooms: Vec<(u64, room::RoomConfig, bool)>,
}

/// What a handle is in its room.
#[derive(Debug, Clone, Default)]
pub enum Role {
    #[default]
    None,
    Publisher(publisher::PubRole),
    Subscriber(subscriber::SubRole),
    /// Relayed to the room's owner, another proxy (its `peer_url`): see [`relay`].
    Relay(Rc<str>),
}

/// A `message` waiting its turn.
pub struct Job {
    pub request: String,
    pub body: Map<String, Value>,
    pub jsep: Option<String>,
    pub transaction: Rc<str>,
}

/// What an asynchronous request answers: its event data and JSEP, or nothing when the
/// answer was already pushed (a `joined` comes from the room's owner, in order with the
/// room's other events), or an error.
pub type Outcome = VrResult<Option<(Value, Option<String>)>>;

/// The state of one client handle.
#[derive(Default)]
pub struct VrHandle {
    pub role: RefCell<Role>,
    /// Its backend handle (publisher or subscriber), once joined.
    pub backend: RefCell<Option<BackendHandle>>,
    /// The backend handle of its last part in a room, hung up and kept until the next
    /// join or the detach, so that its `hangup` reaches the client.
    pub retired: RefCell<Option<BackendHandle>>,
    /// Events of the backend handle held back while the room's owner learns of its
    /// `webrtcup` (see `publisher::backend_event`), in order.
    pub held_events: RefCell<Option<Vec<Vec<u8>>>>,
    /// Candidates trickled before the backend handle existed.
    candidates: RefCell<Vec<String>>,
    /// A relayed handle's session on the owner (its peer session there), kept for when
    /// the link to the owner drops (see [`relay::rehome`]).
    pub relay_session: std::cell::Cell<u64>,
    jobs: RefCell<VecDeque<Job>>,
    running: std::cell::Cell<bool>,
}

/// Requests Janus answers at once (`janus_videoroom_process_synchronous_request`); the
/// others are queued per handle and answered with an event.
const SYNC_REQUESTS: &[&str] = &[
    "create",
    "edit",
    "destroy",
    "list",
    "exists",
    "allowed",
    "kick",
    "moderate",
    "enable_recording",
    "listparticipants",
    "listforwarders",
    "rtp_forward",
    "stop_rtp_forward",
    "publish_remotely",
    "unpublish_remotely",
    "add_remote_publisher",
    "update_remote_publisher",
    "remove_remote_publisher",
    "listremotes",
];

/// The `request` of a body, lower-cased as Janus compares it (`strcasecmp`).
fn request_name(body: &Map<String, Value>) -> Option<String> {
    body.get("request")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

fn body_of(msg: &PluginMessage) -> Map<String, Value> {
    serde_json::from_str(msg.body.get()).unwrap_or_default()
}

/// `plugindata.data` of an error.
pub fn error_text(e: &VrError) -> String {
    e.data().to_string()
}

impl Plugin for VideoRoom {
    type Handle = VrHandle;

    fn meta(&self) -> &'static PluginMeta {
        &META
    }

    fn check_section(&self, section: Option<&toml::Value>) -> Result<(), String> {
        Settings::from_section(section).map(|_| ())
    }

    fn start(&self, cx: &mut StartCx) -> Result<(), String> {
        let settings = Settings::from_section(cx.section)?;
        let mut start = StartRooms::default();
        for (id, config) in &settings.static_rooms {
            start.rooms.push((*id, config.clone(), false));
        }
        let stored = store::open(&settings.room_db)?;
        let mut round_trips = None;
        if let Some((db, rooms)) = stored {
            for (id, config) in rooms {
                if !start.rooms.iter().any(|(s, _, _)| *s == id) {
                    start.rooms.push((id, config, true));
                }
            }
            cx.services.insert(db);
            let owners =
                relay::Owners::start(&settings, &cx.config.ws_transport.ws_listen, cx.peers)?;
            tracing::info!(
                peer_url = owners.me(),
                "videoroom rooms shared with the cluster"
            );
            round_trips = Some(owners.round_trips());
            cx.services.insert(owners);
            // With proxy failover a room outlives its owner: the owner keeps its snapshot.
            if cx.config.cluster.enabled() {
                let live = crate::store::redis_hash::RedisHash::writer(
                    &settings.room_db,
                    takeover::LIVE_KEY,
                )
                .map_err(|e| format!("videoroom.room_db: {e}"))?;
                cx.services.insert(takeover::Live(live));
            }
        }
        tracing::info!(
            rooms = start.rooms.len(),
            room_db = %settings.room_db,
            "videoroom rooms at start"
        );
        let counts = std::sync::Arc::new(rooms::Counts::default());
        counts
            .rooms
            .store(start.rooms.len(), std::sync::atomic::Ordering::Relaxed);
        let gauge = |name, help, pick: fn(&rooms::Counts) -> usize| PluginGauge {
            name,
            help,
            read: {
                let c = counts.clone();
                Box::new(move || pick(&c) as i64)
            },
        };
        cx.gauges.extend([
            gauge("videoroom_rooms", "VideoRoom rooms", |c| {
                c.rooms.load(std::sync::atomic::Ordering::Relaxed)
            }),
            gauge(
                "videoroom_participants",
                "VideoRoom publisher-type participants, in all rooms",
                |c| c.participants.load(std::sync::atomic::Ordering::Relaxed),
            ),
            gauge(
                "videoroom_mirrors",
                "Feeds mirrored onto another backend for its subscribers (remote publishers)",
                |c| c.mirrors.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ]);
        if let Some(n) = round_trips {
            cx.gauges.push(PluginGauge {
                name: "videoroom_room_owner_round_trips",
                help: "Redis round trips requests waited for to find or take a room's owner proxy",
                read: Box::new(move || n.load(std::sync::atomic::Ordering::Relaxed) as i64),
            });
        }
        cx.services.insert(counts);
        cx.services.insert(start);
        cx.services.insert(settings);
        Ok(())
    }

    fn admin_routes(&self) -> Vec<PluginRoute> {
        admin::routes()
    }

    fn attach(&self, _ctx: HandleCtx) -> LocalFuture<Result<VrHandle, JanusError>> {
        Box::pin(async { Ok(VrHandle::default()) })
    }

    fn is_async(&self, msg: &PluginMessage) -> bool {
        match request_name(&body_of(msg)) {
            Some(r) => !SYNC_REQUESTS.contains(&r.as_str()),
            // Janus answers a body without `request` synchronously, with an error.
            None => false,
        }
    }

    fn message(&self, ctx: &HandleCtx, h: &Rc<VrHandle>, msg: PluginMessage) -> Option<String> {
        let body = body_of(&msg);
        let Some(request) = request_name(&body) else {
            let e = validate::check(&body, &[validate::req("request", validate::Ty::Str)])
                .err()
                .unwrap_or_else(|| VrError::new(error::INVALID_REQUEST, "Invalid request"));
            return Some(error_text(&e));
        };
        if SYNC_REQUESTS.contains(&request.as_str()) {
            let answer = msg.answer?;
            if matches!(*h.role.borrow(), Role::Relay(_)) {
                relay::sync(h, msg.body.get(), answer);
                return None;
            }
            requests::answer(ctx, request, body, answer);
            return None;
        }
        enqueue(
            ctx,
            h,
            Job {
                request,
                body,
                jsep: msg.jsep.map(|j| j.get().to_string()),
                transaction: msg.transaction.into(),
            },
        );
        None
    }

    fn trickle(&self, ctx: &HandleCtx, h: &Rc<VrHandle>, t: Trickle, respond: Respond) {
        let backend = h.backend.borrow().clone();
        match backend {
            Some(b) => b.trickle(&t, respond),
            None => {
                let max = ctx.host().config().limits.max_candidates_per_handle;
                let new = super::candidates::split(&t);
                respond(super::candidates::buffer(
                    &mut h.candidates.borrow_mut(),
                    new,
                    max,
                ));
            }
        }
    }

    fn hangup(&self, _ctx: &HandleCtx, h: &Rc<VrHandle>, respond: Respond) {
        let backend = h.backend.borrow().clone();
        match backend {
            Some(b) => b.hangup(respond),
            None => respond(Ok(())),
        }
    }

    fn detach(&self, ctx: &HandleCtx, h: Rc<VrHandle>) {
        participant::release(
            ctx.host(),
            &h,
            participant::loc(ctx),
            participant::End::Detach,
        );
    }

    /// Every handle in a room can be adopted, with its backend handle:
    /// - one relayed to the room's owner (another proxy): its backend handle is its handle
    ///   on the owner, in this shard's peer session there, which the owner keeps for its
    ///   `general.reclaim_session_timeout` when this proxy dies;
    /// - a publisher or subscriber of a room this proxy owns, with its part in the room
    ///   ([`takeover::Kept`]): the adopting proxy takes the room over ([`takeover`]).
    fn adoption(&self, ctx: &HandleCtx, h: &Rc<VrHandle>) -> Option<Adoptable> {
        let state = match &*h.role.borrow() {
            Role::Relay(url) => serde_json::json!({ "relay": url.as_ref() }).to_string(),
            Role::Publisher(p) => adoption_state(ctx, p.room, takeover::Part::Publisher(p.id))?,
            Role::Subscriber(s) => adoption_state(
                ctx,
                s.room,
                takeover::Part::Subscriber {
                    server: s.server.clone(),
                    held: s
                        .held
                        .borrow()
                        .iter()
                        .map(|(f, m)| (*f, m.clone()))
                        .collect(),
                },
            )?,
            Role::None => return None,
        };
        let b = h.backend.borrow().as_ref()?.adoption()?;
        Some(Adoptable {
            backend: Some(b),
            state: Some(state),
        })
    }

    /// A relayed handle of a dead proxy: the same relay around the claimed peer session.
    /// A participant handle of a dead owner: its place in the room, taken over here.
    fn adopt(
        &self,
        ctx: HandleCtx,
        b: Option<BackendHandle>,
        state: Option<String>,
    ) -> LocalFuture<Option<VrHandle>> {
        let state = state.unwrap_or_default();
        let relay = serde_json::from_str::<Value>(&state)
            .ok()
            .and_then(|v| v.get("relay").and_then(Value::as_str).map(str::to_string));
        let part = serde_json::from_str::<takeover::Kept>(&state).ok();
        Box::pin(async move {
            let adopted = match (relay, part, b.clone()) {
                (Some(url), _, Some(b)) if b.link.is_peer() => {
                    tracing::debug!(handle = ctx.handle_id, owner = %url, "videoroom relay adopted");
                    let h = VrHandle::default();
                    h.relay_session
                        .set(b.link.claimed_session().unwrap_or_default());
                    *h.role.borrow_mut() = Role::Relay(url.into());
                    *h.backend.borrow_mut() = Some(b);
                    Some(h)
                }
                (None, Some(kept), Some(b)) if !b.link.is_peer() => {
                    participant::adopt(&ctx, kept, b).await
                }
                _ => None,
            };
            if adopted.is_none() {
                if let Some(b) = b {
                    b.detach();
                }
            }
            adopted
        })
    }

    fn backend_lost(
        &self,
        ctx: &HandleCtx,
        h: &Rc<VrHandle>,
        from: BackendRef,
        reason: &str,
    ) -> bool {
        let ours = h.backend.borrow().as_ref().is_some_and(|b| from.is(b));
        if h.retired.borrow().as_ref().is_some_and(|b| from.is(b)) {
            h.retired.borrow_mut().take();
        }
        if !ours {
            return false;
        }
        tracing::info!(
            handle = ctx.handle_id,
            server = from.server,
            reason,
            "videoroom backend lost"
        );
        // A relay whose link to the room's owner dropped: the owner may be gone, its room
        // taken over by the proxy adopting its sessions; the relay follows it there.
        if matches!(*h.role.borrow(), Role::Relay(_)) && relay::may_rehome(ctx.host()) {
            relay::rehome(ctx, h, reason);
            return false;
        }
        participant::release(
            ctx.host(),
            h,
            participant::loc(ctx),
            participant::End::Detach,
        );
        true
    }

    fn backend_event(
        &self,
        ctx: &HandleCtx,
        h: &Rc<VrHandle>,
        from: BackendRef,
        msg: &RawObject,
        janus: &str,
    ) {
        if !h.backend.borrow().as_ref().is_some_and(|b| from.is(b)) {
            // A retired backend handle's core events (its `hangup`) still reach the client.
            let retired = h.retired.borrow().as_ref().is_some_and(|b| from.is(b));
            if retired && janus != "event" && janus != "detached" {
                ctx.push(crate::api::reply::relay(msg, janus, ctx.addr(), None));
            }
            return;
        }
        let role = h.role.borrow().clone();
        match role {
            // The owner's events, as its client sees them, with this proxy's ids.
            Role::Relay(_) => ctx.push(crate::api::reply::relay(msg, janus, ctx.addr(), None)),
            Role::Publisher(p) => publisher::backend_event(ctx, h, &p, msg, janus),
            Role::Subscriber(s) => subscriber::backend_event(ctx, h, &s, msg, janus),
            // Not joined yet (the join's answer is being awaited): core events only.
            Role::None => {
                if janus != "event" {
                    ctx.push(crate::api::reply::relay(msg, janus, ctx.addr(), None));
                }
            }
        }
    }
}

/// Queues an asynchronous request; one task per handle runs them in order and answers
/// each with an event carrying its transaction.
fn enqueue(ctx: &HandleCtx, h: &Rc<VrHandle>, job: Job) {
    let max = ctx.host().config().limits.max_queued_requests_per_handle;
    if h.jobs.borrow().len() >= max {
        let e = VrError::new(
            503,
            format!("Too many requests queued for this handle (max {max})"),
        );
        push_answer(ctx, &job.transaction, Err(e));
        return;
    }
    h.jobs.borrow_mut().push_back(job);
    if h.running.replace(true) {
        return;
    }
    let (ctx, h) = (ctx.clone(), h.clone());
    monoio::spawn(async move {
        loop {
            let next = h.jobs.borrow_mut().pop_front();
            let Some(job) = next else {
                h.running.set(false);
                return;
            };
            let transaction = job.transaction.clone();
            let outcome = run(&ctx, &h, job).await;
            if ctx.is_attached() {
                push_answer(&ctx, &transaction, outcome);
            }
        }
    });
}

fn push_answer(ctx: &HandleCtx, transaction: &str, outcome: Outcome) {
    let (data, jsep) = match outcome {
        Ok(None) => return,
        Ok(Some((data, jsep))) => (data.to_string(), jsep),
        Err(e) => (error_text(&e), None),
    };
    ctx.push(crate::api::reply::plugin_event(
        ctx.addr(),
        Some(transaction),
        PACKAGE,
        &data,
        jsep.as_deref(),
    ));
}

async fn run(ctx: &HandleCtx, h: &Rc<VrHandle>, job: Job) -> Outcome {
    let role = h.role.borrow().clone();
    match (job.request.as_str(), role) {
        (_, Role::Relay(_)) => relay::forward(ctx, h, job).await,
        ("join", Role::None) | ("joinandconfigure", Role::None) => {
            let room = job.body.get("room").and_then(Value::as_u64);
            if let Some(room) = room.filter(|r| *r > 0) {
                if let relay::Where::Proxy(url) = relay::owner_of(ctx.host(), room).await? {
                    return relay::join(ctx, h, url, job).await;
                }
            }
            participant::join(ctx, h, job).await
        }
        ("join" | "joinandconfigure", Role::Publisher(_)) => Err(VrError::new(
            error::ALREADY_JOINED,
            "Already in as a publisher on this handle",
        )),
        ("join" | "joinandconfigure", Role::Subscriber(_)) => Err(VrError::new(
            error::ALREADY_JOINED,
            "Already in as a subscriber on this handle",
        )),
        (_, Role::Publisher(p)) => publisher::request(ctx, h, p, job).await,
        (_, Role::Subscriber(s)) => subscriber::request(ctx, h, s, job).await,
        (
            "configure" | "publish" | "unpublish" | "leave" | "start" | "pause" | "switch"
            | "update" | "subscribe" | "unsubscribe",
            Role::None,
        ) => Err(VrError::new(
            error::JOIN_FIRST,
            "Invalid request on unconfigured participant",
        )),
        (other, Role::None) => Err(VrError::new(
            error::INVALID_REQUEST,
            format!("Unknown request '{other}'"),
        )),
    }
}

/// A participant handle's adoption state: `None` without rooms across proxies (nobody
/// could take its room over).
fn adoption_state(ctx: &HandleCtx, room: u64, part: takeover::Part) -> Option<String> {
    ctx.host().service::<takeover::Live>()?;
    let owner = relay::me(ctx.host())?;
    serde_json::to_string(&takeover::Kept { room, owner, part }).ok()
}

/// Sends the candidates trickled before `b` existed.
fn flush_candidates(h: &VrHandle, b: &BackendHandle) {
    let Some(list) = super::candidates::take_all(&mut h.candidates.borrow_mut()) else {
        return;
    };
    b.link.send(
        "trickle",
        Some(b.id),
        &[("candidates", &list)],
        true,
        Box::new(|_| {}),
    );
}

/// `plugindata.data` of a backend message.
pub fn event_data(msg: &RawObject) -> Option<Value> {
    let mut p: Value = serde_json::from_str(msg.get("plugindata")?.get()).ok()?;
    Some(p["data"].take())
}

/// Sends a `message` on `b` (in order with the handle's others) and returns the backend's
/// `plugindata.data` and JSEP.
///
/// # Errors
/// The backend's VideoRoom error, or the proxy's when it cannot be reached.
pub async fn send(
    b: &BackendHandle,
    body: &Value,
    jsep: Option<&str>,
) -> VrResult<(Value, Option<String>)> {
    let (tx, rx) = futures_channel::oneshot::channel();
    let body = body.to_string();
    let mut fields = vec![("body", body.as_str())];
    if let Some(j) = jsep {
        fields.push(("jsep", j));
    }
    b.send_in_order(
        &fields,
        Box::new(move |r| {
            let out = r.map(|m| {
                let data = event_data(m).unwrap_or(Value::Null);
                (data, m.get("jsep").map(|j| j.get().to_string()))
            });
            let _ = tx.send(out);
        }),
    );
    let (data, jsep) = rx.await.unwrap_or_else(|_| {
        Err(JanusError::new(
            crate::api::error::Code::BadGateway,
            "request dropped",
        ))
    })?;
    Ok((error::result_of(data)?, jsep))
}
