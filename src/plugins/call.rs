//! What the two call plugins (videocall, p2pcall) share: the per-handle call state, the
//! VideoCall wire shapes (`{"videocall":"event","result":…}`), username rules, error
//! codes, and a per-handle job queue that runs a handle's requests one after another
//! (a `call` must see the `register` sent just before it).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::directory::{self, Directories, Directory, HandleLoc, TakenOver};
use super::remote::ProxyClient;
use super::{BackendHandle, HandleCtx, Host, LocalFuture, Peers, StartCx};
use crate::api::error::JanusError;
use crate::api::reply;
use crate::store::redis_users::RedisUsers;

/// VideoCall plugin error codes (spec 05 §9).
pub mod code {
    pub const INVALID_REQUEST: u16 = 472;
    pub const REGISTER_FIRST: u16 = 473;
    pub const INVALID_ELEMENT: u16 = 474;
    pub const MISSING_ELEMENT: u16 = 475;
    pub const USERNAME_TAKEN: u16 = 476;
    pub const ALREADY_REGISTERED: u16 = 477;
    pub const NO_SUCH_USERNAME: u16 = 478;
    pub const USE_ECHO_TEST: u16 = 479;
    pub const ALREADY_IN_CALL: u16 = 480;
    pub const NO_CALL: u16 = 481;
    pub const MISSING_SDP: u16 = 482;
}

pub fn err(code: u16, text: impl Into<String>) -> JanusError {
    JanusError::from_backend(code, text)
}

/// A call plugin's state of one handle (its `Plugin::Handle`), shared with the tasks
/// working on it.
pub type CallHandle = RefCell<CallState>;

/// Registration and call state of one handle.
#[derive(Default)]
pub struct CallState {
    /// The registered username.
    pub user: Option<String>,
    pub incall: bool,
    /// The other party while `incall`.
    pub peer: String,
    /// Bumped whenever a call starts or ends: work of an older call is dropped.
    pub generation: u64,
    /// videocall: the backend handle of the current call.
    pub backend: Option<BackendHandle>,
    /// videocall callee: the backend's `incomingcall` arrived (stops the 10 s timer).
    pub got_incoming: bool,
    /// videocall: Janus has paired this call's backend handle with the peer's (the
    /// caller's `call` was answered, or the callee got `incomingcall`). Kept after the
    /// call ends, for its retirement; reset when the next call begins.
    pub peered: bool,
    /// Candidates (raw JSON objects) received while they could not be sent on.
    pub pending_candidates: Vec<String>,
    /// videocall: `set` fields received before the backend handle existed.
    pub pending_set: Map<String, Value>,
    /// p2pcall: candidates are held while the `incomingcall` is being delivered.
    pub hold_trickles: bool,
    jobs: VecDeque<Job>,
    running: bool,
}

impl CallState {
    /// Ends the current call locally: state reset, backend handle returned for cleanup.
    pub fn end_call(&mut self) -> Option<BackendHandle> {
        self.incall = false;
        self.peer.clear();
        self.got_incoming = false;
        self.hold_trickles = false;
        self.pending_candidates.clear();
        self.generation += 1;
        self.backend.take()
    }

    /// Starts a call with `peer`; returns the call's generation.
    pub fn begin_call(&mut self, peer: &str) -> u64 {
        self.incall = true;
        self.peer = peer.to_string();
        self.got_incoming = false;
        self.peered = false;
        self.generation += 1;
        self.generation
    }

    /// Keeps candidates that cannot be sent on yet, up to `max` per handle.
    ///
    /// # Errors
    /// 503 when the buffer is full (the candidates are dropped).
    pub fn buffer_candidates(
        &mut self,
        candidates: Vec<String>,
        max: usize,
    ) -> Result<(), JanusError> {
        super::candidates::buffer(&mut self.pending_candidates, candidates, max)
    }

    pub fn own_name(&self) -> String {
        self.user.clone().unwrap_or_else(|| "unknown".into())
    }
}

