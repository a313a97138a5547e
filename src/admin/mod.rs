//! admin/: the admin REST API (spec 02 §6) and the control plane behind it. One thread
//! owns the server store, the registry of backend entries and the HTTP server; it is the
//! only place that blocks on Redis. Changes reach shards as mailbox messages (new
//! servers) or as atomics on the shared entries (status, load, deletion), so shards never
//! take a lock to select a backend.

pub mod http;
pub mod metrics;
pub mod plugin_routes;
pub mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::backend::registry::{Changes, Registry};
use crate::runtime::mailbox::MailboxSender;
use crate::runtime::shard::ShardMsg;
use crate::store::{ServerRecord, ServerStore, StoreError};
use metrics::Metrics;

/// Everything the admin thread owns.
pub struct AdminState {
    pub store: Box<dyn ServerStore>,
    pub registry: Registry,
    pub peers: Arc<Vec<MailboxSender<ShardMsg>>>,
    pub metrics: Arc<Metrics>,
    /// `server_info` object (without `transaction`) for `GET /info`.
    pub info_json: String,
    /// Bearer token every route requires, when set.
    pub secret: Option<String>,
    /// Enabled plugins (short names): their proxy-to-proxy routes are served.
    pub plugins: Vec<String>,
}

/// Seconds since the epoch, as the store's timestamps.
pub fn now_s() -> f64 {
    crate::backend::server::now_ms() as f64 / 1000.0
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
            for peer in self.peers.iter() {
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

/// Binds the admin listener; fails at once if the address is taken.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(listen: &str) -> std::io::Result<tiny_http::Server> {
    tiny_http::Server::http(listen)
        .map_err(|e| std::io::Error::other(format!("cannot listen on {listen}: {e}")))
}

/// Runs the admin API and control loop on the calling thread, forever.
pub fn run(server: tiny_http::Server, mut state: AdminState, every: Intervals) {
    info!(listen = %server.server_addr(), "admin API listening");
    let mut next_sync = Instant::now() + every.sync;
    let mut next_sweep = Instant::now() + every.sweep;
    loop {
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(req)) => routes::handle(&mut state, req),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "admin API receive failed"),
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
