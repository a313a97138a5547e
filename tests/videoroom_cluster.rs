//! One VideoRoom conference across two proxies sharing a Redis (`room_db`), over three real
//! Janus backends, with real media (janus-mediapeer): the room's owner proxy (A, where it
//! was created) holds it; participants of the other proxy (B) are relayed there. A
//! subscriber on B receives the publishers of A (and one of B) in one PeerConnection; what
//! B's participants see is what A's see (same events, same ids); a publisher leaving on A
//! is seen on B; the owner killed ends B's participants (`hangup`, `detached`) and the
//! room is taken over by B once the owner's key ran out. With `[cluster] session_db` and a
//! third proxy C, a subscriber relayed through B survives kill -9 of B: its client claims
//! its session on C (or on A), which claims B's peer session on A, and the media never
//! stops; with an owner that keeps no orphaned session (reclaim 0) the relayed handle is
//! ended cleanly after the claim instead. And a room outlives its owner: killed, the owner's
//! clients claim their sessions on the other proxy, which takes the room over with the
//! snapshot the owner kept in Redis; the media never stops.
//!
//! Ports: Janus ws 18300-18302 (admin 17300-17302), RTP 33000-33899.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::vr::*;
use common::*;
use janus_mediapeer::{Peer, Peers};
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;
/// Long enough for Opus silence (about 150 bytes a second) to show.
const AUDIO_BYTES: u64 = 150;
/// The room owner key's TTL in these tests (seconds).
const OWNER_TTL: u64 = 2;
/// A room both proxies know from their config.
const STATIC_ROOM: u64 = 4321;

/// Janus keeps a dead proxy's sessions 30 s for another proxy to claim.
fn janus() -> Backends {
    backends_with_env(
        "vr-cluster",
        3,
        18300,
        33000,
        300,
        &[("JANUS_RECLAIM_SESSION_TIMEOUT", "30".into())],
    )
}

fn cluster_proxy(be: &Backends, redis: &RedisServer) -> Proxy {
    let cfg = proxy_config(be)
        .set_str("videoroom", "room_db", &redis.url())
        .set("videoroom", "owner_ttl", &OWNER_TTL.to_string())
        .raw(&format!(
            "[[videoroom.rooms]]\nroom = {STATIC_ROOM}\ndescription = \"both\"\npublishers = 6\n"
        ));
    Proxy::start(cfg)
}

fn round_trips(p: &Proxy) -> f64 {
    metric(p, "janus_proxy_videoroom_room_owner_round_trips").unwrap_or(0.0)
}

/// A publisher-type participant that does not publish: it only watches the room's events.
fn watcher(url: &str, room: u64, id: u64) -> (Vr, u64, Value) {
    let mut v = Vr::connect(url);
    let h = v.handle();
    let (j, _) = v.call(
        h,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": id, "display": format!("w{id}")}),
        None,
    );
    assert_eq!(j["videoroom"], "joined", "{j}");
    (v, h, j)
}

/// `joined` without what differs between two participants (their own id and private id).
fn joined_shape(j: &Value) -> Value {
    let mut j = j.clone();
    if let Some(m) = j.as_object_mut() {
        m.remove("id");
        m.remove("private_id");
    }
    j
}

