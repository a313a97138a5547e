//! `fake-backend`: a BENCHMARK INSTRUMENT ONLY. A minimal Janus-API WebSocket responder that
//! answers what janus-proxy sends a backend (`info`, `create`, `attach`, `keepalive`,
//! `message` like EchoTest: ack + event, `trickle`, `detach`, `destroy`, `hangup`, `ping`)
//! at almost no cost, so a benchmark measures the proxy's own ceiling rather than Janus's.
//!
//! It keeps no state, checks no ids and never fails a request: it is not a Janus and must not
//! be used to test behaviour (the tests use real Janus servers). Replies are compact JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::FakeBackendArgs;

/// The name `info` reports, so nobody mistakes it for a Janus.
pub const NAME: &str = "janus-loadtest fake-backend (BENCHMARK INSTRUMENT ONLY)";

/// Hands out ids below 2^53 (JavaScript-safe, like Janus).
pub struct Ids(AtomicU64);

impl Ids {
    pub fn new() -> Ids {
        Ids(AtomicU64::new(fastrand::u64(1..1 << 40)))
    }

    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) & ((1 << 53) - 1)
    }
}

impl Default for Ids {
    fn default() -> Self {
        Ids::new()
    }
}

/// The frames that answer one request, in order.
pub fn respond(req: &Value, ids: &Ids, session_timeout: u64) -> Vec<Value> {
    let verb = req.get("janus").and_then(Value::as_str).unwrap_or("");
    let Some(tx) = req.get("transaction").cloned() else {
        return vec![
            json!({"janus": "error", "error": {"code": 456, "reason": "Missing mandatory element (transaction)"}}),
        ];
    };
    let sid = req.get("session_id").cloned().unwrap_or(Value::Null);
    let hid = req.get("handle_id").cloned().unwrap_or(Value::Null);
    match verb {
        "info" => vec![json!({
            "janus": "server_info", "transaction": tx, "name": NAME,
            "version": 1102, "version_string": "1.1.2", "session-timeout": session_timeout,
            "plugins": {"janus.plugin.echotest": {"name": "fake echotest", "version": 7, "version_string": "0.0.7"}},
        })],
        "ping" => vec![json!({"janus": "pong", "transaction": tx})],
        "create" => {
            vec![json!({"janus": "success", "transaction": tx, "data": {"id": ids.next()}})]
        }
        "attach" => vec![
            json!({"janus": "success", "session_id": sid, "transaction": tx, "data": {"id": ids.next()}}),
        ],
        "keepalive" | "trickle" => {
            vec![json!({"janus": "ack", "session_id": sid, "transaction": tx})]
        }
        "destroy" | "hangup" | "claim" => {
            vec![json!({"janus": "success", "session_id": sid, "transaction": tx})]
        }
        "detach" => vec![
            json!({"janus": "success", "session_id": sid, "transaction": tx}),
            json!({"janus": "detached", "session_id": sid, "sender": hid}),
        ],
        "message" => vec![
            json!({"janus": "ack", "session_id": sid, "transaction": tx, "hint": "I'm taking my time!"}),
            json!({
                "janus": "event", "session_id": sid, "transaction": tx, "sender": hid,
                "plugindata": {"plugin": "janus.plugin.echotest", "data": {"echotest": "event", "result": "ok"}},
            }),
        ],
        other => vec![json!({
            "janus": "error", "session_id": sid, "transaction": tx,
            "error": {"code": 453, "reason": format!("Unknown request '{other}'")},
        })],
    }
}

/// Runs the responder until the process is killed.
///
/// # Errors
/// When the listen address cannot be bound.
pub async fn serve(args: FakeBackendArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "{NAME}: listening on ws://{}",
        listener.local_addr().context("local address")?
    );
    let ids = Arc::new(Ids::new());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // e.g. out of file descriptors: wait instead of spinning
                eprintln!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ids = ids.clone();
        let timeout = args.session_timeout;
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &ids, timeout).await {
                eprintln!("fake-backend connection ended: {e}");
            }
        });
    }
}

/// Handshake callback: echo `janus-protocol` when the client offers it, as Janus does.
// the error type is fixed by tungstenite's callback trait
#[allow(clippy::result_large_err)]
fn echo_protocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered = req
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if offered.split(',').any(|p| p.trim() == "janus-protocol") {
        resp.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
    }
    Ok(resp)
}

async fn connection(stream: TcpStream, ids: &Ids, session_timeout: u64) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        echo_protocol,
        Some(crate::client::ws_config()),
    )
    .await?;
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let replies = match serde_json::from_str::<Value>(text.as_str()) {
            Ok(req) => respond(&req, ids, session_timeout),
            Err(_) => {
                vec![json!({"janus": "error", "error": {"code": 454, "reason": "JSON error"}})]
            }
        };
        for r in replies {
            ws.feed(Message::text(r.to_string())).await?;
        }
        ws.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_advertises_a_session_timeout() {
        let ids = Ids::new();
        let r = respond(&json!({"janus": "info", "transaction": "t"}), &ids, 42);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["janus"], "server_info");
        assert_eq!(r[0]["session-timeout"], 42);
        assert_eq!(r[0]["transaction"], "t");
    }

    #[test]
    fn message_is_ack_then_event_from_the_handle() {
        let ids = Ids::new();
        let req = json!({"janus": "message", "transaction": "m", "session_id": 5, "handle_id": 6, "body": {"audio": true}});
        let r = respond(&req, &ids, 60);
        assert_eq!(r[0]["janus"], "ack");
        assert_eq!(r[1]["janus"], "event");
        assert_eq!(r[1]["sender"], 6);
        assert_eq!(r[1]["plugindata"]["data"]["result"], "ok");
    }

    #[test]
    fn ids_and_the_other_verbs() {
        let ids = Ids::new();
        let a = respond(&json!({"janus": "create", "transaction": "1"}), &ids, 60);
        let b = respond(&json!({"janus": "create", "transaction": "2"}), &ids, 60);
        assert_ne!(a[0]["data"]["id"], b[0]["data"]["id"]);
        assert!(a[0]["data"]["id"].as_u64().unwrap() < 1 << 53);
        let d = respond(
            &json!({"janus": "detach", "transaction": "3", "session_id": 1, "handle_id": 2}),
            &ids,
            60,
        );
        assert_eq!((d.len(), d[1]["janus"].as_str()), (2, Some("detached")));
        let k = respond(
            &json!({"janus": "keepalive", "transaction": "4", "session_id": 1}),
            &ids,
            60,
        );
        assert_eq!(k[0]["janus"], "ack");
        let p = respond(&json!({"janus": "ping", "transaction": "5"}), &ids, 60);
        assert_eq!(p[0]["janus"], "pong");
        let u = respond(&json!({"janus": "bogus", "transaction": "6"}), &ids, 60);
        assert_eq!(u[0]["error"]["code"], 453);
        let m = respond(&json!({"janus": "create"}), &ids, 60);
        assert_eq!(m[0]["error"]["code"], 456);
    }
}