/// A `message` waiting its turn.
pub struct Job {
    pub body: Value,
    pub jsep: Option<String>,
    pub transaction: Rc<str>,
}

impl From<super::PluginMessage<'_>> for Job {
    fn from(msg: super::PluginMessage) -> Job {
        Job {
            body: serde_json::from_str(msg.body.get()).unwrap_or(Value::Null),
            jsep: msg.jsep.map(|j| j.get().to_string()),
            transaction: msg.transaction.into(),
        }
    }
}

/// What a request answers: `result` and an optional JSEP, or an error.
pub type Outcome = Result<(Value, Option<String>), JanusError>;

pub type Runner = fn(HandleCtx, Rc<RefCell<CallState>>, Job) -> LocalFuture<Outcome>;

/// Queues a request; one task per handle runs them in order and answers each with an
/// event carrying its transaction.
pub fn enqueue(
    ctx: &HandleCtx,
    st: &Rc<RefCell<CallState>>,
    package: &'static str,
    job: Job,
    run: Runner,
) {
    let max = ctx.host().config().limits.max_queued_requests_per_handle;
    {
        let mut s = st.borrow_mut();
        if s.jobs.len() >= max {
            drop(s);
            let e = JanusError::new(
                crate::api::error::Code::ServiceUnavailable,
                format!("Too many requests queued for this handle (max {max})"),
            );
            let data = error_data(&e);
            ctx.push(reply::plugin_event(
                ctx.addr(),
                Some(&job.transaction),
                package,
                &data,
                None,
            ));
            return;
        }
        s.jobs.push_back(job);
        if s.running {
            return;
        }
        s.running = true;
    }
    let (ctx, st) = (ctx.clone(), st.clone());
    monoio::spawn(async move {
        loop {
            let next = {
                let mut s = st.borrow_mut();
                let j = s.jobs.pop_front();
                if j.is_none() {
                    s.running = false;
                }
                j
            };
            let Some(job) = next else { return };
            let transaction = job.transaction.clone();
            let (data, jsep) = match run(ctx.clone(), st.clone(), job).await {
                Ok((result, jsep)) => (result_data(&result), jsep),
                Err(e) => (error_data(&e), None),
            };
            ctx.push(reply::plugin_event(
                ctx.addr(),
                Some(&transaction),
                package,
                &data,
                jsep.as_deref(),
            ));
        }
    });
}

/// Where a handle is, for the directory.
pub fn loc(ctx: &HandleCtx) -> HandleLoc {
    HandleLoc {
        shard: ctx.host().shard_id() as u16,
        session_id: ctx.session_id,
        handle_id: ctx.handle_id,
    }
}

/// The handle at `loc` if it is on this shard and is a call handle.
pub fn find(host: &Host, loc: HandleLoc) -> Option<(HandleCtx, Rc<CallHandle>)> {
    if loc.shard as usize != host.shard_id() {
        return None;
    }
    host.handle::<CallHandle>(loc.session_id, loc.handle_id)
}

/// Ends the call of a handle that lost its name (plugin-specific cleanup).
pub type EndCall = fn(&HandleCtx, &Rc<RefCell<CallState>>);

/// `register`: the name goes to this handle. A name another handle holds is refused with
/// 476, as Janus does; with `allow_takeover` the newest registration wins instead (as the
/// original did) and the previous owner is told with a 476 error event.
pub async fn register(
    ctx: HandleCtx,
    st: Rc<RefCell<CallState>>,
    body: Value,
    ns: &'static str,
    package: &'static str,
    end: EndCall,
) -> Outcome {
    if let Some(u) = &st.borrow().user {
        return Err(err(
            code::ALREADY_REGISTERED,
            format!("Already registered ({u})"),
        ));
    }
    let name = username_of(&body)?;
    let previous = directory::register(ctx.host(), ns, &name, loc(&ctx)).await?;
    st.borrow_mut().user = Some(name.clone());
    ctx.adoption_recorded().await;
    if let Some(prev) = previous {
        let taken = name.clone();
        ctx.host().run_on(prev.shard as usize, move |h| {
            taken_over(h, prev, &taken, package, end)
        });
    }
    Ok((json!({"event": "registered", "username": name}), None))
}

