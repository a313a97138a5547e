//! Calls to other proxies' admin APIs (multi-proxy videocall and p2pcall, spec 05 §6,
//! 06 §7).
//!
//! Owns a small fixed pool of worker threads sharing one HTTP agent (so connections to a
//! peer proxy are reused), fed by a bounded queue. A shard only enqueues and awaits the
//! answer; it never runs the blocking client. Each call carries the cluster secret as
//! `Authorization: Bearer` and has [`TIMEOUT`] from the moment it is queued; when the
//! queue is full the call fails at once with 503 instead of piling up.

use std::future::Future;
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

/// The client for other proxies: a plugin service (set up by the plugins that call other
/// proxies, at start), shared by every shard.
pub struct ProxyClient {
    pool: Option<Pool>,
}

impl ProxyClient {
    /// Starts the workers; calls carry `secret` as bearer (the cluster secret).
    pub fn start(secret: Option<String>) -> ProxyClient {
        ProxyClient {
            pool: Pool::start(WORKERS, QUEUE, TIMEOUT, secret),
        }
    }

    /// POSTs a JSON body to `url`; the answer's body on 200. The call is queued at once;
    /// the returned future only waits for its answer.
    ///
    /// # Errors
    /// The peer's error as its HTTP status and `info` text (spec 05 §6), 504/502 for
    /// timeouts and network failures, 503 when too many calls are already waiting.
    pub fn post_json(
        &self,
        url: String,
        body: String,
    ) -> impl Future<Output = Result<String, JanusError>> + 'static {
        let queued = match &self.pool {
            Some(pool) => pool.submit(url, body),
            None => Err(JanusError::new(
                Code::InternalError,
                "no worker for proxy-to-proxy calls",
            )),
        };
        async move {
            queued?.await.unwrap_or_else(|_| {
                Err(JanusError::new(
                    Code::InternalError,
                    "proxy-to-proxy worker died",
                ))
            })
        }
    }
}

/// Worker threads sharing one agent, fed by a bounded queue.
struct Pool {
    calls: Sender<Call>,
    timeout: Duration,
}

impl Pool {
    /// Starts `workers` threads; `None` when none could be started.
    fn start(
        workers: usize,
        queue: usize,
        timeout: Duration,
        secret: Option<String>,
    ) -> Option<Pool> {
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_idle_age(IDLE)
            .build()
            .into();
        let mut started = 0;
        for i in 0..workers {
            let (agent, rx, secret) = (agent.clone(), rx.clone(), secret.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("proxy-call-{i}"))
                .spawn(move || worker(&agent, &rx, secret.as_deref()));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => warn!(error = %e, "cannot start a proxy-call worker"),
            }
        }
        (started > 0).then_some(Pool { calls: tx, timeout })
    }

    /// Queues a call; its answer arrives on the returned channel.
    ///
    /// # Errors
    /// 503 when the queue is full, 500 when the workers are gone.
    fn submit(
        &self,
        url: String,
        body: String,
    ) -> Result<oneshot::Receiver<Result<String, JanusError>>, JanusError> {
        let (tx, rx) = oneshot::channel();
        let call = Call {
            url,
            body,
            deadline: Instant::now() + self.timeout,
            answer: tx,
        };
        match self.calls.try_send(call) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(JanusError::new(
                Code::ServiceUnavailable,
                "too many proxy-to-proxy calls in progress",
            )),
            Err(TrySendError::Disconnected(_)) => Err(JanusError::new(
                Code::InternalError,
                "proxy-to-proxy workers are gone",
            )),
        }
    }
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
    fn a_full_queue_fails_at_once_and_calls_time_out() {
        // A peer that accepts connections and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/plugins/p2pcall/x", silent.local_addr().unwrap());
        let pool = Pool::start(1, 1, Duration::from_millis(500), Some("k".into())).unwrap();
        let first = pool.submit(url.clone(), "{}".into()).unwrap();
        // The worker takes the first call off the queue; the second then fills it.
        let t = Instant::now();
        let second = loop {
            match pool.submit(url.clone(), "{}".into()) {
                Ok(rx) if pool.calls.is_full() => break rx,
                Ok(_) => panic!("the worker did not take the first call"),
                Err(e) => {
                    assert!(t.elapsed() < Duration::from_secs(5), "{e:?}");
                    std::thread::yield_now();
                }
            }
        };
        let third = pool.submit(url, "{}".into()).unwrap_err();
        assert_eq!(third.code, 503, "{third:?}");
        // Both queued calls end within their deadline, as timeouts.
        for rx in [first, second] {
            let r = block_on(rx);
            assert_eq!(r.map_err(|e| e.code), Err(504));
        }
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// Waits for a oneshot answer on this thread (parked until the answer wakes it).
    fn block_on(
        mut rx: oneshot::Receiver<Result<String, JanusError>>,
    ) -> Result<String, JanusError> {
        use std::future::Future;
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Arc::new(Unpark(std::thread::current())).into();
        let mut cx = Context::from_waker(&waker);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::pin::Pin::new(&mut rx).poll(&mut cx) {
                Poll::Ready(Ok(r)) => return r,
                Poll::Ready(Err(_)) => panic!("answer dropped"),
                Poll::Pending => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    assert!(!left.is_zero(), "no answer");
                    std::thread::park_timeout(left);
                }
            }
        }
    }

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
