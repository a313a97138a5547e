//! core/: the proxy itself, on each shard: client sessions and handles, the Janus
//! request path rules (dispatch in Janus's check order, forwarding to the shard that owns
//! a session), what happens to sessions between requests (timeouts, claims, backend
//! losses, connections closing), the shard state and metrics, and the plugin host: the
//! [`plugin::Plugin`] trait and the narrow [`host::Host`]/[`host::HandleCtx`] plugins get.
//!
//! Must never name a plugin (they come as `dyn AnyPlugin` from `main`), never parse
//! WebSocket frames (transport hands whole messages) and never block.

pub mod backend_handle;
pub mod dispatch;
pub mod events;
pub mod handle_verbs;
pub mod host;
pub mod metrics;
pub mod plugin;
pub mod session;
pub mod session_verbs;
pub mod shard;
