//! The load figure posted to proxies as the extra field `load`, and the Janus process CPU
//! sampling it needs. The formula is pure; only [`read_cpu_ticks`] touches `/proc`.
//!
//! # Formula
//!
//! ```text
//! load = round( handle_num + session_num / 10 + 100 × cpu )
//! cpu  = Δ(utime + stime of the Janus process) / (Δwall × online CPUs)     ∈ [0, 1]
//! ```
//!
//! * `handle_num` dominates: a handle is what costs Janus media work, and it is the number
//!   the proxy's `wr`/`lb` selectors already use.
//! * `session_num / 10`: a session without handles costs little (behind janus-proxy there
//!   is one session per proxy anyway), but it breaks ties.
//! * `100 × cpu`: a server whose Janus process keeps every CPU busy counts as 100 extra
//!   handles, so a server busy with a few heavy handles (many video streams in one room)
//!   looks loaded even though its handle count is low.
//! * `cpu` is measured over the last statistics interval from `/proc/<pid>/stat`; it is
//!   unknown when the sentinel does not supervise Janus (no pid) or on the first round.
//! * An unknown count (−1) or an unknown `cpu` contributes 0; when all three are unknown
//!   there is no `load` at all (the field is not posted).

use std::time::Instant;

/// CPU time of a process at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSample {
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    pub at: Instant,
}

/// utime + stime (clock ticks) from the text of `/proc/<pid>/stat`. The command name in
/// parentheses may contain spaces and parentheses, so fields are counted after the last ')'.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // after ')': field 3 (state) is index 0, so utime (14) is index 11 and stime (15) is 12
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Reads the CPU time of `pid` now; `None` if the process is gone or unreadable.
pub fn read_cpu_ticks(pid: u32) -> Option<CpuSample> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(CpuSample {
        ticks: parse_stat_ticks(&text)?,
        at: Instant::now(),
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 if unknown).
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a system constant; no memory is passed.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as f64
    } else {
        100.0
    }
}

/// Number of CPUs this process may use (at least 1).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Share of all CPUs used between two samples, clamped to [0, 1]; `None` if no time passed
/// or the counter went backwards (a new process with the same pid).
pub fn cpu_share(prev: CpuSample, cur: CpuSample, ticks_per_sec: f64, cpus: usize) -> Option<f64> {
    let wall = cur.at.checked_duration_since(prev.at)?.as_secs_f64();
    let ticks = cur.ticks.checked_sub(prev.ticks)?;
    if wall <= 0.0 || ticks_per_sec <= 0.0 {
        return None;
    }
    let share = ticks as f64 / ticks_per_sec / (wall * cpus.max(1) as f64);
    Some(share.clamp(0.0, 1.0))
}

/// The formula of the module docs. Counts are −1 when unknown.
pub fn load(session_num: i64, handle_num: i64, cpu: Option<f64>) -> Option<u64> {
    if session_num < 0 && handle_num < 0 && cpu.is_none() {
        return None;
    }
    let h = handle_num.max(0) as f64;
    let s = session_num.max(0) as f64;
    let c = cpu.unwrap_or(0.0).clamp(0.0, 1.0);
    Some((h + s / 10.0 + 100.0 * c).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line =
            "1234 (jan us) (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 12 0 100 0 0";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn reads_own_process() {
        let s = read_cpu_ticks(std::process::id()).expect("own /proc/self/stat");
        assert!(s.ticks < u64::MAX);
        assert_eq!(read_cpu_ticks(u32::MAX), None);
    }

    #[test]
    fn cpu_share_math() {
        let t0 = Instant::now();
        let a = CpuSample { ticks: 100, at: t0 };
        let b = CpuSample {
            ticks: 300,
            at: t0 + Duration::from_secs(2),
        };
        // 200 ticks at 100/s = 2 s CPU in 2 s wall on 2 CPUs = 50 %
        assert_eq!(cpu_share(a, b, 100.0, 2), Some(0.5));
        assert_eq!(cpu_share(b, a, 100.0, 2), None);
        let c = CpuSample {
            ticks: 50,
            at: b.at,
        };
        assert_eq!(cpu_share(a, c, 100.0, 2), None);
        let d = CpuSample {
            ticks: 10_000,
            at: b.at,
        };
        assert_eq!(cpu_share(a, d, 100.0, 1), Some(1.0));
    }

    #[test]
    fn load_formula() {
        assert_eq!(load(-1, -1, None), None);
        assert_eq!(load(2, 10, None), Some(10));
        assert_eq!(load(5, 10, None), Some(11)); // 10 + 0.5 rounds up
        assert_eq!(load(1, 3, Some(0.25)), Some(28));
        assert_eq!(load(-1, -1, Some(0.5)), Some(50));
        assert_eq!(load(0, 0, Some(2.0)), Some(100));
    }
}
