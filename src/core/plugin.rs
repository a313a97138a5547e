//! The plugin interface: what a plugin implements ([`Plugin`], pingora-style: documented
//! callbacks with defaults) and what it is given at start-up ([`StartCx`]). At run time a
//! plugin reaches the proxy only through the [`HandleCtx`] of the handle a callback is
//! about, and its [`Host`](super::host::Host): never through the shard itself.
//!
//! Every callback runs on the shard that owns the handle's session, must not block, and
//! must not panic on input: a panic aborts the proxy. Work that waits (backend round trips,
//! other shards, other proxies) continues in spawned tasks.
//!
//! `docs/writing-a-plugin.md` walks through the echotest plugin as a skeleton.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use ahash::AHashMap;
use serde_json::value::RawValue;

use super::backend_handle::BackendHandle;
use super::host::{HandleCtx, Peers};
use crate::api::error::{Code, JanusError};
use crate::api::json::{ObjectWriter, RawObject};
use crate::api::reply;
use crate::config::Config;

/// Descriptive data shown in `info.plugins`.
pub struct PluginMeta {
    /// The Janus package name clients attach to (`janus.plugin.echotest`).
    pub package: &'static str,
    /// The short name used in `plugins = [...]` and as the plugin's config section.
    pub name: &'static str,
    pub display_name: &'static str,
    pub author: &'static str,
    pub description: &'static str,
    pub version: u32,
    pub version_string: &'static str,
}

/// A `message` request as a plugin sees it.
pub struct PluginMessage<'a> {
    /// Raw JSON string literal, to echo in the answer.
    pub transaction: &'a str,
    pub body: &'a RawValue,
    pub jsep: Option<&'a RawValue>,
    /// A synchronous request's answer, for a plugin that gives it later (its
    /// [`Plugin::message`] returned `None`): called with the `plugindata.data` JSON, it
    /// sends the `success` to whoever asked (a WebSocket, or an HTTP request waiting for
    /// its response). `None` for asynchronous requests.
    pub answer: Option<SyncAnswer>,
}

/// See [`PluginMessage::answer`].
pub type SyncAnswer = Box<dyn FnOnce(&str)>;

/// `candidate` or `candidates` of a `trickle`, raw.
pub struct Trickle<'a> {
    pub field: &'static str,
    pub value: &'a RawValue,
}

/// Which backend handle an event or a loss comes from: the server (by name) and the
/// handle id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendRef<'a> {
    pub server: &'a str,
    pub handle: u64,
}

impl BackendRef<'_> {
    /// Whether this is `b`.
    pub fn is(&self, b: &super::backend_handle::BackendHandle) -> bool {
        self.handle == b.id && self.server == b.link.server.name
    }
}

/// Where the backend side of a handle lives, so that another proxy of the cluster can
/// adopt the handle if this one dies (see [`Plugin::adoption`]): the server's URL and the
/// Janus session and handle ids there. With `peer`, the "server" is another proxy of the
/// cluster reached over its client API (a peer link: the VideoRoom's relayed handles), and
/// the session and handle are that proxy's client session and handle ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub server: String,
    pub backend_session: u64,
    pub backend_handle: u64,
    pub peer: bool,
}

/// What another proxy of the cluster needs to adopt a handle (see [`Plugin::adoption`]):
/// its backend handle, when it has one that another proxy can take over, and the plugin's
/// own state as it chooses to write it (JSON, given back to [`Plugin::adopt`]). A handle
/// with neither is not adoptable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adoptable {
    pub backend: Option<Adoption>,
    pub state: Option<String>,
}

impl Adoptable {
    /// A handle whose whole state is one backend handle (echotest).
    pub fn backend(b: Adoption) -> Adoptable {
        Adoptable {
            backend: Some(b),
            state: None,
        }
    }
}

/// Answers one client request (ack/success or a core error).
pub type Respond = Box<dyn FnOnce(Result<(), JanusError>)>;

pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A plugin: one value for the whole process, shared by every shard. Its per-handle state
/// is [`Plugin::Handle`]; per-shard state lives in a slot it declares
/// ([`super::host::Host::slot`]); process-wide services (a Redis directory, a client for
/// other proxies) are set up in [`Plugin::start`].
pub trait Plugin: Send + Sync + 'static {
    /// What the plugin keeps for each of its handles, from `attach` to `detach`.
    type Handle: 'static;

    fn meta(&self) -> &'static PluginMeta;

    /// Checks the plugin's config section (`[<name>]`, `None` when absent) without side
    /// effects: `--check-config` and the start both run it. Default: no settings.
    ///
    /// # Errors
    /// What is wrong, naming the key.
    fn check_section(&self, section: Option<&toml::Value>) -> Result<(), String> {
        match section {
            None => Ok(()),
            Some(_) => Err(format!(
                "[{}]: this plugin has no settings",
                self.meta().name
            )),
        }
    }

    /// Runs once at start-up, before any shard, after [`Plugin::check_section`]: sets up
    /// the plugin's services (connections to Redis, threads). Default: nothing.
    ///
    /// # Errors
    /// A service cannot start (the proxy does not start either).
    fn start(&self, _cx: &mut StartCx) -> Result<(), String> {
        Ok(())
    }

    /// Admin API routes the plugin serves (proxy-to-proxy calls). Default: none.
    fn admin_routes(&self) -> Vec<PluginRoute> {
        Vec::new()
    }

    /// Runs inside `attach`, before the client gets its reply; an error fails the attach.
    fn attach(&self, ctx: HandleCtx) -> LocalFuture<Result<Self::Handle, JanusError>>;

    /// Whether this `message` is answered asynchronously (`ack` now, `event` later).
    /// The core sends the `ack` before calling [`Plugin::message`]. Default: yes.
    fn is_async(&self, _msg: &PluginMessage) -> bool {
        true
    }

    /// Handles a `message`. Synchronous requests return the `plugindata.data` JSON, or
    /// `None` when the answer needs work elsewhere first: the plugin then calls
    /// [`PluginMessage::answer`] once it has it. Asynchronous ones return `None` and push
    /// an `event` with the transaction later.
    fn message(&self, ctx: &HandleCtx, h: &Rc<Self::Handle>, msg: PluginMessage) -> Option<String>;

    /// Handles a `trickle`; `respond` sends the `ack` or the error. Default: ack.
    fn trickle(&self, _ctx: &HandleCtx, _h: &Rc<Self::Handle>, _t: Trickle, respond: Respond) {
        respond(Ok(()));
    }

    /// Handles a core `hangup`; `respond` sends the `success` or the error. Default: ok.
    fn hangup(&self, _ctx: &HandleCtx, _h: &Rc<Self::Handle>, respond: Respond) {
        respond(Ok(()));
    }

    /// The handle is going away (detach, session destroyed or expired): release what it
    /// holds. Nothing is sent to the client from here. Default: nothing to release.
    fn detach(&self, _ctx: &HandleCtx, _h: Rc<Self::Handle>) {}

    /// Backend handle `from`, bound to this handle, died (backend gone, or detached by the
    /// backend). Returns whether the client handle goes too; then the client gets a core
    /// `hangup` (with `reason`) and `detached`. Default: yes.
    fn backend_lost(
        &self,
        _ctx: &HandleCtx,
        _h: &Rc<Self::Handle>,
        _from: BackendRef,
        _reason: &str,
    ) -> bool {
        true
    }

    /// Whether another proxy may adopt this handle if this proxy dies (`[cluster]`): its
    /// backend handle and what else the plugin needs to rebuild it ([`Adoptable`]). The
    /// core records it where other proxies find it when the handle is attached, and again
    /// whenever the plugin says it changed ([`HandleCtx::adoption_changed`]). Default:
    /// `None`, not adoptable (after a failover the client gets `hangup` and `detached`).
    fn adoption(&self, _ctx: &HandleCtx, _h: &Rc<Self::Handle>) -> Option<Adoptable> {
        None
    }

    /// Rebuilds an adopted handle (one this plugin's [`Plugin::adoption`] described on a
    /// dead proxy) from its record: `b`, its backend handle, already bound to the client
    /// handle of `ctx` on a link that claimed the dead proxy's backend session, and
    /// `state`, the plugin's own part. Runs before the session's client has claimed it:
    /// what the client must be told goes through [`HandleCtx::push_when_claimed`]. `None`
    /// refuses: the plugin has released `b` (the handle is ended: `hangup` and `detached`
    /// after the claim). Default: `b` detached, `None`.
    fn adopt(
        &self,
        _ctx: HandleCtx,
        b: Option<BackendHandle>,
        _state: Option<String>,
    ) -> LocalFuture<Option<Self::Handle>> {
        if let Some(b) = b {
            b.detach();
        }
        Box::pin(async { None })
    }

    /// An unsolicited message from backend handle `from`, bound to this handle.
    /// Default: relay it to the client with the ids rewritten (spec 01 §7.1).
    fn backend_event(
        &self,
        ctx: &HandleCtx,
        _h: &Rc<Self::Handle>,
        _from: BackendRef,
        msg: &RawObject,
        janus: &str,
    ) {
        ctx.push(reply::relay(msg, janus, ctx.addr(), None));
    }
}

