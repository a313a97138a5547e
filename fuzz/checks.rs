//! What each fuzz target checks, beyond "never panics": shared by the fuzz targets
//! (`cargo +nightly fuzz run <target>`) and by `tests/fuzz_corpus.rs`, which runs every
//! saved corpus input through the same function on stable in the normal test command.

use janus_cloud::admin::http;
use janus_cloud::api::json::{self, JsonStyle, RawObject};
use janus_cloud::api::reply::{self, Addr};
use janus_cloud::api::request::Request;
use janus_cloud::backend::envelope::Envelope;
use janus_cloud::backend::link::{backend_error, data_id};
use janus_cloud::config::Config;
use janus_cloud::core::session_verbs;
use janus_cloud::store::record;
use janus_cloud::transport::frame::{Decoder, Incoming};
use janus_cloud::transport::http as client_http;

/// The depth limit the checks use (the proxy's default `limits.max_json_depth`).
const DEPTH: usize = 32;
const MAX_MESSAGE: usize = 4096;

/// WebSocket frames, fed in chunks (the first byte picks the chunk size, as a socket
/// would cut them): the decoder consumes at most what it was given, never returns a
/// message over the limit, and never panics, whatever the declared lengths.
pub fn ws_frame(data: &[u8]) {
    let Some((first, input)) = data.split_first() else {
        return;
    };
    let chunk = (*first as usize % 64) + 1;
    let mut d = Decoder::new(MAX_MESSAGE);
    let mut buf: Vec<u8> = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&buf) {
                Ok((n, msg)) => {
                    assert!(n <= buf.len(), "consumed {n} of {}", buf.len());
                    if let Some(Incoming::Text(m) | Incoming::Binary(m)) = &msg {
                        assert!(m.len() <= MAX_MESSAGE, "message of {} bytes", m.len());
                    }
                    if n == 0 && msg.is_none() {
                        break;
                    }
                    buf.drain(..n);
                }
                // A protocol violation: the connection would be closed.
                Err(_) => return,
            }
        }
    }
}

/// A client's text frame, through the proxy's parse path (depth check, documents, the
/// envelope, the fields verbs read), and every reply shape written around its raw values
/// stays one valid JSON object in every output style.
pub fn client_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if json::too_deep(data, DEPTH) {
        return;
    }
    let addr = Addr {
        session_id: 1,
        handle_id: 2,
        opaque_id: Some("o\"p"),
    };
    for doc in serde_json::Deserializer::from_str(text).into_iter::<RawObject>() {
        let Ok(fields) = doc else { break };
        let Ok(req) = Request::from_fields(fields) else {
            continue;
        };
        let _ = req.str_field("plugin");
        let _ = req.str_field("opaque_id");
        let _ = session_verbs::requested_id(&req);
        for key in ["body", "jsep", "candidate", "candidates"] {
            if let Some(v) = req.get(key) {
                let _ = json::kind(v);
                let _ = json::is_empty(v);
            }
        }
        let frames = [
            reply::plugin_event(
                addr,
                Some(req.transaction),
                "janus.plugin.dummytest",
                req.get("body").map_or("{}", |b| b.get()),
                req.get("jsep").map(|j| j.get()),
            ),
            reply::relay(&req.fields, "event", addr, Some(req.transaction)),
        ];
        for f in frames {
            for style in [JsonStyle::Compact, JsonStyle::Plain, JsonStyle::Indented] {
                let out = style.apply(f.clone());
                let out = std::str::from_utf8(&out).expect("replies are UTF-8");
                let o = RawObject::parse(out).expect("replies are one JSON object");
                assert_eq!(o.get("sender").map(|v| v.get()), Some("2"));
            }
        }
    }
    // Re-indenting any valid document changes nothing but whitespace between tokens.
    if serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok() {
        for style in [JsonStyle::Plain, JsonStyle::Indented] {
            let out = style.apply(text.as_bytes().to_vec());
            assert_eq!(tokens(&out), tokens(text.as_bytes()));
            let out = std::str::from_utf8(&out).expect("re-indented JSON is UTF-8");
            serde_json::from_str::<&serde_json::value::RawValue>(out)
                .expect("re-indented JSON parses");
        }
    }
}

