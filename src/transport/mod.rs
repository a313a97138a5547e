//! transport/: WebSocket framing and handshakes, HTTP/1.1 for Janus's REST API and static
//! files, TLS for both, the client listeners and connection tasks, the byte-bounded queues
//! writers drain, and the WebSocket client to backends.
//!
//! Never looks inside a message: whole text messages (and whole `/janus` HTTP requests) go
//! to a [`server::Handler`]; knows no Janus session, handle or plugin.

pub mod client;
pub mod conn;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod queue;
pub mod server;
pub mod tls;
pub mod ws;
