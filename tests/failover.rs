//! Proxy failover (`[cluster] session_db`, issue 13) against a real Janus 1.1.2 with
//! `reclaim_session_timeout = 30` and a real redis-server: proxies sharing one Redis,
//! one killed (kill -9) or drained (SIGTERM) while a client holds a session with an
//! echotest handle whose PeerConnection (janus-mediapeer: real ICE, DTLS-SRTP, RTP) carries
//! media; the client reconnects to another proxy and claims its session.
//!
//! Proves: the claim succeeds on the other proxy, the handle answers, and the echoed media
//! keeps flowing across the switch (failover time and longest media gap printed); a claim
//! of a live proxy's session is refused with 458 (nothing stolen); two proxies racing for
//! one dead proxy's session: exactly one adopts it; a handle whose plugin cannot be adopted
//! gets `hangup` and `detached` after the claim; SIGTERM drains then hands off.
//!
//! Janus set "failover": ws 18078, admin 17078, RTP 32000-32699 (see tests/common);
//! `JANUS_CLOUD_FAILOVER_PORT`/`JANUS_CLOUD_FAILOVER_RTP` move it.

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::*;
use janus_mediapeer::{Peer, Peers};
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;
const ECHO: &str = "janus.plugin.echotest";

/// The Janus of these tests: it keeps a session whose WebSocket closed for 30 s.
/// `JANUS_CLOUD_FAILOVER_PORT` (its ws port) and `JANUS_CLOUD_FAILOVER_RTP` (its first RTP
/// port) move it, for a second test tree on the same machine (set `failover-<port>`).
fn janus() -> Backends {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u16>().ok());
    let (set, port, rtp) = match env("JANUS_CLOUD_FAILOVER_PORT") {
        Some(port) => (
            format!("failover-{port}"),
            port,
            env("JANUS_CLOUD_FAILOVER_RTP").unwrap_or(32000),
        ),
        None => ("failover".to_string(), 18078, 32000),
    };
    backends_with_env(
        &set,
        1,
        port,
        rtp,
        700,
        &[("JANUS_RECLAIM_SESSION_TIMEOUT", "30".into())],
    )
}

/// A proxy of the cluster: heartbeat 2 s, drain 2 s.
fn cluster_proxy(janus: &Backends, redis: &RedisServer, name: &str) -> Proxy {
    cluster_proxy_with(janus, redis, name, |c| c)
}

fn cluster_proxy_with(
    janus: &Backends,
    redis: &RedisServer,
    name: &str,
    more: impl FnOnce(ProxyConfig) -> ProxyConfig,
) -> Proxy {
    let cfg = ProxyConfig::new(janus.servers())
        .set("general", "reclaim_session_timeout", "30")
        .set_str("cluster", "session_db", &redis.url())
        .set_str("cluster", "proxy_name", name)
        .set("cluster", "heartbeat_ttl", "2")
        .set("cluster", "adopt_timeout", "20")
        .set("cluster", "drain_timeout", "2");
    let p = Proxy::start(more(cfg));
    p.wait_echotest_ready(T);
    p
}

fn kill9(p: &mut Proxy) {
    p.child.kill().expect("kill -9 the proxy");
    p.child.wait().expect("reap the proxy");
}

/// The echotest `message` round trip: ack, then the event with `result: ok`.
fn echo_ok(c: &mut Client, sid: u64, hid: u64, body: Value, jsep: Option<Value>) -> Value {
    let mut req = json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": body});
    if let Some(j) = jsep {
        req["jsep"] = j;
    }
    let (ack, ev) = c.request_async(req, T);
    assert_eq!(ack["janus"], "ack", "{ack}");
    assert_eq!(ev["janus"], "event", "{ev}");
    assert_eq!(ev["sender"], hid, "{ev}");
    assert_eq!(ev["plugindata"]["data"]["result"], "ok", "{ev}");
    ev
}

fn claim(c: &mut Client, sid: u64) -> Value {
    c.request(json!({"janus": "claim", "session_id": sid}))
}

fn mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=mid:"))
        .map(str::to_string)
        .collect()
}

/// A session with an echotest handle whose real PeerConnection is up and echoing.
struct EchoCall {
    sid: u64,
    hid: u64,
    peer: Arc<Peer>,
    mids: Vec<String>,
}

