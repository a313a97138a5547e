//! janus-cloud: a signalling cluster for the Janus WebRTC server.
//!
//! `janus-proxy` speaks the ordinary Janus API over WebSocket to clients and spreads
//! sessions and handles over many real Janus servers, which carry the media.
//!
//! # Layout
//! - [`config`]: the TOML model, defaults and validation.
//! - [`runtime`]: thread-per-core shards, mailboxes, session ownership by jump hash.
//! - [`transport`]: WebSocket framing and handshakes, client connections.
//! - [`api`]: the Janus wire model: request envelopes, replies, error codes.
//! - [`core`]: sessions and handles, the request path rules, timeouts and claims.
//! - [`backend`]: backend servers, per-shard links to them, selection.
//! - [`plugins`]: the plugin trait and the plugins (echotest, dummytest).
//! - [`store`]: the backend server store, in memory or Redis.
//! - [`admin`]: the admin REST API, metrics, and the control loop behind them.
//! - [`logging`]: tracing set-up (stdout and a size-rotated file).
//!
//! # Threads
//! Each shard owns the connections it accepted and the sessions whose id hashes to it.
//! A request for a session owned elsewhere travels to the owner through its mailbox,
//! and replies travel back the same way; nothing on the per-message path takes a lock.

pub mod admin;
pub mod api;
pub mod backend;
pub mod config;
pub mod core;
pub mod logging;
pub mod plugins;
pub mod runtime;
pub mod store;
pub mod transport;
