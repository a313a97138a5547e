//! Backend cluster behaviour: spreading echotest handles over the backends, backend handle
//! bookkeeping seen through each Janus's Admin API, and the loss of a backend
//! (spec 02-proxy-admin-and-cluster.md §4, §7, §8; 04-plugin-echotest.md).
//!
//! The tests that count handles or kill a backend use their OWN backend sets (distinct ports,
//! RTP ranges and set names), so that other tests running in parallel on the shared set do not
//! disturb the counts.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;

fn handle_sets(be: &Backends) -> Vec<HashSet<(u64, u64)>> {
    (0..be.n)
        .map(|i| be.admin(i).all_handles().into_iter().collect())
        .collect()
}

fn handle_counts(be: &Backends) -> Vec<usize> {
    (0..be.n).map(|i| be.handle_count(i)).collect()
}

/// Poll (deadline) until the backends hold exactly `want` handles each.
fn wait_handle_counts(be: &Backends, want: &[usize], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = handle_counts(be);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backend handle counts {got:?}, expected {want:?}"
        );
        poll_pause();
    }
}

/// Wait (bounded, not fatal) until every backend holds at least one session of the proxy,
/// i.e. the proxy has connected to all of them.
fn wait_backend_sessions(be: &Backends, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if (0..be.n).all(|i| !be.admin(i).list_sessions().is_empty()) {
            return;
        }
        poll_pause();
    }
}

fn echotest_roundtrip(c: &mut Client, sid: u64, hid: u64) {
    let t = transaction();
    let (ack, ev) = c.request_async(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"audio": true}, "transaction": t}),
        T,
    );
    assert_eq!(ack["janus"], "ack", "{ack}");
    assert_eq!(ev["janus"], "event", "{ev}");
    assert_eq!(ev["sender"], hid, "{ev}");
    assert_eq!(ev["transaction"], t.as_str(), "{ev}");
    assert_eq!(
        ev["plugindata"],
        json!({"plugin": "janus.plugin.echotest", "data": {"echotest": "event", "result": "ok"}}),
        "{ev}"
    );
}

struct Attached {
    client: Client,
    sid: u64,
    hid: u64,
}

fn new_attached(p: &Proxy) -> Attached {
    let mut client = p.client();
    let sid = client.create_session();
    let hid = client.attach(sid, "janus.plugin.echotest");
    Attached { client, sid, hid }
}

#[test]
fn round_robin_spreads_handles_and_detach_releases_them() {
    let be = Backends::own("cluster-rr", 2, 18788, 10000);
    let p = Proxy::start(ProxyConfig::new(be.servers()).set_str("general", "server_select", "rr"));
    p.wait_echotest_ready(Duration::from_secs(10));
    wait_backend_sessions(&be, Duration::from_secs(5));
    // the readiness probe's backend handle is released asynchronously
    wait_handle_counts(&be, &[0, 0], Duration::from_secs(5));

    let mut clients: Vec<Attached> = (0..4).map(|_| new_attached(&p)).collect();
    let counts = handle_counts(&be);
    assert_eq!(
        counts.iter().sum::<usize>(),
        4,
        "4 attaches must create 4 backend handles: {counts:?}"
    );
    assert!(
        counts.iter().all(|&n| n >= 1),
        "rr did not use both backends: {counts:?}"
    );

    for a in clients.iter_mut() {
        echotest_roundtrip(&mut a.client, a.sid, a.hid);
    }

    // detach releases the backend handle
    let a = &mut clients[0];
    let r = a
        .client
        .request(json!({"janus": "detach", "session_id": a.sid, "handle_id": a.hid}));
    assert_eq!(r["janus"], "success", "{r}");
    let total_after_detach = || handle_counts(&be).iter().sum::<usize>();
    let deadline = Instant::now() + Duration::from_secs(5);
    while total_after_detach() != 3 {
        assert!(
            Instant::now() < deadline,
            "detach did not release the backend handle: {:?}",
            handle_counts(&be)
        );
        poll_pause();
    }
    // destroy releases the backend handle
    let a = &mut clients[1];
    let r = a
        .client
        .request(json!({"janus": "destroy", "session_id": a.sid}));
    assert_eq!(r["janus"], "success", "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while total_after_detach() != 2 {
        assert!(
            Instant::now() < deadline,
            "destroy did not release the backend handle: {:?}",
            handle_counts(&be)
        );
        poll_pause();
    }
    // closing the socket (reclaim 0) releases the backend handles of its sessions
    let rest: Vec<Attached> = clients.drain(2..).collect();
    for a in rest {
        a.client.close();
    }
    wait_handle_counts(&be, &[0, 0], Duration::from_secs(5));
}

