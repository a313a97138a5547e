//! Rooms across proxies (`room_db = "redis://…"`). Each room is served by one proxy, its
//! owner, named in Redis (`store::redis_owners`: key `januscloud:videoroom_owner:<room>`,
//! value the owner's `peer_url`, TTL `owner_ttl`, refreshed while the owner lives). The
//! owner holds the room as a single proxy does (participants, placement on backends,
//! mirrors, every room event); the others relay to it.
//!
//! - A proxy takes a room it knows (static, stored or created here) that has no owner the
//!   first time a request names it (one Lua script: one Redis round trip; none when this
//!   proxy already owns it). `create` takes the new id, or answers 427 when another proxy
//!   owns it; `destroy` gives it back.
//! - A handle whose `join` names a room owned elsewhere becomes a relay: it attaches a
//!   VideoRoom handle on the owner through a peer link (the owner's client API, as any
//!   client: `Host::peer_link`), and from then on every request, candidate and hangup goes
//!   there untouched and every answer and event comes back with this proxy's session and
//!   handle ids. The client sees exactly what a client of the owner sees (same room and
//!   feed ids, same events in the same order); its PeerConnection is with the backend the
//!   owner placed it on.
//! - A room-level synchronous request (`exists`, `listparticipants`, `kick`, …) for a room
//!   owned elsewhere goes to the owner on a shard-wide control handle.
//! - An owner that finds its key taken by another proxy (Redis restarted empty, or away for
//!   `owner_ttl`, and another proxy took the room meanwhile) ends the room here as a
//!   destroyed one (`destroyed` to its participants): the room is the new owner's.
//! - A relaying proxy dies (`[cluster]`): its relayed handles are adopted like echotest's
//!   (`VideoRoom::adopt`): the adopting proxy claims the dead proxy's peer session on the
//!   owner (kept there for the owner's `general.reclaim_session_timeout`) over a peer link
//!   of its own, and relays the same owner handles again.
//! - The owner dies. With `[cluster]` the room outlives it ([`super::takeover`]): the
//!   proxy adopting the owner's sessions takes the room over, and a relay whose peer link
//!   dropped follows it ([`rehome`]): it claims its peer session (a client session of the
//!   dead owner) again, on this proxy, which adopts it with the room. Without `[cluster]`,
//!   or when that fails, every relayed handle ends as one whose backend died (`hangup`,
//!   then `detached`); the room key runs out after `owner_ttl`, joins fail with 503 until
//!   then, and the next join takes the room anew, empty.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use ahash::AHashMap;
use futures_channel::oneshot;
use serde_json::{Map, Value};

use super::error::{VrError, VrResult, ROOM_EXISTS};
use super::participant::{on_owner, shard_gone};
use super::{error_text, event_data, flush_candidates, rooms, Job, Outcome, Role, VrHandle};
use super::{Settings, PACKAGE};
use crate::api::reply;
use crate::plugins::{BackendHandle, HandleCtx, Host, Peers};
use crate::runtime::jump_hash::jump_hash;
use crate::store::redis_owners::{Found, RedisOwners};

/// The room owners in Redis (a service, with a Redis `room_db` only).
pub struct Owners {
    db: RedisOwners,
    /// Rooms this proxy owns (what the owner thread keeps refreshing).
    owned: Arc<Mutex<BTreeSet<u64>>>,
}

impl Owners {
    /// Starts the owner thread. `peer_url` is this proxy's address ("" = derived from
    /// `ws_listen`).
    ///
    /// # Errors
    /// Redis unreachable.
    pub fn start(settings: &Settings, ws_listen: &str, peers: &Peers) -> Result<Owners, String> {
        let me = if settings.peer_url.is_empty() {
            default_peer_url(ws_listen).ok_or_else(|| {
                format!(
                    "videoroom.peer_url: required with a Redis room_db when ws_transport.ws_listen \
                     ({ws_listen}) is a wildcard address: other proxies must reach this one there"
                )
            })?
        } else {
            settings.peer_url.clone()
        };
        let owned = Arc::new(Mutex::new(BTreeSet::new()));
        let db = RedisOwners::start(
            &settings.room_db,
            "videoroom",
            me,
            std::time::Duration::from_secs(settings.owner_ttl),
            owned.clone(),
            {
                let peers = peers.clone();
                Box::new(move |id, found| {
                    let shard = jump_hash(id, peers.count());
                    peers.run_on(shard, move |h| match found {
                        Found::Lost => rooms::lost(h, id),
                        Found::Restored => rooms::restored(h, id),
                    });
                })
            },
        )
        .map_err(|e| format!("videoroom.room_db: {e}"))?;
        Ok(Owners { db, owned })
    }

