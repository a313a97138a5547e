//! janus-mediapeer against a real Janus (Debian's janus 1.1.x), started with
//! `scripts/janus-backends.sh` on its own ports: WebSocket API ws://127.0.0.1:19388, admin
//! 19389 (WS + 1), RTP/ICE ports 40000-40999, work folder `$TMPDIR/mediapeer-janus` (override
//! with MEDIAPEER_JANUS_WS_PORT, MEDIAPEER_JANUS_RTP_BASE, MEDIAPEER_JANUS_DIR; the script
//! with JANUS_BACKENDS_SCRIPT). Each test starts that Janus and stops it when done, holding a
//! file lock meanwhile so that tests (threads or nextest processes) take turns. Skipped (with
//! a message) only when the script is missing.
//!
//! Proves: EchoTest reaches `webrtcup`, Janus reports media being received and the echoed
//! media comes back; a VideoRoom publisher reaches `webrtcup` and a subscriber receives RTP
//! on both its audio and its video mid; a subscriber renegotiation (`update` -> `updated`)
//! adds a stream that then carries RTP.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use janus_mediapeer::Peers;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

const STEP: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ the Janus instance

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn ws_port() -> u16 {
    env_or("MEDIAPEER_JANUS_WS_PORT", "19388").parse().unwrap()
}

fn script() -> PathBuf {
    match std::env::var_os("JANUS_BACKENDS_SCRIPT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/janus-backends.sh"),
    }
}

fn workdir() -> String {
    std::env::var("MEDIAPEER_JANUS_DIR").unwrap_or_else(|_| {
        format!(
            "{}/mediapeer-janus",
            std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".to_owned())
        )
    })
}

