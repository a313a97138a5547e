//! janus.plugin.videocall through janus-proxy against real Janus 1.1.2 backends
//! (spec 05-plugin-videocall.md, seeds/videocall-plugin-wiki.txt, transcripts §8): the user
//! directory (memory and Redis), calls with synthetic audio-only SDPs and no media, trickle
//! buffering, call placement over the backends, backend loss, multi-proxy calls and a Redis
//! outage.
//!
//! Most tests use the shared backend set and unique usernames; the backend-kill test owns the
//! `videocall-kill` set (ports in tests/common/mod.rs).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;
const VC: &str = "janus.plugin.videocall";

fn plugins(cfg: ProxyConfig) -> ProxyConfig {
    let mut cfg = cfg;
    cfg.plugins = ["echotest", "dummytest", "videocall", "p2pcall"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cfg
}

/// A single proxy on the shared backends (memory user DB: the default).
fn proxy() -> Proxy {
    let p = Proxy::start(plugins(ProxyConfig::shared()));
    p.wait_echotest_ready(Duration::from_secs(10));
    p
}

/// Config of one proxy of a multi-proxy pair: same backends, Redis user DB, 1 s refresh.
fn multi_config(servers: Vec<(String, String)>, redis: &RedisServer) -> ProxyConfig {
    plugins(ProxyConfig::new(servers))
        .set_str("videocall", "user_db", &redis.url())
        .set("videocall", "refresh_interval", "1")
        .set_str("p2pcall", "user_db", &redis.url())
        .set("p2pcall", "refresh_interval", "1")
        .set_str("admin_api", "public_url", "")
}

fn multi_proxy(redis: &RedisServer) -> Proxy {
    multi_proxy_with(redis, false)
}

fn multi_proxy_with(redis: &RedisServer, allow_takeover: bool) -> Proxy {
    let config = multi_config(shared_backends().servers(), redis).set(
        "videocall",
        "allow_takeover",
        &allow_takeover.to_string(),
    );
    let p = Proxy::start(config);
    p.wait_echotest_ready(Duration::from_secs(10));
    p
}

fn party(p: &Proxy, prefix: &str) -> CallParty {
    CallParty::attach(&p.url(), VC, &unique_name(prefix))
}

fn registered(p: &Proxy, prefix: &str) -> CallParty {
    let mut c = party(p, prefix);
    c.register();
    c
}

fn assert_sdp(jsep: &Value, kind: &str, what: &str) {
    assert_eq!(jsep["type"], kind, "{what}: {jsep}");
    let sdp = jsep["sdp"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no sdp in {jsep}"));
    assert!(
        sdp.starts_with("v=0") && sdp.contains("m=audio"),
        "{what}: not an audio SDP: {sdp:?}"
    );
}

/// `a` calls `b` and `b` accepts; asserts every frame both sides get on the way.
fn establish(a: &mut CallParty, b: &mut CallParty) {
    let r = a.ok(
        json!({"request": "call", "username": b.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(
        r,
        json!({"event": "calling"}),
        "{} calling {}",
        a.name,
        b.name
    );
    let inc = b.wait_result("incomingcall", Some(&a.name), T);
    assert_eq!(
        inc["plugindata"],
        json!({"plugin": VC, "data": {"videocall": "event",
            "result": {"event": "incomingcall", "username": a.name}}}),
        "{inc}"
    );
    // videocall: the offer is Janus's own, not the caller's
    assert_sdp(&inc["jsep"], "offer", "incomingcall jsep");
    let r = b.ok(json!({"request": "accept"}), Some(call_jsep("answer")));
    assert_eq!(r["event"], "accepted", "{r}");
    let acc = a.wait_result("accepted", Some(&b.name), T);
    assert_eq!(
        acc["plugindata"]["data"],
        json!({"videocall": "event", "result": {"event": "accepted", "username": b.name}}),
        "{acc}"
    );
    assert_sdp(&acc["jsep"], "answer", "accepted jsep");
}

/// `a` hangs up; `b` is told.
fn hang_up(a: &mut CallParty, b: &mut CallParty) {
    let r = a.ok(json!({"request": "hangup"}), None);
    assert_eq!(
        r,
        json!({"event": "hangup", "username": a.name, "reason": "Explicit hangup"})
    );
    let h = b.wait_result("hangup", Some(&a.name), T);
    assert!(
        h["plugindata"]["data"]["result"]["reason"].is_string(),
        "hangup without a reason: {h}"
    );
}

/// Index of the backend holding a videocall handle of `name` (exactly one over the set).
fn backend_of(be: &Backends, name: &str) -> usize {
    let found: Vec<(usize, usize)> = (0..be.n)
        .map(|i| (i, be.videocall_handles(i, name).len()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(
        found.len() == 1 && found[0].1 == 1,
        "{name} should have exactly one backend videocall handle, found (backend, count) {found:?}"
    );
    found[0].0
}

/// Poll until no backend holds a videocall handle of any of `names`.
fn wait_no_backend_handles(be: &Backends, names: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<(usize, &str)> = (0..be.n)
            .flat_map(|i| names.iter().map(move |n| (i, *n)))
            .filter(|(i, n)| !be.videocall_handles(*i, n).is_empty())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backend videocall handles still attached after {within:?}: {left:?}"
        );
        poll_pause();
    }
}

/// handle_info of the single backend videocall handle of `name`.
fn backend_info(be: &Backends, name: &str) -> Value {
    let i = backend_of(be, name);
    be.videocall_handles(i, name).remove(0)
}

// ------------------------------------------------------------------------------------------
// single proxy

#[test]
fn register_list_exists_and_request_errors() {
    let p = proxy();
    let mut a = party(&p, "alice");
    let mut b = party(&p, "bob");

    // the full frame of a register answer
    let name = a.name.clone();
    let ev = a.msg_frame(json!({"request": "register", "username": name}), None);
    assert_eq!(
        key_set(&ev),
        keys(&["janus", "session_id", "transaction", "sender", "plugindata"]),
        "{ev}"
    );
    assert_eq!(
        ev["plugindata"],
        json!({"plugin": VC, "data": {"videocall": "event",
            "result": {"event": "registered", "username": name}}})
    );
    b.register();

    // a second register on the same handle
    a.expect_error(
        json!({"request": "register", "username": unique_name("other")}),
        None,
        477,
        Some(&format!("Already registered ({})", a.name)),
    );

    let list = a.list();
    assert!(
        list.contains(&a.name) && list.contains(&b.name),
        "list {list:?} misses {} or {}",
        a.name,
        b.name
    );
    let mut sorted = list.clone();
    sorted.sort();
    assert_eq!(list, sorted, "list must be sorted");
    assert!(list.len() <= 1000);

    assert!(a.exists(&b.name));
    assert!(b.exists(&a.name));
    assert!(!a.exists(&unique_name("nobody")));

    // Janus takes any string as a username; the proxy bounds it to 256 bytes
    let mut c = party(&p, "carol");
    for bad in [json!("x".repeat(257)), json!(12)] {
        c.expect_error(
            json!({"request": "register", "username": bad}),
            None,
            474,
            None,
        );
        c.expect_error(
            json!({"request": "exists", "username": bad}),
            None,
            474,
            None,
        );
    }
    c.expect_error(
        json!({"request": "register"}),
        None,
        475,
        Some("Missing element (username)"),
    );
    // dashes, dots, `@`, spaces, `~`, `/`, `%` and non-ASCII, as Janus accepts them
    let tag = unique_name("");
    for odd in [
        "janode-a-",
        "a.b@example.com ",
        "x~0123456789abcdef~",
        "日本 語/%?",
    ] {
        let name = format!("{odd}{tag}");
        let mut u = party(&p, &name);
        u.name = name.clone();
        let r = u.ok(json!({"request": "register", "username": name}), None);
        assert_eq!(r, json!({"event": "registered", "username": name}));
        assert!(c.exists(&name), "{name:?} not found");
    }
    let long = format!("{tag}{}", "é".repeat((256 - tag.len()) / 2));
    assert!(long.len() <= 256);
    let r = c.ok(json!({"request": "register", "username": long}), None);
    assert_eq!(r, json!({"event": "registered", "username": long}));

    c.expect_error(
        json!({"request": "foo"}),
        None,
        472,
        Some("Unknown request 'foo'"),
    );
    c.expect_error(json!({"username": "x"}), None, 474, None);
}

#[test]
fn call_errors_in_order() {
    let p = proxy();
    let mut a = party(&p, "alice");
    let mut b = registered(&p, "bob");
    let offer = || Some(call_jsep("offer"));

    // not registered beats everything
    a.expect_error(
        json!({"request": "call", "username": "a b"}),
        None,
        473,
        None,
    );
    a.expect_error(
        json!({"request": "call", "username": b.name}),
        offer(),
        473,
        None,
    );
    a.expect_error(
        json!({"request": "accept"}),
        Some(call_jsep("answer")),
        481,
        Some("No incoming call to accept"),
    );
    a.register();
    a.expect_error(
        json!({"request": "accept"}),
        Some(call_jsep("answer")),
        481,
        Some("No incoming call to accept"),
    );
    a.expect_error(json!({"request": "call", "username": 7}), None, 474, None);
    a.expect_error(json!({"request": "call"}), offer(), 475, None);
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

    // in a call: 480 first
    establish(&mut a, &mut b);
    a.expect_error(
        json!({"request": "call", "username": "a b"}),
        None,
        480,
        Some("Already in a call"),
    );
    b.expect_error(
        json!({"request": "call", "username": me}),
        offer(),
        480,
        Some("Already in a call"),
    );
    hang_up(&mut a, &mut b);
}

#[test]
fn call_accept_set_hangup_and_busy() {
    let p = proxy();
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");
    let mut c = registered(&p, "carol");

    let r = a.ok(
        json!({"request": "call", "username": b.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(r, json!({"event": "calling"}));
    let inc = b.wait_result("incomingcall", Some(&a.name), T);
    assert_sdp(&inc["jsep"], "offer", "incomingcall");

    // the callee is busy for others, even before it accepted
    let r = c.ok(
        json!({"request": "call", "username": b.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(
        r,
        json!({"event": "hangup", "username": c.name, "reason": "User busy"})
    );
    // and so is the caller
    let r = c.ok(
        json!({"request": "call", "username": a.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(
        r,
        json!({"event": "hangup", "username": c.name, "reason": "User busy"})
    );

    b.expect_error(json!({"request": "accept"}), None, 482, Some("Missing SDP"));
    let r = b.ok(json!({"request": "accept"}), Some(call_jsep("answer")));
    assert_eq!(r["event"], "accepted", "{r}");
    let acc = a.wait_result("accepted", Some(&b.name), T);
    assert_sdp(&acc["jsep"], "answer", "accepted");

    // set in a call goes to the backend
    let r = a.ok(json!({"request": "set", "bitrate": 64000}), None);
    assert_eq!(r["event"], "set", "{r}");
    let r = b.ok(json!({"request": "set", "audio": false}), None);
    assert_eq!(r["event"], "set", "{r}");
    let be = shared_backends();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ia = backend_info(be, &a.name);
        let ib = backend_info(be, &b.name);
        if ia["plugin_specific"]["bitrate"] == 64000
            && ib["plugin_specific"]["audio_active"] == false
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in-call set did not reach the backend: {} / {}",
            ia["plugin_specific"],
            ib["plugin_specific"]
        );
        poll_pause();
    }

    // the callee hangs up this time
    let r = b.ok(json!({"request": "hangup", "reason": "bye"}), None);
    assert_eq!(
        r,
        json!({"event": "hangup", "username": b.name, "reason": "Explicit hangup"})
    );
    let h = a.wait_result("hangup", Some(&b.name), T);
    assert_eq!(h["plugindata"]["data"]["result"]["event"], "hangup", "{h}");
    wait_no_backend_handles(be, &[&a.name, &b.name], Duration::from_secs(5));

    // hangup outside a call still answers
    let r = a.ok(json!({"request": "hangup"}), None);
    assert_eq!(
        r,
        json!({"event": "hangup", "username": a.name, "reason": "Explicit hangup"})
    );
    // accept after the call ended
    b.expect_error(
        json!({"request": "accept"}),
        Some(call_jsep("answer")),
        481,
        Some("No incoming call to accept"),
    );

    // both are free again: carol reaches bob, then bob calls alice
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut c, &mut b);
    hang_up(&mut c, &mut b);
    b.c.stash.clear();
    establish(&mut b, &mut a);
    hang_up(&mut a, &mut b);
}

#[test]
fn set_before_a_call_is_validated_and_replayed() {
    let p = proxy();
    let mut a = party(&p, "alice");
    for bad in [
        json!({"audio": "yes"}),
        json!({"video": 1}),
        json!({"record": "no"}),
        json!({"restart": 0}),
        json!({"bitrate": 0}),
        json!({"bitrate": -5}),
        json!({"bitrate": "100"}),
        json!({"bitrate": 1.5}),
        json!({"substream": 3}),
        json!({"substream": "1"}),
        json!({"temporal": -1}),
        json!({"temporal": 7}),
        json!({"fallback": -1}),
        json!({"fallback": "x"}),
    ] {
        let mut body = bad.clone();
        body["request"] = json!("set");
        a.expect_error(body, None, 474, None);
    }
    // before registration and after it
    let r = a.ok(
        json!({"request": "set", "audio": false, "bitrate": 1}),
        None,
    );
    assert_eq!(r, json!({"event": "set"}));
    a.register();
    let r = a.ok(
        json!({"request": "set", "video": true, "record": false, "restart": false,
            "bitrate": 12345, "substream": 2, "temporal": 0, "fallback": 0}),
        None,
    );
    assert_eq!(r, json!({"event": "set"}));

    // the merged pending set reaches the backend handle of the next call
    let mut b = registered(&p, "bob");
    let r = a.ok(
        json!({"request": "call", "username": b.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(r, json!({"event": "calling"}));
    let info = backend_info(shared_backends(), &a.name);
    assert_eq!(
        info["plugin_specific"]["audio_active"], false,
        "pending set not replayed: {}",
        info["plugin_specific"]
    );
    assert_eq!(
        info["plugin_specific"]["bitrate"], 12345,
        "pending set not replayed: {}",
        info["plugin_specific"]
    );
    b.wait_result("incomingcall", Some(&a.name), T);
    hang_up(&mut a, &mut b);
}

/// (pending trickles, remote candidates) of a backend handle.
fn backend_trickles(info: &Value) -> (u64, Vec<String>) {
    let pending = info["pending-trickles"].as_u64().unwrap_or(0);
    let remote = info["webrtc"]["ice"]["remote-candidates"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (pending, remote)
}

#[test]
fn trickles_before_and_during_a_call_reach_the_backend() {
    let p = proxy();
    let be = shared_backends();
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");

    // buffered: no backend handle exists yet
    for n in 1..=2 {
        let r = a.trickle(call_candidate(n));
        assert_eq!(r["janus"], "ack", "{r}");
        assert_eq!(r["session_id"], a.sid, "{r}");
    }
    // an unregistered handle's trickles are acknowledged too
    let mut c = party(&p, "carol");
    assert_eq!(c.trickle(call_candidate(5))["janus"], "ack");

    let r = a.ok(
        json!({"request": "call", "username": b.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(r, json!({"event": "calling"}));
    let seen = |info: &Value, port: u32| {
        let (pending, remote) = backend_trickles(info);
        (
            pending,
            remote
                .iter()
                .any(|c| c.contains(&format!("127.0.0.1 {port} "))),
        )
    };
    // Janus keeps early trickles queued ("pending-trickles", one per trickle request) until
    // its own gathering is done, then lists them as remote candidates
    let deadline = Instant::now() + Duration::from_secs(5);
    let pending_before = loop {
        let info = backend_info(be, &a.name);
        let (pending, found) = seen(&info, 10);
        if pending >= 1 || found {
            break pending;
        }
        assert!(
            Instant::now() < deadline,
            "the buffered candidates never reached the caller's backend handle: {}",
            json!({"pending-trickles": info["pending-trickles"], "ice": info["webrtc"]["ice"]})
        );
        poll_pause();
    };

    // during the call: forwarded at once
    let r = a.trickle(call_candidate(3));
    assert_eq!(r["janus"], "ack", "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = backend_info(be, &a.name);
        let (pending, found) = seen(&info, 12);
        if pending > pending_before || found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the in-call candidate never reached the caller's backend handle: {}",
            json!({"pending-trickles": info["pending-trickles"], "ice": info["webrtc"]["ice"]})
        );
        poll_pause();
    }
    // the callee's trickles reach its own backend handle as well
    b.wait_result("incomingcall", Some(&a.name), T);
    assert_eq!(b.trickle(json!({"completed": true}))["janus"], "ack");
    let r = b.ok(json!({"request": "accept"}), Some(call_jsep("answer")));
    assert_eq!(r["event"], "accepted", "{r}");
    a.wait_result("accepted", Some(&b.name), T);
    hang_up(&mut a, &mut b);
}

#[test]
fn calls_are_spread_over_the_backends_and_released_after_hangup() {
    let p = proxy();
    let be = shared_backends();
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");
    let mut used = [0usize; 2];
    for round in 0..8 {
        a.c.stash.clear();
        b.c.stash.clear();
        if round % 2 == 0 {
            establish(&mut a, &mut b);
        } else {
            establish(&mut b, &mut a);
        }
        // both parties have a backend videocall handle, on the same server
        let sa = backend_of(be, &a.name);
        let sb = backend_of(be, &b.name);
        assert_eq!(
            sa, sb,
            "caller and callee on different backends in round {round}"
        );
        let ia = backend_info(be, &a.name);
        assert_eq!(
            ia["plugin_specific"]["state"], "incall",
            "{}",
            ia["plugin_specific"]
        );
        used[sa] += 1;
        if round % 2 == 0 {
            hang_up(&mut a, &mut b);
        } else {
            hang_up(&mut b, &mut a);
        }
        wait_no_backend_handles(be, &[&a.name, &b.name], Duration::from_secs(5));
        if round >= 1 && used.iter().all(|&n| n > 0) {
            break;
        }
    }
    assert!(
        used.iter().all(|&n| n > 0),
        "calls did not land on both backends: {used:?}"
    );
}

#[test]
fn a_taken_username_is_refused_with_476() {
    let p = proxy();
    let name = unique_name("alice");
    let mut first = CallParty::attach(&p.url(), VC, &name);
    first.register();
    let mut second = CallParty::attach(&p.url(), VC, &name);
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
    let p = Proxy::start(plugins(ProxyConfig::shared()).set("videocall", "allow_takeover", "true"));
    let name = unique_name("alice");
    let mut old = CallParty::attach(&p.url(), VC, &name);
    old.register();
    let mut new = CallParty::attach(&p.url(), VC, &name);
    new.register();
    let ev = old.wait_error_event(476, Duration::from_secs(5));
    assert_eq!(
        ev["plugindata"]["data"],
        json!({"videocall": "event", "error_code": 476,
            "error": format!("Username '{name}' was registered by another handle")}),
        "{ev}"
    );
    assert!(ev.get("transaction").is_none(), "{ev}");

    // calls go to the new owner
    let mut b = registered(&p, "bob");
    assert!(b.exists(&name));
    establish(&mut b, &mut new);
    assert!(
        old.try_wait_result("incomingcall", None, Duration::from_millis(300))
            .is_none(),
        "the old handle got the call"
    );
    hang_up(&mut new, &mut b);

    // the old handle lost its name: it may register another one
    old.name = unique_name("alice2");
    old.register();
}

#[test]
fn detach_and_core_verbs_on_call_handles() {
    let p = proxy();
    let be = shared_backends();
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");
    let mut probe = party(&p, "probe");
    assert!(probe.exists(&a.name));

    // core hangup on an idle handle
    let r = a.core("hangup");
    assert_eq!(r["janus"], "success", "{r}");

    // detach of a registered handle removes its name
    let r = a.core("detach");
    assert_eq!(
        r,
        json!({"janus": "success", "session_id": a.sid, "transaction": r["transaction"]})
    );
    let (sid, hid) = (a.sid, a.hid);
    a.c.recv_event(|v| v["janus"] == "detached" && v["sender"] == hid, T);
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe.exists(&a.name) {
        assert!(
            Instant::now() < deadline,
            "{} still registered after detach",
            a.name
        );
        poll_pause();
    }
    // the name is free for another handle
    let hid2 = a.c.attach(sid, VC);
    a.hid = hid2;
    a.register();

    // core hangup in a call: success, and the call ends (backend hangup event)
    establish(&mut a, &mut b);
    let r = a.core("hangup");
    assert_eq!(r["janus"], "success", "{r}");
    b.wait_result("hangup", Some(&a.name), T);
    wait_no_backend_handles(be, &[&a.name, &b.name], Duration::from_secs(5));

    // detach in a call: the peer is told and the backend handles go away
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut a, &mut b);
    let r = b.core("detach");
    assert_eq!(r["janus"], "success", "{r}");
    let bh = b.hid;
    b.c.recv_event(|v| v["janus"] == "detached" && v["sender"] == bh, T);
    a.wait_result("hangup", Some(&b.name), T);
    wait_no_backend_handles(be, &[&a.name, &b.name], Duration::from_secs(5));
    assert!(!probe.exists(&b.name));
    assert!(probe.exists(&a.name));
}

#[test]
fn explicit_memory_sections_are_accepted() {
    let cfg = plugins(ProxyConfig::shared())
        .set_str("videocall", "user_db", "memory")
        .set("videocall", "refresh_interval", "10")
        .set_str("p2pcall", "user_db", "memory")
        .set("p2pcall", "refresh_interval", "10")
        .set_str("admin_api", "public_url", "");
    let p = Proxy::start(cfg);
    p.wait_echotest_ready(Duration::from_secs(10));
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");
    establish(&mut a, &mut b);
    hang_up(&mut b, &mut a);
}

#[test]
fn backend_kill_mid_call_hangs_up_and_keeps_registrations() {
    let be = Backends::own("videocall-kill", 2, 18988, 14000);
    let p = Proxy::start(plugins(ProxyConfig::new(be.servers())));
    p.wait_echotest_ready(Duration::from_secs(10));
    // both backends connected
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(0..2).all(|i| !be.admin(i).list_sessions().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the proxy did not connect to both backends"
        );
        poll_pause();
    }
    let mut a = registered(&p, "alice");
    let mut b = registered(&p, "bob");
    establish(&mut a, &mut b);
    let dead = backend_of(&be, &a.name);
    assert_eq!(backend_of(&be, &b.name), dead);

    let killed = Instant::now();
    be.kill9(dead);
    for party in [&mut a, &mut b] {
        let name = party.name.clone();
        let ev = party.wait_result("hangup", Some(&name), Duration::from_secs(10));
        assert_eq!(
            ev["plugindata"]["data"],
            json!({"videocall": "event", "result": {"event": "hangup", "username": name,
                "reason": "backend handle closed"}}),
            "{ev}"
        );
        assert!(ev.get("jsep").is_none(), "{ev}");
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "{name} learnt of the backend loss only after {:?}",
            killed.elapsed()
        );
    }

    // registrations survive, and a new call works at once, on the other backend
    assert!(a.exists(&b.name));
    assert!(b.exists(&a.name));
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut b, &mut a);
    for n in [&a.name, &b.name] {
        let on_survivor = be.videocall_handles(1 - dead, n).len();
        assert_eq!(
            on_survivor, 1,
            "{n}: backend handles on the surviving backend"
        );
    }
    hang_up(&mut a, &mut b);
    assert!(
        p.log().lines().all(|l| !l.contains("panicked")),
        "proxy panicked"
    );
}

// ------------------------------------------------------------------------------------------
// multi proxy (Redis user directory)

#[test]
fn multi_proxy_directory_and_calls_both_ways() {
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
        assert!(!p.exists(&unique_name("nobody")));
    }

    // A -> B, with a candidate trickled before the call (buffered on proxy A) and one from
    // the callee on proxy B: both reach the parties' backend handles
    assert_eq!(a.trickle(call_candidate(1))["janus"], "ack");
    establish(&mut a, &mut b);
    assert_eq!(b.trickle(call_candidate(4))["janus"], "ack");
    let be = shared_backends();
    for (n, port) in [(&an, 10), (&bn, 13)] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let info = backend_info(be, n);
            let (pending, remote) = backend_trickles(&info);
            if pending >= 1
                || remote
                    .iter()
                    .any(|c| c.contains(&format!("127.0.0.1 {port} ")))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{n}: the candidate never reached its backend handle: {}",
                json!({"pending-trickles": info["pending-trickles"], "ice": info["webrtc"]["ice"]})
            );
            poll_pause();
        }
    }
    a.expect_error(
        json!({"request": "call", "username": bn}),
        Some(call_jsep("offer")),
        480,
        Some("Already in a call"),
    );
    hang_up(&mut a, &mut b);
    // B -> A, hung up by the callee
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut b, &mut a);
    let r = b.ok(json!({"request": "set", "bitrate": 64000}), None);
    assert_eq!(r["event"], "set", "{r}");
    hang_up(&mut a, &mut b);

    // busy across proxies
    let mut c = registered(&pa, "carol");
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut a, &mut b);
    let r = c.ok(
        json!({"request": "call", "username": bn}),
        Some(call_jsep("offer")),
    );
    assert_eq!(
        r,
        json!({"event": "hangup", "username": c.name, "reason": "User busy"})
    );
    hang_up(&mut b, &mut a);
    wait_no_backend_handles(shared_backends(), &[&an, &bn], Duration::from_secs(5));

    // detach on B removes bob from A's view too
    let r = b.core("detach");
    assert_eq!(r["janus"], "success", "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.exists(&bn) {
        assert!(
            Instant::now() < deadline,
            "{bn} still registered after detach"
        );
        poll_pause();
    }
}

#[test]
fn multi_proxy_taken_username_is_refused_with_476() {
    let redis = RedisServer::start();
    let pa = multi_proxy(&redis);
    let pb = multi_proxy(&redis);
    let name = unique_name("alice");
    let mut first = CallParty::attach(&pa.url(), VC, &name);
    first.register();
    let mut second = CallParty::attach(&pb.url(), VC, &name);
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
    let mut old = CallParty::attach(&pa.url(), VC, &name);
    old.register();
    let mut bob = registered(&pa, "bob");
    assert!(bob.exists(&name));

    let mut new = CallParty::attach(&pb.url(), VC, &name);
    new.register();
    let ev = old.wait_error_event(476, Duration::from_secs(5));
    assert_eq!(
        ev["plugindata"]["data"],
        json!({"videocall": "event", "error_code": 476,
            "error": format!("Username '{name}' was registered by another handle")}),
        "{ev}"
    );

    // a call from proxy A reaches the new owner on proxy B
    establish(&mut bob, &mut new);
    assert!(
        old.try_wait_result("incomingcall", None, Duration::from_millis(300))
            .is_none(),
        "the old handle got the call"
    );
    hang_up(&mut new, &mut bob);
}

fn assert_directory_error(d: &Value, what: &str) {
    assert_eq!(d["videocall"], "event", "{what}: {d}");
    assert_eq!(d["error_code"], 503, "{what} during a Redis outage: {d}");
    let text = d["error"].as_str().unwrap_or("").to_lowercase();
    assert!(
        text.contains("directory"),
        "{what}: the error should mention the user directory: {d}"
    );
}

#[test]
fn redis_outage_is_reported_and_recovered_from() {
    let mut redis = RedisServer::start();
    let pa = multi_proxy(&redis);
    let pb = multi_proxy(&redis);
    let mut a = registered(&pa, "alice");
    let mut b = registered(&pb, "bob");
    assert!(a.exists(&b.name));

    redis.stop();
    let mut c = party(&pa, "carol");
    let cn = c.name.clone();
    let d = c.msg(json!({"request": "register", "username": cn}), None);
    assert_directory_error(&d, "register");
    let bn = b.name.clone();
    let d = a.msg(
        json!({"request": "call", "username": bn}),
        Some(call_jsep("offer")),
    );
    assert_directory_error(&d, "call");
    let d = b.msg(json!({"request": "list"}), None);
    assert_directory_error(&d, "list");
    // p2pcall shares the Redis outage
    let mut q = CallParty::attach(&pb.url(), "janus.plugin.p2pcall", &unique_name("dave"));
    let qn = q.name.clone();
    let d = q.msg(json!({"request": "register", "username": qn}), None);
    assert_directory_error(&d, "p2pcall register");

    // the proxies keep serving everything else
    pa.wait_echotest_ready(Duration::from_secs(5));
    pb.wait_echotest_ready(Duration::from_secs(5));
    let mut dc = pa.client();
    let sid = dc.create_session();
    let hid = dc.attach(sid, "janus.plugin.dummytest");
    let r = dc.request(json!({"janus": "detach", "session_id": sid, "handle_id": hid}));
    assert_eq!(r["janus"], "success", "{r}");

    // Redis back (empty): registrations are written again within a few refresh intervals
    redis.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = a.msg(json!({"request": "exists", "username": bn}), None);
        if d["result"]["registered"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{bn} (proxy B) not visible from proxy A 10 s after Redis came back: {d}"
        );
        poll_pause();
    }
    let an = a.name.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.msg(json!({"request": "exists", "username": an}), None)["result"]["registered"] != true
    {
        assert!(Instant::now() < deadline, "{an} not visible from proxy B");
        poll_pause();
    }
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut a, &mut b);
    hang_up(&mut b, &mut a);
    // and registering works again
    c.register();
    q.register();
    for p in [&pa, &pb] {
        assert!(p.client().is_alive(), "a proxy stopped answering");
        assert!(!p.log().contains("panicked"), "a proxy panicked");
    }
}

#[test]
fn multi_proxy_calls_with_names_that_need_escaping() {
    // The callee's name travels in the URL of the proxy-to-proxy call and in Redis keys;
    // `~` followed by 16 hex digits looks like the proxy's own backend aliases.
    let redis = RedisServer::start();
    let pa = multi_proxy(&redis);
    let pb = multi_proxy(&redis);
    let tag = unique_name("");
    let (an, bn) = (
        format!("é.a@x-1{tag}"),
        format!("b/c d%?#{tag}~0123456789abcdef"),
    );
    let mut a = CallParty::attach(&pa.url(), VC, &an);
    let mut b = CallParty::attach(&pb.url(), VC, &bn);
    a.register();
    b.register();
    assert!(a.exists(&bn) && b.exists(&an));
    assert!(a.list().contains(&bn), "{:?}", a.list());
    establish(&mut a, &mut b);
    hang_up(&mut a, &mut b);
    a.c.stash.clear();
    b.c.stash.clear();
    establish(&mut b, &mut a);
    hang_up(&mut b, &mut a);
}

#[test]
fn usernames_are_taken_as_janus_takes_them() {
    // the same registrations directly against Janus 1.1.2 and through the proxy
    let p = proxy();
    let tag = unique_name("");
    let outcome = |url: &str, username: Value| -> Value {
        let mut c = CallParty::attach(url, VC, "x");
        let body = match &username {
            Value::Null => json!({"request": "register"}),
            u => json!({"request": "register", "username": u}),
        };
        let data = c.msg(body, None);
        match data["error_code"].as_u64() {
            Some(code) => json!(code),
            None => data["result"]["username"].clone(),
        }
    };
    let names = [
        json!(""),
        json!(format!("janode-a-{tag}")),
        json!(format!("a b.c@d{tag}")),
        json!(format!("日本{tag}")),
        json!(format!("x{tag}~0123456789abcdef")),
        json!(12),
        Value::Null,
    ];
    for (i, name) in names.iter().enumerate() {
        // each backend takes a name once: the proxy's registrations use their own aliases
        let direct = outcome(&shared_backends().ws_url(i % 2), name.clone());
        let proxied = outcome(&p.url(), name.clone());
        assert_eq!(direct, proxied, "username {name}");
    }
    // Janus has no bound; the proxy stops at 256 bytes
    let long = json!("y".repeat(300));
    assert_eq!(outcome(&shared_backends().ws_url(0), long.clone()), long);
    assert_eq!(outcome(&p.url(), long), json!(474));
}
