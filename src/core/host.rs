//! What plugins get instead of the shard: [`Host`], the narrow face of one shard; the
//! [`HandleCtx`] of the handle a callback is about; and [`Peers`], the way to every shard
//! from any thread. Nothing here hands out connections, sessions of other plugins or the
//! shard itself.

use std::any::Any;
use std::rc::Rc;
use std::sync::Arc;

use super::shard::{Shard, ShardMsg};
use crate::api::error::JanusError;
use crate::api::reply::Addr;
use crate::backend::link::Link;
use crate::config::Config;
use crate::runtime::mailbox::MailboxSender;

/// One shard as a plugin sees it. Cheap to clone; only usable on its own shard.
#[derive(Clone)]
pub struct Host {
    shard: Rc<Shard>,
}

impl Host {
    pub(crate) fn new(shard: Rc<Shard>) -> Host {
        Host { shard }
    }

    /// The shard itself, for the core's own cross-shard work (never handed to plugins).
    pub(crate) fn shard(&self) -> &Rc<Shard> {
        &self.shard
    }

    /// This shard's index, `0..shard_count()`.
    pub fn shard_id(&self) -> usize {
        self.shard.id
    }

    pub fn shard_count(&self) -> usize {
        self.shard.count
    }

    pub fn config(&self) -> &Config {
        &self.shard.config
    }

    /// A backend for new work, chosen by `general.server_select` among the selectable
    /// servers whose link is up (or still making its first connection).
    ///
    /// # Errors
    /// 502 when no server is selectable.
    pub fn select_backend(&self) -> Result<Rc<Link>, JanusError> {
        self.shard.backends.select()
    }

    /// This shard's link to the live server at `url` (e.g. one another shard chose).
    pub fn backend_by_url(&self, url: &str) -> Option<Rc<Link>> {
        self.shard.backends.by_url(url)
    }

    /// A link claiming client session `session` of the proxy at `url` (a session a dead
    /// proxy left there, or its own one a dead peer held: see the VideoRoom's relay),
    /// shared by every caller for the same session and kept while handles use it. Pinned
    /// until [`Host::unpin_claim`], so that it survives until its first handle is bound.
    /// `None` for a URL that is not `ws://host:port[/path]`.
    pub fn claim_peer_session(&self, url: &str, session: u64) -> Option<Rc<Link>> {
        let key = format!("{url}|{session}");
        if let Some(l) = self.shard.backends.adopted(&key) {
            self.shard.backends.pin_adopted(&key);
            return Some(l);
        }
        let l = self.shard.adopting_peer_link(url, session)?;
        self.shard.backends.add_adopted(key, l.clone());
        Some(l)
    }

    /// Drops the pin of [`Host::claim_peer_session`].
    pub fn unpin_claim(&self, url: &str, session: u64) {
        self.shard
            .backends
            .unpin_adopted(&format!("{url}|{session}"));
    }

    /// This shard's link to another proxy of the cluster, reached at `url` over its client
    /// API (`ws://…`): never selected for new work, one connection only (when it drops,
    /// its handles are lost as with a dead backend, and the next call makes a new link).
    pub fn peer_link(&self, url: &str) -> Option<Rc<Link>> {
        self.shard.peer_link(url)
    }

    /// The plugin's shard-local state of type `S`, created on first use.
    pub fn slot<S: Default + 'static>(&self) -> Rc<S> {
        self.shard.slots.get::<S>()
    }

    /// A process-wide service a plugin registered at start.
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.shard.services.get::<T>()
    }

    /// Every shard, reachable from any thread.
    pub fn peers(&self) -> &Peers {
        &self.shard.peers
    }

    /// Runs `f` on shard `target` (here at once when it is this shard).
    pub fn run_on(&self, target: usize, f: impl FnOnce(&Host) + Send + 'static) {
        if target == self.shard.id {
            f(self);
        } else {
            self.shard.peers.run_on(target, f);
        }
    }

    /// Runs `f` on shard `target` and returns its result; `None` if that shard is gone.
    pub async fn ask<T: Send + 'static>(
        &self,
        target: usize,
        f: impl FnOnce(&Host) -> T + Send + 'static,
    ) -> Option<T> {
        if target == self.shard.id {
            return Some(f(self));
        }
        let (tx, rx) = futures_channel::oneshot::channel();
        self.shard.peers.run_on(target, move |h| {
            let _ = tx.send(f(h));
        });
        rx.await.ok()
    }

    /// Runs the async work `f` makes on shard `target` (here when it is this shard) and
    /// returns its result; `None` if that shard is gone or dropped the work.
    pub async fn ask_async<T: Send + 'static>(
        &self,
        target: usize,
        f: impl FnOnce(Host) -> super::plugin::LocalFuture<T> + Send + 'static,
    ) -> Option<T> {
        if target == self.shard.id {
            return Some(f(self.clone()).await);
        }
        let (tx, rx) = futures_channel::oneshot::channel();
        self.shard.peers.run_on(target, move |h| {
            let work = f(h.clone());
            monoio::spawn(async move {
                let _ = tx.send(work.await);
            });
        });
        rx.await.ok()
    }

    /// A handle on this shard whose plugin state is a `T`, with its context: how a plugin
    /// reaches one of its own handles from another handle's work (a call's peer).
    pub fn handle<T: 'static>(
        &self,
        session_id: u64,
        handle_id: u64,
    ) -> Option<(HandleCtx, Rc<T>)> {
        let (opaque_id, state) = {
            let sessions = self.shard.sessions.borrow();
            let h = sessions.get(session_id)?.handles.get(&handle_id)?;
            (h.opaque_id.clone(), h.state.clone())
        };
        let state: Rc<dyn Any> = state;
        let state = state.downcast::<T>().ok()?;
        let ctx = HandleCtx {
            host: self.clone(),
            session_id,
            handle_id,
            opaque_id,
        };
        Some((ctx, state))
    }

    /// Sends a frame to whichever connection owns the session now (nothing while it is
    /// orphaned).
    fn push_to_session(&self, session_id: u64, frame: Vec<u8>) {
        self.shard.push_to_session(session_id, frame);
    }

    fn has_handle(&self, session_id: u64, handle_id: u64) -> bool {
        self.shard
            .sessions
            .borrow()
            .get(session_id)
            .is_some_and(|s| s.handles.contains_key(&handle_id))
    }
}