/// A JSON text without the whitespace between its tokens (strings kept as they are).
fn tokens(json: &[u8]) -> Vec<u8> {
    let (mut out, mut in_str, mut escaped) = (Vec::with_capacity(json.len()), false, false);
    for &b in json {
        if in_str {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if !b.is_ascii_whitespace() {
            in_str = b == b'"';
            out.push(b);
        }
    }
    out
}

/// A backend message: the envelope, the reply readers, and the relay that rewrites ids
/// (the client must see our ids, whatever the backend put in).
pub fn backend_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(env) = Envelope::parse(text, DEPTH) else {
        return;
    };
    let _ = data_id(&env.msg);
    let e = backend_error(&env.msg);
    assert!(!e.reason.is_empty());
    let addr = Addr {
        session_id: 11,
        handle_id: 22,
        opaque_id: None,
    };
    let out = reply::relay(&env.msg, &env.janus, addr, Some("\"t\""));
    // Values are relayed byte for byte (numbers serde_json would not hold in an f64
    // included), so the frame is checked as raw JSON.
    let out = std::str::from_utf8(&out).expect("relayed frames are UTF-8");
    let o = RawObject::parse(out).expect("relayed frames are one JSON object");
    let field = |k| o.get(k).map(|v| v.get());
    assert_eq!(field("session_id"), Some("11"));
    assert_eq!(field("sender"), Some("22"));
    assert_eq!(field("transaction"), Some("\"t\""));
    for k in ["session_id", "sender", "transaction", "janus"] {
        assert_eq!(
            o.fields.iter().filter(|(n, _)| n == k).count(),
            1,
            "{k} twice"
        );
    }
}

/// An admin API body: the first byte picks the content type, the rest is the body; the
/// parameters go through the server-record parser and, when valid, into a record.
pub fn admin_body(data: &[u8]) {
    let Some((kind, body)) = data.split_first() else {
        return;
    };
    let content_type = match kind % 3 {
        0 => Some("application/json"),
        1 => Some("application/x-www-form-urlencoded"),
        _ => None,
    };
    let Ok(params) = http::params(Some("a=1&name=q"), content_type, body) else {
        return;
    };
    if let Ok(update) = record::parse_update(&params) {
        let rec = record::apply(None, update, 1.7e9);
        assert!(record::valid_name(&rec.name));
    }
}

/// A configuration file: either refused with an error or valid.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_toml(text) {
        assert!(c.validate().is_ok());
        assert!(c.shard_count() >= 1);
    }
}

/// HTTP requests to the client listener: the head parser and the chunked-body decoder
/// consume at most what they were given, never accept a body over the limit, route any
/// path, and never echo a header value that could split a response.
pub fn http_request(data: &[u8]) {
    let Ok(Some((n, head))) = client_http::parse_head(data, MAX_MESSAGE) else {
        return;
    };
    assert!(n <= data.len() && n <= client_http::MAX_HEAD);
    assert!(head.path.starts_with('/'));
    assert!(head.content_length <= MAX_MESSAGE);
    let _ = client_http::route(&head);
    let cors = client_http::Cors {
        allow_origin: None,
        enforce: false,
    };
    for (_, v) in cors.headers(&head) {
        assert!(!v.contains('\r') && !v.contains('\n'), "{v:?}");
    }
    if head.chunked {
        if let Ok(Some((used, body))) = client_http::decode_chunked(&data[n..], MAX_MESSAGE) {
            assert!(used <= data.len() - n);
            assert!(body.len() <= MAX_MESSAGE);
        }
    }
}
