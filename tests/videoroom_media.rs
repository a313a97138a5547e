//! The VideoRoom with real media (janus-mediapeer: real ICE, DTLS-SRTP and RTP on
//! loopback) over three real Janus backends: publishers on three backends, one subscriber
//! PeerConnection receiving all of them (one feed local to its backend, two mirrored),
//! the autoupdate when a publisher leaves, mirrors shared, the publishers limit, and a
//! backend killed mid-conference.

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

/// The feeds mirrored in `room` (the proxy's admin API).
fn mirrored_feeds(proxy: &Proxy, room: u64) -> Vec<u64> {
    let h = http(
        "GET",
        &format!(
            "http://127.0.0.1:{}/plugins/videoroom/rooms/{room}/mirrors",
            proxy.admin_port
        ),
        None,
        None,
    );
    assert_eq!(h.status, 200, "{}", h.body);
    let list: Value = serde_json::from_str(&h.body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["feed"].as_u64())
        .collect()
}

/// When each mid first received RTP, from `since` (polling the counters).
fn first_bytes(
    peer: &Peer,
    mids: &[String],
    since: Instant,
    within: Duration,
) -> BTreeMap<String, Duration> {
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + within;
    while seen.len() < mids.len() && Instant::now() < deadline {
        let r = peer.received();
        for m in mids {
            if r.get(m).copied().unwrap_or(0) > 0 {
                seen.entry(m.clone()).or_insert_with(|| since.elapsed());
            }
        }
        poll_pause();
    }
    assert_eq!(
        seen.len(),
        mids.len(),
        "mids without RTP: {:?} of {mids:?}",
        peer.received()
    );
    seen
}

