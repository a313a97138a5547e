//! A client connection: a slot under `limits.max_connections`, the upgrade within
//! `limits.handshake_timeout`, then a reading loop that hands each text message to `core`
//! in arrival order and a writer task that formats and batches outgoing frames from a
//! byte-bounded queue. Idle checks (ping/pong, no session) run in the shard's sweep, not
//! in a task per connection.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use tracing::debug;

use super::frame::Incoming;
use super::handshake;
use super::ws::{self, Killer, Outbound, WsReader};
use crate::admin::metrics::ShardCounters;
use crate::api::error::{Code, JanusError};
use crate::core::dispatch;
use crate::runtime::local_queue::queue;
use crate::runtime::shard::{ConnEntry, Shard};

/// Holds one of the proxy-wide connection slots (`limits.max_connections`) while a
/// client connection lives, from accept to close.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a slot, or `None` when all `max` are taken.
    pub fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        let prev = open.fetch_add(1, Ordering::Relaxed);
        if prev >= max {
            open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What an over-capacity client gets before the socket closes.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 5\r\n\r\n";

/// Answers a connection that found no free slot, then drops it.
pub async fn refuse(mut stream: TcpStream) {
    let _ = monoio::time::timeout(Duration::from_secs(1), stream.write_all(OVER_CAPACITY)).await;
}

/// Serves one accepted client socket until it closes.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let limits = &shard.config.limits;
    if limits.tcp_keepalive > 0 {
        set_keepalive(&stream, Duration::from_secs(limits.tcp_keepalive));
    }
    let mut stream = stream;
    let within = Duration::from_secs(limits.handshake_timeout);
    let leftover = match monoio::time::timeout(within, upgrade(&mut stream)).await {
        Ok(Ok(rest)) => rest,
        Ok(Err(e)) => {
            shard.metrics.disconnect("handshake");
            return debug!(error = %e, "client handshake failed");
        }
        Err(_) => {
            shard.metrics.disconnect("handshake");
            return debug!("client handshake timed out");
        }
    };
    let killer = Killer::new(&stream);
    let (r, w) = stream.into_split();
    let (tx, rx) = queue(limits.max_queued_bytes_per_connection);
    let conn = shard.new_conn_id();
    shard
        .conns
        .borrow_mut()
        .insert(conn.id, ConnEntry::new(tx.clone(), killer, slot));
    shard.metrics.connections.inc();
    let style = shard.config.ws_transport.json;
    monoio::spawn(async move {
        if let Err(e) = ws::write_loop(w, rx, false, move |t| style.apply(t)).await {
            debug!(error = %e, "client write failed");
        }
    });
    let max = shard.config.ws_transport.max_message_size;
    let mut reader = WsReader::new(r, max, &leftover);
    loop {
        let msg = match reader.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                shard.metrics.disconnect("protocol");
                debug!(error = %e, "client read ended");
                break;
            }
        };
        shard.heard_from(conn.id);
        match msg {
            Incoming::Text(bytes) => {
                ShardCounters::bump(&shard.counters.client_in);
                match std::str::from_utf8(&bytes) {
                    Ok(text) => dispatch::handle_frame(&shard, text, conn),
                    Err(_) => {
                        let e = JanusError::new(
                            Code::InvalidJson,
                            "Invalid Janus API request - not UTF-8",
                        );
                        shard.reply_error(conn, 0, None, &e);
                    }
                }
            }
            Incoming::TooBig(n) => {
                let e = JanusError::new(
                    Code::TransportSpecific,
                    format!("Message too large: {n} bytes (max_message_size is {max})"),
                );
                shard.reply_error(conn, 0, None, &e);
            }
            Incoming::Ping(p) => shard.send_control(conn.id, Outbound::Pong(p)),
            Incoming::Close(_) => {
                shard.send_control(conn.id, Outbound::Close);
                break;
            }
            Incoming::Binary(_) | Incoming::Pong => {}
        }
    }
    // Unregister before the socket halves can be dropped (see `Killer`).
    shard.connection_closed(conn);
    drop(tx);
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
async fn upgrade(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
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
