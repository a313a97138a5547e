//! A Redis hash written from a thread of its own: callers on shards queue `HSET`/`HDEL`
//! (never block), the thread applies them in order and retries while Redis is away. Each
//! write hands back a [`Written`] that fires once Redis has it, so a caller can answer
//! its client only then. What the fields mean is the caller's business (the VideoRoom
//! keeps its rooms here).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing::warn;

use super::redis_conn::RedisConn;
use super::{StoreError, Written};
use futures_channel::oneshot;

/// Most writes waiting for Redis; beyond, writes are dropped with a warning (the shard
/// must never wait).
const QUEUE: usize = 4096;

enum Change {
    Set(String, String),
    Del(String),
}

struct Write {
    change: Change,
    done: oneshot::Sender<()>,
}

/// The writing side, cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct RedisHash {
    tx: SyncSender<Write>,
    key: String,
}

impl RedisHash {
    /// Connects to `url`, reads every field of hash `key` (blocking: call at start-up
    /// only), and starts the writer thread.
    ///
    /// # Errors
    /// Redis unreachable or the URL malformed.
    pub fn open(url: &str, key: &str) -> Result<(RedisHash, Vec<(String, String)>), StoreError> {
        let mut conn = RedisConn::new(url)?;
        let fields: Vec<(String, String)> =
            conn.with(|c| redis::cmd("HGETALL").arg(key).query(c))?;
        Ok((RedisHash::start(conn, key)?, fields))
    }

    /// Connects to `url` (blocking: call at start-up only) and starts the writer thread
    /// of hash `key`, without reading it.
    ///
    /// # Errors
    /// Redis unreachable or the URL malformed.
    pub fn writer(url: &str, key: &str) -> Result<RedisHash, StoreError> {
        let mut conn = RedisConn::new(url)?;
        conn.ping()?;
        RedisHash::start(conn, key)
    }

    fn start(conn: RedisConn, key: &str) -> Result<RedisHash, StoreError> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread_key = key.to_string();
        std::thread::Builder::new()
            .name("redis-hash".into())
            .spawn(move || run(conn, &thread_key, rx))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(RedisHash {
            tx,
            key: key.to_string(),
        })
    }

    /// Queues `HSET key field value`.
    pub fn set(&self, field: String, value: String) -> Written {
        self.queue(Change::Set(field, value))
    }

    /// Queues `HDEL key field`.
    pub fn del(&self, field: String) -> Written {
        self.queue(Change::Del(field))
    }

    fn queue(&self, change: Change) -> Written {
        let (done, written) = oneshot::channel();
        match self.tx.try_send(Write { change, done }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!(key = %self.key, "redis writes backed up; one dropped")
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
        written
    }
}

fn run(mut conn: RedisConn, key: &str, rx: Receiver<Write>) {
    for w in rx {
        // Redis being away must not lose the write: retry with backoff (the queue in
        // front bounds what waits meanwhile).
        let mut delay = Duration::from_millis(100);
        loop {
            let done = match &w.change {
                Change::Set(f, v) => {
                    conn.with(|c| redis::cmd("HSET").arg(key).arg(f).arg(v).query::<i64>(c))
                }
                Change::Del(f) => conn.with(|c| redis::cmd("HDEL").arg(key).arg(f).query::<i64>(c)),
            };
            match done {
                Ok(_) => {
                    // The caller may have stopped waiting: nothing to do then.
                    let _ = w.done.send(());
                    break;
                }
                Err(e) => {
                    warn!(key, error = %e, "redis write failed; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
