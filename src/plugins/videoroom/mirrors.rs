//! Mirrors: a publisher's feed made available on another server of its room, for the
//! subscribers placed there, with Janus 1.x remote publishers (spec 07 §13): the target
//! server gets `add_remote_publisher` (same id and display as the feed, every stream of
//! the origin in mindex order), the origin `publish_remotely` towards the port the target
//! opened, with an RTCP port so that keyframe requests reach the source.
//!
//! Owned by the room's owner shard, in the room. A mirror is shared by every subscriber
//! on its server and held while one of them uses it; an unused one stays
//! `mirror_idle_timeout` seconds for the next subscriber (Janus 1.1.2 does not free a
//! remote publisher's ports once media flowed, so mirrors are reused rather than churned).
//!
//! Janus 1.1.2 names a remote publisher's streams "0", "1", … by position, whatever mids
//! it is given: [`MidMap`] translates between the feed's mids and the mirror's.

use std::time::{Duration, Instant};

use ahash::AHashMap;
use futures_channel::oneshot;
use serde_json::{json, Value};
use tracing::{debug, warn};

use super::error::{VrError, VrResult, UNKNOWN_ERROR};
use super::rooms::{backend_room, counts, with_room};
use super::{control, Settings};
use crate::plugins::Host;

/// (publisher mid, mirror mid) of each stream of a mirrored feed.
pub type MidMap = Vec<(String, String)>;

/// The mirror mid of publisher mid `mid`.
pub fn mirror_mid<'a>(map: &'a MidMap, mid: &str) -> Option<&'a str> {
    map.iter().find(|(o, _)| o == mid).map(|(_, m)| m.as_str())
}

/// The publisher mid of mirror mid `mid`.
pub fn origin_mid<'a>(map: &'a MidMap, mid: &str) -> Option<&'a str> {
    map.iter().find(|(_, m)| m == mid).map(|(o, _)| o.as_str())
}

/// Most m-lines a mirror is given (Janus offers far fewer).
const MAX_STREAMS: u64 = 256;

/// The `streams` of `add_remote_publisher` for a feed's streams, and the mid map: every
/// stream in mindex order (disabled ones too: the target demultiplexes RTP by SSRC, which
/// the origin derives from the mindex), without the profile fields Janus 1.1.2 refuses
/// as strings there.
pub fn mirror_streams(streams: &[Value]) -> (Vec<Value>, MidMap) {
    let mut sorted: Vec<(u64, &Value)> = streams
        .iter()
        .filter_map(|s| Some((s.get("mindex")?.as_u64()?, s)))
        .collect();
    sorted.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(sorted.len());
    let mut map = MidMap::new();
    for (mindex, s) in sorted {
        // A gap (an m-line the publisher has no stream for) gets a disabled placeholder,
        // so that position i is the origin's mindex i.
        while (out.len() as u64) < mindex.min(MAX_STREAMS) {
            let i = out.len();
            out.push(json!({"type": "data", "mindex": i, "mid": i.to_string(), "disabled": true}));
        }
        let i = out.len();
        let mut m = serde_json::Map::new();
        m.insert(
            "type".into(),
            s.get("type").cloned().unwrap_or(json!("data")),
        );
        m.insert("mindex".into(), json!(i));
        m.insert("mid".into(), json!(i.to_string()));
        for k in [
            "codec",
            "description",
            "disabled",
            "stereo",
            "fec",
            "dtx",
            "simulcast",
            "svc",
        ] {
            if let Some(v) = s.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        out.push(Value::Object(m));
        let origin = s.get("mid").and_then(Value::as_str).unwrap_or_default();
        map.push((origin.to_string(), i.to_string()));
    }
    (out, map)
}

/// The address the origin sends a mirror's RTP to when the target does not say: the host
/// of the target's Janus API URL.
pub fn media_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    authority.split(':').next().unwrap_or(authority).to_string()
}

