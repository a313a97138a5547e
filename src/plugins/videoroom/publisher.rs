//! Publisher handles: each is a participant of its proxy room (kept by the room's owner)
//! and a publisher in the backend room of the server it was placed on. Requests go to the
//! backend handle (Janus checks them as it always does); what they change in the room
//! (streams, display, media up or down) is reported to the owner, which tells the others.
//! Of the backend room's own events only the publisher's own `talking` is used: the rest
//! describe a share of the room and are dropped.

use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::error::{VrError, VrResult};
use super::events::with_room;
use super::participant::{loc, on_owner, shard_gone};
use super::rooms::{self, Admission, Departure};
use super::validate::{check, opt, pos, Ty};
use super::{flush_candidates, send, Job, Outcome, Role, VrHandle, PACKAGE};
use crate::api::json::RawObject;
use crate::plugins::{BackendHandle, HandleCtx};

/// A publisher handle's place.
#[derive(Debug, Clone)]
pub struct PubRole {
    pub room: u64,
    pub id: u64,
    /// The room's owner shard.
    pub owner: usize,
}

/// Keys of a `joinandconfigure` that belong to the join, not to the configure.
const JOIN_ONLY: &[&str] = &["request", "room", "ptype", "id", "token", "pin", "display"];

/// `join` as a publisher (and `joinandconfigure`).
pub async fn join(ctx: &HandleCtx, h: &Rc<VrHandle>, room: u64, job: Job) -> Outcome {
    check(&job.body, &[opt("display", Ty::Str)])?;
    check(&job.body, &[pos("id")])?;
    let owner = rooms::owner(ctx.host(), room);
    let me = loc(ctx);
    let body = job.body.clone();
    let adm: Admission = ctx
        .host()
        .ask_async(owner, move |o| {
            Box::pin(async move { rooms::admit(&o, room, body, me).await })
        })
        .await
        .unwrap_or_else(|| Err(shard_gone()))?;
    let joined = enter(ctx, h, room, owner, &adm, &job).await;
    let (answer, configured) = match joined {
        Ok(x) => x,
        Err(e) => {
            let user = adm.id;
            ctx.host()
                .run_on(owner, move |o| rooms::forget_participant(o, room, user));
            super::participant::end_backend(h, super::participant::End::Detach);
            return Err(e);
        }
    };
    *h.role.borrow_mut() = Role::Publisher(PubRole {
        room,
        id: adm.id,
        owner,
    });
    ctx.adoption_changed();
    let mut extra = Map::new();
    for k in ["audio_active_packets", "audio_level_average"] {
        if let Some(v) = job.body.get(k) {
            extra.insert(k.into(), v.clone());
        }
    }
    // `joinandconfigure`: Janus merges what the configure answered into `joined`.
    let streams = configured.as_ref().and_then(streams_of);
    if let Some(data) = &configured {
        for k in ["audio_codec", "video_codec", "streams"] {
            if let Some(v) = data.get(k) {
                extra.insert(k.into(), v.clone());
            }
        }
    }
    let (user, transaction) = (adm.id, job.transaction.to_string());
    // The owner pushes `joined` itself, so that it reaches the client before any room
    // event the owner sends it afterwards; waiting for it keeps this handle's next answer
    // behind it too.
    ctx.host()
        .ask(owner, move |o| {
            rooms::joined(o, room, user, transaction, extra, answer);
            if streams.is_some() {
                rooms::configured(o, room, user, streams, None);
            }
        })
        .await;
    Ok(None)
}

