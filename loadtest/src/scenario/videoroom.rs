//! videoroom: Janus 1.x VideoRoom (multistream) conferences. Every room has three kinds of
//! tasks, each client on its own WebSocket and session, all on the URL of the room (room `r`
//! uses URL `r` round robin: a room lives on one target):
//!
//! 1. the room task `create`s the room through the target
//!    (`{"request":"create","room":R,"publishers":P}`), holds its session with keepalives,
//!    and `destroy`s the room at the end, once the publishers are gone;
//! 2. P publishers, real WebRTC peers (janus-mediapeer): `join` (ptype publisher) →
//!    `joined`; `configure` with the peer's offer → `configured` with Janus's answer, which
//!    the peer applies; then Janus's `webrtcup` on the handle. Janus announces a publisher,
//!    and lets anybody subscribe to it, only once its media has started, so nothing less
//!    than a real peer will do. They stay up until the run ends (a `hangup` of their handle
//!    is an error), then `leave` once the room's subscribers are gone;
//! 3. S subscribers start over the ramp-up, each once all P publishers are up, and loop:
//!    `attach` → `join` (ptype subscriber, `streams` = every feed of the room) → `attached`
//!    with Janus's offer → `start` with an answer → hold (`--hold-ms`) → `leave` → `detach`
//!    → think (`--think-ms`). The answer is synthetic ([`sdp::mirror_answer`]: recvonly, no
//!    ICE, no media; Janus accepts it) or, with `--real-subscribers`, a mediapeer peer's,
//!    which must then reach `webrtcup` and receive RTP on every stream.
//!
//! A publisher that fails starts over with a new feed; subscribers join the feeds that are
//! up at the time and wait while fewer than P are.
//!
//! Request types recorded: room-create, pub-join, configure, webrtcup (configure sent →
//! Janus's `webrtcup`), sub-join (join sent → `attached` with the offer), start, leave,
//! sub-webrtcup and sub-media (`--real-subscribers`: start sent → `webrtcup` / RTP on every
//! stream), pub-leave, room-destroy; and the core connect, create, attach, detach,
//! keepalive, destroy.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use janus_mediapeer::AsyncPeer;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{start_offset, Shared};
use crate::client::{plugin_data, verb, Client, ClientError, Reply, Result};
use crate::sdp;

pub const PLUGIN: &str = "janus.plugin.videoroom";

/// What the tasks of one room share.
struct Room {
    id: u64,
    /// Index of the room (its URL).
    index: usize,
    /// The room exists on the target.
    created: watch::Sender<bool>,
    /// Feed ids of the publishers whose media is up, in the order they came up.
    feeds: watch::Sender<Vec<u64>>,
    /// Publisher tasks still running (the room is destroyed when none is left).
    publishers: watch::Sender<usize>,
    /// Subscriber tasks still running (publishers leave when none is left).
    subscribers: watch::Sender<usize>,
}

impl Room {
    fn new(id: u64, index: usize, publishers: usize, subscribers: usize) -> Room {
        Room {
            id,
            index,
            created: watch::channel(false).0,
            feeds: watch::channel(Vec::new()).0,
            publishers: watch::channel(publishers).0,
            subscribers: watch::channel(subscribers).0,
        }
    }
}

/// Resolves when `tx`'s value satisfies `pred` (at once if it already does).
async fn until<T>(tx: &watch::Sender<T>, pred: impl FnMut(&T) -> bool) {
    let mut rx = tx.subscribe();
    // the sender is borrowed, so it outlives the wait
    let _ = rx.wait_for(pred).await;
}

/// Counts a task down in its room when it ends (however it ends).
struct Running<'a>(&'a watch::Sender<usize>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A feed listed in its room while it lives.
struct Feed<'a> {
    room: &'a Room,
    id: u64,
}

impl<'a> Feed<'a> {
    fn add(room: &'a Room, id: u64) -> Feed<'a> {
        room.feeds.send_modify(|f| f.push(id));
        Feed { room, id }
    }
}

impl Drop for Feed<'_> {
    fn drop(&mut self) {
        let id = self.id;
        self.room.feeds.send_modify(|f| f.retain(|x| *x != id));
    }
}

