//! What happens to sessions without a client request: backend events and losses,
//! connections closing, and the once-a-second expiry sweep.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::host::HandleCtx;
use super::plugin::BackendRef;
use super::session::{ConnRef, Expiry};
use super::session_verbs::reclaim_window;
use crate::api::reply;
use crate::backend::link::{HandleOwner, Link, LinkEvent};
use crate::core::shard::Shard;

/// Receives the events of one of this shard's backend links.
pub fn on_link_event(shard: &Rc<Shard>, link: &Link, ev: LinkEvent<'_>) {
    match ev {
        LinkEvent::Message {
            owner,
            handle,
            msg,
            janus,
        } => {
            let found = {
                let sessions = shard.sessions.borrow();
                sessions
                    .get(owner.session_id)
                    .and_then(|s| s.handles.get(&owner.handle_id))
                    .map(|h| (h.plugin, h.opaque_id.clone(), h.state.clone()))
            };
            if let Some((plugin, opaque_id, state)) = found {
                let ctx = HandleCtx::new(shard, owner.session_id, owner.handle_id, opaque_id);
                let from = BackendRef {
                    server: &link.server.name,
                    handle,
                };
                plugin.backend_event(&ctx, &state, from, msg, janus);
            }
        }
        LinkEvent::Detached { owner, handle } => {
            backend_handle_gone(
                shard,
                owner,
                BackendRef {
                    server: &link.server.name,
                    handle,
                },
                &format!("Backend server {} detached the handle", link.server.name),
            );
        }
        LinkEvent::Lost { owners, reason } => {
            let why = format!("Backend server {} gone: {reason}", link.server.name);
            for (owner, handle) in owners {
                let from = BackendRef {
                    server: &link.server.name,
                    handle,
                };
                backend_handle_gone(shard, owner, from, &why);
            }
        }
    }
}

/// The backend handle behind a frontend handle is gone: the client gets `hangup` and
/// `detached` (the original sent nothing and left the handle broken), and the handle
/// is removed.
fn backend_handle_gone(shard: &Rc<Shard>, owner: HandleOwner, from: BackendRef, reason: &str) {
    let found = {
        let sessions = shard.sessions.borrow();
        sessions
            .get(owner.session_id)
            .and_then(|s| s.handles.get(&owner.handle_id))
            .map(|h| (h.plugin, h.opaque_id.clone(), h.state.clone()))
    };
    let Some((plugin, opaque_id, state)) = found else {
        return;
    };
    let ctx = HandleCtx::new(shard, owner.session_id, owner.handle_id, opaque_id);
    // Plugins whose handles outlive a call (videocall) keep the frontend handle.
    if !plugin.backend_lost(&ctx, &state, from, reason) {
        return;
    }
    end_handle(shard, owner.session_id, owner.handle_id, reason);
}

/// A frontend handle ends without its client asking: it is removed, and the client gets
/// `hangup` (with `reason`) and `detached`.
pub fn end_handle(shard: &Rc<Shard>, session_id: u64, handle_id: u64, reason: &str) {
    let removed = shard
        .sessions
        .borrow_mut()
        .get_mut(session_id)
        .and_then(|s| s.handles.remove(&handle_id));
    if let Some(h) = removed {
        shard.metrics.handles.dec();
        super::cluster::handle_gone(shard, session_id, handle_id);
        let addr = reply::Addr {
            session_id,
            handle_id,
            opaque_id: h.opaque_id.as_deref(),
        };
        shard.push_to_session(
            session_id,
            reply::handle_event("hangup", addr, Some(reason)),
        );
        shard.push_to_session(session_id, reply::handle_event("detached", addr, None));
    }
}

/// A client connection (of any shard) closed: its sessions here become orphans or die.
pub fn connection_closed(shard: &Rc<Shard>, conn: ConnRef) {
    let doomed =
        shard
            .sessions
            .borrow_mut()
            .connection_closed(conn, reclaim_window(shard), Instant::now());
    for id in doomed {
        shard.destroy_session(id);
    }
}

/// Expires idle and unclaimed sessions.
pub fn sweep(shard: &Rc<Shard>, now: Instant) {
    let timeout = Duration::from_secs(shard.config.general.session_timeout);
    let due = shard
        .sessions
        .borrow()
        .expired(now, timeout, reclaim_window(shard));
    for (id, why) in due {
        debug!(session = id, ?why, "session expired");
        match why {
            Expiry::Timeout => shard.push_to_session(id, reply::timeout(id)),
            Expiry::SlowReader => super::http_api::count_overflow(shard),
            Expiry::NotReclaimed => {}
        }
        shard.destroy_session(id);
    }
}
