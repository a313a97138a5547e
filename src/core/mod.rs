//! core/: frontend sessions and handles, the Janus request path rules, and everything
//! that happens to sessions between requests (timeouts, claims, backend losses).
//! Plugins decide what handle-level verbs mean; transport decides nothing here.

pub mod dispatch;
pub mod events;
pub mod handle_verbs;
pub mod metrics;
pub mod session;
pub mod session_verbs;
pub mod shard;
