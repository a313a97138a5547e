//! The VideoRoom plugin against three real Janus 1.1.2 backends: room management, the
//! publisher and subscriber requests with their error codes, compared with a direct Janus
//! where the shape of an answer or an event matters (the same steps run against both);
//! placement of publishers over the backends.
//!
//! Publishers here use synthetic SDP (no ICE), so Janus never sees their media start:
//! they are joined and configured but never announced, and cannot be subscribed to (in
//! Janus too). What needs media is in `tests/videoroom_media.rs`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::vr::*;
use common::*;
use serde_json::{json, Value};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// (code, text) of an error answer.
fn error_of(v: &Value) -> Option<(u64, String)> {
    Some((v["error_code"].as_u64()?, v["error"].as_str()?.to_string()))
}

fn offer() -> Value {
    json!({"type": "offer", "sdp": sdp_offer()})
}

/// The steps of one run, by name: what each answered or pushed.
type Trace = Vec<(&'static str, Value)>;

/// Room management: create, errors, exists, list entry, edit, allowed, kick, destroy.
fn management(url: &str, room: u64) -> Trace {
    let mut v = Vr::connect(url);
    let h = v.handle();
    let mut t = Trace::new();
    let step = |name, body: Value, v: &mut Vr, t: &mut Trace| t.push((name, v.sync(h, body)));
    step(
        "create",
        json!({"request": "create", "room": room, "description": "proxy test", "secret": "s3", "pin": "p1", "publishers": 4, "bitrate": 1000}),
        &mut v,
        &mut t,
    );
    step(
        "create again",
        json!({"request": "create", "room": room}),
        &mut v,
        &mut t,
    );
    step(
        "create string room",
        json!({"request": "create", "room": "x"}),
        &mut v,
        &mut t,
    );
    step(
        "create bad codec",
        json!({"request": "create", "room": room + 1, "videocodec": "vp7"}),
        &mut v,
        &mut t,
    );
    step(
        "exists",
        json!({"request": "exists", "room": room}),
        &mut v,
        &mut t,
    );
    step(
        "exists not",
        json!({"request": "exists", "room": room + 7}),
        &mut v,
        &mut t,
    );
    step(
        "exists no room",
        json!({"request": "exists"}),
        &mut v,
        &mut t,
    );
    step(
        "edit wrong secret",
        json!({"request": "edit", "room": room, "secret": "no", "new_description": "x"}),
        &mut v,
        &mut t,
    );
    step(
        "edit no secret",
        json!({"request": "edit", "room": room, "new_description": "x"}),
        &mut v,
        &mut t,
    );
    step(
        "edit",
        json!({"request": "edit", "room": room, "secret": "s3", "new_description": "edited", "new_publishers": 5}),
        &mut v,
        &mut t,
    );
    step(
        "edit unknown room",
        json!({"request": "edit", "room": room + 7, "secret": "s3"}),
        &mut v,
        &mut t,
    );
    step(
        "allowed add",
        json!({"request": "allowed", "room": room, "secret": "s3", "action": "add", "allowed": ["a", "b"]}),
        &mut v,
        &mut t,
    );
    step(
        "allowed remove",
        json!({"request": "allowed", "room": room, "secret": "s3", "action": "remove", "allowed": ["a"]}),
        &mut v,
        &mut t,
    );
    step(
        "allowed bad action",
        json!({"request": "allowed", "room": room, "secret": "s3", "action": "nope"}),
        &mut v,
        &mut t,
    );
    step(
        "allowed disable",
        json!({"request": "allowed", "room": room, "secret": "s3", "action": "disable"}),
        &mut v,
        &mut t,
    );
    step(
        "listparticipants",
        json!({"request": "listparticipants", "room": room}),
        &mut v,
        &mut t,
    );
    step(
        "kick unknown",
        json!({"request": "kick", "room": room, "secret": "s3", "id": 99}),
        &mut v,
        &mut t,
    );
    step(
        "kick no id",
        json!({"request": "kick", "room": room, "secret": "s3"}),
        &mut v,
        &mut t,
    );
    step(
        "moderate unknown",
        json!({"request": "moderate", "room": room, "secret": "s3", "id": 99, "mid": "0", "mute": true}),
        &mut v,
        &mut t,
    );
    step(
        "listforwarders",
        json!({"request": "listforwarders", "room": room, "secret": "s3"}),
        &mut v,
        &mut t,
    );
    step(
        "enable_recording wrong secret",
        json!({"request": "enable_recording", "room": room, "secret": "x", "record": false}),
        &mut v,
        &mut t,
    );
    step("no request", json!({"room": room}), &mut v, &mut t);
    let list = v.sync(h, json!({"request": "list"}));
    // Private rooms are not listed; ours is public: its entry, alone.
    let entry = list["list"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["room"] == room).cloned())
        .unwrap_or_else(|| panic!("room {room} not listed: {list}"));
    t.push(("list entry", entry));
    step(
        "destroy wrong secret",
        json!({"request": "destroy", "room": room, "secret": "no"}),
        &mut v,
        &mut t,
    );
    step(
        "destroy",
        json!({"request": "destroy", "room": room, "secret": "s3"}),
        &mut v,
        &mut t,
    );
    step(
        "destroy again",
        json!({"request": "destroy", "room": room, "secret": "s3"}),
        &mut v,
        &mut t,
    );
    t
}

