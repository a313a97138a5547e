//! A client connection: the upgrade, then a reading loop that hands each text message to
//! `core` in arrival order, a writer task that formats and batches outgoing frames, and
//! an optional ping/pong watchdog.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

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

/// Time allowed for the HTTP upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one accepted client socket until it closes.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut stream = stream;
    let leftover = match monoio::time::timeout(HANDSHAKE_TIMEOUT, upgrade(&mut stream)).await {
        Ok(Ok(rest)) => rest,
        Ok(Err(e)) => return debug!(error = %e, "client handshake failed"),
        Err(_) => return debug!("client handshake timed out"),
    };
    let killer = Killer::new(&stream);
    let (r, w) = stream.into_split();
    let (tx, rx) = queue();
    let conn = shard.new_conn_id();
    shard.conns.borrow_mut().insert(
        conn.id,
        ConnEntry {
            tx: tx.clone(),
            killer,
            inflight: Default::default(),
            queued: Default::default(),
        },
    );
    shard.metrics.connections.inc();
    let style = shard.config.ws_transport.json;
    monoio::spawn(async move {
        if let Err(e) = ws::write_loop(w, rx, false, move |t| style.apply(t)).await {
            debug!(error = %e, "client write failed");
        }
    });
    let last_heard = Rc::new(Cell::new(Instant::now()));
    let trigger = shard.config.ws_transport.pingpong_trigger;
    if trigger > 0 {
        monoio::spawn(watchdog(
            shard.clone(),
            conn.id,
            last_heard.clone(),
            Duration::from_secs(trigger),
            Duration::from_secs(shard.config.ws_transport.pingpong_timeout),
        ));
    }
    let max = shard.config.ws_transport.max_message_size;
    let mut reader = WsReader::new(r, max, &leftover);
    loop {
        let msg = match reader.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                debug!(error = %e, "client read ended");
                break;
            }
        };
        last_heard.set(Instant::now());
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
            Incoming::Ping(p) => {
                tx.send(Outbound::Pong(p));
            }
            Incoming::Close(_) => {
                tx.send(Outbound::Close);
                break;
            }
            Incoming::Binary(_) | Incoming::Pong => {}
        }
    }
    // Unregister before the socket halves can be dropped (see `Killer`).
    shard.connection_closed(conn);
    drop(tx);
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

/// Pings an idle client and cuts it off when the pong does not come.
async fn watchdog(
    shard: Rc<Shard>,
    conn: u64,
    last_heard: Rc<Cell<Instant>>,
    trigger: Duration,
    timeout: Duration,
) {
    let mut pinged_at: Option<Instant> = None;
    loop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        let conns = shard.conns.borrow();
        let Some(entry) = conns.get(&conn) else {
            return;
        };
        let now = Instant::now();
        let idle = now.duration_since(last_heard.get());
        match pinged_at {
            Some(t) if last_heard.get() > t => pinged_at = None,
            Some(t) if now.duration_since(t) >= timeout => {
                debug!(conn, "no pong from client, closing");
                entry.killer.kill();
                return;
            }
            Some(_) => {}
            None if idle >= trigger => {
                entry.tx.send(Outbound::Ping);
                pinged_at = Some(now);
            }
            None => {}
        }
    }
}
