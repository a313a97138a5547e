//! Handle-level verbs: `attach`, `detach`, `hangup`, `message`, `trickle`. Validation is
//! done here; what a verb means is the plugin's business.

use std::rc::Rc;

use serde_json::value::RawValue;

use super::session::{ConnRef, Handle};
use crate::api::error::{Code, JanusError};
use crate::api::json::{self, Kind};
use crate::api::reply;
use crate::api::request::Request;
use crate::core::shard::Shard;
use std::any::Any;

use super::host::HandleCtx;
use super::plugin::{AnyPlugin, PluginMessage, Respond, Trickle};

use super::session_verbs::MAX_ID;

pub fn attach(shard: &Rc<Shard>, req: &Request, from: ConnRef) {
    let (sid, transaction) = (req.session_id, req.transaction);
    let fail = |e: JanusError| shard.reply_error(from, sid, Some(transaction), &e);
    let package = match req.str_field("plugin") {
        Ok(Some(p)) => p,
        Ok(None) => return fail(JanusError::missing("plugin")),
        Err(e) => return fail(e),
    };
    let Some(plugin) = shard.plugin(&package) else {
        return fail(JanusError::no_plugin(&package));
    };
    let opaque_id: Option<Rc<str>> = match req.str_field("opaque_id") {
        Ok(o) => o.map(|o| o.as_ref().into()),
        Err(e) => return fail(e),
    };
    let max = shard.config.limits.max_handles_per_session;
    let handle_id = {
        let mut sessions = shard.sessions.borrow_mut();
        let Some(s) = sessions.get_mut(sid) else {
            drop(sessions);
            return fail(JanusError::no_session(sid));
        };
        if s.handles.len() + s.attaching as usize >= max {
            drop(sessions);
            return fail(JanusError::new(
                Code::PluginAttach,
                format!("Too many handles in this session (max {max})"),
            ));
        }
        s.attaching += 1;
        loop {
            let id = fastrand::u64(1..=MAX_ID);
            if !s.handles.contains_key(&id) {
                break id;
            }
        }
    };
    let ctx = HandleCtx::new(shard, sid, handle_id, opaque_id.clone());
    let transaction = transaction.to_owned();
    let shard = shard.clone();
    monoio::spawn(async move {
        let attached = plugin.attach(ctx.clone()).await;
        if let Some(s) = shard.sessions.borrow_mut().get_mut(sid) {
            s.attaching = s.attaching.saturating_sub(1);
        }
        match attached {
            Ok(state) => {
                // Kept as a clone, for the cluster's record below.
                let kept = state.clone();
                let inserted = match shard.sessions.borrow_mut().get_mut(sid) {
                    Some(s) => {
                        s.handles.insert(
                            handle_id,
                            Handle {
                                id: handle_id,
                                plugin,
                                opaque_id: opaque_id.clone(),
                                state,
                            },
                        );
                        None
                    }
                    None => Some(state),
                };
                if let Some(state) = inserted {
                    // The session went away while the backend attached.
                    drop(kept);
                    plugin.detach(&ctx, state);
                    let e = JanusError::new(Code::PluginAttach, "Session destroyed during attach");
                    return shard.reply_error(from, sid, Some(&transaction), &e);
                }
                shard.metrics.handles.inc();
                // In a cluster the handle is announced once another proxy could adopt it.
                let written = super::cluster::handle_attached(
                    &shard,
                    sid,
                    handle_id,
                    plugin,
                    opaque_id.as_deref(),
                    &kept,
                );
                drop(kept);
                super::cluster::written(written).await;
                shard.deliver(from, reply::attached(sid, &transaction, handle_id));
            }
            Err(e) => shard.reply_error(from, sid, Some(&transaction), &e),
        }
    });
}

/// The plugin, context and state of a handle, cloned out of the session table so that
/// plugin callbacks run without a borrow of it.
fn lookup(
    shard: &Rc<Shard>,
    sid: u64,
    hid: u64,
) -> Option<(&'static dyn AnyPlugin, HandleCtx, Rc<dyn Any>)> {
    let sessions = shard.sessions.borrow();
    let h = sessions.get(sid)?.handles.get(&hid)?;
    Some((
        h.plugin,
        HandleCtx::new(shard, sid, hid, h.opaque_id.clone()),
        h.state.clone(),
    ))
}

/// Answers a handle-level request with `kind` (`ack`/`success`) or the error.
fn responder(shard: &Rc<Shard>, req: &Request, from: ConnRef, kind: &'static str) -> Respond {
    let shard = shard.clone();
    let sid = req.session_id;
    let transaction = req.transaction.to_owned();
    Box::new(move |r| {
        let frame = match r {
            Ok(()) => reply::session_reply(kind, sid, &transaction),
            Err(e) => {
                shard.metrics.error(e.code);
                reply::error(sid, Some(&transaction), &e)
            }
        };
        shard.deliver(from, frame);
    })
}

