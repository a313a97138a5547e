//! VideoRoom error codes (Janus 1.1.2 `janus_videoroom.c`, identical in 0.10.x) and the
//! error object clients get: `{"videoroom":"event","error_code":N,"error":"…"}`.

use serde_json::{json, Value};

use crate::api::error::JanusError;

pub const UNKNOWN_ERROR: u16 = 499;
pub const INVALID_REQUEST: u16 = 423;
pub const JOIN_FIRST: u16 = 424;
pub const ALREADY_JOINED: u16 = 425;
pub const NO_SUCH_ROOM: u16 = 426;
pub const ROOM_EXISTS: u16 = 427;
pub const NO_SUCH_FEED: u16 = 428;
pub const MISSING_ELEMENT: u16 = 429;
pub const INVALID_ELEMENT: u16 = 430;
pub const PUBLISHERS_FULL: u16 = 432;
pub const UNAUTHORIZED: u16 = 433;
pub const ID_EXISTS: u16 = 436;

/// A VideoRoom-level failure: its code and Janus's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrError {
    pub code: u16,
    pub text: String,
}

impl VrError {
    pub fn new(code: u16, text: impl Into<String>) -> VrError {
        VrError {
            code,
            text: text.into(),
        }
    }

    pub fn no_such_room(room: u64) -> VrError {
        VrError::new(NO_SUCH_ROOM, format!("No such room ({room})"))
    }

    pub fn no_such_feed(feed: u64) -> VrError {
        VrError::new(NO_SUCH_FEED, format!("No such feed ({feed})"))
    }

    /// The error object of a reply or event.
    pub fn data(&self) -> Value {
        json!({"videoroom": "event", "error_code": self.code, "error": self.text})
    }
}

/// Failures of the proxy's own machinery (a backend unreachable, a shard gone) keep their
/// code: clients see e.g. 502/503/504 in the VideoRoom error object.
impl From<JanusError> for VrError {
    fn from(e: JanusError) -> VrError {
        VrError {
            code: e.code,
            text: e.reason,
        }
    }
}

pub type VrResult<T> = Result<T, VrError>;

/// A backend's `plugindata.data`: its error object as a [`VrError`], anything else as is.
///
/// # Errors
/// The backend reported `error_code`.
pub fn result_of(data: Value) -> VrResult<Value> {
    match data.get("error_code").and_then(Value::as_u64) {
        Some(code) => Err(VrError::new(
            code as u16,
            data.get("error")
                .and_then(Value::as_str)
                .unwrap_or("backend error"),
        )),
        None => Ok(data),
    }
}
