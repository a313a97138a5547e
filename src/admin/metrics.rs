//! Proxy metrics, in Prometheus text format at `GET /metrics`. Per-message counters are
//! per shard (each shard writes only its own cache line, so counting costs no cross-core
//! traffic) and summed at scrape time; rarer gauges and error counts are shared atomics;
//! backend gauges are read from the registry entries at scrape time. Each shard also
//! stamps a heartbeat once a second ([`ShardCounters::beat`]); its age is exported as
//! `janus_proxy_shard_heartbeat_age_seconds{shard}` and judged by `GET /health`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::backend::server::ServerEntry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: u16,
}

/// Why the proxy closed a client connection (or refused one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    pub shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

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

    /// Stamps the heartbeat: the shard's loop is alive now. Only the owning shard calls it.
    pub fn beat(&self) {
        self.heartbeat_ms
            .store(crate::store::now_ms(), Ordering::Relaxed);
    }
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
    pub disconnects: Family<ReasonLabel, Counter>,
    backend_up: Family<ServerLabel, Gauge>,
    backend_status: Family<ServerLabel, Gauge>,
    backend_handles: Family<ServerLabel, Gauge>,
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
            s.beat();
        }
        m
    }

    /// Milliseconds since each shard's last heartbeat, in shard order.
    pub fn heartbeat_ages_ms(&self, now_ms: u64) -> Vec<u64> {
        self.shards
            .iter()
            .map(|s| now_ms.saturating_sub(s.heartbeat_ms.load(Ordering::Relaxed)))
            .collect()
    }

    fn total(&self, pick: impl Fn(&ShardCounters) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| pick(s).load(Ordering::Relaxed))
            .sum()
    }

    pub fn error(&self, code: u16) {
        self.errors.get_or_create(&CodeLabel { code }).inc();
    }

    /// Counts a client connection the proxy closed or refused for `reason`.
    pub fn disconnect(&self, reason: &str) {
        self.disconnects
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Renders the text exposition, with backend gauges taken from `servers` now.
    pub fn render<'a>(
        &self,
        servers: impl Iterator<Item = &'a std::sync::Arc<ServerEntry>>,
    ) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        self.backend_up.clear();
        self.backend_status.clear();
        self.backend_handles.clear();
        for s in servers {
            let l = ServerLabel {
                server: s.name.clone(),
            };
            self.backend_up
                .get_or_create(&l)
                .set(s.links_up.load(Relaxed));
            self.backend_status
                .get_or_create(&l)
                .set(s.status.load(Relaxed) as i64);
            self.backend_handles
                .get_or_create(&l)
                .set(s.proxy_handles.load(Relaxed));
        }
        let mut r = Registry::with_prefix("janus_proxy");
        r.register(
            "connections",
            "Open client WebSocket connections",
            self.connections.clone(),
        );
        r.register("sessions", "Client sessions", self.sessions.clone());
        r.register("handles", "Client handles", self.handles.clone());
        let counters: [(&str, &str, u64); 4] = [
            (
                "client_messages_received",
                "Janus API messages received from clients",
                self.total(|s| &s.client_in),
            ),
            (
                "client_messages_sent",
                "Janus API messages sent to clients",
                self.total(|s| &s.client_out),
            ),
            (
                "backend_messages_received",
                "Messages received from backend Janus servers",
                self.total(|s| &s.backend_in),
            ),
            (
                "backend_messages_sent",
                "Messages sent to backend Janus servers",
                self.total(|s| &s.backend_out),
            ),
        ];
        for (name, help, value) in counters {
            r.register(name, help, ConstCounter::new(value));
        }
        r.register(
            "errors",
            "Janus error replies sent to clients, by code",
            self.errors.clone(),
        );
        r.register(
            "client_disconnects",
            "Client connections the proxy closed or refused, by reason (slow_reader, over_capacity, no_session, handshake, protocol)",
            self.disconnects.clone(),
        );
        r.register(
            "backend_links_up",
            "Shards whose link to the backend is up",
            self.backend_up.clone(),
        );
        r.register("backend_status", "Registry status of the backend (0 normal, 1 abnormal, 2 maintenance, 3 high-water mark)", self.backend_status.clone());
        r.register(
            "backend_handles",
            "Client handles this proxy has on the backend",
            self.backend_handles.clone(),
        );
        let ages: Family<ShardLabel, Gauge<f64, AtomicU64>> = Family::default();
        for (i, age) in self
            .heartbeat_ages_ms(crate::store::now_ms())
            .into_iter()
            .enumerate()
        {
            ages.get_or_create(&ShardLabel {
                shard: i.to_string(),
            })
            .set(age as f64 / 1000.0);
        }
        r.register(
            "shard_heartbeat_age_seconds",
            "Seconds since the shard's event loop last stamped its once-a-second heartbeat",
            ages,
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_errors() {
        let m = Metrics::new(2);
        ShardCounters::bump(&m.shards[0].client_in);
        ShardCounters::bump(&m.shards[1].client_in);
        m.error(458);
        m.error(458);
        m.disconnect("slow_reader");
        let text = m.render(std::iter::empty());
        assert!(
            text.contains("janus_proxy_client_messages_received_total 2"),
            "{text}"
        );
        assert!(
            text.contains("janus_proxy_errors_total{code=\"458\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("janus_proxy_client_disconnects_total{reason=\"slow_reader\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("janus_proxy_shard_heartbeat_age_seconds{shard=\"1\"}"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
