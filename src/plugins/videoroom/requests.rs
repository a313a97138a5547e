//! The synchronous requests (room management, moderation, forwarders): checked as Janus
//! checks them, answered by the room's owner shard, with what lives on backends (RTP
//! forwarders, moderation, recording) done there through the control handles. Janus's
//! own remote-publisher requests are the proxy's tools, not offered to clients.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::error::{VrError, VrResult, INVALID_REQUEST, NO_SUCH_FEED, ROOM_EXISTS, UNAUTHORIZED};
use super::participant::shard_gone;
use super::relay::Where;
use super::validate::{check, check_secret, opt, pos, req, req_pos, Ty};
use super::{control, rooms, Settings};
use crate::core::plugin::SyncAnswer;
use crate::plugins::{HandleCtx, Host};

/// Answers synchronous request `request` of the handle of `ctx` (a `success` with the
/// result or the VideoRoom error), once the owner shard has.
pub fn answer(ctx: &HandleCtx, request: String, body: Map<String, Value>, answer: SyncAnswer) {
    let host = ctx.host().clone();
    monoio::spawn(async move {
        let data = match serve(&host, &request, body).await {
            Ok(v) => v,
            Err(e) => e.data(),
        };
        answer(&data.to_string());
    });
}

/// Serves one synchronous request from any shard.
///
/// # Errors
/// Janus's VideoRoom errors.
pub async fn serve(host: &Host, request: &str, body: Map<String, Value>) -> VrResult<Value> {
    match request {
        "create" => create(host, body).await,
        "list" => list(host).await,
        "exists" | "edit" | "destroy" | "allowed" | "kick" | "moderate" | "listparticipants"
        | "listforwarders" | "rtp_forward" | "stop_rtp_forward" | "enable_recording" => {
            check(&body, &[req_pos("room")])?;
            let room = body.get("room").and_then(Value::as_u64).unwrap_or_default();
            if let Where::Proxy(url) = super::relay::owner_of(host, room).await? {
                return super::relay::request(host, &url, &body).await;
            }
            let request = request.to_string();
            host.ask_async(rooms::owner(host, room), move |o| {
                Box::pin(async move { on_owner(&o, &request, room, body).await })
            })
            .await
            .unwrap_or_else(|| Err(shard_gone()))
        }
        other => Err(VrError::new(
            INVALID_REQUEST,
            format!("Unknown request '{other}'"),
        )),
    }
}

async fn create(host: &Host, mut body: Map<String, Value>) -> VrResult<Value> {
    let settings = host.service::<Settings>().cloned();
    let admin_key = settings
        .as_ref()
        .map(|s| s.admin_key.clone())
        .unwrap_or_default();
    check_secret(&body, "admin_key", &admin_key)?;
    check(&body, &[pos("room")])?;
    let id = match body.get("room").and_then(Value::as_u64).filter(|r| *r > 0) {
        Some(r) => r,
        None => fastrand::u64(1..=rooms::MAX_ID),
    };
    body.remove("room");
    let config = super::room::RoomConfig::from_create(id, &body)?;
    let permanent = body.get("permanent").and_then(Value::as_bool) == Some(true);
    let max = settings.map_or(10_000, |s| s.max_rooms);
    if rooms::count(host) >= max {
        return Err(VrError::new(
            super::error::UNKNOWN_ERROR,
            format!("Too many rooms (max {max})"),
        ));
    }
    // With rooms across proxies the id is taken in Redis first (427 if another has it).
    super::relay::claim_new(host, id).await?;
    let made = host
        .ask(rooms::owner(host, id), move |o| {
            rooms::create(o, id, config, permanent)
        })
        .await
        .unwrap_or_else(|| Err(shard_gone()));
    if made.as_ref().is_err_and(|e| e.code != ROOM_EXISTS) {
        super::relay::release(host, id);
    }
    stored(made).await
}

