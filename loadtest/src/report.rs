//! The end-of-run report: built from the recorder's [`Stats`] and the process samples,
//! printed as a human table and written as JSON (`--json`). Pure functions, no I/O.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::procstat::ProcSample;
use crate::stats::{OpStats, Stats};

/// What was run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunInfo {
    pub scenario: String,
    pub label: String,
    pub urls: Vec<String>,
    pub clients: usize,
    pub sessions_per_conn: usize,
    pub duration_s: f64,
    pub ramp_up_s: f64,
    pub think_ms: u64,
    pub threads: usize,
    /// Wall time from the first client to the end of cleanup.
    pub elapsed_s: f64,
    /// Seconds of the steady window (after ramp-up, before the stop) over which rates are
    /// computed; the whole run when that window is shorter than a second.
    pub steady_s: f64,
    /// The videoroom scenario's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub videoroom: Option<RoomInfo>,
}

/// What a videoroom run was made of.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RoomInfo {
    pub rooms: usize,
    /// Per room.
    pub publishers: usize,
    /// Per room; each subscribes to every publisher of its room.
    pub subscribers: usize,
    /// Subscribers were real WebRTC peers (else synthetic answers, no media).
    pub real_subscribers: bool,
    pub first_room: u64,
    /// Time a subscriber stays subscribed before it leaves.
    pub hold_ms: u64,
}

/// Latency summary of one request type (milliseconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OpReport {
    pub op: String,
    pub count: u64,
    /// Operations per second over the steady window.
    pub rate_per_s: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorReport {
    pub kind: String,
    pub count: u64,
    pub samples: Vec<String>,
}

/// A target process (`--pid`) over the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcReport {
    pub pid: u32,
    pub name: String,
    pub cpu_s: f64,
    /// CPU use in percent of one core over the run.
    pub cpu_percent: f64,
    /// CPU µs per client WebSocket message (sent + received by the generator).
    pub cpu_us_per_message: f64,
    /// CPU µs per Janus session created during the run.
    pub cpu_us_per_session: f64,
    pub rss_start_kib: u64,
    /// Highest RSS sampled once a second during the run.
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    /// The kernel's lifetime peak (`VmHWM`) at the end.
    pub vm_hwm_kib: u64,
    /// (peak RSS − start RSS) / peak concurrent sessions, in bytes.
    pub rss_bytes_per_session: f64,
    /// (peak RSS − start RSS) / peak connected clients (WebSockets), in bytes.
    #[serde(default)]
    pub rss_bytes_per_client: f64,
    /// False when the process vanished during the run (numbers are then partial).
    pub alive_at_end: bool,
}

/// The generator's own cost, so a reader knows when it was the limit.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GeneratorReport {
    pub cpu_s: f64,
    /// Percent of one core; near 100 × threads means the generator was the bottleneck.
    pub cpu_percent: f64,
    pub threads: usize,
    pub max_rss_kib: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    pub ops: u64,
    pub errors: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub sessions_created: u64,
    pub peak_sessions: u64,
    pub peak_clients: u64,
}

/// One second of the run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TimePoint {
    pub t_s: u64,
    pub ops: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub run: RunInfo,
    pub totals: Totals,
    pub ops: Vec<OpReport>,
    pub errors: Vec<ErrorReport>,
    pub processes: Vec<ProcReport>,
    pub generator: GeneratorReport,
    /// Percent of all cores busy during the run (from /proc/stat).
    pub machine_busy_percent: f64,
    pub cores: usize,
    pub timeline: Vec<TimePoint>,
    /// Latency distribution of all operations: (percentile, ms) points for plotting.
    pub distribution: Vec<(f64, f64)>,
}

/// `q` (0..=1) quantile of `h` in milliseconds.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Seconds `[from, to)` of the run over which rates are computed: from the first whole second
/// after ramp-up to the last whole second before the stop. `None` when shorter than 1 s.
pub fn steady_window(ramp_up_s: f64, stop_s: f64) -> Option<(usize, usize)> {
    let from = ramp_up_s.max(0.0).ceil() as usize;
    let to = stop_s.max(0.0).floor() as usize;
    (to > from).then_some((from, to))
}