/// Spawns every task of every room: the room tasks and publishers at once, subscribers
/// spread over the ramp-up (interleaved over the rooms).
pub fn spawn_all(sh: &Arc<Shared>, start: Instant) -> Vec<JoinHandle<()>> {
    let rp = sh.plan.videoroom.clone();
    let all_subs = rp.rooms * rp.subscribers;
    let mut tasks = Vec::new();
    for r in 0..rp.rooms {
        let room = Arc::new(Room::new(
            rp.first_room + r as u64,
            r,
            rp.publishers,
            rp.subscribers,
        ));
        let (rm, s) = (room.clone(), sh.clone());
        tasks.push(tokio::spawn(async move { room_unit(&rm, &s).await }));
        for p in 0..rp.publishers {
            let (rm, s) = (room.clone(), sh.clone());
            tasks.push(tokio::spawn(
                async move { publisher_unit(&rm, p, &s).await },
            ));
        }
        for i in 0..rp.subscribers {
            let g = i * rp.rooms + r;
            let at = start + start_offset(g, all_subs, sh.plan.ramp_up);
            let (rm, s) = (room.clone(), sh.clone());
            tasks.push(tokio::spawn(async move {
                subscriber_unit(&rm, g, at, &s).await;
            }));
        }
    }
    tasks
}

// ------------------------------------------------------------------ one client

/// One client of the room: a WebSocket with one session and one VideoRoom handle.
struct Part {
    c: Client,
    sid: u64,
    hid: u64,
    next_keepalive: Instant,
}

fn message(sid: u64, hid: u64, body: Value, jsep: Option<Value>) -> Value {
    let mut m = json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": body});
    if let Some(j) = jsep {
        m["jsep"] = j;
    }
    m
}

/// `plugindata.data[key]` as a string.
fn data_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    plugin_data(v)?.get(key)?.as_str()
}

fn unexpected(op: &'static str, v: &Value) -> ClientError {
    ClientError::Unexpected {
        op,
        frame: v.to_string(),
    }
}

/// Checks `plugindata.data[key] == want` in the answer to `op`.
fn expect_data(op: &'static str, v: &Value, key: &str, want: &str) -> Result<()> {
    if data_str(v, key) == Some(want) {
        Ok(())
    } else {
        Err(unexpected(op, v))
    }
}

/// The SDP of the answer's JSEP when it is of type `kind`.
fn jsep_sdp(op: &'static str, v: &Value, kind: &str) -> Result<String> {
    let j = v.get("jsep");
    match (
        j.and_then(|j| j.get("type")).and_then(Value::as_str),
        j.and_then(|j| j.get("sdp")).and_then(Value::as_str),
    ) {
        (Some(t), Some(s)) if t == kind => Ok(s.to_string()),
        _ => Err(unexpected(op, v)),
    }
}

/// A frame telling that handle `hid` lost its PeerConnection or its existence, or a
/// renegotiation nobody asked for: none should happen while a participant is idle.
fn trouble(v: &Value, hid: u64) -> bool {
    if v.get("sender").and_then(Value::as_u64) != Some(hid) {
        return false;
    }
    match verb(v) {
        "hangup" | "detached" => true,
        "event" => v.get("jsep").is_some() && v.get("transaction").is_none(),
        _ => false,
    }
}

/// Runs one of [`AsyncPeer`]'s constructors. Their futures are not `Send` (janus-mediapeer
/// 0.1 keeps a `watch` guard across an await while gathering), so `tokio::spawn`ed tasks
/// cannot await them directly: they run on a blocking thread that drives them with this
/// runtime's handle (timers, sockets and the peer's own tasks stay on this runtime).
async fn new_peer<F>(
    make: impl FnOnce() -> F + Send + 'static,
) -> anyhow::Result<(AsyncPeer, String)>
where
    F: Future<Output = anyhow::Result<(AsyncPeer, String)>>,
{
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(make()))
        .await
        .map_err(|e| anyhow::anyhow!("peer set-up task: {e}"))?
}

fn media(op: &'static str) -> impl FnOnce(anyhow::Error) -> ClientError {
    move |e| ClientError::Media {
        op,
        reason: format!("{e:#}"),
    }
}

impl Part {
    /// Connects, creates a session and attaches a VideoRoom handle.
    async fn open(url: &str, sh: &Shared) -> Result<Part> {
        let mut c = Client::connect(url, sh.rec.clone(), sh.plan.timeout).await?;
        let sid = c.create().await?;
        let hid = c.attach(sid, PLUGIN).await?;
        Ok(Part {
            c,
            sid,
            hid,
            next_keepalive: Instant::now() + sh.plan.keepalive,
        })
    }