enum State {
    Creating(Vec<oneshot::Sender<VrResult<MidMap>>>),
    Ready(MidMap),
}

/// Where a mirror's two halves are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ends {
    pub origin: String,
    pub origin_room: u64,
    pub target: String,
    pub target_room: u64,
    /// Where the origin sends (set once the target opened its ports).
    pub to: Option<(String, u64, u64)>,
}

pub struct Mirror {
    holders: u32,
    idle_since: Option<Instant>,
    state: State,
    ends: Option<Ends>,
}

/// A room's mirrors, by (feed, target server).
#[derive(Default)]
pub struct Mirrors {
    map: AHashMap<(u64, String), Mirror>,
}

impl Mirrors {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Forgets the mirrors from or to `url`; what must be undone on the surviving side.
    pub fn server_lost(&mut self, url: &str) -> Vec<(u64, Ends)> {
        let keys: Vec<(u64, String)> = self
            .map
            .iter()
            .filter(|((_, t), m)| t == url || m.ends.as_ref().is_some_and(|e| e.origin == url))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let m = self.map.remove(&k)?;
                Some((k.0, m.ends?))
            })
            .collect()
    }

    /// Removes every mirror of `feed`.
    fn take_feed(&mut self, feed: u64) -> Vec<Ends> {
        let keys: Vec<(u64, String)> = self
            .map
            .keys()
            .filter(|(f, _)| *f == feed)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.map.remove(&k)?.ends)
            .collect()
    }

    /// Each mirror as the admin API shows it: feed, origin and target server URLs, how
    /// many subscriptions hold it, whether it is ready.
    pub fn describe(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .map
            .iter()
            .map(|((feed, target), m)| {
                json!({
                    "feed": feed,
                    "from": m.ends.as_ref().map(|e| e.origin.clone()),
                    "to": target,
                    "holders": m.holders,
                    "ready": matches!(m.state, State::Ready(_)),
                })
            })
            .collect();
        out.sort_by_key(|v| (v["feed"].as_u64(), v["to"].as_str().map(str::to_string)));
        out
    }

    /// The ready mirrors, as a room's snapshot keeps them ([`super::takeover`]).
    pub fn snapshot(&self) -> Vec<Kept> {
        let mut out: Vec<Kept> = self
            .map
            .iter()
            .filter_map(|((feed, target), m)| match (&m.state, &m.ends) {
                (State::Ready(map), Some(ends)) => Some(Kept {
                    feed: *feed,
                    target: target.clone(),
                    map: map.clone(),
                    ends: ends.clone(),
                }),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| (a.feed, &a.target).cmp(&(b.feed, &b.target)));
        out
    }

    /// Mirrors of a room taken over from its dead owner: ready, held by nobody until the
    /// adopted subscriptions hold them again ([`rehold`]); see [`expire_idle`].
    pub fn restore(&mut self, kept: Vec<Kept>) {
        for k in kept {
            self.map.insert(
                (k.feed, k.target),
                Mirror {
                    holders: 0,
                    idle_since: Some(Instant::now()),
                    state: State::Ready(k.map),
                    ends: Some(k.ends),
                },
            );
        }
    }

    /// (feed, target) of the mirrors nobody holds.
    pub fn idle(&self) -> Vec<(u64, String)> {
        self.map
            .iter()
            .filter(|(_, m)| m.holders == 0)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Removes every mirror.
    pub fn take_all(&mut self) -> Vec<(u64, Ends)> {
        self.map
            .drain()
            .filter_map(|((f, _), m)| Some((f, m.ends?)))
            .collect()
    }
}

/// A ready mirror as a room's snapshot keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    pub feed: u64,
    pub target: String,
    pub map: MidMap,
    pub ends: Ends,
}