#[test]
fn one_peerconnection_receives_feeds_of_three_backends() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let peers = Peers::new();
    let room = fresh_room();
    let mut admin = Vr::connect(&proxy.url());
    let ha = admin.handle();
    admin.sync(
        ha,
        json!({"request": "create", "room": room, "publishers": 6}),
    );
    let mut p1 = publish(&peers, &proxy.url(), room, 1);
    let p2 = publish(&peers, &proxy.url(), room, 2);
    let p3 = publish(&peers, &proxy.url(), room, 3);
    let mut at = placement(&be, room, &[1, 2, 3]);
    at.sort_unstable();
    assert_eq!(at, vec![0, 1, 2], "three publishers, three backends");
    // each is announced to the others once its media flows
    for id in [2u64, 3] {
        let ev = p1.v.event(p1.h, |d| {
            d["publishers"]
                .as_array()
                .is_some_and(|l| l.iter().any(|p| p["id"] == id))
        });
        let entry = ev["publishers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap();
        assert_eq!(entry["display"], format!("p{id}"), "{ev}");
        assert_eq!(entry["streams"].as_array().map(Vec::len), Some(2), "{ev}");
    }
    let s = subscribe(&peers, &proxy.url(), room, &[1, 2, 3]);
    let by_feed = mids_by_feed(&s.attached);
    assert_eq!(by_feed.len(), 3, "{}", s.attached);
    for list in by_feed.values() {
        assert_eq!(
            list.len(),
            2,
            "audio and video of each feed: {}",
            s.attached
        );
    }
    // the publishers' own mids, whatever the backend carrying them calls them
    for st in s.attached["streams"].as_array().unwrap() {
        let expected = if st["type"] == "audio" { "0" } else { "1" };
        assert_eq!(st["feed_mid"], expected, "{st}");
    }
    let all: Vec<String> = by_feed.values().flatten().cloned().collect();
    let first = first_bytes(&s.peer, &all, s.subscribed_at, Duration::from_secs(15));
    s.peer
        .wait_received(
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
            AUDIO_BYTES,
            T,
        )
        .expect("media of every feed");
    // which feed is local to the subscriber's backend: the one not mirrored
    let mirrored = mirrored_feeds(&proxy, room);
    assert_eq!(
        mirrored.len(),
        2,
        "two feeds mirrored to the subscriber's backend"
    );
    let video_of = |feed: u64| -> Duration {
        let video = s.attached["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["feed_id"] == feed && st["type"] == "video")
            .unwrap();
        first[video["mid"].as_str().unwrap()]
    };
    for feed in [1u64, 2, 3] {
        let kind = if mirrored.contains(&feed) {
            "mirrored"
        } else {
            "same-backend"
        };
        eprintln!(
            "subscribe to first video frame, {kind} feed {feed}: {:?}",
            video_of(feed)
        );
    }
    assert_eq!(metric(&proxy, "janus_proxy_videoroom_mirrors"), Some(2.0));

    // The publisher of the feed local to the subscriber's backend leaves (Janus 1.1.2's own
    // `leave` would tell that backend's subscribers nothing): everyone is told, the
    // subscriber renegotiates and keeps the two others.
    let gone = [1u64, 2, 3]
        .into_iter()
        .find(|f| !mirrored.contains(f))
        .unwrap();
    let mut pubs = [(1u64, p1), (2, p2), (3, p3)];
    let leaver = &mut pubs.iter_mut().find(|(id, _)| *id == gone).unwrap().1;
    let (l, _) = leaver.v.call(leaver.h, json!({"request": "leave"}), None);
    assert_eq!(l["leaving"], "ok", "{l}");
    for (id, p) in pubs.iter_mut() {
        if *id == gone {
            continue;
        }
        let h = p.h;
        p.v.event(h, |d| d["unpublished"] == gone);
        p.v.event(h, |d| d["leaving"] == gone);
    }
    let mut s = s;
    let upd = s.next_update();
    let updated = data_of(&upd);
    assert_eq!(updated["room"], room, "{updated}");
    assert!(
        !mids_by_feed(&updated).contains_key(&gone),
        "feed {gone} is gone from the subscription: {updated}"
    );
    s.accept(&upd["jsep"]);
    let keep: Vec<String> = mirrored.iter().flat_map(|f| by_feed[f].clone()).collect();
    wait_growth(&s.peer, &keep, AUDIO_BYTES, T);
}

#[test]
fn the_publishers_limit_counts_publishers_whose_media_flows() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let peers = Peers::new();
    let room = fresh_room();
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    v.sync(
        h,
        json!({"request": "create", "room": room, "publishers": 1}),
    );
    let _p1 = publish(&peers, &proxy.url(), room, 1);
    let h2 = v.handle();
    let (j, _) = v.call(
        h2,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 2}),
        None,
    );
    assert_eq!(j["videoroom"], "joined", "{j}");
    assert_eq!(
        j["publishers"][0]["id"], 1,
        "the started publisher is announced in joined: {j}"
    );
    let (_peer, offer) = peers.publisher(true, true).unwrap();
    let (e, _) = v.call(
        h2,
        json!({"request": "configure", "audio": true, "video": true}),
        Some(json!({"type": "offer", "sdp": offer})),
    );
    assert_eq!(e["error_code"], 432, "{e}");
    assert_eq!(
        e["error"], "Maximum number of publishers (1) already reached",
        "{e}"
    );
}