#[test]
fn a_subscriber_on_b_receives_publishers_of_a_in_one_peerconnection() {
    let be = janus();
    let redis = RedisServer::start();
    let a = cluster_proxy(&be, &redis);
    let b = cluster_proxy(&be, &redis);
    let peers = Peers::new();
    let room = fresh_room();

    // The room is created through A: A owns it; B knows of it through Redis.
    let mut admin = Vr::connect(&a.url());
    let ha = admin.handle();
    let c = admin.sync(
        ha,
        json!({"request": "create", "room": room, "publishers": 10}),
    );
    assert_eq!(c["videoroom"], "created", "{c}");
    let mut admin_b = Vr::connect(&b.url());
    let hb = admin_b.handle();
    let e = admin_b.sync(hb, json!({"request": "exists", "room": room}));
    assert_eq!(
        e,
        json!({"videoroom": "success", "room": room, "exists": true})
    );
    let again = admin_b.sync(hb, json!({"request": "create", "room": room}));
    assert_eq!(again["error_code"], 427, "{again}");

    // Two watchers, one per proxy, see the room from the first event on.
    let (mut wa, wha, ja) = watcher(&a.url(), room, 901);
    let rt_b = round_trips(&b);
    let rt_a = round_trips(&a);
    let (mut wb, whb, jb) = watcher(&b.url(), room, 902);
    let join_cost_b = round_trips(&b) - rt_b;
    let join_cost_a = round_trips(&a) - rt_a;
    eprintln!(
        "Redis round trips of one join through B (room owned by A): {join_cost_b} on B, {join_cost_a} on A"
    );
    assert_eq!(join_cost_b, 1.0, "one claim script on B");
    assert_eq!(join_cost_a, 0.0, "the owner knows its room");
    assert_eq!(joined_shape(&ja), joined_shape(&jb), "joined on A and on B");
    assert_eq!(jb["room"], room, "{jb}");

    // Three publishers through A, one through B, with media.
    let p1 = publish(&peers, &a.url(), room, 1);
    let _p2 = publish(&peers, &a.url(), room, 2);
    let _p3 = publish(&peers, &a.url(), room, 3);
    let rt_b = round_trips(&b);
    let _p4 = publish(&peers, &b.url(), room, 4);
    eprintln!(
        "Redis round trips of a publisher's join and configure through B: {}",
        round_trips(&b) - rt_b
    );
    let mut at = placement(&be, room, &[1, 2, 3, 4]);
    at.sort_unstable();
    at.dedup();
    assert_eq!(at, vec![0, 1, 2], "the publishers span the three backends");

    // Both watchers saw the same announcements, in the same order.
    for id in [1u64, 2, 3, 4] {
        let on_a = wa.event(wha, |d| {
            d["publishers"]
                .as_array()
                .is_some_and(|l| l.iter().any(|p| p["id"] == id))
        });
        let on_b = wb.event(whb, |d| {
            d["publishers"]
                .as_array()
                .is_some_and(|l| l.iter().any(|p| p["id"] == id))
        });
        assert_eq!(on_a, on_b, "announcement of {id} on A and on B");
        assert_eq!(on_b["room"], room, "{on_b}");
    }

    // One PeerConnection on B receives the four feeds.
    let mut v = Vr::connect(&b.url());
    let h = v.handle();
    let streams: Vec<Value> = [1u64, 2, 3, 4].iter().map(|f| json!({"feed": f})).collect();
    let subscribed_at = Instant::now();
    let (attached, jsep) = v.call(
        h,
        json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams}),
        None,
    );
    assert_eq!(attached["videoroom"], "attached", "{attached}");
    assert_eq!(attached["room"], room, "{attached}");
    // The same subscription through the owner answers the same (wherever each is placed).
    let mut va = Vr::connect(&a.url());
    let hsa = va.handle();
    let (attached_a, _) = va.call(
        hsa,
        json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams}),
        None,
    );
    assert_eq!(attached_a, attached, "attached through A and through B");
    let peer = answer_offer(&peers, &mut v, h, &jsep);
    let by_feed = mids_by_feed(&attached);
    assert_eq!(by_feed.len(), 4, "{attached}");
    for st in attached["streams"].as_array().unwrap() {
        let expected = if st["type"] == "audio" { "0" } else { "1" };
        assert_eq!(st["feed_mid"], expected, "publisher mids: {st}");
    }
    let all: Vec<String> = by_feed.values().flatten().cloned().collect();
    peer.wait_received(
        &all.iter().map(String::as_str).collect::<Vec<_>>(),
        AUDIO_BYTES,
        T,
    )
    .expect("media of every feed");
    let got = peer.received();
    eprintln!(
        "subscriber on B, bytes per mid {:?} ({:?} after its join)",
        got,
        subscribed_at.elapsed()
    );
    for (feed, mids) in &by_feed {
        for m in mids {
            assert!(
                got.get(m).copied().unwrap_or(0) >= AUDIO_BYTES,
                "feed {feed} mid {m}: {got:?}"
            );
        }
    }

    // listparticipants through B is the owner's.
    let lp_a = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    let lp_b = admin_b.sync(hb, json!({"request": "listparticipants", "room": room}));
    assert_eq!(lp_a, lp_b);
    assert_eq!(
        lp_b["participants"].as_array().map(Vec::len),
        Some(6),
        "{lp_b}"
    );

    // Publisher 1 leaves on A: B's watcher and subscriber are told as A's watcher is.
    let mut p1 = p1;
    let (l, _) = p1.v.call(p1.h, json!({"request": "leave"}), None);
    assert_eq!(l["leaving"], "ok", "{l}");
    for w in [(&mut wa, wha), (&mut wb, whb)] {
        let (vw, hw) = w;
        let u = vw.event(hw, |d| d.get("unpublished").is_some());
        assert_eq!(
            u,
            json!({"videoroom": "event", "room": room, "unpublished": 1})
        );
        let lv = vw.event(hw, |d| d.get("leaving").is_some());
        assert_eq!(
            lv,
            json!({"videoroom": "event", "room": room, "leaving": 1})
        );
    }
    let upd = v.c.recv_event(
        |e| {
            e["sender"] == h
                && e["plugindata"]["data"]["videoroom"] == "updated"
                && e.get("jsep").is_some()
        },
        T,
    );
    let updated = data_of(&upd);
    assert_eq!(updated["room"], room, "{updated}");
    assert!(
        !mids_by_feed(&updated).contains_key(&1),
        "feed 1 is gone from the subscription: {updated}"
    );
    accept_offer(&mut v, h, &peer, &upd["jsep"]);
    let keep: Vec<String> = [2u64, 3, 4]
        .iter()
        .flat_map(|f| by_feed[f].clone())
        .collect();
    wait_growth(&peer, &keep, AUDIO_BYTES, T);

    // B's watcher leaves: A's watcher sees it leave.
    let (l, _) = wb.call(whb, json!({"request": "leave"}), None);
    assert_eq!(l["leaving"], "ok", "{l}");
    let lv = wa.event(wha, |d| d.get("leaving").is_some());
    assert_eq!(
        lv,
        json!({"videoroom": "event", "room": room, "leaving": 902})
    );

    // What the relay costs a join: the join's answer time through the owner and through B.
    let join_time = |url: &str, id: u64| -> Duration {
        let mut v = Vr::connect(url);
        let h = v.handle();
        let t = Instant::now();
        let (j, _) = v.call(
            h,
            json!({"request": "join", "room": room, "ptype": "publisher", "id": id}),
            None,
        );
        let took = t.elapsed();
        assert_eq!(j["videoroom"], "joined", "{j}");
        took
    };
    let mut on_a: Vec<Duration> = (0..5).map(|i| join_time(&a.url(), 700 + i)).collect();
    let mut on_b: Vec<Duration> = (0..5).map(|i| join_time(&b.url(), 800 + i)).collect();
    on_a.sort_unstable();
    on_b.sort_unstable();
    eprintln!(
        "publisher join answered, median of 5: through the owner A {:?}, relayed through B {:?}",
        on_a[2], on_b[2]
    );
}

