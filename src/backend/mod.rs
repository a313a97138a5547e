//! backend/: the Janus servers behind the proxy. `server` is the proxy-wide view of one
//! server, `registry` the admin thread's set of them, `link` one shard's connection to a
//! server (WebSocket, Janus session, transactions, keepalives, reconnection),
//! `envelope` the parse of what a server sends, `select` the choice of a server for new
//! work.
//!
//! Owns backend connections and routes their events to a sink (the core) or to a
//! handle's tap. Must never know client sessions, connections or plugins: a backend
//! handle's owner is an opaque pair of ids. A shard only talks to its own links; what it
//! shares with other threads is atomics.

pub mod envelope;
pub mod link;
pub mod registry;
pub mod select;
pub mod server;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::api::error::{Code, JanusError};
use link::Link;
use select::{Algorithm, Pick};

/// A shard's links to every backend server, and the selection policy.
pub struct Backends {
    links: RefCell<Vec<Rc<Link>>>,
    /// Links that claimed a dead proxy's backend session (never selected for new work).
    adopted: RefCell<Vec<Adopted>>,
    /// Links to other proxies of the cluster (never selected for new work).
    peers: RefCell<Vec<Rc<Link>>>,
    algorithm: Algorithm,
    /// Proxy-wide round-robin counter, shared by all shards (as the original's).
    counter: Arc<AtomicUsize>,
}

/// An adopting link and what keeps it.
struct Adopted {
    /// `<url>|<backend session id>`.
    key: String,
    link: Rc<Link>,
    /// Adoptions still installing handles on it.
    pins: Cell<u32>,
}

impl Backends {
    pub fn new(algorithm: Algorithm, counter: Arc<AtomicUsize>) -> Self {
        Backends {
            links: RefCell::new(Vec::new()),
            adopted: RefCell::new(Vec::new()),
            peers: RefCell::new(Vec::new()),
            algorithm,
            counter,
        }
    }

    pub fn add(&self, link: Rc<Link>) {
        self.links.borrow_mut().push(link);
    }

    pub fn links(&self) -> Vec<Rc<Link>> {
        self.links.borrow().clone()
    }

    /// The link to the live (not deleted) server called `name`.
    pub fn by_name(&self, name: &str) -> Option<Rc<Link>> {
        self.links
            .borrow()
            .iter()
            .find(|l| l.server.name == name && !l.server.is_removed())
            .cloned()
    }

    /// The link to the live server at `url`.
    pub fn by_url(&self, url: &str) -> Option<Rc<Link>> {
        self.links
            .borrow()
            .iter()
            .find(|l| l.server.url == url && !l.server.is_removed())
            .cloned()
    }

    /// The live peer link to the proxy at `url` (retired ones are forgotten here).
    pub fn peer(&self, url: &str) -> Option<Rc<Link>> {
        let mut peers = self.peers.borrow_mut();
        peers.retain(|l| !l.is_retired());
        peers.iter().find(|l| l.server.url == url).cloned()
    }

    pub fn add_peer(&self, link: Rc<Link>) {
        self.peers.borrow_mut().push(link);
    }

    /// The adopting link of backend session `key` (`<url>|<session id>`).
    pub fn adopted(&self, key: &str) -> Option<Rc<Link>> {
        self.adopted
            .borrow()
            .iter()
            .find(|a| a.key == key && !a.link.is_retired())
            .map(|a| a.link.clone())
    }

    /// Keeps an adopting link under `key`, pinned (see [`Backends::unpin_adopted`]).
    pub fn add_adopted(&self, key: String, link: Rc<Link>) {
        self.adopted.borrow_mut().push(Adopted {
            key,
            link,
            pins: Cell::new(1),
        });
    }

    /// Pins the adopting link of `key`: it is kept even without handles while an adoption
    /// installs its handles.
    pub fn pin_adopted(&self, key: &str) {
        if let Some(a) = self.adopted.borrow().iter().find(|a| a.key == key) {
            a.pins.set(a.pins.get() + 1);
        }
    }

    pub fn unpin_adopted(&self, key: &str) {
        if let Some(a) = self.adopted.borrow().iter().find(|a| a.key == key) {
            a.pins.set(a.pins.get().saturating_sub(1));
        }
    }

    /// Adopting links no handle uses any more (or stopped for good): their backend session
    /// is destroyed and they are retired. Returns their keys.
    pub fn prune_adopted(&self) -> Vec<String> {
        let mut done = Vec::new();
        self.adopted.borrow_mut().retain(|a| {
            let unused = a.pins.get() == 0 && a.link.handle_count() == 0;
            if !(unused || a.link.is_retired()) {
                return true;
            }
            if a.link.is_up() {
                let link = a.link.clone();
                a.link.send(
                    "destroy",
                    None,
                    &[],
                    false,
                    Box::new(move |_| link.retire()),
                );
            } else {
                a.link.retire();
            }
            done.push(a.key.clone());
            false
        });
        done
    }

    /// Retires links to deleted servers once no handle uses them any more.
    pub fn prune(&self) {
        self.links.borrow_mut().retain(|l| {
            let done = l.server.is_removed() && l.handle_count() == 0;
            if done {
                l.retire();
            }
            !done
        });
    }

    /// Chooses a link for new work: among selectable servers whose link is up; if none
    /// is up, among those making their first connection (the caller then waits for
    /// them). A link that failed and is reconnecting is never chosen.
    ///
    /// # Errors
    /// 502 "No backend server" when nothing is selectable.
    pub fn select(&self) -> Result<Rc<Link>, JanusError> {
        let now = server::now_ms();
        let links = self.links.borrow();
        let pick_from = |pred: &dyn Fn(&Link) -> bool| -> Option<Rc<Link>> {
            let candidates: Vec<&Rc<Link>> = links
                .iter()
                .filter(|l| l.server.is_selectable(now) && pred(l))
                .collect();
            let loads: Vec<u64> = candidates.iter().map(|l| l.server.load()).collect();
            let counter = self.counter.fetch_add(1, Ordering::Relaxed);
            let i = self.algorithm.pick(&loads, counter, fastrand::f64())?;
            Some(candidates[i].clone())
        };
        pick_from(&|l| l.is_up())
            .or_else(|| pick_from(&|l| l.is_first_connecting()))
            .ok_or_else(|| JanusError::new(Code::BadGateway, "No backend server"))
    }
}
