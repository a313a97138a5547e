//! transport/: WebSocket framing and handshakes, the client listener and connection
//! tasks, the byte-bounded queues writers drain, and the WebSocket client to backends.
//!
//! Never looks inside a message: whole text messages go to a [`server::Handler`]; knows no
//! Janus session, handle or plugin.

pub mod client;
pub mod conn;
pub mod frame;
pub mod handshake;
pub mod queue;
pub mod server;
pub mod ws;