/// An adopted subscription holds again the mirrors of `feeds` on `target` it held on the
/// dead owner; the feeds whose mirror the room no longer has (they are not held).
pub fn rehold(host: &Host, room: u64, target: &str, feeds: &[u64]) -> Vec<u64> {
    with_room(host, room, |r| {
        let mut missing = Vec::new();
        for &feed in feeds {
            match r.mirrors.map.get_mut(&(feed, target.to_string())) {
                Some(m) if matches!(m.state, State::Ready(_)) => {
                    m.holders += 1;
                    m.idle_since = None;
                }
                _ => missing.push(feed),
            }
        }
        Ok(missing)
    })
    .unwrap_or_else(|_| feeds.to_vec())
}

/// Holds a mirror of each of `feeds` on `target` (creating those missing), after making
/// sure the room has a backend room there: that room's id and the mirrors' mid maps.
/// Runs on the owner shard.
///
/// # Errors
/// A feed gone, or a backend refusing; mirrors held so far are released.
pub async fn hold_all(
    host: &Host,
    room: u64,
    target: &str,
    feeds: &[u64],
) -> VrResult<(u64, Vec<(u64, MidMap)>)> {
    let target_room = backend_room(host, room, target).await?;
    let mut got = Vec::with_capacity(feeds.len());
    for &feed in feeds {
        match hold(host, room, feed, target).await {
            Ok(map) => got.push((feed, map)),
            Err(e) => {
                for (f, _) in got {
                    release(host, room, f, target);
                }
                return Err(e);
            }
        }
    }
    Ok((target_room, got))
}

enum Step {
    Have(MidMap),
    Wait(oneshot::Receiver<VrResult<MidMap>>),
    Create {
        streams: Vec<Value>,
        display: Option<String>,
        origin: String,
        secret: String,
    },
}

