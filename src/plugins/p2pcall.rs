//! `janus.plugin.p2pcall` (spec 06): the VideoCall API with no backend Janus. The proxy
//! relays offers, answers and candidates between the two handles (on any shards), and
//! the browsers connect peer-to-peer. Plugin data keeps the `"videocall"` key, so
//! VideoCall clients work unchanged but for the plugin name.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Value};

use super::call::{self, code, err, find, CallHandle, CallState, Job, Outcome};
use super::directory::{self, HandleLoc, Peer};
use super::*;
use crate::api::error::Code;
use crate::api::json::ObjectWriter;

pub struct P2pCall;

pub const PACKAGE: &str = "janus.plugin.p2pcall";
const NS: &str = "p2pcall";

static META: PluginMeta = PluginMeta {
    package: PACKAGE,
    name: NS,
    display_name: "JANUS P2PCall plugin",
    author: "opensight.cn",
    description:
        "VideoCall-compatible one-to-one calls relayed peer-to-peer, without a media server.",
    version: 6,
    version_string: "0.0.6",
};

/// What one handle hands to its peer (spec 06 §4).
#[derive(Debug, Clone)]
pub enum Item {
    /// A VideoCall-shaped result, with a JSEP (offer, answer, update) when there is one.
    Event { result: Value, jsep: Option<String> },
    /// Candidates (raw JSON objects): the peer's client gets one core `trickle` each.
    Trickle(Vec<String>),
    /// A core event (`hangup` with a reason).
    Core { janus: String, reason: String },
}

/// Applies an item on the receiving handle (runs on the receiver's shard).
///
/// # Errors
/// 478 when the handle is gone; 472/481 when the item does not fit its call state.
pub fn receive(host: &Host, to: HandleLoc, item: Item) -> Result<(), JanusError> {
    let Some((ctx, st)) = find(host, to) else {
        return Err(err(code::NO_SUCH_USERNAME, "The peer is gone"));
    };
    match item {
        Item::Event { result, jsep } => {
            let event = result
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let from = result
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (mut webrtcup, mut close_pc) = (false, false);
            {
                let mut s = st.borrow_mut();
                let from_peer = s.incall && s.peer == from;
                match event {
                    "incomingcall" => {
                        if s.incall {
                            let me = s.own_name();
                            return Err(err(code::INVALID_REQUEST, format!("'{me}' is busy")));
                        }
                        s.begin_call(from);
                        s.pending_candidates.clear();
                    }
                    "accepted" if !from_peer => {
                        return Err(err(code::NO_CALL, "Not in a call with the sender"))
                    }
                    "accepted" => webrtcup = true,
                    "update" if !s.incall => return Err(err(code::NO_CALL, "Not in call")),
                    "hangup" if !from_peer => {
                        return Err(err(code::NO_CALL, "Not in a call with the sender"))
                    }
                    "hangup" => {
                        s.end_call();
                        close_pc = true;
                    }
                    _ if !s.incall => return Ok(()),
                    _ => {}
                }
            }
            call::push_result(&ctx, PACKAGE, &result, jsep.as_deref());
            if close_pc {
                push_close_pc(&ctx);
            }
            if webrtcup {
                // No PeerConnection ends at a Janus: VideoCall clients still wait for it.
                ctx.push(crate::api::reply::handle_event(
                    "webrtcup",
                    ctx.addr(),
                    None,
                ));
            }
        }
        Item::Trickle(candidates) => {
            for c in candidates {
                let mut w = ObjectWriter::with_capacity(c.len() + 96);
                w.str("janus", "trickle")
                    .u64("session_id", ctx.session_id)
                    .u64("sender", ctx.handle_id);
                if let Some(o) = ctx.opaque_id.as_deref() {
                    w.str("opaque_id", o);
                }
                w.raw("candidate", &c);
                ctx.push(w.finish());
            }
        }
        Item::Core { janus, reason } => {
            ctx.push(crate::api::reply::handle_event(
                &janus,
                ctx.addr(),
                Some(&reason),
            ));
        }
    }
    Ok(())
}

impl Item {
    /// The Janus-shaped message another proxy receives (spec 06 §7).
    pub fn to_json(&self) -> Value {
        match self {
            Item::Event { result, jsep } => {
                let mut v = json!({
                    "janus": "event",
                    "plugindata": {"plugin": PACKAGE, "data": {"videocall": "event", "result": result}},
                });
                if let Some(j) = jsep
                    .as_deref()
                    .and_then(|j| serde_json::from_str::<Value>(j).ok())
                {
                    v["jsep"] = j;
                }
                v
            }
            Item::Trickle(candidates) => {
                let list: Vec<Value> = candidates
                    .iter()
                    .filter_map(|c| serde_json::from_str(c).ok())
                    .collect();
                json!({"janus": "trickle", "candidates": list})
            }
            Item::Core { janus, reason } => json!({"janus": janus, "reason": reason}),
        }
    }

