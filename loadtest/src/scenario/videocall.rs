//! videocall: clients register in pairs and loop calls. One unit drives one pair (caller A,
//! callee B, each on its own WebSocket, both on the same target URL because Janus keeps
//! usernames per instance):
//!
//! 1. connect, `create`, `attach` janus.plugin.videocall, `register` (both);
//! 2. A `call` + synthetic offer → A gets `calling`, B gets `incomingcall` with Janus's offer;
//! 3. B `accept` + answer → B gets `accepted`, A gets `accepted` with Janus's answer;
//! 4. both `trickle {"completed": true}` (no candidates, so ICE never fails);
//! 5. hold for `--hold-ms` (keepalives as due), A `hangup` → A gets its `hangup` event, B the
//!    peer's; then up to `--settle-ms` for Janus to close both PeerConnections (a new offer
//!    on a handle that is still being cleaned up is refused by Janus); think; repeat.
//!
//! Request types recorded: register, call, incomingcall (call sent → B has the offer),
//! accept, accepted (accept sent → A has the answer), trickle, hangup, hangup-peer.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Shared;
use crate::client::{result_event, verb, Client, ClientError, Reply, Result};
use crate::sdp::{self, Role};

pub const PLUGIN: &str = "janus.plugin.videocall";

/// One registered videocall user.
struct Peer {
    c: Client,
    sid: u64,
    hid: u64,
    name: String,
}

/// The usernames of pair `p` in run `run_id` (`^\w+$`, as the proxy requires).
pub fn usernames(run_id: &str, p: usize) -> (String, String) {
    (format!("lt{run_id}_{p}_a"), format!("lt{run_id}_{p}_b"))
}

fn msg(p: &Peer, body: Value, jsep: Option<Value>) -> Value {
    let mut m = json!({"janus": "message", "session_id": p.sid, "handle_id": p.hid, "body": body});
    if let Some(j) = jsep {
        m["jsep"] = j;
    }
    m
}

fn expect_event(op: &'static str, v: &Value, want: &str) -> Result<()> {
    if result_event(v) == Some(want) {
        Ok(())
    } else {
        Err(ClientError::Unexpected {
            op,
            frame: v.to_string(),
        })
    }
}

impl Peer {
    async fn open(url: &str, name: String, sh: &Shared) -> Result<Peer> {
        let mut c = Client::connect(url, sh.rec.clone(), sh.plan.timeout).await?;
        let sid = c.create().await?;
        let hid = c.attach(sid, PLUGIN).await?;
        let mut p = Peer { c, sid, hid, name };
        let body = json!({"request": "register", "username": p.name});
        let m = msg(&p, body, None);
        let v = p.c.request("register", m, Reply::AckAndEvent).await?;
        expect_event("register", &v, "registered")?;
        Ok(p)
    }

    async fn keepalive(&mut self) -> Result<()> {
        self.c.keepalive(self.sid).await
    }

    async fn close(mut self) -> Result<()> {
        self.c.destroy(self.sid).await?;
        self.c.close().await;
        Ok(())
    }
}

pub async fn unit(p: usize, sh: &Shared) {
    while !sh.stopping() {
        match pair(p, sh).await {
            Ok(()) => return,
            Err(e) => {
                sh.fail(&e);
                sh.backoff().await;
            }
        }
    }
}

async fn pair(p: usize, sh: &Shared) -> Result<()> {
    let url = sh.url(p);
    let (na, nb) = usernames(&sh.plan.run_id, p);
    let (mut a, mut b) = tokio::try_join!(Peer::open(url, na, sh), Peer::open(url, nb, sh))?;
    let _up = (sh.client_up(), sh.client_up());
    let mut next_keepalive = Instant::now() + sh.plan.keepalive;
    let mut seed = (p as u64) << 32;
    while !sh.stopping() {
        seed += 2;
        call(&mut a, &mut b, seed, sh).await?;
        wait(&mut a, &mut b, sh.plan.hold, &mut next_keepalive, sh).await?;
        hangup(&mut a, &mut b, sh).await?;
        wait(&mut a, &mut b, sh.plan.think, &mut next_keepalive, sh).await?;
    }
    tokio::try_join!(a.close(), b.close())?;
    Ok(())
}

