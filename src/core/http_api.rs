//! What Janus's REST API means (the requests the HTTP transport hands over whole, see
//! `transport::http`), as Janus 1.1.2's `janus_http.c` does it:
//!
//! - `POST /janus[/<session>[/<handle>]]`: one Janus request; ids in the path go into the
//!   request (457 when they conflict with the body's); the answer is the request's reply,
//!   or an empty body after 10 s without one. A POST without a body closes the connection.
//! - `GET /janus/<session>[?maxev=N]`: a long poll. It counts as a `keepalive`; it answers
//!   at once with queued events, else waits for the next one, and after 30 s answers
//!   `{"janus":"keepalive"}`. One event as an object when `maxev` is 1 (the default),
//!   else an array. 404 for a session without an HTTP event queue, 403 without the
//!   `apisecret` when one is required, 302 to the session for a GET naming a handle.
//! - `GET /janus/info`: `info`; `POST /janus/info` is 400.
//!
//! A session created or claimed over HTTP has no owning connection: its events wait in a
//! bounded queue ([`HttpEvents`], at most `limits.max_queued_bytes_per_connection`) on the
//! shard that owns the session, where long polls take them. A client that lets its queue
//! overflow loses the session (a slow reader, as on WebSockets). A WebSocket may claim an
//! HTTP session and the reverse.
//!
//! Requests take the same path as WebSocket frames (`dispatch`), from a one-answer
//! connection of the shard the HTTP request came in on.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use serde_json::value::RawValue;
use tracing::{debug, error};

use super::dispatch;
use super::shard::{ConnEntry, Shard, ShardMsg};
use crate::api::error::{Code, JanusError};
use crate::api::reply;
use crate::transport::conn::{Conn, Cut, Slot};
use crate::transport::http::{ApiRequest, ApiResponse};

/// How long a long poll waits for an event before it answers `keepalive` (Janus: 30 s).
pub const LONG_POLL: Duration = Duration::from_secs(30);

/// How long a request waits for its reply before an empty answer (Janus: 10 s).
pub const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// Most events one long poll returns, whatever `maxev` asks for.
pub const MAX_EVENTS: usize = 1000;

/// A long poll waiting on a session.
struct Waiter {
    id: u64,
    maxev: usize,
    tx: oneshot::Sender<ApiResponse>,
}

/// The events of a session created or claimed over HTTP, waiting for long polls.
#[derive(Default)]
pub struct HttpEvents {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    waiters: Vec<Waiter>,
    /// The queue outgrew its budget: the session is destroyed by the next sweep.
    pub overflowed: bool,
    /// Its place under `http_transport.max_sessions`, freed with the queue.
    pub slot: Option<Slot>,
}

fn keepalive(maxev: usize) -> ApiResponse {
    let ka = br#"{"janus":"keepalive"}"#;
    ApiResponse::Json(if maxev == 1 {
        ka.to_vec()
    } else {
        [b"[".as_slice(), ka, b"]"].concat()
    })
}

