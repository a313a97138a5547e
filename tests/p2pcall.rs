//! janus.plugin.p2pcall through janus-proxy (spec 06-plugin-p2pcall.md): the VideoCall API
//! with no media server. The proxy relays the caller's own offer, the callee's own answer,
//! renegotiation offers and trickled candidates between the two clients, fabricates
//! `webrtcup`, and keeps the user directory (memory, or Redis with two proxies).
//!
//! No backend is involved: the proxies point at the shared set's URLs only because the
//! config needs servers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;
const P2P: &str = "janus.plugin.p2pcall";

fn plugins(cfg: ProxyConfig) -> ProxyConfig {
    let mut cfg = cfg;
    cfg.plugins = ["echotest", "dummytest", "videocall", "p2pcall"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cfg
}

fn proxy() -> Proxy {
    Proxy::start(plugins(ProxyConfig::without_backends()))
}

fn multi_proxy(redis: &RedisServer) -> Proxy {
    multi_proxy_with(redis, false)
}

fn multi_proxy_with(redis: &RedisServer, allow_takeover: bool) -> Proxy {
    Proxy::start(
        plugins(ProxyConfig::without_backends())
            .set_str("videocall", "user_db", &redis.url())
            .set("videocall", "refresh_interval", "1")
            .set_str("p2pcall", "user_db", &redis.url())
            .set("p2pcall", "refresh_interval", "1")
            .set("p2pcall", "allow_takeover", &allow_takeover.to_string())
            .set_str("admin_api", "public_url", ""),
    )
}

fn party(p: &Proxy, prefix: &str) -> CallParty {
    CallParty::attach(&p.url(), P2P, &unique_name(prefix))
}

fn registered(p: &Proxy, prefix: &str) -> CallParty {
    let mut c = party(p, prefix);
    c.register();
    c
}

/// A jsep whose SDP is unique (so that relaying the very same object can be checked).
fn unique_jsep(kind: &str) -> Value {
    let sdp = call_sdp(kind).replace("s=-", &format!("s={}", transaction()));
    json!({"type": kind, "sdp": sdp})
}

/// The next core `trickle` frame of `to` (no transaction).
fn wait_trickle(to: &mut CallParty, timeout: Duration) -> Value {
    let (sid, hid) = (to.sid, to.hid);
    match to.c.try_recv_event(
        |v| v["janus"] == "trickle" && v["sender"] == hid && v["session_id"] == sid,
        timeout,
    ) {
        Some(v) => v,
        None => panic!(
            "{}: no trickle within {timeout:?}; stashed frames: {:?}",
            to.name,
            to.c.stash
                .iter()
                .map(|f| f.json.to_string())
                .collect::<Vec<_>>()
        ),
    }
}

fn assert_trickle(frame: &Value, to: &CallParty, candidate: &Value) {
    assert_eq!(
        frame,
        &json!({"janus": "trickle", "session_id": to.sid, "sender": to.hid, "candidate": candidate}),
        "trickle relayed to {}",
        to.name
    );
}

fn wait_webrtcup(p: &mut CallParty) {
    let (sid, hid) = (p.sid, p.hid);
    let f =
        p.c.try_recv_event(|v| v["janus"] == "webrtcup" && v["sender"] == hid, T);
    let f = f.unwrap_or_else(|| {
        panic!(
            "{}: no webrtcup; stashed frames: {:?}",
            p.name,
            p.c.stash
                .iter()
                .map(|f| f.json.to_string())
                .collect::<Vec<_>>()
        )
    });
    assert_eq!(
        f,
        json!({"janus": "webrtcup", "session_id": sid, "sender": hid})
    );
}

/// `a` calls `b` (with candidates trickled before and after the call), `b` accepts; every
/// relayed frame is checked against what the other side sent.
fn establish(a: &mut CallParty, b: &mut CallParty) {
    let early = [call_candidate(1), call_candidate(2)];
    for c in &early {
        let r = a.trickle(c.clone());
        assert_eq!(
            r,
            json!({"janus": "ack", "session_id": a.sid, "transaction": r["transaction"]})
        );
    }
    let offer = unique_jsep("offer");
    let r = a.ok(
        json!({"request": "call", "username": b.name}),
        Some(offer.clone()),
    );
    assert_eq!(r, json!({"event": "calling"}));
    let inc = b.wait_result("incomingcall", Some(&a.name), T);
    assert_eq!(
        inc,
        json!({"janus": "event", "session_id": b.sid, "sender": b.hid,
            "plugindata": {"plugin": P2P, "data": {"videocall": "event",
                "result": {"event": "incomingcall", "username": a.name}}},
            "jsep": offer}),
        "incomingcall must carry the caller's own offer"
    );
    // the candidates trickled before the call, one frame each, in order
    for c in &early {
        let f = wait_trickle(b, T);
        assert_trickle(&f, b, c);
    }
    // during the call
    let late = call_candidate(3);
    assert_eq!(a.trickle(late.clone())["janus"], "ack");
    let f = wait_trickle(b, T);
    assert_trickle(&f, b, &late);

    let answer = unique_jsep("answer");
    let r = b.ok(json!({"request": "accept"}), Some(answer.clone()));
    assert_eq!(r, json!({"event": "accepted"}));
    let acc = a.wait_result("accepted", Some(&b.name), T);
    assert_eq!(
        acc,
        json!({"janus": "event", "session_id": a.sid, "sender": a.hid,
            "plugindata": {"plugin": P2P, "data": {"videocall": "event",
                "result": {"event": "accepted", "username": b.name}}},
            "jsep": answer}),
        "accepted must carry the callee's own answer"
    );
    wait_webrtcup(a);
    wait_webrtcup(b);

    // the callee's candidates reach the caller
    let cb = call_candidate(7);
    assert_eq!(b.trickle(cb.clone())["janus"], "ack");
    let f = wait_trickle(a, T);
    assert_trickle(&f, a, &cb);
}

fn hang_up(a: &mut CallParty, b: &mut CallParty) {
    let r = a.ok(json!({"request": "hangup", "reason": "bye"}), None);
    assert_eq!(
        r,
        json!({"event": "hangup", "username": a.name, "reason": "Explicit hangup"})
    );
    let h = b.wait_result("hangup", Some(&a.name), T);
    assert_eq!(
        h["plugindata"]["data"],
        json!({"videocall": "event", "result": {"event": "hangup", "username": a.name, "reason": "bye"}}),
        "{h}"
    );
}

#[test]
fn register_list_exists_and_request_errors() {
    let p = proxy();
    let mut a = party(&p, "alice");
    let name = a.name.clone();
    let ev = a.msg_frame(json!({"request": "register", "username": name}), None);
    assert_eq!(
        ev["plugindata"],
        json!({"plugin": P2P, "data": {"videocall": "event",
            "result": {"event": "registered", "username": name}}})
    );
    let mut b = registered(&p, "bob");
    a.expect_error(
        json!({"request": "register", "username": unique_name("x")}),
        None,
        477,
        Some(&format!("Already registered ({name})")),
    );
    let list = b.list();
    assert!(list.contains(&a.name) && list.contains(&b.name), "{list:?}");
    let mut sorted = list.clone();
    sorted.sort();
    assert_eq!(list, sorted, "list must be sorted");
    assert!(b.exists(&a.name));
    assert!(!b.exists(&unique_name("nobody")));

    let mut c = party(&p, "carol");
    for bad in [json!(["a"]), json!("x".repeat(257))] {
        c.expect_error(
            json!({"request": "register", "username": bad}),
            None,
            474,
            None,
        );
    }
    c.expect_error(json!({"request": "exists", "username": 1}), None, 474, None);
    let dashed = unique_name("p2p-a.b");
    let r = c.ok(json!({"request": "register", "username": dashed}), None);
    assert_eq!(r, json!({"event": "registered", "username": dashed}));
    c.expect_error(
        json!({"request": "bar"}),
        None,
        472,
        Some("Unknown request 'bar'"),
    );
    c.expect_error(json!({"username": "x"}), None, 474, None);

    // the videocall and p2pcall directories are separate
    let mut v = CallParty::attach(&p.url(), "janus.plugin.videocall", &unique_name("v"));
    assert!(!v.exists(&a.name), "a p2pcall user is visible to videocall");
}

#[test]
fn call_accept_set_errors() {
    let p = proxy();
    let mut a = party(&p, "alice");
    let mut b = registered(&p, "bob");
    let offer = || Some(call_jsep("offer"));

    a.expect_error(
        json!({"request": "call", "username": b.name}),
        offer(),
        473,
        None,
    );
    a.expect_error(json!({"request": "set"}), offer(), 481, Some("Not in call"));
    a.register();
    a.expect_error(
        json!({"request": "call", "username": false}),
        None,
        474,
        None,
    );
    let me = a.name.clone();
    a.expect_error(json!({"request": "call", "username": me}), None, 479, None);
    let nobody = unique_name("nobody");
    a.expect_error(
        json!({"request": "call", "username": nobody}),
        None,
        478,
        Some(&format!("Username '{nobody}' doesn't exist")),
    );
    a.expect_error(
        json!({"request": "call", "username": b.name}),
        None,
        482,
        Some("Missing SDP"),
    );
    a.expect_error(
        json!({"request": "accept"}),
        Some(call_jsep("answer")),
        481,
        Some("No incoming call to accept"),
    );
    a.expect_error(json!({"request": "set"}), offer(), 481, Some("Not in call"));

    let r = a.ok(json!({"request": "call", "username": b.name}), offer());
    assert_eq!(r, json!({"event": "calling"}));
    b.wait_result("incomingcall", Some(&me), T);
    a.expect_error(
        json!({"request": "call", "username": b.name}),
        offer(),
        480,
        Some("Already in a call"),
    );
    b.expect_error(json!({"request": "accept"}), None, 482, Some("Missing SDP"));
    b.expect_error(json!({"request": "set"}), None, 482, Some("Missing SDP"));

    // busy
    let mut c = registered(&p, "carol");
    for target in [b.name.clone(), me.clone()] {
        let r = c.ok(json!({"request": "call", "username": target}), offer());
        assert_eq!(
            r,
            json!({"event": "hangup", "username": c.name, "reason": "User busy"})
        );
    }
    // carol is still free after a busy answer
    let r = c.ok(json!({"request": "hangup"}), None);
    assert_eq!(
        r,
        json!({"event": "hangup", "username": c.name, "reason": "Explicit hangup"})
    );
    hang_up(&mut b, &mut a);
    a.expect_error(json!({"request": "set"}), offer(), 481, Some("Not in call"));
}

/// `set` with a new offer: the peer gets an `update` event with exactly that jsep.
fn renegotiate(from: &mut CallParty, to: &mut CallParty) {
    let j = unique_jsep("offer");
    let r = from.ok(json!({"request": "set", "audio": false}), Some(j.clone()));
    assert_eq!(r, json!({"event": "set"}));
    let u = to.wait_result("update", None, T);
    assert_eq!(u["plugindata"]["data"]["result"]["event"], "update", "{u}");
    assert_eq!(u["jsep"], j, "update must carry the new offer: {u}");
}

#[test]
fn offer_answer_trickles_update_and_hangup_are_relayed() {
    let p = proxy();
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");
    establish(&mut a, &mut b);

    // renegotiation from either side
    renegotiate(&mut a, &mut b);
    renegotiate(&mut b, &mut a);
    hang_up(&mut a, &mut b);

    // both free again; this time the callee hangs up, with the default reason
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut b, &mut a);
    let r = a.ok(json!({"request": "hangup"}), None);
    assert_eq!(
        r,
        json!({"event": "hangup", "username": a.name, "reason": "Explicit hangup"})
    );
    let h = b.wait_result("hangup", Some(&a.name), T);
    assert!(
        h["plugindata"]["data"]["result"]["reason"].is_string(),
        "{h}"
    );
    // no stale candidates: a fresh call relays exactly the new early candidates
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut a, &mut b);
    hang_up(&mut b, &mut a);
}