    /// Reads what [`Item::to_json`] wrote.
    pub fn from_json(v: &Value) -> Option<Item> {
        match v.get("janus")?.as_str()? {
            "event" => Some(Item::Event {
                result: v.pointer("/plugindata/data/result")?.clone(),
                jsep: v.get("jsep").map(Value::to_string),
            }),
            "trickle" => Some(Item::Trickle(
                v.get("candidates")?
                    .as_array()?
                    .iter()
                    .map(Value::to_string)
                    .collect(),
            )),
            other => Some(Item::Core {
                janus: other.to_string(),
                reason: v
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            }),
        }
    }
}

/// Hands `item` to the peer and waits for its verdict: on its shard, or through its
/// proxy's admin API.
async fn deliver(
    ctx: &HandleCtx,
    to: &Peer,
    peer_name: &str,
    from: &str,
    item: Item,
) -> Result<(), JanusError> {
    match to {
        Peer::Local(loc) => {
            let loc = *loc;
            ctx.host()
                .ask(loc.shard as usize, move |h| receive(h, loc, item))
                .await
                .unwrap_or_else(|| {
                    Err(JanusError::new(
                        Code::InternalError,
                        "peer shard did not answer",
                    ))
                })
        }
        Peer::Remote(base) => {
            let body = json!({"from_user": from, "async_event": item.to_json()}).to_string();
            let url = format!("{base}/{}", call::username_to_path(peer_name));
            call::post_to_proxy(ctx.host(), url, body).await.map(|_| ())
        }
    }
}

/// Sends to the current peer, looked up by name.
async fn deliver_to_peer(
    ctx: &HandleCtx,
    peer: &str,
    from: &str,
    item: Item,
) -> Result<(), JanusError> {
    let to = directory::lookup(ctx.host(), NS, peer)
        .await?
        .ok_or_else(|| {
            err(
                code::NO_SUCH_USERNAME,
                format!("Username '{peer}' doesn't exist"),
            )
        })?;
    deliver(ctx, &to, peer, from, item).await
}

/// `POST /plugins/p2pcall/{username}` from another proxy: a message for a local user.
///
/// # Errors
/// 478 unknown user; the receiver's verdict otherwise.
pub async fn from_proxy(host: &Host, to_user: String, item: Item) -> Result<(), JanusError> {
    let Some(loc) = directory::lookup_here(host, NS, &to_user).await else {
        return Err(err(
            code::NO_SUCH_USERNAME,
            format!("Username '{to_user}' doesn't exist"),
        ));
    };
    host.ask(loc.shard as usize, move |h| receive(h, loc, item))
        .await
        .unwrap_or_else(|| {
            Err(JanusError::new(
                Code::InternalError,
                "peer shard did not answer",
            ))
        })
}

/// The core `hangup` Janus sends when a plugin closes a handle's PeerConnection
/// (`close_pc`, reason "Close PC"): janus.js closes its PeerConnection on it. VideoCall in
/// Janus closes both parties' on a hangup; p2pcall has no PeerConnection of its own, so it
/// sends the event to both handles after the plugin's `hangup` result, as Janus does.
fn push_close_pc(ctx: &HandleCtx) {
    ctx.push(crate::api::reply::handle_event(
        "hangup",
        ctx.addr(),
        Some("Close PC"),
    ));
}

/// Sends the peer a `hangup` event for the call that just ended (errors ignored: the
/// peer may be gone too).
fn tell_peer_hangup(ctx: &HandleCtx, me: String, peer: String, reason: String) {
    let ctx = ctx.clone();
    monoio::spawn(async move {
        let result = json!({"event": "hangup", "username": &me, "reason": reason});
        let _ = deliver_to_peer(&ctx, &peer, &me, Item::Event { result, jsep: None }).await;
    });
}

/// The handle at `loc` lost its name to another proxy (multi-proxy mode).
fn taken(host: &Host, loc: HandleLoc, name: &str) {
    call::taken_over(host, loc, name, PACKAGE, end_taken_over);
}

fn end_taken_over(ctx: &HandleCtx, st: &Rc<RefCell<CallState>>) {
    let (me, peer) = {
        let mut s = st.borrow_mut();
        let peer = s.peer.clone();
        s.end_call();
        (s.own_name(), peer)
    };
    tell_peer_hangup(ctx, me, peer, "Username registered elsewhere".into());
}

