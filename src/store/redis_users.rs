//! The Redis user directory of a call plugin in multi-proxy mode (spec 05 §6): which
//! proxy owns each username, and how to reach that proxy.
//!
//! Keys, per namespace `ns` (`videocall`, `p2pcall`):
//! - `januscloud:<ns>_users:<name>`: hash `username, proxy_uuid, ctime, utime, incall,
//!   peer_name`, with a TTL of three refresh intervals, refreshed by the owning proxy
//!   while the handle lives (so a crashed proxy's users disappear on their own — the
//!   original kept them forever);
//! - `januscloud:<ns>_proxies:<uuid>`: hash `api_base_url`, same TTL.
//!
//! Registration is one Lua script (read the old owner, write the new one, set the TTL),
//! so two proxies registering a name at once cannot interleave; after a failover the
//! adopting proxy takes the names of the handles it adopted the same way, only from the
//! dead proxy's uuid; removal deletes the key
//! only if this proxy still owns it. All Redis work happens on one thread per namespace;
//! shards send it requests and await the answers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use futures_channel::oneshot;
use tracing::{info, warn};

use super::redis_conn::RedisConn;
use super::StoreError;

/// Who owns a name, as Redis sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Nobody,
    /// This proxy: the local directory knows the handle.
    Us,
    /// Another live proxy, reachable at this base URL (`…/plugins/<ns>`).
    Proxy(String),
}

enum Op {
    Register(String, bool, oneshot::Sender<Result<bool, StoreError>>),
    Adopt(String, String, oneshot::Sender<Result<bool, StoreError>>),
    Unregister(String),
    Lookup(String, oneshot::Sender<Result<Owner, StoreError>>),
    List(oneshot::Sender<Result<Vec<String>, StoreError>>),
}

/// Called (on the directory thread) for names another proxy took over; the callback
/// must only post work to the shards.
pub type OnLost = Box<dyn Fn(&str) + Send>;

/// The handle shards use; cheap to clone.
#[derive(Clone)]
pub struct RedisUsers {
    tx: Sender<Op>,
    pub uuid: String,
}

/// Returns the previous owner ('' for none), or '!taken' (and changes nothing) when
/// another proxy owns the name and takeover is not allowed (`ARGV[5]` = '0').
const REGISTER: &str = r#"
local old = redis.call('HGET', KEYS[1], 'proxy_uuid')
if old and old ~= '' and old ~= ARGV[2] and ARGV[5] == '0' then
  return '!taken'
