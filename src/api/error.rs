//! Janus error codes and the one error type every client-visible failure becomes.
//!
//! Each failure carries its Janus code and reason text; `JanusError::code` is the only
//! place that decides which number a client sees.

use std::fmt;

/// Janus API error codes (`apierror.h`, identical in 0.10.7 and 1.1.2) plus the
/// HTTP-style codes janus-cloud uses for gateway failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Code {
    Unauthorized = 403,
    TransportSpecific = 450,
    MissingRequest = 452,
    UnknownRequest = 453,
    InvalidJson = 454,
    InvalidJsonObject = 455,
    MissingMandatoryElement = 456,
    InvalidRequestPath = 457,
    SessionNotFound = 458,
    HandleNotFound = 459,
    PluginNotFound = 460,
    PluginAttach = 461,
    PluginMessage = 462,
    PluginDetach = 463,
    InvalidElementType = 467,
    SessionConflict = 468,
    NotAcceptingSessions = 472,
    Unknown = 490,
    InternalError = 500,
    BadGateway = 502,
    ServiceUnavailable = 503,
    GatewayTimeout = 504,
}

/// A failure reported to a client as `{"janus":"error","error":{"code","reason"}}` (core)
/// or as `error_code`/`error` inside plugin data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JanusError {
    pub code: u16,
    pub reason: String,
}

impl JanusError {
    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        JanusError {
            code: code as u16,
            reason: reason.into(),
        }
    }

    /// An error that a backend Janus answered: its code and reason are passed on as is.
    pub fn from_backend(code: u16, reason: impl Into<String>) -> Self {
        JanusError {
            code,
            reason: reason.into(),
        }
    }

    pub fn missing(element: &str) -> Self {
        Self::new(
            Code::MissingMandatoryElement,
            format!("Missing mandatory element ({element})"),
        )
    }

    pub fn wrong_type(element: &str, should_be: &str) -> Self {
        Self::new(
            Code::InvalidElementType,
            format!("Invalid element type ({element} should be {should_be})"),
        )
    }

    pub fn unknown_request(verb: &str) -> Self {
        Self::new(Code::UnknownRequest, format!("Unknown request '{verb}'"))
    }

    pub fn bad_path(verb: &str) -> Self {
        Self::new(
            Code::InvalidRequestPath,
            format!("Unhandled request '{verb}' at this path"),
        )
    }

    pub fn no_session(id: u64) -> Self {
        Self::new(Code::SessionNotFound, format!("No such session {id}"))
    }

    pub fn no_handle(session: u64, handle: u64) -> Self {
        Self::new(
            Code::HandleNotFound,
            format!("No such handle {handle} in session {session}"),
        )
    }

    pub fn no_plugin(name: &str) -> Self {
        Self::new(Code::PluginNotFound, format!("No such plugin '{name}'"))
    }

    pub fn unauthorized() -> Self {
        Self::new(
            Code::Unauthorized,
            "Unauthorized request (wrong or missing secret/token)",
        )
    }

    pub fn code(&self) -> u16 {
        self.code
    }
}

impl fmt::Display for JanusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for JanusError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_match_janus() {
        assert_eq!(JanusError::no_session(42).reason, "No such session 42");
        assert_eq!(
            JanusError::no_handle(5, 1).reason,
            "No such handle 1 in session 5"
        );
        assert_eq!(JanusError::no_plugin("x").reason, "No such plugin 'x'");
        assert_eq!(JanusError::missing("body").code, 456);
        assert_eq!(
            JanusError::wrong_type("body", "an object").reason,
            "Invalid element type (body should be an object)"
        );
        assert_eq!(JanusError::bad_path("keepalive").code, 457);
    }
}
