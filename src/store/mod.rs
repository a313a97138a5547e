//! store/: state kept outside the shards, behind traits: the backend server registry in
//! memory or in Redis (spec 02 §5.1), the Redis user directories of multi-proxy calls, the
//! owners of ids shared by a cluster (`redis_owners`: a room's proxy), the
//! cluster's session directory (heartbeats, adoption records), and the clock of every
//! stored timestamp.
//!
//! Stores block: they are only called from their own threads (the admin thread, one
//! thread per Redis directory), never from a shard. Must never know plugins or shards:
//! what a name means is its caller's business.

pub mod memory;
pub mod record;
pub mod redis_conn;
pub mod redis_hash;
pub mod redis_owners;
pub mod redis_sessions;
pub mod redis_store;
pub mod redis_users;

pub use record::{ServerRecord, ServerUpdate};

/// Fires once a write is in Redis (dropped, so `Canceled`, if it never gets there).
pub type Written = futures_channel::oneshot::Receiver<()>;

/// Milliseconds since the epoch: the clock of every stored timestamp (records' `utime`,
/// expiry, sentinel start times).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Unavailable(String),
}

/// Where backend server records live. Several proxies sharing one Redis share one list.
pub trait ServerStore: Send {
    /// Creates or updates a record (spec 02 §5) and returns it as stored.
    ///
    /// # Errors
    /// The store cannot be reached.
    fn update(&mut self, update: ServerUpdate, now: f64) -> Result<ServerRecord, StoreError>;

    /// Deletes a record; deleting an unknown name is not an error.
    ///
    /// # Errors
    /// The store cannot be reached.
    fn delete(&mut self, name: &str) -> Result<(), StoreError>;

    /// Every stored record, including expired ones not yet swept.
    ///
    /// # Errors
    /// The store cannot be reached.
    fn list(&mut self) -> Result<Vec<ServerRecord>, StoreError>;

    /// Deletes records whose validity ran out; returns their names.
    ///
    /// # Errors
    /// The store cannot be reached.
    fn sweep(&mut self, now: f64) -> Result<Vec<String>, StoreError> {
        let stale: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|r| !r.is_fresh(now))
            .map(|r| r.name)
            .collect();
        for name in &stale {
            self.delete(name)?;
        }
        Ok(stale)
    }
}

/// Opens the store named by `general.server_db`.
///
/// # Errors
/// An unsupported URL, or Redis unreachable at start.
pub fn open(server_db: &str) -> Result<Box<dyn ServerStore>, StoreError> {
    if server_db == "memory" {
        Ok(Box::new(memory::MemoryStore::default()))
    } else if server_db.starts_with("redis://") {
        Ok(Box::new(redis_store::RedisStore::open(server_db)?))
    } else {
        Err(StoreError::Unavailable(format!(
            "unsupported server_db {server_db:?}"
        )))
    }
}