#[test]
fn round_robin_alternates_within_one_session() {
    // several echotest handles attached in a row: rr alternates, so both backends are used
    let be = Backends::own("cluster-rr2", 2, 18488, 12000);
    let p = Proxy::start(
        ProxyConfig::new(be.servers())
            .set_str("general", "server_select", "rr")
            .set("general", "shards", "1"),
    );
    p.wait_echotest_ready(Duration::from_secs(10));
    wait_backend_sessions(&be, Duration::from_secs(5));
    wait_handle_counts(&be, &[0, 0], Duration::from_secs(5));
    let mut c = p.client();
    let sid = c.create_session();
    let hids: Vec<u64> = (0..6)
        .map(|_| c.attach(sid, "janus.plugin.echotest"))
        .collect();
    let counts = handle_counts(&be);
    assert_eq!(
        counts,
        vec![3, 3],
        "rr with one shard must alternate strictly"
    );
    for h in hids {
        echotest_roundtrip(&mut c, sid, h);
    }
}

#[test]
fn every_selection_mode_works() {
    let shared = shared_backends();
    for mode in ["rr", "rand", "lb", "wr"] {
        let p = Proxy::start(ProxyConfig::new(shared.servers()).set_str(
            "general",
            "server_select",
            mode,
        ));
        p.wait_echotest_ready(Duration::from_secs(10));
        for _ in 0..3 {
            let mut a = new_attached(&p);
            echotest_roundtrip(&mut a.client, a.sid, a.hid);
        }
    }
}

