//! A handle on a backend Janus that a plugin works through: bound to a client handle
//! (echotest, a call) or owned by the plugin itself (its events go to a tap), with a
//! per-handle queue that keeps plugin messages in order.

use std::rc::Rc;

use super::host::HandleCtx;
use super::plugin::{Adoption, Respond, Trickle};
use crate::api::error::{Code, JanusError};
use crate::backend::link::{data_id, Done, HandleOwner, Link, Route, Tap};

/// The backend handle behind a frontend handle.
#[derive(Clone)]
pub struct BackendHandle {
    pub link: Rc<Link>,
    pub id: u64,
    /// Plugin messages waiting for the one in flight (see [`BackendHandle::send_in_order`]).
    fifo: Rc<Fifo>,
}

/// Per-handle message queue. Janus handles requests on a thread pool, so a slow request
/// (an SDP offer) followed at once by a fast one is often answered out of order; sending
/// one message at a time per handle keeps the client's order (as the original did).
struct Fifo {
    busy: std::cell::Cell<bool>,
    waiting: std::cell::RefCell<std::collections::VecDeque<Queued>>,
    /// Most messages waiting (`limits.max_queued_requests_per_handle`).
    capacity: usize,
}

/// A message waiting in a [`Fifo`]: its raw fields and its completion.
type Queued = (Vec<(&'static str, String)>, Done);

impl BackendHandle {
    /// Attaches a handle of backend plugin `package` on `link` for the client handle of
    /// `ctx`, whose plugin then receives its events.
    ///
    /// # Errors
    /// The link is not up (503), the backend refused (its code), or no answer (504).
    pub async fn attach(
        link: &Rc<Link>,
        package: &str,
        ctx: &HandleCtx,
    ) -> Result<BackendHandle, JanusError> {
        let owner = HandleOwner {
            session_id: ctx.session_id,
            handle_id: ctx.handle_id,
        };
        let capacity = ctx.host().config().limits.max_queued_requests_per_handle;
        Self::attach_routed(link, package, Route::Client(owner), capacity).await
    }

    /// Attaches a handle of backend plugin `package` on `link` that the plugin owns itself
    /// (a room's control handle, a mirror): its events go to `tap`.
    ///
    /// # Errors
    /// As [`BackendHandle::attach`].
    pub async fn attach_own(
        link: &Rc<Link>,
        package: &str,
        tap: Tap,
        capacity: usize,
    ) -> Result<BackendHandle, JanusError> {
        Self::attach_routed(link, package, Route::Tap(Rc::new(tap)), capacity).await
    }

    /// A backend handle this proxy adopted from a dead one: handle `id` of the backend
    /// session `link` claimed, bound from now on to the client handle of `ctx`.
    pub fn adopted(link: &Rc<Link>, id: u64, ctx: &HandleCtx) -> BackendHandle {
        let owner = HandleOwner {
            session_id: ctx.session_id,
            handle_id: ctx.handle_id,
        };
        link.register_handle(id, Route::Client(owner));
        BackendHandle {
            link: link.clone(),
            id,
            fifo: Rc::new(Fifo {
                busy: Default::default(),
                waiting: Default::default(),
                capacity: ctx.host().config().limits.max_queued_requests_per_handle,
            }),
        }
    }

    /// Where this handle lives, for another proxy to adopt it (see
    /// [`super::plugin::Plugin::adoption`]).
    pub fn adoption(&self) -> Option<Adoption> {
        let session = self.link.session_id();
        (session != 0).then(|| Adoption {
            server: self.link.server.url.clone(),
            backend_session: session,
            backend_handle: self.id,
            peer: self.link.is_peer(),
        })
    }

    async fn attach_routed(
        link: &Rc<Link>,
        package: &str,
        route: Route,
        capacity: usize,
    ) -> Result<BackendHandle, JanusError> {
        link.ready().await?;
        let plugin = serde_json::to_string(package).unwrap_or_default();
        let id = link
            .call("attach", None, &[("plugin", &plugin)], false, data_id)
            .await?;
        link.register_handle(id, route);
        Ok(BackendHandle {
            link: link.clone(),
            id,
            fifo: Rc::new(Fifo {
                busy: Default::default(),
                waiting: Default::default(),
                capacity,
            }),
        })
    }

    /// Sends a plugin `message` once every earlier one of this handle was answered.
    /// Fields are copied only when the message has to wait.
    ///
    /// # Errors
    /// `done` gets 503 when the queue is full.
    pub fn send_in_order(&self, fields: &[(&'static str, &str)], done: Done) {
        if self.fifo.busy.get() {
            let mut w = self.fifo.waiting.borrow_mut();
            if w.len() >= self.fifo.capacity {
                drop(w);
                return done(Err(JanusError::new(
                    Code::ServiceUnavailable,
                    format!(
                        "Too many requests queued for this handle (max {})",
                        self.fifo.capacity
                    ),
                )));
            }
            w.push_back((
                fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                done,
            ));
            return;
        }
        self.fifo.busy.set(true);
        let next = self.clone();
        self.link.send(
            "message",
            Some(self.id),
            fields,
            false,
            Box::new(move |r| {
                done(r);
                next.fifo.busy.set(false);
                let queued = next.fifo.waiting.borrow_mut().pop_front();
                if let Some((fields, done)) = queued {
                    let borrowed: Vec<(&'static str, &str)> =
                        fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    next.send_in_order(&borrowed, done);
                }
            }),
        );
    }

    /// Relays a client's `trickle` (its `candidate` or `candidates`) to this handle.
    pub fn trickle(&self, t: &Trickle, respond: Respond) {
        self.link.send(
            "trickle",
            Some(self.id),
            &[(t.field, t.value.get())],
            true,
            Box::new(move |r| respond(r.map(|_| ()))),
        );
    }

    /// Relays a client's core `hangup` to this handle.
    pub fn hangup(&self, respond: Respond) {
        self.link.send(
            "hangup",
            Some(self.id),
            &[],
            false,
            Box::new(move |r| respond(r.map(|_| ()))),
        );
    }

    /// Forgets the handle (no more of its events are routed) and detaches it on the
    /// backend. Only for a handle no Janus thread may still be using: see the videocall
    /// plugin for one that needs a careful retirement.
    pub fn detach(&self) {
        if self.link.unregister_handle(self.id) {
            self.link
                .send("detach", Some(self.id), &[], false, Box::new(|_| {}));
        }
    }
}