/// Compares two traces step by step: same keys, same error codes and texts (room ids
/// in texts differ, so they are masked).
fn assert_same(proxy: &Trace, janus: &Trace, rooms: (u64, u64), ignore_keys: &[&str]) {
    assert_eq!(proxy.len(), janus.len());
    let mask = |s: &str| {
        s.replace(&rooms.0.to_string(), "R")
            .replace(&(rooms.0 + 1).to_string(), "R+1")
            .replace(&(rooms.0 + 7).to_string(), "R+7")
    };
    let mask_j = |s: &str| {
        s.replace(&rooms.1.to_string(), "R")
            .replace(&(rooms.1 + 1).to_string(), "R+1")
            .replace(&(rooms.1 + 7).to_string(), "R+7")
    };
    for ((name, p), (name_j, j)) in proxy.iter().zip(janus) {
        assert_eq!(name, name_j);
        let strip = |k: BTreeSet<String>| -> BTreeSet<String> {
            k.into_iter()
                .filter(|k| !ignore_keys.contains(&k.as_str()))
                .collect()
        };
        assert_eq!(
            strip(keys(p)),
            strip(keys(j)),
            "{name}: proxy {p} vs janus {j}"
        );
        match (error_of(p), error_of(j)) {
            (Some((pc, pt)), Some((jc, jt))) => {
                assert_eq!(pc, jc, "{name}: proxy {p} vs janus {j}");
                assert_eq!(mask(&pt), mask_j(&jt), "{name}");
            }
            (None, None) => {}
            _ => panic!("{name}: proxy {p} vs janus {j}"),
        }
        for k in [
            "videoroom",
            "exists",
            "permanent",
            "description",
            "pin_required",
            "max_publishers",
            "bitrate",
            "participants",
            "allowed",
        ] {
            let norm = |v: Option<&Value>, m: &dyn Fn(&str) -> String| -> Value {
                match v {
                    Some(Value::String(s)) => json!(m(s)),
                    // Janus lists tokens in hash order
                    Some(Value::Array(a)) if k == "allowed" => {
                        let mut a = a.clone();
                        a.sort_by_key(|x| x.to_string());
                        Value::Array(a)
                    }
                    Some(v) => v.clone(),
                    None => Value::Null,
                }
            };
            assert_eq!(
                norm(p.get(k), &mask),
                norm(j.get(k), &mask_j),
                "{name}: {k}: proxy {p} vs janus {j}"
            );
        }
    }
}

#[test]
fn room_management_answers_as_janus_does() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let (pr, jr) = (fresh_room(), fresh_room());
    let via_proxy = management(&proxy.url(), pr);
    let direct = management(&be.ws_url(0), jr);
    assert_same(&via_proxy, &direct, (pr, jr), &[]);
    // the room ids: the proxy's own in its answers
    assert_eq!(via_proxy[0].1["room"], pr);
}

