//! Mailboxes: how shards talk to each other.
//!
//! An unbounded crossbeam channel plus an [`AtomicWaker`]: a sender pushes then wakes;
//! the receiving shard drains, registers its waker, and drains again so no wake-up is
//! lost between the two. Cross-thread wakes need monoio's `sync` feature.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};

/// The sending side; cheap to clone, usable from any thread.
pub struct MailboxSender<T> {
    tx: Sender<T>,
    waker: Arc<AtomicWaker>,
}

impl<T> Clone for MailboxSender<T> {
    fn clone(&self) -> Self {
        MailboxSender {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }
}

impl<T> MailboxSender<T> {
    /// Delivers `msg`; false when the receiving shard has stopped.
    pub fn send(&self, msg: T) -> bool {
        let ok = self.tx.send(msg).is_ok();
        self.waker.wake();
        ok
    }
}

/// The receiving side, owned by one shard.
pub struct Mailbox<T> {
    rx: Receiver<T>,
    waker: Arc<AtomicWaker>,
}

pub fn mailbox<T>() -> (MailboxSender<T>, Mailbox<T>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let waker = Arc::new(AtomicWaker::new());
    (
        MailboxSender {
            tx,
            waker: waker.clone(),
        },
        Mailbox { rx, waker },
    )
}

impl<T> Mailbox<T> {
    /// The next message; `None` once every sender is gone.
    pub async fn recv(&self) -> Option<T> {
        poll_fn(|cx| match self.rx.try_recv() {
            Ok(m) => Poll::Ready(Some(m)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                self.waker.register(cx.waker());
                match self.rx.try_recv() {
                    Ok(m) => Poll::Ready(Some(m)),
                    Err(TryRecvError::Disconnected) => Poll::Ready(None),
                    Err(TryRecvError::Empty) => Poll::Pending,
                }
            }
        })
        .await
    }

    /// A message if one is waiting.
    pub fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_across_threads() {
        let (tx, rx) = mailbox::<u32>();
        let t = std::thread::spawn(move || {
            for i in 0..1000 {
                tx.send(i);
            }
        });
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        let sum = rt.block_on(async move {
            let mut sum = 0;
            while let Some(v) = rx.recv().await {
                sum += v;
            }
            sum
        });
        t.join().unwrap();
        assert_eq!(sum, (0..1000).sum::<u32>());
    }
}