async fn place_call(
    ctx: HandleCtx,
    st: Rc<RefCell<CallState>>,
    body: Value,
    jsep: Option<String>,
) -> Outcome {
    let call::CallRequest { me, peer, to, jsep } =
        call::check_call(&ctx, &st, &body, jsep, NS).await?;
    let generation = {
        let mut s = st.borrow_mut();
        let g = s.begin_call(&peer);
        s.hold_trickles = true;
        g
    };
    let offer = Item::Event {
        result: json!({"event": "incomingcall", "username": me}),
        jsep: Some(jsep),
    };
    match deliver(&ctx, &to, &peer, &me, offer).await {
        Ok(()) => {}
        Err(e) => {
            let mut s = st.borrow_mut();
            if s.generation == generation {
                s.end_call();
            }
            drop(s);
            if e.code == code::INVALID_REQUEST {
                return Ok((
                    json!({"event": "hangup", "username": me, "reason": "User busy"}),
                    None,
                ));
            }
            return Err(e);
        }
    }
    // Candidates the caller sent before the peer knew of the call go now.
    let held = {
        let mut s = st.borrow_mut();
        if s.generation != generation {
            Vec::new()
        } else {
            s.hold_trickles = false;
            std::mem::take(&mut s.pending_candidates)
        }
    };
    if !held.is_empty() {
        let _ = deliver(&ctx, &to, &peer, &me, Item::Trickle(held)).await;
    }
    Ok((json!({"event": "calling"}), None))
}

/// The peer of a call in progress, or `481 <text>`.
fn current_peer(st: &Rc<RefCell<CallState>>, text: &str) -> Result<(String, String), JanusError> {
    let s = st.borrow();
    match (&s.user, s.incall && !s.peer.is_empty()) {
        (Some(me), true) => Ok((me.clone(), s.peer.clone())),
        _ => Err(err(code::NO_CALL, text)),
    }
}

/// Sends the peer of the current call `event` with this side's JSEP; returns own name.
async fn send_jsep_to_peer(
    ctx: &HandleCtx,
    st: &Rc<RefCell<CallState>>,
    no_call: &str,
    event: &str,
    jsep: Option<String>,
) -> Result<String, JanusError> {
    let (me, peer) = current_peer(st, no_call)?;
    let jsep = jsep.ok_or_else(|| err(code::MISSING_SDP, "Missing SDP"))?;
    let item = Item::Event {
        result: json!({"event": event, "username": me}),
        jsep: Some(jsep),
    };
    deliver_to_peer(ctx, &peer, &me, item).await?;
    Ok(me)
}

async fn accept(ctx: HandleCtx, st: Rc<RefCell<CallState>>, jsep: Option<String>) -> Outcome {
    send_jsep_to_peer(&ctx, &st, "No incoming call to accept", "accepted", jsep).await?;
    ctx.push(crate::api::reply::handle_event(
        "webrtcup",
        ctx.addr(),
        None,
    ));
    Ok((json!({"event": "accepted"}), None))
}

async fn set(ctx: HandleCtx, st: Rc<RefCell<CallState>>, jsep: Option<String>) -> Outcome {
    send_jsep_to_peer(&ctx, &st, "Not in call", "update", jsep).await?;
    Ok((json!({"event": "set"}), None))
}

fn hangup_request(ctx: &HandleCtx, st: &Rc<RefCell<CallState>>, body: &Value) -> Outcome {
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("We did the hangup");
    let (me, peer) = {
        let mut s = st.borrow_mut();
        let peer = s.incall.then(|| s.peer.clone());
        if peer.is_some() {
            s.end_call();
        }
        (s.own_name(), peer)
    };
    if let Some(peer) = peer {
        tell_peer_hangup(ctx, me.clone(), peer, reason.to_string());
        // After the `hangup` result this request answers (the job queue pushes it first).
        let own = ctx.clone();
        monoio::spawn(async move { push_close_pc(&own) });
    }
    Ok((
        json!({"event": "hangup", "username": me, "reason": "Explicit hangup"}),
        None,
    ))
}