fn echo_call(peers: &Peers, c: &mut Client) -> EchoCall {
    let sid = c.create_session();
    let hid = c.attach(sid, ECHO);
    let (peer, offer) = peers.echo_publisher(true, true).expect("echo peer");
    let ev = echo_ok(
        c,
        sid,
        hid,
        json!({"audio": true, "video": true}),
        Some(json!({"type": "offer", "sdp": offer})),
    );
    let answer = ev["jsep"]["sdp"].as_str().expect("answer sdp").to_string();
    peer.set_answer(&answer).expect("set answer");
    peer.wait_connected(T).expect("peer connected");
    c.recv_event(|e| e["janus"] == "webrtcup" && e["sender"] == hid, T);
    let mids = mids(&answer);
    let refs: Vec<&str> = mids.iter().map(String::as_str).collect();
    peer.wait_received(&refs, 200, T).expect("echoed media");
    EchoCall {
        sid,
        hid,
        peer: Arc::new(peer),
        mids,
    }
}

#[test]
fn echotest_media_survives_kill9_of_its_proxy() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy(&janus, &redis, "b");
    let peers = Peers::new();
    let mut c = a.client();
    let call = echo_call(&peers, &mut c);
    // The longest pause of the echo without a failover (about 2 s of media), to compare.
    let sampler = Sampler::start(call.peer.clone());
    let base = total(&call.peer);
    let until = Instant::now() + T;
    while total(&call.peer) < base + 20_000 {
        assert!(Instant::now() < until, "media does not flow");
        poll_pause();
    }
    let baseline = sampler.stop();
    let sampler = Sampler::start(call.peer.clone());

    let killed = Instant::now();
    kill9(&mut a);
    drop(c);
    let at_kill = call.peer.received();
    let mut c = b.client();
    let r = claim(&mut c, call.sid);
    let failover = killed.elapsed();
    assert_eq!(r["janus"], "success", "claim on the other proxy: {r}");
    assert_eq!(r["session_id"], call.sid, "{r}");

    // The adopted handle is relayed: an echotest request gets its answer.
    echo_ok(&mut c, call.sid, call.hid, json!({"bitrate": 256000}), None);
    // The echo keeps coming on every mid, well past what had arrived at the kill.
    let want: Vec<(String, u64)> = call
        .mids
        .iter()
        .map(|m| (m.clone(), at_kill.get(m).copied().unwrap_or(0)))
        .collect();
    let until = Instant::now() + T;
    loop {
        let now = call.peer.received();
        if want
            .iter()
            .all(|(m, before)| now.get(m).copied().unwrap_or(0) > before + 300)
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "media stopped after the failover: at kill {at_kill:?}, now {now:?}"
        );
        poll_pause();
    }
    let gap = sampler.stop();
    println!(
        "failover: kill -9 -> claim answered by the other proxy in {} ms; longest media gap \
         {} ms across the switch ({} ms in 2 s without a failover)",
        failover.as_millis(),
        gap.as_millis(),
        baseline.as_millis()
    );
    assert!(gap < Duration::from_secs(1), "media gap {gap:?}");

    // The adopted session is an ordinary one now: detach and destroy as usual.
    let d = c.request(json!({"janus": "detach", "session_id": call.sid, "handle_id": call.hid}));
    assert_eq!(d["janus"], "success", "{d}");
    c.recv_event(|e| e["janus"] == "detached" && e["sender"] == call.hid, T);
    let d = c.request(json!({"janus": "destroy", "session_id": call.sid}));
    assert_eq!(d["janus"], "success", "{d}");
    call.peer.close();
}

#[test]
fn claim_of_a_live_proxys_session_is_refused() {
    let janus = janus();
    let redis = RedisServer::start();
    let a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy(&janus, &redis, "b");
    let mut ca = a.client();
    let sid = ca.create_session();
    let hid = ca.attach(sid, ECHO);

    let mut cb = b.client();
    let asked = Instant::now();
    let r = claim(&mut cb, sid);
    assert_error(&r, 458, None);
    println!(
        "claim of a live proxy's session refused in {} ms",
        asked.elapsed().as_millis()
    );
    // Nothing was taken: the session still works where it is.
    echo_ok(&mut ca, sid, hid, json!({"audio": true}), None);
    let m = metrics(&b);
    assert!(
        m.lines()
            .any(|l| l == "janus_proxy_claims_refused_owner_alive_total 1"),
        "{m}"
    );
    // And a session nobody knows is 458 at once.
    let r = claim(&mut cb, 4242);
    assert_error(&r, 458, None);
}

#[test]
fn two_proxies_racing_for_a_dead_proxys_session_one_adopts() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy(&janus, &redis, "b");
    let c = cluster_proxy(&janus, &redis, "c");
    let mut ca = a.client();
    let sid = ca.create_session();
    let hid = ca.attach(sid, ECHO);
    kill9(&mut a);
    drop(ca);

    let start = Arc::new(Barrier::new(2));
    let results = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = [b.url(), c.url()]
        .into_iter()
        .map(|url| {
            let (start, results) = (start.clone(), results.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(&url);
                start.wait();
                let r = claim(&mut client, sid);
                let won = r["janus"] == "success";
                results.lock().unwrap().push((url, r));
                won.then_some(client)
            })
        })
        .collect();
    let mut winners: Vec<Client> = threads
        .into_iter()
        .filter_map(|t| t.join().expect("claim thread"))
        .collect();
    let results = results.lock().unwrap().clone();
    assert_eq!(winners.len(), 1, "exactly one proxy adopts: {results:?}");
    for (_, r) in &results {
        if r["janus"] != "success" {
            assert_error(r, 458, None);
        }
    }
    echo_ok(&mut winners[0], sid, hid, json!({"audio": true}), None);
}

