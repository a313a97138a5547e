//! One blocking Redis connection that reconnects by itself: a failed command drops the
//! connection and the next command dials again, so a Redis restart costs one error.
//! Only used off the shards (admin thread, user-directory thread).

use std::time::Duration;

use redis::Connection;

use super::StoreError;

/// Bounds every connect, read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisConn {
    client: redis::Client,
    conn: Option<Connection>,
}

pub fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisConn {
    /// Parses the URL; connects on first use.
    ///
    /// # Errors
    /// A malformed URL.
    pub fn new(url: &str) -> Result<RedisConn, StoreError> {
        Ok(RedisConn {
            client: redis::Client::open(url).map_err(unavailable)?,
            conn: None,
        })
    }

    /// Runs `f` on a live connection, dialing first if needed.
    ///
    /// # Errors
    /// Redis unreachable, or the command failed.
    pub fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        if self.conn.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(IO_TIMEOUT)
                .map_err(unavailable)?;
            c.set_read_timeout(Some(IO_TIMEOUT)).map_err(unavailable)?;
            c.set_write_timeout(Some(IO_TIMEOUT)).map_err(unavailable)?;
            self.conn = Some(c);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(StoreError::Unavailable("no connection".into()));
        };
        f(conn).map_err(|e| {
            self.conn = None;
            unavailable(e)
        })
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// It does not.
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.with(|c| redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }
}