#[test]
fn a_backend_killed_mid_conference_leaves_the_others_media_flowing() {
    let (set, ws, rtp) = vr_ports("videoroom-kill-media", 19270, 29200, 18420, 9000);
    let be = Backends::own_with_span(&set, 3, ws, rtp, 260);
    let proxy = Proxy::start(proxy_config(&be));
    let peers = Peers::new();
    let room = fresh_room();
    let mut admin = Vr::connect(&proxy.url());
    let ha = admin.handle();
    admin.sync(ha, json!({"request": "create", "room": room}));
    let mut pubs: Vec<Pub> = (1..=3)
        .map(|id| publish(&peers, &proxy.url(), room, id))
        .collect();
    let at = placement(&be, room, &[1, 2, 3]);
    // the subscriber asks for feed 1 (it goes to feed 1's backend), then adds feeds 2 and 3
    // of other backends to its PeerConnection (mirrors, then Janus's update)
    let mut s = subscribe(&peers, &proxy.url(), room, &[1]);
    let sh = s.h;
    let (upd, offer) = s.v.call(
        sh,
        json!({"request": "subscribe", "streams": [{"feed": 2}, {"feed": 3}]}),
        None,
    );
    assert_eq!(upd["videoroom"], "updated", "{upd}");
    s.accept(&offer);
    s.attached = upd;
    let by_feed = mids_by_feed(&s.attached);
    assert_eq!(by_feed.len(), 3, "{}", s.attached);
    let all: Vec<String> = by_feed.values().flatten().cloned().collect();
    s.peer
        .wait_received(
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
            AUDIO_BYTES,
            T,
        )
        .expect("media before the kill");
    // a subscriber of feed 2 alone sits on feed 2's backend
    let mut lone = subscribe(&peers, &proxy.url(), room, &[2]);
    // kill the backend of publisher 2 (not the subscriber's: it holds feed 1)
    let killed_at = Instant::now();
    be.kill9(at[1]);
    for (i, p) in pubs.iter_mut().enumerate() {
        let h = p.h;
        if i == 1 {
            p.v.c.recv_event(
                |e| e["janus"] == "detached" && e["sender"] == h,
                Duration::from_secs(5),
            );
            continue;
        }
        p.v.event(h, |d| d["leaving"] == 2);
    }
    // the subscriber on the dead backend: its handle hangs up and goes
    let lh = lone.h;
    lone.v.c.recv_event(
        |e| e["janus"] == "hangup" && e["sender"] == lh,
        Duration::from_secs(5),
    );
    lone.v.c.recv_event(
        |e| e["janus"] == "detached" && e["sender"] == lh,
        Duration::from_secs(5),
    );
    let told = killed_at.elapsed();
    assert!(
        told < Duration::from_secs(2),
        "publishers told within 2 s: {told:?}"
    );
    // the subscriber loses feed 2's mirror (Janus's update) and keeps 1 and 3
    let upd = s.next_update();
    s.accept(&upd["jsep"]);
    let keep: Vec<String> = [1u64, 3].iter().flat_map(|f| by_feed[f].clone()).collect();
    wait_growth(&s.peer, &keep, AUDIO_BYTES, T);
    pubs[0]
        .peer
        .wait_connected(T)
        .expect("publisher 1 still connected");
    // new publishers still join, on the live backends
    let p4 = publish(&peers, &proxy.url(), room, 4);
    assert!(placement(&be, room, &[4])[0] != at[1]);
    drop(p4);
}

