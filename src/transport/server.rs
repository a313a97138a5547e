//! Client connections: the accept loops of one shard's listeners ([`Door`]: WebSocket or
//! HTTP, each plain or TLS; a slot under `limits.max_connections`, else `503`), the TLS
//! handshake and the upgrade within `limits.handshake_timeout`, then for WebSockets a
//! reading loop that hands each text message to the [`Handler`] in arrival order and a
//! writer task that formats and batches outgoing frames from a byte-bounded queue; for
//! HTTP, one request after the other: static files answered here, `/janus` requests
//! handed whole to the [`Handler`], CORS as Janus's HTTP transport.
//!
//! Knows no Janus session: the handler (the core) decides what a message means. Idle
//! checks (ping/pong, no session) run in the handler's once-a-second sweep, not in a task
//! per connection.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, Split, Splitable,
};
use monoio::net::TcpStream;
use tracing::{debug, warn};

use super::conn::{Conn, Cut, Disconnects, Slot};
use super::frame::Incoming;
use super::handshake;
use super::http::{self, ApiRequest, ApiResponse, HttpOptions, Route};
use super::queue::{queue, QueueRx};
use super::tls::Acceptor;
use super::ws::{self, Killer, Outbound, WsReader};
use crate::config::{Config, JsonStyle};

/// What a shard's connection tasks report, in order, for each connection. Implemented
/// by the core; called on the connection's shard, never re-entrantly.
pub trait Handler: 'static {
    /// A client finished its upgrade: keep `conn`, return the id it is known by.
    fn connected(self: &Rc<Self>, conn: Rc<Conn>) -> u64;
    /// One complete text message, valid UTF-8.
    fn text(self: &Rc<Self>, id: u64, text: &str);
    /// A message the transport could not hand over.
    fn refused(self: &Rc<Self>, id: u64, why: Refused);
    /// The connection ended; drop its [`Conn`].
    fn closed(self: &Rc<Self>, id: u64);
    /// A request of Janus's REST API (a path under `/janus`), whole; the answer comes when
    /// the returned future ends (a long poll waits there).
    fn http(self: &Rc<Self>, req: ApiRequest) -> Pin<Box<dyn Future<Output = ApiResponse>>>;
}

/// Why a message was not handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotUtf8,
    /// Over `max_message_size`, with its size as far as known; it was discarded.
    TooBig {
        size: u64,
        max: usize,
    },
}

/// How client connections are served (from `[ws_transport]` and `[limits]`).
#[derive(Debug, Clone)]
pub struct ConnOptions {
    pub handshake_timeout: Duration,
    /// Idle time before TCP keepalive probes; zero = off.
    pub tcp_keepalive: Duration,
    pub max_queued_bytes: usize,
    pub max_message_size: usize,
    pub json: JsonStyle,
    /// Proxy-wide connection cap and its counter.
    pub max_connections: usize,
    pub open: Arc<AtomicUsize>,
    pub disconnects: Arc<Disconnects>,
    /// Set when the proxy drains: new connections are refused like over-capacity ones.
    pub draining: Arc<AtomicBool>,
}

impl ConnOptions {
    pub fn new(
        config: &Config,
        open: Arc<AtomicUsize>,
        disconnects: Arc<Disconnects>,
        draining: Arc<AtomicBool>,
    ) -> Self {
        let l = &config.limits;
        ConnOptions {
            handshake_timeout: Duration::from_secs(l.handshake_timeout),
            tcp_keepalive: Duration::from_secs(l.tcp_keepalive),
            max_queued_bytes: l.max_queued_bytes_per_connection,
            max_message_size: config.ws_transport.max_message_size,
            json: config.ws_transport.json,
            max_connections: l.max_connections,
            open,
            disconnects,
            draining,
        }
    }
}

/// What a listener serves.
#[derive(Clone)]
pub enum Serve {
    /// The Janus WebSocket API (`ws://`, or `wss://` with TLS).
    Ws,
    /// Janus's REST API with long polls, and static files (`http://`, `https://`).
    Http(Arc<HttpOptions>),
}

/// One listener of a shard: its socket, what it serves, and its TLS acceptor if any.
pub struct Door {
    pub listener: StdListener,
    pub serve: Serve,
    pub tls: Option<Acceptor>,
}