    /// A message to the handle, answered by ack + event (or a synchronous `success`).
    async fn call(&mut self, op: &'static str, body: Value, jsep: Option<Value>) -> Result<Value> {
        let m = message(self.sid, self.hid, body, jsep);
        self.c.request(op, m, Reply::AckAndEvent).await
    }

    /// Waits until `end` (or for ever when `None`) or until `cut` resolves, reading what
    /// arrives (so that the target never has to queue for us) and sending keepalives when
    /// due. A [`trouble`] frame of the handle ends it with an `unexpected:<op>` error.
    async fn idle(
        &mut self,
        sh: &Shared,
        op: &'static str,
        end: Option<Instant>,
        cut: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(cut);
        loop {
            let now = Instant::now();
            if now >= self.next_keepalive {
                self.c.keepalive(self.sid).await?;
                self.next_keepalive = Instant::now() + sh.plan.keepalive;
            }
            if end.is_some_and(|e| now >= e) {
                break;
            }
            let wake = end.map_or(self.next_keepalive, |e| e.min(self.next_keepalive));
            let hid = self.hid;
            tokio::select! {
                // dropping a pending read loses nothing: frames are only taken whole
                r = self.c.expect(op, wake, |v| trouble(v, hid)) => match r {
                    Ok(v) => return Err(unexpected(op, &v)),
                    Err(ClientError::Timeout { .. }) => {}
                    Err(e) => return Err(e),
                },
                () = &mut cut => break,
            }
        }
        self.c.clear_stash();
        Ok(())
    }

    async fn close(mut self) -> Result<()> {
        self.c.destroy(self.sid).await?;
        self.c.close().await;
        Ok(())
    }
}

/// How long a task waits for the others at the end (subscribers to go, publishers to go).
fn grace(sh: &Shared) -> Option<Instant> {
    Some(Instant::now() + sh.plan.timeout + Duration::from_secs(5))
}

// ------------------------------------------------------------------ the room

async fn room_unit(room: &Room, sh: &Shared) {
    loop {
        match room_life(room, sh).await {
            Ok(()) => return,
            // a room never made lets nobody in: keep trying until the run stops
            Err(e) => {
                sh.fail(&e);
                if sh.stopping() {
                    return;
                }
                sh.backoff().await;
            }
        }
    }
}

async fn room_life(room: &Room, sh: &Shared) -> Result<()> {
    let rp = &sh.plan.videoroom;
    let mut part = Part::open(sh.url(room.index), sh).await?;
    if !*room.created.borrow() {
        let body = json!({"request": "create", "room": room.id, "publishers": rp.publishers,
            "description": format!("janus-loadtest {}", sh.plan.run_id)});
        let v = part.call("room-create", body, None).await?;
        expect_data("room-create", &v, "videoroom", "created")?;
        room.created.send_replace(true);
    }
    part.idle(sh, "room-hold", None, sh.stopped()).await?;
    let gone = until(&room.publishers, |n| *n == 0);
    part.idle(sh, "room-hold", grace(sh), gone).await?;
    let v = part
        .call(
            "room-destroy",
            json!({"request": "destroy", "room": room.id}),
            None,
        )
        .await?;
    expect_data("room-destroy", &v, "videoroom", "destroyed")?;
    part.close().await
}

// ------------------------------------------------------------------ publishers

async fn publisher_unit(room: &Room, p: usize, sh: &Shared) {
    let _running = Running(&room.publishers);
    while !sh.stopping() {
        match publisher(room, p, sh).await {
            Ok(()) => return,
            Err(e) => {
                sh.fail(&e);
                sh.backoff().await;
            }
        }
    }
}

