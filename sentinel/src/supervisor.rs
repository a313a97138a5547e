//! Process supervision (spec 03 §7): starts Janus from `proc_watcher.cmdline`, notices its
//! exit every `poll_interval` s, restarts it with a capped exponential backoff, restarts it
//! on request (REST `restart_process`) and stops it cleanly at shutdown (SIGTERM, SIGKILL
//! after [`STOP_GRACE`]). Owns the `Child`; every other thread sees it only through
//! [`crate::state::Watcher`] and talks to it through [`Command`]s.
//!
//! Janus is started without a shell, stdin/stdout/stderr on /dev/null (use Janus's `-L`
//! option for a log file), in its own process group (a Ctrl-C on the sentinel's terminal
//! reaches the sentinel only, which then stops Janus itself), and with a parent-death signal
//! so that a sentinel killed with SIGKILL does not leave an orphan Janus holding the ports.
//! That signal is SIGKILL, not SIGTERM: Janus 1.1.2 sometimes hangs while shutting down
//! ("Freeing crypto resources..."), and with the sentinel gone nobody would escalate.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::{error, info, warn};

use crate::state::Shared;

/// How long Janus gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// Cap of the restart backoff, in seconds (unless `error_restart_interval` is larger).
pub const MAX_BACKOFF_SECS: u64 = 300;
/// A child that ran at least this long before crashing resets the backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(60);

/// Requests to the supervisor thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop Janus (SIGTERM, then SIGKILL) and start it again at once; resets the counters.
    Restart,
    /// Stop Janus and end the thread.
    Shutdown,
}

/// Delay before the `crashes`-th consecutive restart after a crash:
/// `min(base × 2^(crashes−1), max(base, MAX_BACKOFF_SECS))`; `None` when `base` = 0 (never
/// restart).
pub fn backoff(base: u64, crashes: u32) -> Option<Duration> {
    if base == 0 {
        return None;
    }
    let cap = base.max(MAX_BACKOFF_SECS);
    let factor = 1u64
        .checked_shl(crashes.saturating_sub(1))
        .unwrap_or(u64::MAX);
    Some(Duration::from_secs(base.saturating_mul(factor).min(cap)))
}

/// The return code shown by `GET /sentinel/info`: the exit code, or minus the signal
/// number for a death by signal (as Python's `Popen.returncode`).
pub fn return_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| -s))
        .unwrap_or(-1)
}

/// Settings of the supervisor.
#[derive(Debug, Clone)]
pub struct Settings {
    pub args: Vec<String>,
    /// Base of the backoff (s); 0 = never restart.
    pub error_restart_interval: u64,
    pub poll_interval: Duration,
}

