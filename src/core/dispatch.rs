//! From a client's text frame to the verb handlers: split the frame into documents, parse
//! each, send it to the shard that owns its session, then apply Janus's path rules
//! (root, session, handle level) in Janus's order: secret, session, handle, verb.
//!
//! Order: a connection's requests are handled in arrival order. While one of them is
//! away on another shard, later ones wait in the connection's queue; the owner shard
//! sends `Done` after its reply, through the same mailbox, so the reply arrives first.

use std::rc::Rc;
use std::time::Instant;

use super::session::ConnRef;
use super::{cluster, handle_verbs, session_verbs};
use crate::api::error::{Code, JanusError};
use crate::api::json::RawObject;
use crate::api::reply;
use crate::api::request::{invalid_json, Request, Verb};
use crate::core::shard::{Shard, ShardMsg};

/// Handles one text frame from a client connection of this shard. Each JSON document
/// of the frame is parsed once, straight into its fields; the document's text is kept
/// only for the rare request that must wait or travel to another shard.
pub fn handle_frame(shard: &Rc<Shard>, text: &str, from: ConnRef) {
    let max_depth = shard.config.limits.max_json_depth;
    if crate::api::json::too_deep(text.as_bytes(), max_depth) {
        let why = format!("JSON nested deeper than {max_depth} levels");
        shard.reply_error(from, 0, None, &invalid_json(&why));
        return;
    }
    let mut docs = serde_json::Deserializer::from_str(text).into_iter::<RawObject>();
    let mut start = 0;
    let mut any = false;
    while let Some(parsed) = docs.next() {
        any = true;
        let end = docs.byte_offset();
        let doc = text[start..end].trim();
        start = end;
        match parsed {
            Ok(fields) => submit(shard, doc, fields, from),
            Err(e) => {
                // The rest of the frame cannot be delimited any more.
                shard.reply_error(from, 0, None, &invalid_json(&e.to_string()));
                return;
            }
        }
    }
    if !any {
        shard.reply_error(from, 0, None, &invalid_json("empty message"));
    }
}

/// Routes a document now, or queues it behind a request still away on another shard.
fn submit(shard: &Rc<Shard>, doc: &str, fields: RawObject, from: ConnRef) {
    let waits = match shard.conns.borrow().get(&from.id) {
        Some(c) if c.inflight.get() > 0 => {
            let bytes = c.queued_bytes.get() + doc.len();
            if bytes > shard.config.limits.max_queued_bytes_per_connection {
                Some(Err(()))
            } else {
                c.queued_bytes.set(bytes);
                c.queued.borrow_mut().push_back(doc.to_owned());
                Some(Ok(()))
            }
        }
        _ => None,
    };
    match waits {
        Some(Ok(())) => return,
        // Only a client piling up requests behind one still away on another shard.
        Some(Err(())) => {
            let e = JanusError::new(
                Code::ServiceUnavailable,
                "Too many requests waiting on this connection",
            );
            return shard.reply_error(from, 0, None, &e);
        }
        None => {}
    }
    match Request::from_fields(fields) {
        Ok(req) => route_request(shard, doc, req, from),
        Err(rej) => shard.reply_error(from, rej.session_id, rej.transaction, &rej.error),
    }
}

/// A request forwarded by this connection was handled: route what waited behind it.
pub fn forwarded_done(shard: &Rc<Shard>, conn: u64) {
    if let Some(c) = shard.conns.borrow().get(&conn) {
        c.inflight.set(c.inflight.get().saturating_sub(1));
    }
    let from = ConnRef {
        shard: shard.id as u16,
        id: conn,
    };
    loop {
        let next = match shard.conns.borrow().get(&conn) {
            Some(c) if c.inflight.get() == 0 => {
                let doc = c.queued.borrow_mut().pop_front();
                if let Some(d) = &doc {
                    c.queued_bytes
                        .set(c.queued_bytes.get().saturating_sub(d.len()));
                }
                doc
            }
            _ => None,
        };
        // Stops when the queue is empty or a routed request went away again.
        let Some(doc) = next else { return };
        route(shard, &doc, from);
    }
}

/// A request of `from` whose answer comes later, made here: the connection's next
/// requests wait for it (see [`release`]), as behind a request on another shard.
pub fn hold(shard: &Shard, from: ConnRef) {
    if from.shard as usize == shard.id {
        if let Some(c) = shard.conns.borrow().get(&from.id) {
            c.inflight.set(c.inflight.get() + 1);
        }
    }
}

/// The answer of a held request (or of one forwarded here) went out: the connection's
/// next requests go on.
pub fn release(shard: &Rc<Shard>, from: ConnRef) {
    if from.shard as usize == shard.id {
        forwarded_done(shard, from.id);
    } else {
        shard.forward(from.shard as usize, ShardMsg::Done { conn: from.id });
    }
}

/// Handles a request another shard forwarded here, then tells that shard it is done.
pub fn handle_forwarded(shard: &Rc<Shard>, doc: &str, from: ConnRef) {
    let done_now = match Request::parse(doc) {
        Ok(req) => process(shard, req, from),
        Err(rej) => {
            shard.reply_error(from, rej.session_id, rej.transaction, &rej.error);
            true
        }
    };
    // A request answered later (`process` false) says `Done` itself when answered.
    if done_now {
        shard.forward(from.shard as usize, ShardMsg::Done { conn: from.id });
    }
}