#[test]
fn the_owner_killed_ends_the_relayed_participants_and_the_room_is_taken_over() {
    let be = janus();
    let redis = RedisServer::start();
    let mut a = cluster_proxy(&be, &redis);
    let b = cluster_proxy(&be, &redis);
    let room = STATIC_ROOM;
    // A takes the static room first (both know it).
    let (_wa, _wha, _) = watcher(&a.url(), room, 11);
    let (mut wb, whb, jb) = watcher(&b.url(), room, 12);
    assert_eq!(jb["room"], room, "{jb}");
    let mut sb = Vr::connect(&b.url());
    let hs = sb.handle();
    let e = sb.sync(hs, json!({"request": "listparticipants", "room": room}));
    assert_eq!(e["participants"].as_array().map(Vec::len), Some(2), "{e}");

    let killed = Instant::now();
    let _ = a.child.kill();
    let _ = a.child.wait();
    // B's participant of A's room ends as one whose backend died.
    let hangup =
        wb.c.recv_event(|e| e["janus"] == "hangup" && e["sender"] == whb, T);
    eprintln!(
        "owner killed -> relayed participant hung up in {:?}: {hangup}",
        killed.elapsed()
    );
    wb.c.recv_event(|e| e["janus"] == "detached" && e["sender"] == whb, T);
    // A join through B fails cleanly while the dead owner's key lives, then B takes the
    // room: a new, empty room.
    let deadline = Instant::now() + Duration::from_secs(OWNER_TTL * 5);
    let mut refused = 0;
    let joined = loop {
        let h = wb.handle();
        let (j, _) = wb.call(
            h,
            json!({"request": "join", "room": room, "ptype": "publisher", "id": 13}),
            None,
        );
        if j["videoroom"] == "joined" {
            break j;
        }
        assert_eq!(j["error_code"], 503, "{j}");
        refused += 1;
        assert!(Instant::now() < deadline, "room never taken over: {j}");
        poll_pause();
    };
    eprintln!(
        "room taken over by B {:?} after the kill ({refused} joins refused with 503 meanwhile)",
        killed.elapsed()
    );
    assert_eq!(joined["publishers"], json!([]), "{joined}");
    let lp = sb.sync(hs, json!({"request": "listparticipants", "room": room}));
    assert_eq!(
        lp["participants"],
        json!([{"id": 13, "publisher": false}]),
        "{lp}"
    );
}

#[test]
fn a_relaying_proxy_killed_its_participants_leave_the_owners_room() {
    let be = janus();
    let redis = RedisServer::start();
    let a = cluster_proxy(&be, &redis);
    let mut b = cluster_proxy(&be, &redis);
    let room = fresh_room();
    let mut admin = Vr::connect(&a.url());
    let ha = admin.handle();
    admin.sync(ha, json!({"request": "create", "room": room}));
    let (mut wa, wha, _) = watcher(&a.url(), room, 21);
    let (_wb, _whb, _) = watcher(&b.url(), room, 22);
    let killed = Instant::now();
    let _ = b.child.kill();
    let _ = b.child.wait();
    // A's session of B's peer link closed (reclaim_session_timeout 0): its handle goes,
    // and the participant leaves as a client of A that disconnected would.
    let lv = wa.event(wha, |d| d.get("leaving").is_some());
    assert_eq!(
        lv,
        json!({"videoroom": "event", "room": room, "leaving": 22})
    );
    eprintln!(
        "relaying proxy killed -> its participant left the owner's room in {:?}",
        killed.elapsed()
    );
    let lp = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    assert_eq!(
        lp["participants"],
        json!([{"id": 21, "display": "w21", "publisher": false}])
    );
}

