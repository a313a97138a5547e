//! Calls to other proxies' admin APIs (multi-proxy videocall and p2pcall, spec 05 §6,
//! 06 §7).
//!
//! Owns a small fixed pool of worker threads sharing one HTTP agent (so connections to a
//! peer proxy are reused), fed by a bounded queue. A shard only enqueues and awaits the
//! answer; it never runs the blocking client. Each call carries the cluster secret as
//! `Authorization: Bearer` and has [`TIMEOUT`] from the moment it is queued; when the
//! queue is full the call fails at once with 503 instead of piling up.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_channel::oneshot;
use tracing::warn;

use crate::api::error::{Code, JanusError};

/// Time allowed for another proxy to answer, queueing included (the original had none).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Worker threads making calls.
pub const WORKERS: usize = 4;

/// Calls waiting for a worker at most.
pub const QUEUE: usize = 64;

/// Pooled connections are dropped after this idle time: shorter than the admin API's
/// `header_timeout`, so a peer never closes a connection this side is about to reuse.
const IDLE: Duration = Duration::from_secs(5);

struct Call {
    url: String,
    body: String,
    deadline: Instant,
    answer: oneshot::Sender<Result<String, JanusError>>,
}

static SECRET: OnceLock<Option<String>> = OnceLock::new();
static POOL: OnceLock<Option<Sender<Call>>> = OnceLock::new();

/// Sets the cluster secret sent to other proxies; call once at start, before any call
/// (without it, calls carry no secret).
pub fn init(secret: Option<String>) {
    let _ = SECRET.set(secret);
}

fn pool() -> Option<&'static Sender<Call>> {
    POOL.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .max_idle_age(IDLE)
            .build()
            .into();
        let secret = SECRET.get().cloned().flatten();
        let mut started = 0;
        for i in 0..WORKERS {
            let (agent, rx, secret) = (agent.clone(), rx.clone(), secret.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("proxy-call-{i}"))
                .spawn(move || worker(&agent, &rx, secret.as_deref()));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => warn!(error = %e, "cannot start a proxy-call worker"),
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

fn worker(agent: &ureq::Agent, calls: &Receiver<Call>, secret: Option<&str>) {
    for call in calls {
        if call.answer.is_canceled() {
            continue;
        }
        let left = call.deadline.saturating_duration_since(Instant::now());
        let result = if left.is_zero() {
            Err(timed_out(&call.url))
        } else {
            blocking_post(agent, &call.url, &call.body, secret, left)
        };
        let _ = call.answer.send(result);
    }
}

fn timed_out(url: &str) -> JanusError {
    JanusError::new(
        Code::GatewayTimeout,
        format!("{url} did not answer in time"),
    )
}

/// POSTs a JSON body to `url`; the answer's body on 200.
///
/// # Errors
/// The peer's error as its HTTP status and `info` text (spec 05 §6), 504/502 for
/// timeouts and network failures, 503 when too many calls are already waiting.
pub async fn post_json(url: String, body: String) -> Result<String, JanusError> {
    let Some(pool) = pool() else {
        return Err(JanusError::new(
            Code::InternalError,
            "no worker for proxy-to-proxy calls",
        ));
    };
    let (tx, rx) = oneshot::channel();
    let call = Call {
        url,
        body,
        deadline: Instant::now() + TIMEOUT,
        answer: tx,
    };
    match pool.try_send(call) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(JanusError::new(
                Code::ServiceUnavailable,
                "too many proxy-to-proxy calls in progress",
            ))
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(JanusError::new(
                Code::InternalError,
                "proxy-to-proxy workers are gone",
            ))
        }
    }
    rx.await.unwrap_or_else(|_| {
        Err(JanusError::new(
            Code::InternalError,
            "proxy-to-proxy worker died",
        ))
    })
}

fn blocking_post(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    secret: Option<&str>,
    within: Duration,
) -> Result<String, JanusError> {
    let mut req = agent
        .post(url)
        .config()
        .timeout_global(Some(within))
        .build()
        .header("Content-Type", "application/json");
    if let Some(s) = secret {
        req = req.header("Authorization", &format!("Bearer {s}"));
    }
    let mut resp = req.send(body).map_err(|e| match e {
        ureq::Error::Timeout(_) => timed_out(url),
        e => JanusError::new(Code::BadGateway, format!("cannot reach {url}: {e}")),
    })?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    if status == 200 {
        return Ok(text);
    }
    let info = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("info").and_then(|i| i.as_str()).map(str::to_string))
        .unwrap_or(text);
    Err(JanusError::from_backend(status, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_peer_is_a_bad_gateway() {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let e = blocking_post(
            &agent,
            "http://127.0.0.1:1/plugins/p2pcall/x",
            "{}",
            Some("k"),
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert_eq!(e.code, 502, "{e:?}");
    }
}
