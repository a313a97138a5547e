//! echotest: each client holds one session with an EchoTest handle and sends
//! `{"audio":true}` back to back (ack + event per request), with the think time between.

use std::time::Instant;

use serde_json::json;

use super::Shared;
use crate::client::{Client, Reply, Result};

pub const PLUGIN: &str = "janus.plugin.echotest";

pub async fn unit(i: usize, sh: &Shared) {
    while !sh.stopping() {
        match session(i, sh).await {
            Ok(()) => return,
            Err(e) => {
                sh.fail(&e);
                sh.backoff().await;
            }
        }
    }
}

async fn session(i: usize, sh: &Shared) -> Result<()> {
    let plan = &sh.plan;
    let mut c = Client::connect(sh.url(i), sh.rec.clone(), plan.timeout).await?;
    let sid = c.create().await?;
    let hid = c.attach(sid, PLUGIN).await?;
    let _up = sh.client_up();
    let mut next_keepalive = Instant::now() + plan.keepalive;
    while !sh.stopping() {
        c.request(
            "message",
            json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"audio": true}}),
            Reply::AckAndEvent,
        )
        .await?;
        c.clear_stash();
        if Instant::now() >= next_keepalive {
            c.keepalive(sid).await?;
            next_keepalive = Instant::now() + plan.keepalive;
        }
        sh.pause(plan.think).await;
    }
    c.destroy(sid).await?;
    c.close().await;
    Ok(())
}