/// One event as it is (`maxev` 1), or a JSON array of them.
fn batch(events: &[Vec<u8>], maxev: usize) -> Vec<u8> {
    if maxev == 1 {
        return events.first().cloned().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.push(b']');
    out
}

impl HttpEvents {
    /// Queues an event for the next long poll (the waiting ones get it at once). Past
    /// `max_bytes` with nobody polling, the queue is dropped and marked overflowed.
    pub fn push(&mut self, frame: Vec<u8>, max_bytes: usize) {
        if self.overflowed {
            return;
        }
        self.bytes += frame.len();
        self.queue.push_back(frame);
        if self.waiters.is_empty() && self.bytes > max_bytes {
            self.overflowed = true;
            self.queue.clear();
            self.bytes = 0;
            return;
        }
        self.serve_waiters();
    }

    /// Takes up to `maxev` events off the queue.
    fn take(&mut self, maxev: usize) -> Vec<Vec<u8>> {
        let n = maxev.min(self.queue.len());
        let events: Vec<Vec<u8>> = self.queue.drain(..n).collect();
        self.bytes -= events.iter().map(Vec::len).sum::<usize>();
        events
    }

    /// Gives queued events to the waiting polls, as Janus does: the first one takes what
    /// it may, every other one is answered too (a `keepalive` when nothing is left).
    fn serve_waiters(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        for w in std::mem::take(&mut self.waiters) {
            let events = self.take(w.maxev);
            if events.is_empty() {
                let _ = w.tx.send(keepalive(w.maxev));
                continue;
            }
            if w.tx
                .send(ApiResponse::Json(batch(&events, w.maxev)))
                .is_err()
            {
                // That poll is gone: the events wait for the next one.
                self.bytes += events.iter().map(Vec::len).sum::<usize>();
                for e in events.into_iter().rev() {
                    self.queue.push_front(e);
                }
            }
        }
    }

    /// A long poll: answered now when events wait, else kept until one comes or
    /// [`HttpEvents::expire`] is called with its `id`.
    pub fn poll(&mut self, id: u64, maxev: usize, tx: oneshot::Sender<ApiResponse>) {
        self.waiters.push(Waiter { id, maxev, tx });
        self.serve_waiters();
    }

    /// The long poll `id` waited long enough: it gets a `keepalive`.
    pub fn expire(&mut self, id: u64) {
        if let Some(i) = self.waiters.iter().position(|w| w.id == id) {
            let w = self.waiters.remove(i);
            let _ = w.tx.send(keepalive(w.maxev));
        }
    }
}

impl Drop for HttpEvents {
    /// The session is gone or now belongs to another transport: pending polls end with a
    /// `keepalive` at once rather than after their 30 s.
    fn drop(&mut self) {
        for w in self.waiters.drain(..) {
            let _ = w.tx.send(keepalive(w.maxev));
        }
    }
}

/// Leading decimal digits as `strtoull` reads them (0 when there are none).
fn leading_u64(s: &str) -> u64 {
    s.bytes().take_while(u8::is_ascii_digit).fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add((d - b'0') as u64)
    })
}

