//! Client requests: the envelope every Janus request shares, parsed at the edge into a
//! typed [`Request`]. Verb-specific payloads (`body`, `jsep`, `candidate`) stay raw.
//!
//! Validation follows Janus 1.1.2 (`janus.c`): `transaction` first, then `janus`, then the
//! path rules (root, session, handle) that the core applies.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::error::JanusError;
use super::json::{self, Kind, RawObject};

/// Janus core verbs. Compared case-insensitively, as Janus does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Info,
    Ping,
    Create,
    Destroy,
    Keepalive,
    Claim,
    Attach,
    Detach,
    Hangup,
    Message,
    Trickle,
    Unknown,
}

impl Verb {
    pub fn parse(s: &str) -> Verb {
        const VERBS: [(&str, Verb); 11] = [
            ("message", Verb::Message),
            ("trickle", Verb::Trickle),
            ("keepalive", Verb::Keepalive),
            ("attach", Verb::Attach),
            ("create", Verb::Create),
            ("detach", Verb::Detach),
            ("destroy", Verb::Destroy),
            ("hangup", Verb::Hangup),
            ("claim", Verb::Claim),
            ("info", Verb::Info),
            ("ping", Verb::Ping),
        ];
        VERBS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map_or(Verb::Unknown, |(_, v)| *v)
    }

    /// Verbs that act on a handle and so need `handle_id`.
    pub fn is_handle_level(self) -> bool {
        matches!(
            self,
            Verb::Detach | Verb::Hangup | Verb::Message | Verb::Trickle
        )
    }
}

/// One parsed client request. Borrows the frame it came from.
#[derive(Debug)]
pub struct Request<'a> {
    pub verb: Verb,
    /// The verb as sent, for error texts.
    pub verb_text: Cow<'a, str>,
    /// The `transaction` as a raw JSON string literal, echoed back byte for byte.
    pub transaction: &'a str,
    /// 0 when absent.
    pub session_id: u64,
    /// 0 when absent.
    pub handle_id: u64,
    pub apisecret: Option<Cow<'a, str>>,
    pub fields: RawObject<'a>,
}

/// What a failed parse still knows, so that the error reply can echo it as Janus does.
#[derive(Debug)]
pub struct Rejected<'a> {
    pub session_id: u64,
    pub transaction: Option<&'a str>,
    pub error: JanusError,
}

impl<'a> Request<'a> {
    /// Parses one JSON document of a frame.
    ///
    /// # Errors
    /// 454 for malformed JSON or a non-object, 456/467 for a missing or mistyped
    /// `transaction`, `janus`, `session_id` or `handle_id`.
    pub fn parse(text: &'a str) -> Result<Request<'a>, Rejected<'a>> {
        let fields = RawObject::parse(text).map_err(|e| Rejected {
            session_id: 0,
            transaction: None,
            error: invalid_json(&e.to_string()),
        })?;
        Request::from_fields(fields)
    }

    /// Builds a request from a document already parsed into fields.
    ///
    /// # Errors
    /// As [`Request::parse`], but for malformed JSON.
    pub fn from_fields(fields: RawObject<'a>) -> Result<Request<'a>, Rejected<'a>> {
        let mut session_id = 0;
        let mut handle_id = 0;
        let mut id_error = None;
        for (key, out) in [
            ("session_id", &mut session_id),
            ("handle_id", &mut handle_id),
        ] {
            if let Some(raw) = fields.get(key) {
                match parse_id(raw) {
                    Some(id) => *out = id,
                    None => id_error = id_error.or(Some(JanusError::wrong_type(key, "an integer"))),
                }
            }
        }
        let reject = |transaction, error| Rejected {
            session_id,
            transaction,
            error,
        };
        let transaction = match fields.get("transaction") {
            None => return Err(reject(None, JanusError::missing("transaction"))),
            Some(t) if json::kind(t) != Kind::String => {
                return Err(reject(
                    None,
                    JanusError::wrong_type("transaction", "a string"),
                ))
            }
            Some(t) => t.get(),
        };
        // Janus validates `janus` together with `transaction`, before it reads the
        // transaction, so these errors carry none.
        let verb_text = match fields.get("janus") {
            None => return Err(reject(None, JanusError::missing("janus"))),
            Some(v) => match json::as_str(v) {
                Some(s) => s,
                None => return Err(reject(None, JanusError::wrong_type("janus", "a string"))),
            },
        };
        if let Some(e) = id_error {
            return Err(reject(Some(transaction), e));
        }
        let apisecret = fields.get("apisecret").and_then(json::as_str);
        Ok(Request {
            verb: Verb::parse(&verb_text),
            verb_text,
            transaction,
            session_id,
            handle_id,
            apisecret,
            fields,
        })
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.get(key)
    }

    /// A string field; `Ok(None)` when absent or null.
    ///
    /// # Errors
    /// 467 when present with another type.
    pub fn str_field(&self, key: &str) -> Result<Option<Cow<'a, str>>, JanusError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if json::kind(v) == Kind::Null => Ok(None),
            Some(v) => json::as_str(v)
                .map(Some)
                .ok_or_else(|| JanusError::wrong_type(key, "a string")),
        }
    }
}

/// Error 454 for a frame that is not a JSON object.
pub fn invalid_json(why: &str) -> JanusError {
    JanusError::new(
        super::error::Code::InvalidJson,
        format!("Invalid Janus API request - {why}"),
    )
}

/// Session and handle ids: a JSON integer, or (leniently, as the original proxy) a
/// numeric string. Negative, fractional and out-of-range values are rejected.
pub fn parse_id(raw: &RawValue) -> Option<u64> {
    match json::kind(raw) {
        Kind::Number => raw.get().parse::<u64>().ok(),
        Kind::String => json::as_str(raw)?.trim().parse::<u64>().ok(),
        Kind::Null => Some(0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope() {
        let r = Request::parse(
            r#"{"janus":"MESSAGE","session_id":12,"handle_id":"34","transaction":"t1","body":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(r.verb, Verb::Message);
        assert_eq!((r.session_id, r.handle_id), (12, 34));
        assert_eq!(r.transaction, r#""t1""#);
        assert_eq!(r.get("body").unwrap().get(), r#"{"a":1}"#);
    }

    #[test]
    fn rejects_like_janus() {
        let e = Request::parse("{not json").unwrap_err();
        assert_eq!((e.error.code, e.transaction), (454, None));
        let e = Request::parse(r#"{"janus":"info"}"#).unwrap_err();
        assert_eq!(e.error.reason, "Missing mandatory element (transaction)");
        let e = Request::parse(r#"{"transaction":"x","session_id":5}"#).unwrap_err();
        assert_eq!((e.error.code, e.session_id, e.transaction), (456, 5, None));
        let e = Request::parse(r#"{"janus":"info","transaction":7}"#).unwrap_err();
        assert_eq!(e.error.code, 467);
        let e =
            Request::parse(r#"{"janus":"info","transaction":"7","session_id":-1}"#).unwrap_err();
        assert_eq!(e.error.code, 467);
        assert_eq!(Request::parse("[1]").unwrap_err().error.code, 454);
    }

    #[test]
    fn unknown_verbs_are_kept() {
        let r = Request::parse(r#"{"janus":"frobnicate","transaction":"x"}"#).unwrap();
        assert_eq!(
            (r.verb, r.verb_text.as_ref()),
            (Verb::Unknown, "frobnicate")
        );
    }
}
