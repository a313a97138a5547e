//! A WebSocket stream over a monoio socket (plain TCP, or TLS for `wss://`): the reading
//! half decodes messages into a reused buffer, the writing half batches queued frames into
//! one write. Used for client connections (server side) and backend connections (client
//! side).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf};
use monoio::net::TcpStream;

use super::frame::{self, Decoder, Incoming, Outgoing};
use super::queue::{QueueRx, Weight};

/// Read buffer for a message's bytes. It grows for large messages and shrinks back
/// afterwards.
const READ_BUF: usize = 512;

/// Buffer of the read that waits for a message on a quiet connection: an io_uring read
/// owns its buffer until data comes, so an idle connection keeps this one pinned (issue
/// 12: memory per idle client). A message longer than this is then read in two steps,
/// which a busy connection does not pay (see [`Pace`]).
const IDLE_READ: usize = 24;

/// A connection whose messages come closer together than this is busy: it waits for the
/// next one with a full buffer (one read per message).
const BUSY_GAP: Duration = Duration::from_millis(100);

/// The first messages of a connection (create, attach, …) are awaited with the small
/// buffer whatever their pace: a client that goes idle after them should not keep a full
/// buffer pinned until its first keepalive.
const WARM_UP: u32 = 8;

/// Least free room a read is given.
const MIN_READ: usize = 256;

/// Reads WebSocket messages from the reading half of `S` (a TCP or TLS stream).
pub struct WsReader<S = TcpStream> {
    half: OwnedReadHalf<S>,
    buf: Vec<u8>,
    start: usize,
    decoder: Decoder,
    pace: Pace,
}

impl<S> WsReader<S>
where
    OwnedReadHalf<S>: AsyncReadRent,
{
    /// `leftover`: bytes already read past the handshake.
    pub fn new(half: OwnedReadHalf<S>, max_message: usize, leftover: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(READ_BUF.max(leftover.len()));
        buf.extend_from_slice(leftover);
        WsReader {
            half,
            buf,
            start: 0,
            decoder: Decoder::new(max_message),
            pace: Pace::new(Instant::now()),
        }
    }

    /// The next message; `Ok(None)` at end of stream.
    ///
    /// # Errors
    /// Socket errors and WebSocket protocol violations.
    pub async fn next(&mut self) -> io::Result<Option<Incoming>> {
        loop {
            if self.start < self.buf.len() {
                let (n, msg) = self
                    .decoder
                    .decode(&self.buf[self.start..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                self.start += n;
                if let Some(m) = msg {
                    return Ok(Some(m));
                }
                if n > 0 {
                    continue;
                }
            }
            self.make_room();
            let buf = std::mem::take(&mut self.buf);
            let len = buf.len();
            let (res, slice) = self.half.read(buf.slice_mut(len..)).await;
            self.buf = slice.into_inner();
            if res? == 0 {
                return Ok(None);
            }
        }
    }

    /// Drops consumed bytes and makes sure there is free capacity to read into.
    fn make_room(&mut self) {
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
            if self.pace.next_read_is_small(Instant::now()) {
                if self.buf.capacity() != IDLE_READ {
                    self.buf = Vec::with_capacity(IDLE_READ);
                }
                return;
            }
            if self.buf.capacity() > 4 * READ_BUF {
                self.buf = Vec::with_capacity(READ_BUF);
            }
        } else if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(self.buf.capacity().max(READ_BUF));
        }
    }
}

/// The pace of a connection's messages, as its reader sees it.
struct Pace {
    /// When every byte read was last found decoded, and how many times.
    drained_at: Instant,
    drained: u32,
}

impl Pace {
    fn new(now: Instant) -> Pace {
        Pace {
            drained_at: now,
            drained: 0,
        }
    }

    /// Called when every byte read has been decoded: whether to wait for the next message
    /// with the small buffer (a quiet or new connection) rather than a full one.
    fn next_read_is_small(&mut self, now: Instant) -> bool {
        let gap = now.saturating_duration_since(self.drained_at);
        self.drained_at = now;
        self.drained = self.drained.saturating_add(1);
        self.drained <= WARM_UP || gap >= BUSY_GAP
    }
}

/// What a writer task sends.
pub enum Outbound {
    /// A JSON text message.
    Text(Vec<u8>),
    Ping,
    Pong(Vec<u8>),
    /// Send a close frame and stop.
    Close,
}

