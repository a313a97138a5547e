//! `janus.plugin.videocall` (spec 05): Janus's VideoCall API with the user directory in
//! the proxy and each call placed on a backend Janus chosen per call; both parties'
//! backend handles live on that server.
//!
//! Backend usernames are per call aliases (`alice~1f3a…`): Janus wants names unique per
//! instance, and a user who hangs up and calls again at once would otherwise collide
//! with its previous, still detaching, backend handle. Aliases never reach clients:
//! `username` fields of relayed results are mapped back.
//!
//! # Ending a call without crashing Janus
//! Janus 1.1.2's VideoCall handles every request of every handle on one thread. Its
//! `hangup`, `accept` and `set` handlers read the peer's session pointer without holding
//! a reference (`janus_videocall.c` l.1765–1814, 1345, 1499) and `hangup` never clears
//! it; only the session's `hangup_media` (its PeerConnection closing, or its detach)
//! clears it, and that runs on another thread. Detaching a handle while its peer still
//! points at it, or while a request that read that pointer is still being handled, frees
//! the session under the handler: a segfault in `janus_plugin_session_is_alive`.
//!
//! So a backend handle of a call is never detached at once; it is *retired*
//! ([`retire`]):
//! 1. its own `hangup` is sent and answered, when this side ends the call;
//! 2. if Janus had paired it with a peer, the peer's "Remote WebRTC hangup" event is
//!    awaited: Janus sends it right after clearing the peer's pointer to this handle
//!    (`janus_videocall_hangup_media_internal`). Clients cannot forge that reason: the
//!    proxy rewrites it in their `hangup` requests;
//! 3. a no-op `set` goes through the handle and is answered: the single handler thread
//!    has then finished every request queued before it, the peer's included;
//! 4. Janus's core `hangup` for the handle (its PeerConnection closed) is awaited at most
//!    [`CLOSE_WAIT`] and relayed to the client as Janus would send it, unless the client
//!    started another call meanwhile;
//! 5. detach.
//!
//! The other events of a retiring handle are dropped.
//!
//! # Failover
//! With `[cluster] session_db` every handle is adoptable by another proxy if this one dies
//! ([`Plugin::adoption`]): its record holds the registered name (with this proxy's uuid in
//! the Redis user directory) and, while a call has a backend handle, that handle, the peer
//! and whether Janus has paired the call's handles; it is written again whenever one of
//! these changes (`registered`, a caller's `calling` and a callee's `incomingcall` reach
//! the client once it is in Redis, at most 1 s later). The adopting proxy takes the name back (only from the dead proxy: a name
//! someone else registered meanwhile ends the handle, `hangup` and `detached`), keeps a
//! paired call (ringing or up: its PeerConnection is Janus's and never stopped, and
//! Janus's later events reach the adopted backend handle), and ends a call that was still
//! being set up: its backend handle is retired and the client gets the VideoCall
//! `hangup` (reason "Proxy failover") after its claim. Janus drops the events of a
//! session while no proxy holds it: a call the peer ended in that window still looks up
//! on the adopted handle until its client hangs up.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use serde_json::{json, Value};
use tracing::{debug, warn};

use super::call::{self, code, err, find, CallHandle, CallState, Job, Outcome};
use super::directory::{self, HandleLoc, Peer};
use super::*;
use crate::api::error::Code;
use crate::api::json::RawObject;
use crate::backend::link::{Link, TapEvent};

pub struct VideoCall;

pub const PACKAGE: &str = "janus.plugin.videocall";
const NS: &str = "videocall";

