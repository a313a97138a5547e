//! runtime/: the machinery of thread-per-core, knowing nothing of Janus: shard threads
//! (pinned, one monoio runtime each), mailboxes between them, typed shard-local slots,
//! per-shard counters, and the hash that spreads keys over shards.
//!
//! Must never name a session, a plugin or a backend: what runs on a shard and what
//! travels in its mailbox are its users' types.

pub mod jump_hash;
pub mod mailbox;
pub mod slots;
pub mod stats;
pub mod thread;
