//! Per-shard counters: written by their own shard only (each on its own cache lines, so
//! counting costs no cross-core traffic) and read by anyone (the metrics exposition sums
//! them at scrape time), plus the shard's heartbeat.

use std::sync::atomic::{AtomicU64, Ordering};

/// The per-message counters of one shard, alone on their cache lines.
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct ShardCounters {
    pub client_in: AtomicU64,
    pub client_out: AtomicU64,
    pub backend_in: AtomicU64,
    pub backend_out: AtomicU64,
    /// Last heartbeat of the shard, ms since the epoch.
    pub heartbeat_ms: AtomicU64,
}

impl ShardCounters {
    /// Counts one event; only the owning shard calls this.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Stamps the heartbeat: the shard's loop is alive at `now_ms`. Only the owning shard
    /// calls it.
    pub fn beat(&self, now_ms: u64) {
        self.heartbeat_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Milliseconds since the last heartbeat.
    pub fn heartbeat_age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed))
    }
}
