//! Session-level verbs: `create`, `destroy`, `claim` (keepalive is answered in dispatch).

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::http_api;
use super::session::ConnRef;
use crate::api::error::{Code, JanusError};
use crate::api::json::{self, Kind};
use crate::api::reply;
use crate::api::request::Request;
use crate::core::shard::Shard;

/// Largest id a JavaScript client can hold exactly (2^53 - 1).
pub const MAX_ID: u64 = (1 << 53) - 1;

/// The id a `create` asks for, if any.
///
/// # Errors
/// 467 when `id` is not an integer in 1..2^53.
pub fn requested_id(req: &Request) -> Result<Option<u64>, JanusError> {
    match req.get("id") {
        None => Ok(None),
        // Janus treats 0 (and null) as "pick one for me".
        Some(v) if json::kind(v) == Kind::Null || v.get() == "0" => Ok(None),
        Some(v) => match v.get().parse::<u64>() {
            Ok(id) if (1..=MAX_ID).contains(&id) => Ok(Some(id)),
            _ => Err(JanusError::wrong_type(
                "id",
                "a positive integer below 2^53",
            )),
        },
    }
}

/// Creates a session. False when the answer comes later (the cluster must record the
/// session first), and then releases the connection (`dispatch::release`).
pub fn create(shard: &Rc<Shard>, req: &Request, from: ConnRef) -> bool {
    let fail = |e: JanusError| {
        shard.reply_error(from, 0, Some(req.transaction), &e);
        true
    };
    let requested = match requested_id(req) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let http_slot = match from.is_http_request().then(|| http_api::take_slot(shard)) {
        Some(Err(e)) => return fail(e),
        Some(Ok(slot)) => Some(slot),
        None => None,
    };
    let mut sessions = shard.sessions.borrow_mut();
    let id = match requested {
        Some(id) if sessions.contains(id) => {
            drop(sessions);
            return fail(JanusError::new(
                Code::SessionConflict,
                "Session ID already in use",
            ));
        }
        Some(id) => id,
        // Draw until the id hashes to this shard, so the session lives where its
        // connection is and later requests need no hop.
        None => loop {
            let id = fastrand::u64(1..=MAX_ID);
            if shard.owner_of(id) == shard.id && !sessions.contains(id) {
                break id;
            }
        },
    };
    sessions.insert(id, from, Instant::now());
    drop(sessions);
    if let Some(slot) = http_slot {
        http_api::set_slot(shard, id, slot);
    }
    shard.metrics.sessions.inc();
    if !from.is_http_request() {
        shard.sessions_changed(from, 1);
    }
    let Some(written) = super::cluster::session_created(shard, id) else {
        shard.deliver(from, reply::created(req.transaction, id));
        return true;
    };
    // In a cluster the session is announced once another proxy could adopt it.
    super::dispatch::hold(shard, from);
    let (shard, transaction) = (shard.clone(), req.transaction.to_owned());
    monoio::spawn(async move {
        super::cluster::written(Some(written)).await;
        shard.deliver(from, reply::created(&transaction, id));
        super::dispatch::release(&shard, from);
    });
    false
}

pub fn destroy(shard: &Rc<Shard>, req: &Request, from: ConnRef) {
    shard.destroy_session(req.session_id);
    shard.deliver(
        from,
        reply::session_reply("success", req.session_id, req.transaction),
    );
}

pub fn claim(shard: &Rc<Shard>, req: &Request, from: ConnRef) {
    claim_session(shard, req.session_id, req.transaction, from);
}

/// Moves session `session_id` to `from` and answers (`transaction` is raw JSON).
pub fn claim_session(shard: &Rc<Shard>, session_id: u64, transaction: &str, from: ConnRef) {
    let http_slot = match from.is_http_request().then(|| http_api::take_slot(shard)) {
        Some(Err(e)) => {
            return shard.reply_error(from, session_id, Some(transaction), &e);
        }
        Some(Ok(slot)) => Some(slot),
        None => None,
    };
    let claimed = shard
        .sessions
        .borrow_mut()
        .claim(session_id, from, Instant::now());
    if let Some(previous) = claimed {
        if let Some(slot) = http_slot {
            http_api::set_slot(shard, session_id, slot);
        }
        shard.deliver(
            from,
            reply::session_reply("success", session_id, transaction),
        );
        super::cluster::claimed(shard, session_id);
        if previous != Some(from) {
            if let Some(old) = previous {
                shard.sessions_changed(old, -1);
            }
            if !from.is_http_request() {
                shard.sessions_changed(from, 1);
            }
        }
    } else {
        shard.reply_error(
            from,
            session_id,
            Some(transaction),
            &JanusError::no_session(session_id),
        );
    }
}

/// Reclaim window from the configuration.
pub fn reclaim_window(shard: &Shard) -> Duration {
    Duration::from_secs(shard.config.general.reclaim_session_timeout)
}