fn run(ctx: HandleCtx, st: Rc<RefCell<CallState>>, job: Job) -> LocalFuture<Outcome> {
    Box::pin(async move {
        let request = call::request_of(&job.body)?;
        if let Some(done) = call::directory_request(&ctx, NS, &request, &job.body).await {
            return done;
        }
        match request.as_str() {
            "register" => call::register(ctx, st, job.body, NS, PACKAGE, end_taken_over).await,
            "call" => place_call(ctx, st, job.body, job.jsep).await,
            "accept" => accept(ctx, st, job.jsep).await,
            "set" => set(ctx, st, job.jsep).await,
            "hangup" => hangup_request(&ctx, &st, &job.body),
            other => Err(err(
                code::INVALID_REQUEST,
                format!("Unknown request '{other}'"),
            )),
        }
    })
}

/// `POST /plugins/p2pcall/{username}` from another proxy: a message for a user of this
/// proxy, run on the shard holding the user's directory entry.
fn relay_route(
    peers: &Peers,
    _method: &str,
    user: &str,
    params: &BTreeMap<String, String>,
) -> RouteFuture {
    let to = call::username_from_path(user);
    let from = params.get("from_user").cloned().unwrap_or_default();
    let item = params
        .get("async_event")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| Item::from_json(&v));
    let invalid = if to.is_none() {
        Some("invalid username in path")
    } else if !call::valid_username(&from) {
        Some("invalid from_user")
    } else {
        None
    };
    let (Some(item), Some(to), None) = (item, to, invalid) else {
        let why = invalid.unwrap_or("invalid async_event");
        return Box::pin(async move { Err(JanusError::from_backend(400, why)) });
    };
    let answer = call::on_user_shard(peers, &to.clone(), move |h| {
        Box::pin(async move { from_proxy(&h, to, item).await })
    });
    Box::pin(async move { answer.await.map(|()| Value::Null) })
}

impl Plugin for P2pCall {
    type Handle = CallHandle;

    fn meta(&self) -> &'static PluginMeta {
        &META
    }

    fn check_section(&self, section: Option<&toml::Value>) -> Result<(), String> {
        call::CallPluginConf::from_section(NS, section).map(|_| ())
    }

    fn start(&self, cx: &mut StartCx) -> Result<(), String> {
        call::start(cx, NS, taken)
    }

    fn admin_routes(&self) -> Vec<PluginRoute> {
        vec![PluginRoute {
            prefix: "/plugins/p2pcall/",
            methods: &["POST"],
            handler: relay_route,
        }]
    }

    fn attach(&self, _ctx: HandleCtx) -> LocalFuture<Result<CallHandle, JanusError>> {
        call::new_handle()
    }

    fn message(&self, ctx: &HandleCtx, st: &Rc<CallHandle>, msg: PluginMessage) -> Option<String> {
        call::enqueue(ctx, st, PACKAGE, Job::from(msg), run);
        None
    }

    fn trickle(&self, ctx: &HandleCtx, st: &Rc<CallHandle>, t: Trickle, respond: Respond) {
        let candidates = call::split_candidates(&t);
        let (me, peer) = {
            let mut s = st.borrow_mut();
            match &s.user {
                Some(me) if s.incall && !s.hold_trickles => (me.clone(), s.peer.clone()),
                _ => {
                    let max = ctx.host().config().limits.max_candidates_per_handle;
                    return respond(s.buffer_candidates(candidates, max));
                }
            }
        };
        let ctx = ctx.clone();
        monoio::spawn(async move {
            respond(deliver_to_peer(&ctx, &peer, &me, Item::Trickle(candidates)).await);
        });
    }

    fn hangup(&self, ctx: &HandleCtx, st: &Rc<CallHandle>, respond: Respond) {
        let peer = {
            let s = st.borrow();
            s.incall.then(|| (s.own_name(), s.peer.clone()))
        };
        if let Some((me, peer)) = peer {
            let ctx = ctx.clone();
            monoio::spawn(async move {
                let core = Item::Core {
                    janus: "hangup".into(),
                    reason: "Peer Hangup".into(),
                };
                let _ = deliver_to_peer(&ctx, &peer, &me, core).await;
            });
        }
        respond(Ok(()));
    }

    fn detach(&self, ctx: &HandleCtx, st: Rc<CallHandle>) {
        let (user, peer) = {
            let mut s = st.borrow_mut();
            let peer = s.incall.then(|| s.peer.clone());
            s.end_call();
            (s.user.take(), peer)
        };
        if let Some(name) = &user {
            directory::unregister(ctx.host(), NS, name, call::loc(ctx));
        }
        if let (Some(me), Some(peer)) = (user, peer) {
            tell_peer_hangup(ctx, me, peer, "Peer detached".into());
        }
    }

    fn backend_lost(
        &self,
        _ctx: &HandleCtx,
        _st: &Rc<CallHandle>,
        _from: BackendRef,
        _reason: &str,
    ) -> bool {
        false
    }
}