/// [`Plugin`] with its handle state type erased, so that the core can hold any plugin and
/// any plugin's handles. Implemented for every plugin; the core's only view of plugins.
pub trait AnyPlugin: Send + Sync {
    fn meta(&self) -> &'static PluginMeta;
    fn check_section(&self, section: Option<&toml::Value>) -> Result<(), String>;
    fn start(&self, cx: &mut StartCx) -> Result<(), String>;
    fn admin_routes(&self) -> Vec<PluginRoute>;
    fn attach(&self, ctx: HandleCtx) -> LocalFuture<Result<Rc<dyn Any>, JanusError>>;
    fn is_async(&self, msg: &PluginMessage) -> bool;
    fn message(&self, ctx: &HandleCtx, h: &Rc<dyn Any>, msg: PluginMessage) -> Option<String>;
    fn trickle(&self, ctx: &HandleCtx, h: &Rc<dyn Any>, t: Trickle, respond: Respond);
    fn hangup(&self, ctx: &HandleCtx, h: &Rc<dyn Any>, respond: Respond);
    fn detach(&self, ctx: &HandleCtx, h: Rc<dyn Any>);
    fn backend_lost(
        &self,
        ctx: &HandleCtx,
        h: &Rc<dyn Any>,
        from: BackendRef,
        reason: &str,
    ) -> bool;
    fn backend_event(
        &self,
        ctx: &HandleCtx,
        h: &Rc<dyn Any>,
        from: BackendRef,
        msg: &RawObject,
        janus: &str,
    );
    fn adoption(&self, ctx: &HandleCtx, h: &Rc<dyn Any>) -> Option<Adoptable>;
    fn adopt(
        &self,
        ctx: HandleCtx,
        b: Option<BackendHandle>,
        state: Option<String>,
    ) -> LocalFuture<Option<Rc<dyn Any>>>;
}

/// The plugin's own state of a handle. The core only ever gives a plugin the state its
/// own `attach` made, so the downcast cannot fail; if it did, the callback is skipped.
fn own<P: Plugin>(h: &Rc<dyn Any>) -> Option<Rc<P::Handle>> {
    h.clone().downcast::<P::Handle>().ok()
}

fn foreign_state() -> JanusError {
    JanusError::new(Code::InternalError, "handle state of another plugin")
}

impl<P: Plugin> AnyPlugin for P {
    fn meta(&self) -> &'static PluginMeta {
        Plugin::meta(self)
    }

    fn check_section(&self, section: Option<&toml::Value>) -> Result<(), String> {
        Plugin::check_section(self, section)
    }

    fn start(&self, cx: &mut StartCx) -> Result<(), String> {
        Plugin::start(self, cx)
    }

    fn admin_routes(&self) -> Vec<PluginRoute> {
        Plugin::admin_routes(self)
    }

    fn attach(&self, ctx: HandleCtx) -> LocalFuture<Result<Rc<dyn Any>, JanusError>> {
        let attached = Plugin::attach(self, ctx);
        Box::pin(async move { attached.await.map(|h| Rc::new(h) as Rc<dyn Any>) })
    }

    fn is_async(&self, msg: &PluginMessage) -> bool {
        Plugin::is_async(self, msg)
    }

    fn message(&self, ctx: &HandleCtx, h: &Rc<dyn Any>, msg: PluginMessage) -> Option<String> {
        Plugin::message(self, ctx, &own::<P>(h)?, msg)
    }

    fn trickle(&self, ctx: &HandleCtx, h: &Rc<dyn Any>, t: Trickle, respond: Respond) {
        match own::<P>(h) {
            Some(h) => Plugin::trickle(self, ctx, &h, t, respond),
            None => respond(Err(foreign_state())),
        }
    }

    fn hangup(&self, ctx: &HandleCtx, h: &Rc<dyn Any>, respond: Respond) {
        match own::<P>(h) {
            Some(h) => Plugin::hangup(self, ctx, &h, respond),
            None => respond(Err(foreign_state())),
        }
    }

    fn detach(&self, ctx: &HandleCtx, h: Rc<dyn Any>) {
        if let Ok(h) = h.downcast::<P::Handle>() {
            Plugin::detach(self, ctx, h);
        }
    }

    fn backend_lost(
        &self,
        ctx: &HandleCtx,
        h: &Rc<dyn Any>,
        from: BackendRef,
        reason: &str,
    ) -> bool {
        own::<P>(h).is_none_or(|h| Plugin::backend_lost(self, ctx, &h, from, reason))
    }

    fn backend_event(
        &self,
        ctx: &HandleCtx,
        h: &Rc<dyn Any>,
        from: BackendRef,
        msg: &RawObject,
        janus: &str,
    ) {
        if let Some(h) = own::<P>(h) {
            Plugin::backend_event(self, ctx, &h, from, msg, janus);
        }
    }

    fn adoption(&self, ctx: &HandleCtx, h: &Rc<dyn Any>) -> Option<Adoptable> {
        Plugin::adoption(self, ctx, &own::<P>(h)?)
    }

    fn adopt(
        &self,
        ctx: HandleCtx,
        b: Option<BackendHandle>,
        state: Option<String>,
    ) -> LocalFuture<Option<Rc<dyn Any>>> {
        let adopted = Plugin::adopt(self, ctx, b, state);
        Box::pin(async move { adopted.await.map(|h| Rc::new(h) as Rc<dyn Any>) })
    }
}