/// The client handle a callback is about, and the way to reach its client.
#[derive(Clone)]
pub struct HandleCtx {
    host: Host,
    pub session_id: u64,
    pub handle_id: u64,
    pub opaque_id: Option<Rc<str>>,
}

impl HandleCtx {
    pub(crate) fn new(
        shard: &Rc<Shard>,
        session_id: u64,
        handle_id: u64,
        opaque_id: Option<Rc<str>>,
    ) -> HandleCtx {
        HandleCtx {
            host: Host::new(shard.clone()),
            session_id,
            handle_id,
            opaque_id,
        }
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The ids an event of this handle carries.
    pub fn addr(&self) -> Addr<'_> {
        Addr {
            session_id: self.session_id,
            handle_id: self.handle_id,
            opaque_id: self.opaque_id.as_deref(),
        }
    }

    /// Sends a frame to whichever connection owns the session now.
    pub fn push(&self, frame: Vec<u8>) {
        self.host.push_to_session(self.session_id, frame);
    }

    /// Sends a frame to the session's client now or, for a handle being adopted from a
    /// dead proxy (its session not yet claimed by its client), right after the claim.
    pub fn push_when_claimed(&self, frame: Vec<u8>) {
        super::cluster::push_when_claimed(self.host.shard(), self.session_id, frame);
    }

    /// The handle's adoption record changed ([`super::plugin::Plugin::adoption`] would
    /// answer otherwise now): with `[cluster]`, it is written again for other proxies.
    pub fn adoption_changed(&self) {
        drop(super::cluster::handle_changed(
            self.host.shard(),
            self.session_id,
            self.handle_id,
        ));
    }

    /// [`HandleCtx::adoption_changed`], done once the record is in Redis (at most 1 s, as
    /// an `attach`): for a plugin that must not answer its client before another proxy
    /// could adopt what it answers (a name registered).
    pub async fn adoption_recorded(&self) {
        if let Some(w) = self.adoption_pending() {
            w.await;
        }
    }

    /// [`HandleCtx::adoption_changed`], and what to await until the record is in Redis:
    /// `None` when there is nothing to wait for (no `[cluster]`, or not adoptable), so that
    /// a plugin can keep its synchronous path then.
    pub fn adoption_pending(&self) -> Option<super::plugin::LocalFuture<()>> {
        let w = super::cluster::handle_changed(self.host.shard(), self.session_id, self.handle_id)?;
        Some(Box::pin(super::cluster::written(Some(w))))
    }

    /// Ends the handle for its client: `hangup` with `reason`, then `detached`, and the
    /// handle is gone (as when its backend handle dies and the plugin lets it go). The
    /// plugin's own state must be released by the caller.
    pub fn end(&self, reason: &str) {
        super::events::end_handle(self.host.shard(), self.session_id, self.handle_id, reason);
    }

    /// Whether the client still has this handle (it was not detached meanwhile).
    pub fn is_attached(&self) -> bool {
        self.host.has_handle(self.session_id, self.handle_id)
    }
}

/// Every shard's mailbox: cheap to clone, usable from any thread (the admin API, Redis
/// directory threads).
#[derive(Clone)]
pub struct Peers(Arc<Vec<MailboxSender<ShardMsg>>>);

impl Peers {
    pub fn new(senders: Vec<MailboxSender<ShardMsg>>) -> Peers {
        Peers(Arc::new(senders))
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Runs `f` on shard `target`; false if there is no such shard or it stopped.
    pub fn run_on(&self, target: usize, f: impl FnOnce(&Host) + Send + 'static) -> bool {
        self.send(target, ShardMsg::Run(Box::new(f)))
    }

    /// Delivers a core message to shard `target`; false if there is no such shard.
    pub fn send(&self, target: usize, msg: ShardMsg) -> bool {
        self.0.get(target).is_some_and(|m| m.send(msg))
    }

    pub(crate) fn all(&self) -> &[MailboxSender<ShardMsg>] {
        &self.0
    }
}
