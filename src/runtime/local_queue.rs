//! A single-threaded unbounded queue: many senders on one shard, one receiver task.
//!
//! Connection writers and backend writers drain one of these. No atomics: everything on a
//! shard runs on one thread, so `Rc<RefCell<_>>` is enough.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

struct Inner<T> {
    items: VecDeque<T>,
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

pub fn queue<T>() -> (QueueTx<T>, QueueRx<T>) {
    let inner = Rc::new(RefCell::new(Inner {
        items: VecDeque::new(),
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

impl<T> QueueTx<T> {
    /// Queues `item`; false (and the item dropped) when the receiver is gone.
    pub fn send(&self, item: T) -> bool {
        let mut i = self.inner.borrow_mut();
        if !i.receiver_alive {
            return false;
        }
        i.items.push_back(item);
        if let Some(w) = i.waker.take() {
            w.wake();
        }
        true
    }

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
            if let Some(item) = i.items.pop_front() {
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
        self.inner.borrow_mut().items.pop_front()
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        let mut i = self.inner.borrow_mut();
        i.receiver_alive = false;
        i.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_and_ends_when_senders_go() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = queue();
            let tx2 = tx.clone();
            monoio::spawn(async move {
                for i in 0..3 {
                    tx2.send(i);
                }
            });
            tx.send(10);
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
        let (tx, rx) = queue::<u8>();
        drop(rx);
        assert!(!tx.send(1));
        assert!(tx.is_closed());
    }
}
