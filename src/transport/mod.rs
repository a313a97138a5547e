//! transport/: WebSocket framing, handshakes, client listeners and connection tasks.
//! Never looks inside `body`/`jsep`; hands whole text messages to `core`.

pub mod client;
pub mod frame;
pub mod handshake;
pub mod server;
pub mod ws;