#[test]
fn a_taken_username_is_refused_with_476() {
    let p = proxy();
    let name = unique_name("alice");
    let mut first = CallParty::attach(&p.url(), P2P, &name);
    first.register();
    let mut second = CallParty::attach(&p.url(), P2P, &name);
    second.expect_error(
        json!({"request": "register", "username": name}),
        None,
        476,
        Some(&format!("Username '{name}' already taken")),
    );
    // The first keeps it; once it leaves, the name is free again.
    assert!(second.exists(&name));
    let r = first.core("detach");
    assert_eq!(r["janus"], "success", "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while second.exists(&name) {
        assert!(Instant::now() < deadline, "{name} still registered");
        poll_pause();
    }
    second.register();
}

#[test]
fn reregistration_takes_the_name_over_when_allowed() {
    let p = Proxy::start(plugins(ProxyConfig::without_backends()).set(
        "p2pcall",
        "allow_takeover",
        "true",
    ));
    let name = unique_name("alice");
    let mut old = CallParty::attach(&p.url(), P2P, &name);
    old.register();
    let mut new = CallParty::attach(&p.url(), P2P, &name);
    new.register();
    let ev = old.wait_error_event(476, Duration::from_secs(5));
    assert_eq!(
        ev["plugindata"],
        json!({"plugin": P2P, "data": {"videocall": "event", "error_code": 476,
            "error": format!("Username '{name}' was registered by another handle")}}),
        "{ev}"
    );
    let mut b = registered(&p, "bob");
    establish(&mut b, &mut new);
    assert!(
        old.try_wait_result("incomingcall", None, Duration::from_millis(300))
            .is_none(),
        "the old handle got the call"
    );
    hang_up(&mut new, &mut b);
}