#[test]
fn a_handle_that_cannot_be_adopted_is_detached() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy(&janus, &redis, "b");
    let mut ca = a.client();
    let sid = ca.create_session();
    let echo = ca.attach(sid, ECHO);
    let dummy = ca.attach(sid, "janus.plugin.dummytest");
    kill9(&mut a);
    drop(ca);

    let mut cb = b.client();
    let r = claim(&mut cb, sid);
    assert_eq!(r["janus"], "success", "{r}");
    let h = cb.recv_event(|e| e["janus"] == "hangup" && e["sender"] == dummy, T);
    assert_eq!(h["session_id"], sid, "{h}");
    cb.recv_event(|e| e["janus"] == "detached" && e["sender"] == dummy, T);
    // The echotest handle was adopted; the dummytest one is gone.
    echo_ok(&mut cb, sid, echo, json!({"audio": true}), None);
    let r =
        cb.request(json!({"janus": "message", "session_id": sid, "handle_id": dummy, "body": {}}));
    assert_error(&r, 459, None);
    let m = metrics(&b);
    for line in [
        "janus_proxy_adopted_sessions_total 1",
        "janus_proxy_adopted_handles_total 1",
        "janus_proxy_unadoptable_handles_total 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
}

fn metrics(p: &Proxy) -> String {
    let r = http(
        "GET",
        &format!("http://127.0.0.1:{}/metrics", p.admin_port),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[test]
fn sigterm_drains_then_hands_off() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy(&janus, &redis, "b");
    let mut ca = a.client();
    let sid = ca.create_session();
    let hid = ca.attach(sid, ECHO);

    let pid = a.child.id() as i32;
    let termed = Instant::now();
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // While it drains, the session keeps working and newcomers are turned away.
    echo_ok(&mut ca, sid, hid, json!({"audio": true}), None);
    let deadline = Instant::now() + T;
    loop {
        match Client::try_connect(&a.url(), Some("janus-protocol")) {
            Err(_) => break,
            Ok(mut probe) => {
                // Accepted before the drain began: it must not be served for long.
                if probe
                    .try_request(json!({"janus": "info"}), Duration::from_millis(500))
                    .is_none()
                {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "a draining proxy still accepts clients"
        );
        poll_pause();
    }
    // The deadline passes with the client still there: the proxy hands off and exits.
    let status = loop {
        if let Some(st) = a.child.try_wait().expect("wait") {
            break st;
        }
        assert!(termed.elapsed() < T, "the drained proxy did not exit");
        poll_pause();
    };
    let drained = termed.elapsed();
    assert!(status.success(), "drained proxy exit status {status}");
    assert!(
        drained >= Duration::from_secs(2),
        "exited before the drain deadline: {drained:?}"
    );
    drop(ca);

    // Its heartbeat is gone at once: the claim needs no wait for it to expire.
    let mut cb = b.client();
    let asked = Instant::now();
    let r = claim(&mut cb, sid);
    assert_eq!(r["janus"], "success", "{r}");
    let took = asked.elapsed();
    println!(
        "drain: SIGTERM -> exit in {} ms, claim answered by the other proxy in {} ms",
        drained.as_millis(),
        took.as_millis()
    );
    assert!(
        took < Duration::from_millis(1500),
        "claim after a drain took {took:?}"
    );
    echo_ok(&mut cb, sid, hid, json!({"audio": true}), None);
}

/// The backend (Janus session, handle) of a client handle, as its proxy recorded it.
fn backend_of(redis: &RedisServer, sid: u64, hid: u64) -> (u64, u64) {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client.get_connection().expect("redis connection");
    let record: String = redis::cmd("HGET")
        .arg(format!("januscloud:cluster:session:{sid}"))
        .arg(format!("h:{hid}"))
        .query(&mut conn)
        .expect("handle record");
    let v: Value = serde_json::from_str(&record).expect("record JSON");
    let b = &v["backend"];
    (
        b["session"].as_u64().expect("backend session"),
        b["handle"].as_u64().expect("backend handle"),
    )
}

/// A session id the proxy places on shard `shard` of 2.
fn id_on_shard(shard: usize) -> u64 {
    loop {
        let id = fastrand::u64(1..MAX_ID);
        if janus_cloud::runtime::jump_hash::jump_hash(id, 2) == shard {
            return id;
        }
    }
}

/// Waits for `cond`, polling; panics with `what` after 15 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < until, "{what}");
        poll_pause();
    }
}

#[test]
fn clients_sharing_a_backend_session_are_adopted_together() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    // Adopted sessions wait 3 s for their clients here.
    let b = cluster_proxy_with(&janus, &redis, "b", |c| {
        c.set("general", "reclaim_session_timeout", "0")
            .set("cluster", "adopt_timeout", "3")
    });
    // Three sessions on one shard of A: one backend session holds their three handles.
    let mut calls = Vec::new();
    for _ in 0..3 {
        let mut c = a.client();
        let id = id_on_shard(0);
        let r = c.request(json!({"janus": "create", "id": id}));
        assert_eq!(r["data"]["id"], id, "{r}");
        let hid = c.attach(id, ECHO);
        calls.push((c, id, hid));
    }
    let backends: Vec<(u64, u64)> = calls
        .iter()
        .map(|(_, sid, hid)| backend_of(&redis, *sid, *hid))
        .collect();
    let x = backends[0].0;
    assert!(backends.iter().all(|(s, _)| *s == x), "{backends:?}");
    let mut admin = janus.admin(0);
    kill9(&mut a);
    let [(_, s1, h1), (_, s2, h2), (_, s3, _)] = <[_; 3]>::try_from(calls).ok().expect("three");

    let mut d1 = b.client();
    let r = claim(&mut d1, s1);
    assert_eq!(r["janus"], "success", "{r}");
    // The second client finds its session adopted already: no wait.
    let mut d2 = b.client();
    let asked = Instant::now();
    let r = claim(&mut d2, s2);
    assert_eq!(r["janus"], "success", "{r}");
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    echo_ok(&mut d1, s1, h1, json!({"audio": true}), None);
    echo_ok(&mut d2, s2, h2, json!({"audio": true}), None);
    assert!(
        admin.list_sessions().contains(&x),
        "backend session {x} kept"
    );

    // The third client never comes back: its backend handle is detached after 3 s, and
    // its session is gone.
    let stray = backends[2].1;
    eventually("the unclaimed handle is detached on the backend", || {
        !admin.list_handles(x).contains(&stray)
    });
    let mut d3 = b.client();
    assert_error(&claim(&mut d3, s3), 458, None);

    // Once its last client leaves, the adopted backend session is destroyed.
    for (d, s) in [(&mut d1, s1), (&mut d2, s2)] {
        let r = d.request(json!({"janus": "destroy", "session_id": s}));
        assert_eq!(r["janus"], "success", "{r}");
    }
    eventually("the adopted backend session is destroyed", || {
        !admin.list_sessions().contains(&x)
    });
}

