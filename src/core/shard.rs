//! The proxy's state on one shard: the client connections it accepted, the sessions whose
//! id hashes to it, its links to every backend, and its plugins' shard-local slots.
//! Shards share nothing mutable but atomics; they reach each other through [`ShardMsg`]
//! mailboxes. The thread, runtime and mailboxes themselves are `runtime`'s; the
//! connection tasks are `transport`'s, which report here through [`Handler`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use tracing::{error, warn};

use super::cluster::Cluster;
use super::host::{HandleCtx, Host, Peers};
use super::metrics::Metrics;
use super::plugin::{self, AnyPlugin, Services};
use super::session::{ConnRef, Sessions};
use super::{dispatch, events, http_api};
use crate::api::error::{Code, JanusError};
use crate::api::json::ObjectWriter;
use crate::api::reply;
use crate::backend::link::{Link, LinkConf, Role, Sink};
use crate::backend::server::ServerEntry;
use crate::backend::Backends;
use crate::config::Config;
use crate::runtime::jump_hash::jump_hash;
use crate::runtime::mailbox::{mailbox, Mailbox, MailboxSender};
use crate::runtime::slots::Slots;
use crate::runtime::stats::ShardCounters;
use crate::transport::conn::{Conn, Cut};
use crate::transport::http::{ApiRequest, ApiResponse};
use crate::transport::server::{self, ConnOptions, Door, Handler, Refused};

/// Messages between shards.
pub enum ShardMsg {
    /// A request for a session this shard owns, from a connection of another shard.
    Request { text: String, from: ConnRef },
    /// A frame for one of this shard's connections.
    Deliver { conn: u64, frame: Vec<u8> },
    /// A request forwarded from this shard's connection `conn` was handled.
    Done { conn: u64 },
    /// The number of sessions this shard's connection `conn` owns changed by `delta`
    /// (a session of it was created, claimed, claimed away or destroyed elsewhere).
    SessionsDelta { conn: u64, delta: i32 },
    /// A client connection closed; its sessions here are orphaned or destroyed.
    ConnClosed { conn: ConnRef },
    /// A backend server was registered: open a link to it.
    AddServer(Arc<ServerEntry>),
    /// The proxy is stopping: destroy the backend sessions, then say so.
    ReleaseBackends(crossbeam_channel::Sender<()>),
    /// Plugin work for this shard (its slot here, its handles of this shard's sessions),
    /// from another shard or thread. It gets the plugin's narrow view, never the shard.
    Run(Work),
    /// An HTTP long poll for a session this shard owns.
    HttpPoll(http_api::Poll),
}

/// Plugin work sent to a shard: runs there, with that shard's [`Host`].
pub type Work = Box<dyn FnOnce(&Host) + Send>;

/// A client connection of this shard: the transport's handle on it, and the Janus-level
/// bookkeeping of the requests it sends and the sessions it owns.
pub struct ConnEntry {
    pub conn: Rc<Conn>,
    /// Requests forwarded to other shards and not yet done.
    pub inflight: Cell<u32>,
    /// Requests waiting for those, in arrival order.
    pub queued: RefCell<std::collections::VecDeque<String>>,
    /// Bytes of `queued` (bounded by `limits.max_queued_bytes_per_connection`).
    pub queued_bytes: Cell<usize>,
    /// Sessions this connection owns, on every shard (kept here by `SessionsDelta`).
    pub sessions: Cell<u32>,
    /// Since when the connection has owned no session; `None` while it owns one.
    pub sessionless_since: Cell<Option<Instant>>,
}

impl ConnEntry {
    /// The one-answer connection of an HTTP request (it never owns a session).
    pub fn for_request(conn: Rc<Conn>) -> ConnEntry {
        let e = ConnEntry::new(conn);
        e.sessionless_since.set(None);
        e
    }

    fn new(conn: Rc<Conn>) -> ConnEntry {
        ConnEntry {
            conn,
            inflight: Cell::new(0),
            queued: RefCell::default(),
            queued_bytes: Cell::new(0),
            sessions: Cell::new(0),
            sessionless_since: Cell::new(Some(Instant::now())),
        }
    }
}

