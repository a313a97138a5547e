//! admin/server: the HTTP/1.1 server of the admin API, shared with janus-sentinel's REST
//! interface. hyper on a current-thread tokio runtime, on a thread of its own.
//!
//! It owns the listening socket and the connections, and enforces every bound the
//! network could otherwise push on us: at most [`Limits::max_connections`] connections
//! (more are accepted and closed at once, so the kernel backlog never fills), headers
//! (and keep-alive idleness) within [`Limits::header_timeout`], a body of at most
//! [`Limits::max_body`] bytes received within [`Limits::body_timeout`] (else 413 or 408
//! and the connection is closed). It applies the access rules of [`super::http::admit`]
//! and adds CORS headers only for configured origins.
//!
//! It must never block: a [`Service`] gets a parsed request and answers with a future;
//! whatever may block (the server store, a shard) runs elsewhere and is awaited here, so
//! one slow client or a slow store never delays the other connections.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{debug, info, warn};

use super::http::{self, Policy, Reply, Seen};

/// The request method, as the routes match it.
pub use hyper::Method;

/// Bounds on what clients may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body: usize,
    /// Time allowed for a request's headers, and for a kept-alive connection to idle.
    pub header_timeout: Duration,
    /// Time allowed to receive a request's body.
    pub body_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl From<&crate::config::AdminApi> for Limits {
    fn from(a: &crate::config::AdminApi) -> Limits {
        Limits {
            max_body: a.max_body_size,
            header_timeout: Duration::from_secs(a.header_timeout),
            body_timeout: Duration::from_secs(a.body_timeout),
            max_connections: a.max_connections,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 256 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// A request that passed the access rules, with its body read and parsed.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// Query string overlaid by the body (see [`http::params`]).
    pub params: BTreeMap<String, String>,
}

/// The answer of a [`Service`].
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// The routes served.
pub trait Service: Send + Sync + 'static {
    /// The methods of the route at `path` (comma list), `None` when there is no such
    /// route: the CORS preflight answer.
    fn methods(&self, path: &str) -> Option<&'static str>;
    /// Answers one admitted request. Must not block.
    fn call(&self, req: Request) -> ReplyFuture;
}

/// Binds the listener now, so that a taken address fails at start.
///
/// # Errors
/// The address is invalid or cannot be bound.
pub fn bind(listen: &str) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(listen)
        .map_err(|e| std::io::Error::other(format!("cannot listen on {listen}: {e}")))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A server running on its own thread; [`Running::stop`] (or drop) ends it.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, and returns once the server thread is gone (open connections are
    /// dropped).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves `service` on `listener` from a new thread named `name`.
///
/// # Errors
/// The thread or its runtime cannot be started.
pub fn spawn(
    name: &str,
    listener: std::net::TcpListener,
    limits: Limits,
    policy: Policy,
    service: Arc<dyn Service>,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ctx = Arc::new(Ctx {
        limits,
        policy,
        service,
    });
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(l, ctx, rx).await,
                    Err(e) => warn!(error = %e, "cannot adopt the HTTP listener"),
                }
            });
        })?;
    info!(listen = %addr, "HTTP interface listening");
    Ok(Running {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}

struct Ctx {
    limits: Limits,
    policy: Policy,
    service: Arc<dyn Service>,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    ctx: Arc<Ctx>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(ctx.limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "connection limit reached: closing the new connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc_ctx = ctx.clone();
            let svc = hyper::service::service_fn(move |req| {
                let ctx = svc_ctx.clone();
                async move { Ok::<_, Infallible>(ctx.handle(req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ctx.limits.header_timeout)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            if let Err(e) = served {
                debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

fn header<'a>(parts: &'a hyper::http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

impl Ctx {
    async fn handle(&self, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let origin = header(&parts, "origin");
        let cors = origin
            .filter(|o| self.policy.origin_allowed(o))
            .map(str::to_string);
        let path = parts.uri.path().to_string();
        if parts.method == Method::OPTIONS {
            let asked = header(&parts, "access-control-request-method");
            let reply = http::preflight(self.service.methods(&path), &path, asked);
            return respond(reply, cors.as_deref(), false);
        }
        let content_type = header(&parts, "content-type");
        let seen = Seen {
            method: parts.method.as_str(),
            origin,
            authorization: header(&parts, "authorization"),
            content_type,
        };
        if let Err(refusal) = http::admit(&self.policy, &seen) {
            // The body is left unread: the connection must not be reused.
            return respond(refusal, cors.as_deref(), true);
        }
        let declared = header(&parts, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limits.max_body as u64) {
            return respond(too_large(self.limits.max_body), cors.as_deref(), true);
        }
        let limited = Limited::new(body, self.limits.max_body);
        let bytes = match tokio::time::timeout(self.limits.body_timeout, limited.collect()).await {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return respond(too_large(self.limits.max_body), cors.as_deref(), true);
            }
            Ok(Err(e)) => {
                let r = Reply::error(400, "ValidationError", format!("cannot read body: {e}"));
                return respond(r, cors.as_deref(), true);
            }
            Err(_) => {
                let r = Reply::error(
                    408,
                    "RequestTimeout",
                    format!(
                        "the body did not arrive within {} s",
                        self.limits.body_timeout.as_secs()
                    ),
                );
                return respond(r, cors.as_deref(), true);
            }
        };
        let params = match http::params(parts.uri.query(), content_type, &bytes) {
            Ok(p) => p,
            Err(e) => {
                return respond(
                    Reply::error(400, "ValidationError", e),
                    cors.as_deref(),
                    false,
                )
            }
        };
        let reply = self
            .service
            .call(Request {
                method: parts.method.clone(),
                path,
                params,
            })
            .await;
        respond(reply, cors.as_deref(), false)
    }
}

fn too_large(max: usize) -> Reply {
    Reply::error(
        413,
        "PayloadTooLarge",
        format!("body larger than {max} bytes"),
    )
}

/// The HTTP response of `reply`, with `Access-Control-Allow-Origin` for an allowed origin
/// and `Connection: close` when the connection must end.
fn respond(reply: Reply, cors: Option<&str>, close: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    h.insert(hyper::header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = cors.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    if close {
        h.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    struct Echo;

    impl Service for Echo {
        fn methods(&self, path: &str) -> Option<&'static str> {
            (path == "/echo").then_some("GET,POST")
        }
        fn call(&self, req: Request) -> ReplyFuture {
            Box::pin(async move {
                if req.path == "/echo" {
                    Reply::json(200, &req.params)
                } else {
                    http::not_found(req.method.as_str(), &req.path)
                }
            })
        }
    }

    fn start(limits: Limits, policy: Policy) -> Running {
        let l = bind("127.0.0.1:0").expect("bind");
        spawn("test-http", l, limits, policy, Arc::new(Echo)).expect("spawn")
    }

    fn exchange(addr: SocketAddr, raw: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_and_applies_rules() {
        let srv = start(
            Limits {
                max_body: 1024,
                ..Limits::default()
            },
            Policy {
                secret: Some("k".into()),
                cors_origins: vec!["http://ok.example".into()],
            },
        );
        let a = srv.addr;
        let r = exchange(
            a,
            "POST /echo?q=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nOrigin: http://ok.example\r\n\
             Content-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"b\":\"2\"}",
        );
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.contains("\"q\": \"1\"") && r.contains("\"b\": \"2\""),
            "{r}"
        );
        assert!(r
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: http://ok.example"));
        let r = exchange(
            a,
            "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
        let r = exchange(
            a,
            "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 5000\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
        let r = exchange(
            a,
            "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\
             Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(!r
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"));
        srv.stop();
    }

    #[test]
    fn slow_body_is_cut_and_cap_holds() {
        let srv = start(
            Limits {
                body_timeout: Duration::from_millis(500),
                max_connections: 2,
                ..Limits::default()
            },
            Policy::default(),
        );
        let a = srv.addr;
        let mut slow = TcpStream::connect(a).unwrap();
        slow.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        // Another connection is served meanwhile.
        let r = exchange(
            a,
            "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let mut out = String::new();
        let _ = slow.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        assert!(t.elapsed() < Duration::from_secs(3));
        srv.stop();
    }

    #[test]
    fn connections_over_the_cap_are_closed() {
        let srv = start(
            Limits {
                max_connections: 2,
                ..Limits::default()
            },
            Policy::default(),
        );
        let a = srv.addr;
        // Two idle connections fill the cap: a third is closed at once.
        let _i1 = TcpStream::connect(a).unwrap();
        let _i2 = TcpStream::connect(a).unwrap();
        let mut third = TcpStream::connect(a).unwrap();
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        let n = third.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "over the cap: closed without an answer");
        srv.stop();
    }
}
