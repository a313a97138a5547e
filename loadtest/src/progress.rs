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

/// What one progress line shows.
pub struct Line {
    pub elapsed: Duration,
    pub up: i64,
    pub clients: usize,
    pub ops_rate: f64,
    pub errors: u64,
    pub err_rate: f64,
    pub sessions: i64,
    pub target_rss_kib: Option<u64>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{:>5.0}s] clients {}/{}  {:>8.0} ops/s  errors {} ({:.0}/s)  sessions {}",
            self.elapsed.as_secs_f64(),
            self.up,
            self.clients,
            self.ops_rate,
            self.errors,
            self.err_rate,
            self.sessions
        )?;
        if let Some(kib) = self.target_rss_kib {
            write!(f, "  target rss {:.1} MiB", kib as f64 / 1024.0)?;
        }
        Ok(())
    }
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
        let text = Line {
            elapsed: now.saturating_duration_since(rec.start),
            up: c.clients_up.load(std::sync::atomic::Ordering::Relaxed),
            clients: self.clients,
            ops_rate: (ops - self.last_ops) as f64 / dt,
            errors,
            err_rate: (errors - self.last_errors) as f64 / dt,
            sessions: c.sessions_up.load(std::sync::atomic::Ordering::Relaxed),
            target_rss_kib,
        }
        .to_string();
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
        let mut line = Line {
            elapsed: Duration::from_secs(12),
            up: 10,
            clients: 20,
            ops_rate: 1234.4,
            errors: 3,
            err_rate: 1.0,
            sessions: 10,
            target_rss_kib: Some(2048),
        };
        let l = line.to_string();
        assert!(l.contains("clients 10/20"));
        assert!(l.contains("1234 ops/s"));
        assert!(l.contains("errors 3"));
        assert!(l.contains("2.0 MiB"));
        line.target_rss_kib = None;
        assert!(!line.to_string().contains("rss"));
    }
}