/// The handle at `loc` lost `name` to a newer registration: it forgets the name, ends its
/// call (`end`) and gets a 476 error event.
pub fn taken_over(host: &Host, loc: HandleLoc, name: &str, package: &str, end: EndCall) {
    let Some((ctx, st)) = find(host, loc) else {
        return;
    };
    let in_call = {
        let mut s = st.borrow_mut();
        if s.user.as_deref() != Some(name) {
            return;
        }
        s.user = None;
        s.incall
    };
    if in_call {
        end(&ctx, &st);
    }
    ctx.adoption_changed();
    let e = err(
        code::USERNAME_TAKEN,
        format!("Username '{name}' was registered by another handle"),
    );
    ctx.push(reply::plugin_event(
        ctx.addr(),
        None,
        package,
        &error_data(&e),
        None,
    ));
}

/// A `call` that passed the checks.
pub struct CallRequest {
    pub me: String,
    pub peer: String,
    pub to: directory::Peer,
    pub jsep: String,
}

/// The checks of `call`, in the order of spec 05 §3: registered (473), not in a call
/// (480), valid username (474), not oneself (479), peer exists (478), SDP given (482).
///
/// # Errors
/// The first check that fails.
pub async fn check_call(
    ctx: &HandleCtx,
    st: &Rc<RefCell<CallState>>,
    body: &Value,
    jsep: Option<String>,
    ns: &'static str,
) -> Result<CallRequest, JanusError> {
    let me = {
        let s = st.borrow();
        let Some(me) = s.user.clone() else {
            return Err(err(code::REGISTER_FIRST, "Register a username first"));
        };
        if s.incall {
            return Err(err(code::ALREADY_IN_CALL, "Already in a call"));
        }
        me
    };
    let peer = username_of(body)?;
    if peer == me {
        return Err(err(
            code::USE_ECHO_TEST,
            "You can't call yourself... use the EchoTest for that",
        ));
    }
    let Some(to) = directory::lookup(ctx.host(), ns, &peer).await? else {
        return Err(err(
            code::NO_SUCH_USERNAME,
            format!("Username '{peer}' doesn't exist"),
        ));
    };
    let jsep = jsep.ok_or_else(|| err(code::MISSING_SDP, "Missing SDP"))?;
    Ok(CallRequest { me, peer, to, jsep })
}

/// `list` and `exists`, the same for both plugins; `None` for other requests.
pub async fn directory_request(
    ctx: &HandleCtx,
    ns: &'static str,
    request: &str,
    body: &Value,
) -> Option<Outcome> {
    Some(match request {
        "list" => directory::list(ctx.host(), ns)
            .await
            .map(|names| (json!({"list": names}), None)),
        "exists" => match username_of(body) {
            Ok(name) => directory::lookup(ctx.host(), ns, &name).await.map(|found| {
                (
                    json!({"username": name, "registered": found.is_some()}),
                    None,
                )
            }),
            Err(e) => Err(e),
        },
        _ => return None,
    })
}

/// `attach` of a call plugin: a fresh, unregistered call state.
pub fn new_handle() -> LocalFuture<Result<CallHandle, JanusError>> {
    Box::pin(async { Ok(RefCell::default()) })
}

/// Splits raw candidates into single objects ([`super::candidates::split`]).
pub fn split_candidates(t: &super::Trickle) -> Vec<String> {
    super::candidates::split(t)
}

/// `{"videocall":"event","result":R}` (p2pcall uses the same key).
pub fn result_data(result: &Value) -> String {
    json!({"videocall": "event", "result": result}).to_string()
}

