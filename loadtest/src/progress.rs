//! The live progress line: elapsed time, clients up, operations and errors per second,
//! sessions, and the RSS of the first target. An `indicatif` spinner on a terminal, plain
//! lines every `--progress-every` seconds otherwise (CI logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::stats::{Counters, Recorder};

pub struct Progress {
    bar: Option<ProgressBar>,
    every: Option<Duration>,
    last_line: Instant,
    last_ops: u64,
    last_errors: u64,
    last_at: Instant,
    clients: usize,
}

/// One progress line from the counters (pure, for tests).
pub fn line(
    elapsed: Duration,
    up: i64,
    clients: usize,
    ops_rate: f64,
    errors: u64,
    err_rate: f64,
    sessions: i64,
    target_rss_kib: Option<u64>,
) -> String {
    let mut s = format!(
        "[{:>5.0}s] clients {up}/{clients}  {ops_rate:>8.0} ops/s  errors {errors} ({err_rate:.0}/s)  sessions {sessions}",
        elapsed.as_secs_f64()
    );
    if let Some(kib) = target_rss_kib {
        s.push_str(&format!("  target rss {:.1} MiB", kib as f64 / 1024.0));
    }
    s
}

impl Progress {
    pub fn new(every_s: f64, clients: usize) -> Progress {
        let now = Instant::now();
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        });
        Progress {
            bar,
            every: (every_s > 0.0).then(|| Duration::from_secs_f64(every_s)),
            last_line: now,
            last_ops: 0,
            last_errors: 0,
            last_at: now,
            clients,
        }
    }

    /// Called about once a second.
    pub fn tick(&mut self, rec: &Recorder, target_rss_kib: Option<u64>) {
        let now = Instant::now();
        let c = &rec.counters;
        let ops = Counters::get(&c.ops);
        let errors = Counters::get(&c.errors);
        let dt = now
            .saturating_duration_since(self.last_at)
            .as_secs_f64()
            .max(1e-3);
        let text = line(
            now.saturating_duration_since(rec.start),
            c.clients_up.load(std::sync::atomic::Ordering::Relaxed),
            self.clients,
            (ops - self.last_ops) as f64 / dt,
            errors,
            (errors - self.last_errors) as f64 / dt,
            c.sessions_up.load(std::sync::atomic::Ordering::Relaxed),
            target_rss_kib,
        );
        self.last_ops = ops;
        self.last_errors = errors;
        self.last_at = now;
        match (&self.bar, self.every) {
            (Some(b), _) => b.set_message(text),
            (None, Some(every)) if now.saturating_duration_since(self.last_line) >= every => {
                eprintln!("{text}");
                self.last_line = now;
            }
            _ => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let l = line(
            Duration::from_secs(12),
            10,
            20,
            1234.4,
            3,
            1.0,
            10,
            Some(2048),
        );
        assert!(l.contains("clients 10/20"));
        assert!(l.contains("1234 ops/s"));
        assert!(l.contains("errors 3"));
        assert!(l.contains("2.0 MiB"));
        assert!(!line(Duration::ZERO, 0, 1, 0.0, 0, 0.0, 0, None).contains("rss"));
    }
}
