//! What the proxy counts, shared by all shards: gauges and error counts as shared
//! atomics, per-message counters per shard ([`ShardCounters`], each shard writing only its
//! own), cut connections by reason. Rendered by the admin API at scrape time.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::runtime::stats::ShardCounters;
use crate::transport::conn::Disconnects;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: u16,
}

/// A gauge a plugin exposes (rooms, mirrors): read when `/metrics` is scraped, from
/// the admin thread, so it reads shared atomics only.
pub struct PluginGauge {
    /// Its name under the `janus_proxy_` prefix.
    pub name: &'static str,
    pub help: &'static str,
    pub read: Box<dyn Fn() -> i64 + Send + Sync>,
}

/// Everything the proxy counts.
#[derive(Default)]
pub struct Metrics {
    pub connections: Gauge,
    pub sessions: Gauge,
    pub handles: Gauge,
    /// One entry per shard.
    pub shards: Vec<Arc<ShardCounters>>,
    pub errors: Family<CodeLabel, Counter>,
    /// Client connections the proxy closed or refused, by reason.
    pub disconnects: Arc<Disconnects>,
    /// What the plugins registered at start.
    pub plugin_gauges: Vec<PluginGauge>,
    /// Failover (`[cluster]`): what this proxy adopted from dead proxies.
    pub failover: Failover,
}

/// Failover counters.
#[derive(Default)]
pub struct Failover {
    /// Client sessions adopted from dead proxies.
    pub sessions: Counter,
    /// Client handles adopted with them.
    pub handles: Counter,
    /// Handles of adopted sessions that could not be adopted (ended).
    pub ended: Counter,
    /// Claims refused because the session's proxy is alive.
    pub refused: Counter,
}

impl Metrics {
    /// Metrics of `shards` shards, each with a heartbeat stamped now (a shard is given its
    /// first seconds to start).
    pub fn new(shards: usize) -> Metrics {
        let m = Metrics {
            shards: (0..shards).map(|_| Arc::default()).collect(),
            ..Metrics::default()
        };
        for s in &m.shards {
            s.beat(crate::store::now_ms());
        }
        m
    }

    /// Milliseconds since each shard's last heartbeat, in shard order.
    pub fn heartbeat_ages_ms(&self, now_ms: u64) -> Vec<u64> {
        self.shards
            .iter()
            .map(|s| s.heartbeat_age_ms(now_ms))
            .collect()
    }

    /// A counter summed over the shards.
    pub fn total(&self, pick: impl Fn(&ShardCounters) -> &std::sync::atomic::AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| pick(s).load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    pub fn error(&self, code: u16) {
        self.errors.get_or_create(&CodeLabel { code }).inc();
    }
}
