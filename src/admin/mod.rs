//! admin/: the admin REST API (spec 02 §6) and the control plane behind it.
//!
//! Two threads. The HTTP thread ([`server`], hyper on a current-thread tokio runtime)
//! owns the connections: it enforces the limits (connections, header/body time, body
//! size) and the access rules ([`http::admit`]: cluster secret, CORS origins, the CSRF
//! rule), answers `/ping`, `/info` and `/health` itself, and runs the proxy-to-proxy
//! plugin routes by awaiting a shard's answer. Everything that reads or changes the server
//! store goes, already parsed, through a bounded channel to the control thread ([`run`]),
//! which owns [`AdminState`] — the store, the registry of backend entries — and is the only
//! place that blocks on Redis; it answers through a oneshot. So a slow client never holds
//! the control loop, and a slow store never holds the connections.
//!
//! Changes reach shards as mailbox messages (new servers) or as atomics on the shared
//! entries (status, load, deletion), so shards never take a lock to select a backend.
//! Static servers (`[[janus_server]]`) cannot be re-pointed or deleted over the API.

pub mod http;
pub mod metrics;
pub mod routes;
pub mod server;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use hyper::Method;
use tracing::{info, warn};

use crate::api::error::JanusError;
use crate::backend::registry::{Changes, Registry};
use crate::core::host::Peers;
use crate::core::plugin::PluginRoute;
use crate::core::shard::ShardMsg;
use crate::store::{ServerRecord, ServerStore, StoreError};
use http::Reply;
use metrics::Metrics;

/// Everything the control thread owns.
pub struct AdminState {
    pub store: Box<dyn ServerStore>,
    pub registry: Registry,
    pub peers: Peers,
    pub metrics: Arc<Metrics>,
    /// Static servers of the configuration (name → URL): never replaced nor deleted
    /// through the API.
    pub statics: HashMap<String, String>,
}

/// Seconds since the epoch, as the store's timestamps.
pub fn now_s() -> f64 {
    crate::store::now_ms() as f64 / 1000.0
}

impl AdminState {
    /// Re-reads the store and brings the registry (and so the shards) up to date.
    ///
    /// # Errors
    /// The store cannot be reached; the registry is then left as it was.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let records = self.store.list()?;
        let changes = self.registry.reconcile(&records);
        self.announce(changes);
        Ok(())
    }

    /// Applies a record that was just written to the store.
    pub fn applied(&mut self, record: &ServerRecord) {
        let mut changes = Changes::default();
        self.registry.upsert(record, &mut changes);
        self.announce(changes);
    }

    pub fn deleted(&mut self, name: &str) {
        let mut changes = Changes::default();
        self.registry.remove(name, &mut changes);
        self.announce(changes);
    }

    /// New servers get a link on every shard; deleted ones are already marked on their
    /// shared entry, which the shards see on their own.
    fn announce(&self, changes: Changes) {
        for server in changes.added {
            for peer in self.peers.all() {
                peer.send(ShardMsg::AddServer(server.clone()));
            }
        }
    }
}

/// Timing of the control loop.
pub struct Intervals {
    /// How often the store is re-read (other proxies' registrations, Redis expiry).
    pub sync: Duration,
    /// How often expired records are deleted from the store.
    pub sweep: Duration,
}

/// A parsed request for the control thread, with the way back to the waiting connection.
pub struct Job {
    pub method: Method,
    pub path: String,
    pub params: BTreeMap<String, String>,
    pub answer: futures_channel::oneshot::Sender<Reply>,
}

/// Requests waiting for the control thread at most; more are answered 503 at once.
pub const CONTROL_QUEUE: usize = 64;

/// How long a connection waits for the control thread (which may wait on Redis).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(20);

/// The channel between the HTTP thread and the control thread.
pub fn control_channel() -> (Sender<Job>, Receiver<Job>) {
    crossbeam_channel::bounded(CONTROL_QUEUE)
}

