//! core/: the proxy itself, on each shard: client sessions and handles, the Janus
//! request path rules (dispatch in Janus's check order, forwarding to the shard that owns
//! a session), what happens to sessions between requests (timeouts, claims, backend
//! losses, connections closing), the shard state and metrics, and the plugin host: the
//! [`plugin::Plugin`] trait and the narrow [`host::Host`]/[`host::HandleCtx`] plugins get,
//! and what Janus's REST API means (`http_api`: long polls, per-session event queues),
//! and proxy failover (`cluster`: session records, adoption of a dead proxy's sessions).
//!
//! Must never name a plugin (they come as `dyn AnyPlugin` from `main`), never parse
//! WebSocket frames or HTTP (transport hands whole messages and requests) and never block.

pub mod backend_handle;
pub mod cluster;
pub mod dispatch;
pub mod events;
pub mod handle_verbs;
pub mod host;
pub mod http_api;
pub mod metrics;
pub mod plugin;
pub mod session;
pub mod session_verbs;
pub mod shard;