#[test]
fn redis_away_gives_clean_errors_and_the_room_comes_back_with_it() {
    let be = janus();
    let mut redis = RedisServer::start();
    let a = cluster_proxy(&be, &redis);
    let b = cluster_proxy(&be, &redis);
    let room = fresh_room();
    let mut admin = Vr::connect(&a.url());
    let ha = admin.handle();
    admin.sync(ha, json!({"request": "create", "room": room}));
    let (_wa, _wha, _) = watcher(&a.url(), room, 31);
    let (_wb, _whb, _) = watcher(&b.url(), room, 32);

    let _ = redis.child.kill();
    let _ = redis.child.wait();
    // The owner serves its room without Redis; another proxy cannot find the owner.
    let (_wa2, _, _) = watcher(&a.url(), room, 33);
    let mut vb = Vr::connect(&b.url());
    let h = vb.handle();
    let (e, _) = vb.call(
        h,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 34}),
        None,
    );
    assert_eq!(e["error_code"], 503, "{e}");
    eprintln!("join through B while Redis is away: {e}");
    // The relayed participant joined before is still there and still hears the room.
    let lp = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    assert_eq!(lp["participants"].as_array().map(Vec::len), Some(3), "{lp}");

    // Redis back, empty: the owner writes its rooms back at its next refresh, and joins
    // through B reach it again.
    let back = Instant::now();
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(OWNER_TTL * 3);
    let joined = loop {
        let h = vb.handle();
        let (j, _) = vb.call(
            h,
            json!({"request": "join", "room": room, "ptype": "publisher", "id": 34}),
            None,
        );
        if j["videoroom"] == "joined" {
            break j;
        }
        // Before the owner's refresh, B finds no owner and does not know the room.
        assert!(
            j["error_code"] == 426 || j["error_code"] == 503,
            "only clean errors meanwhile: {j}"
        );
        assert!(Instant::now() < deadline, "the room never came back: {j}");
        poll_pause();
    };
    eprintln!(
        "join through B works again {:?} after Redis came back",
        back.elapsed()
    );
    assert_eq!(joined["room"], room, "{joined}");
    let lp = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    assert_eq!(lp["participants"].as_array().map(Vec::len), Some(4), "{lp}");
}

/// Sends one inline command to `redis` and returns its first reply line.
#[test]
fn an_owner_whose_room_was_taken_ends_it_as_destroyed() {
    let be = janus();
    let redis = RedisServer::start();
    let a = cluster_proxy(&be, &redis);
    let b = cluster_proxy(&be, &redis);
    let room = STATIC_ROOM;
    let (mut wa, wha, _) = watcher(&a.url(), room, 41);
    let (mut wb, whb, _) = watcher(&b.url(), room, 42);
    // What a proxy taking the room while Redis had lost A's key leaves in Redis.
    let key = format!("januscloud:videoroom_owner:{room}");
    assert_eq!(
        redis.command(&format!("GET {key}")).lines().nth(1),
        Some(format!("ws://127.0.0.1:{}", a.port).as_str())
    );
    let taken = Instant::now();
    assert_eq!(
        redis.command(&format!("SET {key} ws://127.0.0.1:9 PX 60000")),
        "+OK\r\n"
    );
    // A notices at its next refresh: its participants, relayed ones too, are told.
    let d = wa.event(wha, |d| d["videoroom"] == "destroyed");
    assert_eq!(d, json!({"videoroom": "destroyed", "room": room}));
    let d = wb.event(whb, |d| d["videoroom"] == "destroyed");
    assert_eq!(d, json!({"videoroom": "destroyed", "room": room}));
    eprintln!(
        "room taken -> ended on its former owner in {:?}",
        taken.elapsed()
    );
    // The room is the new owner's: joins go there (here: nobody listens, 503).
    let (j, _) = wa.call(
        wha,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 43}),
        None,
    );
    assert_eq!(j["error_code"], 503, "{j}");
}

/// A proxy of a failover cluster that also shares rooms: `[cluster] session_db` on the same
/// Redis, heartbeat 2 s, and a reclaim window of 30 s (the owner keeps the peer session of
/// a dead relaying proxy for the adopter to claim).
fn failover_proxy(be: &Backends, redis: &RedisServer, name: &str) -> Proxy {
    failover_proxy_reclaiming(be, redis, name, 30)
}

fn failover_proxy_reclaiming(
    be: &Backends,
    redis: &RedisServer,
    name: &str,
    reclaim_s: u64,
) -> Proxy {
    Proxy::start(failover_config(be, redis, name, reclaim_s))
}

