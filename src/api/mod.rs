//! api/: the Janus wire model. Requests are parsed at the edge into typed envelopes
//! whose payloads (`body`, `jsep`, `candidate`) stay raw JSON; replies are written around
//! raw slices; error codes live in one place; secrets are compared in constant time.
//!
//! Pure functions over bytes: no I/O, no clock, no state. Must never build a
//! `serde_json::Value` on the per-message path.

pub mod error;
pub mod json;
pub mod reply;
pub mod request;
pub mod secret;