/// What every shard gets from `main`.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub servers: Arc<Vec<Arc<ServerEntry>>>,
    pub peers: Peers,
    pub rr_counter: Arc<AtomicUsize>,
    pub metrics: Arc<Metrics>,
    /// Client connections open proxy-wide.
    pub open_conns: Arc<AtomicUsize>,
    /// Sessions with an HTTP event queue, proxy-wide (`http_transport.max_sessions`).
    pub http_sessions: Arc<AtomicUsize>,
    /// The enabled plugins.
    pub plugins: Arc<Vec<&'static dyn AnyPlugin>>,
    /// What the plugins set up at start.
    pub services: Arc<Services>,
    /// Proxy failover (`[cluster] session_db`), when enabled.
    pub cluster: Option<Arc<Cluster>>,
    /// Set when the proxy drains (SIGTERM with `[cluster]`): listeners refuse newcomers.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub config: Arc<Config>,
    pub peers: Peers,
    pub conns: RefCell<AHashMap<u64, ConnEntry>>,
    next_conn: Cell<u64>,
    next_poll: Cell<u64>,
    pub sessions: RefCell<Sessions>,
    /// The plugins' shard-local state.
    pub slots: Slots,
    /// The plugins' process-wide services.
    pub services: Arc<Services>,
    pub backends: Backends,
    pub metrics: Arc<Metrics>,
    /// This shard's own per-message counters.
    pub counters: Arc<ShardCounters>,
    /// Client connections open proxy-wide (`limits.max_connections`).
    pub open_conns: Arc<AtomicUsize>,
    /// Sessions with an HTTP event queue, proxy-wide (`http_transport.max_sessions`).
    pub http_sessions: Arc<AtomicUsize>,
    /// Proxy failover (`[cluster] session_db`), when enabled.
    pub cluster: Option<Arc<Cluster>>,
    link_conf: LinkConf,
    plugins: Arc<Vec<&'static dyn AnyPlugin>>,
    /// `server_info` after the transaction, built once.
    info_tail: String,
}

impl Shard {
    fn new(id: usize, shared: &Shared) -> Rc<Shard> {
        let cfg = shared.config.clone();
        let conf = LinkConf {
            request_timeout: Duration::from_secs(cfg.backend.request_timeout),
            connect_timeout: Duration::from_secs(cfg.backend.connect_timeout),
            reconnect_min: Duration::from_millis(cfg.backend.reconnect_min_ms),
            reconnect_max: Duration::from_millis(cfg.backend.reconnect_max_ms),
            api_secret: (!cfg.general.api_secret.is_empty())
                .then(|| cfg.general.api_secret.clone()),
            max_json_depth: cfg.limits.max_json_depth,
        };
        let algorithm = cfg.general.server_select();
        let shard = Rc::new(Shard {
            id,
            count: shared.peers.count(),
            info_tail: server_info_tail(&cfg, &shared.plugins),
            config: cfg,
            peers: shared.peers.clone(),
            conns: RefCell::new(AHashMap::new()),
            next_conn: Cell::new(1),
            next_poll: Cell::new(1),
            sessions: RefCell::new(Sessions::default()),
            slots: Slots::default(),
            services: shared.services.clone(),
            backends: Backends::new(algorithm, shared.rr_counter.clone()),
            counters: shared.metrics.shards.get(id).cloned().unwrap_or_default(),
            open_conns: shared.open_conns.clone(),
            http_sessions: shared.http_sessions.clone(),
            metrics: shared.metrics.clone(),
            cluster: shared.cluster.clone(),
            link_conf: conf,
            plugins: shared.plugins.clone(),
        });
        for s in shared.servers.iter() {
            shard.add_server(s.clone());
        }
        shard
    }

    /// Where a link of this shard hands its events (weak: links live in the shard).
    fn link_sink(self: &Rc<Self>) -> Sink {
        let me = Rc::downgrade(self);
        Box::new(move |link, ev| {
            if let Some(shard) = me.upgrade() {
                events::on_link_event(&shard, link, ev);
            }
        })
    }

    /// Makes a link of this shard and starts supervising it.
    fn start_link(self: &Rc<Self>, server: Arc<ServerEntry>, role: Role) -> Rc<Link> {
        let link = Link::new(
            server,
            self.link_conf.clone(),
            self.counters.clone(),
            self.link_sink(),
            role,
        );
        monoio::spawn(link.clone().supervise());
        link
    }

    /// Opens a link to a newly registered server and starts supervising it.
    pub fn add_server(self: &Rc<Self>, server: Arc<ServerEntry>) {
        let link = self.start_link(server, Role::BACKEND);
        self.backends.add(link);
    }