pub fn error_data(e: &JanusError) -> String {
    json!({"videocall": "event", "error_code": e.code, "error": e.reason}).to_string()
}

/// Pushes an unsolicited event (no transaction) to the handle's client.
pub fn push_result(ctx: &HandleCtx, package: &str, result: &Value, jsep: Option<&str>) {
    ctx.push(reply::plugin_event(
        ctx.addr(),
        None,
        package,
        &result_data(result),
        jsep,
    ));
}

/// `[videocall]` / `[p2pcall]`: where the user directory lives (spec 05 §6).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallPluginConf {
    /// `memory` (one proxy) or `redis://…` (users shared by several proxies).
    pub user_db: String,
    /// Seconds between refreshes of this proxy's entries in Redis; entries live three
    /// times as long.
    pub refresh_interval: u64,
    /// Whether `register` may take a name another handle holds (the newest wins, the
    /// old handle gets a 476 event). Off: such a register fails with 476, as in Janus.
    pub allow_takeover: bool,
}

impl Default for CallPluginConf {
    fn default() -> Self {
        CallPluginConf {
            user_db: "memory".into(),
            refresh_interval: 10,
            allow_takeover: false,
        }
    }
}

impl CallPluginConf {
    /// Reads and checks section `[ns]` (defaults when absent).
    ///
    /// # Errors
    /// Unknown keys, wrong types, or values out of range, naming the key.
    pub fn from_section(ns: &str, section: Option<&toml::Value>) -> Result<Self, String> {
        let conf: CallPluginConf = match section {
            None => CallPluginConf::default(),
            Some(v) => v.clone().try_into().map_err(|e| format!("[{ns}]: {e}"))?,
        };
        if conf.user_db != "memory" && !conf.user_db.starts_with("redis://") {
            return Err(format!(
                "invalid value for `{ns}.user_db`: {:?} (must be \"memory\" or redis://host:port/db)",
                conf.user_db
            ));
        }
        if !(1..=3600).contains(&conf.refresh_interval) {
            return Err(format!(
                "invalid value for `{ns}.refresh_interval`: {} (must be 1..3600)",
                conf.refresh_interval
            ));
        }
        Ok(conf)
    }
}

/// Start-up of a call plugin: its directory (Redis in multi-proxy mode, with `taken` for
/// names another proxy takes) and, then, the client for other proxies.
///
/// # Errors
/// A bad section, or Redis unreachable at start.
pub fn start(cx: &mut StartCx, ns: &'static str, taken: TakenOver) -> Result<(), String> {
    let conf = CallPluginConf::from_section(ns, cx.section)?;
    let remote = if conf.user_db == "memory" {
        None
    } else {
        let peers = cx.peers.clone();
        let base = cx.config.admin_api.public_base();
        let users = RedisUsers::start(
            &conf.user_db,
            ns,
            format!("{base}/plugins/{ns}"),
            std::time::Duration::from_secs(conf.refresh_interval),
            Box::new(move |name| directory::lost_to_another_proxy(&peers, ns, name, taken)),
        )
        .map_err(|e| format!("{ns}.user_db: {e}"))?;
        tracing::info!(plugin = ns, user_db = %conf.user_db, "multi-proxy user directory");
        let secret = &cx.config.admin_api.secret;
        let secret = (!secret.is_empty()).then(|| secret.clone());
        if cx.services.get::<ProxyClient>().is_none() {
            cx.services.insert(ProxyClient::start(secret));
        }
        Some(users)
    };
    cx.services
        .get_or_insert_with(Directories::default)
        .by_ns
        .insert(
            ns,
            Directory {
                allow_takeover: conf.allow_takeover,
                remote,
            },
        );
    Ok(())
}

