//! janus-loadtest: thousands of simulated Janus WebSocket clients in one process, for
//! janus-proxy, a Janus server, or anything speaking the Janus API in between (HAProxy).
//!
//! It reports operations per second and latency percentiles per request type, errors by kind
//! with samples, its own CPU use, and the CPU and memory of the processes under test
//! (`--pid`). Exit status 1 when the run had errors, so CI can rely on it.
//!
//! # Layout
//! - [`cli`]: arguments (one subcommand per scenario, plus `fake-backend`), validated into a
//!   [`scenario::Plan`];
//! - [`client`]: one Janus WebSocket client: transactions, replies, errors;
//! - [`scenario`]: the runner and one file per scenario (videocall, videoroom, echotest,
//!   idle, connect);
//! - [`sdp`]: synthetic offers and answers (videocall, videoroom subscribers);
//! - [`stats`]: the shared recorder (histograms, timeline, errors, counters);
//! - [`report`]: the end-of-run report, as a table and as JSON;
//! - [`procstat`]: CPU and memory from /proc and getrusage, file-descriptor limit;
//! - [`progress`]: the live progress line;
//! - [`plot`]: SVG charts;
//! - [`fake_backend`]: the benchmark-only Janus responder.

mod cli;
mod client;
mod fake_backend;
mod plot;
mod procstat;
mod progress;
mod report;
mod scenario;
mod sdp;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use cli::{Cli, Command, RunArgs};
use report::{GeneratorReport, ProcInput, Report, RoomInfo, RunInfo, Totals};
use scenario::{Kind, Plan, Shared};
use stats::{Counters, Recorder};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("janus-loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match procstat::raise_nofile() {
        Ok(n) if n < 4096 => eprintln!("warning: only {n} file descriptors allowed"),
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot raise the file-descriptor limit: {e}"),
    }
    if let Command::FakeBackend(a) = cli.command {
        let rt = runtime(a.threads).context("tokio runtime")?;
        rt.block_on(fake_backend::serve(a))?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some((kind, args)) = cli.command.scenario() else {
        return Ok(ExitCode::from(2));
    };
    let plan = match args.plan(kind) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("janus-loadtest: {msg}");
            return Ok(ExitCode::from(2));
        }
    };
    let rt = runtime(args.threads).context("tokio runtime")?;
    let report = rt.block_on(run(kind, plan, args))?;
    // do not wait for tasks stuck in I/O after the grace period
    rt.shutdown_timeout(Duration::from_secs(1));
    print!("{}", report::render(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("report to JSON")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("JSON report: {}", path.display());
    }
    if let Some(path) = &args.svg {
        plot::draw(&report, path).with_context(|| format!("drawing {}", path.display()))?;
        eprintln!("SVG charts: {}", path.display());
    }
    Ok(if report.totals.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs the scenario for the planned duration, stops it, waits for cleanup and reports.
async fn run(kind: Kind, plan: Plan, args: &RunArgs) -> anyhow::Result<Report> {
    let mut targets = Vec::new();
    for &pid in &args.pids {
        let s = procstat::sample(pid).with_context(|| format!("no readable process {pid}"))?;
        let name = procstat::process_name(pid).unwrap_or_default();
        targets.push((pid, name, s, s.rss_kib));
    }
    let machine0 = procstat::machine();
    let (gen_cpu0, _) = procstat::self_usage();
    let start = Instant::now();
    let rec = Arc::new(Recorder::new(start));
    let timeout = plan.timeout;
    let info = RunInfo {
        scenario: kind.name().into(),
        label: args.label.clone(),
        urls: plan.urls.clone(),
        clients: plan.clients,
        sessions_per_conn: plan.sessions_per_conn,
        duration_s: args.duration,
        ramp_up_s: args.ramp_up,
        think_ms: args.think_ms,
        threads: args.threads,
        videoroom: (kind == Kind::Videoroom).then(|| {
            let r = &plan.videoroom;
            RoomInfo {
                rooms: r.rooms,
                publishers: r.publishers,
                subscribers: r.subscribers,
                real_subscribers: r.real_subscribers,
                first_room: r.first_room,
                hold_ms: args.hold_ms,
            }
        }),
        ..RunInfo::default()
    };
    let sh = Arc::new(Shared::new(plan, rec.clone()));
    let mut handles = scenario::spawn_all(kind, &sh, start);
    let stop_at = start + Duration::from_secs_f64(args.duration);
    let mut progress = progress::Progress::new(args.progress_every, info.clients);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let sample_peaks = |targets: &mut Vec<(u32, String, procstat::ProcSample, u64)>| {
        for t in targets.iter_mut() {
            if let Some(s) = procstat::sample(t.0) {
                t.3 = t.3.max(s.rss_kib);
            }
        }
        targets.first().map(|t| t.3)
    };
    loop {
        let now = Instant::now();
        if now >= stop_at {
            break;
        }
        let nap = stop_at
            .saturating_duration_since(now)
            .min(Duration::from_secs(1));
        tokio::select! {
            // cancelling the sleep is harmless; ctrl_c stays pinned for the next round
            _ = tokio::time::sleep(nap) => {}
            _ = &mut ctrl_c => {
                eprintln!("interrupted: stopping the clients");
                break;
            }
        }
        let rss = sample_peaks(&mut targets);
        progress.tick(&rec, rss);
    }
    let stop_s = start.elapsed().as_secs_f64();
    sample_peaks(&mut targets);
    sh.stop();
    let deadline = tokio::time::Instant::now() + timeout * 2 + Duration::from_secs(5);
    for h in handles.iter_mut() {
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            eprintln!("warning: some clients did not finish cleaning up in time");
            break;
        }
    }
    for h in &handles {
        h.abort();
    }
    progress.finish();
    let elapsed_s = start.elapsed().as_secs_f64();
    let (gen_cpu1, gen_rss) = procstat::self_usage();
    let busy = match (machine0, procstat::machine()) {
        (Some(a), Some(b)) => procstat::busy_percent(a, b),
        _ => 0.0,
    };
    let procs: Vec<ProcInput> = targets
        .into_iter()
        .map(|(pid, name, start, peak)| ProcInput {
            pid,
            name,
            start,
            end: procstat::sample(pid),
            rss_peak_kib: peak,
        })
        .collect();
    let c = &rec.counters;
    let stats = rec.snapshot();
    let totals = Totals {
        ops: Counters::get(&c.ops),
        errors: stats.error_total(),
        messages_sent: Counters::get(&c.frames_sent),
        messages_received: Counters::get(&c.frames_received),
        sessions_created: Counters::get(&c.sessions_created),
        peak_sessions: Counters::get(&c.peak_sessions),
        peak_clients: Counters::get(&c.peak_clients),
    };
    let gen_cpu = gen_cpu1 - gen_cpu0;
    let generator = GeneratorReport {
        cpu_s: gen_cpu,
        cpu_percent: 100.0 * gen_cpu / elapsed_s.max(1e-9),
        threads: args.threads,
        max_rss_kib: gen_rss,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(report::build(
        RunInfo { elapsed_s, ..info },
        &stats,
        totals,
        &procs,
        report::Environment {
            generator,
            machine_busy_percent: busy,
            cores,
        },
        stop_s,
    ))
}