    pub fn me(&self) -> &str {
        &self.db.me
    }

    /// Redis round trips made for requests that waited for them (a counter).
    pub fn round_trips(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.db.round_trips.clone()
    }

    fn owns(&self, room: u64) -> bool {
        self.owned.lock().is_ok_and(|o| o.contains(&room))
    }
}

/// Whether this proxy owns room `id` (no Redis round trip).
pub fn owns(host: &Host, id: u64) -> bool {
    host.service::<Owners>().is_some_and(|o| o.owns(id))
}

/// This proxy's `peer_url`, with rooms across proxies.
pub fn me(host: &Host) -> Option<String> {
    host.service::<Owners>().map(|o| o.me().to_string())
}

/// Takes room `id` from `dead`, its owner that died ([`RedisOwners::take_over`]), with the
/// snapshot it left ([`super::takeover`]); and this proxy's `peer_url`. `None` without
/// rooms across proxies.
pub async fn take_over(
    host: &Host,
    id: u64,
    dead: &str,
) -> Option<(crate::store::redis_owners::TakenOver, String)> {
    let owners = host.service::<Owners>()?;
    let (db, me) = (owners.db.clone(), owners.me().to_string());
    Some((db.take_over(id, dead, super::takeover::LIVE_KEY).await, me))
}

/// Whether a relay whose link to the owner dropped can follow its room ([`rehome`]): with
/// proxy failover, where a dead owner's room is taken over.
pub fn may_rehome(host: &Host) -> bool {
    host.service::<super::takeover::Live>().is_some()
}

/// How long a relay waits for its session to be claimed again: the dead owner's
/// heartbeat running out, then the adoption.
fn rehome_wait(host: &Host) -> std::time::Duration {
    let c = host.config();
    std::time::Duration::from_secs(c.cluster.heartbeat_ttl + c.backend.connect_timeout)
}

/// The link of relayed handle `h` to the room's owner dropped. Its session there (the
/// peer session, a client session of the owner, recorded in the cluster's directory
/// like any) is claimed again: at the owner first (a link that only dropped), then at
/// this proxy itself, which adopts it from the dead owner together with the room
/// ([`super::takeover`]), as it adopts the session of any client of the dead proxy. The
/// relay then goes on around the same handle there, its PeerConnection untouched. When
/// neither works the handle ends as one whose backend died (`hangup`, `detached`).
pub fn rehome(ctx: &HandleCtx, h: &Rc<VrHandle>, reason: &str) {
    let (ctx, h, reason) = (ctx.clone(), h.clone(), reason.to_string());
    let lost = h.backend.borrow().clone();
    let old = match &*h.role.borrow() {
        Role::Relay(url) => url.to_string(),
        _ => String::new(),
    };
    let session = h.relay_session.get();
    monoio::spawn(async move {
        let host = ctx.host().clone();
        let targets = [Some(old), me(&host)];
        if let (Some(lost), true) = (lost, session != 0) {
            for (i, url) in targets.into_iter().flatten().enumerate() {
                // The old owner gets one try (a dead one refuses at once); this proxy
                // gets the time the dead owner's heartbeat takes to run out.
                let until = std::time::Instant::now()
                    + if i == 0 {
                        std::time::Duration::ZERO
                    } else {
                        rehome_wait(&host)
                    };
                let Some(link) = claimed(&host, &url, session, until).await else {
                    host.unpin_claim(&url, session);
                    continue;
                };
                let b = BackendHandle::adopted(&link, lost.id, &ctx);
                host.unpin_claim(&url, session);
                if !ctx.is_attached() {
                    b.detach();
                    return;
                }
                *h.backend.borrow_mut() = Some(b);
                *h.role.borrow_mut() = Role::Relay(url.as_str().into());
                ctx.adoption_changed();
                tracing::info!(handle = ctx.handle_id, owner = %url, session, "videoroom relay follows its room");
                return;
            }
        }
        tracing::info!(
            handle = ctx.handle_id,
            session,
            "videoroom relay lost its room"
        );
        super::participant::release(
            &host,
            &h,
            super::participant::loc(&ctx),
            super::participant::End::Detach,
        );
        ctx.end(&reason);
    });
}

