//! Proxy failover, the core's side (`[cluster] session_db`). Owns two things:
//!
//! - **Records.** As client sessions and handles come and go here, what another proxy
//!   needs to adopt them goes to the cluster's session directory
//!   (`store::redis_sessions`, its own thread; a shard only queues): the session id, and
//!   per handle its plugin, opaque id and, when its plugin says it can be adopted
//!   ([`super::plugin::Plugin::adoption`]), its backend server, session and handle.
//! - **Adoption.** A `claim` of a session this proxy does not know asks the directory,
//!   which gives it to this proxy if its owner's heartbeat is gone (atomically, with every
//!   client session sharing a backend session with it). Each backend session is then
//!   claimed once, by an adopting link on the shard of its first client session; the
//!   client sessions are recreated with their ids, orphaned until their clients claim them
//!   (for `adopt_timeout`), and their handles rebuilt by their plugins
//!   ([`super::plugin::Plugin::adopt`]) around the backend handles. Handles that cannot
//!   be adopted are ended: their client gets `hangup` and `detached` right after its
//!   claim. Then the claim is answered as Janus does.
//!
//! Never names a plugin; never blocks (Redis is the directory thread's).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use tracing::{info, warn};

use super::backend_handle::BackendHandle;
use super::host::HandleCtx;
use super::plugin::AnyPlugin;
use super::session::{ConnRef, Handle};
use super::shard::Shard;
use super::{dispatch, session_verbs};
use crate::api::error::{Code, JanusError};
use crate::api::reply;
use crate::backend::link::Link;
use crate::store::redis_sessions::{
    Adoption, BackendRecord, HandleRecord, SessionDirectory, SessionRecord, Written,
};

/// The cluster service every shard shares.
pub struct Cluster {
    pub directory: SessionDirectory,
    /// How long adopted sessions wait for their clients.
    pub adopt_timeout: Duration,
    /// How long a claim waits for the heartbeat of a silent owner to run out.
    pub heartbeat_ttl: Duration,
}

/// How long a claim waits for a session another claim of this proxy is adopting.
const INSTALL_WAIT: Duration = Duration::from_secs(15);

/// Handles of adopted sessions that could not be adopted, by session: their clients get
/// `hangup` and `detached` once they claim the session (a shard-local slot).
#[derive(Default)]
struct Ended(RefCell<AHashMap<u64, Vec<EndedHandle>>>);

/// A handle id and its opaque id.
type EndedHandle = (u64, Option<Rc<str>>);

/// Frames for the clients of adopted sessions, to push once they claim them
/// ([`push_when_claimed`]; a shard-local slot).
#[derive(Default)]
struct Pending(RefCell<AHashMap<u64, Vec<Vec<u8>>>>);

/// Most frames kept for one session until its claim.
const MAX_PENDING: usize = 64;

// ------------------------------------------------------------------------ records

/// Most time an answer waits for its record to reach Redis: with Redis away the proxy
/// goes on serving (the write waits in the queue), without the failover guarantee.
const WRITE_WAIT: Duration = Duration::from_secs(1);

/// Waits (at most `WRITE_WAIT`) until a record is in Redis, so that what a client was
/// told exists can be adopted (or, for a plugin's record, found again) if this proxy dies
/// right after.
pub async fn written(w: Option<Written>) {
    if let Some(w) = w {
        if monoio::time::timeout(WRITE_WAIT, w).await.is_err() {
            warn!("record not written to Redis in time; answering anyway");
        }
    }
}

/// A session was created here: its record, to await before answering.
pub fn session_created(shard: &Shard, id: u64) -> Option<Written> {
    shard.cluster.as_ref()?.directory.session_up(id)
}

/// A session of this shard is gone.
pub fn session_destroyed(shard: &Shard, id: u64) {
    if let Some(c) = &shard.cluster {
        c.directory.session_down(id);
        shard.slots.get::<Ended>().0.borrow_mut().remove(&id);
        shard.slots.get::<Pending>().0.borrow_mut().remove(&id);
    }
}

/// A handle was attached here: its record, to await before answering.
pub fn handle_attached(
    shard: &Rc<Shard>,
    session: u64,
    handle: u64,
    plugin: &'static dyn AnyPlugin,
    opaque_id: Option<&str>,
    state: &Rc<dyn std::any::Any>,
) -> Option<Written> {
    let c = shard.cluster.as_ref()?;
    let ctx = HandleCtx::new(shard, session, handle, opaque_id.map(Rc::from));
    c.directory
        .handle_up(session, handle, record_of(&ctx, plugin, state))
}

