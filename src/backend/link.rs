//! One shard's link to one backend Janus: a WebSocket, one Janus session on it that all
//! of the shard's backend handles share, keepalives, transaction matching, and
//! reconnection with backoff.
//!
//! An adopting link ([`Role::claim`]) claims an existing backend session instead of
//! creating one: the session of a dead proxy, whose handles this proxy adopts. It is
//! never selected for new work, and gives up when Janus no longer has that session.
//!
//! A peer link ([`Role::peer`]) reaches another proxy of the cluster over its client
//! API, as a client would: it is never selected for new work and serves one connection
//! only (when it goes down its handles are lost and it retires; the next use makes a new
//! one), so that the death of that proxy ends what went through it. An adopting peer link
//! is both: it claims the session a dead proxy's peer link left
//! on that proxy.
//!
//! Lifecycle: `Connecting` → `Up` (socket open, `info` read, session created) → on any
//! failure `Down`, after which the supervisor retries with exponential backoff. A link
//! that is `Down` is not selectable, so new work goes to other servers at once.
//!
//! Backend messages are dispatched in the reading task, synchronously: a reply completes
//! the pending request whose transaction it carries; any other message with a `sender`
//! goes to the frontend handle that owns that backend handle (through the shard's sink).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use futures_channel::oneshot;
use tracing::{debug, info, warn};

use super::envelope::Envelope;
use super::server::ServerEntry;
use crate::api::error::{Code, JanusError};
use crate::api::json::{self, ObjectWriter, RawObject};
use crate::runtime::stats::ShardCounters;
use crate::transport::client;
use crate::transport::frame::Incoming;
use crate::transport::queue::{queue, QueueTx, SendError};
use crate::transport::ws::{self, Killer, Outbound, WsReader};

/// Backend messages can be large (videoroom lists, SDPs); this bounds a broken peer.
const MAX_BACKEND_MESSAGE: usize = 16 * 1024 * 1024;

/// Most bytes queued for a backend that does not read them; past this the backend is
/// treated as broken and its link is cut (and reconnected).
const MAX_BACKEND_QUEUE: usize = 64 * 1024 * 1024;

/// The frontend handle a backend handle belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleOwner {
    pub session_id: u64,
    pub handle_id: u64,
}

/// What a link reports to its shard.
pub enum LinkEvent<'a> {
    /// An unsolicited message from backend handle `handle` (plugin event or core event).
    Message {
        owner: HandleOwner,
        handle: u64,
        msg: &'a RawObject<'a>,
        janus: &'a str,
    },
    /// The backend detached its handle `handle` on its own.
    Detached { owner: HandleOwner, handle: u64 },
    /// The connection or the backend session is gone with all these handles
    /// (owner, backend handle).
    Lost {
        owners: Vec<(HandleOwner, u64)>,
        reason: &'a str,
    },
}

/// What a tapped backend handle hears (see [`Link::tap_handle`]).
pub enum TapEvent<'a> {
    /// An unsolicited message from the handle.
    Message {
        janus: &'a str,
        msg: &'a RawObject<'a>,
    },
    /// The handle is gone: detached by the backend, or the link went down.
    Gone,
}