/// The summary of one request type; `window` as from [`steady_window`], else `elapsed_s`.
pub fn op_report(
    name: &str,
    s: &OpStats,
    window: Option<(usize, usize)>,
    elapsed_s: f64,
) -> OpReport {
    let h = &s.hist;
    let rate_per_s = match window {
        Some((a, b)) => {
            let n: u64 = s.per_sec.iter().skip(a).take(b - a).sum();
            n as f64 / (b - a) as f64
        }
        None if elapsed_s > 0.0 => h.len() as f64 / elapsed_s,
        None => 0.0,
    };
    OpReport {
        op: name.to_string(),
        count: h.len(),
        rate_per_s,
        mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        p50_ms: quantile_ms(h, 0.50),
        p90_ms: quantile_ms(h, 0.90),
        p99_ms: quantile_ms(h, 0.99),
        p999_ms: quantile_ms(h, 0.999),
        max_ms: h.max() as f64 / 1000.0,
    }
}

/// Percentile curve of `h` for plotting: (percentile, ms) at 0, 50, 90, 99, … up to 99.999
/// and the maximum.
pub fn distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts = Vec::new();
    for i in 0..=200 {
        // 0 → 0 %, 200 → 99.999 %: spaced evenly on a log scale of 1/(1-q)
        let q = 1.0 - 10f64.powf(-5.0 * i as f64 / 200.0);
        pts.push((q * 100.0, quantile_ms(h, q)));
    }
    pts.push((100.0, h.max() as f64 / 1000.0));
    pts
}

/// Inputs about a target process: pid, name, first and last sample, highest RSS seen.
pub struct ProcInput {
    pub pid: u32,
    pub name: String,
    pub start: ProcSample,
    pub end: Option<ProcSample>,
    pub rss_peak_kib: u64,
}

pub fn proc_report(p: &ProcInput, t: &Totals, elapsed_s: f64) -> ProcReport {
    let end = p.end.unwrap_or(p.start);
    let cpu_s = (end.cpu_s - p.start.cpu_s).max(0.0);
    let messages = t.messages_sent + t.messages_received;
    let per = |n: u64| if n == 0 { 0.0 } else { cpu_s * 1e6 / n as f64 };
    let rss_peak_kib = p.rss_peak_kib.max(end.rss_kib).max(p.start.rss_kib);
    // RSS growth over the run shared by `n` (peak sessions or clients).
    let per_peak = |n: u64| {
        if n == 0 {
            0.0
        } else {
            (rss_peak_kib - p.start.rss_kib) as f64 * 1024.0 / n as f64
        }
    };
    ProcReport {
        pid: p.pid,
        name: p.name.clone(),
        cpu_s,
        cpu_percent: if elapsed_s > 0.0 {
            100.0 * cpu_s / elapsed_s
        } else {
            0.0
        },
        cpu_us_per_message: per(messages),
        cpu_us_per_session: per(t.sessions_created),
        rss_start_kib: p.start.rss_kib,
        rss_peak_kib,
        rss_end_kib: end.rss_kib,
        vm_hwm_kib: end.hwm_kib,
        rss_bytes_per_session: per_peak(t.peak_sessions),
        rss_bytes_per_client: per_peak(t.peak_clients),
        alive_at_end: p.end.is_some(),
    }
}

/// Where the run took place: the generator's own cost and the machine.
pub struct Environment {
    pub generator: GeneratorReport,
    pub machine_busy_percent: f64,
    pub cores: usize,
}