/// What another proxy needs to adopt the handle of `ctx`, as its plugin describes it.
fn record_of(
    ctx: &HandleCtx,
    plugin: &'static dyn AnyPlugin,
    state: &Rc<dyn std::any::Any>,
) -> HandleRecord {
    let a = plugin.adoption(ctx, state).unwrap_or_default();
    HandleRecord {
        plugin: plugin.meta().package.to_string(),
        opaque_id: ctx.opaque_id.as_deref().map(str::to_string),
        backend: a.backend.map(|b| BackendRecord {
            server: b.server,
            session: b.backend_session,
            handle: b.backend_handle,
            peer: b.peer,
        }),
        state: a.state,
    }
}

/// The plugin of a handle says its adoption record changed (a call began or ended, a
/// name was registered): it is written again; the caller may await it ([`written`]),
/// unless it is not adoptable (nothing to wait for then).
pub fn handle_changed(shard: &Rc<Shard>, session: u64, handle: u64) -> Option<Written> {
    let c = shard.cluster.as_ref()?;
    let found = {
        let sessions = shard.sessions.borrow();
        sessions
            .get(session)
            .and_then(|s| s.handles.get(&handle))
            .map(|h| (h.plugin, h.opaque_id.clone(), h.state.clone()))
    };
    let (plugin, opaque_id, state) = found?;
    let ctx = HandleCtx::new(shard, session, handle, opaque_id);
    let record = record_of(&ctx, plugin, &state);
    let adoptable = record.adoptable();
    let w = c.directory.handle_up(session, handle, record);
    w.filter(|_| adoptable)
}

/// Pushes a frame to the client of session `id` now, or, while the session waits for its
/// client's claim after an adoption, once it is claimed (at most `MAX_PENDING` frames).
pub fn push_when_claimed(shard: &Rc<Shard>, id: u64, frame: Vec<u8>) {
    let orphaned = shard
        .sessions
        .borrow()
        .get(id)
        .is_none_or(|s| s.owner.is_none() && s.http.is_none());
    if !orphaned || shard.cluster.is_none() {
        shard.push_to_session(id, frame);
        return;
    }
    let pending = shard.slots.get::<Pending>();
    let mut pending = pending.0.borrow_mut();
    let frames = pending.entry(id).or_default();
    if frames.len() < MAX_PENDING {
        frames.push(frame);
    } else {
        warn!(
            session = id,
            "too many events for an adopted session's claim; dropped"
        );
    }
}

/// A handle is gone (its session lives on).
pub fn handle_gone(shard: &Shard, session: u64, handle: u64) {
    if let Some(c) = &shard.cluster {
        c.directory.handle_down(session, handle);
    }
}

/// The once-a-second look: adopting links nobody uses any more are closed (their backend
/// session destroyed) and forgotten.
pub fn sweep(shard: &Shard) {
    let gone = shard.backends.prune_adopted();
    if let Some(c) = &shard.cluster {
        for key in gone {
            info!(backend_session = %key, "adopted backend session released");
            c.directory.forget_backend_session(key);
        }
    }
}

/// A session was claimed: the handles adoption ended are reported to the new owner.
pub fn claimed(shard: &Shard, id: u64) {
    if shard.cluster.is_none() {
        return;
    }
    let pending = shard.slots.get::<Pending>().0.borrow_mut().remove(&id);
    for frame in pending.unwrap_or_default() {
        shard.push_to_session(id, frame);
    }
    let ended = shard.slots.get::<Ended>().0.borrow_mut().remove(&id);
    for (hid, opaque_id) in ended.unwrap_or_default() {
        let addr = reply::Addr {
            session_id: id,
            handle_id: hid,
            opaque_id: opaque_id.as_deref(),
        };
        let why = "Proxy failover: this handle could not be adopted";
        shard.push_to_session(id, reply::handle_event("hangup", addr, Some(why)));
        shard.push_to_session(id, reply::handle_event("detached", addr, None));
    }
}

// ------------------------------------------------------------------------ adoption

/// Whether a claim of `session_id` must first look for the session in the cluster.
pub fn wants_adoption(shard: &Shard, session_id: u64) -> bool {
    shard.cluster.is_some() && !shard.sessions.borrow().contains(session_id)
}

/// Answers a `claim` of a session this shard does not have: adopts it if the cluster says
/// its owner is dead, then claims it for `from` (or answers 458). The connection's later
/// requests wait until then, as behind a request on another shard.
pub fn adopt_then_claim(shard: &Rc<Shard>, session_id: u64, transaction: String, from: ConnRef) {
    dispatch::hold(shard, from);
    let shard = shard.clone();
    monoio::spawn(async move {
        let started = Instant::now();
        match adopt(&shard, session_id).await {
            Ok(()) => session_verbs::claim_session(&shard, session_id, &transaction, from),
            Err(e) => shard.reply_error(from, session_id, Some(&transaction), &e),
        }
        info!(
            session = session_id,
            ms = started.elapsed().as_millis() as u64,
            "claim of a session unknown here answered"
        );
        dispatch::release(&shard, from);
    });
}