fn failover_config(be: &Backends, redis: &RedisServer, name: &str, reclaim_s: u64) -> ProxyConfig {
    proxy_config(be)
        .set_str("videoroom", "room_db", &redis.url())
        .set("videoroom", "owner_ttl", &OWNER_TTL.to_string())
        .set("general", "reclaim_session_timeout", &reclaim_s.to_string())
        .set_str("cluster", "session_db", &redis.url())
        .set_str("cluster", "proxy_name", name)
        .set("cluster", "heartbeat_ttl", "2")
        .set("cluster", "adopt_timeout", "20")
}

/// A new room (up to 6 publishers) created through `url`, which owns it then: the
/// creating client, its handle, the room id.
fn new_room(url: &str) -> (Vr, u64, u64) {
    let room = fresh_room();
    let mut admin = Vr::connect(url);
    let ha = admin.handle();
    let cr = admin.sync(
        ha,
        json!({"request": "create", "room": room, "publishers": 6}),
    );
    assert_eq!(cr["videoroom"], "created", "{cr}");
    (admin, ha, room)
}

/// A subscriber through `url` to `feeds` of `room`, in one PeerConnection whose media
/// flows: its client, its handle, the peer and its mids.
fn flowing(peers: &Peers, url: &str, room: u64, feeds: &[u64]) -> (Vr, u64, Peer, Vec<String>) {
    let Sub {
        v,
        h,
        peer,
        attached,
        ..
    } = subscribe(peers, url, room, feeds);
    let by_feed = mids_by_feed(&attached);
    let mids: Vec<String> = by_feed.values().flatten().cloned().collect();
    assert_eq!(by_feed.len(), feeds.len(), "{attached}");
    wait_growth(&peer, &mids, AUDIO_BYTES, T);
    (v, h, peer, mids)
}

/// A subscriber's media watched across a proxy's death: the longest pause of its bytes in
/// 2 s of calm, then a sampler running until [`Switch::gap`].
struct Switch {
    peer: std::sync::Arc<Peer>,
    calm: Duration,
    sampler: Sampler,
    at_kill: BTreeMap<String, u64>,
}

impl Switch {
    fn start(peer: &std::sync::Arc<Peer>) -> Switch {
        let calm = Sampler::start(peer.clone());
        std::thread::sleep(Duration::from_secs(2));
        Switch {
            peer: peer.clone(),
            calm: calm.stop(),
            sampler: Sampler::start(peer.clone()),
            at_kill: BTreeMap::new(),
        }
    }

    /// The proxy was just killed.
    fn killed(&mut self) {
        self.at_kill = self.peer.received().into_iter().collect();
    }

    /// Waits until every mid got well past what it had at the kill; the longest pause of
    /// the media since the sampler started.
    fn gap(self, mids: &[String]) -> Duration {
        let until = Instant::now() + T;
        loop {
            let now = self.peer.received();
            let past = |m: &String| {
                now.get(m).copied().unwrap_or(0)
                    >= self.at_kill.get(m).copied().unwrap_or(0) + 4 * AUDIO_BYTES
            };
            if mids.iter().all(past) {
                break;
            }
            assert!(
                Instant::now() < until,
                "media stopped after the failover: at kill {:?}, now {now:?}",
                self.at_kill
            );
            poll_pause();
        }
        std::thread::sleep(Duration::from_millis(500));
        self.sampler.stop()
    }
}

/// Issue 13, the VideoRoom part: a subscriber relayed through B to the room's owner A
/// survives kill -9 of B. Its client reconnects to C and claims its session; C adopts the
/// relayed handle by claiming B's peer session on A (which A kept for its reclaim window)
/// and relays it again. The media (Janus → subscriber, never through a proxy) never stops;
/// later requests and events go through C. A publisher relayed through B is adopted the same
/// way (its feed keeps reaching the subscriber). A participant of the same session in a
/// room B owned is adopted too: C takes that room over from the dead B.
#[test]
fn a_relayed_subscriber_survives_kill9_of_its_proxy() {
    relayed_subscriber_survives_kill9(false);
}

/// The same, the client coming back to the owner A itself: A adopts the relayed handle by
/// claiming B's peer session on its own client API (a peer link to itself).
#[test]
fn a_relayed_subscriber_survives_kill9_of_its_proxy_adopted_by_the_owner() {
    relayed_subscriber_survives_kill9(true);
}

