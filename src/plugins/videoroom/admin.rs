//! The VideoRoom's admin REST routes (spec 07 §9) under `/plugins/videoroom`: room
//! management for operators, the same requests as the Janus API's, answered by the
//! rooms' owner shards. Parameters arrive as strings (query or body); they are typed by
//! the tables of the requests before being checked as Janus checks them.

use std::collections::BTreeMap;

use futures_channel::oneshot;
use serde_json::{json, Map, Value};

use super::error::{VrError, VrResult, NO_SUCH_ROOM};
use super::room::CREATE_PARAMS;
use super::validate::Ty;
use super::{requests, rooms, PACKAGE};
use crate::api::error::JanusError;
use crate::plugins::{Host, Peers, PluginRoute, RouteFuture};

pub fn routes() -> Vec<PluginRoute> {
    vec![PluginRoute {
        prefix: "/plugins/videoroom",
        methods: &["GET", "POST", "DELETE"],
        handler: route,
    }]
}

/// A string parameter as the JSON value the request tables expect.
fn typed(key: &str, value: &str) -> Value {
    let ty = CREATE_PARAMS
        .iter()
        .find(|p| p.name == key)
        .map(|p| p.ty)
        .or(match key {
            "room" | "id" | "publisher_id" | "stream_id" | "port" | "rtcp_port" | "ssrc" | "pt"
            | "audio_port" | "video_port" | "data_port" | "audio_rtcp_port" | "video_rtcp_port" => {
                Some(Ty::Int)
            }
            "permanent" | "mute" | "record" | "simulcast" => Some(Ty::Bool),
            "streams" => Some(Ty::Array),
            _ => None,
        });
    match ty {
        Some(Ty::Int) => value
            .parse::<u64>()
            .map_or_else(|_| json!(value), |n| json!(n)),
        Some(Ty::Bool) => match value {
            "1" | "true" | "yes" | "on" => json!(true),
            "0" | "false" | "no" | "off" | "" => json!(false),
            _ => json!(value),
        },
        Some(Ty::Array) => serde_json::from_str::<Value>(value)
            .ok()
            .filter(Value::is_array)
            .unwrap_or_else(|| {
                json!(value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>())
            }),
        _ => json!(value),
    }
}

fn body_of(params: &BTreeMap<String, String>) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), typed(k, v)))
        .collect()
}

fn to_janus(e: VrError) -> JanusError {
    JanusError::from_backend(e.code, e.text)
}

/// Runs the work `f` makes on shard 0 (which reaches every room's owner) and answers
/// with its result.
fn on_shard0<T: Send + 'static>(
    peers: &Peers,
    f: impl FnOnce(crate::plugins::Host) -> crate::plugins::LocalFuture<VrResult<T>> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, JanusError>> + Send {
    let (tx, rx) = oneshot::channel();
    let sent = peers.run_on(0, move |h| {
        let work = f(h.clone());
        monoio::spawn(async move {
            let _ = tx.send(work.await);
        });
    });
    async move {
        if !sent {
            return Err(JanusError::from_backend(503, "the proxy is stopping"));
        }
        rx.await
            .unwrap_or_else(|_| Err(VrError::new(503, "request dropped")))
            .map_err(to_janus)
    }
}

/// Serves `request` with `body`; `empty` answers success with an empty body.
fn serve(
    peers: &Peers,
    request: &'static str,
    body: Map<String, Value>,
    empty: bool,
) -> RouteFuture {
    let answer = on_shard0(peers, move |h| {
        Box::pin(async move { requests::serve(&h, request, body).await })
    });
    Box::pin(async move {
        let data = answer.await?;
        Ok(if empty { Value::Null } else { data })
    })
}

/// Runs `f` on every shard and gathers what they return.
fn on_all_shards<T: Send + 'static>(
    peers: &Peers,
    f: fn(&crate::plugins::Host) -> Vec<T>,
) -> impl std::future::Future<Output = Vec<T>> + Send {
    let receivers: Vec<oneshot::Receiver<Vec<T>>> = (0..peers.count())
        .map(|s| {
            let (tx, rx) = oneshot::channel();
            peers.run_on(s, move |h| {
                let _ = tx.send(f(h));
            });
            rx
        })
        .collect();
    async move {
        let mut out = Vec::new();
        for rx in receivers {
            out.extend(rx.await.unwrap_or_default());
        }
        out
    }
}

fn room_id(segment: &str) -> Result<u64, JanusError> {
    segment
        .parse::<u64>()
        .map_err(|_| JanusError::from_backend(400, format!("invalid room id {segment:?}")))
}