/// A per-handle receiver of a backend handle's events, instead of the shard's sink.
pub type Tap = Box<dyn Fn(TapEvent<'_>)>;

/// Where a backend handle's events go.
#[derive(Clone)]
pub enum Route {
    /// To the shard, for the client handle that owns it.
    Client(HandleOwner),
    /// To its own receiver: a handle a plugin owns itself, or one that outlives its
    /// client handle's use of it.
    Tap(Rc<Tap>),
}

/// The shard-side receiver of link events. Must not block; must not call back into the
/// link synchronously in a way that re-enters dispatch (sending new requests is fine).
pub type Sink = Box<dyn Fn(&Link, LinkEvent<'_>)>;

/// Completion of a backend request: the reply, or the error that ended it.
pub type Done = Box<dyn FnOnce(Result<&RawObject<'_>, JanusError>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Up,
    Down { since: Instant, reason: String },
}

/// Timing and credentials, from `[backend]` and `general.api_secret`.
#[derive(Debug, Clone)]
pub struct LinkConf {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub api_secret: Option<String>,
    /// Deepest JSON nesting accepted from the backend (`limits.max_json_depth`).
    pub max_json_depth: usize,
}

struct Pending {
    deadline: Instant,
    /// `trickle`/`keepalive` complete on `ack`; everything else on the first non-ack.
    wants_ack: bool,
    done: Done,
}

/// The open connection of the current cycle.
struct Live {
    tx: QueueTx<Outbound>,
    killer: Killer,
    session_id: u64,
    generation: u64,
}

pub struct Link {
    pub server: Arc<ServerEntry>,
    counters: Arc<ShardCounters>,
    conf: LinkConf,
    state: RefCell<LinkState>,
    live: RefCell<Option<Live>>,
    generation: Cell<u64>,
    pending: RefCell<AHashMap<u64, Pending>>,
    /// Where each backend handle's events go.
    handles: RefCell<AHashMap<u64, Route>>,
    next_transaction: Cell<u64>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    sink: Sink,
    /// Set when the server was deleted and the link is no longer needed.
    retired: Cell<bool>,
    /// Whether the link ever went down: a link reconnecting after a failure is not worth
    /// waiting for, unlike one still making its first connection.
    failed_before: Cell<bool>,
    /// The backend session to `claim` instead of creating one (an adopting link).
    claim: Option<u64>,
    /// Janus refused the claim: the session is gone, there is nothing to reconnect to.
    claim_refused: Cell<bool>,
    /// One connection only (a peer link): retired when it goes down.
    once: bool,
}

/// What a link is for: which Janus session it uses, and what it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// Claim this existing session (left by a dead proxy) instead of creating one; the
    /// link stops for good when the other side answers that the session is gone.
    pub claim: Option<u64>,
    /// Another proxy's client API (see the module doc): one connection, then retired.
    pub peer: bool,
}

impl Role {
    /// A link to a Janus of the registry: creates its session, reconnects forever.
    pub const BACKEND: Role = Role {
        claim: None,
        peer: false,
    };
    /// A link to another proxy of the cluster.
    pub const PEER: Role = Role {
        claim: None,
        peer: true,
    };
}

impl Link {
    pub fn new(
        server: Arc<ServerEntry>,
        conf: LinkConf,
        counters: Arc<ShardCounters>,
        sink: Sink,
        role: Role,
    ) -> Rc<Link> {
        let Role { claim, peer: once } = role;
        Rc::new(Link {
            server,
            counters,
            conf,
            state: RefCell::new(LinkState::Connecting),
            live: RefCell::new(None),
            generation: Cell::new(0),
            pending: RefCell::new(AHashMap::new()),
            handles: RefCell::new(AHashMap::new()),
            next_transaction: Cell::new(fastrand::u64(1..1 << 40)),
            waiters: RefCell::new(Vec::new()),
            sink,
            retired: Cell::new(false),
            failed_before: Cell::new(false),
            claim,
            claim_refused: Cell::new(false),
            once,
        })
    }

    /// The Janus session id of the current connection (0 while not connected).
    pub fn session_id(&self) -> u64 {
        self.live.borrow().as_ref().map_or(0, |l| l.session_id)
    }

    /// Whether the link reaches another proxy's client API (see [`Role::peer`]).
    pub fn is_peer(&self) -> bool {
        self.once
    }

    /// The backend session an adopting link claims.
    pub fn claimed_session(&self) -> Option<u64> {
        self.claim
    }

    /// Whether the link stopped for good (retired, or its claimed session is gone).
    pub fn is_retired(&self) -> bool {
        self.retired.get()
    }

    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    pub fn is_up(&self) -> bool {
        *self.state.borrow() == LinkState::Up
    }

    pub fn is_down(&self) -> bool {
        matches!(*self.state.borrow(), LinkState::Down { .. })
    }

    /// Still making its first connection (at proxy start or just registered).
    pub fn is_first_connecting(&self) -> bool {
        *self.state.borrow() == LinkState::Connecting && !self.failed_before.get()
    }

    /// Number of backend handles of this shard on this server.
    pub fn handle_count(&self) -> usize {
        self.handles.borrow().len()
    }

    /// Waits until the link is `Up`.
    ///
    /// # Errors
    /// 503 when the link is down or does not come up within the connect timeout.
    pub async fn ready(&self) -> Result<(), JanusError> {
        loop {
            match &*self.state.borrow() {
                LinkState::Up => return Ok(()),
                LinkState::Down { reason, .. } => return Err(self.unavailable(reason)),
                LinkState::Connecting => {}
            }
            let (tx, rx) = oneshot::channel();
            self.waiters.borrow_mut().push(tx);
            if monoio::time::timeout(self.conf.connect_timeout, rx)
                .await
                .is_err()
            {
                return Err(self.unavailable("connect timeout"));
            }
        }
    }

    fn unavailable(&self, reason: &str) -> JanusError {
        JanusError::new(
            Code::ServiceUnavailable,
            format!("Backend server {} unavailable: {reason}", self.server.name),
        )
    }

    /// Routes the events of a newly attached backend handle.
    pub fn register_handle(&self, backend_handle: u64, route: Route) {
        self.handles.borrow_mut().insert(backend_handle, route);
        self.server
            .proxy_handles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sends the events of a registered backend handle to `tap` from now on (the handle
    /// outlives its client handle's use of it, e.g. while a plugin winds it down).
    pub fn tap_handle(&self, backend_handle: u64, tap: Tap) {
        if let Some(route) = self.handles.borrow_mut().get_mut(&backend_handle) {
            *route = Route::Tap(Rc::new(tap));
        }
    }

    /// Forgets a backend handle; true if it was known (it is then no longer relayed).
    pub fn unregister_handle(&self, backend_handle: u64) -> bool {
        let route = self.handles.borrow_mut().remove(&backend_handle);
        let known = route.is_some();
        // Dropped outside the borrow: a tap may hold what wakes other tasks.
        drop(route);
        if known {
            self.server
                .proxy_handles
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        known
    }

    /// Sends a request on the backend session and arranges for `done` to run with the
    /// reply. `fields` are extra raw JSON fields (`body`, `jsep`, `candidate`, `plugin`).
    /// `done` may run before this returns (link not up); callers must not hold borrows
    /// that `done` needs.
    pub fn send(
        &self,
        verb: &str,
        handle: Option<u64>,
        fields: &[(&str, &str)],
        wants_ack: bool,
        done: Done,
    ) {
        if !self.is_up() {
            let reason = match &*self.state.borrow() {
                LinkState::Down { reason, .. } => reason.clone(),
                _ => "not connected".to_string(),
            };
            return done(Err(self.unavailable(&reason)));
        }
        self.send_any_state(verb, handle, fields, wants_ack, done);
    }

    fn send_any_state(
        &self,
        verb: &str,
        handle: Option<u64>,
        fields: &[(&str, &str)],
        wants_ack: bool,
        done: Done,
    ) {
        let guard = self.live.borrow();
        let Some(live) = guard.as_ref() else {
            drop(guard);
            return done(Err(self.unavailable("not connected")));
        };
        let txn = self.next_transaction.get();
        self.next_transaction.set(txn + 1);
        let mut w = ObjectWriter::with_capacity(
            96 + fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>(),
        );
        w.str("janus", verb);
        if live.session_id != 0 {
            w.u64("session_id", live.session_id);
        }
        if let Some(h) = handle {
            w.u64("handle_id", h);
        }
        w.str("transaction", &txn.to_string());
        if let Some(secret) = &self.conf.api_secret {
            w.str("apisecret", secret);
        }
        for (k, v) in fields {
            w.raw(k, v);
        }
        self.pending.borrow_mut().insert(
            txn,
            Pending {
                deadline: Instant::now() + self.conf.request_timeout,
                wants_ack,
                done,
            },
        );
        ShardCounters::bump(&self.counters.backend_out);
        match live.tx.send(Outbound::Text(w.finish())) {
            Ok(()) => {}
            Err(SendError::Closed) => {
                drop(guard);
                self.complete(txn, Err(self.unavailable("connection closing")));
            }
            Err(SendError::Full) => {
                let generation = live.generation;
                drop(guard);
                warn!(server = %self.server.name, "backend does not read its requests; cutting the link");
                self.complete(txn, Err(self.unavailable("backend not reading")));
                self.kill(generation);
            }
        }
    }

    /// [`Link::send`] as a future: `extract` turns the reply into what the caller keeps.
    ///
    /// # Errors
    /// The backend's error reply, 503 when the link is not up, 504 on timeout.
    pub async fn call<T: 'static>(
        &self,
        verb: &str,
        handle: Option<u64>,
        fields: &[(&str, &str)],
        wants_ack: bool,
        extract: impl FnOnce(&RawObject) -> Result<T, JanusError> + 'static,
    ) -> Result<T, JanusError> {
        let (tx, rx) = oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r.and_then(extract));
        });
        // Also used while `Connecting`, for the session set-up itself.
        self.send_any_state(verb, handle, fields, wants_ack, done);
        rx.await
            .unwrap_or_else(|_| Err(self.unavailable("request dropped")))
    }

    fn complete(&self, txn: u64, result: Result<&RawObject, JanusError>) {
        let p = self.pending.borrow_mut().remove(&txn);
        if let Some(p) = p {
            (p.done)(result);
        }
    }

    /// Closes the link for good (its server was deleted and no handle uses it).
    pub fn retire(&self) {
        self.retired.set(true);
        self.kill(self.generation.get());
    }

    /// Runs the link until retired: connect, serve, and reconnect with backoff.
    pub async fn supervise(self: Rc<Self>) {
        let mut backoff = self.conf.reconnect_min;
        while !self.retired.get() {
            *self.state.borrow_mut() = LinkState::Connecting;
            let reason = match self.cycle().await {
                Ok(reason) => {
                    backoff = self.conf.reconnect_min;
                    warn!(server = %self.server.name, %reason, "backend connection lost");
                    reason
                }
                Err(reason) => {
                    debug!(server = %self.server.name, %reason, "backend connect failed");
                    reason
                }
            };
            self.go_down(&reason);
            if self.claim_refused.get() {
                warn!(server = %self.server.name, session = ?self.claim, "adopted backend session is gone");
                self.retired.set(true);
                break;
            }
            if self.once {
                self.retired.set(true);
                break;
            }
            self.wait_backoff(backoff).await;
            backoff = (backoff * 2).min(self.conf.reconnect_max);
        }
    }

    /// Sleeps `backoff`, or less if the server reports a restart or recovery meanwhile.
    async fn wait_backoff(&self, backoff: Duration) {
        let kicks = self.server.kicks.load(std::sync::atomic::Ordering::Relaxed);
        let until = Instant::now() + backoff;
        let step = Duration::from_millis(100);
        while Instant::now() < until && !self.retired.get() {
            monoio::time::sleep(step.min(until - Instant::now())).await;
            if self.server.kicks.load(std::sync::atomic::Ordering::Relaxed) != kicks {
                return;
            }
        }
    }

    /// One connection: returns why it ended (`Ok`) or why it never came up (`Err`).
    async fn cycle(self: &Rc<Self>) -> Result<String, String> {
        let (stream, leftover) =
            monoio::time::timeout(self.conf.connect_timeout, client::connect(&self.server.ws))
                .await
                .map_err(|_| "connect timeout".to_string())?
                .map_err(|e| e.to_string())?;
        let killer = Killer::new(&stream);
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let (r, w) = monoio::io::Splitable::into_split(stream);
        let (tx, rx) = queue(MAX_BACKEND_QUEUE);
        *self.live.borrow_mut() = Some(Live {
            tx,
            killer,
            session_id: 0,
            generation,
        });
        monoio::spawn(ws::write_loop(w, rx, true, |t| t));
        let (end_tx, end_rx) = oneshot::channel::<String>();
        let me = self.clone();
        monoio::spawn(async move {
            let reason = me
                .read_loop(WsReader::new(r, MAX_BACKEND_MESSAGE, &leftover))
                .await;
            let _ = end_tx.send(reason);
        });
        let setup = monoio::time::timeout(self.conf.connect_timeout, self.open_session()).await;
        let keepalive = match setup {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                killer.kill();
                let _ = end_rx.await;
                return Err(format!("session setup failed: {e}"));
            }
            Err(_) => {
                killer.kill();
                let _ = end_rx.await;
                return Err("session setup timed out".into());
            }
        };
        if self.retired.get() {
            killer.kill();
            let _ = end_rx.await;
            return Err("retired".into());
        }
        *self.state.borrow_mut() = LinkState::Up;
        self.server
            .links_up
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!(server = %self.server.name, url = %self.server.url, "backend up");
        for w in self.waiters.borrow_mut().drain(..) {
            let _ = w.send(());
        }
        monoio::spawn(self.clone().keepalive_loop(generation, keepalive));
        monoio::spawn(self.clone().expire_loop(generation));
        Ok(end_rx.await.unwrap_or_else(|_| "reader ended".into()))
    }

    /// `info` for the session timeout, then `create`. Returns the keepalive interval.
    async fn open_session(&self) -> Result<Duration, JanusError> {
        let timeout = self
            .call("info", None, &[], false, |m| {
                Ok(m.get("session-timeout")
                    .and_then(|v| v.get().parse::<u64>().ok())
                    .unwrap_or(30))
            })
            .await?;
        if let Some(session_id) = self.claim {
            if let Some(l) = self.live.borrow_mut().as_mut() {
                l.session_id = session_id;
            }
            if let Err(e) = self.call("claim", None, &[], false, |_| Ok(())).await {
                if e.code == Code::SessionNotFound as u16 {
                    self.claim_refused.set(true);
                }
                return Err(e);
            }
        } else {
            let session_id = self.call("create", None, &[], false, data_id).await?;
            if let Some(l) = self.live.borrow_mut().as_mut() {
                l.session_id = session_id;
            }
        }
        // Janus expires a session after `timeout` s of silence: ping three times as often.
        Ok(Duration::from_secs(if timeout == 0 {
            10
        } else {
            (timeout / 3).max(1)
        }))
    }

    async fn keepalive_loop(self: Rc<Self>, generation: u64, every: Duration) {
        loop {
            monoio::time::sleep(every).await;
            if self.generation.get() != generation || !self.is_up() {
                return;
            }
            if let Err(e) = self.call("keepalive", None, &[], true, |_| Ok(())).await {
                if self.generation.get() == generation {
                    warn!(server = %self.server.name, error = %e, "backend keepalive failed");
                    self.kill(generation);
                }
                return;
            }
        }
    }

    /// Answers requests whose reply is overdue with 504.
    async fn expire_loop(self: Rc<Self>, generation: u64) {
        let tick = Duration::from_millis(250).min(self.conf.request_timeout);
        while self.generation.get() == generation && self.live.borrow().is_some() {
            monoio::time::sleep(tick).await;
            let now = Instant::now();
            let overdue: Vec<u64> = self
                .pending
                .borrow()
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(t, _)| *t)
                .collect();
            for t in overdue {
                self.complete(
                    t,
                    Err(JanusError::new(
                        Code::GatewayTimeout,
                        format!("Backend server {} did not answer in time", self.server.name),
                    )),
                );
            }
        }
    }

    fn kill(&self, generation: u64) {
        if let Some(l) = self.live.borrow().as_ref() {
            if l.generation == generation {
                l.killer.kill();
            }
        }
    }

    /// Marks the link down, fails what is pending and tells the shard which handles died.
    fn go_down(&self, reason: &str) {
        self.failed_before.set(true);
        if self.is_up() {
            self.server
                .links_up
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        *self.state.borrow_mut() = LinkState::Down {
            since: Instant::now(),
            reason: reason.to_string(),
        };
        self.live.borrow_mut().take();
        self.waiters.borrow_mut().clear();
        let pending: Vec<Pending> = self.pending.borrow_mut().drain().map(|(_, p)| p).collect();
        for p in pending {
            (p.done)(Err(self.unavailable(reason)));
        }
        let all: Vec<(u64, Route)> = self.handles.borrow_mut().drain().collect();
        self.server
            .proxy_handles
            .fetch_sub(all.len() as i64, std::sync::atomic::Ordering::Relaxed);
        let mut owners = Vec::new();
        for (handle, route) in all {
            match route {
                Route::Client(owner) => owners.push((owner, handle)),
                Route::Tap(tap) => tap(TapEvent::Gone),
            }
        }
        if !owners.is_empty() {
            (self.sink)(self, LinkEvent::Lost { owners, reason });
        }
    }

    async fn read_loop(&self, mut reader: WsReader) -> String {
        loop {
            match reader.next().await {
                Ok(Some(Incoming::Text(t))) => match String::from_utf8(t) {
                    Ok(text) => self.dispatch(&text),
                    Err(_) => warn!(server = %self.server.name, "backend sent invalid UTF-8"),
                },
                Ok(Some(Incoming::Ping(p))) => {
                    if let Some(l) = self.live.borrow().as_ref() {
                        let _ = l.tx.send(Outbound::Pong(p));
                    }
                }
                Ok(Some(Incoming::Close(_))) => return "backend closed the WebSocket".into(),
                Ok(Some(Incoming::TooBig(n))) => {
                    warn!(server = %self.server.name, bytes = n, "backend message too large, dropped")
                }
                Ok(Some(_)) => {}
                Ok(None) => return "backend closed the connection".into(),
                Err(e) => return format!("backend connection error: {e}"),
            }
        }
    }

    /// Routes one backend message (spec 02 §7.3).
    fn dispatch(&self, text: &str) {
        ShardCounters::bump(&self.counters.backend_in);
        let Envelope {
            msg,
            janus,
            transaction,
            sender,
        } = match Envelope::parse(text, self.conf.max_json_depth) {
            Ok(e) => e,
            Err(e) => {
                warn!(server = %self.server.name, error = %e, "backend message dropped");
                return;
            }
        };
        if let Some(txn) = transaction {
            let wants_ack = self.pending.borrow().get(&txn).map(|p| p.wants_ack);
            match (wants_ack, janus.as_ref()) {
                (Some(false), "ack") => return,
                (Some(_), "error") => {
                    return self.complete(txn, Err(backend_error(&msg)));
                }
                (Some(_), _) => return self.complete(txn, Ok(&msg)),
                // No request waits for it: a late event, handled below by `sender`.
                (None, _) => {}
            }
        }
        match (janus.as_ref(), sender) {
            ("timeout", _) => {
                warn!(server = %self.server.name, "backend session timed out");
                self.kill(self.generation.get());
            }
            ("detached", Some(h)) => {
                let route = self.handles.borrow().get(&h).cloned();
                if let Some(route) = route {
                    self.unregister_handle(h);
                    match route {
                        Route::Tap(tap) => tap(TapEvent::Gone),
                        Route::Client(owner) => {
                            (self.sink)(self, LinkEvent::Detached { owner, handle: h })
                        }
                    }
                }
            }
            ("ack", _) => {}
            (j, Some(h)) => {
                let route = self.handles.borrow().get(&h).cloned();
                match route {
                    Some(Route::Tap(tap)) => tap(TapEvent::Message {
                        janus: j,
                        msg: &msg,
                    }),
                    Some(Route::Client(owner)) => (self.sink)(
                        self,
                        LinkEvent::Message {
                            owner,
                            handle: h,
                            msg: &msg,
                            janus: j,
                        },
                    ),
                    None => {
                        debug!(server = %self.server.name, handle = h, janus = j, "message for unknown backend handle")
                    }
                }
            }
            (j, None) => {
                debug!(server = %self.server.name, janus = j, "unroutable backend message")
            }
        }
    }
}