async fn publisher(room: &Room, p: usize, sh: &Shared) -> Result<()> {
    tokio::select! {
        () = until(&room.created, |c| *c) => {}
        () = sh.stopped() => return Ok(()),
    }
    let (rp, timeout) = (&sh.plan.videoroom, sh.plan.timeout);
    let mut part = Part::open(sh.url(room.index), sh).await?;
    let _up = sh.client_up();
    let display = format!("lt{}-pub{p}", sh.plan.run_id);
    let body =
        json!({"request": "join", "ptype": "publisher", "room": room.id, "display": display});
    let v = part.call("pub-join", body, None).await?;
    expect_data("pub-join", &v, "videoroom", "joined")?;
    let feed = plugin_data(&v)
        .and_then(|d| d.get("id"))
        .and_then(Value::as_u64)
        .ok_or_else(|| unexpected("pub-join", &v))?;

    let (audio, video) = (rp.audio, rp.video);
    let (peer, offer) = new_peer(move || AsyncPeer::publisher(audio, video))
        .await
        .map_err(media("publisher"))?;
    let t0 = Instant::now();
    let body = json!({"request": "configure", "audio": rp.audio, "video": rp.video});
    let jsep = json!({"type": "offer", "sdp": offer});
    let v = part.call("configure", body, Some(jsep)).await?;
    expect_data("configure", &v, "configured", "ok")?;
    let answer = jsep_sdp("configure", &v, "answer")?;
    peer.set_answer(&answer).await.map_err(media("configure"))?;
    let hid = part.hid;
    part.c
        .expect("webrtcup", t0 + timeout, |v| {
            verb(v) == "webrtcup" && v.get("sender").and_then(Value::as_u64) == Some(hid)
        })
        .await?;
    sh.rec.op("webrtcup", t0);
    peer.wait_connected(timeout)
        .await
        .map_err(media("webrtcup"))?;

    let listed = Feed::add(room, feed);
    part.idle(sh, "pub-hold", None, sh.stopped()).await?;
    // subscribers leave first, so that none sees a feed go away
    let gone = until(&room.subscribers, |n| *n == 0);
    part.idle(sh, "pub-hold", grace(sh), gone).await?;
    drop(listed);
    let v = part
        .call("pub-leave", json!({"request": "leave"}), None)
        .await;
    peer.close().await;
    v?;
    part.close().await
}

// ------------------------------------------------------------------ subscribers

async fn subscriber_unit(room: &Room, g: usize, at: Instant, sh: &Shared) {
    let _running = Running(&room.subscribers);
    tokio::select! {
        () = tokio::time::sleep_until(at.into()) => {}
        () = sh.stopped() => return,
    }
    while !sh.stopping() {
        match subscriber(room, g, sh).await {
            Ok(()) => return,
            Err(e) => {
                sh.fail(&e);
                sh.backoff().await;
            }
        }
    }
}

/// Resolves when every publisher of the room is up.
async fn ready(room: &Room, publishers: usize) {
    until(&room.feeds, |f| f.len() >= publishers).await;
}

async fn subscriber(room: &Room, g: usize, sh: &Shared) -> Result<()> {
    let publishers = sh.plan.videoroom.publishers;
    tokio::select! {
        () = ready(room, publishers) => {}
        () = sh.stopped() => return Ok(()),
    }
    let mut c = Client::connect(sh.url(room.index), sh.rec.clone(), sh.plan.timeout).await?;
    let sid = c.create().await?;
    let mut part = Part {
        c,
        sid,
        hid: 0,
        next_keepalive: Instant::now() + sh.plan.keepalive,
    };
    let _up = sh.client_up();
    let mut seed = (g as u64) << 32;
    while !sh.stopping() {
        if room.feeds.borrow().len() < publishers {
            let cut = async {
                tokio::select! {
                    () = ready(room, publishers) => {}
                    () = sh.stopped() => {}
                }
            };
            part.idle(sh, "sub-wait", None, cut).await?;
            continue;
        }
        seed += 1;
        subscription(&mut part, room, seed, sh).await?;
        part.idle(
            sh,
            "sub-think",
            Some(Instant::now() + sh.plan.think),
            sh.stopped(),
        )
        .await?;
    }
    part.close().await
}

/// One subscription: attach, join every feed, start, hold, leave, detach.
async fn subscription(part: &mut Part, room: &Room, seed: u64, sh: &Shared) -> Result<()> {
    let real = sh.plan.videoroom.real_subscribers;
    let feeds = room.feeds.borrow().clone();
    part.hid = part.c.attach(part.sid, PLUGIN).await?;
    let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
    let body =
        json!({"request": "join", "ptype": "subscriber", "room": room.id, "streams": streams});
    let v = part.call("sub-join", body, None).await?;
    expect_data("sub-join", &v, "videoroom", "attached")?;
    let offer = jsep_sdp("sub-join", &v, "offer")?;

    let (peer, answer) = if real {
        let o = offer.clone();
        let (peer, answer) = new_peer(move || async move { AsyncPeer::subscriber(&o).await })
            .await
            .map_err(media("subscriber"))?;
        (Some(peer), answer)
    } else {
        (None, sdp::mirror_answer(&offer, seed))
    };
    let t0 = Instant::now();
    let jsep = json!({"type": "answer", "sdp": answer});
    let v = part
        .call("start", json!({"request": "start"}), Some(jsep))
        .await?;
    expect_data("start", &v, "started", "ok")?;
    if let Some(peer) = &peer {
        media_up(part, peer, &offer, t0, sh).await?;
    }

    let end = Instant::now() + sh.plan.hold;
    part.idle(sh, "sub-hold", Some(end), sh.stopped()).await?;
    let left = part.call("leave", json!({"request": "leave"}), None).await;
    if let Some(peer) = &peer {
        peer.close().await;
    }
    left?;
    part.c.detach(part.sid, part.hid).await?;
    // its `hangup` and `detached` may still come: they are no trouble
    part.hid = 0;
    part.c.clear_stash();
    Ok(())
}

