//! A backend Janus message, parsed at the edge: the envelope fields that route it
//! (`janus`, `transaction`, `sender`) beside the raw fields. Pure: no I/O, no state, so
//! that every byte a backend can send is fuzzed here (`fuzz/`).

use std::borrow::Cow;

use crate::api::json::{self, RawObject};

/// Why a backend message is dropped.
#[derive(Debug, thiserror::Error)]
pub enum Dropped {
    #[error("nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("not a JSON object: {0}")]
    Malformed(serde_json::Error),
}

/// One backend message.
#[derive(Debug)]
pub struct Envelope<'a> {
    pub msg: RawObject<'a>,
    /// `janus`, "" when missing or not a string.
    pub janus: Cow<'a, str>,
    /// Our numeric transaction, when the message carries one.
    pub transaction: Option<u64>,
    /// The backend handle it is about (`sender`).
    pub sender: Option<u64>,
}

impl<'a> Envelope<'a> {
    /// # Errors
    /// Too deep (checked before parsing), or not one JSON object.
    pub fn parse(text: &'a str, max_depth: usize) -> Result<Envelope<'a>, Dropped> {
        if json::too_deep(text.as_bytes(), max_depth) {
            return Err(Dropped::TooDeep(max_depth));
        }
        let msg = RawObject::parse(text).map_err(Dropped::Malformed)?;
        let janus = msg.get("janus").and_then(json::as_str).unwrap_or_default();
        let transaction = msg
            .get("transaction")
            .and_then(json::as_str)
            .and_then(|t| t.parse::<u64>().ok());
        let sender = msg.get("sender").and_then(crate::api::request::parse_id);
        Ok(Envelope {
            msg,
            janus,
            transaction,
            sender,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_routing_fields() {
        let e = Envelope::parse(
            r#"{"janus":"event","session_id":1,"transaction":"42","sender":7,"plugindata":{}}"#,
            32,
        )
        .unwrap();
        assert_eq!(
            (e.janus.as_ref(), e.transaction, e.sender),
            ("event", Some(42), Some(7))
        );
        let e = Envelope::parse(r#"{"janus":5,"transaction":"x"}"#, 32).unwrap();
        assert_eq!(
            (e.janus.as_ref(), e.transaction, e.sender),
            ("", None, None)
        );
        assert!(matches!(
            Envelope::parse("[[[[1]]]]", 3),
            Err(Dropped::TooDeep(3))
        ));
        assert!(matches!(
            Envelope::parse("[]", 3),
            Err(Dropped::Malformed(_))
        ));
    }
}