/// A room request's answer, once the room store has what it changed.
async fn stored(answer: VrResult<rooms::Answer>) -> VrResult<Value> {
    let (value, written) = answer?;
    crate::core::cluster::written(written).await;
    Ok(value)
}

async fn list(host: &Host) -> VrResult<Value> {
    let mut all: BTreeMap<u64, Value> = BTreeMap::new();
    for shard in 0..host.shard_count() {
        if let Some(part) = host.ask(shard, |h| rooms::list(h, false)).await {
            all.extend(part);
        }
    }
    Ok(json!({"videoroom": "success", "list": all.into_values().collect::<Vec<_>>()}))
}

/// The room-level requests, on the owner shard.
async fn on_owner(
    host: &Host,
    request: &str,
    room: u64,
    body: Map<String, Value>,
) -> VrResult<Value> {
    match request {
        "exists" => Ok(rooms::exists(host, room)),
        "edit" => stored(rooms::edit(host, room, &body)).await,
        "destroy" => {
            check(&body, &[opt("permanent", Ty::Bool)])?;
            stored(rooms::destroy(host, room, &body)).await
        }
        "allowed" => {
            check(
                &body,
                &[
                    opt("secret", Ty::Str),
                    req("action", Ty::Str),
                    opt("allowed", Ty::Array),
                ],
            )?;
            rooms::allowed(host, room, &body)
        }
        "kick" => {
            check(&body, &[opt("secret", Ty::Str)])?;
            check(&body, &[req_pos("id")])?;
            let user = body.get("id").and_then(Value::as_u64).unwrap_or_default();
            rooms::kick(host, room, user, &body)
        }
        "listparticipants" => rooms::list_participants(host, room),
        "moderate" => moderate(host, room, &body).await,
        "listforwarders" => list_forwarders(host, room, &body).await,
        "rtp_forward" | "stop_rtp_forward" => forward(host, request, room, body).await,
        "enable_recording" => enable_recording(host, room, &body).await,
        other => Err(VrError::new(
            INVALID_REQUEST,
            format!("Unknown request '{other}'"),
        )),
    }
}

/// The server and backend room of publisher `user`, after the room secret check.
fn publisher_place(
    host: &Host,
    room: u64,
    user: u64,
    body: &Map<String, Value>,
) -> VrResult<(String, u64, String)> {
    rooms::with_room(host, room, |r| {
        check_secret(body, "secret", &r.config.secret)?;
        let p = r.participants.get(&user).ok_or_else(|| {
            VrError::new(NO_SUCH_FEED, format!("No such user {user} in room {room}"))
        })?;
        let backend = r.backend_id(&p.server).ok_or_else(|| {
            VrError::new(NO_SUCH_FEED, format!("No such user {user} in room {room}"))
        })?;
        Ok((p.server.clone(), backend, r.backend_secret.clone()))
    })
}

async fn moderate(host: &Host, room: u64, body: &Map<String, Value>) -> VrResult<Value> {
    check(
        body,
        &[
            opt("secret", Ty::Str),
            req("mid", Ty::Str),
            req("mute", Ty::Bool),
        ],
    )?;
    check(body, &[req_pos("id")])?;
    let user = body.get("id").and_then(Value::as_u64).unwrap_or_default();
    let (server, backend_room, secret) = publisher_place(host, room, user, body)?;
    let out = json!({
        "request": "moderate",
        "room": backend_room,
        "secret": secret,
        "id": user,
        "mid": body.get("mid"),
        "mute": body.get("mute"),
    });
    control::request(host, &server, &out).await?;
    // Janus tells everyone in the room, the target too; the backend room only knows its
    // share of the room, so the owner tells the whole room.
    let mute = body
        .get("mute")
        .and_then(Value::as_bool)
        .unwrap_or_default();
    let event = json!({
        "videoroom": "event",
        "room": room,
        "id": user,
        "mid": body.get("mid"),
        "moderation": if mute { "muted" } else { "unmuted" },
    });
    if let Ok(audience) = rooms::with_room(host, room, |r| Ok(r.audience(None))) {
        rooms::push(host, &audience, &event);
    }
    Ok(json!({"videoroom": "success"}))
}