fn spawn(args: &[String]) -> io::Result<Child> {
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command line"))?;
    let mut cmd = Process::new(prog);
    cmd.args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl,
    // which is async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL; returns the exit status.
pub fn terminate(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(st) = child.try_wait()? {
        return Ok(st);
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: plain syscall on the pid of our own child, which we have not reaped yet
        // (so the pid cannot have been reused).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    warn!(
        "Janus pid {} ignored SIGTERM for {grace:?}: sending SIGKILL",
        child.id()
    );
    let _ = child.kill();
    child.wait()
}

struct Supervisor {
    settings: Settings,
    shared: Arc<Shared>,
    child: Option<Child>,
    /// Consecutive crashes, for the backoff.
    crashes: u32,
    /// When the next (re)start is due.
    restart_at: Option<Instant>,
}

impl Supervisor {
    fn start_child(&mut self) -> io::Result<()> {
        let child = spawn(&self.settings.args)?;
        let pid = child.id();
        info!(
            "started Janus, pid {pid}: {}",
            shell_words::join(&self.settings.args)
        );
        self.child = Some(child);
        self.restart_at = None;
        self.shared.update(|s| {
            if let Some(w) = s.watcher.as_mut() {
                w.pid = Some(pid);
                w.started = Some((SystemTime::now(), Instant::now()));
            }
            false
        });
        Ok(())
    }

    fn record_exit(&mut self, st: ExitStatus) {
        let code = return_code(st);
        self.shared.update(|s| {
            if let Some(w) = s.watcher.as_mut() {
                w.pid = None;
                w.started = None;
                w.last_exit_time = Some(SystemTime::now());
                w.last_return_code = Some(code);
            }
            false
        });
    }

    /// Checks the child; schedules a restart when it has exited.
    fn poll(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let st = match child.try_wait() {
            Ok(Some(st)) => st,
            Ok(None) => return,
            Err(e) => {
                error!("cannot check Janus pid {}: {e}", child.id());
                return;
            }
        };
        let ran = self.started_instant().map(|t| t.elapsed());
        self.child = None;
        self.record_exit(st);
        let base = self.settings.error_restart_interval;
        if base == 0 {
            warn!("Janus exited ({st}); error_restart_interval = 0: not restarting it");
            return;
        }
        if st.success() {
            warn!("Janus exited with code 0: restarting it");
            self.crashes = 0;
            self.restart_at = Some(Instant::now());
            return;
        }
        if ran.is_some_and(|r| r >= STABLE_RUN) {
            self.crashes = 0;
        }
        self.crashes = self.crashes.saturating_add(1);
        let delay = backoff(base, self.crashes).unwrap_or_default();
        warn!(
            "Janus crashed ({st}); restart #{} in {delay:?}",
            self.crashes
        );
        self.restart_at = Some(Instant::now() + delay);
    }

    fn started_instant(&self) -> Option<Instant> {
        self.shared
            .snapshot()
            .watcher
            .and_then(|w| w.started)
            .map(|(_, i)| i)
    }

    fn restart_if_due(&mut self) {
        if self.restart_at.is_none_or(|t| Instant::now() < t) {
            return;
        }
        match self.start_child() {
            Ok(()) => self.shared.update(|s| {
                if let Some(w) = s.watcher.as_mut() {
                    w.auto_restart_count += 1;
                }
                false
            }),
            Err(e) => self.spawn_failed(&e),
        }
    }

    /// Schedules the next try after a failed spawn (none when restarts are disabled).
    fn spawn_failed(&mut self, e: &io::Error) {
        self.crashes = self.crashes.saturating_add(1);
        self.restart_at = match backoff(self.settings.error_restart_interval, self.crashes) {
            Some(delay) => {
                error!("cannot start Janus: {e}; next try in {delay:?}");
                Some(Instant::now() + delay)
            }
            None => {
                error!("cannot start Janus: {e}; error_restart_interval = 0: giving up");
                None
            }
        };
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            match terminate(&mut child, STOP_GRACE) {
                Ok(st) => {
                    info!("stopped Janus pid {pid} ({st})");
                    self.record_exit(st);
                }
                Err(e) => error!("cannot stop Janus pid {pid}: {e}"),
            }
        }
    }

    fn run(mut self, rx: Receiver<Command>) {
        loop {
            let mut wait = self.settings.poll_interval;
            if let Some(t) = self.restart_at {
                wait = wait.min(t.saturating_duration_since(Instant::now()));
            }
            match rx.recv_timeout(wait) {
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Command::Restart) => {
                    info!("restart_process requested");
                    self.stop_child();
                    self.crashes = 0;
                    self.shared.update(|s| {
                        if let Some(w) = s.watcher.as_mut() {
                            w.auto_restart_count = 0;
                        }
                        false
                    });
                    if let Err(e) = self.start_child() {
                        self.spawn_failed(&e);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.poll();
            self.restart_if_due();
        }
        self.stop_child();
    }
}

/// Starts Janus (a failure here aborts the sentinel's start-up) and then the supervisor
/// thread, which lives until it receives [`Command::Shutdown`].
///
/// # Errors
/// The first spawn failed, or the thread could not be created.
pub fn start(
    settings: Settings,
    shared: Arc<Shared>,
) -> io::Result<(Sender<Command>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    // The child is spawned by the thread that supervises it: the parent-death signal fires
    // when the *thread* that forked exits, so that must be the long-lived one.
    let handle = std::thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || {
            let mut sup = Supervisor {
                settings,
                shared,
                child: None,
                crashes: 0,
                restart_at: None,
            };
            let first = sup.start_child();
            let ok = first.is_ok();
            let _ = ready_tx.send(first);
            if ok {
                sup.run(rx);
            }
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((tx, handle)),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(io::Error::other("supervisor thread died")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = |n| backoff(10, n).map(|d| d.as_secs());
        assert_eq!(
            [s(1), s(2), s(3), s(5), s(6), s(60)],
            [
                Some(10),
                Some(20),
                Some(40),
                Some(160),
                Some(300),
                Some(300)
            ]
        );
        assert_eq!(backoff(0, 1), None);
        assert_eq!(backoff(1000, 4).map(|d| d.as_secs()), Some(1000));
        assert_eq!(backoff(1, 0).map(|d| d.as_secs()), Some(1));
    }

    #[test]
    fn return_codes() {
        assert_eq!(return_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(return_code(ExitStatus::from_raw(9)), -9);
    }

    #[test]
    fn terminate_escalates_to_sigkill() {
        // a child that ignores SIGTERM
        let mut child = Process::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.05; done"])
            .spawn()
            .expect("sh");
        // give sh a moment to install the trap; poll its signal mask instead of sleeping
        let deadline = Instant::now() + Duration::from_secs(5);
        let path = format!("/proc/{}/status", child.id());
        while Instant::now() < deadline {
            let ignored = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find(|l| l.starts_with("SigIgn:"))
                        .map(str::to_owned)
                })
                .and_then(|l| u64::from_str_radix(l["SigIgn:".len()..].trim(), 16).ok());
            if ignored.is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0) {
                break;
            }
            std::thread::yield_now();
        }
        let t = Instant::now();
        let st = terminate(&mut child, Duration::from_millis(300)).expect("terminate");
        assert_eq!(st.signal(), Some(libc::SIGKILL));
        assert!(t.elapsed() >= Duration::from_millis(300));
    }
}
