//! plugins/: what a frontend handle does with the requests it gets. Each plugin is a
//! stateless unit struct behind the [`Plugin`] trait; per-handle state lives in the
//! handle as a [`HandleState`]. Callbacks never block and never panic on input: work
//! that waits (backend round trips) continues in callbacks or spawned tasks.

pub mod call;
pub mod directory;
pub mod dummytest;
pub mod echotest;
pub mod p2pcall;
pub mod remote;
pub mod videocall;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use serde_json::value::RawValue;

use crate::api::error::JanusError;
use crate::api::json::RawObject;
use crate::api::reply::{self, Addr};
use crate::backend::link::{Done, Link};
use crate::core::shard::Shard;

/// Descriptive data shown in `info.plugins`.
pub struct PluginMeta {
    pub package: &'static str,
    pub name: &'static str,
    pub author: &'static str,
    pub description: &'static str,
    pub version: u32,
    pub version_string: &'static str,
}

/// Per-handle plugin state.
#[derive(Clone)]
pub enum HandleState {
    /// Nothing to keep (dummytest).
    Local,
    /// A handle on a backend Janus that mirrors this one (echotest).
    Backend(BackendHandle),
    /// A one-to-one call handle (videocall, p2pcall): registration and call state,
    /// shared with the tasks working on it.
    Call(Rc<std::cell::RefCell<call::CallState>>),
}

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
    /// Attaches a handle of backend plugin `package` on `link` for the frontend handle of
    /// `ctx`, whose events it will then receive.
    ///
    /// # Errors
    /// The link is not up (503), the backend refused (its code), or no answer (504).
    pub async fn attach(
        link: &Rc<Link>,
        package: &str,
        ctx: &HandleCtx,
    ) -> Result<BackendHandle, JanusError> {
        link.ready().await?;
        let plugin = serde_json::to_string(package).unwrap_or_default();
        let id = link
            .call(
                "attach",
                None,
                &[("plugin", &plugin)],
                false,
                crate::backend::link::data_id,
            )
            .await?;
        link.register_handle(
            id,
            crate::backend::link::HandleOwner {
                session_id: ctx.session_id,
                handle_id: ctx.handle_id,
            },
        );
        Ok(BackendHandle {
            link: link.clone(),
            id,
            fifo: Rc::new(Fifo {
                busy: Default::default(),
                waiting: Default::default(),
                capacity: ctx.shard.config.limits.max_queued_requests_per_handle,
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
                    crate::api::error::Code::ServiceUnavailable,
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
}

/// The frontend handle a callback is about, and the way to reach its client.
#[derive(Clone)]
pub struct HandleCtx {
    pub shard: Rc<Shard>,
    pub session_id: u64,
    pub handle_id: u64,
    pub opaque_id: Option<Rc<str>>,
}

impl HandleCtx {
    pub fn addr(&self) -> Addr<'_> {
        Addr {
            session_id: self.session_id,
            handle_id: self.handle_id,
            opaque_id: self.opaque_id.as_deref(),
        }
    }

    /// Sends a frame to whichever connection owns the session now.
    pub fn push(&self, frame: Vec<u8>) {
        self.shard.push_to_session(self.session_id, frame);
    }

    /// Whether the client still has this handle (it was not detached meanwhile).
    pub fn is_attached(&self) -> bool {
        self.shard
            .sessions
            .borrow()
            .get(self.session_id)
            .is_some_and(|s| s.handles.contains_key(&self.handle_id))
    }
}

/// A `message` request as a plugin sees it.
pub struct PluginMessage<'a> {
    /// Raw JSON string literal, to echo in the answer.
    pub transaction: &'a str,
    pub body: &'a RawValue,
    pub jsep: Option<&'a RawValue>,
}

/// `candidate` or `candidates` of a `trickle`, raw.
pub struct Trickle<'a> {
    pub field: &'static str,
    pub value: &'a RawValue,
}

/// Answers one client request (ack/success or a core error).
pub type Respond = Box<dyn FnOnce(Result<(), JanusError>)>;

pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

pub trait Plugin {
    fn meta(&self) -> &'static PluginMeta;

    /// Runs inside `attach`, before the client gets its reply; an error fails the attach.
    fn attach(&self, ctx: HandleCtx) -> LocalFuture<Result<HandleState, JanusError>>;

    /// Whether this `message` is answered asynchronously (`ack` now, `event` later).
    /// The core sends the `ack` before calling [`Plugin::message`].
    fn is_async(&self, msg: &PluginMessage) -> bool;

    /// Handles a `message`. Synchronous requests return the `plugindata.data` JSON;
    /// asynchronous ones return `None` and push an `event` with the transaction later.
    fn message(&self, ctx: &HandleCtx, state: &HandleState, msg: PluginMessage) -> Option<String>;

    /// Handles a `trickle`; `respond` sends the `ack` or the error.
    fn trickle(&self, ctx: &HandleCtx, state: &HandleState, trickle: Trickle, respond: Respond);

    /// Handles a `hangup`; `respond` sends the `success` or the error.
    fn hangup(&self, ctx: &HandleCtx, state: &HandleState, respond: Respond);

    /// The handle is going away (detach, session destroyed or expired): release what it
    /// holds. Nothing is sent to the client from here.
    fn detach(&self, ctx: &HandleCtx, state: HandleState);

    /// Backend handle `backend_handle` of this handle died (backend gone, or detached by
    /// the backend). Returns whether the frontend handle goes too; then the client gets a
    /// core `hangup` (with `reason`) and `detached`. Default: yes.
    fn backend_lost(
        &self,
        _ctx: &HandleCtx,
        _state: &HandleState,
        _backend_handle: u64,
        _reason: &str,
    ) -> bool {
        true
    }

    /// An unsolicited message from this handle's backend handle `backend_handle`.
    /// Default: relay it to the client with the ids rewritten (spec 01 §7.1).
    fn backend_event(
        &self,
        ctx: &HandleCtx,
        _state: &HandleState,
        _backend_handle: u64,
        msg: &RawObject,
        janus: &str,
    ) {
        ctx.push(reply::relay(msg, janus, ctx.addr(), None));
    }
}

/// Every plugin this build knows, by its short config name.
pub fn by_name(name: &str) -> Option<&'static dyn Plugin> {
    match name {
        "echotest" => Some(&echotest::EchoTest),
        "dummytest" => Some(&dummytest::DummyTest),
        "videocall" => Some(&videocall::VideoCall),
        "p2pcall" => Some(&p2pcall::P2pCall),
        _ => None,
    }
}

/// The `info.plugins` object for the given plugins.
pub fn info_json(plugins: &[&'static dyn Plugin]) -> String {
    let mut out = crate::api::json::ObjectWriter::new();
    for p in plugins {
        let m = p.meta();
        let mut o = crate::api::json::ObjectWriter::new();
        o.str("name", m.name)
            .str("author", m.author)
            .str("description", m.description)
            .str("version_string", m.version_string)
            .u64("version", m.version as u64);
        out.raw(m.package, std::str::from_utf8(&o.finish()).unwrap_or("{}"));
    }
    String::from_utf8(out.finish()).unwrap_or_else(|_| "{}".into())
}
