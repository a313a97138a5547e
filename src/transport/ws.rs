//! A WebSocket stream over a monoio socket (plain TCP, or TLS for `wss://`): the reading
//! half decodes messages into a reused buffer, the writing half batches queued frames into
//! one write. Used for client connections (server side) and backend connections (client
//! side).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf};
use monoio::net::TcpStream;

use super::frame::{self, Decoder, Incoming, Outgoing};
use super::queue::{QueueRx, Weight};

/// Initial read buffer: small, because an idle connection keeps it pinned by its
/// pending read (an io_uring read owns its buffer). It grows for large messages and
/// shrinks back afterwards.
const READ_BUF: usize = 512;

/// Least free room a read is given.
const MIN_READ: usize = 256;

/// Reads WebSocket messages from the reading half of `S` (a TCP or TLS stream).
pub struct WsReader<S = TcpStream> {
    half: OwnedReadHalf<S>,
    buf: Vec<u8>,
    start: usize,
    decoder: Decoder,
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
            self.buf.clear();
            self.start = 0;
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
    // Allocated per batch and let go when the queue is drained: an idle connection holds
    // no write buffer.
    let mut out = Vec::new();
    let mut closing = false;
    while let Some(first) = rx.recv().await {
        out.clear();
        let mut next = Some(first);
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
            break;
        }
        if out.capacity() > MAX_BATCH || rx.is_empty() {
            out = Vec::new();
        }
    }
    Ok(())
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
