//! idle: sessions that only send keepalives, to measure memory per held session. Each unit is
//! one connection with `--sessions-per-conn` sessions; `--clients` counts sessions; with
//! `--attach PLUGIN` each session also holds one handle of that plugin. Keepalives
//! of a connection go out together every `--keepalive` seconds, the first at a random point
//! of the interval so the load is spread.

use std::time::{Duration, Instant};

use serde_json::json;

use super::Shared;
use crate::client::{Client, Result};

pub async fn unit(i: usize, sh: &Shared) {
    while !sh.stopping() {
        match hold(i, sh).await {
            Ok(()) => return,
            Err(e) => {
                sh.fail(&e);
                sh.backoff().await;
            }
        }
    }
}

/// Sessions connection `i` holds: the last connection gets the remainder.
pub fn sessions_of(i: usize, clients: usize, per_conn: usize) -> usize {
    let per_conn = per_conn.max(1);
    clients.saturating_sub(i * per_conn).min(per_conn)
}

async fn hold(i: usize, sh: &Shared) -> Result<()> {
    let plan = &sh.plan;
    let mut c = Client::connect(sh.url(i), sh.rec.clone(), plan.timeout).await?;
    let mut sessions = Vec::new();
    for _ in 0..sessions_of(i, plan.clients, plan.sessions_per_conn) {
        if sh.stopping() {
            break;
        }
        let sid = c.create().await?;
        if let Some(plugin) = &plan.attach {
            c.attach(sid, plugin).await?;
        }
        sessions.push(sid);
    }
    let _up = sh.client_up();
    let ka = plan.keepalive.max(Duration::from_millis(100));
    let mut next = Instant::now() + ka.mul_f64(fastrand::f64());
    while !sh.stopping() {
        sh.pause(next.saturating_duration_since(Instant::now()))
            .await;
        if sh.stopping() {
            break;
        }
        for &sid in &sessions {
            c.fire(
                "keepalive",
                json!({"janus": "keepalive", "session_id": sid}),
            )
            .await?;
        }
        c.drain_acks("keepalive").await?;
        c.clear_stash();
        next += ka;
    }
    for sid in sessions {
        c.destroy(sid).await?;
    }
    c.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_split_over_connections() {
        assert_eq!(sessions_of(0, 25, 10), 10);
        assert_eq!(sessions_of(2, 25, 10), 5);
        assert_eq!(sessions_of(3, 25, 10), 0);
        assert_eq!(sessions_of(4, 5, 0), 1);
    }
}