/// Attaches the backend handle and joins the backend room (then configures, for a
/// `joinandconfigure`): the JSEP answer and the configure's answer.
async fn enter(
    ctx: &HandleCtx,
    h: &Rc<VrHandle>,
    room: u64,
    owner: usize,
    adm: &Admission,
    job: &Job,
) -> VrResult<(Option<String>, Option<Value>)> {
    let link = ctx
        .host()
        .backend_by_url(&adm.server)
        .ok_or_else(|| VrError::new(503, format!("Backend server {} not available", adm.server)))?;
    let b = BackendHandle::attach(&link, PACKAGE, ctx).await?;
    *h.backend.borrow_mut() = Some(b.clone());
    flush_candidates(h, &b);
    let mut join =
        json!({"request": "join", "ptype": "publisher", "room": adm.backend_room, "id": adm.id});
    if let (Some(d), Some(m)) = (job.body.get("display"), join.as_object_mut()) {
        m.insert("display".into(), d.clone());
    }
    send(&b, &join, None).await?;
    if job.request != "joinandconfigure" {
        return Ok((None, None));
    }
    if job.jsep.is_some() {
        may_publish(ctx, room, owner, adm.id).await?;
    }
    let mut configure: Map<String, Value> = job
        .body
        .iter()
        .filter(|(k, _)| !JOIN_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    configure.insert("request".into(), json!("configure"));
    let (data, answer) = send(&b, &Value::Object(configure), job.jsep.as_deref()).await?;
    Ok((answer, Some(data)))
}

/// 432 when the room already has as many publishers as it admits.
async fn may_publish(ctx: &HandleCtx, room: u64, _owner: usize, user: u64) -> VrResult<()> {
    on_owner(ctx.host(), room, move |o| rooms::may_publish(o, room, user)).await
}

fn streams_of(data: &Value) -> Option<Vec<Value>> {
    data.get("streams").and_then(Value::as_array).cloned()
}

/// A request of a joined publisher.
pub async fn request(ctx: &HandleCtx, h: &Rc<VrHandle>, p: PubRole, job: Job) -> Outcome {
    let Some(b) = h.backend.borrow().clone() else {
        return Err(shard_gone());
    };
    let (room, user) = (p.room, p.id);
    match job.request.as_str() {
        "configure" | "publish" => {
            if job.jsep.is_some() {
                may_publish(ctx, room, p.owner, user).await?;
            }
            let display = job
                .body
                .get("display")
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut body = job.body.clone();
            body.remove("room");
            let (data, jsep) = send(&b, &Value::Object(body), job.jsep.as_deref()).await?;
            let streams = streams_of(&data).filter(|_| job.jsep.is_some());
            if streams.is_some() || display.is_some() {
                ctx.host().run_on(p.owner, move |o| {
                    rooms::configured(o, room, user, streams, display);
                });
            }
            Ok(Some((with_room(data, room), jsep)))
        }
        "unpublish" => {
            let (data, _) = send(&b, &json!({"request": "unpublish"}), None).await?;
            ctx.host().run_on(p.owner, move |o| {
                rooms::left(o, room, user, Departure::Unpublished, None);
            });
            Ok(Some((with_room(data, room), None)))
        }
        "leave" => {
            // Janus 1.1.2's own `leave` of a publishing participant tells its subscribers
            // nothing (they keep dead m-lines) and keeps the PeerConnection up: the proxy
            // unpublishes first (its subscribers get their update), then leaves, then hangs
            // the backend handle up (`release`). A 435 (not publishing) is fine.
            let _ = send(&b, &json!({"request": "unpublish"}), None).await;
            let _ = send(&b, &json!({"request": "leave"}), None).await;
            let me = loc(ctx);
            super::participant::release(ctx.host(), h, me, super::participant::End::Retire);
            Ok(Some((
                json!({"videoroom": "event", "room": room, "leaving": "ok"}),
                None,
            )))
        }
        // Anything else is the backend's to accept or refuse, as Janus would.
        _ => {
            let mut body = job.body.clone();
            body.remove("room");
            let (data, jsep) = send(&b, &Value::Object(body), job.jsep.as_deref()).await?;
            Ok(Some((with_room(data, room), jsep)))
        }
    }
}

/// An event of the publisher's backend handle.
pub fn backend_event(ctx: &HandleCtx, h: &Rc<VrHandle>, p: &PubRole, msg: &RawObject, janus: &str) {
    let (room, user) = (p.room, p.id);
    if janus != "event" {
        let frame = crate::api::reply::relay(msg, janus, ctx.addr(), None);
        match janus {
            // The client hears `webrtcup` once the room knows the feed started: a client
            // that subscribes to it as soon as its publisher is up finds it (as in Janus,
            // which marks the publisher started before it sends the event). Later events
            // of the handle wait behind it.
            "webrtcup" => {
                h.held_events
                    .borrow_mut()
                    .get_or_insert_with(Vec::new)
                    .push(frame);
                let (ctx, h) = (ctx.clone(), h.clone());
                let owner = p.owner;
                monoio::spawn(async move {
                    ctx.host()
                        .ask(owner, move |o| rooms::started(o, room, user))
                        .await;
                    for f in h.held_events.borrow_mut().take().unwrap_or_default() {
                        ctx.push(f);
                    }
                });
                return;
            }
            "hangup" => ctx.host().run_on(p.owner, move |o| {
                rooms::left(o, room, user, Departure::Unpublished, None);
            }),
            _ => {}
        }
        match h.held_events.borrow_mut().as_mut() {
            Some(held) => held.push(frame),
            None => ctx.push(frame),
        }
        return;
    }
    let Some(data) = super::event_data(msg) else {
        return;
    };
    let kind = data
        .get("videoroom")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let own = data.get("id").and_then(Value::as_u64) == Some(user);
    if own && (kind == "talking" || kind == "stopped-talking") {
        let talking = kind == "talking";
        ctx.host().run_on(p.owner, move |o| {
            rooms::talking(o, room, user, data, talking);
        });
    }
}
