//! Workload statistics (spec 03 §5): session and handle counts from the Janus Admin API
//! (`janus-admin-protocol`), and the CPU share of the supervised Janus process, every
//! `statistic_interval` s.
//!
//! # How few requests
//!
//! Janus 1.1.2's Admin API has no request returning a total handle count: `info` and
//! `get_status` carry settings only, `list_sessions` returns session ids, and `list_handles`
//! works per session. The one exception is `loops_info`: with static event loops enabled
//! (`event_loops = N` in janus.jcfg) it returns `[{"id", "handles"}, ...]`, and its
//! `handles` counters cover every attached handle. So each round sends, pipelined on one
//! socket (one round trip):
//!
//! * `list_sessions` + `loops_info` → `session_num = len(sessions)`, and when the loop list
//!   is non-empty, `handle_num = Σ handles`. Two requests, whatever the load.
//! * Only when Janus runs without static loops (the default; the empty loop list tells us,
//!   and we remember it) a second pipelined batch of `list_handles`, one per session, follows
//!   (one more round trip). Behind janus-proxy a Janus has about one session per proxy, so
//!   this stays small; enable `event_loops` in Janus to make it constant.
//!
//! A session that disappears between the two batches counts 0 handles. Any other failure
//! makes both counts −1 (unknown) and drops the socket.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::{debug, info, warn};

use crate::janus_ws::{admin_request, check_reply, JanusWs, WsError};
use crate::load::{self, CpuSample};
use crate::state::{Shared, Wake};

/// How handles are counted, learnt from the first answer to `loops_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleCounting {
    /// Not known yet: ask `loops_info`.
    Unknown,
    /// Static event loops: `loops_info` gives the totals.
    StaticLoops,
    /// No static loops: one `list_handles` per session.
    PerSession,
}

/// Session ids from a `list_sessions` reply.
///
/// # Errors
/// The reply has no `sessions` array.
pub fn parse_sessions(reply: &Value) -> Result<Vec<u64>, WsError> {
    reply
        .get("sessions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .ok_or_else(|| WsError::BadReply(format!("no sessions array in {reply}")))
}

/// Σ `handles` over a `loops_info` reply; `None` when the loop list is empty (static loops
/// disabled).
///
/// # Errors
/// The reply has no `loops` array.
pub fn parse_loops(reply: &Value) -> Result<Option<i64>, WsError> {
    let loops = reply
        .get("loops")
        .and_then(Value::as_array)
        .ok_or_else(|| WsError::BadReply(format!("no loops array in {reply}")))?;
    if loops.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        loops
            .iter()
            .filter_map(|l| l.get("handles").and_then(Value::as_i64))
            .sum(),
    ))
}

/// Number of handles in a `list_handles` reply; 0 for an error reply (session gone).
pub fn count_handles(reply: &Value) -> i64 {
    reply
        .get("handles")
        .and_then(Value::as_array)
        .map_or(0, |a| a.len() as i64)
}

/// The Admin API side: one connection and what it learnt about Janus.
pub struct AdminClient {
    url: String,
    secret: String,
    timeout: Duration,
    conn: Option<JanusWs>,
    pub counting: HandleCounting,
}

impl AdminClient {
    pub fn new(url: String, secret: String, timeout: Duration) -> Self {
        AdminClient {
            url,
            secret,
            timeout,
            conn: None,
            counting: HandleCounting::Unknown,
        }
    }

    /// One statistics round: `(session_num, handle_num)`. Drops the connection on failure.
    ///
    /// # Errors
    /// Connection, timeout, Janus error (wrong `admin_secret` gives 403) or a bad reply.
    pub fn collect(&mut self) -> Result<(i64, i64), WsError> {
        let r = self.collect_inner();
        if r.is_err() {
            if let Some(c) = self.conn.take() {
                c.close();
            }
        }
        r
    }