    /// A link that claims backend session `session` of `server`, left by a dead proxy
    /// (see `cluster`); supervised like the others, never selected for new work.
    pub fn adopting_link(self: &Rc<Self>, server: Arc<ServerEntry>, session: u64) -> Rc<Link> {
        let role = Role {
            claim: Some(session),
            peer: false,
        };
        self.start_link(server, role)
    }

    /// A peer link that claims client session `session` of the proxy at `url`, the peer
    /// session a dead proxy left there (see `cluster`); never selected, one connection.
    pub fn adopting_peer_link(self: &Rc<Self>, url: &str, session: u64) -> Option<Rc<Link>> {
        let role = Role {
            claim: Some(session),
            peer: true,
        };
        Some(self.start_link(Arc::new(ServerEntry::peer(url)?), role))
    }

    /// This shard's link to the other proxy of the cluster at `url` (its client API), made
    /// on first use; `None` for a URL that is not `ws://host:port[/path]`.
    pub fn peer_link(self: &Rc<Self>, url: &str) -> Option<Rc<Link>> {
        if let Some(l) = self.backends.peer(url) {
            return Some(l);
        }
        let link = self.start_link(Arc::new(ServerEntry::peer(url)?), Role::PEER);
        self.backends.add_peer(link.clone());
        Some(link)
    }

    /// The shard owning session `id`.
    pub fn owner_of(&self, id: u64) -> usize {
        jump_hash(id, self.count)
    }

