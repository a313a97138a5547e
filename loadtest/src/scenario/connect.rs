//! connect: a storm of short lives — WebSocket connect, `create`, `attach` echotest,
//! `destroy`, close — in a loop per client. `cycle` is the latency of the whole life.

use std::time::Instant;

use super::Shared;
use crate::client::{Client, Result};

pub async fn unit(i: usize, sh: &Shared) {
    let _up = sh.client_up();
    while !sh.stopping() {
        match cycle(i, sh).await {
            Ok(()) => sh.pause(sh.plan.think).await,
            Err(e) => {
                sh.fail(&e);
                sh.backoff().await;
            }
        }
    }
}

async fn cycle(i: usize, sh: &Shared) -> Result<()> {
    let t0 = Instant::now();
    let mut c = Client::connect(sh.url(i), sh.rec.clone(), sh.plan.timeout).await?;
    let sid = c.create().await?;
    c.attach(sid, super::echotest::PLUGIN).await?;
    c.destroy(sid).await?;
    c.close().await;
    sh.rec.op("cycle", t0);
    Ok(())
}