#[test]
fn admin_drain_hands_off_like_sigterm() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy(&janus, &redis, "b");
    let mut ca = a.client();
    let sid = ca.create_session();
    let hid = ca.attach(sid, ECHO);
    let admin = format!("http://127.0.0.1:{}", a.admin_port);

    let r = http(
        "POST",
        &format!("{admin}/drain"),
        Some(("application/json", "{}")),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // Load balancers see it go: /health answers 503 while it drains.
    let r = http("GET", &format!("{admin}/health"), None, None);
    assert_eq!(r.status, 503, "{}", r.body);
    eventually("the drained proxy exits", || {
        a.child.try_wait().ok().flatten().is_some()
    });
    drop(ca);
    let mut cb = b.client();
    assert_eq!(claim(&mut cb, sid)["janus"], "success");
    echo_ok(&mut cb, sid, hid, json!({"audio": true}), None);

    // Outside a cluster there is nothing to hand off to.
    let single = Proxy::start(ProxyConfig::new(janus.servers()));
    let r = http(
        "POST",
        &format!("http://127.0.0.1:{}/drain", single.admin_port),
        Some(("application/json", "{}")),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn records_are_written_back_after_a_redis_restart() {
    let janus = janus();
    let mut redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy(&janus, &redis, "b");
    let mut ca = a.client();
    let sid = ca.create_session();
    let hid = ca.attach(sid, ECHO);
    let before = backend_of(&redis, sid, hid);

    // Redis comes back empty: A writes its sessions back at its next heartbeat.
    redis.restart();
    eventually("the session record is written back", || {
        redis::Client::open(redis.url())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| {
                redis::cmd("HEXISTS")
                    .arg(format!("januscloud:cluster:session:{sid}"))
                    .arg(format!("h:{hid}"))
                    .query::<bool>(&mut c)
            })
            .unwrap_or(false)
    });
    assert_eq!(backend_of(&redis, sid, hid), before);
    // Then A dies: the session is adopted as if Redis had never gone.
    kill9(&mut a);
    drop(ca);
    let mut cb = b.client();
    assert_eq!(claim(&mut cb, sid)["janus"], "success");
    echo_ok(&mut cb, sid, hid, json!({"audio": true}), None);
}

#[test]
fn a_proxy_with_more_shards_ends_handles_it_cannot_relay() {
    let janus = janus();
    let redis = RedisServer::start();
    // A has one shard: one backend session for all its clients; B has two.
    let mut a = cluster_proxy_with(&janus, &redis, "a", |c| c.set("general", "shards", "1"));
    let b = cluster_proxy(&janus, &redis, "b");
    let mut ids = Vec::new();
    for shard_on_b in [0, 1] {
        let mut c = a.client();
        let id = id_on_shard(shard_on_b);
        let r = c.request(json!({"janus": "create", "id": id}));
        assert_eq!(r["data"]["id"], id, "{r}");
        let hid = c.attach(id, ECHO);
        ids.push((c, id, hid));
    }
    let (x, stray) = backend_of(&redis, ids[1].1, ids[1].2);
    assert_eq!(
        backend_of(&redis, ids[0].1, ids[0].2).0,
        x,
        "one backend session"
    );
    kill9(&mut a);
    let [(_, s0, h0), (_, s1, h1)] = <[_; 2]>::try_from(ids).ok().expect("two");

    // The first claim decides where the backend session lives on B: with s0, on shard 0.
    let mut d0 = b.client();
    assert_eq!(claim(&mut d0, s0)["janus"], "success");
    echo_ok(&mut d0, s0, h0, json!({"audio": true}), None);
    // s1 lives on B's other shard: its session is adopted, its handle ended.
    let mut d1 = b.client();
    assert_eq!(claim(&mut d1, s1)["janus"], "success");
    d1.recv_event(|e| e["janus"] == "hangup" && e["sender"] == h1, T);
    d1.recv_event(|e| e["janus"] == "detached" && e["sender"] == h1, T);
    let mut admin = janus.admin(0);
    eventually("the stray backend handle is detached", || {
        !admin.list_handles(x).contains(&stray)
    });
    echo_ok(&mut d0, s0, h0, json!({"audio": true}), None);
}

#[test]
fn a_client_of_the_http_api_claims_too() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let b = cluster_proxy_with(&janus, &redis, "b", |c| {
        c.set("http_transport", "http", "true")
    });
    let mut ca = a.client();
    let sid = ca.create_session();
    let hid = ca.attach(sid, ECHO);
    kill9(&mut a);
    drop(ca);
    // Janus's REST API: the claim is a POST, the events come from long polls.
    let mut cb = b.client_over(Transport::Http);
    let r = claim(&mut cb, sid);
    assert_eq!(r["janus"], "success", "{r}");
    echo_ok(&mut cb, sid, hid, json!({"audio": true}), None);
}

