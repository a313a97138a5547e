//! Proxy metrics, in Prometheus text format at `GET /metrics`. Per-message counters are
//! per shard (each shard writes only its own cache line, so counting costs no cross-core
//! traffic) and summed at scrape time; rarer gauges and error counts are shared atomics;
//! backend gauges are read from the registry entries at scrape time. Each shard also
//! stamps a heartbeat once a second (`ShardCounters::beat`); its age is exported as
//! `janus_proxy_shard_heartbeat_age_seconds{shard}` and judged by `GET /health`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::backend::server::ServerEntry;
pub use crate::core::metrics::Metrics;

/// Why the proxy closed a client connection (or refused one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    pub shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

/// Renders the text exposition of `m`, with backend gauges taken from `servers` now.
pub fn render<'a>(m: &Metrics, servers: impl Iterator<Item = &'a Arc<ServerEntry>>) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let backend_up: Family<ServerLabel, Gauge> = Family::default();
    let backend_status: Family<ServerLabel, Gauge> = Family::default();
    let backend_handles: Family<ServerLabel, Gauge> = Family::default();
    for s in servers {
        let l = ServerLabel {
            server: s.name.clone(),
        };
        backend_up.get_or_create(&l).set(s.links_up.load(Relaxed));
        backend_status
            .get_or_create(&l)
            .set(s.status.load(Relaxed) as i64);
        backend_handles
            .get_or_create(&l)
            .set(s.proxy_handles.load(Relaxed));
    }
    let mut r = Registry::with_prefix("janus_proxy");
    r.register(
        "connections",
        "Open client WebSocket connections",
        m.connections.clone(),
    );
    r.register("sessions", "Client sessions", m.sessions.clone());
    r.register("handles", "Client handles", m.handles.clone());
    let f = &m.failover;
    for (name, help, counter) in [
        (
            "adopted_sessions",
            "Client sessions adopted from dead proxies ([cluster])",
            &f.sessions,
        ),
        (
            "adopted_handles",
            "Client handles adopted from dead proxies ([cluster])",
            &f.handles,
        ),
        (
            "unadoptable_handles",
            "Handles of adopted sessions that could not be adopted and were ended",
            &f.ended,
        ),
        (
            "claims_refused_owner_alive",
            "Claims of another proxy's session refused because that proxy is alive",
            &f.refused,
        ),
    ] {
        r.register(name, help, counter.clone());
    }
    let counters: [(&str, &str, u64); 4] = [
        (
            "client_messages_received",
            "Janus API messages received from clients",
            m.total(|s| &s.client_in),
        ),
        (
            "client_messages_sent",
            "Janus API messages sent to clients",
            m.total(|s| &s.client_out),
        ),
        (
            "backend_messages_received",
            "Messages received from backend Janus servers",
            m.total(|s| &s.backend_in),
        ),
        (
            "backend_messages_sent",
            "Messages sent to backend Janus servers",
            m.total(|s| &s.backend_out),
        ),
    ];
    for (name, help, value) in counters {
        r.register(name, help, ConstCounter::new(value));
    }
    r.register(
        "errors",
        "Janus error replies sent to clients, by code",
        m.errors.clone(),
    );
    let disconnects: Family<ReasonLabel, Counter> = Family::default();
    for (why, n) in m.disconnects.snapshot() {
        disconnects
            .get_or_create(&ReasonLabel {
                reason: why.as_str(),
            })
            .inc_by(n);
    }
    r.register(
            "client_disconnects",
            "Client connections the proxy closed or refused, by reason (slow_reader, over_capacity, handshake, protocol, no_pong, no_session)",
            disconnects,
        );
    r.register(
        "backend_links_up",
        "Shards whose link to the backend is up",
        backend_up,
    );
    r.register(
        "backend_status",
        "Registry status of the backend (0 normal, 1 abnormal, 2 maintenance, 3 high-water mark)",
        backend_status,
    );
    r.register(
        "backend_handles",
        "Client handles this proxy has on the backend",
        backend_handles,
    );
    let ages: Family<ShardLabel, Gauge<f64, AtomicU64>> = Family::default();
    for (i, age) in m
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
    for g in &m.plugin_gauges {
        let gauge: Gauge = Gauge::default();
        gauge.set((g.read)());
        r.register(g.name, g.help, gauge);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::stats::ShardCounters;

    #[test]
    fn renders_counters_and_errors() {
        let m = Metrics::new(2);
        ShardCounters::bump(&m.shards[0].client_in);
        ShardCounters::bump(&m.shards[1].client_in);
        m.error(458);
        m.error(458);
        m.disconnects.count(crate::transport::conn::Cut::SlowReader);
        let text = render(&m, std::iter::empty());
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