/// Accepts clients on one of this shard's listeners until the process exits: each gets a
/// slot under the proxy-wide cap (or a `503` and a close) and its own connection task.
pub async fn accept_loop<H: Handler>(
    door: Door,
    handler: Rc<H>,
    opts: Rc<ConnOptions>,
) -> std::io::Result<()> {
    let listener = monoio::net::TcpListener::from_std(door.listener)?;
    let (serve, tls) = (door.serve, door.tls);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) if opts.draining.load(Ordering::Relaxed) => {
                debug!(%peer, "connection refused: draining");
                opts.disconnects.count(Cut::OverCapacity);
                if tls.is_none() {
                    monoio::spawn(refuse(stream));
                }
            }
            Ok((stream, peer)) => match Slot::take(&opts.open, opts.max_connections) {
                Some(slot) => {
                    debug!(%peer, "client connected");
                    let conn = serve_conn(
                        handler.clone(),
                        stream,
                        slot,
                        opts.clone(),
                        serve.clone(),
                        tls.clone(),
                    );
                    monoio::spawn(conn);
                }
                None => {
                    debug!(%peer, max = opts.max_connections, "connection refused: at capacity");
                    opts.disconnects.count(Cut::OverCapacity);
                    if tls.is_none() {
                        monoio::spawn(refuse(stream));
                    }
                }
            },
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What an over-capacity client gets before the socket closes.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 5\r\n\r\n";

/// Answers a connection that found no free slot, then drops it.
async fn refuse(mut stream: TcpStream) {
    let _ = monoio::time::timeout(Duration::from_secs(1), stream.write_all(OVER_CAPACITY)).await;
}

/// A client socket's task: the listener's protocol, after TLS when the listener has it.
/// Each kind is its own boxed future: a spawned future is as large as its largest state,
/// and an idle plain WebSocket must not keep room for a TLS handshake or an HTTP parser
/// (issue 12: memory per idle client).
fn serve_conn<H: Handler>(
    handler: Rc<H>,
    stream: TcpStream,
    slot: Slot,
    opts: Rc<ConnOptions>,
    serve: Serve,
    tls: Option<Acceptor>,
) -> Pin<Box<dyn Future<Output = ()>>> {
    let _ = stream.set_nodelay(true);
    if !opts.tcp_keepalive.is_zero() {
        set_keepalive(&stream, opts.tcp_keepalive);
    }
    let killer = Killer::new(&stream);
    match (tls, serve) {
        (None, Serve::Ws) => Box::pin(serve_ws(handler, stream, killer, slot, opts)),
        (None, Serve::Http(h)) => Box::pin(serve_http(handler, stream, slot, opts, h)),
        (Some(acceptor), serve) => Box::pin(serve_tls(
            handler, stream, killer, slot, opts, serve, acceptor,
        )),
    }
}

/// TLS first (within the handshake timeout), then the listener's protocol.
async fn serve_tls<H: Handler>(
    handler: Rc<H>,
    stream: TcpStream,
    killer: Killer,
    slot: Slot,
    opts: Rc<ConnOptions>,
    serve: Serve,
    acceptor: Acceptor,
) {
    let accepted =
        monoio::time::timeout(opts.handshake_timeout, Box::pin(acceptor.accept(stream))).await;
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            opts.disconnects.count(Cut::Handshake);
            return debug!(error = %e, "TLS handshake failed");
        }
        Err(_) => {
            opts.disconnects.count(Cut::Handshake);
            return debug!("TLS handshake timed out");
        }
    };
    match serve {
        Serve::Ws => Box::pin(serve_ws(handler, stream, killer, slot, opts)).await,
        Serve::Http(h) => Box::pin(serve_http(handler, stream, slot, opts, h)).await,
    }
}

/// Serves one WebSocket client (plain or TLS) until it closes.
async fn serve_ws<H: Handler, S>(
    handler: Rc<H>,
    mut stream: S,
    killer: Killer,
    slot: Slot,
    opts: Rc<ConnOptions>,
) where
    S: AsyncReadRent + AsyncWriteRent + Split + 'static,
{
    // Boxed, timer included: the handshake's state is gone once it is done.
    let handshake = Box::pin(monoio::time::timeout(
        opts.handshake_timeout,
        upgrade(&mut stream),
    ));
    let leftover = match handshake.await {
        Ok(Ok(rest)) => rest,
        Ok(Err(e)) => {
            opts.disconnects.count(Cut::Handshake);
            return debug!(error = %e, "client handshake failed");
        }
        Err(_) => {
            opts.disconnects.count(Cut::Handshake);
            return debug!("client handshake timed out");
        }
    };
    let (r, w) = stream.into_split();
    let (tx, rx) = queue(opts.max_queued_bytes);
    let conn = Rc::new(Conn::new(tx, killer, opts.disconnects.clone(), slot));
    let id = handler.connected(conn.clone());
    park_writer(w, rx, opts.json, Rc::downgrade(&conn));
    let reader = WsReader::new(r, opts.max_message_size, &leftover);
    // The connection's life goes on in a task of its own, sized for reading: this one,
    // sized for the handshake too, ends here (issue 12: memory per idle client).
    monoio::spawn(read_loop(handler, conn, id, reader, opts));
}