#[test]
fn backend_kill_hangs_up_its_handles_and_the_rest_goes_on() {
    let be = Backends::own("cluster-kill", 2, 18288, 24000);
    let p = Proxy::start(ProxyConfig::new(be.servers()).set_str("general", "server_select", "rr"));
    p.wait_echotest_ready(Duration::from_secs(10));
    wait_backend_sessions(&be, Duration::from_secs(5));
    wait_handle_counts(&be, &[0, 0], Duration::from_secs(5));

    // one client attached on each backend (found through the Admin API)
    let mut on: [Option<Attached>; 2] = [None, None];
    for _ in 0..12 {
        if on.iter().all(|o| o.is_some()) {
            break;
        }
        let before = handle_sets(&be);
        let a = new_attached(&p);
        let after = handle_sets(&be);
        let gained: Vec<usize> = (0..2)
            .filter(|&i| after[i].len() > before[i].len())
            .collect();
        assert_eq!(
            gained.len(),
            1,
            "attach created handles on {gained:?}: {before:?} -> {after:?}"
        );
        let i = gained[0];
        if on[i].is_none() {
            on[i] = Some(a);
        }
    }
    let [Some(mut x), Some(mut y)] = on else {
        panic!("could not get one handle on each backend with rr");
    };
    echotest_roundtrip(&mut x.client, x.sid, x.hid);
    echotest_roundtrip(&mut y.client, y.sid, y.hid);

    // kill backend 0 (the one X is on)
    let killed_at = Instant::now();
    be.kill9(0);

    let hangup = x
        .client
        .recv_event(|v| v["janus"] == "hangup", Duration::from_secs(5));
    let detached = x
        .client
        .recv_event(|v| v["janus"] == "detached", Duration::from_secs(5));
    let elapsed = killed_at.elapsed();
    assert_eq!(hangup["session_id"], x.sid, "{hangup}");
    assert_eq!(hangup["sender"], x.hid, "{hangup}");
    assert!(
        hangup["reason"].is_string(),
        "hangup without reason: {hangup}"
    );
    assert!(hangup.get("transaction").is_none(), "{hangup}");
    assert_eq!(
        detached,
        json!({"janus": "detached", "session_id": x.sid, "sender": x.hid})
    );
    assert!(
        elapsed <= Duration::from_millis(2500),
        "backend loss reported only after {elapsed:?}"
    );

    // Y's client is unaffected
    assert!(
        !y.client
            .stash
            .iter()
            .any(|f| f.json["janus"] == "hangup" || f.json["janus"] == "detached"),
        "client on the surviving backend got {:?}",
        y.client
            .stash
            .iter()
            .map(|f| f.json.to_string())
            .collect::<Vec<_>>()
    );
    echotest_roundtrip(&mut y.client, y.sid, y.hid);

    // X's session survives; its dead handle can no longer be used
    let r = x
        .client
        .request(json!({"janus": "keepalive", "session_id": x.sid}));
    assert_eq!(r["janus"], "ack", "{r}");
    let r: Value = x.client.request(json!({"janus": "message", "session_id": x.sid, "handle_id": x.hid, "body": {"audio": true}}));
    assert_eq!(
        r["janus"], "error",
        "message on a handle reported detached: {r}"
    );
    // X can attach a new handle, which lands on the surviving backend
    let hid2 = x.client.attach(x.sid, "janus.plugin.echotest");
    echotest_roundtrip(&mut x.client, x.sid, hid2);

    // new sessions + attaches keep succeeding, all on backend 1
    let before = be.handle_count(1);
    let mut extra = Vec::new();
    for _ in 0..4 {
        let mut a = new_attached(&p);
        echotest_roundtrip(&mut a.client, a.sid, a.hid);
        extra.push(a);
    }
    assert_eq!(
        be.handle_count(1),
        before + 4,
        "new handles must all land on the surviving backend"
    );
    assert!(
        !y.client
            .stash
            .iter()
            .any(|f| f.json["janus"] == "hangup" || f.json["janus"] == "detached"),
        "client on the surviving backend got {:?}",
        y.client
            .stash
            .iter()
            .map(|f| f.json.to_string())
            .collect::<Vec<_>>()
    );
}

#[test]
fn all_backends_down_gives_an_error_not_a_hang() {
    // backends that do not exist: attach must fail quickly with 502 (spec 04 §2.1)
    let p = Proxy::start(ProxyConfig::new(vec![
        (
            "nowhere-0".into(),
            format!("ws://127.0.0.1:{}", free_port()),
        ),
        (
            "nowhere-1".into(),
            format!("ws://127.0.0.1:{}", free_port()),
        ),
    ]));
    let mut c = p.client();
    let sid = c.create_session();
    let started = Instant::now();
    let r =
        c.request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.echotest"}));
    assert_error(&r, 502, Some("No backend server"));
    assert_eq!(r["session_id"], sid, "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "attach took {:?}",
        started.elapsed()
    );
    // dummytest still works
    let hid = c.attach(sid, "janus.plugin.dummytest");
    let r = c.request(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"x": 1}}),
    );
    assert_eq!(r["janus"], "success", "{r}");
}