/// Makes session `id` exist on this shard if the cluster lets this proxy adopt it.
async fn adopt(shard: &Rc<Shard>, id: u64) -> Result<(), JanusError> {
    let Some(cluster) = shard.cluster.clone() else {
        return Err(JanusError::no_session(id));
    };
    let alive_until = Instant::now() + cluster.heartbeat_ttl + Duration::from_millis(500);
    let mut first_stamp: Option<String> = None;
    loop {
        let answer = cluster.directory.adopt(id).await.map_err(|e| {
            JanusError::new(
                Code::SessionNotFound,
                format!("No such session {id} (session directory unavailable: {e})"),
            )
        })?;
        match answer {
            Adoption::Unknown => return Err(JanusError::no_session(id)),
            Adoption::Ours => return wait_installed(shard, id).await,
            Adoption::OwnerAlive { owner, stamp } => {
                // A live owner refreshes its heartbeat; a dead one's runs out.
                if first_stamp.as_ref().is_some_and(|s| *s != stamp)
                    || Instant::now() >= alive_until
                {
                    info!(session = id, %owner, "claim of a session of a live proxy refused");
                    shard.metrics.failover.refused.inc();
                    return Err(JanusError::no_session(id));
                }
                first_stamp = Some(stamp);
                monoio::time::sleep(Duration::from_millis(100)).await;
            }
            Adoption::Adopted { from, sessions } => {
                info!(session = id, %from, sessions = sessions.len(), "adopting sessions of a dead proxy");
                install_all(shard, &cluster, id, sessions).await;
                return if shard.sessions.borrow().contains(id) {
                    Ok(())
                } else {
                    Err(JanusError::no_session(id))
                };
            }
        }
    }
}

