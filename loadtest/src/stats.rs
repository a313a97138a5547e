//! The recorder every simulated client writes into: one latency histogram per request type,
//! a per-second timeline (count per type, combined latency, errors), errors by kind with
//! their first samples, and lock-free counters for the live progress line.
//!
//! Latencies are kept in microseconds in [`hdrhistogram`] histograms (3 significant digits
//! overall, 2 per second). One mutex guards the histograms: it is held for a few hundred
//! nanoseconds per operation, far below what a Janus round trip costs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency recorded (longer ones are clamped): 2 minutes, in µs.
pub const MAX_LATENCY_US: u64 = 120_000_000;
/// Samples kept per error kind.
pub const ERROR_SAMPLES: usize = 3;
/// Longest error sample text kept, in bytes.
pub const SAMPLE_LEN: usize = 400;

/// A latency histogram in µs.
pub fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig).expect("static histogram bounds")
}

/// Microseconds of `d`, clamped to the histogram's range.
pub fn micros(d: Duration) -> u64 {
    (d.as_micros().min(u128::from(MAX_LATENCY_US)) as u64).max(1)
}

/// Counters read by the progress line while the run goes on.
#[derive(Default)]
pub struct Counters {
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    /// Simulated clients currently connected and set up.
    pub clients_up: AtomicI64,
    /// Janus sessions currently alive.
    pub sessions_up: AtomicI64,
    pub sessions_created: AtomicU64,
    pub peak_sessions: AtomicU64,
    pub peak_clients: AtomicU64,
}

impl Counters {
    pub fn session_created(&self) {
        self.sessions_created.fetch_add(1, Ordering::Relaxed);
        let now = self.sessions_up.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_sessions
            .fetch_max(now.max(0) as u64, Ordering::Relaxed);
    }

    pub fn session_gone(&self) {
        self.sessions_up.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn client_up(&self) {
        let now = self.clients_up.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_clients
            .fetch_max(now.max(0) as u64, Ordering::Relaxed);
    }

    pub fn client_down(&self) {
        self.clients_up.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Statistics of one request type.
#[derive(Clone)]
pub struct OpStats {
    pub hist: Histogram<u64>,
    /// Completed operations per second of the run.
    pub per_sec: Vec<u64>,
}

/// One second of the run, all request types together.
#[derive(Clone)]
pub struct Second {
    pub hist: Histogram<u64>,
    pub errors: u64,
}

/// One error kind.
#[derive(Clone, Debug, Default)]
pub struct ErrorStats {
    pub count: u64,
    /// The first [`ERROR_SAMPLES`] occurrences, prefixed with the time since the start.
    pub samples: Vec<String>,
}

/// Everything recorded, taken out of the recorder at the end.
#[derive(Clone, Default)]
pub struct Stats {
    pub ops: BTreeMap<&'static str, OpStats>,
    pub timeline: Vec<Second>,
    pub errors: BTreeMap<String, ErrorStats>,
}

fn bump<T: Clone>(v: &mut Vec<T>, i: usize, fill: impl Fn() -> T) -> &mut T {
    if v.len() <= i {
        v.resize_with(i + 1, fill);
    }
    &mut v[i]
}

impl Stats {
    /// Records one completed operation `op` of latency `us` ending in second `sec`.
    pub fn record(&mut self, op: &'static str, sec: usize, us: u64) {
        let s = self.ops.entry(op).or_insert_with(|| OpStats {
            hist: histogram(3),
            per_sec: Vec::new(),
        });
        // values are clamped into the bounds, so saturating record never fails
        s.hist.saturating_record(us);
        *bump(&mut s.per_sec, sec, || 0) += 1;
        bump(&mut self.timeline, sec, || Second {
            hist: histogram(2),
            errors: 0,
        })
        .hist
        .saturating_record(us);
    }

    /// Records an error of `kind` in second `sec`; `sample` is kept for the first few.
    pub fn error(&mut self, kind: &str, sec: usize, sample: impl FnOnce() -> String) {
        let e = self.errors.entry(kind.to_string()).or_default();
        e.count += 1;
        if e.samples.len() < ERROR_SAMPLES {
            let mut text = sample();
            if text.len() > SAMPLE_LEN {
                let mut cut = SAMPLE_LEN;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            e.samples.push(format!("t={sec}s {text}"));
        }
        bump(&mut self.timeline, sec, || Second {
            hist: histogram(2),
            errors: 0,
        })
        .errors += 1;
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }
}

/// Shared by all clients of a run.
pub struct Recorder {
    pub start: Instant,
    pub counters: Counters,
    stats: Mutex<Stats>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            counters: Counters::default(),
            stats: Mutex::new(Stats::default()),
        }
    }

    fn second(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.start).as_secs() as usize
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stats> {
        // a panic while holding the lock leaves plain counters: keep using them
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `op` started at `sent` and completed now.
    pub fn op(&self, op: &'static str, sent: Instant) {
        let now = Instant::now();
        let us = micros(now.saturating_duration_since(sent));
        self.counters.ops.fetch_add(1, Ordering::Relaxed);
        self.lock().record(op, self.second(now), us);
    }

    /// Records an error of `kind` (e.g. `timeout:message`, `janus-458`); `sample` describes it.
    pub fn error(&self, kind: &str, sample: impl FnOnce() -> String) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let sec = self.second(Instant::now());
        self.lock().error(kind, sec, sample);
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Stats {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_op_and_per_second() {
        let mut s = Stats::default();
        s.record("message", 0, 100);
        s.record("message", 2, 300);
        s.record("create", 2, 50);
        let m = &s.ops["message"];
        assert_eq!(m.hist.len(), 2);
        assert_eq!(m.per_sec, vec![1, 0, 1]);
        assert_eq!(s.timeline.len(), 3);
        assert_eq!(s.timeline[2].hist.len(), 2);
    }

    #[test]
    fn errors_keep_a_few_truncated_samples() {
        let mut s = Stats::default();
        for i in 0..5 {
            s.error("timeout:message", i, || "x".repeat(1000));
        }
        let e = &s.errors["timeout:message"];
        assert_eq!(e.count, 5);
        assert_eq!(e.samples.len(), ERROR_SAMPLES);
        assert!(e.samples[0].starts_with("t=0s "));
        assert!(e.samples[0].len() < SAMPLE_LEN + 20);
        assert_eq!(s.error_total(), 5);
        assert_eq!(s.timeline[4].errors, 1);
    }

    #[test]
    fn micros_clamps() {
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_secs(1000)), MAX_LATENCY_US);
        assert_eq!(micros(Duration::from_micros(250)), 250);
    }

    #[test]
    fn counters_track_peaks() {
        let c = Counters::default();
        c.session_created();
        c.session_created();
        c.session_gone();
        c.session_created();
        assert_eq!(Counters::get(&c.peak_sessions), 2);
        assert_eq!(Counters::get(&c.sessions_created), 3);
    }
}
