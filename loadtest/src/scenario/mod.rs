//! Scenarios: what each simulated client does, and the runner that starts them over the
//! ramp-up and tells them to stop.
//!
//! A *unit* is what one task drives: one client (echotest, connect), one connection holding
//! several sessions (idle), one caller/callee pair (videocall), or one room, publisher or
//! subscriber of a VideoRoom (videoroom, which starts its own tasks). A unit that fails records the
//! error, waits a second and starts over with a fresh connection until the run stops, so one
//! failure never silently removes load.

pub mod connect;
pub mod echotest;
pub mod idle;
pub mod videocall;
pub mod videoroom;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::ClientError;
use crate::stats::Recorder;

/// The scenarios a run can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Videocall,
    Echotest,
    Idle,
    Connect,
    Videoroom,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Videocall => "videocall",
            Kind::Echotest => "echotest",
            Kind::Idle => "idle",
            Kind::Connect => "connect",
            Kind::Videoroom => "videoroom",
        }
    }
}

/// What every client of a run is told to do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub urls: Vec<String>,
    pub clients: usize,
    pub ramp_up: Duration,
    pub think: Duration,
    pub timeout: Duration,
    pub keepalive: Duration,
    pub sessions_per_conn: usize,
    /// videocall: time in a call before the caller hangs up.
    pub hold: Duration,
    /// videocall: longest wait after a hangup for Janus to close both PeerConnections.
    pub settle: Duration,
    /// Random tag in videocall usernames, so runs never collide on one Janus.
    pub run_id: String,
    /// videoroom: rooms, participants per room.
    pub videoroom: RoomPlan,
    /// idle: the plugin each session attaches one handle of (a client as janus.js holds
    /// one: a WebSocket, a session, a handle), or none.
    pub attach: Option<String>,
}

/// The videoroom scenario's shape: `rooms` rooms of `publishers` real WebRTC publishers and
/// `subscribers` looping subscribers each, room ids `first_room..`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomPlan {
    pub rooms: usize,
    pub publishers: usize,
    pub subscribers: usize,
    /// Subscribers are real WebRTC peers (janus-mediapeer) instead of synthetic answers.
    pub real_subscribers: bool,
    /// What each publisher sends.
    pub audio: bool,
    pub video: bool,
    pub first_room: u64,
}

/// Number of tasks a scenario needs for `clients` clients.
pub fn units(kind: Kind, plan: &Plan) -> usize {
    match kind {
        Kind::Videocall => plan.clients / 2,
        Kind::Idle => plan.clients.div_ceil(plan.sessions_per_conn.max(1)),
        // a room task, its publishers and its subscribers
        Kind::Videoroom => {
            let r = &plan.videoroom;
            r.rooms * (1 + r.publishers + r.subscribers)
        }
        _ => plan.clients,
    }
}

/// State shared by all units of a run.
pub struct Shared {
    pub plan: Plan,
    pub rec: Arc<Recorder>,
    stop: watch::Sender<bool>,
}

/// Counts a client as up for as long as it lives.
pub struct Up<'a>(&'a Recorder);

impl Drop for Up<'_> {
    fn drop(&mut self) {
        self.0.counters.client_down();
    }
}

impl Shared {
    pub fn new(plan: Plan, rec: Arc<Recorder>) -> Shared {
        Shared {
            plan,
            rec,
            stop: watch::channel(false).0,
        }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Tells every unit to finish its current step, clean up and return.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// The URL of unit `i` (round robin over the targets).
    pub fn url(&self, i: usize) -> &str {
        &self.plan.urls[i % self.plan.urls.len()]
    }

    pub fn client_up(&self) -> Up<'_> {
        self.rec.counters.client_up();
        Up(&self.rec)
    }

    pub fn fail(&self, e: &ClientError) {
        self.rec.error(&e.kind(), || e.to_string());
    }

    /// Sleeps `d`, or less when the run stops meanwhile.
    pub async fn pause(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let mut rx = self.stop.subscribe();
        tokio::select! {
            // cancelling either branch drops only a timer or a watch receiver
            _ = tokio::time::sleep(d) => {}
            _ = rx.wait_for(|s| *s) => {}
        }
    }

    /// Resolves once the run is told to stop.
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        // the sender lives as long as `self`
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Waits a second before a unit starts over after an error.
    pub async fn backoff(&self) {
        self.pause(Duration::from_millis(500 + fastrand::u64(..1000)))
            .await;
    }
}

/// Start time of unit `i` of `n`, spread evenly over the ramp-up.
pub fn start_offset(i: usize, n: usize, ramp_up: Duration) -> Duration {
    if n <= 1 {
        return Duration::ZERO;
    }
    ramp_up.mul_f64(i as f64 / n as f64)
}

/// Spawns every unit of `kind` on the current runtime, each starting at its ramp-up slot.
pub fn spawn_all(kind: Kind, sh: &Arc<Shared>, start: Instant) -> Vec<JoinHandle<()>> {
    if kind == Kind::Videoroom {
        // rooms, publishers and subscribers are different tasks that wait for each other
        return videoroom::spawn_all(sh, start);
    }
    let n = units(kind, &sh.plan);
    (0..n)
        .map(|i| {
            let sh = sh.clone();
            let at = start + start_offset(i, n, sh.plan.ramp_up);
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                if sh.stopping() {
                    return;
                }
                match kind {
                    Kind::Echotest => echotest::unit(i, &sh).await,
                    Kind::Videocall => videocall::unit(i, &sh).await,
                    Kind::Idle => idle::unit(i, &sh).await,
                    Kind::Connect => connect::unit(i, &sh).await,
                    // spawned by videoroom::spawn_all above
                    Kind::Videoroom => {}
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(clients: usize, spc: usize) -> Plan {
        Plan {
            urls: vec!["ws://a".into(), "ws://b".into()],
            clients,
            ramp_up: Duration::from_secs(10),
            think: Duration::ZERO,
            timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(25),
            sessions_per_conn: spc,
            hold: Duration::ZERO,
            settle: Duration::ZERO,
            run_id: "x".into(),
            attach: None,
            videoroom: RoomPlan {
                rooms: 2,
                publishers: 3,
                subscribers: 4,
                ..RoomPlan::default()
            },
        }
    }

    #[test]
    fn units_per_scenario() {
        assert_eq!(units(Kind::Videocall, &plan(10, 1)), 5);
        assert_eq!(units(Kind::Idle, &plan(100, 8)), 13);
        assert_eq!(units(Kind::Echotest, &plan(7, 3)), 7);
        assert_eq!(units(Kind::Videoroom, &plan(14, 1)), 2 * (1 + 3 + 4));
    }

    #[test]
    fn ramp_up_spreads_starts() {
        let r = Duration::from_secs(10);
        assert_eq!(start_offset(0, 4, r), Duration::ZERO);
        assert_eq!(start_offset(2, 4, r), Duration::from_secs(5));
        assert_eq!(start_offset(0, 1, r), Duration::ZERO);
    }

    #[test]
    fn urls_round_robin() {
        let sh = Shared::new(plan(4, 1), Arc::new(Recorder::new(Instant::now())));
        assert_eq!(sh.url(0), "ws://a");
        assert_eq!(sh.url(3), "ws://b");
        assert!(!sh.stopping());
        sh.stop();
        assert!(sh.stopping());
    }
}