/// A query parameter, percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `maxev` as Janus reads it (`atoi`, below 1 means 1), bounded by [`MAX_EVENTS`].
fn maxev_of(query: &str) -> usize {
    let Some(v) = query_param(query, "maxev") else {
        return 1;
    };
    let v = v.trim_start();
    let (neg, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let n = leading_u64(digits);
    if neg || n < 1 {
        1
    } else {
        (n as usize).min(MAX_EVENTS)
    }
}

fn error_json(e: &JanusError) -> ApiResponse {
    ApiResponse::Json(reply::error(0, None, e))
}

/// A random transaction as a JSON string literal (for the requests Janus makes up).
fn made_up_transaction() -> String {
    // Janus fills 12 bytes with 11 characters and a NUL.
    let t: String = (0..11).map(|_| fastrand::alphanumeric()).collect();
    format!("\"{t}\"")
}

/// Serves one request of the REST API on the shard it came in on.
pub async fn handle(shard: Rc<Shard>, req: ApiRequest) -> ApiResponse {
    if req.method != "GET" && req.method != "POST" {
        let e = JanusError::new(
            Code::TransportSpecific,
            format!("Unsupported method {}", req.method),
        );
        return error_json(&e);
    }
    // `/janus`, `/janus/`, `/janus/<s>`, `/janus/<s>/<h>`; a fourth part is a 404.
    let mut parts = req.path.split('/').skip(1);
    let session_path = parts.next().filter(|s| !s.is_empty());
    let handle_path = session_path.and(parts.next()).filter(|s| !s.is_empty());
    if handle_path.is_some() && parts.next().is_some_and(|s| !s.is_empty()) {
        return ApiResponse::Empty(404);
    }
    if session_path == Some("info") {
        if req.method != "GET" {
            return ApiResponse::Empty(400);
        }
        return ApiResponse::Json(shard.server_info(&made_up_transaction()));
    }
    if req.method == "GET" {
        let session_path = session_path.unwrap_or_default().to_string();
        return long_poll(shard, &session_path, handle_path.is_some(), &req.query).await;
    }
    if req.body.is_empty() {
        return ApiResponse::Close;
    }
    let session_id = session_path.map_or(0, leading_u64);
    let handle_id = handle_path.map_or(0, leading_u64);
    let doc = match request_doc(&shard, &req.body, session_id, handle_id) {
        Ok(doc) => doc,
        Err(e) => return error_json(&e),
    };
    request(shard, &doc).await
}

/// The request's JSON with the path's ids in it, as Janus puts them.
fn request_doc(
    shard: &Shard,
    body: &[u8],
    session_id: u64,
    handle_id: u64,
) -> Result<String, JanusError> {
    let max_depth = shard.config.limits.max_json_depth;
    if crate::api::json::too_deep(body, max_depth) {
        return Err(JanusError::new(
            Code::InvalidJson,
            format!("JSON error: nested deeper than {max_depth} levels"),
        ));
    }
    let json_error = |e: serde_json::Error| {
        JanusError::new(
            Code::InvalidJson,
            format!("JSON error: on line {}: {e}", e.line()),
        )
    };
    let raw: &RawValue = serde_json::from_slice(body).map_err(json_error)?;
    if !raw.get().starts_with('{') {
        return Err(JanusError::new(
            Code::InvalidJsonObject,
            "JSON error: not an object",
        ));
    }
    let mut fields: BTreeMap<String, &RawValue> =
        serde_json::from_str(raw.get()).map_err(json_error)?;
    // `json_integer_value`: 0 unless a (non-negative) integer.
    let int_of = |v: Option<&&RawValue>| v.and_then(|v| v.get().parse::<u64>().ok()).unwrap_or(0);
    let set_id = |fields: &mut BTreeMap<String, &RawValue>, key: &str, path: u64, what: &str| {
        let given = int_of(fields.get(key));
        if given != 0 && path != 0 && given != path {
            return Err(JanusError::new(
                Code::InvalidRequestPath,
                format!("Conflicting {what} ID (payload and path)"),
            ));
        }
        Ok(given == 0 && path != 0)
    };
    let put_session = set_id(&mut fields, "session_id", session_id, "session")?;
    let put_handle = set_id(&mut fields, "handle_id", handle_id, "handle")?;
    let session_text = session_id.to_string();
    let handle_text = handle_id.to_string();
    let session_raw: Box<RawValue> = RawValue::from_string(session_text).map_err(json_error)?;
    let handle_raw: Box<RawValue> = RawValue::from_string(handle_text).map_err(json_error)?;
    if put_session {
        fields.insert("session_id".into(), &session_raw);
    }
    if put_handle {
        fields.insert("handle_id".into(), &handle_raw);
    }
    serde_json::to_string(&fields).map_err(json_error)
}

/// Runs one request through the usual path from a one-answer connection of this shard.
async fn request(shard: Rc<Shard>, doc: &str) -> ApiResponse {
    let (tx, rx) = oneshot::channel();
    let from = shard.new_http_request_ref();
    let conn = Rc::new(Conn::reply(tx, shard.metrics.disconnects.clone()));
    shard
        .conns
        .borrow_mut()
        .insert(from.id, ConnEntry::for_request(conn));
    dispatch::handle_frame(&shard, doc, from);
    let answer = monoio::time::timeout(REQUEST_WAIT, rx).await;
    shard.conns.borrow_mut().remove(&from.id);
    match answer {
        Ok(Ok(frame)) => ApiResponse::Json(frame),
        // As Janus: an empty answer for a request that took too long.
        _ => ApiResponse::Json(Vec::new()),
    }
}

/// A long poll, from the shard it came in on: checks the secret, then waits on the
/// shard that owns the session.
async fn long_poll(
    shard: Rc<Shard>,
    session_path: &str,
    names_handle: bool,
    query: &str,
) -> ApiResponse {
    let session_id = leading_u64(session_path);
    if session_id == 0 {
        return ApiResponse::Empty(404);
    }
    let secret = &shard.config.general.api_secret;
    if !secret.is_empty() {
        let given = query_param(query, "apisecret").unwrap_or_default();
        if !crate::api::secret::constant_time_eq(given.as_bytes(), secret.as_bytes()) {
            return ApiResponse::Empty(403);
        }
    }
    let redirect = names_handle.then(|| format!("/janus/{session_path}"));
    let maxev = maxev_of(query);
    let (tx, rx) = oneshot::channel();
    let owner = shard.owner_of(session_id);
    let msg = Poll {
        session_id,
        redirect,
        maxev,
        reply: tx,
    };
    if owner == shard.id {
        start_poll(&shard, msg);
    } else {
        shard.forward(owner, ShardMsg::HttpPoll(msg));
    }
    // The owner shard always answers (at the latest after LONG_POLL); this bound only
    // guards against a shard that stopped.
    match monoio::time::timeout(LONG_POLL * 2, rx).await {
        Ok(Ok(answer)) => answer,
        _ => keepalive(maxev),
    }
}

/// A long poll travelling to the shard that owns its session.
pub struct Poll {
    pub session_id: u64,
    /// Set when the GET named a handle: Janus redirects to the session.
    pub redirect: Option<String>,
    pub maxev: usize,
    pub reply: oneshot::Sender<ApiResponse>,
}

/// Starts a long poll on the shard owning its session: the keepalive Janus makes of it,
/// then an answer now or a waiter with its [`LONG_POLL`] timer.
pub fn start_poll(shard: &Rc<Shard>, poll: Poll) {
    let id = shard.next_poll_id();
    let answer = {
        let mut sessions = shard.sessions.borrow_mut();
        let session = sessions.get_mut(poll.session_id);
        if let Some(s) = &session {
            debug!(session = s.id, "long poll");
        }
        match (session, poll.redirect) {
            (session, Some(to)) => {
                if let Some(s) = session {
                    s.last_activity = Instant::now();
                }
                Some(ApiResponse::Redirect(to))
            }
            (Some(s), None) => {
                s.last_activity = Instant::now();
                match s.http.as_mut() {
                    Some(events) => {
                        events.poll(id, poll.maxev, poll.reply);
                        return arm_timer(shard, poll.session_id, id);
                    }
                    None => Some(ApiResponse::Empty(404)),
                }
            }
            (None, None) => Some(ApiResponse::Empty(404)),
        }
    };
    if let Some(a) = answer {
        let _ = poll.reply.send(a);
    }
}

fn arm_timer(shard: &Rc<Shard>, session_id: u64, id: u64) {
    let me = Rc::downgrade(shard);
    monoio::spawn(async move {
        monoio::time::sleep(LONG_POLL).await;
        let Some(shard) = me.upgrade() else { return };
        let mut sessions = shard.sessions.borrow_mut();
        if let Some(events) = sessions.get_mut(session_id).and_then(|s| s.http.as_mut()) {
            events.expire(id);
        }
    });
}

/// Queues an event of an HTTP session (called for sessions without a connection).
pub fn push(shard: &Shard, session_id: u64, frame: Vec<u8>) {
    let max = shard.config.limits.max_queued_bytes_per_connection;
    let Ok(mut sessions) = shard.sessions.try_borrow_mut() else {
        error!(session = session_id, "event dropped: session table busy");
        return;
    };
    if let Some(events) = sessions.get_mut(session_id).and_then(|s| s.http.as_mut()) {
        events.push(frame, max);
        if events.overflowed {
            debug!(
                session = session_id,
                "HTTP event queue overflowed; session to be destroyed"
            );
        }
    }
}

/// A place for one more session with an HTTP event queue (created or claimed over HTTP).
///
/// # Errors
/// 472 when `http_transport.max_sessions` are taken.
pub fn take_slot(shard: &Shard) -> Result<Slot, JanusError> {
    let max = shard.config.http_transport.max_sessions;
    Slot::take(&shard.http_sessions, max).ok_or_else(|| {
        JanusError::new(
            Code::NotAcceptingSessions,
            format!("Too many HTTP sessions (max {max})"),
        )
    })
}

/// Gives the HTTP event queue of session `id` its slot.
pub fn set_slot(shard: &Shard, id: u64, slot: Slot) {
    if let Some(events) = shard
        .sessions
        .borrow_mut()
        .get_mut(id)
        .and_then(|s| s.http.as_mut())
    {
        events.slot = Some(slot);
    }
}

/// Counts a session lost to an overflowing queue as a cut slow reader.
pub fn count_overflow(shard: &Shard) {
    shard.metrics.disconnects.count(Cut::SlowReader);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: ApiResponse) -> String {
        match a {
            ApiResponse::Json(j) => String::from_utf8(j).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn maxev_and_ids_as_janus_reads_them() {
        assert_eq!(maxev_of(""), 1);
        assert_eq!(maxev_of("maxev=5"), 5);
        assert_eq!(maxev_of("maxev=0"), 1);
        assert_eq!(maxev_of("maxev=-3"), 1);
        assert_eq!(maxev_of("maxev=7x"), 7);
        assert_eq!(maxev_of("maxev=99999999999999999999"), MAX_EVENTS);
        assert_eq!(leading_u64("123abc"), 123);
        assert_eq!(leading_u64("abc"), 0);
    }

    #[test]
    fn events_wait_for_polls() {
        let mut q = HttpEvents::default();
        q.push(b"{\"a\":1}".to_vec(), 1000);
        q.push(b"{\"b\":2}".to_vec(), 1000);
        let (tx, mut rx) = oneshot::channel();
        q.poll(1, 1, tx);
        assert_eq!(text(rx.try_recv().unwrap().unwrap()), "{\"a\":1}");
        let (tx, mut rx) = oneshot::channel();
        q.poll(2, 5, tx);
        assert_eq!(text(rx.try_recv().unwrap().unwrap()), "[{\"b\":2}]");
        // Nothing queued: the poll waits, then expires with a keepalive.
        let (tx, mut rx) = oneshot::channel();
        q.poll(3, 2, tx);
        assert_eq!(rx.try_recv().unwrap(), None);
        q.expire(3);
        assert_eq!(
            text(rx.try_recv().unwrap().unwrap()),
            "[{\"janus\":\"keepalive\"}]"
        );
        // Two waiting polls: the first gets the event, the second a keepalive.
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        q.poll(4, 1, tx1);
        q.poll(5, 1, tx2);
        q.push(b"{\"c\":3}".to_vec(), 1000);
        assert_eq!(text(rx1.try_recv().unwrap().unwrap()), "{\"c\":3}");
        assert_eq!(
            text(rx2.try_recv().unwrap().unwrap()),
            "{\"janus\":\"keepalive\"}"
        );
        // A poll whose client is gone leaves the event queued.
        let (tx, rx) = oneshot::channel();
        q.poll(6, 1, tx);
        drop(rx);
        q.push(b"{\"d\":4}".to_vec(), 1000);
        let (tx, mut rx) = oneshot::channel();
        q.poll(7, 1, tx);
        assert_eq!(text(rx.try_recv().unwrap().unwrap()), "{\"d\":4}");
        // Dropping the queue answers waiting polls.
        let (tx, mut rx) = oneshot::channel();
        q.poll(8, 1, tx);
        drop(q);
        assert_eq!(
            text(rx.try_recv().unwrap().unwrap()),
            "{\"janus\":\"keepalive\"}"
        );
    }

    #[test]
    fn queue_is_bounded() {
        let mut q = HttpEvents::default();
        q.push(vec![b'x'; 600], 1000);
        assert!(!q.overflowed);
        q.push(vec![b'x'; 600], 1000);
        assert!(q.overflowed);
        assert!(q.queue.is_empty());
    }
}
