//! Core Janus API verbs, error replies and frame handling of janus-proxy
//! (spec 01-core-api.md; reply shapes from the Janus 1.1.2 transcripts).

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;

fn proxy() -> Proxy {
    Proxy::start(ProxyConfig::without_backends())
}

/// A proxy with every client transport (the tests in `over_transports!` run on each).
fn proxy_over() -> Proxy {
    Proxy::start(ProxyConfig::without_backends().all_transports())
}

#[test]
fn handshake_echoes_janus_protocol() {
    let p = proxy();
    let c = p.client();
    assert_eq!(c.subprotocol().as_deref(), Some("janus-protocol"));
}

#[test]
fn handshake_without_subprotocol_is_accepted() {
    let p = proxy();
    let mut c = Client::try_connect(&p.url(), None).expect("upgrade without subprotocol");
    let r = c.request(json!({"janus": "ping"}));
    assert_eq!(r["janus"], "pong", "{r}");
}

over_transports! {
fn info_returns_server_info(t: Transport) {
    let p = Proxy::start(
        ProxyConfig::without_backends()
            .all_transports()
            .set("general", "session_timeout", "45"),
    );
    let mut c = p.client_over(t);
    let r = c.request(json!({"janus": "info", "transaction": "info-1"}));
    assert_eq!(r["janus"], "server_info", "{r}");
    assert_eq!(r["transaction"], "info-1");
    assert_eq!(r["name"], "Janus-Cloud Proxy");
    assert_eq!(r["session-timeout"], 45, "{r}");
    assert!(
        r.get("session_id").is_none(),
        "info reply with session_id: {r}"
    );
    let plugins = r["plugins"]
        .as_object()
        .unwrap_or_else(|| panic!("plugins is not a map: {r}"));
    assert!(plugins.contains_key("janus.plugin.echotest"), "{r}");
    assert!(plugins.contains_key("janus.plugin.dummytest"), "{r}");
    assert_eq!(plugins["janus.plugin.echotest"]["version"], 7, "{r}");
    assert_eq!(
        plugins["janus.plugin.echotest"]["version_string"], "0.0.7",
        "{r}"
    );
    assert_eq!(
        plugins["janus.plugin.echotest"]["name"], "JANUS EchoTest plugin",
        "{r}"
    );
    assert_eq!(plugins["janus.plugin.dummytest"]["version"], 1, "{r}");
    assert_eq!(
        plugins["janus.plugin.dummytest"]["name"], "JANUS DummyTest plugin",
        "{r}"
    );
}
}

over_transports! {
fn ping_pong(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let r = c.request(json!({"janus": "ping", "transaction": "pp"}));
    assert_eq!(r, json!({"janus": "pong", "transaction": "pp"}));
}
}

over_transports! {
fn create_keepalive_destroy(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);

    let r = c.request(json!({"janus": "create", "transaction": "c1"}));
    assert_eq!(r["janus"], "success", "{r}");
    assert_eq!(r["transaction"], "c1");
    assert!(
        r.get("session_id").is_none(),
        "create reply must not carry a top-level session_id: {r}"
    );
    assert_eq!(key_set(&r), keys(&["janus", "transaction", "data"]), "{r}");
    let sid = assert_id(&r["data"]["id"], "session id");

    let r = c.request(json!({"janus": "keepalive", "session_id": sid, "transaction": "k1"}));
    assert_eq!(
        r,
        json!({"janus": "ack", "session_id": sid, "transaction": "k1"})
    );

    let r = c.request(json!({"janus": "destroy", "session_id": sid, "transaction": "d1"}));
    assert_eq!(
        r,
        json!({"janus": "success", "session_id": sid, "transaction": "d1"})
    );

    let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_error(&r, 458, Some(&format!("No such session {sid}")));
    assert_eq!(r["session_id"], sid, "error must echo the session_id: {r}");

    let r = c.request(json!({"janus": "destroy", "session_id": sid}));
    assert_error(&r, 458, Some(&format!("No such session {sid}")));
}
}

over_transports! {
fn session_ids_are_distinct_and_js_safe(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let sid = c.create_session();
        assert!(
            (1..MAX_ID).contains(&sid),
            "session id {sid} outside 1..2^53"
        );
        assert!(ids.insert(sid), "session id {sid} handed out twice");
    }
}
}