fn relayed_subscriber_survives_kill9(back_to_owner: bool) {
    let be = janus();
    let redis = RedisServer::start();
    let a = failover_proxy(&be, &redis, "vra");
    let mut b = failover_proxy(&be, &redis, "vrb");
    let c = (!back_to_owner).then(|| failover_proxy(&be, &redis, "vrc"));
    let adopter = c.as_ref().unwrap_or(&a);
    let name = if back_to_owner { "A (the owner)" } else { "C" };
    let peers = Peers::new();
    let (mut admin, ha, room) = new_room(&a.url());
    // A room B owns: the adopter takes it over from the dead B.
    let room_b = fresh_room();
    let mut admin_b = Vr::connect(&b.url());
    let hb = admin_b.handle();
    let cr = admin_b.sync(hb, json!({"request": "create", "room": room_b}));
    assert_eq!(cr["videoroom"], "created", "{cr}");

    let p1 = publish(&peers, &a.url(), room, 1);
    // Publisher 2 is relayed through B as well: its client claims its session too.
    let p2 = publish(&peers, &b.url(), room, 2);

    // The subscriber, through B, and a watcher of B's room in the same session.
    let (mut v, h, peer, mids) = flowing(&peers, &b.url(), room, &[1, 2]);
    let hw = v.handle();
    let (j, _) = v.call(
        hw,
        json!({"request": "join", "room": room_b, "ptype": "publisher", "id": 77}),
        None,
    );
    assert_eq!(j["videoroom"], "joined", "{j}");

    let peer = std::sync::Arc::new(peer);
    let mut switch = Switch::start(&peer);
    let killed = Instant::now();
    let _ = b.child.kill();
    let _ = b.child.wait();
    switch.killed();
    let (at_kill, baseline) = (peer.received(), switch.calm);
    drop(v.c);
    let mut cc = adopter.client();
    let r = cc.request(json!({"janus": "claim", "session_id": v.sid}));
    let failover = killed.elapsed();
    assert_eq!(r["janus"], "success", "claim on {name}: {r}");
    let mut v = Vr { c: cc, sid: v.sid };
    let mut c2 = adopter.client();
    let r = c2.request(json!({"janus": "claim", "session_id": p2.v.sid}));
    assert_eq!(r["janus"], "success", "publisher's claim on {name}: {r}");
    // The participant of B's own room is adopted too: the adopter took that room over
    // from B (see a_subscriber_on_the_rooms_owner_survives_kill9_of_it).
    assert_eq!(
        metric(adopter, "janus_proxy_adopted_handles_total"),
        Some(3.0),
        "the relayed subscriber and publisher, and the participant of B's room adopted"
    );
    assert_eq!(
        metric(adopter, "janus_proxy_unadoptable_handles_total").unwrap_or(0.0),
        0.0
    );
    let lp = v.sync(hw, json!({"request": "listparticipants", "room": room_b}));
    assert_eq!(
        lp["participants"],
        json!([{"id": 77, "publisher": false}]),
        "B's room, taken over by {name}: {lp}"
    );

    // The media keeps coming on every mid, past what had arrived at the kill.
    let gap = switch.gap(&mids);
    eprintln!(
        "relayed subscriber: kill -9 of B -> claim answered by {name} in {} ms; longest media \
         pause across the switch {} ms (in 2 s before the kill: {} ms); bytes per mid at the \
         kill {at_kill:?}, now {:?}",
        failover.as_millis(),
        gap.as_millis(),
        baseline.as_millis(),
        peer.received()
    );
    assert!(gap < Duration::from_secs(1), "media paused {gap:?}");

    // The adopted relay answers through the adopter, and the owner's events reach it: pause and
    // start again, then publisher 1 leaves and the subscription is updated.
    let (pz, _) = v.call(h, json!({"request": "pause"}), None);
    assert_eq!(pz["paused"], "ok", "{pz}");
    let (st, _) = v.call(h, json!({"request": "start"}), None);
    assert_eq!(st["started"], "ok", "{st}");
    wait_growth(&peer, &mids, AUDIO_BYTES, T);
    let mut p1 = p1;
    let (l, _) = p1.v.call(p1.h, json!({"request": "leave"}), None);
    assert_eq!(l["leaving"], "ok", "{l}");
    let upd = v.c.recv_event(
        |e| e["sender"] == h && e["plugindata"]["data"]["videoroom"] == "updated",
        T,
    );
    assert!(
        !mids_by_feed(&data_of(&upd)).contains_key(&1),
        "feed 1 is gone from the subscription: {upd}"
    );
    // The owner still lists the relayed subscriber's feeds' publisher 2 only.
    let lp = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    assert_eq!(lp["participants"].as_array().map(Vec::len), Some(1), "{lp}");
    drop(a);
}