/// Assembles the report. `stop_s` is when the clients were told to stop (seconds).
pub fn build(
    mut run: RunInfo,
    stats: &Stats,
    totals: Totals,
    procs: &[ProcInput],
    env: Environment,
    stop_s: f64,
) -> Report {
    let Environment {
        generator,
        machine_busy_percent,
        cores,
    } = env;
    let window = steady_window(run.ramp_up_s, stop_s);
    run.steady_s = window.map_or(run.elapsed_s, |(a, b)| (b - a) as f64);
    let ops = stats
        .ops
        .iter()
        .map(|(name, s)| op_report(name, s, window, run.elapsed_s))
        .collect();
    let errors = stats
        .errors
        .iter()
        .map(|(kind, e)| ErrorReport {
            kind: kind.clone(),
            count: e.count,
            samples: e.samples.clone(),
        })
        .collect();
    let mut all = crate::stats::histogram(3);
    for s in stats.ops.values() {
        // same bounds everywhere, so add cannot fail
        let _ = all.add(&s.hist);
    }
    let timeline = stats
        .timeline
        .iter()
        .enumerate()
        .map(|(t, s)| TimePoint {
            t_s: t as u64,
            ops: s.hist.len(),
            errors: s.errors,
            p50_ms: quantile_ms(&s.hist, 0.5),
            p99_ms: quantile_ms(&s.hist, 0.99),
            max_ms: s.hist.max() as f64 / 1000.0,
        })
        .collect();
    let processes = procs
        .iter()
        .map(|p| proc_report(p, &totals, run.elapsed_s))
        .collect();
    Report {
        run,
        totals,
        ops,
        errors,
        processes,
        generator,
        machine_busy_percent,
        cores,
        timeline,
        distribution: distribution(&all),
    }
}