/// What the records cost: `create` and `attach` are answered once their record is in
/// Redis. Prints the mean latency with and without `[cluster]` (same Janus, same machine).
#[test]
fn records_cost_of_create_and_attach() {
    let janus = janus();
    let redis = RedisServer::start();
    let clustered = cluster_proxy(&janus, &redis, "a");
    let single = Proxy::start(ProxyConfig::new(janus.servers()));
    single.wait_echotest_ready(T);
    let measure = |p: &Proxy| {
        let mut c = p.client();
        let (mut create, mut attach) = (Duration::ZERO, Duration::ZERO);
        const N: u32 = 30;
        for _ in 0..N {
            let t = Instant::now();
            let sid = c.create_session();
            create += t.elapsed();
            let t = Instant::now();
            c.attach(sid, ECHO);
            attach += t.elapsed();
            let r = c.request(json!({"janus": "destroy", "session_id": sid}));
            assert_eq!(r["janus"], "success", "{r}");
        }
        (create / N, attach / N)
    };
    let (c0, a0) = measure(&single);
    let (c1, a1) = measure(&clustered);
    println!(
        "records: create {:.2} ms -> {:.2} ms, attach {:.2} ms -> {:.2} ms (without -> with [cluster])",
        c0.as_secs_f64() * 1e3,
        c1.as_secs_f64() * 1e3,
        a0.as_secs_f64() * 1e3,
        a1.as_secs_f64() * 1e3
    );
    // One Redis round trip each on loopback; anything near the 1 s cap means waiting.
    assert!(c1 < Duration::from_millis(100) && a1 < Duration::from_millis(100));
}

