//! VideoRoom test helpers: the shared three-backend set, a proxy config with the plugin,
//! and [`Vr`], a client with one session speaking to the VideoRoom.

use std::collections::BTreeMap;
use std::time::Duration;

use janus_mediapeer::{Peer, Peers};
use serde_json::{json, Value};

use super::*;

const T: Duration = REPLY_TIMEOUT;

pub const PACKAGE: &str = "janus.plugin.videoroom";

/// The ports of a VideoRoom backend set: `(set, ws base, RTP base)`, or the alternative
/// ones when `JANUS_CLOUD_VR_ALT_PORTS` is set (ws 18400+, RTP 6000-9999: for a machine
/// where something else uses 19000-19700 or UDP 40000-45000).
pub fn vr_ports(set: &str, ws: u16, rtp: u16, alt_ws: u16, alt_rtp: u16) -> (String, u16, u16) {
    if std::env::var_os("JANUS_CLOUD_VR_ALT_PORTS").is_some() {
        (format!("{set}-alt"), alt_ws, alt_rtp)
    } else {
        (set.to_string(), ws, rtp)
    }
}

/// The shared set of the VideoRoom tests: three Janus instances.
pub fn vr_backends() -> Backends {
    let (set, ws, rtp) = vr_ports("videoroom", 19250, 41000, 18400, 6000);
    backends_with_span(&set, 3, ws, rtp, 600)
}

/// A proxy config over `be` serving the VideoRoom only.
pub fn proxy_config(be: &Backends) -> ProxyConfig {
    let mut cfg = ProxyConfig::new(be.servers());
    cfg.plugins = vec!["videoroom".into()];
    cfg
}

/// A room id unlikely to be taken on the shared backends.
pub fn fresh_room() -> u64 {
    fastrand::u64(100_000..1 << 40)
}

pub fn data_of(frame: &Value) -> Value {
    frame["plugindata"]["data"].clone()
}

/// The subscriber mids of each feed in an `attached`/`updated` stream list (active only).
pub fn mids_by_feed(data: &Value) -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for s in data["streams"].as_array().into_iter().flatten() {
        if s["active"] == false {
            continue;
        }
        if let (Some(f), Some(m)) = (s["feed_id"].as_u64(), s["mid"].as_str()) {
            out.entry(f).or_default().push(m.to_string());
        }
    }
    out
}

/// A Janus API client with one session, speaking to the VideoRoom.
pub struct Vr {
    pub c: Client,
    pub sid: u64,
}

impl Vr {
    pub fn connect(url: &str) -> Vr {
        let mut c = Client::connect(url);
        let sid = c.create_session();
        Vr { c, sid }
    }

    pub fn handle(&mut self) -> u64 {
        self.c.attach(self.sid, PACKAGE)
    }

    /// A synchronous request: the `success` frame's data.
    pub fn sync(&mut self, h: u64, body: Value) -> Value {
        let r = self.c.request(
            json!({"janus": "message", "session_id": self.sid, "handle_id": h, "body": body}),
        );
        assert_eq!(r["janus"], "success", "not a success: {r}");
        assert_eq!(r["plugindata"]["plugin"], PACKAGE, "{r}");
        data_of(&r)
    }

    /// An asynchronous request: the event's data and JSEP.
    pub fn call(&mut self, h: u64, body: Value, jsep: Option<Value>) -> (Value, Value) {
        let mut req =
            json!({"janus": "message", "session_id": self.sid, "handle_id": h, "body": body});
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        let (ack, ev) = self.c.request_async(req, T);
        assert_eq!(ack["janus"], "ack", "{ack}");
        assert_eq!(ev["janus"], "event", "{ev}");
        assert_eq!(ev["sender"], h, "{ev}");
        (data_of(&ev), ev["jsep"].clone())
    }

    /// The next unsolicited VideoRoom event of handle `h` whose data satisfies `pred`.
    pub fn event(&mut self, h: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let ev = self.c.recv_event(
            |v| {
                v["janus"] == "event"
                    && v["sender"] == h
                    && v.get("transaction").is_none()
                    && pred(&v["plugindata"]["data"])
            },
            T,
        );
        data_of(&ev)
    }
}