fn run_script(args: &[&str]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .env(
            "JANUS_RTP_BASE",
            env_or("MEDIAPEER_JANUS_RTP_BASE", "40000"),
        )
        .env("JANUS_RTP_SPAN", "1000")
        // WS + 1, not the script's default WS - 1000 (18388 is a sentinel test's Janus)
        .env("JANUS_ADMIN_BASE_PORT", (ws_port() + 1).to_string())
        .output()
        .expect("cannot run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Exclusive use of the Janus instance: an exclusive `flock` on `<workdir>.lock`, held from
/// start to stop. Tests take turns (cargo runs them on threads, nextest in processes of their
/// own; the lock serialises both), and the instance is never shared, so a failed test cannot
/// leave state behind for the next one.
struct JanusGuard {
    _lock: File,
}

fn janus() -> Option<JanusGuard> {
    if !script().exists() {
        eprintln!(
            "SKIPPED: {} not found (set JANUS_BACKENDS_SCRIPT); no Janus to test against",
            script().display()
        );
        return None;
    }
    let dir = workdir();
    if let Some(parent) = Path::new(&dir).parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{dir}.lock"))
        .unwrap();
    lock.lock().unwrap();
    // under the lock, a Janus still running in our folder is a leftover of a killed run
    run_script(&["stop", &dir]);
    let port = ws_port().to_string();
    let (ok, text) = run_script(&["start", "1", &port, &dir]);
    assert!(ok, "starting Janus failed:\n{text}");
    Some(JanusGuard { _lock: lock })
}

impl Drop for JanusGuard {
    fn drop(&mut self) {
        run_script(&["stop", &workdir()]);
    }
}

// ------------------------------------------------------------------ a Janus API client

/// A blocking client of Janus's WebSocket API (subprotocol `janus-protocol`) holding one
/// session; frames that are not what a call waits for are kept for later waits.
struct Client {
    ws: WebSocket<TcpStream>,
    stash: VecDeque<Value>,
    session: u64,
    next_transaction: u64,
    last_keepalive: Instant,
}

impl Client {
    fn connect() -> Client {
        let url = format!("ws://127.0.0.1:{}", ws_port());
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let stream = TcpStream::connect(("127.0.0.1", ws_port())).unwrap();
        stream.set_nodelay(true).unwrap();
        let (ws, _) = tungstenite::client(request, stream).unwrap();
        let mut client = Client {
            ws,
            stash: VecDeque::new(),
            session: 0,
            next_transaction: 0,
            last_keepalive: Instant::now(),
        };
        let created = client.call(json!({"janus": "create"}));
        assert_eq!(created["janus"], "success", "create: {created}");
        client.session = created["data"]["id"].as_u64().unwrap();
        client
    }

    fn send(&mut self, mut v: Value) -> String {
        self.next_transaction += 1;
        let transaction = format!("mp-{}", self.next_transaction);
        v["transaction"] = json!(transaction);
        if self.session != 0 {
            v["session_id"] = json!(self.session);
        }
        self.ws.send(Message::text(v.to_string())).unwrap();
        transaction
    }

    /// The next frame from the socket, or None after `timeout`.
    fn read(&mut self, timeout: Duration) -> Option<Value> {
        self.ws
            .get_mut()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        match self.ws.read() {
            Ok(Message::Text(t)) => Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                None
            }
            Err(e) => panic!("Janus connection failed: {e}"),
        }
    }

    /// Waits for the first frame (kept ones first) matching `pred`, keeping the session
    /// alive meanwhile; panics after `within`, listing what came instead.
    fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool, within: Duration) -> Value {
        if let Some(i) = self.stash.iter().position(&pred) {
            return self.stash.remove(i).unwrap();
        }
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {what} from Janus within {within:?}; other frames: {:?}",
                self.stash
            );
            if self.session != 0 && self.last_keepalive.elapsed() > Duration::from_secs(20) {
                self.last_keepalive = Instant::now();
                self.send(json!({"janus": "keepalive"}));
            }
            let slice = (deadline - now).min(Duration::from_secs(1));
            if let Some(v) = self.read(slice) {
                if pred(&v) {
                    return v;
                }
                if v["janus"] != "ack" {
                    self.stash.push_back(v);
                }
            }
        }
    }

    /// Sends a request and returns its answer: the first frame of its transaction that is
    /// not an `ack` (a `success`, an `error`, or a plugin's asynchronous `event`).
    fn call(&mut self, v: Value) -> Value {
        let what = format!("answer to {v}");
        let transaction = self.send(v);
        self.wait(
            &what,
            |f| f["transaction"] == transaction.as_str() && f["janus"] != "ack",
            STEP,
        )
    }

    fn attach(&mut self, plugin: &str) -> u64 {
        let attached = self.call(json!({"janus": "attach", "plugin": plugin}));
        assert_eq!(attached["janus"], "success", "attach: {attached}");
        attached["data"]["id"].as_u64().unwrap()
    }

    /// A plugin message (with an optional jsep); returns the plugin's answer.
    fn message(&mut self, handle: u64, body: Value, jsep: Option<Value>) -> Value {
        let mut m = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(jsep) = jsep {
            m["jsep"] = jsep;
        }
        let answer = self.call(m);
        assert!(
            answer["janus"] == "success" || answer["janus"] == "event",
            "message failed: {answer}"
        );
        assert!(
            answer["plugindata"]["data"]["error"].is_null(),
            "plugin error: {answer}"
        );
        answer
    }

    /// Waits for a core event (`webrtcup`, `media`, `hangup`, ...) of `handle`.
    fn wait_core_event(
        &mut self,
        handle: u64,
        kind: &str,
        extra: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait(
            &format!("{kind} event of handle {handle}"),
            |v| v["janus"] == kind && v["sender"] == handle && extra(v),
            STEP,
        )
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.session != 0 {
            let _ = self.ws.send(Message::text(
                json!({"janus": "destroy", "session_id": self.session, "transaction": "bye"})
                    .to_string(),
            ));
        }
        let _ = self.ws.close(None);
    }
}

fn jsep_sdp(v: &Value, kind: &str) -> String {
    assert_eq!(v["jsep"]["type"], kind, "expected a jsep {kind} in {v}");
    v["jsep"]["sdp"].as_str().unwrap().to_owned()
}