/// An owner without a reclaim window drops the peer session of a dead relaying proxy at
/// once: its relayed participant leaves the room, and after the claim on C (whose claim of
/// the peer session on A is refused) the client gets `hangup` and `detached` for the handle
/// while its session lives on.
#[test]
fn a_relayed_handle_whose_peer_session_the_owner_dropped_is_ended_cleanly() {
    let be = janus();
    let redis = RedisServer::start();
    let a = failover_proxy_reclaiming(&be, &redis, "vra0", 0);
    let mut b = failover_proxy(&be, &redis, "vrb0");
    let c = failover_proxy(&be, &redis, "vrc0");
    let room = fresh_room();
    let mut admin = Vr::connect(&a.url());
    let ha = admin.handle();
    admin.sync(ha, json!({"request": "create", "room": room}));
    let (mut wa, wha, _) = watcher(&a.url(), room, 31);
    let (v, hw, _) = watcher(&b.url(), room, 32);
    let _ = b.child.kill();
    let _ = b.child.wait();
    let lv = wa.event(wha, |d| d.get("leaving").is_some());
    assert_eq!(
        lv,
        json!({"videoroom": "event", "room": room, "leaving": 32})
    );
    drop(v.c);
    let mut cc = c.client();
    let r = cc.request(json!({"janus": "claim", "session_id": v.sid}));
    assert_eq!(r["janus"], "success", "claim on C: {r}");
    cc.recv_event(|e| e["janus"] == "hangup" && e["sender"] == hw, T);
    cc.recv_event(|e| e["janus"] == "detached" && e["sender"] == hw, T);
    assert_eq!(
        metric(&c, "janus_proxy_unadoptable_handles_total"),
        Some(1.0)
    );
    // It was recorded as adoptable: C tried to claim the peer session on A.
    assert!(
        c.log().contains("could not be claimed"),
        "C's log: {}",
        c.log()
    );
    // The session lives on: a new handle joins the room through C.
    let mut v = Vr { c: cc, sid: v.sid };
    let h = v.handle();
    let (j, _) = v.call(
        h,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 33}),
        None,
    );
    assert_eq!(j["videoroom"], "joined", "{j}");
}

/// Issue 13, a room outliving its owner: the room's publishers are on A, which owns it; A
/// is killed with SIGKILL. The publishers' clients claim their sessions on B, which adopts
/// their handles, takes the room over from the dead A with the snapshot A kept in Redis,
/// and puts every adopted handle back in its place. Here the subscriber is on A too: its
/// client claims its session on B as well.
#[test]
fn a_subscriber_on_the_rooms_owner_survives_kill9_of_it() {
    room_survives_its_owner(OwnerEnd::Killed, false);
}

/// The same with the owner drained (SIGTERM, `drain_timeout` 1 s) rather than killed: its
/// rooms are taken over by the same path once it has gone.
#[test]
fn a_room_outlives_its_owner_drained_by_sigterm() {
    room_survives_its_owner(OwnerEnd::Drained, false);
}

/// The same after Redis restarted empty while the room lived: the owner writes what it
/// keeps there again (its owner key, its snapshot, the session records), so the room is
/// still taken over when the owner dies afterwards.
#[test]
fn a_room_outlives_its_owner_after_a_redis_restart() {
    room_survives_its_owner(OwnerEnd::KilledAfterRedisRestart, false);
}

/// The same with the subscriber and publisher 2 on B, relayed to A: when the link to A
/// drops, B's relays claim their peer session again, on B itself, which adopts it from the
/// dead A with the room; their clients notice nothing.
#[test]
fn a_subscriber_relayed_to_the_rooms_owner_follows_the_room_when_it_dies() {
    room_survives_its_owner(OwnerEnd::Killed, true);
}

/// How the room's owner goes in [`room_survives_its_owner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerEnd {
    Killed,
    /// Redis restarted empty first, while the room lived.
    KilledAfterRedisRestart,
    /// SIGTERM: it drains, then hands off.
    Drained,
}

