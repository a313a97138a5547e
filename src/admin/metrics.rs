//! Proxy metrics, in Prometheus text format at `GET /metrics`. Counters are shared by
//! all shards (atomics; one `fetch_add` per event); backend gauges are read from the
//! registry entries at scrape time.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::backend::server::ServerEntry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

/// Everything the proxy counts.
#[derive(Default)]
pub struct Metrics {
    pub connections: Gauge,
    pub sessions: Gauge,
    pub handles: Gauge,
    pub client_messages_in: Counter,
    pub client_messages_out: Counter,
    pub backend_messages_in: Counter,
    pub backend_messages_out: Counter,
    pub errors: Family<CodeLabel, Counter>,
    backend_up: Family<ServerLabel, Gauge>,
    backend_status: Family<ServerLabel, Gauge>,
    backend_handles: Family<ServerLabel, Gauge>,
}

impl Metrics {
    pub fn error(&self, code: u16) {
        self.errors.get_or_create(&CodeLabel { code }).inc();
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
        r.register(
            "client_messages_received",
            "Janus API messages received from clients",
            self.client_messages_in.clone(),
        );
        r.register(
            "client_messages_sent",
            "Janus API messages sent to clients",
            self.client_messages_out.clone(),
        );
        r.register(
            "backend_messages_received",
            "Messages received from backend Janus servers",
            self.backend_messages_in.clone(),
        );
        r.register(
            "backend_messages_sent",
            "Messages sent to backend Janus servers",
            self.backend_messages_out.clone(),
        );
        r.register(
            "errors",
            "Janus error replies sent to clients, by code",
            self.errors.clone(),
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
        let m = Metrics::default();
        m.client_messages_in.inc();
        m.error(458);
        m.error(458);
        let text = m.render(std::iter::empty());
        assert!(
            text.contains("janus_proxy_client_messages_received_total 1"),
            "{text}"
        );
        assert!(
            text.contains("janus_proxy_errors_total{code=\"458\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
