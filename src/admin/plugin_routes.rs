//! Admin routes other proxies call in multi-proxy mode: `POST /plugins/videocall/{user}`
//! (an incoming call for a local user, spec 05 §6) and `POST /plugins/p2pcall/{user}`
//! (a message for a local p2pcall user, spec 06 §7). The work runs on a shard; the HTTP
//! thread awaits its answer with a deadline, as a future, so neither the control loop nor
//! other connections wait while a shard works. Never blocks.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_channel::oneshot;
use serde_json::{json, Value};

use super::http::Reply;
use super::server::ReplyFuture;
use crate::api::error::JanusError;
use crate::core::shard::ShardMsg;
use crate::plugins::call::valid_username;
use crate::plugins::directory::partition_of;
use crate::plugins::p2pcall::{self, Item};
use crate::plugins::videocall;
use crate::runtime::mailbox::MailboxSender;

/// How long a shard may take to answer (it may attach a backend handle).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

fn janus_error(e: &JanusError) -> Reply {
    let status = if (200..600).contains(&e.code) {
        e.code
    } else {
        500
    };
    Reply::error(status, "JanusCloudError", e.reason.clone())
}

/// Starts `work` on the shard holding `user`'s directory entry; its answer arrives on the
/// returned channel (`None`: no such shard).
fn on_shard<T: Send + 'static>(
    peers: &[MailboxSender<ShardMsg>],
    user: &str,
    work: impl FnOnce(std::rc::Rc<crate::core::shard::Shard>) -> crate::plugins::LocalFuture<T>
        + Send
        + 'static,
) -> Option<oneshot::Receiver<T>> {
    let (tx, rx) = oneshot::channel();
    let target = partition_of(user, peers.len());
    peers.get(target)?.send(ShardMsg::Run(Box::new(move |s| {
        let fut = work(s.clone());
        monoio::spawn(async move {
            let _ = tx.send(fut.await);
        });
    })));
    Some(rx)
}

/// Waits for a shard's answer, at most [`ANSWER_TIMEOUT`].
async fn answer_of<T>(rx: Option<oneshot::Receiver<T>>) -> Option<T> {
    tokio::time::timeout(ANSWER_TIMEOUT, rx?).await.ok()?.ok()
}

fn ready(r: Reply) -> ReplyFuture {
    Box::pin(async move { r })
}

fn user_from(path: &str, prefix: &str) -> Option<String> {
    let user = path.strip_prefix(prefix)?;
    valid_username(user).then(|| user.to_string())
}

/// `POST /plugins/videocall/{username}`.
pub fn videocall_incoming(
    peers: &[MailboxSender<ShardMsg>],
    path: &str,
    params: &BTreeMap<String, String>,
) -> ReplyFuture {
    let Some(callee) = user_from(path, "/plugins/videocall/") else {
        return ready(Reply::error(
            400,
            "ValidationError",
            "invalid username in path",
        ));
    };
    let caller = params.get("caller_username").cloned().unwrap_or_default();
    if !valid_username(&caller) {
        return ready(Reply::error(
            400,
            "ValidationError",
            "invalid caller_username",
        ));
    }
    let server = params
        .get("backend_server_url")
        .cloned()
        .unwrap_or_default();
    if server.is_empty() || server.len() > 1024 {
        return ready(Reply::error(
            400,
            "ValidationError",
            "invalid backend_server_url",
        ));
    }
    let target = callee.clone();
    let rx = on_shard(peers, &target, move |shard| {
        Box::pin(
            async move { videocall::incoming_from_proxy(&shard, callee, caller, server).await },
        )
    });
    Box::pin(async move {
        match answer_of(rx).await {
            Some(Ok(alias)) => Reply::json(200, &json!({"backend_username": alias})),
            Some(Err(e)) => janus_error(&e),
            None => Reply::error(504, "Timeout", "the callee's shard did not answer in time"),
        }
    })
}

/// `POST /plugins/p2pcall/{username}`.
pub fn p2pcall_relay(
    peers: &[MailboxSender<ShardMsg>],
    path: &str,
    params: &BTreeMap<String, String>,
) -> ReplyFuture {
    let Some(to) = user_from(path, "/plugins/p2pcall/") else {
        return ready(Reply::error(
            400,
            "ValidationError",
            "invalid username in path",
        ));
    };
    let from = params.get("from_user").cloned().unwrap_or_default();
    if !valid_username(&from) {
        return ready(Reply::error(400, "ValidationError", "invalid from_user"));
    }
    let item = params
        .get("async_event")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| Item::from_json(&v));
    let Some(item) = item else {
        return ready(Reply::error(400, "ValidationError", "invalid async_event"));
    };
    let target = to.clone();
    let rx = on_shard(peers, &target, move |shard| {
        Box::pin(async move { p2pcall::from_proxy(&shard, to, item).await })
    });
    Box::pin(async move {
        match answer_of(rx).await {
            Some(Ok(())) => Reply::empty(),
            Some(Err(e)) => janus_error(&e),
            None => Reply::error(
                504,
                "Timeout",
                "the receiver's shard did not answer in time",
            ),
        }
    })
}