/// Processes one JSON document here, or forwards it to the shard owning its session.
pub fn route(shard: &Rc<Shard>, doc: &str, from: ConnRef) {
    match Request::parse(doc) {
        Ok(req) => route_request(shard, doc, req, from),
        Err(rej) => shard.reply_error(from, rej.session_id, rej.transaction, &rej.error),
    }
}

/// Processes a parsed request here, or forwards its text (`doc`) to the owning shard.
fn route_request(shard: &Rc<Shard>, doc: &str, req: Request, from: ConnRef) {
    // Sessions per connection are counted here, on the connection's shard, whichever
    // shard the session lives on.
    let adds_session = (req.verb == Verb::Create && req.session_id == 0)
        || (req.verb == Verb::Claim && req.session_id != 0);
    let max = shard.config.ws_transport.max_sessions_per_connection;
    if adds_session && shard.sessions_of(from.id) as usize >= max {
        let e = JanusError::new(
            Code::NotAcceptingSessions,
            format!("Too many sessions on this connection (max {max})"),
        );
        return shard.reply_error(from, req.session_id, Some(req.transaction), &e);
    }
    let key = if req.session_id != 0 {
        Some(req.session_id)
    } else if req.verb == Verb::Create {
        session_verbs::requested_id(&req).ok().flatten()
    } else {
        None
    };
    if let Some(key) = key {
        let owner = shard.owner_of(key);
        if owner != shard.id {
            if let Some(c) = shard.conns.borrow().get(&from.id) {
                c.inflight.set(c.inflight.get() + 1);
            }
            shard.forward(
                owner,
                ShardMsg::Request {
                    text: doc.to_owned(),
                    from,
                },
            );
            return;
        }
    }
    process(shard, req, from);
}

/// Applies one request on the shard that owns its session. False when the answer comes
/// later and then [`release`]s the connection: a `claim` of a session this proxy does not
/// know, looked for in the cluster (`cluster::adopt_then_claim`), or a `create` whose
/// record the cluster must hold first.
pub fn process(shard: &Rc<Shard>, req: Request, from: ConnRef) -> bool {
    if req.verb == Verb::Claim
        && req.session_id != 0
        && req.handle_id == 0
        && secret_ok(shard, &req)
        && cluster::wants_adoption(shard, req.session_id)
    {
        cluster::adopt_then_claim(shard, req.session_id, req.transaction.to_owned(), from);
        return false;
    }
    apply(shard, req, from)
}

/// [`process`] once the cluster had its say.
fn apply(shard: &Rc<Shard>, req: Request, from: ConnRef) -> bool {
    let fail = |e: JanusError| shard.reply_error(from, req.session_id, Some(req.transaction), &e);
    if req.session_id == 0 {
        if req.handle_id != 0 {
            // A handle without its session: Janus looks for session 0.
            fail(JanusError::no_session(0));
            return true;
        }
        match req.verb {
            Verb::Info => shard.deliver(from, shard.server_info(req.transaction)),
            Verb::Ping => shard.deliver(from, reply::pong(req.transaction)),
            Verb::Create if !secret_ok(shard, &req) => fail(JanusError::unauthorized()),
            Verb::Create => return session_verbs::create(shard, &req, from),
            _ => fail(JanusError::bad_path(&req.verb_text)),
        }
        return true;
    }
    on_session(shard, req, from);
    true
}

/// Applies a request naming a session.
fn on_session(shard: &Rc<Shard>, req: Request, from: ConnRef) {
    let fail = |e: JanusError| shard.reply_error(from, req.session_id, Some(req.transaction), &e);
    if !secret_ok(shard, &req) {
        return fail(JanusError::unauthorized());
    }
    // Any request naming a live session counts as activity, as in Janus.
    {
        let mut sessions = shard.sessions.borrow_mut();
        let Some(session) = sessions.get_mut(req.session_id) else {
            drop(sessions);
            return fail(JanusError::no_session(req.session_id));
        };
        session.last_activity = Instant::now();
        if req.handle_id != 0 && !session.handles.contains_key(&req.handle_id) {
            drop(sessions);
            return fail(JanusError::no_handle(req.session_id, req.handle_id));
        }
    }
    let on_handle = req.handle_id != 0;
    match req.verb {
        Verb::Keepalive => shard.deliver(
            from,
            reply::session_reply("ack", req.session_id, req.transaction),
        ),
        Verb::Claim => session_verbs::claim(shard, &req, from),
        Verb::Destroy if !on_handle => session_verbs::destroy(shard, &req, from),
        Verb::Attach if !on_handle => handle_verbs::attach(shard, &req, from),
        Verb::Detach | Verb::Hangup | Verb::Message | Verb::Trickle if !on_handle => {
            fail(JanusError::bad_path(&req.verb_text))
        }
        Verb::Destroy | Verb::Attach => fail(JanusError::bad_path(&req.verb_text)),
        Verb::Detach => handle_verbs::detach(shard, &req, from),
        Verb::Hangup => handle_verbs::hangup(shard, &req, from),
        Verb::Message => handle_verbs::message(shard, &req, from),
        Verb::Trickle => handle_verbs::trickle(shard, &req, from),
        Verb::Info | Verb::Ping | Verb::Create | Verb::Unknown => {
            fail(JanusError::unknown_request(&req.verb_text))
        }
    }
}

fn secret_ok(shard: &Shard, req: &Request) -> bool {
    let secret = &shard.config.general.api_secret;
    secret.is_empty()
        || req.apisecret.as_deref().is_some_and(|given| {
            crate::api::secret::constant_time_eq(given.as_bytes(), secret.as_bytes())
        })
}
