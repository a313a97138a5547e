//! A small blocking WebSocket client for the Janus API and Admin API: connect with a
//! subprotocol and a timeout, send JSON requests with fresh transactions, and wait (with a
//! deadline) for the replies carrying those transactions. Used by the prober and the
//! statistics thread; knows nothing about statuses or counters.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Why a request to Janus failed.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("connection closed by Janus")]
    Closed,
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("janus error {code}: {reason}")]
    Janus { code: i64, reason: String },
    #[error("unexpected reply: {0}")]
    BadReply(String),
}

/// A fresh random transaction id.
pub fn transaction() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(12)
        .collect()
}

/// One open connection to Janus.
pub struct JanusWs {
    ws: WebSocket<TcpStream>,
    timeout: Duration,
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

impl JanusWs {
    /// Opens `url` (`ws://host:port`) with the given subprotocol; the TCP connect and the
    /// handshake each take at most `timeout`, which is also the default reply timeout.
    ///
    /// # Errors
    /// Resolution, connection or handshake failure, or timeout.
    pub fn connect(url: &str, protocol: &'static str, timeout: Duration) -> Result<Self, WsError> {
        let fail = |reason: String| WsError::Connect {
            url: url.to_owned(),
            reason,
        };
        let hostport = url
            .strip_prefix("ws://")
            .ok_or_else(|| fail("not a ws:// URL".into()))?
            .trim_end_matches('/');
        let addrs = hostport
            .to_socket_addrs()
            .map_err(|e| fail(e.to_string()))?;
        let mut last = String::from("no address");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| fail(last))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| fail(e.to_string()))?;
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(16 << 20));
        let (ws, _resp) = tungstenite::client::client_with_config(req, stream, Some(config))
            .map_err(|e| match e {
                tungstenite::HandshakeError::Interrupted(_) => WsError::Timeout(timeout),
                tungstenite::HandshakeError::Failure(e) => fail(e.to_string()),
            })?;
        Ok(JanusWs { ws, timeout })
    }

    /// Sends `request` (an object without `transaction`) and returns the first reply with
    /// the same transaction that is not an `ack`. A Janus `error` reply is an error.
    ///
    /// # Errors
    /// Socket failure, timeout, Janus error.
    pub fn request(&mut self, request: Map<String, Value>) -> Result<Value, WsError> {
        let mut v = self.requests(vec![request])?;
        v.pop().ok_or_else(|| WsError::BadReply("no reply".into()))
    }

    /// Sends all `requests` at once (pipelined) and collects their replies, in request
    /// order, all within one timeout. Costs one round trip however many requests.
    ///
    /// # Errors
    /// As [`JanusWs::request`]; the first Janus `error` reply fails the whole batch.
    pub fn requests(&mut self, requests: Vec<Map<String, Value>>) -> Result<Vec<Value>, WsError> {
        self.requests_lenient(requests)?
            .into_iter()
            .map(check_reply)
            .collect()
    }

    /// As [`JanusWs::requests`], but Janus `error` replies are returned like any other.
    ///
    /// # Errors
    /// Socket failure or timeout.
    pub fn requests_lenient(
        &mut self,
        requests: Vec<Map<String, Value>>,
    ) -> Result<Vec<Value>, WsError> {
        let deadline = Instant::now() + self.timeout;
        let mut ids = Vec::with_capacity(requests.len());
        for mut r in requests {
            let t = transaction();
            r.insert("transaction".into(), Value::String(t.clone()));
            self.ws.write(Message::text(Value::Object(r).to_string()))?;
            ids.push(t);
        }
        self.ws.flush()?;
        let mut replies: Vec<Option<Value>> = vec![None; ids.len()];
        let mut missing = ids.len();
        while missing > 0 {
            let v = self.recv(deadline)?;
            let Some(t) = v.get("transaction").and_then(Value::as_str) else {
                continue;
            };
            let Some(i) = ids.iter().position(|id| id == t) else {
                continue;
            };
            if v.get("janus").and_then(Value::as_str) == Some("ack") {
                continue;
            }
            if replies[i].is_none() {
                replies[i] = Some(v);
                missing -= 1;
            }
        }
        Ok(replies.into_iter().flatten().collect())
    }

    /// The next JSON text message, waiting until `deadline`. Non-JSON and binary messages
    /// are skipped; control frames are handled by tungstenite.
    fn recv(&mut self, deadline: Instant) -> Result<Value, WsError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WsError::Timeout(self.timeout));
            }
            self.ws
                .get_mut()
                .set_read_timeout(Some(left))
                .map_err(|e| WsError::Ws(e.into()))?;
            let msg = match self.ws.read() {
                Ok(m) => m,
                Err(e) if is_timeout(&e) => return Err(WsError::Timeout(self.timeout)),
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Err(WsError::Closed)
                }
                Err(e) => return Err(e.into()),
            };
            match msg {
                Message::Text(t) => match serde_json::from_str::<Value>(t.as_str()) {
                    Ok(v) => return Ok(v),
                    Err(e) => tracing::debug!("ignoring non-JSON message from Janus: {e}"),
                },
                Message::Close(_) => return Err(WsError::Closed),
                _ => {}
            }
        }
    }

    /// Closes the socket politely (best effort, bounded by the write timeout).
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// The reply itself, or its Janus `error` as an error.
///
/// # Errors
/// `{"janus": "error", "error": {"code", "reason"}}`.
pub fn check_reply(v: Value) -> Result<Value, WsError> {
    if v.get("janus").and_then(Value::as_str) != Some("error") {
        return Ok(v);
    }
    let err = v.get("error");
    Err(WsError::Janus {
        code: err
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64)
            .unwrap_or(0),
        reason: err
            .and_then(|e| e.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    })
}

/// `{"janus": verb}` plus `admin_secret` when non-empty.
pub fn admin_request(verb: &str, admin_secret: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("janus".into(), Value::String(verb.into()));
    if !admin_secret.is_empty() {
        m.insert("admin_secret".into(), Value::String(admin_secret.into()));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_are_random() {
        let a = transaction();
        assert_eq!(a.len(), 12);
        assert_ne!(a, transaction());
    }

    #[test]
    fn admin_request_shape() {
        assert_eq!(
            Value::Object(admin_request("ping", "")),
            serde_json::json!({"janus": "ping"})
        );
        assert_eq!(
            Value::Object(admin_request("list_sessions", "s")),
            serde_json::json!({"janus": "list_sessions", "admin_secret": "s"})
        );
    }

    #[test]
    fn error_replies() {
        let e = check_reply(
            serde_json::json!({"janus": "error", "error": {"code": 403, "reason": "Unauthorized"}}),
        );
        assert!(matches!(e, Err(WsError::Janus { code: 403, .. })));
        assert!(check_reply(serde_json::json!({"janus": "pong"})).is_ok());
    }

    #[test]
    fn connect_refused_is_an_error() {
        // port 1 on loopback: nothing listens there
        let r = JanusWs::connect("ws://127.0.0.1:1", "janus-protocol", Duration::from_secs(2));
        assert!(matches!(r, Err(WsError::Connect { .. })));
        let r = JanusWs::connect("http://x", "janus-protocol", Duration::from_secs(2));
        assert!(matches!(r, Err(WsError::Connect { .. })));
    }
}