/// The `a=mid:` of each audio/video m-section of `sdp` that is not rejected (port 0), as
/// (kind, mid).
fn media_mids(sdp: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("m=") {
            let mut parts = rest.split(' ');
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            current = (matches!(kind, "audio" | "video") && port != "0").then(|| kind.to_owned());
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if let Some(kind) = &current {
                out.push((kind.clone(), mid.trim().to_owned()));
            }
        }
    }
    out
}

fn mid_of(sdp: &str, kind: &str) -> String {
    media_mids(sdp)
        .into_iter()
        .find(|(k, _)| k == kind)
        .unwrap_or_else(|| panic!("no {kind} m-line in\n{sdp}"))
        .1
}

/// Fewer bytes than 2 s of either synthetic stream (Opus silence: 150 B/s; VP8: ~9 kB/s).
const MIN_BYTES: u64 = 200;

// ------------------------------------------------------------------ the tests

#[test]
fn echotest_reaches_webrtcup_and_echoes_media() {
    let Some(_janus) = janus() else { return };
    let peers = Peers::new();
    let mut janus = Client::connect();
    let handle = janus.attach("janus.plugin.echotest");

    let (peer, offer) = peers.echo_publisher(true, true).unwrap();
    let answer = janus.message(
        handle,
        json!({"audio": true, "video": true}),
        Some(json!({"type": "offer", "sdp": offer})),
    );
    assert_eq!(answer["plugindata"]["data"]["result"], "ok", "{answer}");
    let answer_sdp = jsep_sdp(&answer, "answer");
    assert!(
        answer_sdp.contains("127.0.0.1"),
        "Janus offered no loopback candidate (is the loopback shim active?):\n{answer_sdp}"
    );
    peer.set_answer(&answer_sdp).unwrap();

    janus.wait_core_event(handle, "webrtcup", |_| true);
    peer.wait_connected(STEP).unwrap();
    for kind in ["audio", "video"] {
        janus.wait_core_event(handle, "media", |v| {
            v["type"] == kind && v["receiving"] == true
        });
    }
    // the echo: what Janus sends back arrives on our own (sendrecv) mids
    let audio = mid_of(&answer_sdp, "audio");
    let video = mid_of(&answer_sdp, "video");
    peer.wait_received(&[&audio, &video], MIN_BYTES, STEP)
        .unwrap();
    peer.close();
}

/// Creates a VideoRoom room (Opus + VP8) on `handle`; returns its id.
fn create_room(janus: &mut Client, handle: u64) -> u64 {
    let created = janus.message(
        handle,
        json!({"request": "create", "publishers": 4, "audiocodec": "opus", "videocodec": "vp8",
               "description": "janus-mediapeer test"}),
        None,
    );
    assert_eq!(
        created["plugindata"]["data"]["videoroom"], "created",
        "{created}"
    );
    created["plugindata"]["data"]["room"].as_u64().unwrap()
}

/// A publisher handle joined to `room` and publishing audio+video from `peer`'s offer;
/// returns (handle, feed id) once Janus reports `webrtcup`.
fn publish(janus: &mut Client, room: u64, peer: &janus_mediapeer::Peer, offer: &str) -> (u64, u64) {
    let handle = janus.attach("janus.plugin.videoroom");
    let joined = janus.message(
        handle,
        json!({"request": "join", "ptype": "publisher", "room": room, "display": "mediapeer"}),
        None,
    );
    assert_eq!(
        joined["plugindata"]["data"]["videoroom"], "joined",
        "{joined}"
    );
    let feed = joined["plugindata"]["data"]["id"].as_u64().unwrap();
    let configured = janus.message(
        handle,
        json!({"request": "configure", "audio": true, "video": true}),
        Some(json!({"type": "offer", "sdp": offer})),
    );
    assert_eq!(
        configured["plugindata"]["data"]["configured"], "ok",
        "{configured}"
    );
    peer.set_answer(&jsep_sdp(&configured, "answer")).unwrap();
    janus.wait_core_event(handle, "webrtcup", |_| true);
    peer.wait_connected(STEP).unwrap();
    (handle, feed)
}

