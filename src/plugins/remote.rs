//! Calls to other proxies' admin APIs (multi-proxy videocall and p2pcall, spec 05 §6,
//! 06 §7). The blocking HTTP client runs on a short-lived thread per call, never on a
//! shard; the shard awaits the answer.

use std::time::Duration;

use futures_channel::oneshot;

use crate::api::error::{Code, JanusError};

/// Time allowed for another proxy to answer (the original had none).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs a JSON body to `url`; the answer's body on 200.
///
/// # Errors
/// The peer's error as its HTTP status and `info` text (spec 05 §6), or 504/502 for
/// timeouts and network failures.
pub async fn post_json(url: String, body: String) -> Result<String, JanusError> {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("proxy-call".into())
        .spawn(move || {
            let _ = tx.send(blocking_post(&url, &body));
        });
    if let Err(e) = spawned {
        return Err(JanusError::new(
            Code::InternalError,
            format!("cannot start an HTTP call: {e}"),
        ));
    }
    rx.await.unwrap_or_else(|_| {
        Err(JanusError::new(
            Code::InternalError,
            "HTTP call thread died",
        ))
    })
}

fn blocking_post(url: &str, body: &str) -> Result<String, JanusError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => JanusError::new(
                Code::GatewayTimeout,
                format!("{url} did not answer in time"),
            ),
            e => JanusError::new(Code::BadGateway, format!("cannot reach {url}: {e}")),
        })?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    if status == 200 {
        return Ok(text);
    }
    let info = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("info").and_then(|i| i.as_str()).map(str::to_string))
        .unwrap_or(text);
    Err(JanusError::from_backend(status, info))
}
