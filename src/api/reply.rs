//! Frames the proxy sends to clients, in the field order real Janus 1.1.2 uses
//! (`janus`, `session_id`, `transaction`, `sender`, ...). Every function returns compact
//! JSON; the connection writer applies the configured style.

use super::error::JanusError;
use super::json::{self, ObjectWriter, RawObject};

/// Where a reply or event goes inside a session: the frontend ids and the handle's
/// opaque id (added to events whenever the client gave one at attach).
#[derive(Debug, Clone, Copy)]
pub struct Addr<'a> {
    pub session_id: u64,
    pub handle_id: u64,
    pub opaque_id: Option<&'a str>,
}

pub fn error(session_id: u64, transaction: Option<&str>, err: &JanusError) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.str("janus", "error");
    if session_id > 0 {
        w.u64("session_id", session_id);
    }
    if let Some(t) = transaction {
        w.raw("transaction", t);
    }
    let mut e = ObjectWriter::with_capacity(64);
    e.u64("code", err.code as u64).str("reason", &err.reason);
    w.raw("error", std::str::from_utf8(&e.finish()).unwrap_or("{}"));
    w.finish()
}

pub fn pong(transaction: &str) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.str("janus", "pong").raw("transaction", transaction);
    w.finish()
}

/// Reply to `create`: no top-level `session_id` (janode drops replies that have one).
pub fn created(transaction: &str, session_id: u64) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.str("janus", "success")
        .raw("transaction", transaction)
        .raw("data", &format!("{{\"id\":{session_id}}}"));
    w.finish()
}

/// Reply to `attach`: `session_id` and `data.id`, no `sender`.
pub fn attached(session_id: u64, transaction: &str, handle_id: u64) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.str("janus", "success")
        .u64("session_id", session_id)
        .raw("transaction", transaction)
        .raw("data", &format!("{{\"id\":{handle_id}}}"));
    w.finish()
}

/// `success` (destroy, claim, detach, hangup) or `ack` (keepalive, trickle, async message).
pub fn session_reply(kind: &str, session_id: u64, transaction: &str) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.str("janus", kind)
        .u64("session_id", session_id)
        .raw("transaction", transaction);
    w.finish()
}

/// Synchronous plugin result (`success` + `plugindata`).
pub fn plugin_success(addr: Addr, transaction: &str, plugin: &str, data: &str) -> Vec<u8> {
    plugin_frame("success", addr, Some(transaction), plugin, data, None)
}

/// Plugin event; `transaction` only when it answers an asynchronous request.
pub fn plugin_event(
    addr: Addr,
    transaction: Option<&str>,
    plugin: &str,
    data: &str,
    jsep: Option<&str>,
) -> Vec<u8> {
    plugin_frame("event", addr, transaction, plugin, data, jsep)
}

fn plugin_frame(
    kind: &str,
    addr: Addr,
    transaction: Option<&str>,
    plugin: &str,
    data: &str,
    jsep: Option<&str>,
) -> Vec<u8> {
    let mut w = ObjectWriter::with_capacity(96 + data.len() + jsep.map_or(0, str::len));
    w.str("janus", kind).u64("session_id", addr.session_id);
    if let Some(t) = transaction {
        w.raw("transaction", t);
    }
    w.u64("sender", addr.handle_id);
    if let Some(o) = addr.opaque_id {
        w.str("opaque_id", o);
    }
    let mut pd = Vec::with_capacity(data.len() + plugin.len() + 24);
    pd.extend_from_slice(b"{\"plugin\":");
    json::write_json_str(&mut pd, plugin);
    pd.extend_from_slice(b",\"data\":");
    pd.extend_from_slice(data.as_bytes());
    pd.push(b'}');
    // Both parts are valid UTF-8: our literals and slices of a parsed &str.
    w.raw("plugindata", std::str::from_utf8(&pd).unwrap_or("{}"));
    if let Some(j) = jsep {
        w.raw("jsep", j);
    }
    w.finish()
}

/// A core event of a handle: `detached`, or `hangup` with a reason.
pub fn handle_event(kind: &str, addr: Addr, reason: Option<&str>) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.str("janus", kind)
        .u64("session_id", addr.session_id)
        .u64("sender", addr.handle_id);
    if let Some(o) = addr.opaque_id {
        w.str("opaque_id", o);
    }
    if let Some(r) = reason {
        w.str("reason", r);
    }
    w.finish()
}

pub fn timeout(session_id: u64) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.str("janus", "timeout").u64("session_id", session_id);
    w.finish()
}

/// Relays a backend message to the client (spec 01 §7.1): every field but `janus`,
/// `session_id`, `sender`, `opaque_id` and `transaction` is copied verbatim, so fields of
/// newer Janus versions (`mid`, `substream`) pass through. `transaction` is the client's
/// when the message answers one of its asynchronous requests.
pub fn relay(backend: &RawObject, janus: &str, addr: Addr, transaction: Option<&str>) -> Vec<u8> {
    let size: usize = backend
        .fields
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let mut w = ObjectWriter::with_capacity(size + 64);
    w.str("janus", janus).u64("session_id", addr.session_id);
    if let Some(t) = transaction {
        w.raw("transaction", t);
    }
    w.u64("sender", addr.handle_id);
    if let Some(o) = addr.opaque_id {
        w.str("opaque_id", o);
    }
    for (k, v) in &backend.fields {
        if !matches!(
            k.as_ref(),
            "janus" | "session_id" | "sender" | "opaque_id" | "transaction"
        ) {
            w.raw(k, v.get());
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    const A: Addr = Addr {
        session_id: 1,
        handle_id: 2,
        opaque_id: None,
    };

    #[test]
    fn error_shape() {
        let e = JanusError::no_session(9);
        assert_eq!(
            s(error(9, Some("\"t\""), &e)),
            r#"{"janus":"error","session_id":9,"transaction":"t","error":{"code":458,"reason":"No such session 9"}}"#
        );
        assert_eq!(
            s(error(0, None, &JanusError::missing("transaction"))),
            r#"{"janus":"error","error":{"code":456,"reason":"Missing mandatory element (transaction)"}}"#
        );
    }

    #[test]
    fn create_and_attach_shapes() {
        assert_eq!(
            s(created("\"t\"", 5)),
            r#"{"janus":"success","transaction":"t","data":{"id":5}}"#
        );
        assert_eq!(
            s(attached(5, "\"t\"", 6)),
            r#"{"janus":"success","session_id":5,"transaction":"t","data":{"id":6}}"#
        );
    }

    #[test]
    fn plugin_event_shape() {
        let a = Addr {
            opaque_id: Some("o"),
            ..A
        };
        assert_eq!(
            s(plugin_event(
                a,
                Some("\"t\""),
                "janus.plugin.echotest",
                r#"{"r":1}"#,
                Some(r#"{"type":"answer"}"#)
            )),
            r#"{"janus":"event","session_id":1,"transaction":"t","sender":2,"opaque_id":"o","plugindata":{"plugin":"janus.plugin.echotest","data":{"r":1}},"jsep":{"type":"answer"}}"#
        );
    }

    #[test]
    fn relay_rewrites_ids_and_keeps_new_fields() {
        let b = RawObject::parse(
            r#"{"janus":"media","session_id":77,"sender":88,"opaque_id":"x","mid":"0","type":"audio","receiving":true}"#,
        )
        .unwrap();
        assert_eq!(
            s(relay(&b, "media", A, None)),
            r#"{"janus":"media","session_id":1,"sender":2,"mid":"0","type":"audio","receiving":true}"#
        );
    }
}