/// A link that claimed `session` at the proxy at `url`, trying until `until`.
async fn claimed(
    host: &Host,
    url: &str,
    session: u64,
    until: std::time::Instant,
) -> Option<Rc<crate::backend::link::Link>> {
    let link = host.claim_peer_session(url, session)?;
    loop {
        if link.ready().await.is_ok() {
            return Some(link);
        }
        if link.is_retired() || std::time::Instant::now() >= until {
            return None;
        }
        monoio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `ws://` + the listen address; `None` for a wildcard address, which other proxies
/// cannot use (every proxy would call itself `ws://127.0.0.1:…` and own every room).
fn default_peer_url(ws_listen: &str) -> Option<String> {
    let wildcard = ws_listen.starts_with("0.0.0.0:") || ws_listen.starts_with("[::]:");
    (!wildcard).then(|| format!("ws://{ws_listen}"))
}

/// Which proxy serves a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// This one (or no proxy has it and this one does not know it: the local answer is
    /// 426).
    Here,
    /// The proxy at this `peer_url`.
    Proxy(String),
}

fn directory_error(e: impl std::fmt::Display) -> VrError {
    VrError::new(503, format!("Room directory unavailable: {e}"))
}

/// Which proxy serves room `id`, taking it when nobody does and this proxy knows it.
///
/// # Errors
/// 503 when Redis cannot be reached.
pub async fn owner_of(host: &Host, id: u64) -> VrResult<Where> {
    let Some(owners) = host.service::<Owners>() else {
        return Ok(Where::Here);
    };
    if owners.owns(id) {
        return Ok(Where::Here);
    }
    let (db, me) = (owners.db.clone(), owners.me().to_string());
    let known = on_owner(host, id, move |o| {
        Ok(rooms::rooms(o).map.borrow().contains_key(&id))
    })
    .await?;
    let owner = db.claim(id, known).await.map_err(directory_error)?;
    Ok(if owner.is_empty() || owner == me {
        Where::Here
    } else {
        Where::Proxy(owner)
    })
}

/// Takes id `id` for a room `create` makes here.
///
/// # Errors
/// 427 when another proxy owns it; 503 when Redis cannot be reached.
pub async fn claim_new(host: &Host, id: u64) -> VrResult<()> {
    let Some(owners) = host.service::<Owners>() else {
        return Ok(());
    };
    let (db, me) = (owners.db.clone(), owners.me().to_string());
    let owner = db.claim(id, true).await.map_err(directory_error)?;
    if owner != me {
        return Err(VrError::new(
            ROOM_EXISTS,
            format!("Room {id} already exists"),
        ));
    }
    Ok(())
}

/// Gives room `id` up (destroyed here, or never made).
pub fn release(host: &Host, id: u64) {
    if let Some(owners) = host.service::<Owners>() {
        owners.db.release(id);
    }
}

/// A join of a room owned by the proxy at `url`: the handle becomes a relay to a handle
/// of that proxy, and the join goes there.
pub async fn join(ctx: &HandleCtx, h: &Rc<VrHandle>, url: String, job: Job) -> Outcome {
    let link = ctx
        .host()
        .peer_link(&url)
        .ok_or_else(|| VrError::new(503, format!("Room owner {url} not reachable")))?;
    let b = BackendHandle::attach(&link, PACKAGE, ctx).await?;
    if !ctx.is_attached() {
        b.detach();
        return Ok(None);
    }
    let retired = h.retired.borrow_mut().take();
    if let Some(old) = retired {
        old.detach();
    }
    *h.backend.borrow_mut() = Some(b.clone());
    *h.role.borrow_mut() = Role::Relay(url.into());
    h.relay_session.set(b.link.session_id());
    flush_candidates(h, &b);
    // With `[cluster]`, another proxy can adopt the relay if this one dies: its record
    // (the owner, the peer session and handle there) is in Redis before the join goes.
    ctx.adoption_recorded().await;
    forward(ctx, h, job).await
}

/// An asynchronous request of a relayed handle: sent to the owner in order, its answer
/// pushed to the client as it arrives (in order with the owner's later events).
pub async fn forward(ctx: &HandleCtx, h: &Rc<VrHandle>, job: Job) -> Outcome {
    let Some(b) = h.backend.borrow().clone() else {
        return Err(shard_gone());
    };
    let body = Value::Object(job.body).to_string();
    let mut fields = vec![("body", body.as_str())];
    if let Some(j) = job.jsep.as_deref() {
        fields.push(("jsep", j));
    }
    let (tx, rx) = oneshot::channel();
    let (c, transaction) = (ctx.clone(), job.transaction.clone());
    b.send_in_order(
        &fields,
        Box::new(move |r| {
            let out = match r {
                Ok(m) => {
                    if c.is_attached() {
                        c.push(reply::relay(m, "event", c.addr(), Some(&transaction)));
                    }
                    Ok(None)
                }
                Err(e) => Err(VrError::from(e)),
            };
            let _ = tx.send(out);
        }),
    );
    rx.await.unwrap_or_else(|_| Err(shard_gone()))
}

/// A synchronous request of a relayed handle: answered by the owner.
pub fn sync(h: &VrHandle, body: &str, answer: crate::core::plugin::SyncAnswer) {
    let Some(b) = h.backend.borrow().clone() else {
        answer(&error_text(&shard_gone()));
        return;
    };
    b.link.send(
        "message",
        Some(b.id),
        &[("body", body)],
        false,
        Box::new(move |r| {
            let data = match r {
                Ok(m) => event_data(m).unwrap_or(Value::Null).to_string(),
                Err(e) => error_text(&VrError::from(e)),
            };
            answer(&data);
        }),
    );
}

/// This shard's control handles on other proxies, by `peer_url` (a shard-local slot).
#[derive(Default)]
pub struct Controls {
    by_url: RefCell<AHashMap<String, BackendHandle>>,
}

/// A room-level synchronous request for a room the proxy at `url` owns: its answer
/// there (`plugindata.data`, an error object included).
///
/// # Errors
/// 503/504 when that proxy cannot be reached.
pub async fn request(host: &Host, url: &str, body: &Map<String, Value>) -> VrResult<Value> {
    let controls = host.slot::<Controls>();
    let cached = controls
        .by_url
        .borrow()
        .get(url)
        .filter(|b| !b.link.is_retired() && !b.link.is_down())
        .cloned();
    let b = match cached {
        Some(b) => b,
        None => {
            let link = host
                .peer_link(url)
                .ok_or_else(|| VrError::new(503, format!("Room owner {url} not reachable")))?;
            let capacity = host.config().limits.max_queued_requests_per_handle;
            let b = BackendHandle::attach_own(&link, PACKAGE, Box::new(|_| {}), capacity).await?;
            controls
                .by_url
                .borrow_mut()
                .insert(url.to_string(), b.clone());
            b
        }
    };
    let text = Value::Object(body.clone()).to_string();
    let (tx, rx) = oneshot::channel();
    b.link.send(
        "message",
        Some(b.id),
        &[("body", &text)],
        false,
        Box::new(move |r| {
            let _ = tx.send(r.map(|m| event_data(m).unwrap_or(Value::Null)));
        }),
    );
    match rx.await {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(shard_gone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_url_from_the_listen_address() {
        assert_eq!(default_peer_url("0.0.0.0:8288"), None);
        assert_eq!(default_peer_url("[::]:8288"), None);
        assert_eq!(
            default_peer_url("10.0.0.5:9000").as_deref(),
            Some("ws://10.0.0.5:9000")
        );
    }
}
