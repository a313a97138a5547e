//! api/: the Janus wire model. Requests are parsed at the edge into typed envelopes
//! whose payloads (`body`, `jsep`, `candidate`) stay raw JSON; replies are written around
//! raw slices; error codes live in one place. No I/O here.

pub mod error;
pub mod json;
pub mod reply;
pub mod request;
pub mod secret;
