//! Command line: one subcommand per scenario (sharing [`RunArgs`]) plus `fake-backend`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::scenario::{Kind, Plan, RoomPlan};

#[derive(Parser, Debug)]
#[command(
    name = "janus-loadtest",
    version,
    about = "Thousands of simulated Janus WebSocket clients; rates, latency percentiles, errors, and the CPU/memory of the processes under test",
    after_help = "Exit status: 0 when the run had no errors, 1 when it had some, 2 on bad usage."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pairs of clients register with janus.plugin.videocall and loop call → incomingcall →
    /// accept → accepted → trickle → hangup, with synthetic SDP (no media).
    Videocall(RunArgs),
    /// Each client sends {"audio":true} to its own EchoTest handle back to back (ack + event).
    Echotest(RunArgs),
    /// Sessions held open with keepalives only (memory per session); several per connection
    /// with --sessions-per-conn. --clients counts sessions.
    Idle(RunArgs),
    /// A storm of connect + create + attach echotest + destroy + close, per client in a loop.
    Connect(RunArgs),
    /// VideoRoom (Janus 1.x multistream): --rooms rooms of --publishers real WebRTC publishers
    /// (janus-mediapeer) and --subscribers subscribers each; subscribers loop join (all the
    /// room's feeds) → attached offer → start with an answer → hold → leave → detach.
    /// Synthetic answers (no ICE, no media) unless --real-subscribers. --clients is ignored.
    Videoroom(RunArgs),
    /// BENCHMARK INSTRUMENT ONLY: a minimal Janus-API responder (info, create, attach,
    /// keepalive, echotest-like message, trickle, detach, destroy, hangup, ping) that lets the
    /// proxy be measured without Janus's own cost. Not a Janus, not for tests of behaviour.
    FakeBackend(FakeBackendArgs),
}

impl Command {
    /// The scenario and its arguments, or `None` for `fake-backend`.
    pub fn scenario(&self) -> Option<(Kind, &RunArgs)> {
        match self {
            Command::Videocall(a) => Some((Kind::Videocall, a)),
            Command::Echotest(a) => Some((Kind::Echotest, a)),
            Command::Idle(a) => Some((Kind::Idle, a)),
            Command::Connect(a) => Some((Kind::Connect, a)),
            Command::Videoroom(a) => Some((Kind::Videoroom, a)),
            Command::FakeBackend(_) => None,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Target WebSocket URL (repeatable: clients are spread round robin over them).
    #[arg(short, long = "url", default_value = "ws://127.0.0.1:8188")]
    pub urls: Vec<String>,
    /// Simulated clients (idle: sessions; videocall: an even number, two per call pair;
    /// videoroom: ignored, see --rooms, --publishers, --subscribers).
    #[arg(short, long, default_value_t = 100)]
    pub clients: usize,
    /// Seconds to run after the first client starts (ramp-up included).
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds over which clients are started, evenly spread.
    #[arg(long, default_value_t = 1.0)]
    pub ramp_up: f64,
    /// Pause between a client's operations, in ms.
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// Seconds to wait for an answer before a request counts as timed out.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seconds between keepalives of an otherwise quiet session.
    #[arg(long, default_value_t = 25.0)]
    pub keepalive: f64,
    /// idle: sessions per WebSocket connection.
    #[arg(long, default_value_t = 1)]
    pub sessions_per_conn: usize,
    /// idle: each session also attaches one handle of this plugin (e.g.
    /// janus.plugin.echotest), as a janus.js client holds one.
    #[arg(long)]
    pub attach: Option<String>,
    /// videocall: ms a call is held before the caller hangs up; videoroom: ms a subscriber
    /// stays subscribed before it leaves.
    #[arg(long, default_value_t = 1000)]
    pub hold_ms: u64,
    /// videocall: longest wait in ms after a hangup for Janus to close the PeerConnections
    /// (direct Janus needs this before the next offer; through janus-proxy 0 is fine).
    #[arg(long, default_value_t = 1500)]
    pub settle_ms: u64,
    /// videoroom: rooms, each created through the target at the start and destroyed at the end.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// videoroom: publishers per room: real WebRTC peers (janus-mediapeer) that join, publish
    /// and stay until the end.
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// videoroom: subscribers per room, each subscribing to every publisher of its room.
    #[arg(long, default_value_t = 3)]
    pub subscribers: usize,
    /// videoroom: subscribers are real WebRTC peers that must connect and receive RTP on every
    /// stream (costly: for small runs).
    #[arg(long)]
    pub real_subscribers: bool,
    /// videoroom: what each publisher sends.
    #[arg(long, value_enum, default_value_t = PublisherMedia::Both)]
    pub publisher_media: PublisherMedia,
    /// videoroom: id of the first room (the others follow it); default random per run.
    #[arg(long)]
    pub first_room: Option<u64>,
    /// Runtime worker threads of the generator (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// A process to account CPU and memory for (repeatable): the proxy, Janus, HAProxy…
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw latency over time and the latency distribution into this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Free text naming the run in the report (e.g. "proxy-compact").
    #[arg(long, default_value = "")]
    pub label: String,
    /// Seconds between progress lines when stderr is not a terminal (0 = none).
    #[arg(long, default_value_t = 5.0)]
    pub progress_every: f64,
}

/// The tracks of a videoroom publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PublisherMedia {
    Audio,
    Video,
    Both,
}

/// Largest room id the scenario uses (JavaScript-safe, as Janus ids).
const MAX_ROOM: u64 = 1 << 53;

#[derive(Args, Debug, Clone)]
pub struct FakeBackendArgs {
    /// Address to listen on.
    #[arg(short, long, default_value = "127.0.0.1:8188")]
    pub listen: String,
    /// Runtime worker threads (1 = single-threaded).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// `session-timeout` advertised by `info`.
    #[arg(long, default_value_t = 60)]
    pub session_timeout: u64,
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && (0.0..1e7).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("--{name} must be a number of seconds ≥ 0, not {v}"))
    }
}