over_transports! {
fn create_with_explicit_id_and_conflict(t: Transport) {
    let p = proxy_over();
    let mut a = p.client_over(t);
    let wanted: u64 = 1_000_000 + fastrand::u64(..1_000_000_000);
    let r = a.request(json!({"janus": "create", "id": wanted}));
    assert_eq!(r["janus"], "success", "{r}");
    assert_eq!(r["data"]["id"], wanted, "create with id must use it: {r}");

    // same connection
    let r = a.request(json!({"janus": "create", "id": wanted, "transaction": "dup"}));
    assert_error(&r, 468, Some("Session ID already in use"));
    assert_eq!(r["transaction"], "dup");
    // another connection
    let mut b = p.client_over(t);
    let r = b.request(json!({"janus": "create", "id": wanted}));
    assert_error(&r, 468, Some("Session ID already in use"));
    // the session is still there and usable
    let r = a.request(json!({"janus": "keepalive", "session_id": wanted}));
    assert_eq!(r["janus"], "ack", "{r}");
}
}

over_transports! {
fn invalid_json_gives_454_and_keeps_the_socket(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    c.send_raw("{not json");
    let r = c.recv(T);
    assert_error(&r, 454, None);
    assert!(
        r.get("transaction").is_none(),
        "454 must not carry a transaction: {r}"
    );
    assert!(
        r.get("session_id").is_none(),
        "454 must not carry a session_id: {r}"
    );
    assert_eq!(key_set(&r), keys(&["janus", "error"]), "{r}");
    // the connection stays usable
    let r = c.request(json!({"janus": "ping"}));
    assert_eq!(r["janus"], "pong", "{r}");
    // a JSON value that is not an object is not a request either
    c.send_raw("[1,2,3]");
    let r = c.recv(T);
    assert_eq!(r["janus"], "error", "{r}");
    // real Janus 1.1.2 answers 456 (missing transaction) here; 454/455 are fine too
    assert!(
        matches!(r["error"]["code"].as_u64(), Some(454..=456)),
        "{r}"
    );
    assert!(c.is_alive());
}
}