/// `rtp_forward` and `stop_rtp_forward`: done by the publisher's server, in its backend
/// room; answered with the proxy's room id.
async fn forward(
    host: &Host,
    request: &str,
    room: u64,
    mut body: Map<String, Value>,
) -> VrResult<Value> {
    check(&body, &[opt("secret", Ty::Str)])?;
    check(&body, &[req_pos("publisher_id")])?;
    if request == "stop_rtp_forward" {
        check(&body, &[req_pos("stream_id")])?;
    } else {
        check(&body, &[req("host", Ty::Str)])?;
    }
    // Janus's lock_rtpfwd (on by default): with an admin_key, forwarding needs it too.
    let admin_key = host
        .service::<Settings>()
        .map(|s| s.admin_key.clone())
        .unwrap_or_default();
    check_secret(&body, "admin_key", &admin_key)?;
    let user = body
        .get("publisher_id")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    let (server, backend_room, secret) = publisher_place(host, room, user, &body)?;
    body.insert("room".into(), json!(backend_room));
    body.insert("secret".into(), json!(secret));
    body.remove("admin_key");
    let data = control::request(host, &server, &Value::Object(body)).await?;
    Ok(super::events::with_room(data, room))
}

/// `listforwarders`: every backend room's forwarders of the room's own publishers
/// (mirrors and their forwarders are the proxy's and never listed).
async fn list_forwarders(host: &Host, room: u64, body: &Map<String, Value>) -> VrResult<Value> {
    check(body, &[opt("secret", Ty::Str)])?;
    let (servers, secret) = rooms::with_room(host, room, |r| {
        check_secret(body, "secret", &r.config.secret)?;
        let servers: Vec<(String, u64, Vec<u64>)> = r
            .backends
            .keys()
            .filter_map(|url| {
                let users = r
                    .participants
                    .values()
                    .filter(|p| &p.server == url)
                    .map(|p| p.id)
                    .collect();
                Some((url.clone(), r.backend_id(url)?, users))
            })
            .collect();
        Ok((servers, r.backend_secret.clone()))
    })?;
    let mut publishers = Vec::new();
    for (url, backend_room, users) in servers {
        let ask = json!({"request": "listforwarders", "room": backend_room, "secret": secret});
        let Ok(data) = control::request(host, &url, &ask).await else {
            continue;
        };
        for p in data
            .get("publishers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if p.get("publisher_id")
                .and_then(Value::as_u64)
                .is_some_and(|id| users.contains(&id))
            {
                publishers.push(p.clone());
            }
        }
    }
    Ok(json!({"videoroom": "forwarders", "room": room, "publishers": publishers}))
}

async fn enable_recording(host: &Host, room: u64, body: &Map<String, Value>) -> VrResult<Value> {
    check(body, &[req("record", Ty::Bool)])?;
    let record = body
        .get("record")
        .and_then(Value::as_bool)
        .unwrap_or_default();
    let (servers, secret) = rooms::with_room(host, room, |r| {
        check_secret(body, "secret", &r.config.secret)?;
        r.config.record = record;
        let servers: Vec<(String, u64)> = r
            .backends
            .keys()
            .filter_map(|url| Some((url.clone(), r.backend_id(url)?)))
            .collect();
        Ok((servers, r.backend_secret.clone()))
    })?;
    for (url, backend_room) in servers {
        let ask = json!({"request": "enable_recording", "room": backend_room, "secret": secret, "record": record});
        if let Err(e) = control::request(host, &url, &ask).await {
            if e.code == UNAUTHORIZED {
                return Err(e);
            }
            tracing::warn!(room, server = %url, error = %e.text, "recording not switched on a backend");
        }
    }
    Ok(json!({"videoroom": "success", "record": record}))
}