#[test]
fn create_without_room_id_and_admin_key() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be).set_str("videoroom", "admin_key", "k3y"));
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    let e = v.sync(h, json!({"request": "create"}));
    assert_eq!(error_of(&e).map(|e| e.0), Some(429), "{e}");
    let e = v.sync(h, json!({"request": "create", "admin_key": "nope"}));
    assert_eq!(
        error_of(&e),
        Some((433, "Unauthorized (wrong admin_key)".into())),
        "{e}"
    );
    let c = v.sync(h, json!({"request": "create", "admin_key": "k3y"}));
    assert_eq!(c["videoroom"], "created", "{c}");
    let room = c["room"].as_u64().unwrap();
    assert!(room > 0 && room < MAX_ID, "{c}");
    let e = v.sync(h, json!({"request": "exists", "room": room}));
    assert_eq!(e["exists"], true);
    // as Janus's lock_rtpfwd: with an admin_key, RTP forwarding needs it
    let fwd =
        json!({"request": "rtp_forward", "room": room, "publisher_id": 1, "host": "127.0.0.1"});
    let e = v.sync(h, fwd.clone());
    assert_eq!(error_of(&e).map(|e| e.0), Some(429), "{e}");
    let mut wrong = fwd.clone();
    wrong["admin_key"] = json!("nope");
    let e = v.sync(h, wrong);
    assert_eq!(
        error_of(&e),
        Some((433, "Unauthorized (wrong admin_key)".into())),
        "{e}"
    );
    let mut right = fwd;
    right["admin_key"] = json!("k3y");
    let e = v.sync(h, right);
    assert_eq!(
        error_of(&e).map(|e| e.0),
        Some(428),
        "no such publisher: {e}"
    );
}

