//! One blocking Redis connection that reconnects by itself: a failed command drops the
//! connection and the next command dials again. A command that finds the connection
//! dropped under it (Redis restarted since the last one) is sent once more on a new one,
//! so a restart costs no error once Redis is back. Only used off the shards (admin
//! thread, user-directory thread, directories' threads); every command sent through it
//! must be safe to run twice (they are all sets, deletes and check-and-set scripts).

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

/// Whether `e` says the server closed the connection (rather than refused the command or
/// timed out: those are not retried).
fn dropped(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.to_string().contains("end of file")
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

    /// Runs `f` on a live connection, dialing first if needed; once more on a new
    /// connection when the one it had was dropped by the server.
    ///
    /// # Errors
    /// Redis unreachable, or the command failed.
    pub fn with<T>(
        &mut self,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let reused = self.conn.is_some();
        match self.once(&mut f) {
            Err(e) if reused && dropped(&e) => self.once(&mut f).map_err(unavailable),
            r => r.map_err(unavailable),
        }
    }

    fn once<T>(
        &mut self,
        f: &mut impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        if self.conn.is_none() {
            let c = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            self.conn = Some(c);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "no connection",
            )));
        };
        f(conn).inspect_err(|_| self.conn = None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_error(kind: io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(io::Error::new(kind, "test"))
    }

    #[test]
    fn only_a_dropped_connection_is_tried_again() {
        assert!(dropped(&io_error(io::ErrorKind::UnexpectedEof)));
        assert!(dropped(&io_error(io::ErrorKind::BrokenPipe)));
        assert!(dropped(&io_error(io::ErrorKind::ConnectionReset)));
        assert!(!dropped(&io_error(io::ErrorKind::TimedOut)));
        let refused_command =
            redis::RedisError::from((redis::ErrorKind::Client, "NOSCRIPT no such script"));
        assert!(!dropped(&refused_command));
    }
}