/// Where each of `ids` publishes: the index of the backend whose room `room` lists it.
pub fn placement(be: &Backends, room: u64, ids: &[u64]) -> Vec<usize> {
    let mut found = vec![usize::MAX; ids.len()];
    for i in 0..be.n {
        // a killed backend holds nobody
        if Client::try_connect(&be.ws_url(i), Some("janus-protocol")).is_err() {
            continue;
        }
        let mut v = Vr::connect(&be.ws_url(i));
        let h = v.handle();
        let lp = v.sync(h, json!({"request": "listparticipants", "room": room}));
        for p in lp["participants"].as_array().into_iter().flatten() {
            if let Some(k) = ids.iter().position(|id| p["id"] == *id) {
                found[k] = i;
            }
        }
    }
    found
}

/// The value of metric `name` (no labels) on the proxy's `/metrics`.
pub fn metric(proxy: &Proxy, name: &str) -> Option<f64> {
    let h = http(
        "GET",
        &format!("http://127.0.0.1:{}/metrics", proxy.admin_port),
        None,
        None,
    );
    h.body
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Answers a subscriber's offer with a new peer and starts the subscription: the peer,
/// connected.
pub fn answer_offer(peers: &Peers, v: &mut Vr, h: u64, offer: &Value) -> Peer {
    let (peer, answer) = peers
        .subscriber(offer["sdp"].as_str().expect("offer sdp"))
        .expect("subscriber peer");
    let (s, _) = v.call(
        h,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    );
    assert_eq!(s["started"], "ok", "{s}");
    peer.wait_connected(T).expect("subscriber connected");
    peer
}

/// Answers a renegotiation offer of Janus on `peer` and starts again.
pub fn accept_offer(v: &mut Vr, h: u64, peer: &Peer, offer: &Value) {
    let answer = peer
        .renegotiate(offer["sdp"].as_str().expect("offer sdp"))
        .expect("renegotiate");
    let (st, _) = v.call(
        h,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    );
    assert_eq!(st["started"], "ok", "{st}");
}

/// A subscriber with real media to `feeds`: its handle, its peer, and the `attached`
/// event.
pub struct Sub {
    pub v: Vr,
    pub h: u64,
    pub peer: Peer,
    pub attached: Value,
    pub subscribed_at: Instant,
}

pub fn subscribe(peers: &Peers, url: &str, room: u64, feeds: &[u64]) -> Sub {
    let mut v = Vr::connect(url);
    let h = v.handle();
    let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
    let subscribed_at = Instant::now();
    let (attached, jsep) = v.call(
        h,
        json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams}),
        None,
    );
    assert_eq!(attached["videoroom"], "attached", "{attached}");
    assert_eq!(attached["room"], room, "{attached}");
    let peer = answer_offer(peers, &mut v, h, &jsep);
    Sub {
        v,
        h,
        peer,
        attached,
        subscribed_at,
    }
}

impl Sub {
    /// The next unsolicited `updated` event with an offer (Janus's autoupdate): the frame.
    pub fn next_update(&mut self) -> Value {
        let h = self.h;
        self.v.c.recv_event(
            |e| {
                e["sender"] == h
                    && e["plugindata"]["data"]["videoroom"] == "updated"
                    && e.get("jsep").is_some()
            },
            T,
        )
    }

    /// Answers a new offer from Janus (`jsep`) and starts again.
    pub fn accept(&mut self, jsep: &Value) {
        accept_offer(&mut self.v, self.h, &self.peer, jsep);
    }
}

/// A publisher with real media (a mediapeer PeerConnection): joined as `p{id}`, configured,
/// its PeerConnection up.
pub struct Pub {
    pub v: Vr,
    pub h: u64,
    pub peer: Peer,
}

pub fn publish(peers: &Peers, url: &str, room: u64, id: u64) -> Pub {
    let mut v = Vr::connect(url);
    let h = v.handle();
    let (j, _) = v.call(h, json!({"request": "join", "room": room, "ptype": "publisher", "id": id, "display": format!("p{id}")}), None);
    assert_eq!(j["videoroom"], "joined", "{j}");
    let (peer, offer) = peers.publisher(true, true).expect("publisher peer");
    let (c, jsep) = v.call(
        h,
        json!({"request": "configure", "audio": true, "video": true}),
        Some(json!({"type": "offer", "sdp": offer})),
    );
    assert_eq!(c["configured"], "ok", "{c}");
    peer.set_answer(jsep["sdp"].as_str().expect("answer sdp"))
        .expect("set answer");
    peer.wait_connected(T).expect("publisher connected");
    v.c.recv_event(|e| e["janus"] == "webrtcup" && e["sender"] == h, T);
    Pub { v, h, peer }
}
