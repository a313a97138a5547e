//! Subscriber handles: one backend subscriber handle on the server holding most of the
//! feeds asked for; every other feed is mirrored onto that server ([`super::mirrors`])
//! before the backend is asked for it. Mirrors keep the feed's id and display, but their
//! streams are numbered by position (Janus 1.1.2 assigns a remote publisher's mids
//! itself), so publisher mids are translated both ways: `mid` in requests, `feed_mid` in
//! answers and events. The mirrors a subscription uses are held while its `streams` list
//! that feed, and released when it no longer does.

use std::cell::RefCell;
use std::rc::Rc;

use ahash::AHashMap;
use serde_json::{json, Map, Value};

use super::error::{VrError, VrResult, MISSING_ELEMENT};
use super::events::with_room;
use super::mirrors::{self, MidMap};
use super::participant::{loc, on_owner, shard_gone};
use super::rooms::{self, FeedInfo};
use super::validate::{check, opt, pos, req, req_pos, Ty};
use super::{flush_candidates, send, Job, Outcome, Role, VrHandle, PACKAGE};
use crate::api::json::RawObject;
use crate::plugins::{BackendHandle, HandleCtx, Host};

/// A subscriber handle's place.
#[derive(Debug, Clone)]
pub struct SubRole {
    pub room: u64,
    pub owner: usize,
    /// The server its backend handle is on.
    pub server: String,
    /// Mirrors it holds, by feed, with their mid translations.
    pub held: Rc<RefCell<AHashMap<u64, MidMap>>>,
}

/// Janus's `subscriber_parameters`.
const SUB_PARAMS: &[super::validate::Param] = &[
    opt("streams", Ty::Array),
    pos("private_id"),
    opt("autoupdate", Ty::Bool),
    opt("audio", Ty::Bool),
    opt("video", Ty::Bool),
    opt("data", Ty::Bool),
    opt("offer_audio", Ty::Bool),
    opt("offer_video", Ty::Bool),
    opt("offer_data", Ty::Bool),
    pos("substream"),
    pos("temporal"),
    pos("fallback"),
    pos("spatial_layer"),
    pos("temporal_layer"),
];

/// Janus's `subscriber_stream_parameters`.
const STREAM_PARAMS: &[super::validate::Param] = &[
    opt("mid", Ty::Str),
    opt("crossrefid", Ty::Str),
    opt("send", Ty::Bool),
    pos("substream"),
    pos("temporal"),
    pos("spatial_layer"),
    pos("temporal_layer"),
    opt("min_delay", Ty::Int),
    opt("max_delay", Ty::Int),
];

/// The feeds (and publisher mids) a list of subscription streams asks for, checked as
/// Janus checks them, and bounded (`max_streams_per_request`).
fn wanted(host: &Host, streams: &[Value]) -> VrResult<Vec<(u64, Option<String>)>> {
    wanted_count(host, streams.len())?;
    let mut out = Vec::with_capacity(streams.len());
    for s in streams {
        let s = s.as_object().cloned().unwrap_or_default();
        check(&s, STREAM_PARAMS)?;
        check(&s, &[req_pos("feed")])?;
        let feed = s.get("feed").and_then(Value::as_u64).unwrap_or_default();
        out.push((
            feed,
            s.get("mid").and_then(Value::as_str).map(str::to_string),
        ));
    }
    Ok(out)
}

/// The `streams` of a join, or the legacy `feed` as a one-stream list (Janus's
/// `feed_parameters` make `feed` mandatory when there are no streams).
fn join_streams(body: &Map<String, Value>) -> VrResult<Vec<Value>> {
    match body.get("streams").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => Ok(list.clone()),
        _ => {
            check(body, &[req_pos("feed")])?;
            Ok(vec![json!({"feed": body.get("feed")})])
        }
    }
}

/// A server a subscription could go to: how many of its feeds publish there, how busy
/// it is (backend handles this shard holds there), whether it is up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    url: String,
    feeds: usize,
    load: usize,
    up: bool,
}

