//! Session ownership and lifetime: claim, reclaim after socket loss, session timeout
//! (spec 01-core-api.md §3 `claim`, §6).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;

fn echotest_event_for(v: &Value, sid: u64, hid: u64, t: &str) -> bool {
    v["janus"] == "event" && v["session_id"] == sid && v["sender"] == hid && v["transaction"] == t
}

fn assert_echotest_ok(ev: &Value) {
    assert_eq!(
        ev["plugindata"],
        json!({"plugin": "janus.plugin.echotest", "data": {"echotest": "event", "result": "ok"}}),
        "{ev}"
    );
}

#[test]
fn claim_moves_events_to_the_new_socket() {
    let p = Proxy::start(ProxyConfig::shared());
    p.wait_echotest_ready(Duration::from_secs(10));
    let mut a = p.client();
    let sid = a.create_session();
    let hid = a.attach(sid, "janus.plugin.echotest");

    let mut b = p.client();
    let r = b.request(json!({"janus": "claim", "session_id": sid, "transaction": "cl"}));
    assert_eq!(r["janus"], "success", "claim failed: {r}");
    assert_eq!(r["session_id"], sid, "{r}");
    assert_eq!(r["transaction"], "cl", "{r}");

    // a message sent on B: ack and event arrive on B
    let (ack, ev) = b.request_async(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"audio": true}, "transaction": "onb"}),
        T,
    );
    assert_eq!(ack["janus"], "ack", "{ack}");
    assert!(echotest_event_for(&ev, sid, hid, "onb"), "{ev}");
    assert_echotest_ok(&ev);

    // an asynchronous event triggered from A (which no longer owns the session) goes to B too
    a.send(&json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"audio": false}, "transaction": "froma"}));
    let ev = b.recv_event(|v| v["janus"] == "event" && v["transaction"] == "froma", T);
    assert!(echotest_event_for(&ev, sid, hid, "froma"), "{ev}");
    // A saw no event of that session before its own pong
    let r = a.request(json!({"janus": "ping"}));
    assert_eq!(r["janus"], "pong", "{r}");
    assert!(
        !a.stash.iter().any(|f| f.json["janus"] == "event"),
        "the old socket still received events: {:?}",
        a.stash
            .iter()
            .map(|f| f.json.to_string())
            .collect::<Vec<_>>()
    );

    // detach from B: detached event on B
    let r = b.request(json!({"janus": "detach", "session_id": sid, "handle_id": hid}));
    assert_eq!(r["janus"], "success", "{r}");
    let d = b.recv_event(|v| v["janus"] == "detached", T);
    assert_eq!(
        d,
        json!({"janus": "detached", "session_id": sid, "sender": hid})
    );
}

#[test]
fn claim_unknown_session_gives_458() {
    let p = Proxy::start(ProxyConfig::without_backends());
    let mut c = p.client();
    let r = c.request(json!({"janus": "claim", "session_id": 4242, "transaction": "cu"}));
    assert_error(&r, 458, Some("No such session 4242"));
    assert_eq!(r["session_id"], 4242, "{r}");
}

#[test]
fn claim_keeps_the_session_alive_when_the_old_socket_closes() {
    // reclaim 0: closing the socket that created the session would destroy it, but once the
    // session was claimed by B it belongs to B.
    let p = Proxy::start(ProxyConfig::without_backends());
    let mut a = p.client();
    let sid = a.create_session();
    let mut b = p.client();
    let r = b.request(json!({"janus": "claim", "session_id": sid}));
    assert_eq!(r["janus"], "success", "{r}");
    a.close();
    // A's close has been processed once a fresh connection sees the proxy answer; the session
    // must still be there, checked a few times over ~1 s (polling, not sleeping).
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let r = b.request(json!({"janus": "keepalive", "session_id": sid}));
        assert_eq!(
            r["janus"], "ack",
            "claimed session died with its old socket: {r}"
        );
        let _ = b.try_recv_event(|v| v["janus"] == "timeout", Duration::from_millis(200));
    }
}

#[test]
fn reclaim_after_socket_loss() {
    let p = Proxy::start(ProxyConfig::shared().set("general", "reclaim_session_timeout", "5"));
    p.wait_echotest_ready(Duration::from_secs(10));
    let mut a = p.client();
    let sid = a.create_session();
    let hid = a.attach(sid, "janus.plugin.echotest");
    a.close();

    let mut b = p.client();
    let r = b.request(json!({"janus": "claim", "session_id": sid, "transaction": "rc"}));
    assert_eq!(r["janus"], "success", "reclaim failed: {r}");
    assert_eq!(r["session_id"], sid, "{r}");
    assert_eq!(r["transaction"], "rc", "{r}");

    // the echotest handle still works and its events reach B
    let (ack, ev) = b.request_async(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"audio": true}, "transaction": "after"}),
        T,
    );
    assert_eq!(ack["janus"], "ack", "{ack}");
    assert!(echotest_event_for(&ev, sid, hid, "after"), "{ev}");
    assert_echotest_ok(&ev);
}