/// Steps 2–4: call, accept, trickle.
async fn call(a: &mut Peer, b: &mut Peer, seed: u64, sh: &Shared) -> Result<()> {
    let timeout = sh.plan.timeout;
    let offer = sdp::build(Role::Offer, seed, None);
    let t0 = Instant::now();
    let body = json!({"request": "call", "username": b.name});
    let tx =
        a.c.send(
            "call",
            msg(a, body, Some(json!({"type": "offer", "sdp": offer}))),
        )
        .await?;
    // try_join: an error on one side (e.g. 480 "Already in a call") ends the wait on the other
    let (calling, incoming) = tokio::try_join!(
        a.c.await_reply("call", &tx, t0, Reply::AckAndEvent),
        async {
            let v =
                b.c.expect("incomingcall", t0 + timeout, |v| {
                    result_event(v) == Some("incomingcall")
                })
                .await?;
            sh.rec.op("incomingcall", t0);
            Ok::<_, ClientError>(v)
        }
    )?;
    expect_event("call", &calling, "calling")?;
    let remote_offer = incoming
        .get("jsep")
        .and_then(|j| j.get("sdp"))
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Unexpected {
            op: "incomingcall",
            frame: incoming.to_string(),
        })?;
    let answer = sdp::build(Role::Answer, seed + 1, Some(remote_offer));

    let t1 = Instant::now();
    let tx =
        b.c.send(
            "accept",
            msg(
                b,
                json!({"request": "accept"}),
                Some(json!({"type": "answer", "sdp": answer})),
            ),
        )
        .await?;
    let (accepted_b, _) = tokio::try_join!(
        b.c.await_reply("accept", &tx, t1, Reply::AckAndEvent),
        async {
            let v =
                a.c.expect("accepted", t1 + timeout, |v| {
                    result_event(v) == Some("accepted") && v.get("jsep").is_some()
                })
                .await?;
            sh.rec.op("accepted", t1);
            Ok::<_, ClientError>(v)
        }
    )?;
    expect_event("accept", &accepted_b, "accepted")?;

    let trickle = |p: &Peer| json!({"janus": "trickle", "session_id": p.sid, "handle_id": p.hid, "candidate": {"completed": true}});
    let (ta, tb) = (trickle(a), trickle(b));
    tokio::try_join!(
        a.c.request("trickle", ta, Reply::Ack),
        b.c.request("trickle", tb, Reply::Ack)
    )?;
    Ok(())
}

/// Step 5: A hangs up; both sides then let Janus close the PeerConnections.
async fn hangup(a: &mut Peer, b: &mut Peer, sh: &Shared) -> Result<()> {
    let timeout = sh.plan.timeout;
    let t0 = Instant::now();
    let tx =
        a.c.send("hangup", msg(a, json!({"request": "hangup"}), None))
            .await?;
    let (ra, _) = tokio::try_join!(
        a.c.await_reply("hangup", &tx, t0, Reply::AckAndEvent),
        async {
            b.c.expect("hangup-peer", t0 + timeout, |v| {
                result_event(v) == Some("hangup") && v.get("transaction").is_none()
            })
            .await?;
            sh.rec.op("hangup-peer", t0);
            Ok::<_, ClientError>(())
        }
    )?;
    expect_event("hangup", &ra, "hangup")?;
    let settle = sh.plan.settle;
    tokio::try_join!(settled(&mut a.c, settle), settled(&mut b.c, settle))?;
    a.c.clear_stash();
    b.c.clear_stash();
    Ok(())
}

/// Waits up to `settle` for Janus's core `hangup` (PeerConnection closed) and the videocall
/// "Remote WebRTC hangup" event that follows it. Janus sends both; a proxy that drops the
/// backend handle at hangup sends neither, so running out of time is not an error.
async fn settled(c: &mut Client, settle: Duration) -> Result<()> {
    if settle.is_zero() {
        return Ok(());
    }
    let deadline = Instant::now() + settle;
    let mut core = false;
    let mut remote = false;
    while !(core && remote) {
        let r = c
            .expect("settle", deadline, |v| {
                verb(v) == "hangup" || result_event(v) == Some("hangup")
            })
            .await;
        match r {
            Ok(v) if verb(&v) == "hangup" => core = true,
            Ok(_) => remote = true,
            Err(ClientError::Timeout { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sleeps `d` (cut short by the stop), sending both keepalives whenever they are due.
async fn wait(
    a: &mut Peer,
    b: &mut Peer,
    d: Duration,
    next_keepalive: &mut Instant,
    sh: &Shared,
) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= *next_keepalive {
            tokio::try_join!(a.keepalive(), b.keepalive())?;
            *next_keepalive = Instant::now() + sh.plan.keepalive;
        }
        if now >= end || sh.stopping() {
            return Ok(());
        }
        sh.pause(end.min(*next_keepalive).saturating_duration_since(now))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_word_characters() {
        let (a, b) = usernames("k3x9", 17);
        assert_ne!(a, b);
        for n in [a, b] {
            assert!(n.chars().all(|c| c.is_alphanumeric() || c == '_'), "{n}");
            assert!(n.len() <= 128);
        }
    }
}