/// Among live servers, the one with most of the feeds (fewest mirrors to make); among
/// those, the least busy: with publishers spread evenly every server ties, and the
/// subscribers must spread too, not all go where the first feed is.
fn pick(candidates: &[Candidate]) -> Option<&str> {
    candidates
        .iter()
        .filter(|c| c.up)
        .max_by(|a, b| a.feeds.cmp(&b.feeds).then(b.load.cmp(&a.load)))
        .map(|c| c.url.as_str())
}

/// 430 for a list of more streams than `max_streams_per_request`.
fn wanted_count(host: &Host, n: usize) -> VrResult<()> {
    let max = host
        .service::<super::Settings>()
        .map_or(256, |s| s.max_streams_per_request);
    if n > max {
        return Err(VrError::new(
            super::error::INVALID_ELEMENT,
            format!("Invalid element (at most {max} streams per request)"),
        ));
    }
    Ok(())
}

/// The server for a new subscription ([`pick`]), or `server_select`'s when none of its
/// feeds' servers is up.
fn choose_server(host: &Host, feeds: &[FeedInfo]) -> VrResult<String> {
    let mut candidates: Vec<Candidate> = Vec::new();
    for f in feeds {
        match candidates.iter_mut().find(|c| c.url == f.server) {
            Some(c) => c.feeds += 1,
            None => {
                let link = host.backend_by_url(&f.server);
                candidates.push(Candidate {
                    url: f.server.clone(),
                    feeds: 1,
                    load: link.as_ref().map_or(0, |l| l.handle_count()),
                    up: link.is_some_and(|l| l.is_up()),
                });
            }
        }
    }
    match pick(&candidates) {
        Some(url) => Ok(url.to_string()),
        None => Ok(host.select_backend()?.server.url.clone()),
    }
}

/// `join` as a subscriber.
pub async fn join(ctx: &HandleCtx, h: &Rc<VrHandle>, room: u64, job: Job) -> Outcome {
    check(&job.body, SUB_PARAMS)?;
    let host = ctx.host();
    // Room access first, as Janus (it checks the room and pin before the streams).
    let pin_body = job.body.clone();
    on_owner(host, room, move |o| rooms::access(o, room, &pin_body)).await?;
    let streams = join_streams(&job.body)?;
    let want = wanted(host, &streams)?;
    let pvt = job.body.get("private_id").and_then(Value::as_u64);
    let feeds = on_owner(host, room, move |o| rooms::feeds(o, room, &want, Some(pvt))).await?;
    let server = choose_server(host, &feeds)?;
    let owner = rooms::owner(host, room);
    let role = SubRole {
        room,
        owner,
        server: server.clone(),
        held: Rc::default(),
    };
    let backend_room = hold(host, &role, &feeds).await?;
    let attached = attach_and_join(ctx, h, &role, backend_room, &job, &streams).await;
    let (data, jsep) = match attached {
        Ok(x) => x,
        Err(e) => {
            release_all(host, &role);
            super::participant::end_backend(h, super::participant::End::Detach);
            return Err(e);
        }
    };
    let data = answer(host, &role, data);
    *h.role.borrow_mut() = Role::Subscriber(role);
    ctx.adoption_changed();
    Ok(Some((data, jsep)))
}

async fn attach_and_join(
    ctx: &HandleCtx,
    h: &Rc<VrHandle>,
    role: &SubRole,
    backend_room: u64,
    job: &Job,
    streams: &[Value],
) -> VrResult<(Value, Option<String>)> {
    let link = ctx.host().backend_by_url(&role.server).ok_or_else(|| {
        VrError::new(503, format!("Backend server {} not available", role.server))
    })?;
    let b = BackendHandle::attach(&link, PACKAGE, ctx).await?;
    *h.backend.borrow_mut() = Some(b.clone());
    flush_candidates(h, &b);
    let mut body = job.body.clone();
    for k in ["pin", "private_id", "token", "feed"] {
        body.remove(k);
    }
    body.insert("room".into(), json!(backend_room));
    if job
        .body
        .get("streams")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
    {
        body.insert("streams".into(), Value::Array(to_backend(role, streams)));
    } else if let Some(feed) = job.body.get("feed") {
        // The legacy form goes as it came: Janus answers it with its own extra keys.
        body.insert("feed".into(), feed.clone());
    }
    send(&b, &Value::Object(body), None).await
}