/// Runs `work` on the shard holding `user`'s directory entry (an admin route's work, from
/// the admin thread) and waits for its answer.
pub fn on_user_shard<T: Send + 'static>(
    peers: &Peers,
    user: &str,
    work: impl FnOnce(Host) -> LocalFuture<Result<T, JanusError>> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, JanusError>> + Send + 'static {
    let (tx, rx) = futures_channel::oneshot::channel();
    let target = directory::partition_of(user, peers.count());
    peers.run_on(target, move |h| {
        let work = work(h.clone());
        monoio::spawn(async move {
            let _ = tx.send(work.await);
        });
    });
    async move {
        rx.await.unwrap_or_else(|_| {
            Err(JanusError::new(
                crate::api::error::Code::InternalError,
                "the user's shard did not answer",
            ))
        })
    }
}

/// POSTs to another proxy's admin API (multi-proxy calls).
///
/// # Errors
/// See [`ProxyClient::post_json`]; 500 when no client was set up.
pub async fn post_to_proxy(host: &Host, url: String, body: String) -> Result<String, JanusError> {
    let Some(client) = host.service::<ProxyClient>() else {
        return Err(JanusError::new(
            crate::api::error::Code::InternalError,
            "no client for other proxies (user_db is memory)",
        ));
    };
    client.post_json(url, body).await
}

/// Longest username accepted, in bytes. Janus 1.1.2 takes any JSON string (even "")
/// with no bound; the proxy keeps names in its directory, in Redis and in URLs to other
/// proxies, so it bounds them (e-mail addresses are at most 254 bytes).
pub const MAX_USERNAME: usize = 256;

/// Usernames as Janus 1.1.2's VideoCall takes them (`register` checks only that
/// `username` is a string): any string of at most [`MAX_USERNAME`] bytes, dots, dashes,
/// `~`, spaces and non-ASCII included.
pub fn valid_username(name: &str) -> bool {
    name.len() <= MAX_USERNAME
}

/// The `username` of a request body, validated.
///
/// # Errors
/// 475 when missing, 474 when not a string or longer than [`MAX_USERNAME`] bytes (Janus's
/// codes and texts).
pub fn username_of(body: &Value) -> Result<String, JanusError> {
    match body.get("username") {
        Some(Value::String(u)) if valid_username(u) => Ok(u.clone()),
        Some(Value::String(_)) => Err(err(
            code::INVALID_ELEMENT,
            format!("Invalid element (username should be at most {MAX_USERNAME} bytes)"),
        )),
        Some(_) => Err(err(
            code::INVALID_ELEMENT,
            "Invalid element type (username should be a string)",
        )),
        None => Err(err(code::MISSING_ELEMENT, "Missing element (username)")),
    }
}

/// A username as one path segment of a URL to another proxy
/// (`POST /plugins/<ns>/<segment>`): percent-encoded, so `/`, `?`, `%`, spaces and
/// non-ASCII travel intact; [`username_from_path`] reverses it.
pub fn username_to_path(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, PATH_SEGMENT).to_string()
}

/// The username in a proxy-to-proxy route's path, `None` when it does not decode to a
/// valid username.
pub fn username_from_path(segment: &str) -> Option<String> {
    let name = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?
        .into_owned();
    valid_username(&name).then_some(name)
}

/// Everything but RFC 3986's unreserved characters is encoded.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `request` of a body.
///
/// # Errors
/// 474 when missing, as the original.
pub fn request_of(body: &Value) -> Result<String, JanusError> {
    body.get("request")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            err(
                code::INVALID_ELEMENT,
                format!("Request {body} format invalid"),
            )
        })
}