/// How long a callee waits for the backend's `incomingcall` before giving up.
const INCOMING_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a retired backend handle waits for Janus to close its PeerConnection (Janus
/// does it from a once-a-second timer) before it is detached anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// How long a retiring handle waits for Janus to release the peer's pointer to it.
/// Janus does it within about a second; past this something is wrong, and the handle is
/// detached anyway (with a warning) rather than kept forever.
const RELEASE_WAIT: Duration = Duration::from_secs(15);

/// The reason Janus gives when a session's media is torn down; it also marks the moment
/// the sender dropped its pointer to this handle (step 2 of the module doc).
const RELEASED: &str = "Remote WebRTC hangup";

static META: PluginMeta = PluginMeta {
    package: PACKAGE,
    name: NS,
    display_name: "JANUS VideoCall plugin",
    author: "opensight.cn",
    description: "One-to-one video calls, each placed on a backend Janus chosen per call.",
    version: 6,
    version_string: "0.0.6",
};

/// A fresh backend username for `name`: the name, `~`, 16 hex digits.
fn alias(name: &str) -> String {
    format!("{name}~{:016x}", fastrand::u64(..))
}

/// The client-facing name behind a backend alias: everything before the last `~` when 16
/// hex digits follow it, so names that contain `~` themselves map back intact.
pub fn dealias(name: &str) -> &str {
    match name.rsplit_once('~') {
        Some((user, tag)) if tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => user,
        _ => name,
    }
}

/// Sends a plugin message to the backend handle; the backend's `result`.
async fn send_message(
    b: &BackendHandle,
    body: Value,
    jsep: Option<String>,
) -> Result<Value, JanusError> {
    let (tx, rx) = oneshot::channel();
    let body = body.to_string();
    let mut fields = vec![("body", body.as_str())];
    if let Some(j) = jsep.as_deref() {
        fields.push(("jsep", j));
    }
    b.send_in_order(
        &fields,
        Box::new(move |r| {
            let out = r.and_then(|m| {
                let data: Value = m
                    .get("plugindata")
                    .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                    .map(|p| p["data"].clone())
                    .unwrap_or(Value::Null);
                if let Some(code) = data.get("error_code").and_then(Value::as_u64) {
                    let text = data
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("backend error");
                    return Err(err(code as u16, text));
                }
                data.get("result")
                    .cloned()
                    .ok_or_else(|| JanusError::new(Code::BadGateway, "Invalid Response payload"))
            });
            let _ = tx.send(out);
        }),
    );
    rx.await
        .unwrap_or_else(|_| Err(JanusError::new(Code::BadGateway, "backend request dropped")))
}

/// Forgets a backend handle and detaches it at once: only for a handle that never was
/// in a call (its set-up failed). Every other one is [`retire`]d.
fn drop_backend(b: &BackendHandle) {
    b.detach();
}

/// Retires the backend handle of a call that ended, as the module doc describes.
/// `hangup_reason`: this side ends the call and sends `hangup` first. `released`: the
/// peer's "Remote WebRTC hangup" already arrived (it ended the call). The handle's events
/// go to the retirement from now on, whether or not the client keeps its handle.
fn retire(
    ctx: &HandleCtx,
    st: &Rc<RefCell<CallState>>,
    b: BackendHandle,
    hangup_reason: Option<&str>,
    released: bool,
) {
    let (released_tx, released_rx) = oneshot::channel::<()>();
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let (peered, generation) = {
        let s = st.borrow();
        (s.peered && !released, s.generation)
    };
    let waiters = RefCell::new((Some(released_tx), Some(closed_tx)));
    let (client, call_state) = (ctx.clone(), st.clone());
    b.link.tap_handle(
        b.id,
        Box::new(move |ev| match ev {
            TapEvent::Message {
                janus: "hangup",
                msg,
            } => {
                let Some(tx) = waiters.borrow_mut().1.take() else {
                    return;
                };
                let _ = tx.send(());
                // Janus closed the PeerConnection: the client hears it as from Janus,
                // unless it detached or started another call meanwhile.
                let s = call_state.borrow();
                if s.generation == generation && !s.incall && client.is_attached() {
                    client.push(crate::api::reply::relay(msg, "hangup", client.addr(), None));
                }
            }
            TapEvent::Message {
                janus: "event",
                msg,
            } => {
                if event_result(msg).is_some_and(|r| released_by_peer(&r)) {
                    if let Some(tx) = waiters.borrow_mut().0.take() {
                        let _ = tx.send(());
                    }
                }
            }
            TapEvent::Message { .. } => {}
            // Gone with the link or detached by Janus: nothing left to wait for.
            TapEvent::Gone => *waiters.borrow_mut() = (None, None),
        }),
    );
    let hangup = hangup_reason.map(|reason| json!({"request": "hangup", "reason": reason}));
    monoio::spawn(async move {
        let server = b.link.server.name.clone();
        if let Some(body) = hangup {
            // Any answer will do, even an error event.
            let _ = send_message(&b, body, None).await;
        }
        if peered
            && monoio::time::timeout(RELEASE_WAIT, released_rx)
                .await
                .is_err()
        {
            warn!(%server, backend_handle = b.id, "Janus did not release the call's peer in time; detaching anyway");
        }
        if let Err(e) = send_message(&b, json!({"request": "set"}), None).await {
            if e.code == Code::GatewayTimeout as u16 {
                warn!(%server, backend_handle = b.id, "no answer to a retiring handle's barrier; detaching anyway");
            }
        }
        let _ = monoio::time::timeout(CLOSE_WAIT, closed_rx).await;
        drop_backend(&b);
    });
}

/// Resets the handle if call `generation` is still the current one.
fn abandon(ctx: &HandleCtx, st: &Rc<RefCell<CallState>>, generation: u64) {
    let b = {
        let mut s = st.borrow_mut();
        if s.generation != generation {
            return;
        }
        s.end_call()
    };
    ctx.adoption_changed();
    if let Some(b) = b {
        retire(ctx, st, b, None, false);
    }
}

/// Attaches and registers a backend handle for call `generation`, then replays the
/// `set` fields and candidates that arrived before it existed.
async fn connect_backend(
    ctx: &HandleCtx,
    st: &Rc<RefCell<CallState>>,
    generation: u64,
    link: &Rc<Link>,
    alias: &str,
) -> Result<BackendHandle, JanusError> {
    let b = BackendHandle::attach(link, PACKAGE, ctx).await?;
    let id = b.id;
    let setup = async {
        send_message(&b, json!({"request": "register", "username": alias}), None).await?;
        let pending_set = std::mem::take(&mut st.borrow_mut().pending_set);
        if !pending_set.is_empty() {
            let mut body = pending_set;
            body.insert("request".into(), json!("set"));
            send_message(&b, Value::Object(body), None).await?;
        }
        let candidates = std::mem::take(&mut st.borrow_mut().pending_candidates);
        if !candidates.is_empty() {
            let list = format!("[{}]", candidates.join(","));
            link.call("trickle", Some(id), &[("candidates", &list)], true, |_| {
                Ok(())
            })
            .await?;
        }
        Ok::<(), JanusError>(())
    };
    if let Err(e) = setup.await {
        drop_backend(&b);
        return Err(e);
    }
    let mut s = st.borrow_mut();
    if s.generation != generation || !s.incall {
        drop(s);
        drop_backend(&b);
        return Err(JanusError::new(
            Code::InternalError,
            "The call ended while it was set up",
        ));
    }
    s.backend = Some(b.clone());
    drop(s);
    ctx.adoption_changed();
    Ok(b)
}

/// The callee side of a call, run on the callee's shard: checks, backend handle on the
/// caller's server (by URL), 10 s timer. Returns the callee's backend alias.
pub async fn incoming(
    host: &Host,
    callee: HandleLoc,
    caller: String,
    server: String,
) -> Result<String, JanusError> {
    let Some((ctx, st)) = find(host, callee) else {
        return Err(err(code::NO_SUCH_USERNAME, "The callee is gone"));
    };
    let (name, generation) = {
        let mut s = st.borrow_mut();
        let Some(name) = s.user.clone() else {
            return Err(err(code::REGISTER_FIRST, "Register a username first"));
        };
        if s.incall {
            return Err(err(code::ALREADY_IN_CALL, format!("User {name} busy")));
        }
        (name, s.begin_call(&caller))
    };
    let Some(link) = host.backend_by_url(&server) else {
        abandon(&ctx, &st, generation);
        return Err(JanusError::new(
            Code::BadGateway,
            format!("Backend server {server} unknown"),
        ));
    };
    let my_alias = alias(&name);
    if let Err(e) = connect_backend(&ctx, &st, generation, &link, &my_alias).await {
        abandon(&ctx, &st, generation);
        return Err(e);
    }
    let (timer_ctx, timer_state) = (ctx.clone(), st.clone());
    monoio::spawn(async move {
        monoio::time::sleep(INCOMING_TIMEOUT).await;
        let expired = {
            let s = timer_state.borrow();
            s.generation == generation && s.incall && !s.got_incoming
        };
        if expired {
            debug!(user = %name, "no incomingcall from the backend in time; call dropped");
            abandon(&timer_ctx, &timer_state, generation);
        }
    });
    Ok(my_alias)
}

/// A callee on another proxy: that proxy runs [`incoming`] (spec 05 §6); its answer
/// carries the callee's backend alias.
async fn remote_incoming(
    host: &Host,
    base: &str,
    callee: &str,
    caller: &str,
    server_url: &str,
) -> Result<String, JanusError> {
    let body = json!({"caller_username": caller, "backend_server_url": server_url}).to_string();
    let url = format!("{base}/{}", call::username_to_path(callee));
    let answer = call::post_to_proxy(host, url, body).await?;
    serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| {
            v.get("backend_username")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| {
            JanusError::new(
                Code::BadGateway,
                "the callee's proxy gave no backend username",
            )
        })
}

/// `POST /plugins/videocall/{username}` from another proxy: an incoming call for a user
/// of this proxy. Returns the callee's backend alias.
///
/// # Errors
/// 478 unknown user, 473/480 as for a local call, 502 when the server is unknown here.
pub async fn incoming_from_proxy(
    host: &Host,
    callee: String,
    caller: String,
    server_url: String,
) -> Result<String, JanusError> {
    let Some(loc) = directory::lookup_here(host, NS, &callee).await else {
        return Err(err(
            code::NO_SUCH_USERNAME,
            format!("Username '{callee}' doesn't exist"),
        ));
    };
    ask_incoming(host, loc, caller, server_url).await
}

/// Runs [`incoming`] on the callee's shard and waits for it.
async fn ask_incoming(
    host: &Host,
    callee: HandleLoc,
    caller: String,
    server: String,
) -> Result<String, JanusError> {
    let (tx, rx) = oneshot::channel();
    host.run_on(callee.shard as usize, move |h| {
        let h = h.clone();
        monoio::spawn(async move {
            let _ = tx.send(incoming(&h, callee, caller, server).await);
        });
    });
    rx.await.unwrap_or_else(|_| {
        Err(JanusError::new(
            Code::InternalError,
            "callee shard did not answer",
        ))
    })
}

/// The handle at `loc` lost its name to another proxy (multi-proxy mode).
fn taken(host: &Host, loc: HandleLoc, name: &str) {
    call::taken_over(host, loc, name, PACKAGE, end_taken_over);
}

/// Ends a call of a handle whose name was taken over: the backend is hung up.
fn end_taken_over(ctx: &HandleCtx, st: &Rc<RefCell<CallState>>) {
    let b = st.borrow_mut().end_call();
    if let Some(b) = b {
        retire(ctx, st, b, Some("Username registered elsewhere"), false);
    }
}

async fn place_call(
    ctx: HandleCtx,
    st: Rc<RefCell<CallState>>,
    body: Value,
    jsep: Option<String>,
) -> Outcome {
    let call::CallRequest {
        me,
        peer,
        to: callee,
        jsep,
    } = call::check_call(&ctx, &st, &body, jsep, NS).await?;
    let link = ctx.host().select_backend()?;
    let generation = st.borrow_mut().begin_call(&peer);
    let server_url = link.server.url.clone();
    let answered = match callee {
        Peer::Local(loc) => ask_incoming(ctx.host(), loc, me.clone(), server_url).await,
        Peer::Remote(base) => remote_incoming(ctx.host(), &base, &peer, &me, &server_url).await,
    };
    let callee_alias = match answered {
        Ok(a) => a,
        Err(e) if e.code == code::ALREADY_IN_CALL => {
            abandon(&ctx, &st, generation);
            return Ok((
                json!({"event": "hangup", "username": me, "reason": "User busy"}),
                None,
            ));
        }
        Err(e) => {
            abandon(&ctx, &st, generation);
            return Err(e);
        }
    };
    let b = match connect_backend(&ctx, &st, generation, &link, &alias(&me)).await {
        Ok(b) => b,
        Err(e) => {
            abandon(&ctx, &st, generation);
            return Err(e);
        }
    };
    let answer = send_message(
        &b,
        json!({"request": "call", "username": callee_alias}),
        Some(jsep),
    )
    .await;
    // Janus pairs the two backend handles when it handles `call`; after a timeout it may
    // have, so the retirement must assume it did.
    let maybe_paired = match &answer {
        Ok(_) => true,
        Err(e) => e.code == Code::GatewayTimeout as u16,
    };
    {
        let mut s = st.borrow_mut();
        if s.generation == generation {
            s.peered = maybe_paired;
        }
    }
    ctx.adoption_recorded().await;
    match answer {
        Ok(result) => Ok((dealias_result(result), None)),
        Err(e) => {
            abandon(&ctx, &st, generation);
            Err(e)
        }
    }
}

async fn accept(st: Rc<RefCell<CallState>>, body: Value, jsep: Option<String>) -> Outcome {
    let b = {
        let s = st.borrow();
        match (&s.user, s.incall, s.peer.is_empty(), &s.backend) {
            (Some(_), true, false, Some(b)) => b.clone(),
            _ => return Err(err(code::NO_CALL, "No incoming call to accept")),
        }
    };
    let jsep = jsep.ok_or_else(|| err(code::MISSING_SDP, "Missing SDP"))?;
    let result = send_message(&b, body, Some(jsep)).await?;
    Ok((dealias_result(result), None))
}

async fn set(st: Rc<RefCell<CallState>>, body: Value, jsep: Option<String>) -> Outcome {
    let backend = st.borrow().backend.clone();
    match backend {
        Some(b) => Ok((dealias_result(send_message(&b, body, jsep).await?), None)),
        None => {
            call::merge_set(&mut st.borrow_mut().pending_set, &body)?;
            Ok((json!({"event": "set"}), None))
        }
    }
}

fn hangup_request(ctx: &HandleCtx, st: &Rc<RefCell<CallState>>, body: &Value) -> Outcome {
    let reason = client_reason(body.get("reason").and_then(Value::as_str));
    let (name, b) = {
        let mut s = st.borrow_mut();
        let b = if s.incall { s.end_call() } else { None };
        (s.own_name(), b)
    };
    ctx.adoption_changed();
    if let Some(b) = b {
        retire(ctx, st, b, Some(reason), false);
    }
    Ok((
        json!({"event": "hangup", "username": name, "reason": "Explicit hangup"}),
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
            "accept" => accept(st, job.body, job.jsep).await,
            "set" => set(st, job.body, job.jsep).await,
            "hangup" => hangup_request(&ctx, &st, &job.body),
            other => Err(err(
                code::INVALID_REQUEST,
                format!("Unknown request '{other}'"),
            )),
        }
    })
}

