//! Owners in Redis: which proxy of a cluster serves each of a namespace's ids (a plugin's
//! rooms, say), so that every proxy sends the work of an id to the same one.
//!
//! Key `januscloud:<ns>_owner:<id>`: a string, the owner's address (how the others reach
//! it), with a TTL of `ttl`, refreshed every `ttl/3` by the owner while it lives (and
//! written again if Redis lost it). A proxy that dies stops refreshing: its ids are free
//! once the TTL ran out, and the next claim takes them.
//!
//! A claim is one Lua script (read the owner; take the id if it has none and the caller
//! may take it; refresh it if it is the caller's), so two proxies claiming at once cannot
//! both win. All Redis work happens on one thread per namespace; shards send it requests
//! and await the answers, and every request they wait for is one round trip (counted).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use futures_channel::oneshot;
use tracing::{info, warn};

use super::redis_conn::RedisConn;
use super::StoreError;

/// The owner of `KEYS[1]` ('' for none). With `ARGV[3]` = '1' (the caller may own it) an id
/// without owner becomes `ARGV[1]`'s, and an id of `ARGV[1]` has its TTL (`ARGV[2]` ms)
/// renewed; without, an id of `ARGV[1]` is a leftover of its previous run (same address)
/// and is freed.
const CLAIM: &str = r#"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] and ARGV[3] ~= '1' then
  redis.call('DEL', KEYS[1])
  return ''
end
if v then
  if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
  return v
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return ''
"#;

/// 1 = still ours (renewed), 2 = ours, written again after Redis lost it, 0 = another's.
const REFRESH: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
elseif v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Takes `KEYS[1]` from a dead owner (`ARGV[3]`) or from none, for `ARGV[1]` with a TTL of
/// `ARGV[2]` ms; answers {owner now, field `ARGV[4]` of hash `KEYS[2]` ('' for none)}, so that
/// the taker gets, in the same round trip, what the dead owner left of the id.
const TAKE_OVER: &str = r#"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[3] or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  v = ARGV[1]
end
local state = redis.call('HGET', KEYS[2], ARGV[4])
return {v, state or ''}
"#;

/// What the refresh found of an id of this proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Another proxy took it.
    Lost,
    /// Its key was gone (Redis restarted empty, or lost it): written again. What the
    /// owner keeps in Redis besides the key is gone too.
    Restored,
}

/// Called (on the owner thread) with what a refresh found of an id; the callback must
/// only post work to the shards.
pub type OnRefresh = Box<dyn Fn(u64, Found) + Send>;

/// What a take-over found: the owner now, and the state the dead owner left.
pub type TakenOver = Result<(String, Option<String>), StoreError>;

enum Op {
    Claim(u64, bool, oneshot::Sender<Result<String, StoreError>>),
    TakeOver {
        id: u64,
        dead: String,
        state_key: String,
        reply: oneshot::Sender<TakenOver>,
    },
    Release(u64),
}

/// The handle shards use; cheap to clone.
#[derive(Clone)]
pub struct RedisOwners {
    tx: Sender<Op>,
    /// This proxy's address, as the owner of its ids.
    pub me: String,
    /// Round trips made for requests someone waited for (claims and lookups).
    pub round_trips: Arc<AtomicU64>,
}

struct Worker {
    conn: RedisConn,
    ns: &'static str,
    me: String,
    ttl_ms: u64,
    /// Ids this proxy owns (shared with the shards, which need no round trip for them).
    local: Arc<Mutex<BTreeSet<u64>>>,
    round_trips: Arc<AtomicU64>,
    on_refresh: OnRefresh,
}

impl Worker {
    fn key(&self, id: u64) -> String {
        format!("januscloud:{}_owner:{id}", self.ns)
    }

    fn claim(&mut self, id: u64, may_take: bool) -> Result<String, StoreError> {
        let key = self.key(id);
        let (me, ttl) = (self.me.clone(), self.ttl_ms);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let owner = self.conn.with(|c| {
            redis::Script::new(CLAIM)
                .key(&key)
                .arg(&me)
                .arg(ttl)
                .arg(if may_take { "1" } else { "0" })
                .invoke::<String>(c)
        })?;
        if owner == self.me {
            if let Ok(mut l) = self.local.lock() {
                l.insert(id);
            }
        }
        Ok(owner)
    }

    fn take_over(&mut self, id: u64, dead: &str, state_key: &str) -> TakenOver {
        let key = self.key(id);
        let (me, ttl) = (self.me.clone(), self.ttl_ms);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let (owner, state) = self.conn.with(|c| {
            redis::Script::new(TAKE_OVER)
                .key(&key)
                .key(state_key)
                .arg(&me)
                .arg(ttl)
                .arg(dead)
                .arg(id.to_string())
                .invoke::<(String, String)>(c)
        })?;
        if owner == self.me {
            if let Ok(mut l) = self.local.lock() {
                l.insert(id);
            }
        }
        Ok((owner, (!state.is_empty()).then_some(state)))
    }