/// `set` fields accepted before a call (spec 05 §3), merged into `pending`.
///
/// # Errors
/// 474 naming the first invalid field.
pub fn merge_set(pending: &mut Map<String, Value>, body: &Value) -> Result<(), JanusError> {
    let bad = |k: &str, what: &str| {
        err(
            code::INVALID_ELEMENT,
            format!("Invalid element ({k} should be {what})"),
        )
    };
    let mut checked = Map::new();
    for (k, v) in body.as_object().into_iter().flatten() {
        let ok = match k.as_str() {
            "request" => continue,
            "audio" | "video" | "record" | "restart" => v
                .is_boolean()
                .then_some(())
                .ok_or_else(|| bad(k, "a boolean")),
            "bitrate" => v
                .as_u64()
                .filter(|b| *b >= 1)
                .map(|_| ())
                .ok_or_else(|| bad(k, "a positive integer")),
            "filename" => v
                .is_string()
                .then_some(())
                .ok_or_else(|| bad(k, "a string")),
            "substream" | "temporal" => v
                .as_u64()
                .filter(|b| *b <= 2)
                .map(|_| ())
                .ok_or_else(|| bad(k, "0, 1 or 2")),
            "fallback" => v
                .as_u64()
                .map(|_| ())
                .ok_or_else(|| bad(k, "a non-negative integer")),
            _ => continue,
        };
        ok?;
        checked.insert(k.clone(), v.clone());
    }
    pending.extend(checked);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        // What Janus's VideoCall accepts: any string.
        for ok in [
            "alice_1",
            "日本",
            "janode-a-123",
            "a.b@example.com",
            "a b",
            "x~0123456789abcdef",
            "",
            "a/b?c%d",
        ] {
            assert!(valid_username(ok), "{ok:?}");
            assert_eq!(
                username_from_path(&username_to_path(ok)).as_deref(),
                Some(ok)
            );
        }
        assert!(valid_username(&"x".repeat(MAX_USERNAME)));
        assert!(!valid_username(&"x".repeat(MAX_USERNAME + 1)));
        assert_eq!(username_to_path("a b/é~"), "a%20b%2F%C3%A9~");
        assert_eq!(username_from_path("%FF"), None);
        assert_eq!(username_of(&json!({"username": 12})).unwrap_err().code, 474);
        assert_eq!(username_of(&json!({})).unwrap_err().code, 475);
        assert_eq!(request_of(&json!({})).unwrap_err().code, 474);
    }

    #[test]
    fn set_fields_are_validated_and_merged() {
        let mut p = Map::new();
        merge_set(
            &mut p,
            &json!({"request":"set","audio":true,"bitrate":1000,"other":1}),
        )
        .unwrap();
        merge_set(&mut p, &json!({"video":false})).unwrap();
        assert_eq!(
            Value::Object(p.clone()),
            json!({"audio":true,"bitrate":1000,"video":false})
        );
        assert_eq!(
            merge_set(&mut p, &json!({"bitrate":0})).unwrap_err().code,
            474
        );
        assert_eq!(
            merge_set(&mut p, &json!({"substream":3})).unwrap_err().code,
            474
        );
        assert_eq!(
            merge_set(&mut p, &json!({"audio":"yes"})).unwrap_err().code,
            474
        );
    }

    #[test]
    fn candidate_buffer_is_bounded() {
        let mut s = CallState::default();
        s.buffer_candidates(vec!["{}".into(); 3], 4).unwrap();
        assert_eq!(
            s.buffer_candidates(vec!["{}".into(); 2], 4)
                .unwrap_err()
                .code,
            503
        );
        s.buffer_candidates(vec!["{}".into()], 4).unwrap();
        assert_eq!(s.pending_candidates.len(), 4);
    }

    #[test]
    fn call_generations() {
        let mut s = CallState::default();
        let g = s.begin_call("bob");
        assert!(s.incall);
        s.end_call();
        assert!(!s.incall && s.peer.is_empty() && s.generation > g);
    }

    #[test]
    fn data_shapes() {
        assert_eq!(
            result_data(&json!({"event":"set"})),
            r#"{"videocall":"event","result":{"event":"set"}}"#
        );
        let e = err(code::NO_CALL, "No incoming call to accept");
        assert_eq!(
            error_data(&e),
            r#"{"videocall":"event","error_code":481,"error":"No incoming call to accept"}"#
        );
    }
}
