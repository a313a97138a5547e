//! runtime/: shards (one pinned monoio runtime per core), the mailboxes between them,
//! the single-threaded queues inside them, and the hash that says which shard owns a
//! session.

pub mod jump_hash;
pub mod local_queue;
pub mod mailbox;
pub mod shard;
