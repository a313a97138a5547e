//! What publisher and subscriber handles share: the `join` checks Janus makes before it
//! looks at `ptype`, and the end of a handle's part in a room (leave, detach, backend
//! lost, room destroyed, kicked).

use std::cell::RefCell;
use std::rc::Rc;

use ahash::AHashMap;
use serde_json::Value;

use super::error::{VrError, VrResult, INVALID_ELEMENT};
use super::takeover::{self, Kept, Part};
use super::validate::{check, opt, req, req_pos, Ty};
use super::{mirrors, publisher, rooms, subscriber, Job, Outcome, Role, VrHandle};
use crate::plugins::directory::HandleLoc;
use crate::plugins::{BackendHandle, HandleCtx, Host};

/// Janus's `join_parameters`.
const JOIN_PARAMS: &[super::validate::Param] = &[
    req("ptype", Ty::Str),
    opt("audio", Ty::Bool),
    opt("video", Ty::Bool),
    opt("data", Ty::Bool),
    super::validate::pos("bitrate"),
    opt("record", Ty::Bool),
    opt("filename", Ty::Str),
    opt("token", Ty::Str),
];

/// Where this handle lives, for the room's owner.
pub fn loc(ctx: &HandleCtx) -> HandleLoc {
    HandleLoc {
        shard: ctx.host().shard_id() as u16,
        session_id: ctx.session_id,
        handle_id: ctx.handle_id,
    }
}

/// `join`/`joinandconfigure`: the checks every join gets (room, `join_parameters`), then
/// the publisher or subscriber flow. Room access (426, pin) is checked by the owner.
pub async fn join(ctx: &HandleCtx, h: &Rc<VrHandle>, job: Job) -> Outcome {
    check(&job.body, &[req_pos("room")])?;
    check(&job.body, JOIN_PARAMS)?;
    let old = h.retired.borrow_mut().take();
    if let Some(b) = old {
        b.detach();
    }
    let room = job
        .body
        .get("room")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    let ptype = job
        .body
        .get("ptype")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ptype.as_str() {
        "publisher" => publisher::join(ctx, h, room, job).await,
        "subscriber" | "listener" => subscriber::join(ctx, h, room, job).await,
        _ => {
            // Janus checks the room before the ptype.
            let owner = rooms::owner(ctx.host(), room);
            ctx.host()
                .ask(owner, move |h| rooms::with_room(h, room, |_| Ok(())))
                .await
                .unwrap_or_else(|| Err(shard_gone()))?;
            Err(VrError::new(INVALID_ELEMENT, "Invalid element (ptype)"))
        }
    }
}

/// The error of a room's owner shard being gone (the proxy is stopping).
pub fn shard_gone() -> VrError {
    VrError::new(503, "Service unavailable (shutting down)")
}

/// How a handle's backend handle ends with its part in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client handle is going (detach) or the backend handle is lost: detach now.
    Detach,
    /// The client stays (leave, kicked, room destroyed): the backend handle hangs up its
    /// PeerConnection and is kept, so that its `hangup` reaches the client, until the
    /// handle joins again or goes.
    Retire,
}

/// The handle's part in its room ends: a publisher leaves the room (the others are told),
/// a subscriber releases its mirrors; then its backend handle ends as `end` says.
pub fn release(host: &Host, h: &Rc<VrHandle>, loc: HandleLoc, end: End) {
    let role = std::mem::take(&mut *h.role.borrow_mut());
    match role {
        Role::Publisher(p) => {
            host.run_on(p.owner, move |o| {
                rooms::left(o, p.room, p.id, rooms::Departure::Left, Some(loc));
            });
        }
        Role::Subscriber(s) => subscriber::release_all(host, &s),
        // The owner's handle ends with the relayed one (detach) or by itself.
        Role::Relay(_) | Role::None => {}
    }
    end_backend(h, end);
    adoption_changed(host, loc);
}

/// The handle at `loc` is no longer what its adoption record says.
fn adoption_changed(host: &Host, loc: HandleLoc) {
    if let Some((ctx, _)) = host.handle::<VrHandle>(loc.session_id, loc.handle_id) {
        ctx.adoption_changed();
    }
}

/// A participant handle of a room whose owner died, adopted here: the room is taken over
/// from the dead owner (once per room), then the handle takes its place in it again.
/// `None` when the room or its place is gone (the caller detaches the backend handle).
pub async fn adopt(ctx: &HandleCtx, kept: Kept, b: BackendHandle) -> Option<VrHandle> {
    let host = ctx.host();
    let room = kept.room;
    let owner = rooms::owner(host, room);
    let dead = kept.owner;
    let taken = host
        .ask_async(owner, move |o| {
            Box::pin(async move { takeover::take_over(&o, room, &dead).await })
        })
        .await
        .unwrap_or(false);
    if !taken {
        return None;
    }
    let role = match kept.part {
        Part::Publisher(user) => {
            let me = loc(ctx);
            let bound = host
                .ask(owner, move |o| takeover::rebind(o, room, user, me))
                .await
                .unwrap_or(false);
            if !bound {
                return None;
            }
            Role::Publisher(publisher::PubRole {
                room,
                id: user,
                owner,
            })
        }
        Part::Subscriber { server, held } => {
            let feeds: Vec<u64> = held.iter().map(|(f, _)| *f).collect();
            let target = server.clone();
            let missing = host
                .ask(owner, move |o| mirrors::rehold(o, room, &target, &feeds))
                .await
                .unwrap_or_default();
            let held: AHashMap<u64, mirrors::MidMap> = held
                .into_iter()
                .filter(|(f, _)| !missing.contains(f))
                .collect();
            Role::Subscriber(subscriber::SubRole {
                room,
                owner,
                server,
                held: Rc::new(RefCell::new(held)),
            })
        }
    };
    tracing::debug!(
        handle = ctx.handle_id,
        room,
        "videoroom participant adopted"
    );
    let h = VrHandle::default();
    *h.role.borrow_mut() = role;
    *h.backend.borrow_mut() = Some(b);
    Some(h)
}

/// Ends the handle's backend handle (and a retired one, if any).
pub fn end_backend(h: &VrHandle, end: End) {
    let backend = h.backend.borrow_mut().take();
    let old = h.retired.borrow_mut().take();
    if let Some(b) = old {
        b.detach();
    }
    let Some(b) = backend else {
        return;
    };
    match end {
        End::Detach => b.detach(),
        End::Retire => {
            b.link
                .send("hangup", Some(b.id), &[], false, Box::new(|_| {}));
            *h.retired.borrow_mut() = Some(b);
        }
    }
}

/// The room of the handle at `loc` was destroyed, or it was kicked: it is out (the owner
/// already told it and the others).
pub fn room_gone(host: &Host, loc: HandleLoc) {
    let Some((_, h)) = host.handle::<VrHandle>(loc.session_id, loc.handle_id) else {
        return;
    };
    let role = std::mem::take(&mut *h.role.borrow_mut());
    if let Role::Subscriber(s) = &role {
        subscriber::release_all(host, s);
    }
    end_backend(&h, End::Retire);
    adoption_changed(host, loc);
}

/// The room's owner answers `f` (which runs there).
///
/// # Errors
/// What `f` returns; 503 when the owner shard is gone.
pub async fn on_owner<T: Send + 'static>(
    host: &Host,
    room: u64,
    f: impl FnOnce(&Host) -> VrResult<T> + Send + 'static,
) -> VrResult<T> {
    host.ask(rooms::owner(host, room), f)
        .await
        .unwrap_or_else(|| Err(shard_gone()))
}