#[test]
fn expired_sessions_release_backend_handles() {
    let be = Backends::own("cluster-gc", 1, 18588, 16000);

    // 1. session timeout: the timeout event, then the backend handles go away
    {
        let p = Proxy::start(ProxyConfig::new(be.servers()).set("general", "session_timeout", "2"));
        p.wait_echotest_ready(Duration::from_secs(10));
        wait_handle_counts(&be, &[0], Duration::from_secs(5));
        let mut c = p.client();
        let sid = c.create_session();
        c.attach(sid, "janus.plugin.echotest");
        c.attach(sid, "janus.plugin.echotest");
        assert_eq!(handle_counts(&be), vec![2]);
        let ev = c.recv_event(|v| v["janus"] == "timeout", Duration::from_secs(8));
        assert_eq!(ev, json!({"janus": "timeout", "session_id": sid}));
        wait_handle_counts(&be, &[0], Duration::from_secs(5));
    }

    // 2. reclaim window: the session (and its backend handle) survives the socket, then
    //    expires when nobody claims it
    {
        let p = Proxy::start(ProxyConfig::new(be.servers()).set(
            "general",
            "reclaim_session_timeout",
            "2",
        ));
        p.wait_echotest_ready(Duration::from_secs(10));
        wait_handle_counts(&be, &[0], Duration::from_secs(5));
        let mut a = p.client();
        let sid = a.create_session();
        a.attach(sid, "janus.plugin.echotest");
        a.close();
        let closed_at = Instant::now();
        assert_eq!(
            handle_counts(&be),
            vec![1],
            "the backend handle must survive within the reclaim window"
        );
        wait_handle_counts(&be, &[0], Duration::from_secs(8));
        assert!(
            closed_at.elapsed() >= Duration::from_millis(1500),
            "session released after {:?}, before the 2 s reclaim window",
            closed_at.elapsed()
        );
        let mut b = p.client();
        let r = b.request(json!({"janus": "claim", "session_id": sid}));
        assert_error(&r, 458, Some(&format!("No such session {sid}")));
    }
}

#[test]
fn backend_that_comes_back_is_used_again() {
    // spec 02 §7.5: after a backend session dies, the next user reconnects from scratch
    let be = Backends::own("cluster-restart", 1, 18688, 18000);
    let p = Proxy::start(ProxyConfig::new(be.servers()));
    p.wait_echotest_ready(Duration::from_secs(10));
    let mut a = new_attached(&p);
    echotest_roundtrip(&mut a.client, a.sid, a.hid);

    be.kill9(0);
    let h = a
        .client
        .recv_event(|v| v["janus"] == "hangup", Duration::from_secs(5));
    assert_eq!(h["sender"], a.hid, "{h}");
    let d = a
        .client
        .recv_event(|v| v["janus"] == "detached", Duration::from_secs(5));
    assert_eq!(d["sender"], a.hid, "{d}");

    // no backend: attach fails with an error, quickly
    let started = Instant::now();
    let r = a.client.request(
        json!({"janus": "attach", "session_id": a.sid, "plugin": "janus.plugin.echotest"}),
    );
    assert_eq!(
        r["janus"], "error",
        "attach with the only backend dead: {r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "attach took {:?}",
        started.elapsed()
    );

    // the backend comes back: attaches succeed again (poll with a deadline)
    be.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    let hid = loop {
        let r = a.client.request(
            json!({"janus": "attach", "session_id": a.sid, "plugin": "janus.plugin.echotest"}),
        );
        if r["janus"] == "success" {
            break r["data"]["id"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "proxy did not reconnect to the restarted backend: {r}"
        );
        poll_pause();
    };
    echotest_roundtrip(&mut a.client, a.sid, hid);
    assert_eq!(
        be.handle_count(0),
        1,
        "the new handle must be on the restarted backend"
    );
}

#[test]
fn sigterm_releases_backend_handles_at_once() {
    // On SIGTERM the proxy destroys its backend sessions, so the backend frees the
    // handles now instead of when its session timeout (60 s) runs out.
    let be = Backends::own("cluster-release", 1, 18698, 19000);
    let mut p = Proxy::start(ProxyConfig::new(be.servers()));
    p.wait_echotest_ready(Duration::from_secs(15));
    let mut c = p.client();
    let sid = c.create_session();
    for _ in 0..3 {
        c.attach(sid, "janus.plugin.echotest");
    }
    assert_eq!(be.handle_count(0), 3);
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(p.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.is_running() {
        assert!(Instant::now() < deadline, "proxy did not exit on SIGTERM");
        poll_pause();
    }
    assert_eq!(
        be.handle_count(0),
        0,
        "backend handles left behind after SIGTERM"
    );
}