/// The plugins `config.plugins` enables (every one of `all` when unset), after checking
/// their sections; every other top-level section of the file must belong to one of them.
///
/// # Errors
/// An unknown plugin name, a section no enabled plugin claims, or a section its plugin
/// refuses.
pub fn select(
    config: &Config,
    all: &[&'static dyn AnyPlugin],
) -> Result<Vec<&'static dyn AnyPlugin>, String> {
    let enabled: Vec<&'static dyn AnyPlugin> = match &config.plugins {
        None => all.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| {
                all.iter()
                    .copied()
                    .find(|p| p.meta().name == n)
                    .ok_or_else(|| {
                        let known: Vec<&str> = all.iter().map(|p| p.meta().name).collect();
                        format!(
                            "invalid value for `plugins`: {n:?} (unknown plugin; known: {})",
                            known.join(", ")
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    for name in config.sections.keys() {
        if !enabled.iter().any(|p| p.meta().name == name) {
            return Err(format!(
                "unknown section or key `{name}` (not a proxy setting, nor the section of an enabled plugin)"
            ));
        }
    }
    for p in &enabled {
        p.check_section(config.sections.get(p.meta().name))?;
    }
    Ok(enabled)
}

/// The `info.plugins` object for the given plugins.
pub fn info_json(plugins: &[&'static dyn AnyPlugin]) -> String {
    let mut out = ObjectWriter::new();
    for p in plugins {
        let m = p.meta();
        let mut o = ObjectWriter::new();
        o.str("name", m.display_name)
            .str("author", m.author)
            .str("description", m.description)
            .str("version_string", m.version_string)
            .u64("version", m.version as u64);
        out.raw(m.package, std::str::from_utf8(&o.finish()).unwrap_or("{}"));
    }
    String::from_utf8(out.finish()).unwrap_or_else(|_| "{}".into())
}

/// Process-wide services plugins set up at start ([`Plugin::start`]) and use from every
/// shard ([`super::host::Host::service`]): one value per type, changed only at start, then
/// shared read-only by all shards (a service that changes later does so behind its own
/// channels or atomics).
#[derive(Default)]
pub struct Services {
    map: AHashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Services {
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.map.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }

    /// The service of type `T`, made with `make` if there is none yet (for services that
    /// several plugins add to at start).
    pub fn get_or_insert_with<T: Send + Sync + 'static>(
        &mut self,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        let slot = self
            .map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(make()));
        match slot.downcast_mut::<T>() {
            Some(t) => t,
            // The map is keyed by the value's own type.
            None => unreachable!("service stored under another type's id"),
        }
    }
}

/// What a plugin gets at start-up.
pub struct StartCx<'a> {
    pub config: &'a Config,
    /// The plugin's own config section, if the file has one.
    pub section: Option<&'a toml::Value>,
    /// The way to shards, for services that run on their own threads.
    pub peers: &'a Peers,
    pub services: &'a mut Services,
    /// Gauges the plugin exposes on `/metrics`.
    pub gauges: &'a mut Vec<super::metrics::PluginGauge>,
}

/// The answer of a plugin's admin route: a JSON body with 200 (`Null` = empty body), or a
/// Janus error (its code becomes the HTTP status when it is one).
pub type RouteFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, JanusError>> + Send>>;

/// Routes under the admin API that a plugin serves (proxy-to-proxy calls, management).
/// Behind the admin API's access rules (secret, CORS, body limits) like every route.
#[derive(Clone)]
pub struct PluginRoute {
    /// Path prefix, e.g. `/plugins/videocall/` (anything may follow) or
    /// `/plugins/videoroom` (itself, or followed by `/…`); the rest of the path is passed on.
    pub prefix: &'static str,
    /// The methods it answers (others get 405).
    pub methods: &'static [&'static str],
    /// Runs on the admin API's thread with the method, the rest of the path and the
    /// parameters: it must not block (reach shards through `Peers`).
    pub handler: fn(&Peers, &str, &str, &BTreeMap<String, String>) -> RouteFuture,
}

impl PluginRoute {
    /// The rest of `path` after the prefix, if the route serves that path.
    pub fn rest<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.prefix)?;
        // `/plugins/videocall/` + a username, which may be empty (Janus takes "").
        let ok = if self.prefix.ends_with('/') {
            true
        } else {
            rest.is_empty() || rest.starts_with('/')
        };
        ok.then_some(rest)
    }
}
