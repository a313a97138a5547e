//! # janus-sentinel
//!
//! Runs next to one Janus server (1.1.x) and keeps the janus-proxy cluster informed about it:
//!
//! 1. **supervises** the Janus process (optional): starts it from `proc_watcher.cmdline`,
//!    restarts it after a crash, stops it cleanly when the sentinel stops;
//! 2. **probes** it: a Janus `ping` over its WebSocket API every `pingpong_interval` s;
//! 3. **measures** it: session and handle counts from the Admin API every
//!    `statistic_interval` s (when `admin_ws_port` ≠ 0), and the CPU used by the supervised
//!    process;
//! 4. **posts** its state to every URL of every `[[posters]]` entry (janus-proxy's
//!    `POST /sentinel_callback`);
//! 5. serves a small **REST interface** (`admin_api.http_listen`).
//!
//! ```text
//! janus-sentinel [CONFIG]          run (built-in defaults without CONFIG)
//! janus-sentinel --check-config C  validate C and exit (0 = valid, 2 = invalid)
//! janus-sentinel --version
//! ```
//!
//! Every key is documented in `conf/janus-sentinel.toml`. Unknown keys and out-of-range
//! values are errors naming the key and the value. SIGTERM, SIGINT and SIGQUIT stop the
//! sentinel: REST first, then one last post with status ABNORMAL to every proxy, then Janus
//! (SIGTERM, SIGKILL after 3 s). Exit status 0 after a signal, non-zero on any start-up
//! error (bad configuration, REST port in use, Janus cannot be started, `public_ip = "auto"`
//! without an IPv4 route).
//!
//! ## Status
//!
//! | code | name | when |
//! |---|---|---|
//! | 0 | NORMAL | the last probe was answered (within `hwm_threshold`, if set) |
//! | 1 | ABNORMAL | at start; a probe failed or timed out; after `stop_maintenance`; in the exit post |
//! | 2 | MAINTENANCE | after `start_maintenance` (probes are then ignored) |
//! | 3 | HWM | the probe was answered slower than `hwm_threshold` s |
//!
//! The proxy only selects servers with status 0. Any status change is posted at once.
//!
//! ## What is posted
//!
//! A JSON `POST` (`application/json`, an object of string values, with
//! `Authorization: Bearer <secret>` when the poster has a secret) to every URL, every
//! `min(60, expire / 3)` s and at once on a status or count change:
//! `name` (`server_name`, or a random UUID chosen at start), `url`
//! (`ws://{public_ip}:{ws_port}`; `public_ip` defaults to `server_ip`, `"auto"` picks the
//! local IPv4 address routing towards 8.8.8.8), `status`, `start_time` (epoch seconds of the
//! supervised Janus start, 0 if none), `expire`, `session_num` and `handle_num` (raw counts,
//! only when known) and `load` (below, only when known).
//!
//! ## Load
//!
//! ```text
//! load = round( handle_num + session_num / 10 + 100 × cpu )
//! ```
//!
//! where `cpu` ∈ [0, 1] is the CPU time the supervised Janus process used over the last
//! statistics interval divided by (wall time × CPUs available), from `/proc/<pid>/stat`.
//! Unknown terms count 0 (no Admin API: no counts; no supervision: no `cpu`). So each handle
//! counts 1, ten sessions count 1, and a Janus keeping every CPU busy counts 100: a server
//! with few but heavy handles still looks loaded.
//!
//! ## Statistics requests
//!
//! Janus 1.1.2 has no Admin API request that returns a handle total. Each round sends
//! `list_sessions` and `loops_info` together (one round trip); with static event loops
//! (`event_loops` in janus.jcfg) `loops_info` carries per-loop handle counters and that is
//! all. Without them (Janus's default) one `list_handles` per session follows, pipelined
//! (one more round trip); behind janus-proxy that is about one session per proxy.
//!
//! ## Supervision
//!
//! `cmdline` is split shell-style and run without a shell (Janus must stay in the
//! foreground; use `-L file` for its log, its stdout/stderr go to /dev/null). An exit is
//! noticed within `poll_interval` s. Exit code 0: restarted at once. Any other exit: restarted
//! after `error_restart_interval × 2^(n−1)` s for the n-th crash in a row, capped at
//! max(300 s, `error_restart_interval`); a run of 60 s or more resets n.
//! `error_restart_interval = 0` never restarts. Janus gets a parent-death signal (SIGKILL),
//! so it does not outlive a sentinel that was itself killed with SIGKILL.
//!
//! ## REST
//!
//! `GET /sentinel/info`, `POST /sentinel/op` (`op` = `start_maintenance`,
//! `stop_maintenance`, `restart_process`; query, form or JSON), `GET /sentinel/posters`;
//! CORS on every answer; errors are `{"info", "exception"}` (400 bad input, 404 unknown
//! route, 501 `restart_process` without supervision). Listens on 127.0.0.1:8200 by
//! default. Every route requires `Authorization: Bearer <admin_api.secret>` when a secret
//! is set (from the file or `JANUS_CLOUD_SECRET`); a listener that is not loopback needs
//! one unless `allow_no_secret = true`. CORS headers only for `cors_origins`; a `POST`
//! without the secret must be JSON. Bodies are bounded (256 KiB, 10 s), and so are
//! connections (64, 10 s to send headers).
//!
//! ## Differences from janus-cloud 0.5.0
//!
//! TOML instead of YAML; posts go to every URL instead of round-robin with fail-over; an
//! ABNORMAL post on exit; `load` field; `public_ip` replaces the "127.0.0.1 means
//! auto-detect" rule; restart backoff instead of a fixed delay; `daemonize = true` is
//! rejected (run it under systemd).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

