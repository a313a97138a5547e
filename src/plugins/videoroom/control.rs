//! The plugin's own handles on the backends: one VideoRoom handle per (shard, backend
//! server), owned by the plugin (its events go to a tap, not to a client), used for the
//! synchronous requests that manage backend rooms and mirrors (`create`, `destroy`,
//! `add_remote_publisher`, `publish_remotely`, ...). Janus answers those on its request
//! thread, so one handle serves any number of them at once.

use std::cell::RefCell;
use std::rc::Rc;

use ahash::AHashMap;
use futures_channel::oneshot;
use serde_json::Value;
use tracing::debug;

use super::error::{VrError, VrResult, UNKNOWN_ERROR};
use super::PACKAGE;
use crate::api::error::{Code, JanusError};
use crate::backend::link::TapEvent;
use crate::plugins::{BackendHandle, Host};

/// Callers waiting for a control handle being attached.
type Waiters = Vec<oneshot::Sender<VrResult<Rc<BackendHandle>>>>;

/// This shard's control handles, by backend URL.
#[derive(Default)]
pub struct Controls {
    ready: RefCell<AHashMap<String, Rc<BackendHandle>>>,
    /// Callers waiting while a handle is being attached.
    attaching: RefCell<AHashMap<String, Waiters>>,
}

/// This shard's control handle on the server at `url`, attached on first use.
///
/// # Errors
/// The server is unknown here or down, or refused the attach.
pub async fn handle(host: &Host, url: &str) -> VrResult<Rc<BackendHandle>> {
    let controls = host.slot::<Controls>();
    if let Some(h) = controls.ready.borrow().get(url) {
        return Ok(h.clone());
    }
    let (tx, rx) = oneshot::channel();
    let first = {
        let mut waiting = controls.attaching.borrow_mut();
        let list = waiting.entry(url.to_string()).or_default();
        list.push(tx);
        list.len() == 1
    };
    if first {
        let result = attach(host, url).await;
        if let Ok(h) = &result {
            controls
                .ready
                .borrow_mut()
                .insert(url.to_string(), h.clone());
        }
        let waiters = controls
            .attaching
            .borrow_mut()
            .remove(url)
            .unwrap_or_default();
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
    rx.await
        .unwrap_or_else(|_| Err(VrError::new(UNKNOWN_ERROR, "control handle attach dropped")))
}

async fn attach(host: &Host, url: &str) -> VrResult<Rc<BackendHandle>> {
    let link = host.backend_by_url(url).ok_or_else(|| {
        VrError::from(JanusError::new(
            Code::BadGateway,
            format!("Backend server {url} unknown"),
        ))
    })?;
    // The handle forgets itself when Janus drops it or the link goes down, so that the
    // next request attaches a fresh one. A link going down means the server's rooms are
    // gone with its session: this shard's rooms forget it (the shards that own rooms on
    // a server all have a control handle there, since they made those rooms).
    let (me, key) = (host.clone(), url.to_string());
    let tap = Box::new(move |ev: TapEvent<'_>| {
        if let TapEvent::Gone = ev {
            debug!(server = %key, "videoroom control handle gone");
            me.slot::<Controls>().ready.borrow_mut().remove(&key);
            let up = me.backend_by_url(&key).is_some_and(|l| l.is_up());
            if !up {
                let (host, url) = (me.clone(), key.clone());
                // Not from inside the link's event dispatch.
                monoio::spawn(async move { super::rooms::server_lost(&host, &url) });
            }
        }
    });
    let capacity = host.config().limits.max_queued_requests_per_handle;
    let h = BackendHandle::attach_own(&link, PACKAGE, tap, capacity).await?;
    Ok(Rc::new(h))
}

/// Sends a synchronous VideoRoom request on the control handle of `url`: its
/// `plugindata.data`, or its error as a [`VrError`].
///
/// # Errors
/// The backend's VideoRoom error, or 502/503/504 when it cannot be reached.
pub async fn request(host: &Host, url: &str, body: &Value) -> VrResult<Value> {
    let h = handle(host, url).await?;
    let body = body.to_string();
    let reply = h
        .link
        .call("message", Some(h.id), &[("body", &body)], false, |m| {
            let data = m
                .get("plugindata")
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .map(|mut p| p["data"].take())
                .unwrap_or(Value::Null);
            Ok(data)
        })
        .await?;
    super::error::result_of(reply)
}
