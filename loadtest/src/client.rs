//! One simulated Janus client connection: WebSocket (`janus-protocol`) with request/reply
//! matching by transaction, a small stash of frames that arrived while waiting for something
//! else, and fire-and-forget requests whose acks are picked up by any later read.
//!
//! Every completed request is recorded in the [`Recorder`] with its latency (send → the
//! frame that completes it, timed when it is read; callers wait on the sockets concurrently
//! so a frame is read as soon as it arrives). Network input is never unwrapped: every
//! failure is a [`ClientError`] with a short `kind` for the report.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::Recorder;

/// Frames kept aside while waiting for another one; older ones are dropped beyond this.
const STASH_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{op}: no answer within {secs:.1}s")]
    Timeout { op: &'static str, secs: f64 },
    #[error("{op}: connection closed: {reason}")]
    Closed { op: &'static str, reason: String },
    #[error("{op}: janus error {code}: {reason}")]
    Janus {
        op: &'static str,
        code: i64,
        reason: String,
    },
    #[error("{op}: plugin error {code}: {reason}")]
    Plugin {
        op: &'static str,
        code: i64,
        reason: String,
    },
    #[error("{op}: unexpected reply: {frame}")]
    Unexpected { op: &'static str, frame: String },
    #[error("session {session} timed out (janus timeout event)")]
    SessionTimeout { session: u64 },
    /// A real WebRTC peer (janus-mediapeer) failed: its set-up, its SDP or its connection.
    #[error("{op}: WebRTC peer: {reason}")]
    Media { op: &'static str, reason: String },
}

impl ClientError {
    /// Short class for the report: `timeout:message`, `janus-458:keepalive`, `connect`, …
    pub fn kind(&self) -> String {
        match self {
            ClientError::Connect { .. } => "connect".into(),
            ClientError::Timeout { op, .. } => format!("timeout:{op}"),
            ClientError::Closed { op, .. } => format!("closed:{op}"),
            ClientError::Janus { op, code, .. } => format!("janus-{code}:{op}"),
            ClientError::Plugin { op, code, .. } => format!("plugin-{code}:{op}"),
            ClientError::Unexpected { op, .. } => format!("unexpected:{op}"),
            ClientError::SessionTimeout { .. } => "session-timeout".into(),
            ClientError::Media { op, .. } => format!("media:{op}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// The `janus` field of a frame ("" when missing).
pub fn verb(v: &Value) -> &str {
    v.get("janus").and_then(Value::as_str).unwrap_or("")
}

fn tx_is(v: &Value, tx: &str) -> bool {
    v.get("transaction").and_then(Value::as_str) == Some(tx)
}

/// `plugindata.data` of an event.
pub fn plugin_data(v: &Value) -> Option<&Value> {
    v.get("plugindata")?.get("data")
}

/// `plugindata.data.result.event` (videocall) of an event.
pub fn result_event(v: &Value) -> Option<&str> {
    plugin_data(v)?.get("result")?.get("event")?.as_str()
}

/// The core error of an `error` frame, or the plugin error inside an event's data.
pub fn error_of(op: &'static str, v: &Value) -> Option<ClientError> {
    if verb(v) == "error" {
        let e = v.get("error");
        return Some(ClientError::Janus {
            op,
            code: e
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            reason: e
                .and_then(|e| e.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    let d = plugin_data(v)?;
    let code = d.get("error_code")?.as_i64().unwrap_or(0);
    Some(ClientError::Plugin {
        op,
        code,
        reason: d.get("error").and_then(Value::as_str).unwrap_or("").into(),
    })
}

/// How a request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `success` (create, attach, detach, destroy, hangup).
    Success,
    /// `ack` (keepalive, trickle).
    Ack,
    /// `ack` and an `event` with the same transaction, in either order (plugin messages).
    AckAndEvent,
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    rec: Arc<Recorder>,
    timeout: Duration,
    stash: VecDeque<Value>,
    /// Fire-and-forget requests waiting for their ack: transaction → (op, sent at).
    acks: HashMap<String, (&'static str, Instant)>,
    tx_prefix: String,
    tx_n: u64,
    /// Sessions created on this connection and not destroyed (the sessions gauge).
    live_sessions: i64,
}

impl Drop for Client {
    fn drop(&mut self) {
        // closing the socket ends every session it still holds
        self.rec
            .counters
            .sessions_up
            .fetch_sub(self.live_sessions, Ordering::Relaxed);
    }
}

/// The WebSocket settings of a simulated client: small buffers, so ten thousand idle
/// connections cost little memory.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20))
}

impl Client {
    /// Opens a WebSocket to `url` with subprotocol `janus-protocol` (recorded as `connect`).
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the URL is invalid or the connection/handshake fails
    /// within `timeout`.
    pub async fn connect(url: &str, rec: Arc<Recorder>, timeout: Duration) -> Result<Client> {
        let err = |reason: String| ClientError::Connect {
            url: url.to_string(),
            reason,
        };
        let mut req = url.into_client_request().map_err(|e| err(e.to_string()))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let sent = Instant::now();
        let connecting = tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), true);
        let (ws, _resp) = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => return Err(err(format!("no handshake within {timeout:?}"))),
            Ok(Err(e)) => return Err(err(e.to_string())),
            Ok(Ok(x)) => x,
        };
        rec.op("connect", sent);
        Ok(Client {
            ws,
            rec,
            timeout,
            stash: VecDeque::new(),
            acks: HashMap::new(),
            tx_prefix: format!("{:x}", fastrand::u32(..)),
            tx_n: 0,
            live_sessions: 0,
        })
    }

    fn next_tx(&mut self) -> String {
        self.tx_n += 1;
        format!("{}-{}", self.tx_prefix, self.tx_n)
    }

    /// Sends `body` with a fresh transaction; returns the transaction.
    pub async fn send(&mut self, op: &'static str, mut body: Value) -> Result<String> {
        let tx = self.next_tx();
        body["transaction"] = Value::String(tx.clone());
        let text = body.to_string();
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| ClientError::Closed {
                op,
                reason: e.to_string(),
            })?;
        self.rec
            .counters
            .frames_sent
            .fetch_add(1, Ordering::Relaxed);
        Ok(tx)
    }

    /// The next JSON frame, handling acks of fire-and-forget requests on the way.
    async fn read(&mut self, op: &'static str, deadline: Instant) -> Result<Value> {
        loop {
            if let Some(v) = self.read_one(op, deadline).await? {
                return Ok(v);
            }
        }
    }

    /// One frame: `None` when it was the ack of a fire-and-forget request (then recorded) or
    /// not a text frame.
    async fn read_one(&mut self, op: &'static str, deadline: Instant) -> Result<Option<Value>> {
        let next = timeout_at(deadline.into(), self.ws.next()).await;
        let msg = match next {
            Err(_) => {
                return Err(ClientError::Timeout {
                    op,
                    secs: self.timeout.as_secs_f64(),
                })
            }
            Ok(None) => {
                return Err(ClientError::Closed {
                    op,
                    reason: "end of stream".into(),
                })
            }
            Ok(Some(Err(e))) => {
                return Err(ClientError::Closed {
                    op,
                    reason: e.to_string(),
                })
            }
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(c) => {
                return Err(ClientError::Closed {
                    op,
                    reason: format!("close frame {c:?}"),
                })
            }
            _ => return Ok(None), // pings are answered by tungstenite itself
        };
        self.rec
            .counters
            .frames_received
            .fetch_add(1, Ordering::Relaxed);
        let v: Value =
            serde_json::from_str(text.as_str()).map_err(|e| ClientError::Unexpected {
                op,
                frame: format!("invalid JSON ({e}): {}", text.as_str()),
            })?;
        if verb(&v) == "timeout" {
            let session = v.get("session_id").and_then(Value::as_u64).unwrap_or(0);
            return Err(ClientError::SessionTimeout { session });
        }
        if let Some((ack_op, sent)) = v
            .get("transaction")
            .and_then(Value::as_str)
            .and_then(|t| self.acks.remove(t))
        {
            match error_of(ack_op, &v) {
                Some(e) => self.rec.error(&e.kind(), || e.to_string()),
                None => self.rec.op(ack_op, sent),
            }
            return Ok(None);
        }
        Ok(Some(v))
    }

    /// The first frame (stashed or new) that satisfies `pred`; others are stashed.
    pub async fn expect(
        &mut self,
        op: &'static str,
        deadline: Instant,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        if let Some(i) = self.stash.iter().position(&mut pred) {
            if let Some(v) = self.stash.remove(i) {
                return Ok(v);
            }
        }
        loop {
            let v = self.read(op, deadline).await?;
            if pred(&v) {
                return Ok(v);
            }
            self.stash_push(v);
        }
    }

    fn stash_push(&mut self, v: Value) {
        if self.stash.len() >= STASH_MAX {
            self.stash.pop_front();
        }
        self.stash.push_back(v);
    }

    /// Waits for the answer(s) to the request `tx` sent at `sent` and records `op`.
    /// Returns the completing frame (`success`, `ack` or the `event`).
    pub async fn await_reply(
        &mut self,
        op: &'static str,
        tx: &str,
        sent: Instant,
        reply: Reply,
    ) -> Result<Value> {
        let deadline = sent + self.timeout;
        let mut acked = false;
        let mut event = None;
        loop {
            let v = self.expect(op, deadline, |v| tx_is(v, tx)).await?;
            if let Some(e) = error_of(op, &v) {
                return Err(e);
            }
            match (reply, verb(&v)) {
                (Reply::Success, "success") | (Reply::Ack, "ack") => {
                    self.rec.op(op, sent);
                    return Ok(v);
                }
                (Reply::AckAndEvent, "ack") => acked = true,
                (Reply::AckAndEvent, "event") => event = Some(v),
                // Janus answers a synchronous plugin reply with success + plugindata
                (Reply::AckAndEvent, "success") => event = Some(v),
                _ => {
                    return Err(ClientError::Unexpected {
                        op,
                        frame: v.to_string(),
                    })
                }
            }
            if acked || reply_is_sync(&event) {
                if let Some(ev) = event.take() {
                    self.rec.op(op, sent);
                    return Ok(ev);
                }
            }
        }
    }

    /// Sends `body` and waits for its answer (see [`Client::await_reply`]).
    pub async fn request(&mut self, op: &'static str, body: Value, reply: Reply) -> Result<Value> {
        let sent = Instant::now();
        let tx = self.send(op, body).await?;
        self.await_reply(op, &tx, sent, reply).await
    }

    /// Sends `body` without waiting; its ack is recorded (or its error counted) by whichever
    /// read sees it. Acks overdue by more than the request timeout count as timeouts.
    pub async fn fire(&mut self, op: &'static str, body: Value) -> Result<()> {
        let now = Instant::now();
        let overdue: Vec<String> = self
            .acks
            .iter()
            .filter(|(_, (_, sent))| now.saturating_duration_since(*sent) > self.timeout)
            .map(|(t, _)| t.clone())
            .collect();
        for t in overdue {
            if let Some((op, _)) = self.acks.remove(&t) {
                let e = ClientError::Timeout {
                    op,
                    secs: self.timeout.as_secs_f64(),
                };
                self.rec.error(&e.kind(), || e.to_string());
            }
        }
        let tx = self.send(op, body).await?;
        self.acks.insert(tx, (op, now));
        Ok(())
    }

    /// Reads until every fire-and-forget request has been answered.
    pub async fn drain_acks(&mut self, op: &'static str) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        while !self.acks.is_empty() {
            if let Some(v) = self.read_one(op, deadline).await? {
                self.stash_push(v);
            }
        }
        Ok(())
    }

    /// Drops stashed frames (events nobody waits for).
    pub fn clear_stash(&mut self) {
        self.stash.clear();
    }

    /// `create` → the new session id.
    pub async fn create(&mut self) -> Result<u64> {
        let v = self
            .request("create", json!({"janus": "create"}), Reply::Success)
            .await?;
        let id = data_id("create", &v)?;
        self.live_sessions += 1;
        self.rec.counters.session_created();
        Ok(id)
    }

    /// `attach` `plugin` → the new handle id.
    pub async fn attach(&mut self, session: u64, plugin: &str) -> Result<u64> {
        let v = self
            .request(
                "attach",
                json!({"janus": "attach", "session_id": session, "plugin": plugin}),
                Reply::Success,
            )
            .await?;
        data_id("attach", &v)
    }

    pub async fn keepalive(&mut self, session: u64) -> Result<()> {
        self.request(
            "keepalive",
            json!({"janus": "keepalive", "session_id": session}),
            Reply::Ack,
        )
        .await
        .map(drop)
    }

    /// `detach` handle `handle` of `session`.
    pub async fn detach(&mut self, session: u64, handle: u64) -> Result<()> {
        self.request(
            "detach",
            json!({"janus": "detach", "session_id": session, "handle_id": handle}),
            Reply::Success,
        )
        .await
        .map(drop)
    }

    pub async fn destroy(&mut self, session: u64) -> Result<()> {
        let r = self
            .request(
                "destroy",
                json!({"janus": "destroy", "session_id": session}),
                Reply::Success,
            )
            .await;
        if r.is_ok() {
            self.live_sessions -= 1;
            self.rec.counters.session_gone();
        }
        r.map(drop)
    }

    /// Closes the WebSocket politely (bounded by a short timeout).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

fn reply_is_sync(event: &Option<Value>) -> bool {
    matches!(event, Some(v) if verb(v) == "success")
}

/// `data.id` of a create/attach reply.
pub fn data_id(op: &'static str, v: &Value) -> Result<u64> {
    v.get("data")
        .and_then(|d| d.get("id"))
        .and_then(Value::as_u64)
        .ok_or_else(|| ClientError::Unexpected {
            op,
            frame: v.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds() {
        let v = json!({"janus":"error","transaction":"t","error":{"code":458,"reason":"No such session 1"}});
        let e = error_of("keepalive", &v).unwrap();
        assert_eq!(e.kind(), "janus-458:keepalive");
        assert!(e.to_string().contains("No such session"));
        let v = json!({"janus":"event","plugindata":{"plugin":"janus.plugin.videocall","data":{"videocall":"event","error_code":478,"error":"Username 'x' doesn't exist"}}});
        assert_eq!(error_of("call", &v).unwrap().kind(), "plugin-478:call");
        let ok = json!({"janus":"event","plugindata":{"data":{"echotest":"event","result":"ok"}}});
        assert!(error_of("message", &ok).is_none());
        assert_eq!(
            ClientError::Timeout {
                op: "message",
                secs: 1.0
            }
            .kind(),
            "timeout:message"
        );
        let e = ClientError::Media {
            op: "webrtcup",
            reason: "not connected".into(),
        };
        assert_eq!(e.kind(), "media:webrtcup");
        assert!(e.to_string().contains("WebRTC peer: not connected"));
    }

    #[test]
    fn field_helpers() {
        let v = json!({"janus":"event","plugindata":{"data":{"videocall":"event","result":{"event":"incomingcall","username":"a"}}}});
        assert_eq!(verb(&v), "event");
        assert_eq!(result_event(&v), Some("incomingcall"));
        assert_eq!(verb(&json!({})), "");
        assert_eq!(data_id("create", &json!({"data":{"id":5}})).unwrap(), 5);
        assert!(data_id("create", &json!({"data":{}})).is_err());
        assert!(tx_is(&json!({"transaction":"a-1"}), "a-1"));
    }
}