use janus_cloud::admin::server;
use janus_sentinel::config::Config;
use janus_sentinel::rest::Rest;
use janus_sentinel::state::Shared;
use janus_sentinel::stats::AdminClient;
use janus_sentinel::supervisor::{self, Command};
use janus_sentinel::{identity, logging, poster, prober, stats};

#[derive(Parser)]
#[command(
    name = "janus-sentinel",
    version,
    about = "Supervises, probes and reports one Janus server to janus-proxy"
)]
struct Args {
    /// Configuration file (TOML); built-in defaults when omitted.
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match &args.config {
        Some(p) => Config::load(p),
        None => Config::from_toml_with_secret(
            "",
            std::env::var(janus_cloud::config::access::SECRET_ENV).ok(),
        ),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("janus-sentinel: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    let _guards = match logging::init(&config.log) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "janus-sentinel: cannot open log file {}: {e}",
                config.log.log_to_file
            );
            return ExitCode::from(2);
        }
    };
    // A dead poster or prober thread would leave Janus registered but unwatched; abort
    // instead (Janus goes with us: PR_SET_PDEATHSIG) and let the supervisor restart both.
    janus_cloud::logging::abort_on_panic();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("janus-sentinel: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> anyhow::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .with_context(|| format!("cannot start thread {name}"))
}

fn run(config: Config) -> anyhow::Result<()> {
    let j = &config.janus;
    let public = identity::public_host(j, identity::detect_public_ipv4)
        .context("janus.public_ip = \"auto\": cannot find the local IPv4 address")?;
    let id = identity::identity(j, &public);
    info!(
        "janus-sentinel {} for {} (name {}, posted as {})",
        env!("CARGO_PKG_VERSION"),
        id.server_url,
        id.name,
        id.public_url
    );
    let args = config.proc_watcher.args()?;
    let supervised = (!args.is_empty()).then_some(args);
    let shared = Arc::new(Shared::new(id, supervised.clone(), config.posters.len()));

    let mut signals =
        Signals::new([SIGTERM, SIGINT, SIGQUIT]).context("cannot install signal handlers")?;
    let listener = server::bind(&config.admin_api.http_listen)?;
    info!("REST interface on http://{}", config.admin_api.http_listen);
    if config.admin_api.secret.is_empty() {
        warn!("the REST interface has no secret: any local process can restart Janus (set admin_api.secret or JANUS_CLOUD_SECRET)");
    }

    let supervisor = match supervised {
        Some(args) => {
            let settings = supervisor::Settings {
                args,
                error_restart_interval: config.proc_watcher.error_restart_interval,
                poll_interval: Duration::from_secs(config.proc_watcher.poll_interval),
            };
            Some(supervisor::start(settings, Arc::clone(&shared)).context("cannot start Janus")?)
        }
        None => {
            info!("proc_watcher.cmdline is empty: Janus is not supervised");
            None
        }
    };

    let rest = Rest {
        shared: Arc::clone(&shared),
        supervisor: supervisor.as_ref().map(|(tx, _)| tx.clone()),
        posters: config.posters.clone(),
    };
    let rest_server = server::spawn(
        "rest",
        listener,
        server::Limits::default(),
        config.admin_api.policy(),
        Arc::new(rest),
    )?;

    let timeout = Duration::from_secs(j.request_timeout);
    let mut workers = Vec::new();
    let sh = Arc::clone(&shared);
    let interval = Duration::from_secs(j.pingpong_interval);
    workers.push(spawn("prober", move || prober::run(sh, interval, timeout))?);
    let admin = (j.admin_ws_port != 0).then(|| {
        AdminClient::new(
            shared.identity.admin_url.clone(),
            j.admin_secret.clone(),
            timeout,
        )
    });
    let sh = Arc::clone(&shared);
    let interval = Duration::from_secs(j.statistic_interval);
    workers.push(spawn("stats", move || stats::run(sh, interval, admin))?);
    for (i, p) in config.posters.iter().cloned().enumerate() {
        let sh = Arc::clone(&shared);
        workers.push(spawn(&format!("poster-{i}"), move || {
            poster::run(sh, i, p)
        })?);
    }

    let sig = signals.forever().next();
    info!("signal {sig:?}: shutting down");
    rest_server.stop();
    shared.stop();
    for w in workers {
        let _ = w.join();
    }
    if let Some((tx, handle)) = supervisor {
        let _ = tx.send(Command::Shutdown);
        let _ = handle.join();
    }
    info!("janus-sentinel stopped");
    Ok(())
}
