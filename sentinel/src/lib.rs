//! janus-sentinel: runs beside one Janus server, supervises its process, probes it, reads
//! its load and posts its state to janus-proxy instances. The binary (`main.rs`) wires
//! these modules into threads; its module docs are the user documentation.
//!
//! # Layout
//!
//! - [`config`]: TOML model, defaults, validation.
//! - [`identity`]: server name and the URLs reported (public IP detection).
//! - [`status`]: the NORMAL/ABNORMAL/MAINTENANCE/HWM state machine (pure).
//! - [`state`]: state shared by all threads, with change notification.
//! - [`load`]: the load formula and Janus process CPU sampling.
//! - [`janus_ws`]: blocking WebSocket client for the Janus API and Admin API.
//! - [`prober`]: the `ping` loop that drives the status.
//! - [`stats`]: the Admin API loop (session/handle counts) and CPU sampling.
//! - [`supervisor`]: starts, restarts and stops the Janus process.
//! - [`poster`]: posts the state to every configured proxy URL.
//! - [`rest`]: the `/sentinel/*` REST interface.
//! - [`logging`]: `[log]` set-up.

pub mod config;
pub mod identity;
pub mod janus_ws;
pub mod load;
pub mod logging;
pub mod poster;
pub mod prober;
pub mod rest;
pub mod state;
pub mod stats;
pub mod status;
pub mod supervisor;