    fn collect_inner(&mut self) -> Result<(i64, i64), WsError> {
        if self.conn.is_none() {
            self.conn = Some(JanusWs::connect(
                &self.url,
                "janus-admin-protocol",
                self.timeout,
            )?);
        }
        let ws = self.conn.as_mut().ok_or(WsError::Closed)?;
        let mut batch = vec![admin_request("list_sessions", &self.secret)];
        if self.counting != HandleCounting::PerSession {
            batch.push(admin_request("loops_info", &self.secret));
        }
        let mut replies = ws.requests_lenient(batch)?.into_iter();
        let first = check_reply(replies.next().ok_or(WsError::Closed)?)?;
        let sessions = parse_sessions(&first)?;
        if let Some(loops) = replies.next() {
            // an error here (a Janus without `loops_info`) also means: count per session
            match check_reply(loops).and_then(|l| parse_loops(&l)) {
                Ok(Some(handles)) => {
                    self.counting = HandleCounting::StaticLoops;
                    return Ok((sessions.len() as i64, handles));
                }
                Ok(None) | Err(_) => {
                    info!("Janus has no static event loops: counting handles with one list_handles per session");
                    self.counting = HandleCounting::PerSession;
                }
            }
        }
        let batch = sessions
            .iter()
            .map(|s| {
                let mut r = admin_request("list_handles", &self.secret);
                r.insert("session_id".into(), Value::from(*s));
                r
            })
            .collect();
        let replies = ws.requests_lenient(batch)?;
        Ok((
            sessions.len() as i64,
            replies.iter().map(count_handles).sum(),
        ))
    }
}

/// Samples the CPU time of whichever process the supervisor runs now.
#[derive(Default)]
pub struct CpuMeter {
    last: Option<(u32, CpuSample)>,
}

impl CpuMeter {
    /// CPU share since the previous call for the same pid; `None` on the first call, after
    /// a restart or without a pid.
    pub fn sample(&mut self, pid: Option<u32>) -> Option<f64> {
        let Some(pid) = pid else {
            self.last = None;
            return None;
        };
        let cur = load::read_cpu_ticks(pid)?;
        let share = match self.last {
            Some((p, prev)) if p == pid => {
                load::cpu_share(prev, cur, load::clock_ticks_per_sec(), load::cpu_count())
            }
            _ => None,
        };
        self.last = Some((pid, cur));
        share
    }
}

/// The statistics loop. `admin` is `None` when `admin_ws_port` = 0 (CPU only).
pub fn run(shared: Arc<Shared>, interval: Duration, mut admin: Option<AdminClient>) {
    let mut cpu = CpuMeter::default();
    loop {
        if shared.wait(interval, None) == Wake::Stopping {
            break;
        }
        let pid = shared.snapshot().watcher.and_then(|w| w.pid);
        let share = cpu.sample(pid);
        shared.update(|s| {
            s.cpu = share;
            false
        });
        let Some(client) = admin.as_mut() else {
            continue;
        };
        let (sessions, handles) = match client.collect() {
            Ok(c) => c,
            Err(e) => {
                warn!("statistics from {} failed: {e}", client.url);
                (-1, -1)
            }
        };
        if shared.set_counts(sessions, handles) {
            info!("statistics: session_num {sessions}, handle_num {handles}");
        } else {
            debug!("statistics: session_num {sessions}, handle_num {handles} (unchanged)");
        }
    }
    if let Some(c) = admin.and_then(|a| a.conn) {
        c.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_replies() {
        let r = json!({"janus": "success", "transaction": "t", "sessions": [1, 2, 3]});
        assert_eq!(parse_sessions(&r).ok(), Some(vec![1, 2, 3]));
        assert!(parse_sessions(&json!({"janus": "success"})).is_err());
        let r = json!({"janus": "success", "loops": [{"id": 1, "handles": 2}, {"id": 2, "handles": 5}]});
        assert_eq!(parse_loops(&r).ok(), Some(Some(7)));
        assert_eq!(parse_loops(&json!({"loops": []})).ok(), Some(None));
        assert!(parse_loops(&json!({})).is_err());
        assert_eq!(count_handles(&json!({"handles": [10, 11]})), 2);
        assert_eq!(
            count_handles(&json!({"janus": "error", "error": {"code": 458}})),
            0
        );
    }

    #[test]
    fn cpu_meter_needs_two_samples_of_one_pid() {
        let mut m = CpuMeter::default();
        let me = std::process::id();
        assert_eq!(m.sample(Some(me)), None);
        let share = m.sample(Some(me));
        assert!(share.is_none_or(|s| (0.0..=1.0).contains(&s)));
        assert_eq!(m.sample(None), None);
        assert_eq!(m.sample(Some(me)), None);
    }
}
