//! Backend Janus servers as the whole proxy sees them: the shared registry entry that
//! every shard's link to that server refers to.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

use crate::config::JanusServer;
use crate::transport::client::WsUrl;

/// Server status (spec 02 §3).
pub mod status {
    pub const NORMAL: u8 = 0;
    pub const ABNORMAL: u8 = 1;
    pub const MAINTENANCE: u8 = 2;
    pub const HWM: u8 = 3;
}

/// One backend server, shared by all shards (`Arc`). Counters are atomics so that
/// shards update them without locks.
#[derive(Debug)]
pub struct ServerEntry {
    pub name: String,
    pub url: String,
    pub ws: WsUrl,
    /// Only `NORMAL` servers are selected for new work.
    pub status: AtomicU8,
    /// Handles reported by the server's sentinel (0 when none reports).
    pub reported_handles: AtomicI64,
    /// Frontend handles this proxy currently has on the server, over all shards.
    pub proxy_handles: AtomicI64,
}

impl ServerEntry {
    /// # Panics
    /// Never for a validated config (its URL was checked by `Config::validate`).
    pub fn from_config(s: &JanusServer) -> Option<ServerEntry> {
        Some(ServerEntry {
            name: s.name.clone(),
            url: s.url.clone(),
            ws: WsUrl::parse(&s.url)?,
            status: AtomicU8::new(s.status),
            reported_handles: AtomicI64::new(s.handle_num as i64),
            proxy_handles: AtomicI64::new(0),
        })
    }

    /// The load `lb` and `wr` compare: reported handles, or this proxy's own count when
    /// it is larger (a sentinel reports only every few seconds).
    pub fn load(&self) -> u64 {
        let reported = self.reported_handles.load(Ordering::Relaxed);
        let ours = self.proxy_handles.load(Ordering::Relaxed);
        reported.max(ours).max(0) as u64
    }

    pub fn is_normal(&self) -> bool {
        self.status.load(Ordering::Relaxed) == status::NORMAL
    }
}