/// Whether `from` is the backend handle of the current call.
fn is_current(st: &Rc<RefCell<CallState>>, from: BackendRef) -> bool {
    st.borrow().backend.as_ref().is_some_and(|b| from.is(b))
}

/// `plugindata.data.result` of a backend event, usernames not yet mapped back.
fn event_result(msg: &RawObject) -> Option<Value> {
    let plugindata: Value = serde_json::from_str(msg.get("plugindata")?.get()).ok()?;
    plugindata.get("data")?.get("result").cloned()
}

/// Whether a `hangup` result is Janus's "Remote WebRTC hangup": sent by the peer's media
/// teardown right after it dropped its pointer to this handle.
fn released_by_peer(result: &Value) -> bool {
    result["event"] == "hangup" && result["reason"] == RELEASED
}

/// A client's `hangup` reason as sent on: never Janus's own teardown reason, which the
/// proxy reads as a release signal.
fn client_reason(reason: Option<&str>) -> &str {
    match reason {
        Some(r) if r != RELEASED => r,
        _ => "We did the hangup",
    }
}

/// A backend `result` with its `username` alias mapped back to the client's name.
fn dealias_result(mut result: Value) -> Value {
    if let Some(u) = result.get("username").and_then(Value::as_str) {
        let name = dealias(u).to_string();
        result["username"] = json!(name);
    }
    result
}