async fn hold(host: &Host, room: u64, feed: u64, target: &str) -> VrResult<MidMap> {
    let key = (feed, target.to_string());
    let step = with_room(host, room, |r| {
        let p = r
            .participants
            .get(&feed)
            .filter(|p| p.started)
            .ok_or_else(|| VrError::no_such_feed(feed))?;
        let (streams, display, origin) = (
            p.streams.clone().unwrap_or_default(),
            p.display.clone(),
            p.server.clone(),
        );
        if let Some(m) = r.mirrors.map.get_mut(&key) {
            m.holders += 1;
            m.idle_since = None;
            return Ok(match &mut m.state {
                State::Ready(map) => Step::Have(map.clone()),
                State::Creating(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Step::Wait(rx)
                }
            });
        }
        mirrors_changed(host, 1);
        r.mirrors.map.insert(
            key.clone(),
            Mirror {
                holders: 1,
                idle_since: None,
                state: State::Creating(Vec::new()),
                ends: None,
            },
        );
        Ok(Step::Create {
            streams,
            display,
            origin,
            secret: r.backend_secret.clone(),
        })
    })?;
    let (streams, display, origin, secret) = match step {
        Step::Have(map) => return Ok(map),
        Step::Wait(rx) => {
            return rx
                .await
                .unwrap_or_else(|_| Err(VrError::no_such_feed(feed)))
        }
        Step::Create {
            streams,
            display,
            origin,
            secret,
        } => (streams, display, origin, secret),
    };
    let made = create(
        host, room, feed, target, &origin, &streams, display, &secret,
    )
    .await;
    // Settle: the feed may have gone (or the room) while the mirror was being made.
    let settled = with_room(host, room, |r| {
        let feed_there = r.participants.get(&feed).is_some_and(|p| p.started);
        let Some(m) = r.mirrors.map.get_mut(&key) else {
            return Ok((Vec::new(), true));
        };
        let waiters = match &mut m.state {
            State::Creating(w) => std::mem::take(w),
            State::Ready(_) => Vec::new(),
        };
        match &made {
            Ok((map, ends)) if feed_there => {
                m.state = State::Ready(map.clone());
                m.ends = Some(ends.clone());
                Ok((waiters, false))
            }
            _ => {
                r.mirrors.map.remove(&key);
                mirrors_changed(host, -1);
                Ok((waiters, !feed_there))
            }
        }
    });
    let (waiters, stale) = settled.unwrap_or((Vec::new(), true));
    let result = match made {
        Ok((map, ends)) if !stale => Ok((map, ends)),
        Ok((_, ends)) => {
            teardown(host, &secret, feed, ends);
            Err(VrError::no_such_feed(feed))
        }
        Err(e) => Err(e),
    };
    let out = result.map(|(map, _)| map);
    for w in waiters {
        let _ = w.send(out.clone());
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn create(
    host: &Host,
    room: u64,
    feed: u64,
    target: &str,
    origin: &str,
    streams: &[Value],
    display: Option<String>,
    secret: &str,
) -> VrResult<(MidMap, Ends)> {
    let target_room = backend_room(host, room, target).await?;
    let origin_room = with_room(host, room, |r| {
        r.backend_id(origin)
            .ok_or_else(|| VrError::no_such_feed(feed))
    })?;
    let (mirror, map) = mirror_streams(streams);
    let mut add = json!({
        "request": "add_remote_publisher",
        "room": target_room,
        "secret": secret,
        "id": feed,
        "streams": mirror,
    });
    if let (Some(d), Some(m)) = (display, add.as_object_mut()) {
        m.insert("display".into(), json!(d));
    }
    let opened = control::request(host, target, &add).await?;
    let mut ends = Ends {
        origin: origin.to_string(),
        origin_room,
        target: target.to_string(),
        target_room,
        to: None,
    };
    let (Some(port), Some(rtcp_port)) = (
        opened.get("port").and_then(Value::as_u64),
        opened.get("rtcp_port").and_then(Value::as_u64),
    ) else {
        teardown(host, secret, feed, ends);
        return Err(VrError::new(
            UNKNOWN_ERROR,
            "add_remote_publisher gave no port",
        ));
    };
    let ip = opened
        .get("ip")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "0.0.0.0" && *ip != "::")
        .map_or_else(|| media_host(target), str::to_string);
    ends.to = Some((ip, port, rtcp_port));
    if let Err(e) = publish_remotely(host, secret, feed, &ends).await {
        teardown(host, secret, feed, ends);
        return Err(e);
    }
    if let Err(e) = listed(host, target, target_room, feed).await {
        teardown(host, secret, feed, ends);
        return Err(e);
    }
    debug!(room, feed, %origin, %target, "mirror created");
    Ok((map, ends))
}

/// Most looks for a new remote publisher in its room, [`LISTED_EVERY`] apart.
const LISTED_TRIES: u32 = 100;
const LISTED_EVERY: Duration = Duration::from_millis(5);

/// Waits until the target's room lists remote publisher `feed`. Janus 1.1.2 answers
/// `add_remote_publisher` first and puts the publisher in its room from the publisher's
/// own thread: a subscription asked for before that gets 428 "No such feed" (seen on a
/// loaded machine).
async fn listed(host: &Host, target: &str, target_room: u64, feed: u64) -> VrResult<()> {
    let body = json!({"request": "listparticipants", "room": target_room});
    for _ in 0..LISTED_TRIES {
        let list = control::request(host, target, &body).await?;
        let there = list
            .get("participants")
            .and_then(Value::as_array)
            .is_some_and(|l| {
                l.iter()
                    .any(|p| p.get("id").and_then(Value::as_u64) == Some(feed))
            });
        if there {
            return Ok(());
        }
        monoio::time::sleep(LISTED_EVERY).await;
    }
    Err(VrError::new(
        UNKNOWN_ERROR,
        format!("Mirror of feed {feed} never appeared on {target}"),
    ))
}

async fn publish_remotely(host: &Host, secret: &str, feed: u64, ends: &Ends) -> VrResult<()> {
    let Some((ip, port, rtcp_port)) = &ends.to else {
        return Ok(());
    };
    let body = json!({
        "request": "publish_remotely",
        "room": ends.origin_room,
        "secret": secret,
        "publisher_id": feed,
        "remote_id": ends.target,
        "host": ip,
        "port": port,
        "rtcp_port": rtcp_port,
    });
    control::request(host, &ends.origin, &body)
        .await
        .map(|_| ())
}

/// Undoes a mirror on both servers (in the background): the origin stops sending, the
/// target drops the remote publisher (its subscribers get Janus's usual update).
pub fn teardown(host: &Host, secret: &str, feed: u64, ends: Ends) {
    let (host, secret) = (host.clone(), secret.to_string());
    monoio::spawn(async move {
        if ends.to.is_some() && host.backend_by_url(&ends.origin).is_some_and(|l| l.is_up()) {
            let body = json!({"request": "unpublish_remotely", "room": ends.origin_room, "secret": secret, "publisher_id": feed, "remote_id": ends.target});
            if let Err(e) = control::request(&host, &ends.origin, &body).await {
                debug!(feed, error = %e.text, "unpublish_remotely");
            }
        }
        if host.backend_by_url(&ends.target).is_some_and(|l| l.is_up()) {
            let body = json!({"request": "remove_remote_publisher", "room": ends.target_room, "secret": secret, "id": feed});
            if let Err(e) = control::request(&host, &ends.target, &body).await {
                debug!(feed, error = %e.text, "remove_remote_publisher");
            }
        }
    });
}

/// Keeps the process-wide mirror count (for `/metrics`) in step.
pub fn mirrors_changed(host: &Host, by: i64) {
    if let Some(c) = counts(host) {
        use std::sync::atomic::Ordering::Relaxed;
        if by >= 0 {
            c.mirrors.fetch_add(by as usize, Relaxed);
        } else {
            c.mirrors.fetch_sub(by.unsigned_abs() as usize, Relaxed);
        }
    }
}

/// A subscriber no longer uses the mirror of `feed` on `target`; unused, it goes after
/// the idle timeout unless someone holds it again.
pub fn release(host: &Host, room: u64, feed: u64, target: &str) {
    let key = (feed, target.to_string());
    let idle = with_room(host, room, |r| {
        let Some(m) = r.mirrors.map.get_mut(&key) else {
            return Ok(false);
        };
        m.holders = m.holders.saturating_sub(1);
        if m.holders == 0 {
            m.idle_since = Some(Instant::now());
            return Ok(true);
        }
        Ok(false)
    });
    if idle == Ok(true) {
        expire_idle(host, room, key);
    }
}

/// Removes mirror `key` of `room` after `mirror_idle_timeout` unless someone held it
/// again meanwhile.
pub fn expire_idle(host: &Host, room: u64, key: (u64, String)) {
    let grace = Duration::from_secs(
        host.service::<Settings>()
            .map_or(60, |s| s.mirror_idle_timeout),
    );
    let host = host.clone();
    monoio::spawn(async move {
        monoio::time::sleep(grace).await;
        let feed = key.0;
        let expired = with_room(&host, room, |r| {
            let due = r.mirrors.map.get(&key).is_some_and(|m| {
                m.holders == 0 && m.idle_since.is_some_and(|t| t.elapsed() >= grace)
            });
            if !due {
                return Ok(None);
            }
            mirrors_changed(&host, -1);
            Ok(r.mirrors
                .map
                .remove(&key)
                .and_then(|m| m.ends)
                .map(|e| (e, r.backend_secret.clone())))
        });
        if let Ok(Some((ends, secret))) = expired {
            debug!(room, feed, target = %ends.target, "idle mirror removed");
            teardown(&host, &secret, feed, ends);
        }
    });
}

/// The feed stopped (unpublished, left, lost): its mirrors go everywhere.
pub fn feed_gone(host: &Host, room: u64, feed: u64) {
    let taken = with_room(host, room, |r| {
        let before = r.mirrors.len();
        let ends = r.mirrors.take_feed(feed);
        mirrors_changed(host, r.mirrors.len() as i64 - before as i64);
        Ok((ends, r.backend_secret.clone()))
    });
    if let Ok((ends, secret)) = taken {
        for e in ends {
            teardown(host, &secret, feed, e);
        }
    }
}

/// The feed renegotiated: its mirrors get its new streams, and the origin forwards them
/// again (Janus forwards the streams a publisher had when `publish_remotely` ran).
pub fn refresh(host: &Host, room: u64, feed: u64) {
    let found = with_room(host, room, |r| {
        let streams = r
            .participants
            .get(&feed)
            .and_then(|p| p.streams.clone())
            .unwrap_or_default();
        let display = r.participants.get(&feed).and_then(|p| p.display.clone());
        let (mirror, map) = mirror_streams(&streams);
        let mut ends = Vec::new();
        for ((f, _), m) in r.mirrors.map.iter_mut() {
            if *f == feed {
                if let (State::Ready(old), Some(e)) = (&mut m.state, &m.ends) {
                    *old = map.clone();
                    ends.push(e.clone());
                }
            }
        }
        Ok((ends, mirror, display, r.backend_secret.clone()))
    });
    let Ok((ends, mirror, display, secret)) = found else {
        return;
    };
    for e in ends {
        let (host, mirror, display, secret) = (
            host.clone(),
            mirror.clone(),
            display.clone(),
            secret.clone(),
        );
        monoio::spawn(async move {
            let mut body = json!({"request": "update_remote_publisher", "room": e.target_room, "secret": secret, "id": feed, "streams": mirror});
            if let (Some(d), Some(m)) = (display, body.as_object_mut()) {
                m.insert("display".into(), json!(d));
            }
            if let Err(err) = control::request(&host, &e.target, &body).await {
                warn!(room, feed, target = %e.target, error = %err.text, "mirror not updated");
                return;
            }
            let stop = json!({"request": "unpublish_remotely", "room": e.origin_room, "secret": secret, "publisher_id": feed, "remote_id": e.target});
            let _ = control::request(&host, &e.origin, &stop).await;
            if let Err(err) = publish_remotely(&host, &secret, feed, &e).await {
                warn!(room, feed, target = %e.target, error = %err.text, "mirror not re-published");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_in_mindex_order_with_positional_mids() {
        let streams = vec![
            json!({"type": "video", "mindex": 1, "mid": "v", "codec": "vp8", "h264_profile": "42e01f"}),
            json!({"type": "audio", "mindex": 0, "mid": "a", "codec": "opus", "fec": true}),
            json!({"type": "data", "mindex": 2, "mid": "d", "disabled": true}),
        ];
        let (out, map) = mirror_streams(&streams);
        assert_eq!(
            out[0],
            json!({"type": "audio", "mindex": 0, "mid": "0", "codec": "opus", "fec": true})
        );
        assert_eq!(
            out[1],
            json!({"type": "video", "mindex": 1, "mid": "1", "codec": "vp8"})
        );
        assert_eq!(out[2]["disabled"], true);
        assert_eq!(mirror_mid(&map, "v"), Some("1"));
        assert_eq!(origin_mid(&map, "2"), Some("d"));
        assert_eq!(mirror_mid(&map, "x"), None);
        let (out, map) =
            mirror_streams(&[json!({"type": "video", "mindex": 2, "mid": "v", "codec": "vp8"})]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["disabled"], true);
        assert_eq!(mirror_mid(&map, "v"), Some("2"));
    }

    #[test]
    fn media_host_of_urls() {
        assert_eq!(media_host("ws://127.0.0.1:8188"), "127.0.0.1");
        assert_eq!(media_host("wss://janus.example:443/janus"), "janus.example");
        assert_eq!(media_host("ws://[::1]:8188/"), "::1");
        assert_eq!(media_host("ws://user:pw@10.0.0.2:8188"), "10.0.0.2");
    }
}