/// Holds a mirror on the subscription's server of every feed in `feeds` that lives
/// elsewhere and is not held yet; the backend room id on that server.
async fn hold(host: &Host, role: &SubRole, feeds: &[FeedInfo]) -> VrResult<u64> {
    let mut elsewhere: Vec<u64> = feeds
        .iter()
        .filter(|f| f.server != role.server && !role.held.borrow().contains_key(&f.id))
        .map(|f| f.id)
        .collect();
    elsewhere.sort_unstable();
    elsewhere.dedup();
    let (room, server) = (role.room, role.server.clone());
    let (backend_room, maps) = host
        .ask_async(role.owner, move |o| {
            Box::pin(async move { mirrors::hold_all(&o, room, &server, &elsewhere).await })
        })
        .await
        .unwrap_or_else(|| Err(shard_gone()))?;
    role.held.borrow_mut().extend(maps);
    Ok(backend_room)
}

/// Subscription streams with publisher mids of mirrored feeds made mirror mids.
fn to_backend(role: &SubRole, streams: &[Value]) -> Vec<Value> {
    let held = role.held.borrow();
    streams
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let feed = s.get("feed").and_then(Value::as_u64);
            if let (Some(map), Some(m)) = (feed.and_then(|f| held.get(&f)), s.as_object_mut()) {
                if let Some(mid) = m.get("mid").and_then(Value::as_str) {
                    if let Some(t) = mirrors::mirror_mid(map, mid) {
                        m.insert("mid".into(), json!(t));
                    }
                }
            }
            s
        })
        .collect()
}

/// A backend answer or event as the client sees it: the proxy's room id, publisher mids;
/// mirrors no longer listed in its `streams` are released.
fn answer(host: &Host, role: &SubRole, data: Value) -> Value {
    let mut data = with_room(data, role.room);
    let held = role.held.clone();
    let Some(streams) = data.get_mut("streams").and_then(Value::as_array_mut) else {
        return data;
    };
    let mut present = Vec::new();
    {
        let held = held.borrow();
        for s in streams.iter_mut() {
            let Some(feed) = s.get("feed_id").and_then(Value::as_u64) else {
                continue;
            };
            present.push(feed);
            if let (Some(map), Some(m)) = (held.get(&feed), s.as_object_mut()) {
                if let Some(mid) = m.get("feed_mid").and_then(Value::as_str) {
                    if let Some(o) = mirrors::origin_mid(map, mid) {
                        m.insert("feed_mid".into(), json!(o));
                    }
                }
            }
        }
    }
    let gone: Vec<u64> = held
        .borrow()
        .keys()
        .filter(|f| !present.contains(f))
        .copied()
        .collect();
    for feed in gone {
        held.borrow_mut().remove(&feed);
        release(host, role, feed);
    }
    data
}

fn release(host: &Host, role: &SubRole, feed: u64) {
    let (room, server) = (role.room, role.server.clone());
    host.run_on(role.owner, move |o| {
        mirrors::release(o, room, feed, &server)
    });
}

/// Releases every mirror the subscription holds.
pub fn release_all(host: &Host, role: &SubRole) {
    let feeds: Vec<u64> = role.held.borrow_mut().drain().map(|(f, _)| f).collect();
    for feed in feeds {
        release(host, role, feed);
    }
}