over_transports! {
fn missing_transaction_gives_456(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    c.send_raw(r#"{"janus": "info"}"#);
    let r = c.recv(T);
    assert_error(&r, 456, Some("Missing mandatory element (transaction)"));
    assert!(r.get("transaction").is_none(), "{r}");
    assert!(r.get("session_id").is_none(), "{r}");
    assert!(c.is_alive());
}
}

over_transports! {
fn missing_janus_gives_456(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    c.send(&json!({"transaction": "nojanus"}));
    let r = c.recv(T);
    assert_error(&r, 456, Some("Missing mandatory element (janus)"));
    // real Janus 1.1.2 answers this one without the transaction; echoing it is fine too
    assert!(
        r.get("transaction").is_none() || r["transaction"] == "nojanus",
        "{r}"
    );
    assert!(c.is_alive());
}
}

over_transports! {
fn unknown_verb_gives_453(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    // At the root path real Janus 1.1.2 answers 457 "Unhandled request 'frobnicate' at this
    // path" (it only knows info/ping/create there); the spec's 453 is accepted as well.
    let r = c.request(json!({"janus": "frobnicate", "transaction": "fr"}));
    assert_eq!(r["janus"], "error", "{r}");
    match r["error"]["code"].as_u64() {
        Some(453) => assert_eq!(r["error"]["reason"], "Unknown request 'frobnicate'", "{r}"),
        Some(457) => assert_eq!(
            r["error"]["reason"], "Unhandled request 'frobnicate' at this path",
            "{r}"
        ),
        _ => panic!("expected 453 or 457: {r}"),
    }
    assert_eq!(r["transaction"], "fr");
    assert!(r.get("session_id").is_none(), "{r}");

    // with a session: the session_id is echoed
    let sid = c.create_session();
    let r = c.request(json!({"janus": "frobnicate", "session_id": sid}));
    assert_error(&r, 453, Some("Unknown request 'frobnicate'"));
    assert_eq!(r["session_id"], sid, "{r}");
}
}

over_transports! {
fn session_verbs_without_session_id_give_457(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    for verb in ["keepalive", "attach", "destroy", "claim"] {
        let mut req = json!({"janus": verb});
        if verb == "attach" {
            req["plugin"] = json!("janus.plugin.echotest");
        }
        let r = c.request(req);
        assert_error(
            &r,
            457,
            Some(&format!("Unhandled request '{verb}' at this path")),
        );
        assert!(r.get("session_id").is_none(), "{r}");
    }
}
}

over_transports! {
fn handle_verbs_without_handle_id_give_457(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let requests = [
        json!({"janus": "message", "session_id": sid, "body": {"x": 1}}),
        json!({"janus": "trickle", "session_id": sid, "candidate": {"completed": true}}),
        json!({"janus": "detach", "session_id": sid}),
        json!({"janus": "hangup", "session_id": sid}),
    ];
    for req in requests {
        let verb = req["janus"].as_str().unwrap().to_string();
        let r = c.request(req);
        assert_error(
            &r,
            457,
            Some(&format!("Unhandled request '{verb}' at this path")),
        );
        assert_eq!(r["session_id"], sid, "{r}");
    }
    // handle verbs at the root path (no session either)
    let r = c.request(json!({"janus": "hangup"}));
    assert_error(&r, 457, Some("Unhandled request 'hangup' at this path"));
}
}

over_transports! {
fn unknown_session_gives_458(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let r = c.request(json!({"janus": "keepalive", "session_id": 42, "transaction": "ks"}));
    assert_error(&r, 458, Some("No such session 42"));
    assert_eq!(r["session_id"], 42);
    assert_eq!(r["transaction"], "ks");
    let r =
        c.request(json!({"janus": "attach", "session_id": 42, "plugin": "janus.plugin.dummytest"}));
    assert_error(&r, 458, Some("No such session 42"));
    let r = c.request(json!({"janus": "message", "session_id": 42, "handle_id": 7, "body": {}}));
    assert_error(&r, 458, Some("No such session 42"));
}
}

over_transports! {
fn unknown_handle_gives_459(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let r = c.request(
        json!({"janus": "message", "session_id": sid, "handle_id": 1, "body": {"audio": true}}),
    );
    assert_error(&r, 459, Some(&format!("No such handle 1 in session {sid}")));
    assert_eq!(r["session_id"], sid, "{r}");
    let r = c.request(json!({"janus": "detach", "session_id": sid, "handle_id": 1}));
    assert_error(&r, 459, Some(&format!("No such handle 1 in session {sid}")));
    let r = c.request(json!({"janus": "trickle", "session_id": sid, "handle_id": 1, "candidate": {"completed": true}}));
    assert_error(&r, 459, Some(&format!("No such handle 1 in session {sid}")));
}
}

over_transports! {
fn attach_errors(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let r = c.request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.nope"}));
    assert_error(&r, 460, Some("No such plugin 'janus.plugin.nope'"));
    assert_eq!(r["session_id"], sid, "{r}");
    let r = c.request(json!({"janus": "attach", "session_id": sid}));
    assert_error(&r, 456, Some("Missing mandatory element (plugin)"));
    assert_eq!(r["session_id"], sid, "{r}");
}
}

over_transports! {
fn message_body_errors(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    let r = c.request(json!({"janus": "message", "session_id": sid, "handle_id": hid}));
    assert_error(&r, 456, Some("Missing mandatory element (body)"));
    assert_eq!(r["session_id"], sid, "{r}");
    for bad in [json!(5), json!("text"), json!([1, 2])] {
        let r = c
            .request(json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": bad}));
        assert_error(
            &r,
            467,
            Some("Invalid element type (body should be an object)"),
        );
    }
}
}

over_transports! {
fn trickle_errors(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    let r = c.request(json!({"janus": "trickle", "session_id": sid, "handle_id": hid}));
    assert_error(
        &r,
        456,
        Some("Missing mandatory element (candidate|candidates)"),
    );
    assert_eq!(r["session_id"], sid, "{r}");
    let cand = json!({"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    let r = c.request(
        json!({"janus": "trickle", "session_id": sid, "handle_id": hid,
        "candidate": cand.clone(), "candidates": [cand.clone()]}),
    );
    assert_error(&r, 454, Some("Can't have both candidate and candidates"));
    // each alone is fine on dummytest
    let r = c.request(
        json!({"janus": "trickle", "session_id": sid, "handle_id": hid, "candidate": cand.clone()}),
    );
    assert_eq!(
        r,
        json!({"janus": "ack", "session_id": sid, "transaction": r["transaction"].clone()})
    );
    let r = c.request(
        json!({"janus": "trickle", "session_id": sid, "handle_id": hid, "candidates": [cand]}),
    );
    assert_eq!(r["janus"], "ack", "{r}");
}
}

over_transports! {
fn api_secret_is_enforced(t: Transport) {
    let p =
        Proxy::start(
        ProxyConfig::without_backends()
            .all_transports()
            .set_str("general", "api_secret", "s3cr3t"),
    );
    let mut c = p.client_over(t);
    // exempt verbs
    let r = c.request(json!({"janus": "ping"}));
    assert_eq!(r["janus"], "pong", "{r}");
    let r = c.request(json!({"janus": "info"}));
    assert_eq!(r["janus"], "server_info", "{r}");
    // missing / wrong secret
    let r = c.request(json!({"janus": "create", "transaction": "nosecret"}));
    assert_error(
        &r,
        403,
        Some("Unauthorized request (wrong or missing secret/token)"),
    );
    assert_eq!(r["transaction"], "nosecret");
    let r = c.request(json!({"janus": "create", "apisecret": "wrong"}));
    assert_error(
        &r,
        403,
        Some("Unauthorized request (wrong or missing secret/token)"),
    );
    // right secret
    let r = c.request(json!({"janus": "create", "apisecret": "s3cr3t"}));
    assert_eq!(r["janus"], "success", "{r}");
    let sid = r["data"]["id"].as_u64().unwrap();
    let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_error(
        &r,
        403,
        Some("Unauthorized request (wrong or missing secret/token)"),
    );
    assert_eq!(r["session_id"], sid, "{r}");
    let r = c.request(json!({"janus": "keepalive", "session_id": sid, "apisecret": "s3cr3t"}));
    assert_eq!(r["janus"], "ack", "{r}");
    let r = c.request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.dummytest", "apisecret": "s3cr3t"}));
    assert_eq!(r["janus"], "success", "{r}");
    let hid = r["data"]["id"].as_u64().unwrap();
    let r = c.request(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"x": 1}}),
    );
    assert_error(&r, 403, None);
    let r = c.request(json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"x": 1}, "apisecret": "s3cr3t"}));
    assert_eq!(r["janus"], "success", "{r}");
    let r = c.request(json!({"janus": "destroy", "session_id": sid, "apisecret": "s3cr3t"}));
    assert_eq!(r["janus"], "success", "{r}");
}
}