/// Publisher signalling: joins, configure with an offer, display changes, leave, kick and
/// their events, the errors of each, as seen by two publishers.
fn publishers(url: &str, room: u64) -> Trace {
    let mut a = Vr::connect(url);
    let mut b = Vr::connect(url);
    let ha = a.handle();
    let hb = b.handle();
    let mut t = Trace::new();
    let c = a.sync(ha, json!({"request": "create", "room": room, "notify_joining": true, "secret": "s", "pin": "pp", "publishers": 2}));
    assert_eq!(c["videoroom"], "created", "{c}");
    let call = |name, who: &mut Vr, h: u64, body: Value, jsep: Option<Value>, t: &mut Trace| {
        let (d, j) = who.call(h, body, jsep);
        t.push((name, d.clone()));
        (d, j)
    };
    call(
        "configure before join",
        &mut a,
        ha,
        json!({"request": "configure", "audio": true}),
        None,
        &mut t,
    );
    call(
        "join no ptype",
        &mut a,
        ha,
        json!({"request": "join", "room": room, "pin": "pp"}),
        None,
        &mut t,
    );
    call(
        "join bad ptype",
        &mut a,
        ha,
        json!({"request": "join", "room": room, "ptype": "x", "pin": "pp"}),
        None,
        &mut t,
    );
    call(
        "join wrong pin",
        &mut a,
        ha,
        json!({"request": "join", "room": room, "ptype": "publisher", "pin": "no"}),
        None,
        &mut t,
    );
    call(
        "join no room",
        &mut a,
        ha,
        json!({"request": "join", "room": room + 7, "ptype": "publisher"}),
        None,
        &mut t,
    );
    call(
        "join display not string",
        &mut a,
        ha,
        json!({"request": "join", "room": room, "ptype": "publisher", "pin": "pp", "display": 3}),
        None,
        &mut t,
    );
    let (ja, _) = call(
        "join a",
        &mut a,
        ha,
        json!({"request": "join", "room": room, "ptype": "publisher", "pin": "pp", "display": "alice", "id": 11}),
        None,
        &mut t,
    );
    assert_eq!(ja["videoroom"], "joined", "{ja}");
    call(
        "join a again",
        &mut a,
        ha,
        json!({"request": "join", "room": room, "ptype": "publisher", "pin": "pp"}),
        None,
        &mut t,
    );
    call(
        "join b same id",
        &mut b,
        hb,
        json!({"request": "join", "room": room, "ptype": "publisher", "pin": "pp", "id": 11}),
        None,
        &mut t,
    );
    let (jb, _) = call(
        "join b",
        &mut b,
        hb,
        json!({"request": "join", "room": room, "ptype": "publisher", "pin": "pp", "display": "bob", "id": 22}),
        None,
        &mut t,
    );
    assert_eq!(jb["attendees"][0]["id"], 11, "{jb}");
    t.push(("joining (a)", a.event(ha, |d| d.get("joining").is_some())));
    let (conf, jsep) = call(
        "configure b with offer",
        &mut b,
        hb,
        json!({"request": "configure", "audio": true, "video": false}),
        Some(offer()),
        &mut t,
    );
    assert_eq!(conf["configured"], "ok", "{conf}");
    assert_eq!(jsep["type"], "answer", "{jsep}");
    call(
        "configure b display",
        &mut b,
        hb,
        json!({"request": "configure", "display": "bobby"}),
        None,
        &mut t,
    );
    t.push(("display (a)", a.event(ha, |d| d.get("display").is_some())));
    let lp = a.sync(ha, json!({"request": "listparticipants", "room": room}));
    let mut parts: Vec<Value> = lp["participants"].as_array().cloned().unwrap_or_default();
    parts.sort_by_key(|p| p["id"].as_u64());
    t.push((
        "listparticipants",
        json!({"n": parts.len(), "first": parts[0], "second": parts[1]}),
    ));
    let mut s = Vr::connect(url);
    let hs = s.handle();
    call(
        "subscribe to unstarted feed",
        &mut s,
        hs,
        json!({"request": "join", "room": room, "ptype": "subscriber", "pin": "pp", "streams": [{"feed": 22}]}),
        None,
        &mut t,
    );
    call(
        "subscribe to unknown feed",
        &mut s,
        hs,
        json!({"request": "join", "room": room, "ptype": "subscriber", "pin": "pp", "streams": [{"feed": 99}]}),
        None,
        &mut t,
    );
    call(
        "subscribe without streams",
        &mut s,
        hs,
        json!({"request": "join", "room": room, "ptype": "subscriber", "pin": "pp"}),
        None,
        &mut t,
    );
    call(
        "subscribe stream without feed",
        &mut s,
        hs,
        json!({"request": "join", "room": room, "ptype": "subscriber", "pin": "pp", "streams": [{"mid": "0"}]}),
        None,
        &mut t,
    );
    call(
        "unpublish b (not started)",
        &mut b,
        hb,
        json!({"request": "unpublish"}),
        None,
        &mut t,
    );
    let (l, _) = call(
        "leave a",
        &mut a,
        ha,
        json!({"request": "leave"}),
        None,
        &mut t,
    );
    assert_eq!(l["leaving"], "ok", "{l}");
    t.push(("leaving (b)", b.event(hb, |d| d.get("leaving").is_some())));
    let k = b.sync(
        hb,
        json!({"request": "kick", "room": room, "secret": "s", "id": 22}),
    );
    t.push(("kick b", k));
    t.push(("kicked (b)", b.event(hb, |d| d.get("leaving").is_some())));
    let d = a.sync(
        ha,
        json!({"request": "destroy", "room": room, "secret": "s"}),
    );
    t.push(("destroy", d));
    t
}

#[test]
fn publisher_requests_and_events_match_janus() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let (pr, jr) = (fresh_room(), fresh_room());
    let via_proxy = publishers(&proxy.url(), pr);
    let direct = publishers(&be.ws_url(1), jr);
    assert_same(&via_proxy, &direct, (pr, jr), &[]);
    for (name, d) in &via_proxy {
        if let Some(r) = d.get("room") {
            assert_eq!(*r, json!(pr), "{name}: the proxy's room id: {d}");
        }
    }
}