/// What a handle's adoption record holds besides its backend handle (see the module doc,
/// "Failover").
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Recorded {
    /// The registered username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    /// This proxy's uuid in the Redis user directory (multi-proxy mode): the adopting
    /// proxy takes the name from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    users: Option<String>,
    /// The other party of the call whose backend handle the record carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    /// Janus paired the call's backend handles: the call is up (or ringing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    peered: bool,
}

/// The record of a handle: its name, and the call with its backend handle if it has one.
fn recorded(ctx: &HandleCtx, s: &CallState) -> (Recorded, Option<Adoption>) {
    let call = s.backend.as_ref().filter(|_| s.incall);
    let rec = Recorded {
        user: s.user.clone(),
        users: s
            .user
            .as_ref()
            .and_then(|_| directory::users_uuid(ctx.host(), NS))
            .map(str::to_string),
        peer: call.map(|_| s.peer.clone()),
        peered: call.is_some() && s.peered,
    };
    (rec, call.and_then(BackendHandle::adoption))
}

/// Rebuilds a handle of a dead proxy from its record: its name taken back, its call kept
/// if Janus had paired it (the PeerConnection never stopped), ended if it was being set up.
async fn adopt_handle(
    ctx: HandleCtx,
    b: Option<BackendHandle>,
    state: Option<String>,
) -> Option<CallHandle> {
    let rec: Recorded = state
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    // A call ended here is retired on a state of its own: its events go nowhere else, and
    // the client hears of it from the VideoCall `hangup` below, not from Janus's.
    let end_call = |b: BackendHandle, reason: &str| {
        let mut gone = CallState::default();
        gone.incall = true;
        gone.peered = true;
        let gone = Rc::new(RefCell::new(gone));
        retire(&ctx, &gone, b, Some(reason), false);
    };
    if let Some(name) = &rec.user {
        let here = call::loc(&ctx);
        if let Err(e) = directory::adopt(ctx.host(), NS, name, here, rec.users.as_deref()).await {
            warn!(user = %name, error = %e.reason, "videocall handle not adopted: its name could not be taken back");
            if let Some(b) = b {
                end_call(b, "Username registered elsewhere");
            }
            return None;
        }
    }
    let mut st = CallState::default();
    st.user = rec.user.clone();
    match (b, rec.peer) {
        (Some(b), Some(peer)) if rec.peered => {
            debug!(server = %b.link.server.name, backend_handle = b.id, handle = ctx.handle_id, "videocall adopted in a call");
            st.begin_call(&peer);
            st.peered = true;
            st.got_incoming = true;
            st.backend = Some(b);
        }
        (Some(b), _) => {
            end_call(b, "Proxy failover");
            let name = st.own_name();
            let hangup = json!({"event": "hangup", "username": name, "reason": "Proxy failover"});
            ctx.push_when_claimed(crate::api::reply::plugin_event(
                ctx.addr(),
                None,
                PACKAGE,
                &call::result_data(&hangup),
                None,
            ));
        }
        (None, _) => {}
    }
    Some(RefCell::new(st))
}