impl Weight for Outbound {
    /// Payload bytes; control frames count their header so a ping flood is bounded too.
    fn weight(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Pong(p) => p.len() + 2,
            Outbound::Ping | Outbound::Close => 2,
        }
    }
}

/// Largest write the writer batches from its queue before writing.
const MAX_BATCH: usize = 256 * 1024;

/// Drains `rx` into the socket until the queue ends or a `Close` is sent. Everything
/// queued at the moment of a wake-up goes out in one write. `style` re-formats text
/// payloads (client side); `mask` is required for client-to-server frames.
pub async fn write_loop<W: AsyncWriteRent>(
    mut half: W,
    mut rx: QueueRx<Outbound>,
    mask: bool,
    style: impl Fn(Vec<u8>) -> Vec<u8>,
) -> io::Result<()> {
    while let Some(first) = rx.recv().await {
        if drain(&mut half, &mut rx, first, mask, &style).await? == Drained::Closed {
            break;
        }
    }
    Ok(())
}

/// How a [`drain`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Everything queued was written; the queue is empty now.
    Empty,
    /// A `Close` frame was written: nothing more may follow.
    Closed,
}

/// Writes `first` and everything queued behind it, in batches of at most [`MAX_BATCH`],
/// until the queue is empty (checked after the last write completes, so nothing queued
/// meanwhile is left behind) or a `Close` went out. The batch buffer lives only as long
/// as the call: an idle connection holds no write buffer.
pub async fn drain<W: AsyncWriteRent>(
    half: &mut W,
    rx: &mut QueueRx<Outbound>,
    first: Outbound,
    mask: bool,
    style: &impl Fn(Vec<u8>) -> Vec<u8>,
) -> io::Result<Drained> {
    let mut out = Vec::new();
    let mut next = Some(first);
    while next.is_some() {
        out.clear();
        let mut closing = false;
        while let Some(item) = next {
            let m = mask.then(|| fastrand::u32(..).to_ne_bytes());
            match item {
                Outbound::Text(t) => frame::encode(Outgoing::Text, &style(t), m, &mut out),
                Outbound::Ping => frame::encode(Outgoing::Ping, b"", m, &mut out),
                Outbound::Pong(p) => frame::encode(Outgoing::Pong, &p, m, &mut out),
                Outbound::Close => {
                    frame::encode(Outgoing::Close, &1000u16.to_be_bytes(), m, &mut out);
                    closing = true;
                    break;
                }
            }
            next = if out.len() < MAX_BATCH {
                rx.try_recv()
            } else {
                None
            };
        }
        let (res, buf) = half.write_all(out).await;
        out = buf;
        res?;
        if closing {
            return Ok(Drained::Closed);
        }
        if out.capacity() > MAX_BATCH {
            out = Vec::new();
        }
        next = rx.try_recv();
    }
    Ok(Drained::Empty)
}

/// Shuts a socket down from outside the tasks that read and write it: an in-flight
/// io_uring read cannot be cancelled by dropping it, but shutting the socket down ends
/// it at once. Holds the bare descriptor number (a `dup` would cost a second descriptor
/// per connection against the 20,000 limit).
///
/// Invariant: a `Killer` lives only in the registry entry of its connection, and that
/// entry is removed by the reading task before the socket halves are dropped, so the
/// descriptor is still this socket's whenever `kill` can be called.
#[derive(Debug, Clone, Copy)]
pub struct Killer(std::os::fd::RawFd);

impl Killer {
    pub fn new(stream: &TcpStream) -> Killer {
        Killer(stream.as_raw_fd())
    }

    /// Shuts the socket down both ways; pending reads and writes end at once.
    pub fn kill(&self) {
        // SAFETY: by the type's invariant the descriptor is open and still ours.
        let fd = unsafe { BorrowedFd::borrow_raw(self.0) };
        let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reads_while_new_or_quiet_full_reads_when_busy() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        let ms = |n| t0 + Duration::from_millis(n);
        // the first messages: small whatever their pace
        for i in 1..=u64::from(WARM_UP) {
            assert!(p.next_read_is_small(ms(i)), "message {i}");
        }
        // then busy: full buffer
        assert!(!p.next_read_is_small(ms(10)));
        assert!(!p.next_read_is_small(ms(60)));
        // a quiet spell: small again, until the pace picks up
        assert!(p.next_read_is_small(ms(60 + 25_000)));
        assert!(!p.next_read_is_small(ms(60 + 25_010)));
    }
}