#[test]
fn a_session_survives_two_failovers_in_a_row() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&janus, &redis, "a");
    let mut b = cluster_proxy(&janus, &redis, "b");
    let c = cluster_proxy(&janus, &redis, "c");
    let peers = Peers::new();
    let mut client = a.client();
    let call = echo_call(&peers, &mut client);
    // A dies, B adopts; then B dies, and C adopts what B had adopted.
    for (dying, next) in [(&mut a, b.url()), (&mut b, c.url())] {
        kill9(dying);
        drop(client);
        client = Client::connect(&next);
        let r = claim(&mut client, call.sid);
        assert_eq!(r["janus"], "success", "claim on {next}: {r}");
        echo_ok(
            &mut client,
            call.sid,
            call.hid,
            json!({"audio": true}),
            None,
        );
    }
    let before = total(&call.peer);
    eventually("media still flows after two failovers", || {
        total(&call.peer) > before + 2000
    });
}

// ------------------------------------------------------------------ videocall

const VC: &str = "janus.plugin.videocall";

/// A proxy of the cluster serving videocall with its users in the same Redis (names live
/// 3 s past their proxy's death).
fn videocall_proxy(janus: &Backends, redis: &RedisServer, name: &str) -> Proxy {
    let url = redis.url();
    cluster_proxy_with(janus, redis, name, |c| {
        let mut c = c
            .set_str("videocall", "user_db", &url)
            .set("videocall", "refresh_interval", "1")
            .set_str("admin_api", "public_url", "");
        c.plugins = vec!["echotest".into(), "dummytest".into(), "videocall".into()];
        c
    })
}

fn caller_of(p: &Proxy, prefix: &str) -> CallParty {
    let mut c = CallParty::attach(&p.url(), VC, &unique_name(prefix));
    c.register();
    c
}

/// The party's client reconnects to `p` and claims its session, as janus.js does.
fn reclaim(party: &mut CallParty, p: &Proxy) {
    party.c = p.client();
    let r = claim(&mut party.c, party.sid);
    assert_eq!(
        r["janus"],
        "success",
        "{}: claim on {}: {r}",
        party.name,
        p.url()
    );
}

/// `caller` calls `callee` with real media (caller: a sendonly publisher, callee: a
/// receive-only peer answering Janus's offer); returns both peers once the callee receives
/// media on every mid.
fn media_call(peers: &Peers, caller: &mut CallParty, callee: &mut CallParty) -> (Peer, Arc<Peer>) {
    let (caller_peer, offer) = peers.publisher(true, true).expect("caller peer");
    let r = caller.ok(
        json!({"request": "call", "username": callee.name}),
        Some(json!({"type": "offer", "sdp": offer})),
    );
    assert_eq!(r, json!({"event": "calling"}));
    let inc = callee.wait_result("incomingcall", Some(&caller.name), T);
    let (callee_peer, answer) = peers
        .subscriber(inc["jsep"]["sdp"].as_str().expect("incomingcall offer"))
        .expect("callee peer");
    let r = callee.ok(
        json!({"request": "accept"}),
        Some(json!({"type": "answer", "sdp": answer})),
    );
    assert_eq!(r["event"], "accepted", "{r}");
    let acc = caller.wait_result("accepted", Some(&callee.name), T);
    caller_peer
        .set_answer(acc["jsep"]["sdp"].as_str().expect("accepted answer"))
        .expect("caller answer");
    caller_peer.wait_connected(T).expect("caller connected");
    callee_peer.wait_connected(T).expect("callee connected");
    let mids = mids(&answer);
    let refs: Vec<&str> = mids.iter().map(String::as_str).collect();
    callee_peer
        .wait_received(&refs, 200, T)
        .expect("the caller's media at the callee");
    (caller_peer, Arc::new(callee_peer))
}

/// Waits until `peer` has received `more` bytes past `from` (media still flows).
fn media_grows(peer: &Peer, more: u64, what: &str) {
    let from = total(peer);
    eventually(what, || total(peer) > from + more);
}

/// `a` hangs up; `b` hears it from Janus, through its own proxy.
fn hangup_reaches(a: &mut CallParty, b: &mut CallParty) {
    let r = a.ok(json!({"request": "hangup"}), None);
    assert_eq!(
        r,
        json!({"event": "hangup", "username": a.name, "reason": "Explicit hangup"})
    );
    b.wait_result("hangup", Some(&a.name), T);
}