    pub fn plugin(&self, package: &str) -> Option<&'static dyn AnyPlugin> {
        self.plugins
            .iter()
            .copied()
            .find(|p| p.meta().package == package)
    }

    /// This shard's connection `id` as the whole proxy names it.
    fn conn_ref(&self, id: u64) -> ConnRef {
        ConnRef {
            shard: self.id as u16,
            id,
        }
    }

    pub fn new_conn_id(&self) -> ConnRef {
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        ConnRef {
            shard: self.id as u16,
            id,
        }
    }

    /// A fresh connection id for one HTTP request's answer.
    pub fn new_http_request_ref(&self) -> ConnRef {
        let mut r = self.new_conn_id();
        r.id |= super::session::HTTP_REQUEST;
        r
    }

    /// A fresh id for a long poll waiting on this shard.
    pub fn next_poll_id(&self) -> u64 {
        let id = self.next_poll.get();
        self.next_poll.set(id + 1);
        id
    }

    pub fn forward(&self, shard: usize, msg: ShardMsg) {
        if !self.peers.send(shard, msg) {
            warn!(shard, "peer shard mailbox closed");
        }
    }

    /// Answers a request with a Janus error (and counts it).
    pub fn reply_error(
        &self,
        conn: ConnRef,
        session_id: u64,
        transaction: Option<&str>,
        err: &JanusError,
    ) {
        self.metrics.error(err.code);
        self.deliver(conn, reply::error(session_id, transaction, err));
    }

    /// Sends a frame to a client connection on any shard. Frames for connections that
    /// are gone are dropped.
    pub fn deliver(&self, conn: ConnRef, frame: Vec<u8>) {
        if conn.shard as usize == self.id {
            self.send_local(conn.id, frame);
        } else {
            self.forward(
                conn.shard as usize,
                ShardMsg::Deliver {
                    conn: conn.id,
                    frame,
                },
            );
        }
    }

    fn send_local(&self, conn: u64, frame: Vec<u8>) {
        if let Some(c) = self.conns.borrow().get(&conn) {
            ShardCounters::bump(&self.counters.client_out);
            c.conn.send_text(frame);
        }
    }

    /// Records that connection `conn` (of any shard) owns `delta` more sessions.
    pub fn sessions_changed(&self, conn: ConnRef, delta: i32) {
        if conn.shard as usize == self.id {
            self.apply_sessions_delta(conn.id, delta);
        } else {
            self.forward(
                conn.shard as usize,
                ShardMsg::SessionsDelta {
                    conn: conn.id,
                    delta,
                },
            );
        }
    }

    fn apply_sessions_delta(&self, conn: u64, delta: i32) {
        if let Some(c) = self.conns.borrow().get(&conn) {
            let n = (c.sessions.get() as i64 + delta as i64).max(0) as u32;
            c.sessions.set(n);
            c.sessionless_since
                .set((n == 0).then(|| c.sessionless_since.get().unwrap_or_else(Instant::now)));
        }
    }

    /// Sessions owned by this shard's connection `conn`, on every shard.
    pub fn sessions_of(&self, conn: u64) -> u32 {
        self.conns
            .borrow()
            .get(&conn)
            .map_or(0, |c| c.sessions.get())
    }

    /// The once-a-second look at this shard's connections: the transport's ping/pong check
    /// (`ws_transport.pingpong_trigger`), and a cut for those that have held no session for
    /// `limits.no_session_timeout`.
    pub fn sweep_connections(&self, now: Instant) {
        let ws = &self.config.ws_transport;
        let trigger = Duration::from_secs(ws.pingpong_trigger);
        let pong_timeout = Duration::from_secs(ws.pingpong_timeout);
        let no_session = Duration::from_secs(self.config.limits.no_session_timeout);
        for c in self.conns.borrow().values() {
            if c.conn.is_reply() {
                continue;
            }
            let sessionless = c.inflight.get() == 0
                && c.sessionless_since
                    .get()
                    .is_some_and(|since| now.duration_since(since) >= no_session);
            if !no_session.is_zero() && sessionless {
                c.conn.cut(Cut::NoSession);
            } else {
                c.conn.check_alive(now, trigger, pong_timeout);
            }
        }
    }

    /// Sends a frame to the connection that owns a session, or to its HTTP event queue
    /// (nothing while orphaned).
    pub fn push_to_session(&self, session_id: u64, frame: Vec<u8>) {
        let (owner, http) = match self.sessions.borrow().get(session_id) {
            Some(s) => (s.owner, s.http.is_some()),
            None => return,
        };
        if let Some(conn) = owner {
            self.deliver(conn, frame);
        } else if http {
            http_api::push(self, session_id, frame);
        }
    }

    /// Removes a session and releases its handles (no events to the client, as Janus).
    pub fn destroy_session(self: &Rc<Self>, id: u64) {
        let Some(session) = self.sessions.borrow_mut().remove(id) else {
            return;
        };
        if let Some(owner) = session.owner {
            self.sessions_changed(owner, -1);
        }
        self.metrics.sessions.dec();
        self.metrics.handles.dec_by(session.handles.len() as i64);
        super::cluster::session_destroyed(self, id);
        for (hid, h) in session.handles {
            let ctx = HandleCtx::new(self, id, hid, h.opaque_id);
            h.plugin.detach(&ctx, h.state);
        }
    }

    /// Destroys this shard's backend sessions (at exit): each link sends `destroy`.
    pub async fn release_backends(&self) {
        for link in self.backends.links() {
            if link.is_up() {
                let _ = monoio::time::timeout(
                    Duration::from_secs(1),
                    link.call("destroy", None, &[], false, |_| Ok(())),
                )
                .await;
            }
        }
    }

    /// The `server_info` reply to an `info` request.
    pub fn server_info(&self, transaction: &str) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.info_tail.len() + 64);
        v.extend_from_slice(b"{\"janus\":\"server_info\",\"transaction\":");
        v.extend_from_slice(transaction.as_bytes());
        v.extend_from_slice(self.info_tail.as_bytes());
        v
    }

    /// Tells every shard (this one included) that a client connection closed.
    pub fn connection_closed(self: &Rc<Self>, conn: ConnRef) {
        if self.conns.borrow_mut().remove(&conn.id).is_some() {
            self.metrics.connections.dec();
        }
        for (i, peer) in self.peers.all().iter().enumerate() {
            if i == self.id {
                events::connection_closed(self, conn);
            } else {
                peer.send(ShardMsg::ConnClosed { conn });
            }
        }
    }

    fn on_message(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Request { text, from } => dispatch::handle_forwarded(self, &text, from),
            ShardMsg::Done { conn } => dispatch::forwarded_done(self, conn),
            ShardMsg::SessionsDelta { conn, delta } => self.apply_sessions_delta(conn, delta),
            ShardMsg::Deliver { conn, frame } => self.send_local(conn, frame),
            ShardMsg::ConnClosed { conn } => events::connection_closed(self, conn),
            ShardMsg::AddServer(server) => self.add_server(server),
            ShardMsg::ReleaseBackends(done) => {
                let me = self.clone();
                monoio::spawn(async move {
                    me.release_backends().await;
                    let _ = done.send(());
                });
            }
            ShardMsg::Run(f) => f(&Host::new(self.clone())),
            ShardMsg::HttpPoll(poll) => http_api::start_poll(self, poll),
        }
    }
}

