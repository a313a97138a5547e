//! backend/: the Janus servers behind the proxy. `server` is the proxy-wide view of one
//! server, `link` one shard's connection to it, `select` the choice of a server for new
//! work. A shard only ever talks to its own links; nothing here is shared but atomics.

pub mod link;
pub mod select;
pub mod server;

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::api::error::{Code, JanusError};
use link::Link;
use select::Algorithm;

/// A shard's links to every backend server, and the selection policy.
pub struct Backends {
    pub links: Vec<Rc<Link>>,
    algorithm: Algorithm,
    /// Proxy-wide round-robin counter, shared by all shards (as the original's).
    counter: Arc<AtomicUsize>,
}

impl Backends {
    pub fn new(links: Vec<Rc<Link>>, algorithm: Algorithm, counter: Arc<AtomicUsize>) -> Self {
        Backends {
            links,
            algorithm,
            counter,
        }
    }

    /// Chooses a link for new work: among `NORMAL` servers whose link is up; if none is
    /// up, among those still connecting (the caller then waits for them).
    ///
    /// # Errors
    /// 502 "No backend server" when nothing is selectable.
    pub fn select(&self) -> Result<Rc<Link>, JanusError> {
        let pick_from = |pred: &dyn Fn(&Link) -> bool| -> Option<Rc<Link>> {
            let candidates: Vec<&Rc<Link>> = self
                .links
                .iter()
                .filter(|l| l.server.is_normal() && pred(l))
                .collect();
            let loads: Vec<u64> = candidates.iter().map(|l| l.server.load()).collect();
            let counter = self.counter.fetch_add(1, Ordering::Relaxed);
            let i = self.algorithm.pick(&loads, counter, fastrand::f64())?;
            Some(candidates[i].clone())
        };
        pick_from(&|l| l.is_up())
            .or_else(|| pick_from(&|l| !l.is_down()))
            .ok_or_else(|| JanusError::new(Code::BadGateway, "No backend server"))
    }
}
