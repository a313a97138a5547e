//! Logging set-up (`[log]`, the same keys as janus-proxy): janus-proxy's own — `tracing`
//! to stdout and/or a size-rotated file through a non-blocking worker, so a slow disk
//! never stalls the prober.

pub use janus_cloud::config::log_level;
pub use janus_cloud::logging::{init, RotatingFile};