#[test]
fn max_sessions_per_connection() {
    let p = Proxy::start(ProxyConfig::without_backends().set(
        "ws_transport",
        "max_sessions_per_connection",
        "1",
    ));
    let mut a = p.client();
    let sid = a.create_session();
    let r = a.request(json!({"janus": "create", "transaction": "second"}));
    assert_error(&r, 472, None);
    assert_eq!(r["transaction"], "second");
    // the first session still works; another connection can still create one
    let r = a.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_eq!(r["janus"], "ack", "{r}");
    let mut b = p.client();
    b.create_session();
    // after destroying its session the first connection may create a new one
    let r = a.request(json!({"janus": "destroy", "session_id": sid}));
    assert_eq!(r["janus"], "success", "{r}");
    a.create_session();
}

#[test]
fn oversized_frame_gives_450_and_keeps_the_socket() {
    let p = Proxy::start(ProxyConfig::without_backends().set(
        "ws_transport",
        "max_message_size",
        "1024",
    ));
    let mut c = p.client();
    let big = json!({"janus": "ping", "transaction": "big", "padding": "x".repeat(4096)});
    c.send(&big);
    let r = c.recv(T);
    assert_error(&r, 450, None);
    let reason = r["error"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Message too large"),
        "unexpected reason: {r}"
    );
    // the connection stays usable
    let r = c.request(json!({"janus": "ping", "transaction": "after"}));
    assert_eq!(r["janus"], "pong", "{r}");
    // a frame just below the limit is processed normally
    let ok = json!({"janus": "ping", "transaction": "small", "padding": "y".repeat(900)});
    let r = c.request(ok);
    assert_eq!(r["janus"], "pong", "{r}");
}