/// Runs the control loop on the calling thread until every [`Job`] sender is gone:
/// store requests from the HTTP thread, the periodic sweep and sync.
pub fn run(mut state: AdminState, jobs: Receiver<Job>, every: Intervals) {
    let mut next_sync = Instant::now() + every.sync;
    let mut next_sweep = Instant::now() + every.sweep;
    loop {
        let wake = next_sync.min(next_sweep);
        match jobs.recv_deadline(wake) {
            Ok(job) => {
                // The connection gave up (timeout, client gone): nothing to do.
                if !job.answer.is_canceled() {
                    let reply = routes::route(&mut state, &job.method, &job.path, &job.params);
                    let _ = job.answer.send(reply);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + every.sweep;
            match state.store.sweep(now_s()) {
                Ok(gone) if !gone.is_empty() => {
                    info!(servers = ?gone, "expired backend servers deleted")
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "server sweep failed"),
            }
        }
        if now >= next_sync {
            next_sync = now + every.sync;
            if let Err(e) = state.sync() {
                warn!(error = %e, "server store sync failed; keeping the last known servers");
            }
        }
    }
}

/// The admin API as served by the HTTP thread.
pub struct ProxyApi {
    pub control: Sender<Job>,
    pub peers: Peers,
    pub metrics: Arc<Metrics>,
    /// `server_info` object (without `transaction`) for `GET /info`.
    pub info_json: Arc<str>,
    /// The routes the enabled plugins serve (proxy-to-proxy calls).
    pub plugin_routes: Vec<PluginRoute>,
    /// Whether `POST /drain` may drain this proxy (it is in a `[cluster]`).
    pub drainable: bool,
    /// Set while the proxy drains: `/health` answers 503 so load balancers stop sending.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// How long a plugin route may take (it may wait for a shard attaching a backend handle).
const PLUGIN_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

impl ProxyApi {
    /// Serves a plugin route: its future runs here, on the HTTP thread, with a deadline;
    /// its answer becomes `200` with the JSON body (empty for `null`) or the error.
    fn plugin_route(
        &self,
        route: &PluginRoute,
        rest: &str,
        req: &server::Request,
    ) -> server::ReplyFuture {
        if !route.methods.contains(&req.method.as_str()) {
            let allowed = route.methods.join(", ");
            return Box::pin(async move {
                Reply::error(405, "MethodNotAllowed", format!("allowed: {allowed}"))
            });
        }
        let answer = (route.handler)(&self.peers, req.method.as_str(), rest, &req.params);
        Box::pin(async move {
            match tokio::time::timeout(PLUGIN_ROUTE_TIMEOUT, answer).await {
                Ok(Ok(serde_json::Value::Null)) => Reply::empty(),
                Ok(Ok(body)) => Reply::json(200, &body),
                Ok(Err(e)) => route_error(&e),
                Err(_) => Reply::error(504, "Timeout", "the shard did not answer in time"),
            }
        })
    }

    /// `POST /drain`: the same as a SIGTERM (the signal is raised), for a proxy of a
    /// cluster: it drains, hands off and exits.
    fn drain(&self) -> Reply {
        if !self.drainable {
            return Reply::error(
                409,
                "Conflict",
                "not in a cluster ([cluster] session_db is off): stop the proxy instead",
            );
        }
        // Draining from this answer on (not only once the signal is handled): a `/health`
        // right after it already says 503, and new connections are already refused.
        if !self.draining.swap(true, Ordering::Relaxed) {
            if let Err(e) = signal_hook::low_level::raise(signal_hook::consts::SIGTERM) {
                self.draining.store(false, Ordering::Relaxed);
                return Reply::error(500, "InternalError", format!("cannot start the drain: {e}"));
            }
        }
        Reply::json(202, &serde_json::json!({"draining": true}))
    }

    /// Hands a request to the control thread and waits for its answer.
    fn to_control(&self, req: server::Request) -> server::ReplyFuture {
        let (tx, rx) = futures_channel::oneshot::channel();
        let job = Job {
            method: req.method,
            path: req.path,
            params: req.params,
            answer: tx,
        };
        let refused = match self.control.try_send(job) {
            Ok(()) => None,
            Err(TrySendError::Full(_)) => Some("the admin control loop is busy; retry later"),
            Err(TrySendError::Disconnected(_)) => Some("the admin control loop has stopped"),
        };
        Box::pin(async move {
            if let Some(why) = refused {
                return Reply::error(503, "ServiceUnavailable", why);
            }
            match tokio::time::timeout(CONTROL_TIMEOUT, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Reply::error(503, "ServiceUnavailable", "request dropped"),
                Err(_) => Reply::error(
                    503,
                    "ServiceUnavailable",
                    "the server store did not answer in time",
                ),
            }
        })
    }
}

impl server::Service for ProxyApi {
    fn methods(&self, path: &str) -> Option<&'static str> {
        routes::methods_of(path)
    }

    fn call(&self, req: server::Request) -> server::ReplyFuture {
        match (&req.method, req.path.as_str()) {
            (&Method::GET, "/ping") => Box::pin(async { Reply::json(200, &"pong") }),
            (&Method::GET, "/info") => {
                let body = self.info_json.to_string();
                Box::pin(async move { Reply::raw_json(body) })
            }
            (&Method::GET, "/health") if self.draining.load(Ordering::Relaxed) => {
                Box::pin(async { Reply::error(503, "Draining", "the proxy is draining") })
            }
            (&Method::GET, "/health") => {
                let reply = health(&self.metrics, crate::store::now_ms());
                Box::pin(async move { reply })
            }
            (&Method::POST, "/drain") => {
                let reply = self.drain();
                Box::pin(async move { reply })
            }
            (_, p) => {
                let found = self
                    .plugin_routes
                    .iter()
                    .find_map(|r| Some((r, r.rest(p)?)));
                match found {
                    Some((route, rest)) => self.plugin_route(route, rest, &req),
                    None => self.to_control(req),
                }
            }
        }
    }
}

/// A plugin route's error as an HTTP answer: its code when it is an HTTP status.
fn route_error(e: &JanusError) -> Reply {
    let (status, exception) = match e.code {
        400 => (400, "ValidationError"),
        504 => (504, "Timeout"),
        c if (200..600).contains(&c) => (c, "JanusCloudError"),
        _ => (500, "JanusCloudError"),
    };
    Reply::error(status, exception, e.reason.clone())
}

/// Longest time a shard may go without its once-a-second heartbeat and be healthy.
pub const HEARTBEAT_LIMIT_MS: u64 = 5000;

/// `GET /health`: 200 `{"status": "ok", "shards": [...]}` when every shard beat within
/// [`HEARTBEAT_LIMIT_MS`], else 503 `{"status": "stuck", "stuck_shards": [ids], ...}`.
pub fn health(metrics: &Metrics, now_ms: u64) -> Reply {
    let ages = metrics.heartbeat_ages_ms(now_ms);
    let stuck: Vec<usize> = ages
        .iter()
        .enumerate()
        .filter(|(_, age)| **age > HEARTBEAT_LIMIT_MS)
        .map(|(i, _)| i)
        .collect();
    let shards: Vec<_> = ages
        .iter()
        .enumerate()
        .map(|(i, age)| {
            serde_json::json!({"shard": i, "heartbeat_age_seconds": *age as f64 / 1000.0})
        })
        .collect();
    if stuck.is_empty() {
        Reply::json(200, &serde_json::json!({"status": "ok", "shards": shards}))
    } else {
        Reply::json(
            503,
            &serde_json::json!({"status": "stuck", "stuck_shards": stuck, "shards": shards}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_names_stuck_shards() {
        let m = Metrics::new(3);
        let now = crate::store::now_ms();
        let ok = health(&m, now);
        assert_eq!(ok.status, 200);
        let v: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["shards"].as_array().map(Vec::len), Some(3));
        // Ten seconds later, only shard 1 has beaten.
        let later = now + 10_000;
        m.shards[1]
            .heartbeat_ms
            .store(later, std::sync::atomic::Ordering::Relaxed);
        let bad = health(&m, later);
        assert_eq!(bad.status, 503);
        let v: serde_json::Value = serde_json::from_str(&bad.body).unwrap();
        assert_eq!(v["stuck_shards"], serde_json::json!([0, 2]));
    }
}
