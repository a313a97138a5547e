//! A client connection as the rest of the proxy holds it: queue frames on it (within its
//! byte budget), cut it, and keep its liveness bookkeeping (last heard, ping pending). Also
//! the one-answer "connection" of an HTTP request: the first frame sent on it is the HTTP
//! response. Knows nothing of Janus: what the frames mean is the handler's business.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use tracing::debug;

use super::queue::{QueueTx, SendError};
use super::ws::{Killer, Outbound};

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

/// Why the proxy closed (or refused) a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its frames queued beyond its byte budget: it does not read.
    SlowReader,
    /// No free connection slot.
    OverCapacity,
    /// Its handshake failed or took too long.
    Handshake,
    /// It broke the WebSocket protocol.
    Protocol,
    /// It did not answer a ping in time.
    NoPong,
    /// It held no session for too long (decided by the handler).
    NoSession,
}

impl Cut {
    pub const ALL: [Cut; 6] = [
        Cut::SlowReader,
        Cut::OverCapacity,
        Cut::Handshake,
        Cut::Protocol,
        Cut::NoPong,
        Cut::NoSession,
    ];

    /// The `reason` label in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cut::SlowReader => "slow_reader",
            Cut::OverCapacity => "over_capacity",
            Cut::Handshake => "handshake",
            Cut::Protocol => "protocol",
            Cut::NoPong => "no_pong",
            Cut::NoSession => "no_session",
        }
    }
}

/// Cut connections by reason, proxy-wide.
#[derive(Debug, Default)]
pub struct Disconnects([AtomicU64; Cut::ALL.len()]);

impl Disconnects {
    pub fn count(&self, why: Cut) {
        self.0[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason with its count.
    pub fn snapshot(&self) -> impl Iterator<Item = (Cut, u64)> + '_ {
        Cut::ALL
            .into_iter()
            .map(|c| (c, self.0[c as usize].load(Ordering::Relaxed)))
    }
}

/// Where a connection's frames go.
enum Sink {
    /// An upgraded WebSocket: its writer's queue, its socket to cut, and its writer while
    /// no frame waits (see [`ParkedWriter`]).
    Ws {
        tx: QueueTx<Outbound>,
        killer: Killer,
        parked: RefCell<Option<ParkedWriter>>,
    },
    /// One HTTP request waiting for its answer: the first text frame is it.
    Reply(RefCell<Option<oneshot::Sender<Vec<u8>>>>),
}

/// What starts a connection's writer task again. Between bursts no writer task exists: the
/// writing half of the socket and the queue's receiver wait here, and the first frame
/// queued starts a task that writes and parks again once the queue is empty. An idle
/// client then costs no task (issue 12: memory per idle client).
pub type ParkedWriter = Box<dyn FnOnce()>;

/// An upgraded client connection, or one HTTP request waiting for its answer.
pub struct Conn {
    sink: Sink,
    /// When the client last sent anything.
    last_heard: Cell<Instant>,
    /// When the proxy pinged it and is still waiting for any answer.
    pinged_at: Cell<Option<Instant>>,
    /// The proxy is closing it: nothing more is queued or counted.
    closing: Cell<bool>,
    disconnects: Arc<Disconnects>,
    /// Its place under `limits.max_connections`, freed with the connection (an HTTP
    /// request has none: its TCP connection holds one).
    _slot: Option<Slot>,
}

impl Conn {
    pub fn new(
        tx: QueueTx<Outbound>,
        killer: Killer,
        disconnects: Arc<Disconnects>,
        slot: Slot,
    ) -> Conn {
        Conn {
            sink: Sink::Ws {
                tx,
                killer,
                parked: RefCell::new(None),
            },
            last_heard: Cell::new(Instant::now()),
            pinged_at: Cell::new(None),
            closing: Cell::new(false),
            disconnects,
            _slot: Some(slot),
        }
    }

    /// The connection of one HTTP request: the first text frame sent on it goes to `tx`.
    pub fn reply(tx: oneshot::Sender<Vec<u8>>, disconnects: Arc<Disconnects>) -> Conn {
        Conn {
            sink: Sink::Reply(RefCell::new(Some(tx))),
            last_heard: Cell::new(Instant::now()),
            pinged_at: Cell::new(None),
            closing: Cell::new(false),
            disconnects,
            _slot: None,
        }
    }

    /// Whether this is an HTTP request's answer slot (no socket, no liveness checks).
    pub fn is_reply(&self) -> bool {
        matches!(self.sink, Sink::Reply(_))
    }

    /// Queues a JSON text frame.
    pub fn send_text(&self, frame: Vec<u8>) {
        self.send(Outbound::Text(frame));
    }

    /// Queues a frame; a client that does not read its frames fast enough is cut off.
    pub fn send(&self, item: Outbound) {
        if self.closing.get() {
            return;
        }
        match &self.sink {
            Sink::Ws { tx, parked, .. } => match tx.send(item) {
                Ok(()) => {
                    // Bind first: the writer may park again only after this borrow ends.
                    let start = parked.borrow_mut().take();
                    if let Some(start) = start {
                        start();
                    }
                }
                Err(SendError::Full) => self.cut(Cut::SlowReader),
                Err(SendError::Closed) => {}
            },
            Sink::Reply(answer) => {
                if let (Outbound::Text(t), Some(tx)) = (item, answer.borrow_mut().take()) {
                    let _ = tx.send(t);
                }
            }
        }
    }

    /// Keeps the writer until the next frame is queued (which calls `start`).
    pub fn park_writer(&self, start: ParkedWriter) {
        if let Sink::Ws { parked, .. } = &self.sink {
            *parked.borrow_mut() = Some(start);
        }
    }

    /// Cuts the connection (once): its socket is shut down, which ends its tasks.
    pub fn cut(&self, why: Cut) {
        if !self.closing.replace(true) {
            debug!(reason = why.as_str(), "closing client connection");
            self.disconnects.count(why);
            match &self.sink {
                Sink::Ws { killer, .. } => killer.kill(),
                Sink::Reply(answer) => drop(answer.borrow_mut().take()),
            }
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// The client sent something.
    pub fn heard(&self, now: Instant) {
        self.last_heard.set(now);
    }

    /// The ping/pong check, once a second: pings a client silent for `trigger`, cuts one
    /// that has not answered within `timeout`. `trigger` zero disables it.
    pub fn check_alive(&self, now: Instant, trigger: Duration, timeout: Duration) {
        if trigger.is_zero() || self.closing.get() || self.is_reply() {
            return;
        }
        match self.pinged_at.get() {
            Some(t) if self.last_heard.get() > t => self.pinged_at.set(None),
            Some(t) if now.duration_since(t) >= timeout => self.cut(Cut::NoPong),
            Some(_) => {}
            None if now.duration_since(self.last_heard.get()) >= trigger => {
                self.send(Outbound::Ping);
                self.pinged_at.set(Some(now));
            }
            None => {}
        }
    }
}