#[test]
fn detach_and_core_verbs_on_call_handles() {
    let p = proxy();
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");
    let mut probe = party(&p, "probe");

    assert_eq!(a.core("hangup")["janus"], "success");

    // core hangup in a call: success; the peer gets a core hangup event
    establish(&mut a, &mut b);
    let r = a.core("hangup");
    assert_eq!(r["janus"], "success", "{r}");
    let bh = b.hid;
    let h =
        b.c.recv_event(|v| v["janus"] == "hangup" && v["sender"] == bh, T);
    assert_eq!(
        h,
        json!({"janus": "hangup", "session_id": b.sid, "sender": b.hid, "reason": "Peer Hangup"})
    );
    hang_up(&mut a, &mut b);

    // detach in a call: success + detached; the peer gets a hangup; the name is gone
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut a, &mut b);
    let r = b.core("detach");
    assert_eq!(r["janus"], "success", "{r}");
    b.c.recv_event(|v| v["janus"] == "detached" && v["sender"] == bh, T);
    a.wait_result("hangup", Some(&b.name), T);
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe.exists(&b.name) {
        assert!(
            Instant::now() < deadline,
            "{} still registered after detach",
            b.name
        );
        poll_pause();
    }
    // alice is free again
    let mut c = registered(&p, "carol");
    a.c.stash.clear();
    establish(&mut c, &mut a);
    hang_up(&mut a, &mut c);
}