/// A call without media (synthetic SDPs) between two parties, then hung up by the caller.
fn short_call(caller: &mut CallParty, callee: &mut CallParty) {
    let r = caller.ok(
        json!({"request": "call", "username": callee.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(r, json!({"event": "calling"}));
    callee.wait_result("incomingcall", Some(&caller.name), T);
    let r = callee.ok(json!({"request": "accept"}), Some(call_jsep("answer")));
    assert_eq!(r["event"], "accepted", "{r}");
    caller.wait_result("accepted", Some(&callee.name), T);
    hangup_reaches(caller, callee);
}

#[test]
fn videocall_in_progress_survives_kill9_of_one_partys_proxy() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = videocall_proxy(&janus, &redis, "a");
    let b = videocall_proxy(&janus, &redis, "b");
    let peers = Peers::new();
    // Alice on A calls Bob on B (a call across proxies), with media.
    let mut alice = caller_of(&a, "alice");
    let mut bob = caller_of(&b, "bob");
    let (alice_peer, bob_peer) = media_call(&peers, &mut alice, &mut bob);
    let sampler = Sampler::start(bob_peer.clone());

    let killed = Instant::now();
    kill9(&mut a);
    reclaim(&mut alice, &b);
    let failover = killed.elapsed();
    // Alice's handle is relayed by B: a `set` reaches her backend handle and is answered.
    let r = alice.ok(json!({"request": "set", "bitrate": 256000}), None);
    assert_eq!(r["event"], "set", "{r}");
    media_grows(
        &bob_peer,
        20_000,
        "the call's media flows after the failover",
    );
    let gap = sampler.stop();
    println!(
        "videocall failover: kill -9 of the caller's proxy -> claim answered in {} ms; longest \
         pause of the callee's inbound media {} ms",
        failover.as_millis(),
        gap.as_millis()
    );
    assert!(gap < Duration::from_secs(1), "media gap {gap:?}");
    // Her name moved with her: Bob's proxy finds her on B.
    let alice_name = alice.name.clone();
    assert!(bob.exists(&alice_name));
    // Bob hangs up: Janus tells Alice's adopted backend handle, B relays it to her.
    hangup_reaches(&mut bob, &mut alice);
    alice_peer.close();
    bob_peer.close();
    // And they can call each other again, both on B now.
    short_call(&mut bob, &mut alice);
    let m = metrics(&b);
    for line in [
        "janus_proxy_adopted_handles_total 1",
        "janus_proxy_unadoptable_handles_total 0",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
}

#[test]
fn videocall_with_both_parties_on_the_dead_proxy_keeps_its_media() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = videocall_proxy(&janus, &redis, "a");
    let b = videocall_proxy(&janus, &redis, "b");
    let peers = Peers::new();
    let mut alice = caller_of(&a, "alice");
    let mut bob = caller_of(&a, "bob");
    let (alice_peer, bob_peer) = media_call(&peers, &mut alice, &mut bob);
    let sampler = Sampler::start(bob_peer.clone());

    kill9(&mut a);
    reclaim(&mut bob, &b);
    reclaim(&mut alice, &b);
    media_grows(
        &bob_peer,
        20_000,
        "the call's media flows after the failover",
    );
    let gap = sampler.stop();
    println!(
        "videocall failover, both parties on the dead proxy: longest pause of the callee's \
         inbound media {} ms",
        gap.as_millis()
    );
    assert!(gap < Duration::from_secs(1), "media gap {gap:?}");
    let mut names = bob.list();
    names.sort();
    let mut want = vec![alice.name.clone(), bob.name.clone()];
    want.sort();
    assert!(
        want.iter().all(|n| names.contains(n)),
        "{want:?} in {names:?}"
    );
    hangup_reaches(&mut alice, &mut bob);
    alice_peer.close();
    bob_peer.close();
    short_call(&mut alice, &mut bob);
}

#[test]
fn a_ringing_callee_accepts_after_the_failover_of_its_proxy() {
    let janus = janus();
    let redis = RedisServer::start();
    let a = videocall_proxy(&janus, &redis, "a");
    let mut b = videocall_proxy(&janus, &redis, "b");
    let mut alice = caller_of(&a, "alice");
    let mut bob = caller_of(&b, "bob");
    let r = alice.ok(
        json!({"request": "call", "username": bob.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(r, json!({"event": "calling"}));
    bob.wait_result("incomingcall", Some(&alice.name), T);
    // Bob's proxy dies while his phone rings; he answers through A.
    kill9(&mut b);
    reclaim(&mut bob, &a);
    let r = bob.ok(json!({"request": "accept"}), Some(call_jsep("answer")));
    assert_eq!(r["event"], "accepted", "{r}");
    alice.wait_result("accepted", Some(&bob.name), T);
    hangup_reaches(&mut alice, &mut bob);
}

#[test]
fn a_videocall_handle_whose_name_was_taken_meanwhile_is_ended() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = videocall_proxy(&janus, &redis, "a");
    let b = videocall_proxy(&janus, &redis, "b");
    let mut alice = caller_of(&a, "alice");
    let name = alice.name.clone();
    kill9(&mut a);
    // Alice stays away past her name's TTL (3 s); someone else takes it on B.
    let mut other = CallParty::attach(&b.url(), VC, &name);
    eventually("the dead proxy's name expires and is taken on B", || {
        let d = other.msg(json!({"request": "register", "username": name}), None);
        d.get("error_code").is_none()
    });
    reclaim(&mut alice, &b);
    alice
        .c
        .recv_event(|e| e["janus"] == "hangup" && e["sender"] == alice.hid, T);
    alice
        .c
        .recv_event(|e| e["janus"] == "detached" && e["sender"] == alice.hid, T);
    // The name stays with its new owner.
    let mut probe = caller_of(&b, "probe");
    assert!(probe.exists(&name));
    short_call(&mut probe, &mut other);
}

/// The handle record of a client handle in Redis, if any.
fn record_of(redis: &RedisServer, sid: u64, hid: u64) -> Option<Value> {
    let mut conn = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .ok()?;
    let record: Option<String> = redis::cmd("HGET")
        .arg(format!("januscloud:cluster:session:{sid}"))
        .arg(format!("h:{hid}"))
        .query(&mut conn)
        .ok()?;
    serde_json::from_str(&record?).ok()
}

#[test]
fn a_videocall_being_set_up_is_ended_with_a_hangup_after_the_failover() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = videocall_proxy(&janus, &redis, "a");
    let b = videocall_proxy(&janus, &redis, "b");
    let mut bob = caller_of(&a, "bob");
    // A call for Bob comes from another proxy (its admin route) and its caller never
    // follows it up: Bob's side of the call is being set up (a backend handle, no
    // `incomingcall` yet) for the next 10 s.
    let url = format!(
        "http://127.0.0.1:{}/plugins/videocall/{}",
        a.admin_port, bob.name
    );
    let body =
        json!({"caller_username": "ghost", "backend_server_url": janus.servers()[0].1}).to_string();
    let r = http("POST", &url, Some(("application/json", &body)), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut record = None;
    eventually("the call being set up is recorded", || {
        record = record_of(&redis, bob.sid, bob.hid).filter(|r| r["backend"].is_object());
        record.is_some()
    });
    let record = record.expect("record");
    let state: Value =
        serde_json::from_str(record["state"].as_str().expect("state")).expect("state JSON");
    assert_eq!(state["peer"], "ghost", "{state}");
    assert!(state.get("peered").is_none(), "{state}");
    let stray = record["backend"]["handle"]
        .as_u64()
        .expect("backend handle");
    let backend_session = record["backend"]["session"]
        .as_u64()
        .expect("backend session");

    kill9(&mut a);
    reclaim(&mut bob, &b);
    // Bob hears that the call ended, the VideoCall way, right after his claim.
    let h = bob.wait_result("hangup", Some(&bob.name.clone()), T);
    assert_eq!(
        h["plugindata"]["data"]["result"]["reason"], "Proxy failover",
        "{h}"
    );
    // His backend handle is retired on Janus (after waiting for a release that never comes
    // from a peer that never was: at most 15 s), not left behind.
    let mut admin = janus.admin(0);
    let until = Instant::now() + Duration::from_secs(25);
    while admin.list_handles(backend_session).contains(&stray) {
        assert!(
            Instant::now() < until,
            "the set-up call's backend handle is still on Janus"
        );
        poll_pause();
    }
    // He is still registered and can be called, through B.
    let mut probe = caller_of(&b, "probe");
    let bob_name = bob.name.clone();
    assert!(probe.exists(&bob_name));
    short_call(&mut probe, &mut bob);
}

#[test]
fn a_videocall_in_a_call_survives_two_failovers_in_a_row() {
    let janus = janus();
    let redis = RedisServer::start();
    let mut a = videocall_proxy(&janus, &redis, "a");
    let mut b = videocall_proxy(&janus, &redis, "b");
    let c = videocall_proxy(&janus, &redis, "c");
    let mut alice = caller_of(&a, "alice");
    let mut bob = caller_of(&c, "bob");
    let r = alice.ok(
        json!({"request": "call", "username": bob.name}),
        Some(call_jsep("offer")),
    );
    assert_eq!(r, json!({"event": "calling"}));
    bob.wait_result("incomingcall", Some(&alice.name), T);
    let r = bob.ok(json!({"request": "accept"}), Some(call_jsep("answer")));
    assert_eq!(r["event"], "accepted", "{r}");
    alice.wait_result("accepted", Some(&bob.name), T);
    // A dies, B adopts Alice; then B dies, and C adopts what B had adopted: her name (B
    // wrote her record again with its own directory uuid) and her call.
    kill9(&mut a);
    reclaim(&mut alice, &b);
    kill9(&mut b);
    reclaim(&mut alice, &c);
    let alice_name = alice.name.clone();
    assert!(bob.exists(&alice_name));
    hangup_reaches(&mut bob, &mut alice);
    short_call(&mut alice, &mut bob);
}