/// The human summary printed at the end of a run.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let run = &r.run;
    let _ = writeln!(
        o,
        "\n== janus-loadtest {}{}: {} clients on {} for {:.1}s (steady window {:.0}s, {} thread(s))",
        run.scenario,
        if run.label.is_empty() { String::new() } else { format!(" [{}]", run.label) },
        run.clients,
        run.urls.join(", "),
        run.elapsed_s,
        run.steady_s,
        run.threads,
    );
    let _ = writeln!(
        o,
        "{:<14} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "request", "count", "rate/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for op in &r.ops {
        let _ = writeln!(
            o,
            "{:<14} {:>9} {:>10.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3}",
            op.op,
            op.count,
            op.rate_per_s,
            op.mean_ms,
            op.p50_ms,
            op.p90_ms,
            op.p99_ms,
            op.p999_ms,
            op.max_ms
        );
    }
    if let Some(v) = &run.videoroom {
        let _ = writeln!(
            o,
            "videoroom: {} room(s) from id {}, each {} publishers + {} {} subscribers (all feeds each), hold {} ms",
            v.rooms,
            v.first_room,
            v.publishers,
            v.subscribers,
            if v.real_subscribers { "real" } else { "synthetic" },
            v.hold_ms
        );
    }
    let t = &r.totals;
    let _ = writeln!(
        o,
        "messages: {} sent, {} received; sessions: {} created, {} peak; clients peak {}",
        t.messages_sent, t.messages_received, t.sessions_created, t.peak_sessions, t.peak_clients
    );
    if r.errors.is_empty() {
        let _ = writeln!(o, "errors: none");
    } else {
        let _ = writeln!(o, "errors: {} in total", t.errors);
        for e in &r.errors {
            let _ = writeln!(o, "  {:<28} {:>8}", e.kind, e.count);
            for s in &e.samples {
                let _ = writeln!(o, "      {s}");
            }
        }
    }
    for p in &r.processes {
        let _ = writeln!(
            o,
            "target {} ({}): cpu {:.2}s ({:.0}% of a core), {:.2} µs/message, {:.1} µs/session; rss {}→{} KiB peak (hwm {} KiB), {:.0} B/client, {:.0} B/session{}",
            p.pid,
            p.name,
            p.cpu_s,
            p.cpu_percent,
            p.cpu_us_per_message,
            p.cpu_us_per_session,
            p.rss_start_kib,
            p.rss_peak_kib,
            p.vm_hwm_kib,
            p.rss_bytes_per_client,
            p.rss_bytes_per_session,
            if p.alive_at_end { "" } else { " [EXITED DURING THE RUN]" }
        );
    }
    let g = &r.generator;
    let _ = writeln!(
        o,
        "generator: cpu {:.2}s ({:.0}% of a core, {} thread(s)), max rss {} KiB{}; machine busy {:.0}% of {} cores",
        g.cpu_s,
        g.cpu_percent,
        g.threads,
        g.max_rss_kib,
        if g.cpu_percent > 90.0 * g.threads as f64 {
            " — the generator was probably the bottleneck"
        } else {
            ""
        },
        r.machine_busy_percent,
        r.cores
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    fn stats() -> Stats {
        let mut s = Stats::default();
        for sec in 0..10 {
            for i in 1..=100u64 {
                s.record("message", sec, i * 10);
            }
        }
        s.record("create", 0, 5000);
        s.error("timeout:message", 3, || "no event".into());
        s
    }

    #[test]
    fn percentiles_in_ms() {
        let s = stats();
        let h = &s.ops["message"].hist;
        assert!((quantile_ms(h, 0.5) - 0.5).abs() < 0.01);
        assert!((quantile_ms(h, 0.99) - 0.99).abs() < 0.01);
        assert_eq!(quantile_ms(&crate::stats::histogram(3), 0.5), 0.0);
    }

    #[test]
    fn steady_window_excludes_ramp_up_and_partial_seconds() {
        assert_eq!(steady_window(2.0, 10.5), Some((2, 10)));
        assert_eq!(steady_window(0.3, 5.0), Some((1, 5)));
        assert_eq!(steady_window(3.0, 3.5), None);
    }

    #[test]
    fn rates_use_the_steady_window() {
        let s = stats();
        let r = op_report("message", &s.ops["message"], Some((2, 10)), 12.0);
        assert_eq!(r.count, 1000);
        assert!((r.rate_per_s - 100.0).abs() < 1e-9);
        let r = op_report("message", &s.ops["message"], None, 10.0);
        assert!((r.rate_per_s - 100.0).abs() < 1e-9);
    }

    #[test]
    fn report_has_everything_and_renders() {
        let s = stats();
        let totals = Totals {
            ops: 1001,
            errors: 1,
            messages_sent: 1000,
            messages_received: 3000,
            sessions_created: 10,
            peak_sessions: 10,
            peak_clients: 5,
        };
        let start = ProcSample {
            cpu_s: 1.0,
            rss_kib: 1000,
            hwm_kib: 1000,
        };
        let end = ProcSample {
            cpu_s: 1.4,
            rss_kib: 1010,
            hwm_kib: 1040,
        };
        let procs = [ProcInput {
            pid: 42,
            name: "janus-proxy".into(),
            start,
            end: Some(end),
            rss_peak_kib: 1020,
        }];
        let run = RunInfo {
            scenario: "echotest".into(),
            clients: 10,
            ramp_up_s: 1.0,
            elapsed_s: 10.0,
            videoroom: Some(RoomInfo {
                rooms: 1,
                publishers: 30,
                subscribers: 300,
                ..RoomInfo::default()
            }),
            ..RunInfo::default()
        };
        let env = Environment {
            generator: GeneratorReport::default(),
            machine_busy_percent: 50.0,
            cores: 2,
        };
        let r = build(run, &s, totals, &procs, env, 10.0);
        assert_eq!(r.run.steady_s, 9.0);
        assert_eq!(r.ops.len(), 2);
        assert_eq!(r.errors[0].count, 1);
        let p = &r.processes[0];
        assert!((p.cpu_us_per_message - 100.0).abs() < 1e-6, "{p:?}");
        assert!((p.rss_bytes_per_session - 2048.0).abs() < 1e-6);
        // 5 clients held the 10 sessions
        assert!((p.rss_bytes_per_client - 4096.0).abs() < 1e-6, "{p:?}");
        assert_eq!(r.timeline.len(), 10);
        assert_eq!(r.timeline[3].errors, 1);
        assert!(r.distribution.len() > 100);
        let text = render(&r);
        assert!(text.contains("30 publishers + 300 synthetic subscribers"));
        assert!(text.contains("message"));
        assert!(text.contains("timeout:message"));
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.ops, r.ops);
        assert_eq!(back.run.videoroom, r.run.videoroom);
        // reports of other scenarios have no videoroom key, and older reports still load
        let plain: RunInfo = serde_json::from_str(r#"{"scenario":"idle","label":"","urls":[],"clients":1,"sessions_per_conn":1,"duration_s":1.0,"ramp_up_s":0.0,"think_ms":0,"threads":1,"elapsed_s":1.0,"steady_s":1.0}"#).unwrap();
        assert!(plain.videoroom.is_none());
        assert!(!serde_json::to_string(&plain).unwrap().contains("videoroom"));
    }
}