#[test]
fn multi_proxy_calls_both_ways() {
    let redis = RedisServer::start();
    let pa = multi_proxy(&redis);
    let pb = multi_proxy(&redis);
    let mut a = registered(&pa, "alice");
    let mut b = registered(&pb, "bob");
    let (an, bn) = (a.name.clone(), b.name.clone());
    for p in [&mut a, &mut b] {
        let list = p.list();
        assert!(
            list.contains(&an) && list.contains(&bn),
            "{}: list {list:?} misses {an} or {bn}",
            p.name
        );
        assert!(p.exists(&an) && p.exists(&bn), "{}: exists", p.name);
    }

    establish(&mut a, &mut b);
    renegotiate(&mut b, &mut a);
    hang_up(&mut a, &mut b);

    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut b, &mut a);
    // busy across proxies
    let mut c = registered(&pa, "carol");
    let r = c.ok(
        json!({"request": "call", "username": bn}),
        Some(call_jsep("offer")),
    );
    assert_eq!(
        r,
        json!({"event": "hangup", "username": c.name, "reason": "User busy"})
    );
    hang_up(&mut a, &mut b);
}

#[test]
fn multi_proxy_taken_username_is_refused_with_476() {
    let redis = RedisServer::start();
    let pa = multi_proxy(&redis);
    let pb = multi_proxy(&redis);
    let name = unique_name("alice");
    let mut first = CallParty::attach(&pa.url(), P2P, &name);
    first.register();
    let mut second = CallParty::attach(&pb.url(), P2P, &name);
    second.expect_error(
        json!({"request": "register", "username": name}),
        None,
        476,
        Some(&format!("Username '{name}' already taken")),
    );
    assert!(second.exists(&name), "the first registration was lost");
}

#[test]
fn multi_proxy_reregistration_takes_the_name_over_when_allowed() {
    let redis = RedisServer::start();
    let pa = multi_proxy_with(&redis, true);
    let pb = multi_proxy_with(&redis, true);
    let name = unique_name("alice");
    let mut old = CallParty::attach(&pa.url(), P2P, &name);
    old.register();
    let mut bob = registered(&pa, "bob");
    let mut new = CallParty::attach(&pb.url(), P2P, &name);
    new.register();
    old.wait_error_event(476, Duration::from_secs(5));
    establish(&mut bob, &mut new);
    assert!(
        old.try_wait_result("incomingcall", None, Duration::from_millis(300))
            .is_none(),
        "the old handle got the call"
    );
    hang_up(&mut bob, &mut new);
}

#[test]
fn multi_proxy_calls_with_names_that_need_escaping() {
    // The receiver's name travels in the URL of every proxy-to-proxy message.
    let redis = RedisServer::start();
    let pa = multi_proxy(&redis);
    let pb = multi_proxy(&redis);
    let tag = unique_name("");
    let mut a = CallParty::attach(
        &pa.url(),
        "janus.plugin.p2pcall",
        &format!("janode-a-{tag}"),
    );
    let mut b = CallParty::attach(
        &pb.url(),
        "janus.plugin.p2pcall",
        &format!("b/c d%?#é{tag}"),
    );
    a.register();
    b.register();
    establish(&mut a, &mut b);
    hang_up(&mut a, &mut b);
    // as Janus's VideoCall closes both PeerConnections: a core hangup for each handle
    for p in [&mut a, &mut b] {
        let (sid, hid) = (p.sid, p.hid);
        let h = p.c.recv_event(|v| v["janus"] == "hangup", T);
        assert_eq!(
            h,
            json!({"janus": "hangup", "session_id": sid, "sender": hid, "reason": "Close PC"})
        );
    }
}