    fn release(&mut self, id: u64) {
        if !self.local.lock().is_ok_and(|mut l| l.remove(&id)) {
            return;
        }
        let key = self.key(id);
        let me = self.me.clone();
        if let Err(e) = self.conn.with(|c| {
            redis::Script::new(RELEASE)
                .key(&key)
                .arg(&me)
                .invoke::<i64>(c)
        }) {
            warn!(ns = self.ns, id, error = %e, "could not release an owner key (it expires)");
        }
    }

    fn refresh(&mut self) {
        let ids: Vec<u64> = self
            .local
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            let key = self.key(id);
            let (me, ttl) = (self.me.clone(), self.ttl_ms);
            let mine = self.conn.with(|c| {
                redis::Script::new(REFRESH)
                    .key(&key)
                    .arg(&me)
                    .arg(ttl)
                    .invoke::<i64>(c)
            });
            match mine {
                Ok(1) => {}
                Ok(2) => (self.on_refresh)(id, Found::Restored),
                Ok(_) => {
                    info!(ns = self.ns, id, "id owned by another proxy now");
                    if let Ok(mut l) = self.local.lock() {
                        l.remove(&id);
                    }
                    (self.on_refresh)(id, Found::Lost);
                }
                Err(e) => {
                    warn!(ns = self.ns, error = %e, "owner refresh failed; retrying next round");
                    return;
                }
            }
        }
    }

    fn run(mut self, rx: Receiver<Op>, every: Duration) {
        let mut next = Instant::now() + every;
        loop {
            if Instant::now() >= next {
                self.refresh();
                next = Instant::now() + every;
            }
            match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(Op::Claim(id, may_take, reply)) => {
                    let _ = reply.send(self.claim(id, may_take));
                }
                Ok(Op::TakeOver {
                    id,
                    dead,
                    state_key,
                    reply,
                }) => {
                    let _ = reply.send(self.take_over(id, &dead, &state_key));
                }
                Ok(Op::Release(id)) => self.release(id),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

impl RedisOwners {
    /// Starts the owner thread of namespace `ns`; `me` is this proxy's address, `owned`
    /// the set of ids it owns, kept up to date by the thread; `on_refresh` hears of the
    /// ids another proxy took, and of those whose key Redis had lost.
    ///
    /// # Errors
    /// A malformed Redis URL, or Redis unreachable at start.
    pub fn start(
        url: &str,
        ns: &'static str,
        me: String,
        ttl: Duration,
        owned: Arc<Mutex<BTreeSet<u64>>>,
        on_refresh: OnRefresh,
    ) -> Result<RedisOwners, StoreError> {
        let mut conn = RedisConn::new(url)?;
        conn.ping()?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let round_trips = Arc::new(AtomicU64::new(0));
        let ttl_ms = (ttl.as_millis() as u64).max(1000);
        let worker = Worker {
            conn,
            ns,
            me: me.clone(),
            ttl_ms,
            local: owned,
            round_trips: round_trips.clone(),
            on_refresh,
        };
        std::thread::Builder::new()
            .name(format!("{ns}-owners"))
            .spawn(move || worker.run(rx, Duration::from_millis(ttl_ms / 3)))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(RedisOwners {
            tx,
            me,
            round_trips,
        })
    }

    /// The owner of `id` ("" for none), taking it when it has none and `may_take` (without
    /// `may_take`, a key naming this proxy is a leftover of an earlier run: it is freed).
    ///
    /// # Errors
    /// Redis unavailable.
    pub async fn claim(&self, id: u64, may_take: bool) -> Result<String, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Claim(id, may_take, tx))
            .map_err(|_| StoreError::Unavailable("owner thread stopped".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("owner thread stopped".into())))
    }

    /// Takes `id` from `dead`, a proxy known to be dead (or from nobody): the owner now
    /// (this proxy, unless a live one has it), and field `id` of hash `state_key`, where
    /// the dead owner kept what it held of the id.
    ///
    /// # Errors
    /// Redis unavailable.
    pub async fn take_over(&self, id: u64, dead: &str, state_key: &str) -> TakenOver {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::TakeOver {
                id,
                dead: dead.to_string(),
                state_key: state_key.to_string(),
                reply,
            })
            .map_err(|_| StoreError::Unavailable("owner thread stopped".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("owner thread stopped".into())))
    }

    /// Gives `id` up if this proxy owns it.
    pub fn release(&self, id: u64) {
        let _ = self.tx.send(Op::Release(id));
    }
}