#[test]
fn concatenated_requests_in_one_frame() {
    let p = proxy();
    let mut c = p.client();
    c.send_raw(r#"{"janus":"ping","transaction":"a"}{"janus":"ping","transaction":"b"}"#);
    let r1 = c.recv(T);
    let r2 = c.recv(T);
    assert_eq!(r1, json!({"janus": "pong", "transaction": "a"}));
    assert_eq!(r2, json!({"janus": "pong", "transaction": "b"}));

    // with whitespace in between, three requests, processed in order (create before keepalive)
    c.send_raw("{\"janus\":\"create\",\"transaction\":\"c\",\"id\":987654321}\n {\"janus\":\"keepalive\",\"session_id\":987654321,\"transaction\":\"k\"}  {\"janus\":\"ping\",\"transaction\":\"p\"}");
    let c_reply = c.recv_event(|v| v["transaction"] == "c", T);
    let k_reply = c.recv_event(|v| v["transaction"] == "k", T);
    let p_reply = c.recv_event(|v| v["transaction"] == "p", T);
    assert_eq!(c_reply["janus"], "success", "{c_reply}");
    assert_eq!(
        k_reply,
        json!({"janus": "ack", "session_id": 987654321u64, "transaction": "k"})
    );
    assert_eq!(p_reply["janus"], "pong", "{p_reply}");
}

#[test]
fn replies_keep_the_request_order() {
    // Spec 01 §1 (Rust): frames of one connection are processed in arrival order, so the
    // replies to core requests come back in request order, whether the requests share one
    // frame or not (real Janus handles core requests on one thread, in order).
    let p = proxy();
    let mut c = p.client();
    for i in 0..20u64 {
        let id = 500_000_000 + i;
        let frame = format!(
            "{{\"janus\":\"create\",\"transaction\":\"c{i}\",\"id\":{id}}}{{\"janus\":\"keepalive\",\"session_id\":{id},\"transaction\":\"k{i}\"}}{{\"janus\":\"ping\",\"transaction\":\"p{i}\"}}"
        );
        c.send_raw(&frame);
        let got: Vec<String> = (0..3).map(|_| c.recv(T)).map(|v| v.to_string()).collect();
        let order: Vec<String> = got
            .iter()
            .map(|t| {
                serde_json::from_str::<Value>(t).unwrap()["transaction"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string()
            })
            .collect();
        assert_eq!(
            order,
            vec![format!("c{i}"), format!("k{i}"), format!("p{i}")],
            "one frame, round {i}: replies {got:?}"
        );
    }
    for i in 0..20u64 {
        let id = 600_000_000 + i;
        c.send(&json!({"janus": "create", "transaction": format!("c{i}"), "id": id}));
        c.send(&json!({"janus": "keepalive", "session_id": id, "transaction": format!("k{i}")}));
        c.send(&json!({"janus": "ping", "transaction": format!("p{i}")}));
        let got: Vec<Value> = (0..3).map(|_| c.recv(T)).collect();
        let order: Vec<&str> = got
            .iter()
            .map(|v| v["transaction"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            order,
            vec![format!("c{i}"), format!("k{i}"), format!("p{i}")],
            "separate frames, round {i}: replies {got:?}"
        );
    }
}

/// Whitespace outside string literals of a JSON text.
fn structural_whitespace(text: &str) -> Vec<char> {
    let mut out = Vec::new();
    let mut in_str = false;
    let mut esc = false;
    for ch in text.chars() {
        if in_str {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_str = false;
            }
        } else if ch == '"' {
            in_str = true;
        } else if ch.is_whitespace() {
            out.push(ch);
        }
    }
    out
}

#[test]
fn json_compact_format() {
    let p =
        Proxy::start(ProxyConfig::without_backends().set_str("ws_transport", "json", "compact"));
    let mut c = p.client();
    let f = c.request_frame(json!({"janus": "ping", "transaction": "cp"}));
    assert_eq!(f.text, r#"{"janus":"pong","transaction":"cp"}"#);
    let f = c.request_frame(json!({"janus": "info"}));
    assert!(
        structural_whitespace(&f.text).is_empty(),
        "compact frame has whitespace: {:?}",
        f.text
    );
    let f = c.request_frame(json!({"janus": "create"}));
    assert!(
        structural_whitespace(&f.text).is_empty(),
        "compact frame has whitespace: {:?}",
        f.text
    );
}

#[test]
fn json_indented_format() {
    let p = proxy(); // json = "indented"
    let mut c = p.client();
    let f = c.request_frame(json!({"janus": "ping", "transaction": "ip"}));
    assert_eq!(
        f.text,
        "{\n   \"janus\": \"pong\",\n   \"transaction\": \"ip\"\n}"
    );
    let f = c.request_frame(json!({"janus": "create", "transaction": "ic"}));
    let sid = f.json["data"]["id"].as_u64().unwrap();
    assert_eq!(
        f.text,
        format!("{{\n   \"janus\": \"success\",\n   \"transaction\": \"ic\",\n   \"data\": {{\n      \"id\": {sid}\n   }}\n}}")
    );
}

#[test]
fn json_plain_format() {
    let p = Proxy::start(ProxyConfig::without_backends().set_str("ws_transport", "json", "plain"));
    let mut c = p.client();
    let f = c.request_frame(json!({"janus": "ping", "transaction": "pl"}));
    assert!(
        !f.text.contains('\n'),
        "plain frame has newlines: {:?}",
        f.text
    );
    assert_eq!(f.text, r#"{"janus": "pong", "transaction": "pl"}"#);
}

over_transports! {
fn non_string_transaction_gives_467(t: Transport) {
    // Spec 01 §1: missing/wrong-typed janus or transaction are answered like Janus, which
    // replies 467 "Invalid element type (transaction should be a string)" without transaction.
    let p = proxy_over();
    let mut c = p.client_over(t);
    c.send(&json!({"janus": "ping", "transaction": 1234}));
    let r = c.recv(T);
    assert_error(
        &r,
        467,
        Some("Invalid element type (transaction should be a string)"),
    );
    assert!(r.get("transaction").is_none(), "{r}");
    assert!(c.is_alive());
}
}

over_transports! {
fn dummytest_sync_and_async(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    let r = c.request(json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"x": 1}, "transaction": "sy"}));
    assert_eq!(
        r,
        json!({"janus": "success", "session_id": sid, "transaction": "sy", "sender": hid,
               "plugindata": {"plugin": "janus.plugin.dummytest", "data": {"dummytest": "successful"}}})
    );
    let (ack, ev) = c.request_async(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"async": true}, "transaction": "as"}),
        T,
    );
    assert_eq!(ack["janus"], "ack", "{ack}");
    assert_eq!(ack["session_id"], sid, "{ack}");
    assert_eq!(ev["janus"], "event", "{ev}");
    assert_eq!(ev["session_id"], sid, "{ev}");
    assert_eq!(ev["sender"], hid, "{ev}");
    assert_eq!(ev["transaction"], "as", "{ev}");
    assert_eq!(
        ev["plugindata"],
        json!({"plugin": "janus.plugin.dummytest", "data": {"dummytest": "successful"}})
    );
    // async with jsep: echoed back
    let jsep = json!({"type": "offer", "sdp": "v=0\r\n"});
    let (_ack, ev) = c.request_async(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"async": 1}, "jsep": jsep.clone()}),
        T,
    );
    assert_eq!(ev["jsep"], jsep, "{ev}");
    // hangup, trickle, detach
    let r = c.request(json!({"janus": "hangup", "session_id": sid, "handle_id": hid}));
    assert_eq!(r["janus"], "success", "{r}");
    let r = c.request(json!({"janus": "trickle", "session_id": sid, "handle_id": hid, "candidate": {"completed": true}}));
    assert_eq!(r["janus"], "ack", "{r}");
    let r = c.request(
        json!({"janus": "detach", "session_id": sid, "handle_id": hid, "transaction": "dt"}),
    );
    assert_eq!(
        r,
        json!({"janus": "success", "session_id": sid, "transaction": "dt"})
    );
    let d = c.recv_event(|v| v["janus"] == "detached", T);
    assert_eq!(
        d,
        json!({"janus": "detached", "session_id": sid, "sender": hid})
    );
    let r = c.request(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"x": 1}}),
    );
    assert_error(
        &r,
        459,
        Some(&format!("No such handle {hid} in session {sid}")),
    );
}
}