#[test]
fn publishers_are_spread_over_backends_or_packed() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    let spread = fresh_room();
    let packed = fresh_room();
    v.sync(h, json!({"request": "create", "room": spread}));
    v.sync(
        h,
        json!({"request": "create", "room": packed, "pack_publishers": 2}),
    );
    let mut join = |room: u64, id: u64| {
        let h = v.handle();
        let (d, _) = v.call(
            h,
            json!({"request": "join", "room": room, "ptype": "publisher", "id": id}),
            None,
        );
        assert_eq!(d["videoroom"], "joined", "{d}");
    };
    for id in [1, 2, 3] {
        join(spread, id);
    }
    for id in [1, 2, 3, 4] {
        join(packed, id);
    }
    let mut s = placement(&be, spread, &[1, 2, 3]);
    s.sort_unstable();
    assert_eq!(
        s,
        vec![0, 1, 2],
        "rr places three publishers on three backends"
    );
    let p = placement(&be, packed, &[1, 2, 3, 4]);
    assert_eq!(p[0], p[1], "the first two share a backend: {p:?}");
    assert_eq!(p[2], p[3], "the next two share another: {p:?}");
    assert_ne!(p[0], p[2], "{p:?}");
    // the room's listparticipants lists all of them, once
    let lp = v.sync(h, json!({"request": "listparticipants", "room": packed}));
    assert_eq!(lp["participants"].as_array().map(Vec::len), Some(4), "{lp}");
}

#[test]
fn static_rooms_from_config() {
    let be = vr_backends();
    let cfg = proxy_config(&be);
    let text = "\n[[videoroom.rooms]]\nroom = 4242\ndescription = \"Static\"\npublishers = 1\n";
    let proxy = Proxy::start(cfg.raw(text));
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    let list = v.sync(h, json!({"request": "list"}));
    let entry = list["list"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["room"] == 4242).cloned());
    assert_eq!(
        entry.as_ref().map(|e| e["description"].clone()),
        Some(json!("Static")),
        "{list}"
    );
    let (j, _) = v.call(
        h,
        json!({"request": "join", "room": 4242, "ptype": "publisher"}),
        None,
    );
    assert_eq!(j["videoroom"], "joined", "{j}");
    let (c, _) = v.call(
        h,
        json!({"request": "configure", "audio": true}),
        Some(offer()),
    );
    assert_eq!(c["configured"], "ok", "{c}");
}

#[test]
fn permanent_rooms_survive_a_restart_with_a_redis_room_db() {
    let be = vr_backends();
    let redis = RedisServer::start();
    // The same address across restarts, as a proxy restarted with its config has: with a
    // Redis room_db, rooms are owned by a proxy's address (`peer_url`).
    let cfg = proxy_config(&be)
        .set_str("videoroom", "room_db", &redis.url())
        .set_str(
            "ws_transport",
            "ws_listen",
            &format!("127.0.0.1:{}", free_port()),
        );
    let room = fresh_room();
    {
        let proxy = Proxy::start(cfg.clone());
        let mut v = Vr::connect(&proxy.url());
        let h = v.handle();
        let c = v.sync(h, json!({"request": "create", "room": room, "permanent": true, "description": "kept", "secret": "s"}));
        assert_eq!(
            (c["videoroom"].clone(), c["permanent"].clone()),
            (json!("created"), json!(true)),
            "{c}"
        );
        let other = v.sync(
            h,
            json!({"request": "create", "room": room + 1, "description": "not kept"}),
        );
        assert_eq!(other["permanent"], false, "{other}");
        // Redis holds writes back for 300 ms: the answer must still come only once the
        // store has the edit, as the proxy is killed right after it.
        assert_eq!(redis.command("CLIENT PAUSE 300 WRITE"), "+OK\r\n");
        let e = v.sync(h, json!({"request": "edit", "room": room, "secret": "s", "new_description": "kept, edited", "permanent": true}));
        assert_eq!(e["permanent"], true, "{e}");
        let kept = redis.command(&format!("HGET janus-cloud:videoroom:rooms {room}"));
        assert!(
            kept.contains("kept, edited"),
            "the edit was answered before it reached the room store: {kept}"
        );
    }
    let proxy = Proxy::start(cfg.clone());
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    let list = v.sync(h, json!({"request": "list"}));
    let entry = list["list"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["room"] == room).cloned());
    assert_eq!(
        entry.map(|e| e["description"].clone()),
        Some(json!("kept, edited")),
        "{list}"
    );
    let gone = v.sync(h, json!({"request": "exists", "room": room + 1}));
    assert_eq!(
        gone["exists"], false,
        "a room made without permanent is not kept: {gone}"
    );
    assert_eq!(redis.command("CLIENT PAUSE 300 WRITE"), "+OK\r\n");
    let d = v.sync(
        h,
        json!({"request": "destroy", "room": room, "secret": "s", "permanent": true}),
    );
    assert_eq!(d["videoroom"], "destroyed", "{d}");
    assert_eq!(
        redis.command(&format!("HEXISTS janus-cloud:videoroom:rooms {room}")),
        ":0\r\n",
        "the destroy was answered before it reached the room store"
    );
    drop(v);
    drop(proxy);
    let proxy = Proxy::start(cfg);
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    let e = v.sync(h, json!({"request": "exists", "room": room}));
    assert_eq!(
        e["exists"], false,
        "destroyed with permanent: gone from the store: {e}"
    );
}

