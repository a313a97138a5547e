//! janus-cloud: a signalling cluster for the Janus WebRTC server.
//!
//! `janus-proxy` speaks the ordinary Janus API over WebSocket to clients and spreads
//! sessions and handles over many real Janus servers, which carry the media.
//!
//! # Layers
//! Top first; a module uses only modules below it (checked by `tests/layers.rs`, drawn
//! in `ARCHITECTURE.md`):
//! - `main` (the `janus-proxy` binary): the composition root: configuration, the plugin
//!   list, shards, threads, signals.
//! - [`admin`]: the control plane over HTTP: the server registry, sentinel callbacks,
//!   metrics, health, the routes plugins register.
//! - [`plugins`]: echotest, dummytest, videocall, p2pcall: each owns its handle state,
//!   shard slots and services, and sees the proxy only through the plugin host.
//! - [`core`]: sessions, handles, request dispatch, the shard state, the plugin host,
//!   proxy failover (session records, adoption of a dead proxy's sessions).
//! - [`backend`]: Janus servers: registry view, selection, links, backend messages.
//! - [`runtime`]: shard threads, mailboxes, typed shard-local slots, per-shard
//!   counters, jump hash: nothing Janus-specific.
//! - [`transport`]: WebSocket framing, handshakes, client listener and connection tasks,
//!   byte-bounded queues, the backend WebSocket client: hands whole messages to a handler.
//! - [`store`]: memory/Redis stores behind traits, the cluster's session directory, the
//!   stores' clock.
//! - [`api`]: the Janus wire model: request envelopes, replies, error codes.
//! - [`logging`]: tracing set-up and the panic policy.
//! - [`config`]: the TOML model, plain data and its validation.
//!
//! # Threads
//! Each shard owns the connections it accepted and the sessions whose id hashes to it.
//! A request for a session owned elsewhere travels to the owner through its mailbox,
//! and replies travel back the same way; nothing on the per-message path takes a lock.

// The docs are for the developers of this crate (`cargo doc --document-private-items`):
// a module's doc links to the private modules it is made of.
#![allow(rustdoc::private_intra_doc_links)]

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