/// Hands a client's messages to the handler until it closes or breaks the protocol.
async fn read_loop<H: Handler, S>(
    handler: Rc<H>,
    conn: Rc<Conn>,
    id: u64,
    mut reader: WsReader<S>,
    opts: Rc<ConnOptions>,
) where
    OwnedReadHalf<S>: AsyncReadRent,
{
    let max = opts.max_message_size;
    loop {
        let msg = match reader.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                if !conn.is_closing() {
                    opts.disconnects.count(Cut::Protocol);
                }
                debug!(error = %e, "client read ended");
                break;
            }
        };
        conn.heard(Instant::now());
        match msg {
            Incoming::Text(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => handler.text(id, text),
                Err(_) => handler.refused(id, Refused::NotUtf8),
            },
            Incoming::TooBig(size) => handler.refused(id, Refused::TooBig { size, max }),
            Incoming::Ping(p) => conn.send(Outbound::Pong(p)),
            Incoming::Close(_) => {
                conn.send(Outbound::Close);
                break;
            }
            Incoming::Binary(_) | Incoming::Pong => {}
        }
    }
    // Unregister before the socket halves can be dropped (see `Killer`).
    handler.closed(id);
}

/// Leaves a client's writer parked in its connection until a frame is queued; the task
/// then started writes and parks it again once the queue is empty (see
/// [`ParkedWriter`](super::conn::ParkedWriter)). `conn` is weak: the parked writer lives
/// inside the connection, and a strong reference would keep it alive forever.
fn park_writer<W: AsyncWriteRent + 'static>(
    half: W,
    mut rx: QueueRx<Outbound>,
    style: JsonStyle,
    conn: Weak<Conn>,
) {
    let Some(c) = conn.upgrade() else { return };
    rx.release_storage();
    c.park_writer(Box::new(move || {
        monoio::spawn(write_burst(half, rx, style, conn));
    }));
}

/// One burst of a client's writer: everything queued, then park (or stop after a close
/// frame or a failed write).
async fn write_burst<W: AsyncWriteRent + 'static>(
    mut half: W,
    mut rx: QueueRx<Outbound>,
    style: JsonStyle,
    conn: Weak<Conn>,
) {
    let Some(first) = rx.try_recv() else {
        return park_writer(half, rx, style, conn);
    };
    match ws::drain(&mut half, &mut rx, first, false, &|t| style.apply(t)).await {
        // Nothing is awaited between the queue found empty and the park: no frame can
        // slip in unwritten.
        Ok(ws::Drained::Empty) => park_writer(half, rx, style, conn),
        Ok(ws::Drained::Closed) => {}
        Err(e) => debug!(error = %e, "client write failed"),
    }
}

/// How long a kept-alive HTTP connection may wait for its next request (as Janus's
/// libmicrohttpd connection timeout).
const HTTP_IDLE: Duration = Duration::from_secs(120);