#[test]
fn a_killed_backend_takes_its_publishers_out_of_the_room() {
    let (set, ws, rtp) = vr_ports("videoroom-kill", 19260, 17000, 18410, 8000);
    let be = Backends::own_with_span(&set, 3, ws, rtp, 300);
    let proxy = Proxy::start(proxy_config(&be));
    let room = fresh_room();
    let mut admin = Vr::connect(&proxy.url());
    let ha = admin.handle();
    admin.sync(ha, json!({"request": "create", "room": room}));
    let mut people: Vec<(Vr, u64)> = Vec::new();
    for id in 1..=3u64 {
        let mut v = Vr::connect(&proxy.url());
        let h = v.handle();
        let (j, _) = v.call(
            h,
            json!({"request": "join", "room": room, "ptype": "publisher", "id": id}),
            None,
        );
        assert_eq!(j["videoroom"], "joined", "{j}");
        people.push((v, h));
    }
    let at = placement(&be, room, &[1, 2, 3]);
    let victim_server = at[1];
    let started = std::time::Instant::now();
    be.kill9(victim_server);
    for (i, (v, h)) in people.iter_mut().enumerate() {
        if i == 1 {
            // its own handle: hung up and detached
            let hh = *h;
            v.c.recv_event(
                |e| e["janus"] == "detached" && e["sender"] == hh,
                Duration::from_secs(5),
            );
            continue;
        }
        let left = v.event(*h, |d| d["leaving"] == 2);
        assert_eq!(left["room"], room, "{left}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "others told within 2 s: {:?}",
        started.elapsed()
    );
    // the room goes on: a new publisher joins on a live backend
    let mut late = Vr::connect(&proxy.url());
    let hl = late.handle();
    let (j, _) = late.call(
        hl,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 4}),
        None,
    );
    assert_eq!(j["videoroom"], "joined", "{j}");
    let ids: Vec<u64> = j["attendees"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    assert!(!ids.contains(&2), "the lost publisher is gone: {j}");
    let lp = late.sync(hl, json!({"request": "listparticipants", "room": room}));
    let mut listed: Vec<u64> = lp["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, vec![1, 3, 4], "{lp}");
}

#[test]
fn admin_rest_routes_manage_rooms() {
    let be = vr_backends();
    let proxy = Proxy::start(proxy_config(&be));
    let base = format!("http://127.0.0.1:{}/plugins/videoroom", proxy.admin_port);
    let json_of = |h: &Http| -> Value {
        serde_json::from_str(&h.body).unwrap_or_else(|e| panic!("{e}: {}", h.body))
    };
    let room = fresh_room();
    let body = format!("room={room}&description=rest&secret=s&publishers=7&is_private=1");
    let c = http(
        "POST",
        &format!("{base}/rooms"),
        Some(("application/x-www-form-urlencoded", &body)),
        None,
    );
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(json_of(&c)["videoroom"], "created");
    let info = json_of(&http("GET", &base, None, None));
    assert_eq!(info["package"], PACKAGE, "{info}");
    assert!(info["rooms"].as_u64() >= Some(1), "{info}");
    let one = http("GET", &format!("{base}/rooms/{room}"), None, None);
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(json_of(&one)["max_publishers"], 7);
    // private rooms are listed to the operator
    let all = json_of(&http("GET", &format!("{base}/rooms"), None, None));
    assert!(
        all.as_array().unwrap().iter().any(|r| r["room"] == room),
        "{all}"
    );
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    let (j, _) = v.call(
        h,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 5, "display": "x"}),
        None,
    );
    assert_eq!(j["videoroom"], "joined");
    let parts = json_of(&http(
        "GET",
        &format!("{base}/rooms/{room}/participants"),
        None,
        None,
    ));
    assert_eq!(parts[0]["id"], 5, "{parts}");
    assert!(
        parts[0]["backend_server"]
            .as_str()
            .unwrap()
            .starts_with("janus-"),
        "{parts}"
    );
    let tokens = http(
        "POST",
        &format!("{base}/rooms/{room}/tokens"),
        Some((
            "application/json",
            r#"{"secret":"s","action":"add","allowed":["t1"]}"#,
        )),
        None,
    );
    assert_eq!(
        json_of(&tokens)["allowed"],
        json!(["t1"]),
        "{}",
        tokens.body
    );
    let wrong = http(
        "DELETE",
        &format!("{base}/rooms/{room}/participants/5?secret=no"),
        None,
        None,
    );
    assert_eq!(wrong.status, 433, "{}", wrong.body);
    let kick = http(
        "DELETE",
        &format!("{base}/rooms/{room}/participants/5?secret=s"),
        None,
        None,
    );
    assert_eq!(kick.status, 200, "{}", kick.body);
    let k = v.event(h, |d| d["leaving"] == "ok");
    assert_eq!(k["reason"], "kicked", "{k}");
    let bad = http("GET", &format!("{base}/rooms/abc"), None, None);
    assert_eq!(bad.status, 400, "{}", bad.body);
    let gone = http(
        "PUT",
        &format!("{base}/rooms"),
        Some(("application/json", "{}")),
        None,
    );
    assert_eq!(gone.status, 405, "{}", gone.body);
    let d = http(
        "DELETE",
        &format!("{base}/rooms/{room}?secret=s"),
        None,
        None,
    );
    assert_eq!(d.status, 200, "{}", d.body);
    let missing = http("GET", &format!("{base}/rooms/{room}"), None, None);
    assert_eq!(missing.status, 426, "{}", missing.body);
    let unauth = http("GET", &base, None, Some("wrong"));
    assert_eq!(unauth.status, 401, "{}", unauth.body);
}

