//! A single-threaded queue with a byte budget: many senders on one shard, one receiver
//! task.
//!
//! Connection writers and backend writers drain one of these. No atomics: everything on a
//! shard runs on one thread, so `Rc<RefCell<_>>` is enough. Each item has a weight (its
//! bytes); a send that would take the queued weight over the budget is refused with
//! [`SendError::Full`], and the sender decides what that means (a client that does not
//! read is cut off). An item is always accepted into an empty queue, so one large
//! message never wedges a connection whose budget is smaller.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// How much of the byte budget an item uses.
pub trait Weight {
    fn weight(&self) -> usize;
}

/// Why an item was not queued (it is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The receiver is gone.
    Closed,
    /// The queued items already weigh the budget: the receiver is not keeping up.
    Full,
}

struct Inner<T> {
    items: VecDeque<(T, usize)>,
    /// Total weight of `items`.
    bytes: usize,
    /// Most weight `items` may hold (`usize::MAX` = unbounded).
    budget: usize,
    waker: Option<Waker>,
    senders: usize,
    receiver_alive: bool,
}

pub struct QueueTx<T> {
    inner: Rc<RefCell<Inner<T>>>,
}

pub struct QueueRx<T> {
    inner: Rc<RefCell<Inner<T>>>,
}

/// A queue whose items may weigh at most `budget` bytes in all.
pub fn queue<T: Weight>(budget: usize) -> (QueueTx<T>, QueueRx<T>) {
    let inner = Rc::new(RefCell::new(Inner {
        items: VecDeque::new(),
        bytes: 0,
        budget,
        waker: None,
        senders: 1,
        receiver_alive: true,
    }));
    (
        QueueTx {
            inner: inner.clone(),
        },
        QueueRx { inner },
    )
}

impl<T: Weight> QueueTx<T> {
    /// Queues `item`.
    ///
    /// # Errors
    /// The receiver is gone, or the budget is used up (the item is dropped).
    pub fn send(&self, item: T) -> Result<(), SendError> {
        let mut i = self.inner.borrow_mut();
        if !i.receiver_alive {
            return Err(SendError::Closed);
        }
        let w = item.weight();
        if i.bytes > 0 && i.bytes.saturating_add(w) > i.budget {
            return Err(SendError::Full);
        }
        i.bytes += w;
        i.items.push_back((item, w));
        if let Some(w) = i.waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Weight of what is queued now.
    pub fn queued_bytes(&self) -> usize {
        self.inner.borrow().bytes
    }
}

impl<T> QueueTx<T> {
    pub fn is_closed(&self) -> bool {
        !self.inner.borrow().receiver_alive
    }
}

impl<T> Clone for QueueTx<T> {
    fn clone(&self) -> Self {
        self.inner.borrow_mut().senders += 1;
        QueueTx {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        let mut i = self.inner.borrow_mut();
        i.senders -= 1;
        if i.senders == 0 {
            if let Some(w) = i.waker.take() {
                w.wake();
            }
        }
    }
}

impl<T> QueueRx<T> {
    /// The next item; `None` when every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            let mut i = self.inner.borrow_mut();
            if let Some(item) = i.pop() {
                return Poll::Ready(Some(item));
            }
            if i.senders == 0 {
                return Poll::Ready(None);
            }
            i.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    pub fn try_recv(&mut self) -> Option<T> {
        self.inner.borrow_mut().pop()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.inner.borrow().items.is_empty()
    }

    /// Lets the storage of an empty queue go (a parked writer keeps none).
    pub fn release_storage(&mut self) {
        let mut i = self.inner.borrow_mut();
        if i.items.is_empty() {
            i.items = VecDeque::new();
        }
    }
}

impl<T> Inner<T> {
    fn pop(&mut self) -> Option<T> {
        let (item, w) = self.items.pop_front()?;
        self.bytes -= w;
        Some(item)
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        let mut i = self.inner.borrow_mut();
        i.receiver_alive = false;
        i.items.clear();
        i.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weight for u32 {
        fn weight(&self) -> usize {
            *self as usize
        }
    }

    impl Weight for u8 {
        fn weight(&self) -> usize {
            1
        }
    }

    #[test]
    fn budget_refuses_when_full_and_frees_on_receive() {
        let (tx, mut rx) = queue::<u32>(10);
        // Larger than the budget, but the queue is empty: accepted.
        assert_eq!(tx.send(25), Ok(()));
        assert_eq!(tx.send(1), Err(SendError::Full));
        assert_eq!(rx.try_recv(), Some(25));
        assert_eq!(tx.queued_bytes(), 0);
        assert_eq!(tx.send(6), Ok(()));
        assert_eq!(tx.send(4), Ok(()));
        assert_eq!(tx.send(1), Err(SendError::Full));
        assert_eq!(tx.queued_bytes(), 10);
        assert_eq!(rx.try_recv(), Some(6));
        assert_eq!(tx.send(1), Ok(()));
    }

    #[test]
    fn delivers_in_order_and_ends_when_senders_go() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = queue::<u32>(usize::MAX);
            let tx2 = tx.clone();
            monoio::spawn(async move {
                for i in 0..3 {
                    tx2.send(i).unwrap();
                }
            });
            tx.send(10).unwrap();
            drop(tx);
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            assert_eq!(got, [10, 0, 1, 2]);
        });
    }

    #[test]
    fn send_after_receiver_drop_fails() {
        let (tx, rx) = queue::<u8>(usize::MAX);
        drop(rx);
        assert_eq!(tx.send(1), Err(SendError::Closed));
        assert!(tx.is_closed());
    }
}