/// A real subscriber: Janus's `webrtcup` on the handle, the peer connected, and RTP on
/// every stream Janus offered to send.
async fn media_up(
    part: &mut Part,
    peer: &AsyncPeer,
    offer: &str,
    t0: Instant,
    sh: &Shared,
) -> Result<()> {
    let timeout = sh.plan.timeout;
    let hid = part.hid;
    part.c
        .expect("sub-webrtcup", t0 + timeout, |v| {
            verb(v) == "webrtcup" && v.get("sender").and_then(Value::as_u64) == Some(hid)
        })
        .await?;
    sh.rec.op("sub-webrtcup", t0);
    peer.wait_connected(timeout)
        .await
        .map_err(media("sub-webrtcup"))?;
    let mids = sdp::sending_mids(offer);
    let mids: Vec<&str> = mids.iter().map(String::as_str).collect();
    let left = (t0 + timeout).saturating_duration_since(Instant::now());
    // keep reading the socket meanwhile: the target must never queue for us
    let hid = part.hid;
    let got = async {
        tokio::select! {
            r = peer.wait_received(&mids, 0, left) => r.map_err(media("sub-media")),
            r = part.c.expect("sub-media", t0 + timeout, |v| trouble(v, hid)) => match r {
                Ok(v) => Err(unexpected("sub-media", &v)),
                Err(e) => Err(e),
            },
        }
    };
    got.await?;
    sh.rec.op("sub-media", t0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trouble_is_about_our_handle_only() {
        let hangup =
            json!({"janus": "hangup", "session_id": 1, "sender": 7, "reason": "ICE failed"});
        assert!(trouble(&hangup, 7));
        assert!(!trouble(&hangup, 8));
        let media = json!({"janus": "media", "sender": 7, "type": "audio", "receiving": true});
        assert!(!trouble(&media, 7));
        let updated = json!({"janus": "event", "sender": 7, "plugindata": {"data": {"videoroom": "updated"}}, "jsep": {"type": "offer", "sdp": "v=0"}});
        assert!(trouble(&updated, 7));
        let answer = json!({"janus": "event", "sender": 7, "transaction": "t", "jsep": {"type": "offer", "sdp": "v=0"}});
        assert!(!trouble(&answer, 7), "the answer to our own request");
        let publishers = json!({"janus": "event", "sender": 7, "plugindata": {"data": {"videoroom": "event", "publishers": []}}});
        assert!(!trouble(&publishers, 7));
    }

    #[test]
    fn answers_are_checked() {
        let v = json!({"janus": "event", "plugindata": {"data": {"videoroom": "attached", "room": 5}}, "jsep": {"type": "offer", "sdp": "v=0\r\n"}});
        assert!(expect_data("sub-join", &v, "videoroom", "attached").is_ok());
        assert_eq!(
            expect_data("sub-join", &v, "videoroom", "joined")
                .unwrap_err()
                .kind(),
            "unexpected:sub-join"
        );
        assert_eq!(jsep_sdp("sub-join", &v, "offer").unwrap(), "v=0\r\n");
        assert!(jsep_sdp("sub-join", &v, "answer").is_err());
        assert!(jsep_sdp("x", &json!({}), "offer").is_err());
    }

    #[tokio::test]
    async fn feeds_and_counts_follow_their_guards() {
        let room = Room::new(1, 0, 2, 1);
        {
            let _a = Feed::add(&room, 10);
            let _b = Feed::add(&room, 11);
            assert_eq!(*room.feeds.borrow(), vec![10, 11]);
            tokio::time::timeout(Duration::from_secs(1), ready(&room, 2))
                .await
                .unwrap();
        }
        assert!(room.feeds.borrow().is_empty());
        drop(Running(&room.subscribers));
        tokio::time::timeout(
            Duration::from_secs(1),
            until(&room.subscribers, |n| *n == 0),
        )
        .await
        .unwrap();
    }
}