pub fn detach(shard: &Rc<Shard>, req: &Request, from: ConnRef) {
    let (sid, hid) = (req.session_id, req.handle_id);
    let removed = shard
        .sessions
        .borrow_mut()
        .get_mut(sid)
        .and_then(|s| s.handles.remove(&hid));
    let Some(h) = removed else {
        return shard.reply_error(
            from,
            sid,
            Some(req.transaction),
            &JanusError::no_handle(sid, hid),
        );
    };
    let ctx = HandleCtx::new(shard, sid, hid, h.opaque_id.clone());
    shard.metrics.handles.dec();
    super::cluster::handle_gone(shard, sid, hid);
    // Janus 1.1.2 order: the reply, then the `detached` event.
    shard.deliver(from, reply::session_reply("success", sid, req.transaction));
    ctx.push(reply::handle_event("detached", ctx.addr(), None));
    h.plugin.detach(&ctx, h.state);
}

pub fn hangup(shard: &Rc<Shard>, req: &Request, from: ConnRef) {
    let respond = responder(shard, req, from, "success");
    match lookup(shard, req.session_id, req.handle_id) {
        Some((plugin, ctx, state)) => plugin.hangup(&ctx, &state, respond),
        None => respond(Err(JanusError::no_handle(req.session_id, req.handle_id))),
    }
}

fn object_field<'a>(req: &Request<'a>, key: &str) -> Result<Option<&'a RawValue>, JanusError> {
    match req.get(key) {
        None => Ok(None),
        Some(v) if json::kind(v) == Kind::Null => Ok(None),
        Some(v) if json::kind(v) == Kind::Object => Ok(Some(v)),
        Some(_) => Err(JanusError::wrong_type(key, "an object")),
    }
}

pub fn message(shard: &Rc<Shard>, req: &Request, from: ConnRef) {
    let (sid, transaction) = (req.session_id, req.transaction);
    let fail = |e: JanusError| shard.reply_error(from, sid, Some(transaction), &e);
    let body = match object_field(req, "body") {
        Ok(Some(b)) => b,
        Ok(None) => return fail(JanusError::missing("body")),
        Err(e) => return fail(e),
    };
    let jsep = match object_field(req, "jsep") {
        Ok(j) => j,
        Err(e) => return fail(e),
    };
    let Some((plugin, ctx, state)) = lookup(shard, sid, req.handle_id) else {
        return fail(JanusError::no_handle(sid, req.handle_id));
    };
    let mut msg = PluginMessage {
        transaction,
        body,
        jsep,
        answer: None,
    };
    if plugin.is_async(&msg) {
        shard.deliver(from, reply::session_reply("ack", sid, transaction));
        plugin.message(&ctx, &state, msg);
        return;
    }
    // The answer the plugin may give later (it needs another shard or a backend first).
    let (later, txn, package) = (
        shard.clone(),
        transaction.to_string(),
        plugin.meta().package,
    );
    let asker = ctx.clone();
    msg.answer = Some(Box::new(move |data: &str| {
        later.deliver(
            from,
            reply::plugin_success(asker.addr(), &txn, package, data),
        );
    }));
    if let Some(data) = plugin.message(&ctx, &state, msg) {
        shard.deliver(
            from,
            reply::plugin_success(ctx.addr(), transaction, plugin.meta().package, &data),
        );
    }
}

pub fn trickle(shard: &Rc<Shard>, req: &Request, from: ConnRef) {
    let respond = responder(shard, req, from, "ack");
    let present = |k| req.get(k).filter(|v| json::kind(v) != Kind::Null);
    let trickle = match (present("candidate"), present("candidates")) {
        (None, None) => return respond(Err(JanusError::missing("candidate|candidates"))),
        (Some(_), Some(_)) => {
            return respond(Err(JanusError::new(
                Code::InvalidJson,
                "Can't have both candidate and candidates",
            )))
        }
        (Some(c), None) if json::kind(c) != Kind::Object => {
            return respond(Err(JanusError::wrong_type("candidate", "an object")))
        }
        (None, Some(c)) if json::kind(c) != Kind::Array => {
            return respond(Err(JanusError::wrong_type("candidates", "an array")))
        }
        (Some(c), None) => Trickle {
            field: "candidate",
            value: c,
        },
        (None, Some(c)) => Trickle {
            field: "candidates",
            value: c,
        },
    };
    match lookup(shard, req.session_id, req.handle_id) {
        Some((plugin, ctx, state)) => plugin.trickle(&ctx, &state, trickle, respond),
        None => respond(Err(JanusError::no_handle(req.session_id, req.handle_id))),
    }
}