/// Reads more bytes into `buf` within `until`. `Ok(false)` at end of stream.
async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    until: Instant,
) -> std::io::Result<bool> {
    let len = buf.len();
    if buf.capacity() - len < 1024 {
        buf.reserve(4096);
    }
    let left = until.saturating_duration_since(Instant::now());
    let taken = std::mem::take(buf);
    match monoio::time::timeout(left, stream.read(taken.slice_mut(len..))).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            Ok(res? > 0)
        }
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Serves HTTP/1.1 requests on one connection (plain or TLS), one after the other, until
/// the client closes, asks to close, errs or idles past [`HTTP_IDLE`]. A request's head
/// and body must arrive within `limits.handshake_timeout` of its first byte; bodies are
/// bounded by `ws_transport.max_message_size`.
async fn serve_http<H: Handler, S>(
    handler: Rc<H>,
    mut stream: S,
    _slot: Slot,
    opts: Rc<ConnOptions>,
    http_opts: Arc<HttpOptions>,
) where
    S: AsyncReadRent + AsyncWriteRent,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Wait for the first byte of the next request.
        if buf.is_empty() {
            match read_more(&mut stream, &mut buf, Instant::now() + HTTP_IDLE).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
        let deadline = Instant::now() + opts.handshake_timeout;
        let parsed = loop {
            match http::parse_head(&buf, opts.max_message_size) {
                Ok(Some(p)) => break Ok(p),
                Ok(None) => match read_more(&mut stream, &mut buf, deadline).await {
                    Ok(true) => continue,
                    Ok(false) => return,
                    Err(_) => {
                        opts.disconnects.count(Cut::Handshake);
                        return;
                    }
                },
                Err(e) => break Err(e),
            }
        };
        let (n, head) = match parsed {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "bad HTTP request");
                opts.disconnects.count(Cut::Protocol);
                let out = http::text_response(e.status(), &e.to_string(), false);
                let _ = monoio::time::timeout(Duration::from_secs(1), stream.write_all(out)).await;
                return;
            }
        };
        if head.expect_continue && (head.chunked || buf.len() < n + head.content_length) {
            let (res, _) = stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
                .await;
            if res.is_err() {
                return;
            }
        }
        // The body: Content-Length bytes, or chunks (bounded the same way).
        let (used, body) = loop {
            let have = if head.chunked {
                match http::decode_chunked(&buf[n..], opts.max_message_size) {
                    Ok(done) => done,
                    Err(e) => {
                        debug!(error = %e, "bad HTTP request body");
                        opts.disconnects.count(Cut::Protocol);
                        let out = http::text_response(e.status(), &e.to_string(), false);
                        let _ =
                            monoio::time::timeout(Duration::from_secs(1), stream.write_all(out))
                                .await;
                        return;
                    }
                }
            } else if buf.len() >= n + head.content_length {
                Some((
                    head.content_length,
                    buf[n..n + head.content_length].to_vec(),
                ))
            } else {
                None
            };
            if let Some(done) = have {
                break done;
            }
            match read_more(&mut stream, &mut buf, deadline).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => {
                    opts.disconnects.count(Cut::Handshake);
                    let out = http::text_response(408, "request body too slow", false);
                    let _ =
                        monoio::time::timeout(Duration::from_secs(1), stream.write_all(out)).await;
                    return;
                }
            }
        };
        buf.drain(..n + used);
        let keep_alive = head.keep_alive;
        let out = match http::route(&head) {
            Route::File => http::file_response(http_opts.files.as_deref(), &head),
            Route::Preflight => {
                http::response(200, &http_opts.cors.headers(&head), b"", keep_alive, false)
            }
            Route::Api if http_opts.cors.refuses(&head) => {
                http::response(403, &http_opts.cors.headers(&head), b"", keep_alive, false)
            }
            Route::Api => {
                let req = ApiRequest {
                    method: head.method.clone(),
                    path: head.path[http::API_PATH.len()..].to_string(),
                    query: head.query.clone(),
                    body,
                };
                let mut headers = http_opts.cors.headers(&head);
                match handler.http(req).await {
                    ApiResponse::Json(json) => {
                        headers.push(("Content-Type", "application/json".into()));
                        let json = if json.is_empty() {
                            json
                        } else {
                            opts.json.apply(json)
                        };
                        http::response(200, &headers, &json, keep_alive, false)
                    }
                    ApiResponse::Empty(status) => {
                        http::response(status, &headers, b"", keep_alive, false)
                    }
                    ApiResponse::Redirect(to) => {
                        headers.push(("Location", to));
                        http::response(302, &headers, b"", keep_alive, false)
                    }
                    ApiResponse::Close => return,
                }
            }
        };
        let (res, _) = stream.write_all(out).await;
        if res.is_err() || !keep_alive {
            return;
        }
    }
}

/// TCP keepalive: probes after `idle` of silence, then every `idle / 6`, 6 times, so a
/// vanished host's connection ends about `2 * idle` after it went quiet.
fn set_keepalive(stream: &TcpStream, idle: Duration) {
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let ka = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval((idle / 6).max(Duration::from_secs(1)))
        .with_retries(6);
    if let Err(e) = socket2::SockRef::from(&fd).set_tcp_keepalive(&ka) {
        debug!(error = %e, "cannot enable TCP keepalive");
    }
}

/// Reads the HTTP upgrade and answers it. Returns bytes received after the head.
async fn upgrade<S: AsyncReadRent + AsyncWriteRent>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let len = buf.len();
        if buf.capacity() - len < 256 {
            buf.reserve(1024);
        }
        let (res, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        if res? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match handshake::parse_upgrade(&buf) {
            // An over-long head is reported as an error, so this only means "read more".
            Ok(None) => continue,
            Ok(Some((n, up))) => {
                let (res, _) = stream.write_all(handshake::accept_response(&up)).await;
                res?;
                return Ok(buf.split_off(n));
            }
            Err(e) => {
                let (res, _) = stream.write_all(handshake::reject_response(&e)).await;
                res?;
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        }
    }
}