fn route(
    peers: &Peers,
    method: &str,
    rest: &str,
    params: &BTreeMap<String, String>,
) -> RouteFuture {
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut body = body_of(params);
    let fail = |e: JanusError| -> RouteFuture { Box::pin(async move { Err(e) }) };
    match (method, parts.as_slice()) {
        ("GET", []) => {
            let counts = on_all_shards(peers, |h| {
                if h.shard_id() != 0 {
                    return Vec::new();
                }
                rooms::counts(h)
                    .map(|c| {
                        use std::sync::atomic::Ordering::Relaxed;
                        vec![(
                            c.rooms.load(Relaxed),
                            c.participants.load(Relaxed),
                            c.mirrors.load(Relaxed),
                        )]
                    })
                    .unwrap_or_default()
            });
            Box::pin(async move {
                let (rooms, participants, mirrors) =
                    counts.await.first().copied().unwrap_or_default();
                Ok(json!({
                    "package": PACKAGE,
                    "version": super::META.version,
                    "version_str": super::META.version_string,
                    "name": super::META.display_name,
                    "author": super::META.author,
                    "description": super::META.description,
                    "rooms": rooms,
                    "participants": participants,
                    "mirrors": mirrors,
                }))
            })
        }
        ("GET", ["rooms"]) => {
            let offset = params
                .get("offset")
                .and_then(|o| o.parse::<usize>().ok())
                .unwrap_or(0);
            let limit = params
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            let all = on_all_shards(peers, |h| rooms::list(h, true));
            Box::pin(async move {
                let mut all = all.await;
                all.sort_by_key(|(id, _)| *id);
                Ok(Value::Array(
                    all.into_iter()
                        .skip(offset)
                        .take(limit)
                        .map(|(_, v)| v)
                        .collect(),
                ))
            })
        }
        ("POST", ["rooms"]) => serve(peers, "create", body, false),
        ("GET", ["rooms", id]) => {
            let id = match room_id(id) {
                Ok(id) => id,
                Err(e) => return fail(e),
            };
            let all = on_all_shards(peers, |h| rooms::list(h, true));
            Box::pin(async move {
                all.await
                    .into_iter()
                    .find(|(r, _)| *r == id)
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        to_janus(VrError::new(NO_SUCH_ROOM, format!("No such room ({id})")))
                    })
            })
        }
        (m, ["rooms", id, rest @ ..]) => {
            let id = match room_id(id) {
                Ok(id) => id,
                Err(e) => return fail(e),
            };
            body.insert("room".into(), json!(id));
            match (m, rest) {
                ("DELETE", []) => serve(peers, "destroy", body, true),
                ("POST", ["tokens"]) => serve(peers, "allowed", body, false),
                // each publisher with where it publishes
                ("GET", ["participants"]) => room_view(peers, id, rooms::placements),
                // the feeds copied to other backends for their subscribers
                ("GET", ["mirrors"]) => room_view(peers, id, |o, id| {
                    rooms::with_room(o, id, |r| Ok(r.mirrors.describe()))
                }),
                ("DELETE", ["participants", user]) => match user.parse::<u64>() {
                    Ok(u) => {
                        body.insert("id".into(), json!(u));
                        serve(peers, "kick", body, true)
                    }
                    Err(_) => fail(JanusError::from_backend(400, "invalid user id")),
                },
                ("GET", ["rtp_forwarders"]) => {
                    let list = serve(peers, "listforwarders", body, false);
                    Box::pin(async move { Ok(list.await?["publishers"].take()) })
                }
                ("POST", ["rtp_forwarders"]) => serve(peers, "rtp_forward", body, false),
                ("DELETE", ["rtp_forwarders"]) => serve(peers, "stop_rtp_forward", body, true),
                _ => fail(JanusError::from_backend(404, "no such route")),
            }
        }
        _ => fail(JanusError::from_backend(404, "no such route")),
    }
}

/// A list the owner of room `id` makes with `f` (participants, mirrors), as the answer.
fn room_view(peers: &Peers, id: u64, f: fn(&Host, u64) -> VrResult<Vec<Value>>) -> RouteFuture {
    let answer = on_shard0(peers, move |h| {
        Box::pin(async move {
            h.ask(rooms::owner(&h, id), move |o| f(o, id))
                .await
                .unwrap_or_else(|| Err(VrError::new(503, "shard gone")))
        })
    });
    Box::pin(async move { Ok(Value::Array(answer.await?)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_parameters_are_typed_by_the_request_tables() {
        assert_eq!(typed("publishers", "6"), json!(6));
        assert_eq!(typed("publishers", "x"), json!("x"));
        assert_eq!(typed("is_private", "1"), json!(true));
        assert_eq!(typed("is_private", "false"), json!(false));
        assert_eq!(typed("description", "12"), json!("12"));
        assert_eq!(typed("allowed", "a,b"), json!(["a", "b"]));
        assert_eq!(typed("allowed", "[\"a\"]"), json!(["a"]));
        assert_eq!(typed("room", "12"), json!(12));
    }
}