/// Another claim of this proxy is adopting session `id`: waits for it to appear.
async fn wait_installed(shard: &Rc<Shard>, id: u64) -> Result<(), JanusError> {
    let until = Instant::now() + INSTALL_WAIT;
    while Instant::now() < until {
        if shard.sessions.borrow().contains(id) {
            return Ok(());
        }
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(JanusError::no_session(id))
}

/// What one shard installs: its sessions, and for each backend session it adopts, the
/// backend handles nobody here can take (to detach on the backend).
struct Install {
    sessions: Vec<SessionRecord>,
    /// Backend sessions adopted on this shard: key → (server URL, session id, whether it
    /// is a peer session on another proxy).
    links: BTreeMap<String, (String, u64, bool)>,
    strays: Vec<BackendRecord>,
}

/// Spreads the adopted sessions over the shards that own them and installs them there.
async fn install_all(
    shard: &Rc<Shard>,
    cluster: &Arc<Cluster>,
    claimed: u64,
    mut sessions: Vec<SessionRecord>,
) {
    // The claimed session first: its backend sessions are adopted on its shard.
    sessions.sort_by_key(|s| (s.id != claimed, s.id));
    let mut home: BTreeMap<String, usize> = BTreeMap::new();
    let mut plan: BTreeMap<usize, Install> = BTreeMap::new();
    for s in &sessions {
        let t = shard.owner_of(s.id);
        for (_, h) in &s.handles {
            if let Some(b) = &h.backend {
                home.entry(b.session_key()).or_insert(t);
            }
        }
    }
    for mut s in sessions {
        let t = shard.owner_of(s.id);
        for (_, h) in &mut s.handles {
            let Some(b) = h.backend.clone() else { continue };
            let key = b.session_key();
            let j = home.get(&key).copied().unwrap_or(t);
            let entry = plan.entry(j).or_insert_with(Install::empty);
            entry
                .links
                .insert(key, (b.server.clone(), b.session, b.peer));
            if j != t {
                // Its backend session is adopted on another shard (proxies with different
                // shard counts): the handle cannot be relayed from here.
                warn!(
                    session = s.id,
                    "handle not adoptable: its backend session lives on another shard"
                );
                entry.strays.push(b);
                h.backend = None;
            }
        }
        plan.entry(t)
            .or_insert_with(Install::empty)
            .sessions
            .push(s);
    }
    let deadline = cluster.adopt_timeout;
    let mut waits = Vec::new();
    for (t, work) in plan {
        let host = super::host::Host::new(shard.clone());
        waits.push(async move {
            host.ask_async(t, move |h| {
                let shard = h.shard().clone();
                Box::pin(async move { install(&shard, work, deadline).await })
            })
            .await
        });
    }
    for w in waits {
        w.await;
    }
}

impl Install {
    fn empty() -> Install {
        Install {
            sessions: Vec::new(),
            links: BTreeMap::new(),
            strays: Vec::new(),
        }
    }
}

/// On the shard that owns them: claims the backend sessions, recreates the sessions
/// (orphaned until their clients claim them) and adopts their handles.
async fn install(shard: &Rc<Shard>, work: Install, adopt_timeout: Duration) {
    let mut links: BTreeMap<String, Option<Rc<Link>>> = BTreeMap::new();
    for (key, (url, session, peer)) in &work.links {
        let link = match shard.backends.adopted(key) {
            Some(l) => {
                shard.backends.pin_adopted(key);
                Some(l)
            }
            // A peer session on another proxy (a relayed VideoRoom handle): claimed there
            // over its client API, which kept it for its reclaim window.
            None if *peer => match shard.adopting_peer_link(url, *session) {
                Some(l) => {
                    shard.backends.add_adopted(key.clone(), l.clone());
                    Some(l)
                }
                None => {
                    warn!(peer = %url, "cannot adopt a peer session: bad peer URL");
                    None
                }
            },
            None => match shard.backends.by_url(url) {
                Some(own) => {
                    let l = shard.adopting_link(own.server.clone(), *session);
                    shard.backends.add_adopted(key.clone(), l.clone());
                    Some(l)
                }
                None => {
                    warn!(server = %url, "cannot adopt a backend session of an unknown server");
                    None
                }
            },
        };
        links.insert(key.clone(), link);
    }
    for (key, link) in links.iter_mut() {
        if let Some(l) = link {
            if let Err(e) = l.ready().await {
                warn!(backend_session = %key, error = %e, "backend session could not be claimed");
                *link = None;
            }
        }
    }
    for s in work.sessions {
        if shard.sessions.borrow().contains(s.id) {
            continue;
        }
        // The handles first, the session then with all of them: a client claiming it
        // meanwhile (its claim waits for the session to appear) finds it whole.
        let mut adopted = Vec::new();
        let mut ended = Vec::new();
        for (hid, r) in s.handles {
            let opaque: Option<Rc<str>> = r.opaque_id.as_deref().map(Rc::from);
            let ctx = HandleCtx::new(shard, s.id, hid, opaque.clone());
            let plugin = shard.plugin(&r.plugin);
            let backend = r.backend.as_ref().and_then(|b| {
                let link = links.get(&b.session_key())?.as_ref()?;
                Some(BackendHandle::adopted(link, b.handle, &ctx))
            });
            // A record with a backend handle that could not be claimed is not adoptable.
            let whole = r.adoptable() && (r.backend.is_none() || backend.is_some());
            let state = match plugin {
                Some(p) if whole => p
                    .adopt(ctx.clone(), backend, r.state.clone())
                    .await
                    .map(|state| (p, state)),
                _ => {
                    if let Some(b) = backend {
                        b.detach();
                    }
                    None
                }
            };
            match state {
                Some((plugin, state)) => {
                    // Written again if the plugin's view of it changed in the adoption.
                    let now = record_of(&ctx, plugin, &state);
                    adopted.push((hid, plugin, opaque, state, now != r));
                }
                None => {
                    shard.metrics.failover.ended.inc();
                    ended.push((hid, opaque));
                    // Its record goes: the next failover must not try it again.
                    handle_gone(shard, s.id, hid);
                }
            }
        }
        // Orphaned until its client claims it, for the longer of adopt_timeout and the
        // reclaim window (the expiry counts the window from `orphaned_at`).
        let now = Instant::now();
        let reclaim = session_verbs::reclaim_window(shard);
        shard
            .sessions
            .borrow_mut()
            .adopt(s.id, now, now + adopt_timeout.saturating_sub(reclaim));
        shard.metrics.sessions.inc();
        shard.metrics.failover.sessions.inc();
        let mut changed = Vec::new();
        for (hid, plugin, opaque_id, state, rewrite) in adopted {
            if let Some(sess) = shard.sessions.borrow_mut().get_mut(s.id) {
                sess.handles.insert(
                    hid,
                    Handle {
                        id: hid,
                        plugin,
                        opaque_id,
                        state,
                    },
                );
            }
            if rewrite {
                changed.push(hid);
            }
            shard.metrics.handles.inc();
            shard.metrics.failover.handles.inc();
        }
        // Before any await: the session can be claimed from now on.
        if !ended.is_empty() {
            shard
                .slots
                .get::<Ended>()
                .0
                .borrow_mut()
                .insert(s.id, ended);
        }
        // In Redis before the claim is answered: a proxy adopting from this one next must
        // find the records as this one rebuilt them (a name now under its uuid).
        for hid in changed {
            written(handle_changed(shard, s.id, hid)).await;
        }
    }
    for b in work.strays {
        if let Some(Some(link)) = links.get(&b.session_key()) {
            link.send("detach", Some(b.handle), &[], false, Box::new(|_| {}));
        }
    }
    // A link whose backend session could not be claimed has no handles: the sweep
    // releases it once unpinned.
    for key in work.links.keys() {
        shard.backends.unpin_adopted(key);
    }
}