/// Everything of `server_info` after the transaction: fixed for the process lifetime.
pub fn server_info_tail(cfg: &Config, plugins: &[&'static dyn AnyPlugin]) -> String {
    let mut w = ObjectWriter::new();
    w.str("name", "Janus-Cloud Proxy")
        .u64("version", 10)
        .str("version_string", env!("CARGO_PKG_VERSION"))
        .str("author", "OpenSight")
        .str("email", "public@opensight.cn")
        .str("website", "https://github.com/OpenSight/janus-cloud")
        .str("server_name", &cfg.general.server_name)
        .str("server-name", &cfg.general.server_name)
        .u64("session-timeout", cfg.general.session_timeout)
        .u64(
            "reclaim-session-timeout",
            cfg.general.reclaim_session_timeout,
        )
        .bool("api_secret", !cfg.general.api_secret.is_empty())
        .bool("auth_token", false)
        .raw("plugins", &plugin::info_json(plugins));
    let obj = w.finish();
    // Drop the opening brace: the prefix written by `server_info` replaces it.
    let mut tail = String::from(",");
    tail.push_str(std::str::from_utf8(&obj[1..]).unwrap_or("}"));
    tail
}

/// Builds the mailboxes for `n` shards.
pub fn mailboxes(n: usize) -> (Peers, Vec<Mailbox<ShardMsg>>) {
    let (senders, inboxes): (Vec<MailboxSender<ShardMsg>>, Vec<_>) =
        (0..n).map(|_| mailbox()).unzip();
    (Peers::new(senders), inboxes)
}

/// Starts shard `id` on its own thread: builds its state there, then serves its mailbox,
/// its once-a-second sweep and its listener until the process exits.
///
/// # Errors
/// The thread cannot be spawned.
pub fn start(
    id: usize,
    shared: Shared,
    inbox: Mailbox<ShardMsg>,
    doors: Vec<Door>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    crate::runtime::thread::spawn_shard(id, move || async move {
        let shard = Shard::new(id, &shared);
        let me = shard.clone();
        monoio::spawn(async move {
            while let Some(msg) = inbox.recv().await {
                me.on_message(msg);
            }
        });
        let me = shard.clone();
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(Duration::from_secs(1)).await;
                me.counters.beat(crate::store::now_ms());
                let now = Instant::now();
                events::sweep(&me, now);
                me.sweep_connections(now);
                me.backends.prune();
                super::cluster::sweep(&me);
            }
        });
        let opts = Rc::new(ConnOptions::new(
            &shard.config,
            shard.open_conns.clone(),
            shard.metrics.disconnects.clone(),
            shared.draining.clone(),
        ));
        let mut loops = Vec::new();
        for door in doors {
            let (shard, opts) = (shard.clone(), opts.clone());
            loops.push(monoio::spawn(async move {
                if let Err(e) = server::accept_loop(door, shard, opts).await {
                    error!(shard = id, error = %e, "cannot adopt a listener");
                    std::process::exit(1);
                }
            }));
        }
        for l in loops {
            l.await;
        }
    })
}

impl Handler for Shard {
    fn connected(self: &Rc<Self>, conn: Rc<Conn>) -> u64 {
        let id = self.new_conn_id().id;
        self.conns.borrow_mut().insert(id, ConnEntry::new(conn));
        self.metrics.connections.inc();
        id
    }

    fn text(self: &Rc<Self>, id: u64, text: &str) {
        ShardCounters::bump(&self.counters.client_in);
        dispatch::handle_frame(self, text, self.conn_ref(id));
    }

    fn refused(self: &Rc<Self>, id: u64, why: Refused) {
        let e = match why {
            Refused::NotUtf8 => {
                JanusError::new(Code::InvalidJson, "Invalid Janus API request - not UTF-8")
            }
            Refused::TooBig { size, max } => JanusError::new(
                Code::TransportSpecific,
                format!("Message too large: {size} bytes (max_message_size is {max})"),
            ),
        };
        self.reply_error(self.conn_ref(id), 0, None, &e);
    }

    fn closed(self: &Rc<Self>, id: u64) {
        self.connection_closed(self.conn_ref(id));
    }

    fn http(
        self: &Rc<Self>,
        req: ApiRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ApiResponse>>> {
        ShardCounters::bump(&self.counters.client_in);
        Box::pin(http_api::handle(self.clone(), req))
    }
}