#[test]
fn no_reclaim_when_timeout_is_zero() {
    let p = Proxy::start(ProxyConfig::shared().set("general", "reclaim_session_timeout", "0"));
    p.wait_echotest_ready(Duration::from_secs(10));
    let mut a = p.client();
    let sid = a.create_session();
    let _hid = a.attach(sid, "janus.plugin.echotest");
    a.close();

    let mut b = p.client();
    // The close is processed asynchronously: poll with keepalive (which does not move the
    // session) until the session is gone, with a deadline; then claim must fail with 458.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = b.request(json!({"janus": "keepalive", "session_id": sid}));
        if r["janus"] == "error" {
            assert_error(&r, 458, Some(&format!("No such session {sid}")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "session {sid} survived its socket with reclaim 0: {r}"
        );
        poll_pause();
    }
    let r = b.request(json!({"janus": "claim", "session_id": sid, "transaction": "nr"}));
    assert_error(&r, 458, Some(&format!("No such session {sid}")));
    assert_eq!(r["session_id"], sid, "{r}");
    assert_eq!(r["transaction"], "nr", "{r}");
}

#[test]
fn session_timeout_expires_idle_sessions() {
    let p = Proxy::start(ProxyConfig::without_backends().set("general", "session_timeout", "2"));
    let mut c = p.client();
    let r = c.request(json!({"janus": "info"}));
    assert_eq!(r["session-timeout"], 2, "{r}");
    let created = Instant::now();
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    let ev = c.recv_event(|v| v["janus"] == "timeout", Duration::from_secs(8));
    let elapsed = created.elapsed();
    assert_eq!(
        ev,
        json!({"janus": "timeout", "session_id": sid}),
        "unexpected timeout event shape"
    );
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed <= Duration::from_millis(5500),
        "timeout event after {elapsed:?}, expected ~2-4 s"
    );
    let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_error(&r, 458, Some(&format!("No such session {sid}")));
    let r = c.request(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"x": 1}}),
    );
    assert_error(&r, 458, Some(&format!("No such session {sid}")));
    // the connection itself is still fine
    assert!(c.is_alive());
}

#[test]
fn keepalives_keep_a_session_alive() {
    let p = Proxy::start(ProxyConfig::without_backends().set("general", "session_timeout", "2"));
    let mut c = p.client();
    let sid = c.create_session();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(5000) {
        let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
        assert_eq!(
            r["janus"],
            "ack",
            "keepalive failed after {:?}: {r}",
            start.elapsed()
        );
        // pace the keepalives at ~1 s by waiting for a (forbidden) timeout event
        if let Some(ev) = c.try_recv_event(|v| v["janus"] == "timeout", Duration::from_secs(1)) {
            panic!(
                "session timed out despite keepalives after {:?}: {ev}",
                start.elapsed()
            );
        }
    }
    let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_eq!(r["janus"], "ack", "{r}");
}

#[test]
fn plugin_requests_also_keep_a_session_alive() {
    let p = Proxy::start(ProxyConfig::without_backends().set("general", "session_timeout", "2"));
    let mut c = p.client();
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(4500) {
        let r = c.request(
            json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"x": 1}}),
        );
        assert_eq!(
            r["janus"],
            "success",
            "message failed after {:?}: {r}",
            start.elapsed()
        );
        if let Some(ev) = c.try_recv_event(|v| v["janus"] == "timeout", Duration::from_secs(1)) {
            panic!(
                "session timed out despite activity after {:?}: {ev}",
                start.elapsed()
            );
        }
    }
}

#[test]
fn session_timeout_zero_never_expires() {
    let p = Proxy::start(ProxyConfig::without_backends().set("general", "session_timeout", "0"));
    let mut c = p.client();
    let sid = c.create_session();
    // no timeout event within 4 s of idleness (checked by waiting for the event itself)
    if let Some(ev) = c.try_recv_event(|v| v["janus"] == "timeout", Duration::from_secs(4)) {
        panic!("session_timeout = 0 but got {ev}");
    }
    let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_eq!(r["janus"], "ack", "{r}");
}