/// The streams a request adds (`subscribe`, `switch`, `update.subscribe`).
fn added_streams(request: &str, body: &Map<String, Value>) -> VrResult<Vec<Value>> {
    let list = |k: &str| {
        body.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Ok(match request {
        "subscribe" => {
            check(body, &[req("streams", Ty::Array)])?;
            list("streams")
        }
        // Janus's switch also takes the legacy form (`feed`), and checks the feed first.
        "switch" => match body.get("streams").and_then(Value::as_array) {
            Some(list) => list.clone(),
            None => match body.get("feed").and_then(Value::as_u64) {
                Some(feed) => vec![json!({"feed": feed})],
                None => Vec::new(),
            },
        },
        "update" => {
            check(
                body,
                &[opt("subscribe", Ty::Array), opt("unsubscribe", Ty::Array)],
            )?;
            if body.get("subscribe").is_none() && body.get("unsubscribe").is_none() {
                return Err(VrError::new(
                    MISSING_ELEMENT,
                    "At least one of either 'subscribe' or 'unsubscribe' must be present",
                ));
            }
            list("subscribe")
        }
        _ => Vec::new(),
    })
}

/// A request of a joined subscriber.
pub async fn request(ctx: &HandleCtx, h: &Rc<VrHandle>, role: SubRole, job: Job) -> Outcome {
    let Some(b) = h.backend.borrow().clone() else {
        return Err(shard_gone());
    };
    let host = ctx.host();
    let room = role.room;
    let added = added_streams(&job.request, &job.body)?;
    let held_before: Vec<u64> = role.held.borrow().keys().copied().collect();
    if !added.is_empty() {
        let want = wanted(host, &added)?;
        let feeds = on_owner(host, room, move |o| rooms::feeds(o, room, &want, None)).await?;
        hold(host, &role, &feeds).await?;
    }
    let mut body = job.body.clone();
    body.remove("room");
    for key in ["streams", "subscribe", "unsubscribe"] {
        if let Some(list) = body.get(key).and_then(Value::as_array) {
            wanted_count(host, list.len())?;
        }
    }
    for key in ["streams", "subscribe", "unsubscribe"] {
        if let Some(list) = body.get(key).and_then(Value::as_array).cloned() {
            body.insert(key.into(), Value::Array(to_backend(&role, &list)));
        }
    }
    let sent = send(&b, &Value::Object(body), job.jsep.as_deref()).await;
    let (data, jsep) = match sent {
        Ok(x) => x,
        Err(e) => {
            // Mirrors taken for this request only go back.
            let new: Vec<u64> = role
                .held
                .borrow()
                .keys()
                .filter(|f| !held_before.contains(f))
                .copied()
                .collect();
            for feed in new {
                role.held.borrow_mut().remove(&feed);
                release(host, &role, feed);
            }
            return Err(e);
        }
    };
    if job.request == "leave" {
        let me = loc(ctx);
        super::participant::release(host, h, me, super::participant::End::Retire);
        return Ok(Some((with_room(data, room), jsep)));
    }
    let data = answer(host, &role, data);
    held_changed(ctx, &role, &held_before);
    Ok(Some((data, jsep)))
}

/// The mirrors a subscription holds are part of its adoption record.
fn held_changed(ctx: &HandleCtx, role: &SubRole, before: &[u64]) {
    let held = role.held.borrow();
    if held.len() != before.len() || before.iter().any(|f| !held.contains_key(f)) {
        ctx.adoption_changed();
    }
}

/// An event of the subscriber's backend handle: relayed with the proxy's room id and
/// publisher mids (`updated` offers after a publisher left, `slow_link`, core events).
pub fn backend_event(
    ctx: &HandleCtx,
    _h: &Rc<VrHandle>,
    role: &SubRole,
    msg: &RawObject,
    janus: &str,
) {
    if janus != "event" {
        ctx.push(crate::api::reply::relay(msg, janus, ctx.addr(), None));
        return;
    }
    let Some(data) = super::event_data(msg) else {
        return;
    };
    let held_before: Vec<u64> = role.held.borrow().keys().copied().collect();
    let data = answer(ctx.host(), role, data);
    held_changed(ctx, role, &held_before);
    ctx.push(crate::api::reply::plugin_event(
        ctx.addr(),
        None,
        PACKAGE,
        &data.to_string(),
        msg.get("jsep").map(|j| j.get()),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(url: &str, feeds: usize, load: usize, up: bool) -> Candidate {
        Candidate {
            url: url.into(),
            feeds,
            load,
            up,
        }
    }

    #[test]
    fn most_feeds_then_least_load() {
        assert_eq!(pick(&[c("a", 1, 0, true), c("b", 2, 9, true)]), Some("b"));
        assert_eq!(
            pick(&[c("a", 2, 5, true), c("b", 2, 1, true), c("c", 2, 3, true)]),
            Some("b")
        );
        assert_eq!(pick(&[c("a", 3, 0, false), c("b", 1, 7, true)]), Some("b"));
        assert_eq!(pick(&[c("a", 1, 0, false)]), None);
    }
}