/// The subscriber requests with real publishers: join, start, subscribe, pause, configure,
/// switch, unsubscribe, update, their errors, leave. What each answered.
fn subscriber_requests(peers: &Peers, url: &str, room: u64) -> Vec<(&'static str, Value)> {
    let mut admin = Vr::connect(url);
    let ha = admin.handle();
    admin.sync(ha, json!({"request": "create", "room": room}));
    let _p1 = publish(peers, url, room, 1);
    let _p2 = publish(peers, url, room, 2);
    let mut v = Vr::connect(url);
    let h = v.handle();
    let mut t: Vec<(&'static str, Value)> = Vec::new();
    let (a, jsep) = v.call(
        h,
        json!({"request": "join", "room": room, "ptype": "subscriber", "streams": [{"feed": 1}]}),
        None,
    );
    t.push(("attached", a));
    let (peer, answer) = peers.subscriber(jsep["sdp"].as_str().unwrap()).unwrap();
    let mut step = |name: &'static str,
                    body: Value,
                    jsep: Option<Value>,
                    t: &mut Vec<(&'static str, Value)>|
     -> Value {
        let (d, j) = v.call(h, body, jsep);
        t.push((name, d));
        j
    };
    step(
        "start",
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
        &mut t,
    );
    let offer = step(
        "subscribe feed 2",
        json!({"request": "subscribe", "streams": [{"feed": 2}]}),
        None,
        &mut t,
    );
    let answer = peer.renegotiate(offer["sdp"].as_str().unwrap()).unwrap();
    step(
        "start again",
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
        &mut t,
    );
    step(
        "subscribe unknown feed",
        json!({"request": "subscribe", "streams": [{"feed": 99}]}),
        None,
        &mut t,
    );
    step(
        "subscribe unknown mid",
        json!({"request": "subscribe", "streams": [{"feed": 2, "mid": "7"}]}),
        None,
        &mut t,
    );
    step(
        "subscribe without streams",
        json!({"request": "subscribe"}),
        None,
        &mut t,
    );
    step("pause", json!({"request": "pause"}), None, &mut t);
    step(
        "start after pause",
        json!({"request": "start"}),
        None,
        &mut t,
    );
    step(
        "configure",
        json!({"request": "configure", "streams": [{"mid": "0", "send": false}]}),
        None,
        &mut t,
    );
    step(
        "switch",
        json!({"request": "switch", "streams": [{"feed": 2, "mid": "0", "sub_mid": "0"}]}),
        None,
        &mut t,
    );
    step(
        "switch without streams",
        json!({"request": "switch"}),
        None,
        &mut t,
    );
    let offer = step(
        "unsubscribe feed 2",
        json!({"request": "unsubscribe", "streams": [{"feed": 2}]}),
        None,
        &mut t,
    );
    if let Some(sdp) = offer["sdp"].as_str() {
        let answer = peer.renegotiate(sdp).unwrap();
        step(
            "start after unsubscribe",
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
            &mut t,
        );
    }
    step("update neither", json!({"request": "update"}), None, &mut t);
    step("leave", json!({"request": "leave"}), None, &mut t);
    t
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[test]
fn subscriber_requests_answer_as_janus_does() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let peers = Peers::new();
    let via_proxy = subscriber_requests(&peers, &proxy.url(), fresh_room());
    let direct = subscriber_requests(&peers, &be.ws_url(2), fresh_room());
    assert_eq!(
        via_proxy.len(),
        direct.len(),
        "{via_proxy:?}\nvs\n{direct:?}"
    );
    for ((name, p), (_, j)) in via_proxy.iter().zip(&direct) {
        assert_eq!(keys(p), keys(j), "{name}: proxy {p}\njanus {j}");
        assert_eq!(
            p["error_code"], j["error_code"],
            "{name}: proxy {p}\njanus {j}"
        );
        assert_eq!(p["error"], j["error"], "{name}");
        for k in [
            "videoroom",
            "started",
            "paused",
            "configured",
            "switched",
            "changes",
            "left",
        ] {
            assert_eq!(p.get(k), j.get(k), "{name}: {k}: proxy {p}\njanus {j}");
        }
        // every stream entry has Janus's keys, and the publisher's mids
        let streams = |v: &Value| -> Vec<(Vec<String>, Value, Value)> {
            v["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| (keys(s), s["feed_id"].clone(), s["feed_mid"].clone()))
                .collect()
        };
        assert_eq!(streams(p), streams(j), "{name}: proxy {p}\njanus {j}");
    }
}

#[test]
fn a_room_whose_id_the_backends_use_for_their_own_room() {
    // Every backend has Janus's demo room 1234: the proxy's room 1234 lives in backend
    // rooms of other ids, and clients only ever see 1234.
    let be = vr_backends();
    let proxy = Proxy::start(
        proxy_config(&be).raw("\n[[videoroom.rooms]]\nroom = 1234\ndescription = \"proxy demo\"\n"),
    );
    let peers = Peers::new();
    let mut p1 = publish(&peers, &proxy.url(), 1234, 1);
    let mut p2 = publish(&peers, &proxy.url(), 1234, 2);
    let ev = p1.v.event(p1.h, |d| d["publishers"].is_array());
    assert_eq!(ev["room"], 1234, "{ev}");
    let s = subscribe(&peers, &proxy.url(), 1234, &[1, 2]);
    assert_eq!(s.attached["room"], 1234);
    let all: Vec<String> = mids_by_feed(&s.attached)
        .values()
        .flatten()
        .cloned()
        .collect();
    s.peer
        .wait_received(
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
            AUDIO_BYTES,
            T,
        )
        .expect("media in room 1234");
    let (c, _) = p2.v.call(
        p2.h,
        json!({"request": "configure", "display": "two"}),
        None,
    );
    assert_eq!(c["room"], 1234, "{c}");
    let (l, _) = p2.v.call(p2.h, json!({"request": "unpublish"}), None);
    assert_eq!(l["room"], 1234, "{l}");
    let u = p1.v.event(p1.h, |d| d["unpublished"] == 2);
    assert_eq!(u["room"], 1234, "{u}");
    // the backends' own demo room is untouched
    for i in 0..be.n {
        let mut v = Vr::connect(&be.ws_url(i));
        let h = v.handle();
        let lp = v.sync(h, json!({"request": "listparticipants", "room": 1234}));
        assert_eq!(lp["participants"], json!([]), "backend {i}: {lp}");
    }
}

#[test]
fn mirrors_are_shared_and_removed_when_idle() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be).set("videoroom", "mirror_idle_timeout", "1"));
    let peers = Peers::new();
    let room = fresh_room();
    let mut admin = Vr::connect(&proxy.url());
    let ha = admin.handle();
    // two publishers per backend: 1 and 2 share one, 3 is elsewhere
    admin.sync(
        ha,
        json!({"request": "create", "room": room, "pack_publishers": 2}),
    );
    let _p: Vec<Pub> = (1..=3)
        .map(|id| publish(&peers, &proxy.url(), room, id))
        .collect();
    let s1 = subscribe(&peers, &proxy.url(), room, &[1, 2, 3]);
    let s2 = subscribe(&peers, &proxy.url(), room, &[1, 2, 3]);
    assert_eq!(
        mirrored_feeds(&proxy, room),
        vec![3],
        "one mirror, of feed 3, shared"
    );
    let m3 = |s: &Sub| -> Vec<String> { mids_by_feed(&s.attached)[&3].clone() };
    for s in [&s1, &s2] {
        let mids = m3(s);
        s.peer
            .wait_received(
                &mids.iter().map(String::as_str).collect::<Vec<_>>(),
                AUDIO_BYTES,
                T,
            )
            .expect("mirrored feed");
    }
    // the first leaves: the mirror stays for the second, whose media keeps flowing
    let mut s1 = s1;
    let h1 = s1.h;
    let (l, _) = s1.v.call(h1, json!({"request": "leave"}), None);
    assert_eq!(l["left"], "ok", "{l}");
    wait_growth(&s2.peer, &m3(&s2), AUDIO_BYTES, T);
    assert_eq!(mirrored_feeds(&proxy, room), vec![3]);
    // the second leaves: after the idle timeout the mirror is gone
    let mut s2 = s2;
    let h2 = s2.h;
    s2.v.call(h2, json!({"request": "leave"}), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mirrored_feeds(&proxy, room).is_empty() {
        assert!(Instant::now() < deadline, "idle mirror not removed");
        poll_pause();
    }
    assert_eq!(metric(&proxy, "janus_proxy_videoroom_mirrors"), Some(0.0));
}

/// Publisher requests that need media or a publishing participant: joinandconfigure,
/// publish, moderate, RTP forwarders, recording. What each answered or pushed.
fn publisher_media_requests(peers: &Peers, url: &str, room: u64) -> Vec<(&'static str, Value)> {
    let mut t: Vec<(&'static str, Value)> = Vec::new();
    let mut a = Vr::connect(url);
    let ha = a.handle();
    a.sync(
        ha,
        json!({"request": "create", "room": room, "secret": "s"}),
    );
    // joinandconfigure: joined, with the answer and what the configure said
    let (peer1, offer) = peers.publisher(true, true).unwrap();
    let (j, jsep) = a.call(ha, json!({"request": "joinandconfigure", "room": room, "ptype": "publisher", "id": 1, "display": "one", "audio": true, "video": true}), Some(json!({"type": "offer", "sdp": offer})));
    peer1
        .set_answer(jsep["sdp"].as_str().expect("joinandconfigure answer"))
        .unwrap();
    peer1.wait_connected(T).unwrap();
    a.c.recv_event(|e| e["janus"] == "webrtcup" && e["sender"] == ha, T);
    t.push(("joinandconfigure", j));
    // publish after a plain join
    let mut b = Vr::connect(url);
    let hb = b.handle();
    b.call(
        hb,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 2}),
        None,
    );
    let (peer2, offer) = peers.publisher(true, true).unwrap();
    let (p, jsep) = b.call(
        hb,
        json!({"request": "publish", "audio": true, "video": true}),
        Some(json!({"type": "offer", "sdp": offer})),
    );
    peer2.set_answer(jsep["sdp"].as_str().unwrap()).unwrap();
    peer2.wait_connected(T).unwrap();
    b.c.recv_event(|e| e["janus"] == "webrtcup" && e["sender"] == hb, T);
    t.push(("publish", p));
    let (p, _) = b.call(
        hb,
        json!({"request": "publish", "audio": true}),
        Some(json!({"type": "offer", "sdp": sdp_offer()})),
    );
    t.push(("publish again", p));
    t.push((
        "announced to 1",
        a.event(ha, |d| d["publishers"].is_array()),
    ));
    // moderation: everybody hears of it, the target too
    t.push(("moderate", a.sync(ha, json!({"request": "moderate", "room": room, "secret": "s", "id": 2, "mid": "0", "mute": true}))));
    t.push((
        "moderation (1)",
        a.event(ha, |d| d.get("moderation").is_some()),
    ));
    t.push((
        "moderation (2)",
        b.event(hb, |d| d.get("moderation").is_some()),
    ));
    t.push(("moderate wrong secret", a.sync(ha, json!({"request": "moderate", "room": room, "secret": "x", "id": 2, "mid": "0", "mute": false}))));
    // RTP forwarders of publisher 1
    let fwd = a.sync(ha, json!({"request": "rtp_forward", "room": room, "secret": "s", "publisher_id": 1, "host": "127.0.0.1", "streams": [{"mid": "0", "port": 5002}]}));
    let stream_id = fwd["forwarders"][0]["stream_id"].clone();
    t.push(("rtp_forward", fwd));
    let list = a.sync(
        ha,
        json!({"request": "listforwarders", "room": room, "secret": "s"}),
    );
    t.push(("listforwarders", json!({"videoroom": list["videoroom"], "n": list["publishers"].as_array().map(Vec::len), "first": list["publishers"][0]})));
    t.push(("stop_rtp_forward", a.sync(ha, json!({"request": "stop_rtp_forward", "room": room, "secret": "s", "publisher_id": 1, "stream_id": stream_id}))));
    t.push(("stop_rtp_forward again", a.sync(ha, json!({"request": "stop_rtp_forward", "room": room, "secret": "s", "publisher_id": 1, "stream_id": stream_id}))));
    t.push((
        "enable_recording",
        a.sync(
            ha,
            json!({"request": "enable_recording", "room": room, "secret": "s", "record": false}),
        ),
    ));
    t
}

#[test]
fn publisher_media_requests_answer_as_janus_does() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let peers = Peers::new();
    let (pr, jr) = (fresh_room(), fresh_room());
    let via_proxy = publisher_media_requests(&peers, &proxy.url(), pr);
    let direct = publisher_media_requests(&peers, &be.ws_url(1), jr);
    for ((name, p), (_, j)) in via_proxy.iter().zip(&direct) {
        assert_eq!(keys(p), keys(j), "{name}: proxy {p}\njanus {j}");
        assert_eq!(
            p["error_code"], j["error_code"],
            "{name}: proxy {p}\njanus {j}"
        );
        for k in [
            "videoroom",
            "configured",
            "moderation",
            "mid",
            "id",
            "record",
            "audio_codec",
            "video_codec",
            "n",
        ] {
            assert_eq!(p.get(k), j.get(k), "{name}: {k}: proxy {p}\njanus {j}");
        }
        if let Some(r) = p.get("room") {
            assert_eq!(*r, json!(pr), "{name}: the proxy's room id: {p}");
        }
    }
    assert_eq!(via_proxy.len(), direct.len());
}