/// `POST /plugins/videocall/{username}` from another proxy: an incoming call for a user
/// of this proxy, run on the shard holding the user's directory entry.
fn incoming_route(
    peers: &Peers,
    _method: &str,
    user: &str,
    params: &BTreeMap<String, String>,
) -> RouteFuture {
    let callee = call::username_from_path(user);
    let caller = params.get("caller_username").cloned().unwrap_or_default();
    let server = params
        .get("backend_server_url")
        .cloned()
        .unwrap_or_default();
    let invalid = if callee.is_none() {
        Some("invalid username in path")
    } else if !call::valid_username(&caller) {
        Some("invalid caller_username")
    } else if server.is_empty() || server.len() > 1024 {
        Some("invalid backend_server_url")
    } else {
        None
    };
    let (Some(callee), None) = (callee, invalid) else {
        let why = invalid.unwrap_or("invalid username in path");
        return Box::pin(async move { Err(JanusError::from_backend(400, why)) });
    };
    let answer = call::on_user_shard(peers, &callee.clone(), move |h| {
        Box::pin(async move { incoming_from_proxy(&h, callee, caller, server).await })
    });
    Box::pin(async move {
        answer
            .await
            .map(|alias| json!({ "backend_username": alias }))
    })
}

impl Plugin for VideoCall {
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
            prefix: "/plugins/videocall/",
            methods: &["POST"],
            handler: incoming_route,
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
        let backend = {
            let s = st.borrow();
            s.backend.clone().filter(|_| s.incall)
        };
        match backend {
            Some(b) => b.trickle(&t, respond),
            None => {
                let max = ctx.host().config().limits.max_candidates_per_handle;
                let buffered = st
                    .borrow_mut()
                    .buffer_candidates(call::split_candidates(&t), max);
                respond(buffered);
            }
        }
    }

    fn hangup(&self, _ctx: &HandleCtx, st: &Rc<CallHandle>, respond: Respond) {
        let backend = st.borrow().backend.clone();
        match backend {
            Some(b) => b.hangup(respond),
            None => respond(Ok(())),
        }
    }

    fn detach(&self, ctx: &HandleCtx, st: Rc<CallHandle>) {
        let (user, b) = {
            let mut s = st.borrow_mut();
            let b = if s.incall { s.end_call() } else { None };
            (s.user.take(), b)
        };
        if let Some(name) = user {
            directory::unregister(ctx.host(), NS, &name, call::loc(ctx));
        }
        if let Some(b) = b {
            retire(ctx, &st, b, Some("We did the hangup"), false);
        }
    }

    /// Always adoptable: the name, and the call when it has a backend handle.
    fn adoption(&self, ctx: &HandleCtx, st: &Rc<CallHandle>) -> Option<Adoptable> {
        let (rec, backend) = recorded(ctx, &st.borrow());
        Some(Adoptable {
            backend,
            state: serde_json::to_string(&rec).ok(),
        })
    }

    fn adopt(
        &self,
        ctx: HandleCtx,
        b: Option<BackendHandle>,
        state: Option<String>,
    ) -> LocalFuture<Option<CallHandle>> {
        Box::pin(adopt_handle(ctx, b, state))
    }

    fn backend_lost(
        &self,
        ctx: &HandleCtx,
        st: &Rc<CallHandle>,
        from: BackendRef,
        _reason: &str,
    ) -> bool {
        if !is_current(st, from) {
            return false;
        }
        let (was_in_call, name) = {
            let mut s = st.borrow_mut();
            let was = s.incall;
            if was {
                // The link already forgot the backend handle: nothing to detach.
                s.end_call();
            }
            (was, s.own_name())
        };
        if was_in_call {
            ctx.adoption_changed();
            call::push_result(
                ctx,
                PACKAGE,
                &json!({"event": "hangup", "username": name, "reason": "backend handle closed"}),
                None,
            );
        }
        // The registration outlives the call.
        false
    }

    fn backend_event(
        &self,
        ctx: &HandleCtx,
        st: &Rc<CallHandle>,
        from: BackendRef,
        msg: &RawObject,
        janus: &str,
    ) {
        let current = is_current(st, from);
        if current && janus != "event" {
            ctx.push(crate::api::reply::relay(msg, janus, ctx.addr(), None));
            return;
        }
        if !current {
            // Not this call's handle (a retiring one reports to its retirement).
            return;
        }
        let Some(result) = event_result(msg) else {
            debug!(
                handle = ctx.handle_id,
                "backend event without result dropped"
            );
            return;
        };
        let result = dealias_result(result);
        let jsep = msg.get("jsep").map(|j| j.get());
        let event = result
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let from_peer = |s: &CallState| {
            s.incall && result.get("username").and_then(Value::as_str) == Some(s.peer.as_str())
        };
        let relay = match event {
            "hangup" => {
                let b = {
                    let mut s = st.borrow_mut();
                    if s.incall {
                        s.end_call()
                    } else {
                        None
                    }
                };
                ctx.adoption_changed();
                if let Some(b) = b {
                    retire(ctx, st, b, None, released_by_peer(&result));
                }
                true
            }
            "incomingcall" => {
                let (ok, generation) = {
                    let mut s = st.borrow_mut();
                    let ok = from_peer(&s);
                    if ok {
                        s.got_incoming = true;
                        s.peered = true;
                    }
                    (ok, s.generation)
                };
                // In a cluster the client hears of the call once another proxy could
                // adopt it ringing; unless the call ended meanwhile (its hangup was sent).
                match ok.then(|| ctx.adoption_pending()).flatten() {
                    Some(recorded) => {
                        let (ctx, st) = (ctx.clone(), st.clone());
                        let jsep = jsep.map(str::to_string);
                        monoio::spawn(async move {
                            recorded.await;
                            let current = {
                                let s = st.borrow();
                                s.generation == generation && s.incall
                            };
                            if current {
                                call::push_result(&ctx, PACKAGE, &result, jsep.as_deref());
                            }
                        });
                        return;
                    }
                    None => ok,
                }
            }
            "accepted" => from_peer(&st.borrow()),
            _ => st.borrow().incall,
        };
        if relay {
            call::push_result(ctx, PACKAGE, &result, jsep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_signal_cannot_be_forged() {
        assert!(released_by_peer(
            &json!({"event": "hangup", "username": "a~1", "reason": "Remote WebRTC hangup"})
        ));
        assert!(!released_by_peer(
            &json!({"event": "hangup", "reason": "We did the hangup"})
        ));
        assert_eq!(
            client_reason(Some("Remote WebRTC hangup")),
            "We did the hangup"
        );
        assert_eq!(client_reason(Some("bye")), "bye");
        assert_eq!(client_reason(None), "We did the hangup");
    }

    #[test]
    fn adoption_records_are_small_and_tolerant() {
        let idle = Recorded {
            user: Some("alice".into()),
            users: Some("u1".into()),
            ..Recorded::default()
        };
        assert_eq!(
            serde_json::to_string(&idle).unwrap(),
            r#"{"user":"alice","users":"u1"}"#
        );
        let call = Recorded {
            peer: Some("bob".into()),
            peered: true,
            ..idle
        };
        let json = serde_json::to_string(&call).unwrap();
        assert_eq!(
            json,
            r#"{"user":"alice","users":"u1","peer":"bob","peered":true}"#
        );
        assert_eq!(serde_json::from_str::<Recorded>(&json).unwrap(), call);
        // An unregistered handle, and fields a later version might add.
        assert_eq!(serde_json::to_string(&Recorded::default()).unwrap(), "{}");
        let later: Recorded = serde_json::from_str(r#"{"user":"x","more":1}"#).unwrap();
        assert_eq!(later.user.as_deref(), Some("x"));
    }

    #[test]
    fn aliases_map_back() {
        let a = alias("alice");
        assert!(a.starts_with("alice~") && a.len() == "alice~".len() + 16);
        assert_eq!(dealias(&a), "alice");
        assert_eq!(dealias("bob"), "bob");
        // Names with `~` of their own stay unambiguous.
        for name in ["a~b", "x~0123456789abcdef", "~", "", "é~~"] {
            assert_eq!(dealias(&alias(name)), name);
        }
        assert_eq!(dealias("a~0123456789abcdeg"), "a~0123456789abcdeg");
        let r = dealias_result(json!({"event": "incomingcall", "username": a}));
        assert_eq!(r, json!({"event": "incomingcall", "username": "alice"}));
    }
}
