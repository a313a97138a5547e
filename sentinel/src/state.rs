//! The state every thread shares: the server's identity (fixed at start), its status and
//! counters, the supervisor's view of the Janus process and each poster's `connected` flag.
//!
//! One mutex and one condition variable: writers change a field through a method that bumps
//! `generation` when the change must be posted at once, and wake everyone; loops sleep with
//! [`Shared::wait`], which also returns early when the sentinel is stopping. Traffic is a few
//! updates per second at most, so one lock is plenty. Never held across I/O.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::status::{self, Event, Status};

/// Fixed facts about the monitored server, decided at start.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `janus.server_name`, or a UUID generated at start.
    pub name: String,
    /// `ws://<server_ip>:<ws_port>`: where the sentinel reaches Janus.
    pub server_url: String,
    /// `ws://<public ip>:<ws_port>`: what is posted to proxies.
    pub public_url: String,
    /// `ws://<server_ip>:<admin_ws_port>`.
    pub admin_url: String,
    /// `janus.hwm_threshold` in seconds.
    pub hwm_threshold: f64,
}

/// What the supervisor knows about the Janus process (for `GET /sentinel/info`).
#[derive(Debug, Clone, Default)]
pub struct Watcher {
    pub args: Vec<String>,
    /// Pid of the running child; `None` when stopped.
    pub pid: Option<u32>,
    /// When the running child was started.
    pub started: Option<(SystemTime, Instant)>,
    pub auto_restart_count: u64,
    pub last_exit_time: Option<SystemTime>,
    /// Exit code of the last exit; for a death by signal, minus the signal number.
    pub last_return_code: Option<i32>,
}

/// The mutable part.
#[derive(Debug, Clone)]
pub struct State {
    pub status: Status,
    /// −1 = unknown.
    pub session_num: i64,
    /// −1 = unknown.
    pub handle_num: i64,
    /// Share of all CPUs used by Janus over the last statistics interval.
    pub cpu: Option<f64>,
    /// `Some` when supervision is enabled.
    pub watcher: Option<Watcher>,
    /// `connected` flag of each poster, in configuration order.
    pub posters_connected: Vec<bool>,
    /// Bumped on every change that must be posted immediately.
    pub generation: u64,
    /// Set once, when the sentinel shuts down.
    pub stopping: bool,
}

/// Shared between all threads (inside an `Arc`).
pub struct Shared {
    pub identity: Identity,
    state: Mutex<State>,
    wake: Condvar,
}

/// Why [`Shared::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Timeout,
    /// `generation` differs from the one passed in.
    Changed,
    Stopping,
}

impl Shared {
    pub fn new(identity: Identity, supervised_args: Option<Vec<String>>, posters: usize) -> Self {
        Shared {
            identity,
            state: Mutex::new(State {
                status: Status::Abnormal,
                session_num: -1,
                handle_num: -1,
                cpu: None,
                watcher: supervised_args.map(|args| Watcher {
                    args,
                    ..Watcher::default()
                }),
                posters_connected: vec![false; posters],
                generation: 0,
                stopping: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// The state, even if a thread panicked while holding the lock (the data is plain
    /// values, always consistent between statements).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    /// Runs `f` on the state; when it returns true the change is posted at once.
    pub fn update(&self, f: impl FnOnce(&mut State) -> bool) {
        let mut s = self.lock();
        if f(&mut s) {
            s.generation += 1;
        }
        drop(s);
        self.wake.notify_all();
    }

    /// Applies a status event; returns the new status if it changed.
    pub fn apply(&self, event: Event) -> Option<Status> {
        let mut changed = None;
        let hwm = self.identity.hwm_threshold;
        self.update(|s| {
            let new = status::next(s.status, event, hwm);
            if new != s.status {
                s.status = new;
                changed = Some(new);
            }
            changed.is_some()
        });
        changed
    }

    /// Stores new counters; posts at once when one changed, unless both are unknown.
    pub fn set_counts(&self, session_num: i64, handle_num: i64) -> bool {
        let mut changed = false;
        self.update(|s| {
            changed = (s.session_num, s.handle_num) != (session_num, handle_num);
            s.session_num = session_num;
            s.handle_num = handle_num;
            changed && (session_num >= 0 || handle_num >= 0)
        });
        changed
    }

    /// Marks the sentinel as stopping and wakes every loop.
    pub fn stop(&self) {
        self.update(|s| {
            s.stopping = true;
            false
        });
    }

    pub fn is_stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Sleeps up to `timeout`, returning early when stopping or when `generation` is no
    /// longer `seen` (pass `None` to ignore changes).
    pub fn wait(&self, timeout: Duration, seen: Option<u64>) -> Wake {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if s.stopping {
                return Wake::Stopping;
            }
            if seen.is_some_and(|g| g != s.generation) {
                return Wake::Changed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wake::Timeout;
            }
            s = match self.wake.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn shared() -> Shared {
        Shared::new(
            Identity {
                name: "n".into(),
                server_url: "ws://127.0.0.1:8188".into(),
                public_url: "ws://10.0.0.1:8188".into(),
                admin_url: "ws://127.0.0.1:0".into(),
                hwm_threshold: 0.0,
            },
            None,
            1,
        )
    }

    #[test]
    fn changes_bump_generation() {
        let s = shared();
        assert_eq!(s.apply(Event::ProbeFailed), None); // already ABNORMAL
        assert_eq!(s.snapshot().generation, 0);
        assert_eq!(
            s.apply(Event::ProbeOk(Duration::ZERO)),
            Some(Status::Normal)
        );
        assert_eq!(s.snapshot().generation, 1);
        assert!(!s.set_counts(-1, -1));
        assert!(s.set_counts(1, 2));
        assert_eq!(s.snapshot().generation, 2);
        assert!(!s.set_counts(1, 2));
        assert!(s.set_counts(-1, -1)); // changed, but not worth a post
        assert_eq!(s.snapshot().generation, 2);
    }

    #[test]
    fn wait_wakes_on_change_and_stop() {
        let s = Arc::new(shared());
        assert_eq!(s.wait(Duration::from_millis(1), Some(0)), Wake::Timeout);
        let s2 = Arc::clone(&s);
        let t = std::thread::spawn(move || s2.wait(Duration::from_secs(30), Some(0)));
        s.apply(Event::StartMaintenance);
        assert_eq!(t.join().ok(), Some(Wake::Changed));
        let s2 = Arc::clone(&s);
        let t = std::thread::spawn(move || s2.wait(Duration::from_secs(30), None));
        s.stop();
        assert_eq!(t.join().ok(), Some(Wake::Stopping));
    }
}