end
redis.call('HSET', KEYS[1], 'username', ARGV[1], 'proxy_uuid', ARGV[2], 'utime', ARGV[3], 'incall', '', 'peer_name', '')
redis.call('HSETNX', KEYS[1], 'ctime', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return old or ''
"#;

/// Takes a name a dead proxy (`ARGV[5]`) owned, after a failover: 1 = ours now (also when
/// nobody owns it any more), 0 = another proxy registered it meanwhile (nothing changes).
const ADOPT: &str = r#"
local old = redis.call('HGET', KEYS[1], 'proxy_uuid')
if old and old ~= '' and old ~= ARGV[2] and old ~= ARGV[5] then
  return 0
end
redis.call('HSET', KEYS[1], 'username', ARGV[1], 'proxy_uuid', ARGV[2], 'utime', ARGV[3])
redis.call('HSETNX', KEYS[1], 'ctime', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"#;

const UNREGISTER: &str = r#"
if redis.call('HGET', KEYS[1], 'proxy_uuid') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// 1 = still ours (TTL refreshed, or re-created after Redis lost it), 0 = taken over.
const REFRESH: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'proxy_uuid')
if not cur then
  redis.call('HSET', KEYS[1], 'username', ARGV[3], 'proxy_uuid', ARGV[1], 'utime', ARGV[4], 'ctime', ARGV[4], 'incall', '', 'peer_name', '')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
elseif cur == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// Most names `list` returns.
const LIST_CAP: usize = 1000;

fn now_s() -> f64 {
    crate::store::now_ms() as f64 / 1000.0
}

struct Worker {
    conn: RedisConn,
    ns: &'static str,
    uuid: String,
    api_base_url: String,
    ttl: u64,
    /// Names this proxy registered and has not released.
    local: BTreeSet<String>,
    on_lost: OnLost,
}

impl Worker {
    fn user_key(&self, name: &str) -> String {
        format!("januscloud:{}_users:{name}", self.ns)
    }

    fn proxy_key(&self, uuid: &str) -> String {
        format!("januscloud:{}_proxies:{uuid}", self.ns)
    }

    /// True when the name is now ours; false when another proxy owns it and
    /// `allow_takeover` is off.
    fn register(&mut self, name: &str, allow_takeover: bool) -> Result<bool, StoreError> {
        let key = self.user_key(name);
        let (uuid, ttl) = (self.uuid.clone(), self.ttl);
        let old = self.conn.with(|c| {
            redis::Script::new(REGISTER)
                .key(&key)
                .arg(name)
                .arg(&uuid)
                .arg(now_s())
                .arg(ttl)
                .arg(if allow_takeover { "1" } else { "0" })
                .invoke::<String>(c)
        })?;
        if old == "!taken" {
            return Ok(false);
        }
        self.local.insert(name.to_string());
        Ok(true)
    }

    /// True when `name`, owned by the dead proxy `from` (or by nobody), is now ours.
    fn adopt(&mut self, name: &str, from: &str) -> Result<bool, StoreError> {
        let key = self.user_key(name);
        let (uuid, ttl) = (self.uuid.clone(), self.ttl);
        let ours = self.conn.with(|c| {
            redis::Script::new(ADOPT)
                .key(&key)
                .arg(name)
                .arg(&uuid)
                .arg(now_s())
                .arg(ttl)
                .arg(from)
                .invoke::<i64>(c)
        })? == 1;
        if ours {
            self.local.insert(name.to_string());
        }
        Ok(ours)
    }

    fn unregister(&mut self, name: &str) {
        self.local.remove(name);
        let key = self.user_key(name);
        let uuid = self.uuid.clone();
        if let Err(e) = self.conn.with(|c| {
            redis::Script::new(UNREGISTER)
                .key(&key)
                .arg(&uuid)
                .invoke::<i64>(c)
        }) {
            warn!(ns = self.ns, user = name, error = %e, "could not remove user from Redis");
        }
    }

    fn lookup(&mut self, name: &str) -> Result<Owner, StoreError> {
        let key = self.user_key(name);
        let owner: Option<String> = self
            .conn
            .with(|c| redis::cmd("HGET").arg(&key).arg("proxy_uuid").query(c))?;
        let Some(owner) = owner.filter(|o| !o.is_empty()) else {
            return Ok(Owner::Nobody);
        };
        if owner == self.uuid {
            return Ok(Owner::Us);
        }
        let pkey = self.proxy_key(&owner);
        let url: Option<String> = self
            .conn
            .with(|c| redis::cmd("HGET").arg(&pkey).arg("api_base_url").query(c))?;
        // A proxy that stopped refreshing is gone, and its users with it.
        Ok(url.map_or(Owner::Nobody, Owner::Proxy))
    }

    fn list(&mut self) -> Result<Vec<String>, StoreError> {
        let pattern = format!("januscloud:{}_users:*", self.ns);
        let prefix_len = pattern.len() - 1;
        let mut names = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.conn.with(|c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(100)
                    .query(c)
            })?;
            names.extend(keys.into_iter().map(|k| k[prefix_len..].to_string()));
            cursor = next;
            if cursor == 0 || names.len() >= LIST_CAP {
                break;
            }
        }
        Ok(names.into_iter().take(LIST_CAP).collect())
    }

    /// Re-announces this proxy and its users; reports names taken over elsewhere.
    fn refresh(&mut self) {
        let pkey = self.proxy_key(&self.uuid);
        let (url, ttl) = (self.api_base_url.clone(), self.ttl);
        let announced = self.conn.with(|c| {
            redis::pipe()
                .hset(&pkey, "api_base_url", &url)
                .ignore()
                .expire(&pkey, ttl as i64)
                .ignore()
                .query::<()>(c)
        });
        if let Err(e) = announced {
            warn!(ns = self.ns, error = %e, "user directory refresh failed; retrying next round");
            return;
        }
        let names: Vec<String> = self.local.iter().cloned().collect();
        for name in names {
            let key = self.user_key(&name);
            let uuid = self.uuid.clone();
            let mine = self.conn.with(|c| {
                redis::Script::new(REFRESH)
                    .key(&key)
                    .arg(&uuid)
                    .arg(ttl)
                    .arg(&name)
                    .arg(now_s())
                    .invoke::<i64>(c)
            });
            match mine {
                Ok(1) => {}
                Ok(_) => {
                    info!(ns = self.ns, user = %name, "username taken over by another proxy");
                    self.local.remove(&name);
                    (self.on_lost)(&name);
                }
                Err(e) => {
                    warn!(ns = self.ns, error = %e, "user directory refresh failed; retrying next round");
                    return;
                }
            }
        }
    }

    fn run(mut self, rx: Receiver<Op>, every: Duration) {
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                self.refresh();
                next = Instant::now() + every;
            }
            match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(Op::Register(name, takeover, reply)) => {
                    let _ = reply.send(self.register(&name, takeover));
                }
                Ok(Op::Adopt(name, from, reply)) => {
                    let _ = reply.send(self.adopt(&name, &from));
                }
                Ok(Op::Unregister(name)) => self.unregister(&name),
                Ok(Op::Lookup(name, reply)) => {
                    let _ = reply.send(self.lookup(&name));
                }
                Ok(Op::List(reply)) => {
                    let _ = reply.send(self.list());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

impl RedisUsers {
    /// Starts the directory thread of namespace `ns`. `api_base_url` is how other proxies
    /// reach this one (`http://host:port/plugins/<ns>`).
    ///
    /// # Errors
    /// A malformed Redis URL, or Redis unreachable at start.
    pub fn start(
        url: &str,
        ns: &'static str,
        api_base_url: String,
        refresh: Duration,
        on_lost: OnLost,
    ) -> Result<RedisUsers, StoreError> {
        let mut conn = RedisConn::new(url)?;
        conn.ping()?;
        let uuid = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let (tx, rx) = crossbeam_channel::unbounded();
        let worker = Worker {
            conn,
            ns,
            uuid: uuid.clone(),
            api_base_url,
            ttl: (refresh.as_secs() * 3).max(3),
            local: BTreeSet::new(),
            on_lost,
        };
        std::thread::Builder::new()
            .name(format!("{ns}-users"))
            .spawn(move || worker.run(rx, refresh))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(RedisUsers { tx, uuid })
    }

    async fn ask<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(op(tx))
            .map_err(|_| StoreError::Unavailable("directory thread stopped".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("directory thread stopped".into())))
    }

    /// Registers `name` to this proxy. False when another proxy owns it and
    /// `allow_takeover` is off (nothing changed then).
    ///
    /// # Errors
    /// Redis unavailable.
    pub async fn register(&self, name: &str, allow_takeover: bool) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.ask(|r| Op::Register(name, allow_takeover, r)).await
    }

    /// Takes `name` from `from`, the directory uuid of a dead proxy whose handle this
    /// proxy adopted. False when another proxy registered it meanwhile.
    ///
    /// # Errors
    /// Redis unavailable.
    pub async fn adopt(&self, name: &str, from: &str) -> Result<bool, StoreError> {
        let (name, from) = (name.to_string(), from.to_string());
        self.ask(|r| Op::Adopt(name, from, r)).await
    }

    pub fn unregister(&self, name: &str) {
        let _ = self.tx.send(Op::Unregister(name.to_string()));
    }

    /// # Errors
    /// Redis unavailable.
    pub async fn lookup(&self, name: &str) -> Result<Owner, StoreError> {
        let name = name.to_string();
        self.ask(|r| Op::Lookup(name, r)).await
    }

    /// # Errors
    /// Redis unavailable.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.ask(Op::List).await
    }
}
