//! Health probe (spec 03 §4): every `pingpong_interval` s send a Janus `ping` over the
//! WebSocket API (`janus-protocol`) and turn the outcome into a status event. Keeps one
//! connection open between probes and drops it after any failure. Creates no Janus session
//! and never sends an `apisecret` (root-level `ping` needs none).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::janus_ws::{JanusWs, WsError};
use crate::state::{Shared, Wake};
use crate::status::Event;

/// Sends one `ping` on `conn` (connecting first if needed) and returns the round trip
/// (from send to reply, connection set-up excluded). On failure `conn` is emptied.
///
/// # Errors
/// Connect failure, timeout, closed socket or a Janus `error` reply.
pub fn probe_once(
    conn: &mut Option<JanusWs>,
    url: &str,
    timeout: Duration,
) -> Result<Duration, WsError> {
    let result = (|| {
        if conn.is_none() {
            *conn = Some(JanusWs::connect(url, "janus-protocol", timeout)?);
        }
        let ws = conn.as_mut().ok_or(WsError::Closed)?;
        let mut ping = Map::new();
        ping.insert("janus".into(), Value::String("ping".into()));
        let sent = Instant::now();
        ws.request(ping)?;
        Ok(sent.elapsed())
    })();
    if result.is_err() {
        if let Some(c) = conn.take() {
            c.close();
        }
    }
    result
}

/// The probe loop: sleep first, then probe (so the period includes the probe time), until
/// the sentinel stops.
pub fn run(shared: Arc<Shared>, interval: Duration, timeout: Duration) {
    let url = shared.identity.server_url.clone();
    let mut conn = None;
    loop {
        if shared.wait(interval, None) == Wake::Stopping {
            break;
        }
        let event = match probe_once(&mut conn, &url, timeout) {
            Ok(rtt) => {
                debug!(
                    "probe {url}: pong after {:.1} ms",
                    rtt.as_secs_f64() * 1000.0
                );
                Event::ProbeOk(rtt)
            }
            Err(e) => {
                debug!("probe {url} failed: {e}");
                Event::ProbeFailed
            }
        };
        if let Some(new) = shared.apply(event) {
            match event {
                Event::ProbeOk(rtt) => info!(
                    "status -> {new:?} ({}): Janus at {url} answered in {:.1} ms",
                    new.code(),
                    rtt.as_secs_f64() * 1000.0
                ),
                _ => warn!(
                    "status -> {new:?} ({}): Janus at {url} did not answer the probe",
                    new.code()
                ),
            }
        }
    }
    if let Some(c) = conn {
        c.close();
    }
}