impl RunArgs {
    /// Validates the arguments of scenario `kind` into a [`Plan`].
    ///
    /// # Errors
    /// A message for the user when a value is out of range or does not fit the scenario.
    pub fn plan(&self, kind: Kind) -> Result<Plan, String> {
        if self.urls.is_empty() {
            return Err("give at least one --url".into());
        }
        for u in &self.urls {
            if !(u.starts_with("ws://") || u.starts_with("wss://")) {
                return Err(format!("--url {u}: expected ws://host:port"));
            }
        }
        let videoroom = self.room_plan(kind)?;
        let clients = if kind == Kind::Videoroom {
            videoroom.rooms * (videoroom.publishers + videoroom.subscribers)
        } else {
            self.clients
        };
        if clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if kind == Kind::Videocall && (self.clients < 2 || !self.clients.is_multiple_of(2)) {
            return Err("videocall needs an even --clients (two per call pair)".into());
        }
        if self.sessions_per_conn == 0 {
            return Err("--sessions-per-conn must be at least 1".into());
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        let timeout = secs("timeout", self.timeout)?;
        if timeout.is_zero() {
            return Err("--timeout must be above 0".into());
        }
        let keepalive = secs("keepalive", self.keepalive)?;
        if keepalive < Duration::from_millis(100) {
            return Err("--keepalive must be at least 0.1 s".into());
        }
        secs("duration", self.duration)?;
        Ok(Plan {
            urls: self.urls.clone(),
            clients,
            ramp_up: secs("ramp-up", self.ramp_up)?,
            think: Duration::from_millis(self.think_ms),
            timeout,
            keepalive,
            sessions_per_conn: self.sessions_per_conn,
            hold: Duration::from_millis(self.hold_ms),
            settle: Duration::from_millis(self.settle_ms),
            run_id: (0..4).map(|_| fastrand::alphanumeric()).collect(),
            videoroom,
            attach: self.attach.clone(),
        })
    }

    /// The videoroom shape (empty for the other scenarios).
    fn room_plan(&self, kind: Kind) -> Result<RoomPlan, String> {
        if kind != Kind::Videoroom {
            return Ok(RoomPlan::default());
        }
        if self.rooms == 0 || self.publishers == 0 {
            return Err(
                "videoroom needs at least one room (--rooms) and one publisher (--publishers)"
                    .into(),
            );
        }
        if self.rooms > 100_000 || self.publishers > 10_000 || self.subscribers > 1_000_000 {
            return Err("--rooms, --publishers or --subscribers is too large".into());
        }
        let rooms = self.rooms as u64;
        let first_room = match self.first_room {
            Some(r) if r == 0 || r.saturating_add(rooms) > MAX_ROOM => {
                return Err(format!("--first-room {r}: rooms must be ids in 1..2^53"))
            }
            Some(r) => r,
            None => fastrand::u64(1_000_000..MAX_ROOM / 2),
        };
        Ok(RoomPlan {
            rooms: self.rooms,
            publishers: self.publishers,
            subscribers: self.subscribers,
            real_subscribers: self.real_subscribers,
            audio: self.publisher_media != PublisherMedia::Video,
            video: self.publisher_media != PublisherMedia::Audio,
            first_room,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("janus-loadtest").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_and_repeatable_options() {
        let cli = parse(&[
            "echotest",
            "-u",
            "ws://127.0.0.1:1",
            "--url",
            "ws://127.0.0.1:2",
            "--pid",
            "7",
            "--pid",
            "9",
            "-c",
            "50",
        ]);
        let (kind, a) = cli.command.scenario().unwrap();
        assert_eq!(kind, Kind::Echotest);
        assert_eq!(a.urls.len(), 2);
        assert_eq!(a.pids, vec![7, 9]);
        let plan = a.plan(kind).unwrap();
        assert_eq!(plan.clients, 50);
        assert_eq!(plan.timeout, Duration::from_secs(10));
        assert_eq!(plan.run_id.len(), 4);
    }

    #[test]
    fn default_url_is_local_janus() {
        let cli = parse(&["idle", "--sessions-per-conn", "10"]);
        let (_, a) = cli.command.scenario().unwrap();
        assert_eq!(a.urls, vec!["ws://127.0.0.1:8188".to_string()]);
        assert_eq!(a.sessions_per_conn, 10);
    }

    #[test]
    fn invalid_plans_are_refused() {
        let cli = parse(&["videocall", "-c", "3"]);
        let (k, a) = cli.command.scenario().unwrap();
        assert!(a.plan(k).unwrap_err().contains("even"));
        let cli = parse(&["echotest", "-u", "http://x"]);
        let (k, a) = cli.command.scenario().unwrap();
        assert!(a.plan(k).is_err());
        let cli = parse(&["echotest", "--timeout", "0"]);
        let (k, a) = cli.command.scenario().unwrap();
        assert!(a.plan(k).is_err());
        let cli = parse(&["videoroom", "--publishers", "0"]);
        let (k, a) = cli.command.scenario().unwrap();
        assert!(a.plan(k).unwrap_err().contains("one publisher"));
        let cli = parse(&["videoroom", "--first-room", "0"]);
        let (k, a) = cli.command.scenario().unwrap();
        assert!(a.plan(k).unwrap_err().contains("--first-room"));
    }

    #[test]
    fn videoroom_plan() {
        let cli = parse(&[
            "videoroom",
            "--rooms",
            "2",
            "--publishers",
            "30",
            "--subscribers",
            "300",
            "-c",
            "7",
            "--first-room",
            "5000",
            "--publisher-media",
            "audio",
        ]);
        let (k, a) = cli.command.scenario().unwrap();
        assert_eq!(k, Kind::Videoroom);
        let plan = a.plan(k).unwrap();
        assert_eq!(plan.clients, 2 * 330, "--clients is ignored");
        let r = &plan.videoroom;
        assert_eq!((r.rooms, r.publishers, r.subscribers), (2, 30, 300));
        assert_eq!(r.first_room, 5000);
        assert!(r.audio && !r.video && !r.real_subscribers);
        let cli = parse(&["videoroom", "--real-subscribers"]);
        let (k, a) = cli.command.scenario().unwrap();
        let r = a.plan(k).unwrap().videoroom;
        assert!(r.real_subscribers && r.audio && r.video);
        assert!((1..1 << 53).contains(&r.first_room));
        // other scenarios carry no room plan
        let cli = parse(&["echotest"]);
        let (k, a) = cli.command.scenario().unwrap();
        assert_eq!(a.plan(k).unwrap().videoroom, RoomPlan::default());
    }

    #[test]
    fn fake_backend_args() {
        let cli = parse(&["fake-backend", "--listen", "127.0.0.1:9999"]);
        match cli.command {
            Command::FakeBackend(f) => {
                assert_eq!(f.listen, "127.0.0.1:9999");
                assert_eq!(f.session_timeout, 60);
            }
            other => panic!("{other:?}"),
        }
    }
}