over_transports! {
fn handle_ids_are_distinct_and_js_safe(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10 {
        let r = c.request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.dummytest", "transaction": "at"}));
        assert_eq!(r["janus"], "success", "{r}");
        assert!(
            r.get("sender").is_none(),
            "attach reply must not carry sender: {r}"
        );
        assert_eq!(r["session_id"], sid);
        assert_eq!(r["transaction"], "at");
        let hid = assert_id(&r["data"]["id"], "handle id");
        assert!(ids.insert(hid), "handle id {hid} handed out twice");
    }
}
}

over_transports! {
fn destroy_with_handles_then_session_is_gone(t: Transport) {
    let p = proxy_over();
    let mut c = p.client_over(t);
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    let r = c.request(json!({"janus": "destroy", "session_id": sid}));
    assert_eq!(r["janus"], "success", "{r}");
    let r = c.request(json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {}}));
    assert_error(&r, 458, Some(&format!("No such session {sid}")));
}
}

#[test]
fn closing_socket_destroys_its_sessions() {
    let p = proxy(); // reclaim_session_timeout = 0
    let mut a = p.client();
    let sid = a.create_session();
    a.close();
    let mut b = p.client();
    // poll (with a deadline) until the proxy has processed the close
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r: Value = b.request(json!({"janus": "keepalive", "session_id": sid}));
        if r["janus"] == "error" {
            assert_error(&r, 458, Some(&format!("No such session {sid}")));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session {sid} survived its socket: {r}"
        );
        poll_pause();
    }
}

