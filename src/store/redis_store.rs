//! The Redis server store (`server_db = "redis://…"`), shared by several proxies.
//!
//! Layout as the original (spec 02 §5.1): one hash per server at
//! `januscloud:backend_servers:<name>`, with `EXPIRE <expire>` refreshed at each update so
//! Redis itself drops servers that stop reporting. Listing does not use `KEYS` (which
//! blocks Redis): names are also kept in the set `januscloud:backend_server_names`, and
//! names whose hash has expired are pruned from it while listing.

use std::collections::BTreeMap;

use redis::{Commands, Connection};
use tracing::warn;

use super::record::{apply, ServerRecord, ServerUpdate};
use super::redis_conn::RedisConn;
use super::{ServerStore, StoreError};

const PREFIX: &str = "januscloud:backend_servers:";
const NAMES: &str = "januscloud:backend_server_names";

pub struct RedisStore {
    conn: RedisConn,
}

impl RedisStore {
    /// Connects and checks the server answers (a proxy must not start on a dead store).
    ///
    /// # Errors
    /// Bad URL or Redis unreachable.
    pub fn open(url: &str) -> Result<RedisStore, StoreError> {
        let mut conn = RedisConn::new(url)?;
        conn.ping()?;
        Ok(RedisStore { conn })
    }

    fn with<T>(
        &mut self,
        f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.conn.with(f)
    }

    fn get(&mut self, name: &str) -> Result<Option<ServerRecord>, StoreError> {
        let key = format!("{PREFIX}{name}");
        let fields: BTreeMap<String, String> = self.with(|c| c.hgetall(&key))?;
        Ok(ServerRecord::from_fields(&fields))
    }
}

impl ServerStore for RedisStore {
    fn update(&mut self, update: ServerUpdate, now: f64) -> Result<ServerRecord, StoreError> {
        let existing = self.get(&update.name)?;
        let r = apply(existing, update, now);
        let key = format!("{PREFIX}{}", r.name);
        let fields = r.to_fields();
        let (name, expire) = (r.name.clone(), r.expire);
        self.with(|c| {
            let mut p = redis::pipe();
            p.atomic().hset_multiple(&key, &fields).ignore();
            if expire > 0 {
                p.expire(&key, expire as i64).ignore();
            } else {
                p.persist(&key).ignore();
            }
            p.sadd(NAMES, &name).ignore();
            p.query::<()>(c)
        })?;
        Ok(r)
    }

    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        let key = format!("{PREFIX}{name}");
        self.with(|c| {
            redis::pipe()
                .atomic()
                .del(&key)
                .ignore()
                .srem(NAMES, name)
                .ignore()
                .query::<()>(c)
        })
    }

    fn list(&mut self) -> Result<Vec<ServerRecord>, StoreError> {
        let names: Vec<String> = self.with(|c| c.smembers(NAMES))?;
        let mut out = Vec::with_capacity(names.len());
        let mut gone = Vec::new();
        for chunk in names.chunks(32) {
            let maps: Vec<BTreeMap<String, String>> = self.with(|c| {
                let mut p = redis::pipe();
                for n in chunk {
                    p.hgetall(format!("{PREFIX}{n}"));
                }
                p.query(c)
            })?;
            for (n, m) in chunk.iter().zip(maps) {
                match ServerRecord::from_fields(&m) {
                    Some(r) => out.push(r),
                    None => gone.push(n.clone()),
                }
            }
        }
        if !gone.is_empty() {
            // Their hashes expired in Redis: forget the names too.
            if let Err(e) = self.with(|c| c.srem::<_, _, ()>(NAMES, &gone)) {
                warn!(error = %e, "could not prune expired server names");
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