#[test]
fn participants_and_streams_per_request_are_bounded() {
    let be = vr_backends();
    let cfg = proxy_config(&be)
        .set("videoroom", "max_participants_per_room", "2")
        .set("videoroom", "max_streams_per_request", "3");
    let proxy = Proxy::start(cfg);
    let mut v = Vr::connect(&proxy.url());
    let h = v.handle();
    let room = fresh_room();
    v.sync(h, json!({"request": "create", "room": room}));
    for id in [1, 2] {
        let hp = v.handle();
        let (j, _) = v.call(
            hp,
            json!({"request": "join", "room": room, "ptype": "publisher", "id": id}),
            None,
        );
        assert_eq!(j["videoroom"], "joined", "{j}");
    }
    let h3 = v.handle();
    let (e, _) = v.call(
        h3,
        json!({"request": "join", "room": room, "ptype": "publisher", "id": 3}),
        None,
    );
    assert_eq!(
        error_of(&e),
        Some((
            432,
            "Maximum number of participants (2) already reached".into()
        )),
        "{e}"
    );
    let streams: Vec<Value> = (0..4).map(|_| json!({"feed": 1})).collect();
    let (e, _) = v.call(
        h3,
        json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams}),
        None,
    );
    assert_eq!(
        error_of(&e),
        Some((
            430,
            "Invalid element (at most 3 streams per request)".into()
        )),
        "{e}"
    );
}