/// The subscriber's media (one PeerConnection, a feed of its backend and a mirrored one)
/// never stops; the room goes on through B: the restored publishers are listed, a new
/// publisher joins through B and the subscriber adds it, and a restored publisher leaving
/// updates the subscription.
fn room_survives_its_owner(end: OwnerEnd, subscriber_on_b: bool) {
    let be = janus();
    let mut redis = RedisServer::start();
    let mut a = Proxy::start(failover_config(&be, &redis, "vro-a", 30).set(
        "cluster",
        "drain_timeout",
        "1",
    ));
    let b = failover_proxy(&be, &redis, "vro-b");
    let peers = Peers::new();
    let (mut admin, ha, room) = new_room(&a.url());
    let p1 = publish(&peers, &a.url(), room, 1);
    // With the subscriber on B, publisher 2 is relayed through B too.
    let p2 = publish(
        &peers,
        &if subscriber_on_b { b.url() } else { a.url() },
        room,
        2,
    );

    let (v, h, peer, mids) = flowing(
        &peers,
        &if subscriber_on_b { b.url() } else { a.url() },
        room,
        &[1, 2],
    );
    let mirrors = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    assert_eq!(
        mirrors["participants"].as_array().map(Vec::len),
        Some(2),
        "{mirrors}"
    );
    // The owner's snapshot is written behind the room's changes (every 250 ms).
    let snapshot = |redis: &RedisServer| {
        let deadline = Instant::now() + T;
        while !redis
            .command(&format!("HGET janus-cloud:videoroom:live {room}"))
            .contains("\"id\":2")
        {
            assert!(
                Instant::now() < deadline,
                "no snapshot of the room in Redis"
            );
            poll_pause();
        }
    };
    snapshot(&redis);
    if end == OwnerEnd::KilledAfterRedisRestart {
        redis.stop();
        redis.start_again();
        let restarted = Instant::now();
        // Written again at the owner's next refresh of its room key, and its flush.
        snapshot(&redis);
        eprintln!(
            "Redis restarted empty: the room's snapshot written again {} ms after",
            restarted.elapsed().as_millis()
        );
        // The session records too: the directory finds its heartbeat gone.
        let deadline = Instant::now() + T;
        while redis.command(&format!("EXISTS januscloud:cluster:session:{}", v.sid)) != ":1\r\n" {
            assert!(
                Instant::now() < deadline,
                "session records never written back"
            );
            poll_pause();
        }
    }

    let peer = std::sync::Arc::new(peer);
    let mut switch = Switch::start(&peer);
    let baseline = switch.calm;
    let killed = Instant::now();
    if end == OwnerEnd::Drained {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(a.child.id() as i32, libc::SIGTERM) }, 0);
        let status = a.child.wait().expect("wait for the drained owner");
        assert!(status.success(), "drained owner's exit status {status}");
    } else {
        let _ = a.child.kill();
        let _ = a.child.wait();
    }
    switch.killed();
    let mut v = if subscriber_on_b {
        v
    } else {
        drop(v.c);
        let mut cc = b.client();
        let r = cc.request(json!({"janus": "claim", "session_id": v.sid}));
        assert_eq!(r["janus"], "success", "claim on B: {r}");
        Vr { c: cc, sid: v.sid }
    };
    // The publishers' clients come back too.
    let mut pubs = Vec::new();
    for (i, p) in [p1, p2].into_iter().enumerate() {
        if subscriber_on_b && i == 1 {
            pubs.push(p);
            continue;
        }
        let mut c = b.client();
        let r = c.request(json!({"janus": "claim", "session_id": p.v.sid}));
        assert_eq!(r["janus"], "success", "publisher's claim on B: {r}");
        pubs.push(Pub {
            v: Vr { c, sid: p.v.sid },
            h: p.h,
            peer: p.peer,
        });
    }
    let failover = killed.elapsed();
    let gap = switch.gap(&mids);
    eprintln!(
        "subscriber {}: {end:?} owner A -> every claim answered by B in {} ms; longest \
         media pause across the switch {} ms (in 2 s before the kill: {} ms)",
        if subscriber_on_b {
            "relayed through B"
        } else {
            "on the owner"
        },
        failover.as_millis(),
        gap.as_millis(),
        baseline.as_millis(),
    );
    assert!(gap < Duration::from_secs(1), "media paused {gap:?}");
    // Both publishers adopted, and the subscriber: its client's session, or B's own
    // peer session on A holding it.
    assert_eq!(
        metric(&b, "janus_proxy_adopted_handles_total"),
        Some(3.0),
        "the subscriber and both publishers adopted"
    );

    // The room goes on through B, its owner now.
    let mut admin = Vr::connect(&b.url());
    let ha = admin.handle();
    let lp = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    let ids: Vec<u64> = lp["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![1, 2], "the restored publishers: {lp}");
    let _p3 = publish(&peers, &b.url(), room, 3);
    let (sub, offer) = v.call(
        h,
        json!({"request": "subscribe", "streams": [{"feed": 3}]}),
        None,
    );
    assert_eq!(sub["videoroom"], "updated", "{sub}");
    let new_mids = mids_by_feed(&sub).get(&3).cloned().unwrap_or_default();
    assert_eq!(new_mids.len(), 2, "feed 3's audio and video: {sub}");
    accept_offer(&mut v, h, &peer, &offer);
    wait_growth(&peer, &new_mids, AUDIO_BYTES, T);
    // A restored publisher leaves: the subscription loses its feed.
    let p1 = &mut pubs[0];
    let (l, _) = p1.v.call(p1.h, json!({"request": "leave"}), None);
    assert_eq!(l["leaving"], "ok", "{l}");
    let upd = v.c.recv_event(
        |e| {
            e["sender"] == h
                && e["plugindata"]["data"]["videoroom"] == "updated"
                && !mids_by_feed(&data_of(e)).contains_key(&1)
        },
        T,
    );
    eprintln!("after the take-over: {}", data_of(&upd));
    let lp = admin.sync(ha, json!({"request": "listparticipants", "room": room}));
    let ids: Vec<u64> = lp["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![2, 3], "{lp}");
    // B keeps the room's snapshot now, and deletes it with the room.
    let live = format!("HEXISTS janus-cloud:videoroom:live {room}");
    assert_eq!(redis.command(&live), ":1\r\n");
    let d = admin.sync(ha, json!({"request": "destroy", "room": room}));
    assert_eq!(d["videoroom"], "destroyed", "{d}");
    let deadline = Instant::now() + T;
    while redis.command(&live) != ":0\r\n" {
        assert!(Instant::now() < deadline, "the snapshot outlived the room");
        poll_pause();
    }
}