/// `data.id` of a `success` reply (`create`, `attach`).
pub fn data_id(m: &RawObject) -> Result<u64, JanusError> {
    m.get("data")
        .and_then(|d| RawObject::parse(d.get()).ok())
        .and_then(|d| d.get("id").and_then(|v| v.get().parse::<u64>().ok()))
        .ok_or_else(|| JanusError::new(Code::BadGateway, "Invalid backend reply (no data.id)"))
}

/// The code and reason of a backend `error` reply.
pub fn backend_error(m: &RawObject) -> JanusError {
    let e = m.get("error").and_then(|e| RawObject::parse(e.get()).ok());
    let code = e
        .as_ref()
        .and_then(|e| e.get("code"))
        .and_then(|c| c.get().parse::<u16>().ok())
        .unwrap_or(Code::BadGateway as u16);
    let reason = e
        .as_ref()
        .and_then(|e| e.get("reason"))
        .and_then(json::as_str)
        // An empty reason tells the client nothing: it gets the default too.
        .filter(|r| !r.is_empty())
        .map_or_else(|| "Backend error".to_string(), |r| r.into_owned());
    JanusError::from_backend(code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_data_id_and_errors() {
        let m =
            RawObject::parse(r#"{"janus":"success","transaction":"1","data":{"id":99}}"#).unwrap();
        assert_eq!(data_id(&m).unwrap(), 99);
        let m = RawObject::parse(r#"{"janus":"success"}"#).unwrap();
        assert_eq!(data_id(&m).unwrap_err().code, 502);
        // found by the backend_message fuzzer: an empty reason gets the default
        let m = RawObject::parse(r#"{"janus":"error","error":{"code":458,"reason":""}}"#).unwrap();
        let e = backend_error(&m);
        assert_eq!((e.code, e.reason.as_str()), (458, "Backend error"));
        let m = RawObject::parse(
            r#"{"janus":"error","error":{"code":459,"reason":"No such handle 1 in session 2"}}"#,
        )
        .unwrap();
        let e = backend_error(&m);
        assert_eq!(
            (e.code, e.reason.as_str()),
            (459, "No such handle 1 in session 2")
        );
    }
}