#[test]
fn videoroom_subscriber_receives_audio_and_video() {
    let Some(_janus) = janus() else { return };
    let peers = Peers::new();
    let mut janus = Client::connect();
    let admin = janus.attach("janus.plugin.videoroom");
    let room = create_room(&mut janus, admin);

    let (publisher, offer) = peers.publisher(true, true).unwrap();
    let (_pub_handle, feed) = publish(&mut janus, room, &publisher, &offer);

    let sub_handle = janus.attach("janus.plugin.videoroom");
    let attached = janus.message(
        sub_handle,
        json!({"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]}),
        None,
    );
    assert_eq!(
        attached["plugindata"]["data"]["videoroom"], "attached",
        "{attached}"
    );
    let sub_offer = jsep_sdp(&attached, "offer");
    let (subscriber, answer) = peers.subscriber(&sub_offer).unwrap();
    let started = janus.message(
        sub_handle,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    );
    assert_eq!(started["plugindata"]["data"]["started"], "ok", "{started}");
    janus.wait_core_event(sub_handle, "webrtcup", |_| true);
    subscriber.wait_connected(STEP).unwrap();

    let audio = mid_of(&sub_offer, "audio");
    let video = mid_of(&sub_offer, "video");
    subscriber
        .wait_received(&[&audio, &video], MIN_BYTES, STEP)
        .unwrap();
    assert!(
        publisher.received().is_empty(),
        "the sendonly publisher received {:?}",
        publisher.received()
    );

    subscriber.close();
    publisher.close();
    janus.message(admin, json!({"request": "destroy", "room": room}), None);
}

#[test]
fn videoroom_subscriber_renegotiates_to_add_video() {
    let Some(_janus) = janus() else { return };
    let peers = Peers::new();
    let mut janus = Client::connect();
    let admin = janus.attach("janus.plugin.videoroom");
    let room = create_room(&mut janus, admin);

    let (publisher, offer) = peers.publisher(true, true).unwrap();
    let (_pub_handle, feed) = publish(&mut janus, room, &publisher, &offer);
    let pub_audio = mid_of(&offer, "audio");
    let pub_video = mid_of(&offer, "video");

    // subscribe to the audio stream only
    let sub_handle = janus.attach("janus.plugin.videoroom");
    let attached = janus.message(
        sub_handle,
        json!({"request": "join", "ptype": "subscriber", "room": room,
               "streams": [{"feed": feed, "mid": pub_audio}]}),
        None,
    );
    let sub_offer = jsep_sdp(&attached, "offer");
    assert_eq!(media_mids(&sub_offer).len(), 1, "audio only:\n{sub_offer}");
    let (subscriber, answer) = peers.subscriber(&sub_offer).unwrap();
    janus.message(
        sub_handle,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    );
    janus.wait_core_event(sub_handle, "webrtcup", |_| true);
    let audio = mid_of(&sub_offer, "audio");
    subscriber
        .wait_received(&[&audio], MIN_BYTES, STEP)
        .unwrap();

    // add the video stream: Janus renegotiates with an `updated` event carrying an offer
    let updated = janus.message(
        sub_handle,
        json!({"request": "update", "subscribe": [{"feed": feed, "mid": pub_video}]}),
        None,
    );
    assert_eq!(
        updated["plugindata"]["data"]["videoroom"], "updated",
        "{updated}"
    );
    let new_offer = jsep_sdp(&updated, "offer");
    let new_answer = subscriber.renegotiate(&new_offer).unwrap();
    janus.message(
        sub_handle,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": new_answer})),
    );
    let video = mid_of(&new_offer, "video");
    let audio_before = subscriber.received()[&audio];
    subscriber
        .wait_received(&[&video], MIN_BYTES, STEP)
        .unwrap();
    // audio kept flowing through the renegotiation
    subscriber
        .wait_received(&[&audio], audio_before + MIN_BYTES, STEP)
        .unwrap();

    subscriber.close();
    publisher.close();
    janus.message(admin, json!({"request": "destroy", "room": room}), None);
}