/// Read one raw WebSocket frame header+payload from a plain stream (server frames are not
/// masked). Returns (opcode, payload) or None on EOF/timeout.
fn read_raw_frame(s: &mut std::net::TcpStream, within: Duration) -> Option<(u8, Vec<u8>)> {
    use std::io::Read;
    s.set_read_timeout(Some(within)).ok();
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let op = h[0] & 0x0f;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).ok()?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    Some((op, payload))
}

#[test]
fn ws_ping_sent_when_idle_and_silent_peer_dropped() {
    // pingpong_trigger = 1 s of idleness -> WS PING; no PONG within pingpong_timeout = 1 s
    // -> the proxy closes the connection (checked once per second).
    let p = Proxy::start(
        ProxyConfig::without_backends()
            .set("ws_transport", "pingpong_trigger", "1")
            .set("ws_transport", "pingpong_timeout", "1"),
    );
    let mut c = p.client();
    // talk raw TCP from now on, so that no automatic PONG is sent
    let mut s = c.ws().get_ref().try_clone().unwrap();
    let start = std::time::Instant::now();
    let (op, _) =
        read_raw_frame(&mut s, Duration::from_secs(5)).expect("no WS ping from an idle connection");
    assert_eq!(op, 0x9, "expected a PING frame, got opcode {op}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "ping after only {:?}",
        start.elapsed()
    );
    // do not answer: the proxy must close (close frame and/or EOF) within a few seconds
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    loop {
        match read_raw_frame(&mut s, Duration::from_secs(6)) {
            None => break,           // EOF / reset
            Some((0x8, _)) => break, // close frame
            Some((0x9, _)) => {}     // another ping
            Some((op, payload)) => panic!(
                "unexpected frame {op}: {:?}",
                String::from_utf8_lossy(&payload)
            ),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "silent peer was not dropped"
        );
    }
    assert!(
        std::time::Instant::now() < deadline,
        "silent peer was not dropped in time"
    );
}

#[test]
fn ws_ping_answered_keeps_the_connection() {
    let p = Proxy::start(
        ProxyConfig::without_backends()
            .set("ws_transport", "pingpong_trigger", "1")
            .set("ws_transport", "pingpong_timeout", "1"),
    );
    let mut c = p.client();
    let start = std::time::Instant::now();
    // reading lets tungstenite answer every PING with a PONG; no Janus frame is expected
    while start.elapsed() < Duration::from_secs(4) {
        if let Some(v) = c.try_recv(Duration::from_millis(500)) {
            panic!("unexpected frame on an idle connection: {v}");
        }
    }
    assert!(c.is_alive(), "connection answering pings was dropped");
}

#[test]
fn binary_frames_are_ignored() {
    // spec 01 §1: text frames only, binary frames ignored
    let p = proxy();
    let mut c = p.client();
    c.ws()
        .send(tungstenite::Message::binary(
            br#"{"janus":"ping","transaction":"bin"}"#.to_vec(),
        ))
        .unwrap();
    let r = c.request(json!({"janus": "ping", "transaction": "txt"}));
    assert_eq!(r, json!({"janus": "pong", "transaction": "txt"}));
    assert!(
        c.stash.is_empty(),
        "binary frame was answered: {:?}",
        c.stash
    );
}
