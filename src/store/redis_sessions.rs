//! The cluster's session directory in Redis (`[cluster] session_db`): this proxy's
//! heartbeat, the records other proxies need to adopt its client sessions, and the atomic
//! adoption of a dead proxy's sessions.
//!
//! Keys (prefix `januscloud:cluster:`), where a proxy's name is `<proxy_name>#<random>`,
//! drawn at each start:
//! - `proxy:<name>`: the heartbeat, the time of its last refresh (ms), with a TTL;
//! - `session:<id>`: hash `owner` (proxy name), `h:<handle id>` (the handle's record, JSON
//!   [`HandleRecord`]) and `b:<backend session key>` for each backend session its handles
//!   use; refreshed TTL `record_ttl`;
//! - `bsession:<server url>|<backend session id>`: hash `owner` and `s:<session id>` for
//!   each client session with handles in it.
//!
//! The worker keeps a copy of everything this proxy wrote: when its heartbeat key is found
//! missing (Redis restarted without its data), it writes its sessions back (those no
//! other proxy took meanwhile).
//!
//! Adoption is one Lua script: if the session's owner has no heartbeat, the script gives
//! the session, every backend session it uses and every client session of those (the
//! closure) to the caller, so that two proxies adopting at once cannot both win. All Redis
//! work runs on the directory's own thread; shards queue writes (never waiting) and await
//! adoptions. What a record means is the core's business.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use futures_channel::oneshot;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::redis_conn::RedisConn;
use super::StoreError;

const PREFIX: &str = "januscloud:cluster:";

/// Most operations waiting for Redis; beyond, writes are dropped with a warning (a shard
/// never waits).
const QUEUE: usize = 65_536;

/// Most client sessions one adoption takes.
const MAX_ADOPTED: usize = 10_000;

/// What another proxy needs to rebuild one client handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleRecord {
    /// The Janus package the client attached to.
    pub plugin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque_id: Option<String>,
    /// The backend handle behind it, when its plugin says it can be adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendRecord>,
    /// The plugin's own state, when it needs more than the backend handle to adopt it
    /// (JSON of the plugin's choosing, opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl HandleRecord {
    /// Whether another proxy can adopt the handle (its plugin described it).
    pub fn adoptable(&self) -> bool {
        self.backend.is_some() || self.state.is_some()
    }
}

/// A handle on a backend Janus: server URL, Janus session and handle ids there; with
/// `peer`, a handle on another proxy of the cluster (its `peer_url`, and the client session
/// and handle ids there).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BackendRecord {
    pub server: String,
    pub session: u64,
    pub handle: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub peer: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl BackendRecord {
    /// The backend session's key: `<url>|<id>`.
    pub fn session_key(&self) -> String {
        format!("{}|{}", self.server, self.session)
    }
}

/// One adopted client session and its handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: u64,
    pub handles: Vec<(u64, HandleRecord)>,
}

/// The answer to an adoption request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// No record of that session.
    Unknown,
    /// This proxy owns it already (another claim adopted it).
    Ours,
    /// Its owner is alive; `stamp` is its heartbeat's last refresh.
    OwnerAlive { owner: String, stamp: String },
    /// Ours now: the sessions taken from the dead `from`.
    Adopted {
        from: String,
        sessions: Vec<SessionRecord>,
    },
}

pub use super::Written;

enum Op {
    Session {
        id: u64,
        up: bool,
        /// For a session going: the backend sessions it was written into (filled in by
        /// the worker from its mirror).
        linked: Vec<String>,
        done: Option<oneshot::Sender<()>>,
    },
    Handle {
        session: u64,
        handle: u64,
        /// The record as JSON and its backend session key; `None` = the handle is gone.
        record: Option<(String, Option<String>)>,
        done: Option<oneshot::Sender<()>>,
    },
    ForgetBackendSession(String),
    Adopt(u64, oneshot::Sender<Result<Adoption, StoreError>>),
    Stop(crossbeam_channel::Sender<()>),
}

/// The handle shards use; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct SessionDirectory {
    tx: Sender<Op>,
    /// Whether the last Redis command worked: while it does not, callers do not wait for
    /// their writes (they stay queued).
    healthy: Arc<AtomicBool>,
    /// This proxy's name in the cluster.
    pub name: String,
}

/// Returns {'none'}, {'mine'}, {'alive', owner, stamp} or {'adopted', owner, key...}.
const ADOPT: &str = r#"
local prefix = ARGV[2]
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return {'none'} end
if owner == ARGV[1] then return {'mine'} end
local stamp = redis.call('GET', prefix .. 'proxy:' .. owner)
if stamp then return {'alive', owner, stamp} end
local out = {'adopted', owner}
local queue = {KEYS[1]}
local seen = {[KEYS[1]] = true}
local i = 1
while i <= #queue and i <= tonumber(ARGV[3]) do
  local skey = queue[i]
  i = i + 1
  if redis.call('HGET', skey, 'owner') == owner then
    redis.call('HSET', skey, 'owner', ARGV[1])
    table.insert(out, skey)
    for _, f in ipairs(redis.call('HKEYS', skey)) do
      if string.sub(f, 1, 2) == 'b:' then
        local bkey = prefix .. 'bsession:' .. string.sub(f, 3)
        if not seen[bkey] then
          seen[bkey] = true
          if redis.call('HGET', bkey, 'owner') == owner then
            redis.call('HSET', bkey, 'owner', ARGV[1])
            for _, g in ipairs(redis.call('HKEYS', bkey)) do
              if string.sub(g, 1, 2) == 's:' then
                local s2 = prefix .. 'session:' .. string.sub(g, 3)
                if not seen[s2] then
                  seen[s2] = true
                  table.insert(queue, s2)
                end
              end
            end
          end
        end
      end
    end
  end
end
return out
"#;

fn session_key(id: u64) -> String {
    format!("{PREFIX}session:{id}")
}

fn bsession_key(key: &str) -> String {
    format!("{PREFIX}bsession:{key}")
}

fn proxy_key(name: &str) -> String {
    format!("{PREFIX}proxy:{name}")
}

struct Worker {
    conn: RedisConn,
    healthy: Arc<AtomicBool>,
    name: String,
    heartbeat_ttl: u64,
    record_ttl: u64,
    /// Everything this proxy has in Redis, to write again if Redis loses it (a restart
    /// without persistence): its sessions, their handle records and backend sessions.
    mirror: BTreeMap<u64, Mirrored>,
    /// Whether a heartbeat was written before: if its key is gone at the next one,
    /// Redis lost its data and the mirror is written back.
    beaten: bool,
    /// The mirror must be written back (retried at each heartbeat until done).
    restore_pending: bool,
}

/// One session of this proxy as it is in Redis.
#[derive(Default)]
struct Mirrored {
    handles: BTreeMap<u64, String>,
    backends: BTreeSet<String>,
}

/// Writes one session of this proxy back, unless another proxy owns it now. `KEYS[1]` is
/// the session, `KEYS[2..]` its backend sessions; ARGV: name, TTL, session id, then field,
/// value pairs.
const RESTORE: &str = r#"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = 2, #KEYS do
  local o = redis.call('HGET', KEYS[i], 'owner')
  if (not o) or o == ARGV[1] then
    redis.call('HSET', KEYS[i], 'owner', ARGV[1], 's:' .. ARGV[3], 1)
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
return 1
"#;

impl Worker {
    fn heartbeat(&mut self) -> Result<(), StoreError> {
        let key = proxy_key(&self.name);
        let ttl = self.heartbeat_ttl;
        let r = self.conn.with(|c| {
            redis::pipe()
                .exists(&key)
                .cmd("SET")
                .arg(&key)
                .arg(crate::store::now_ms())
                .arg("EX")
                .arg(ttl)
                .ignore()
                .query::<(bool,)>(c)
        });
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
        let (existed,) = r?;
        if !existed && self.beaten {
            warn!("cluster heartbeat was missing from Redis (restarted?): writing this proxy's sessions back");
            self.restore_pending = true;
        }
        self.beaten = true;
        if self.restore_pending {
            self.restore()?;
            self.restore_pending = false;
        }
        Ok(())
    }

    /// Writes every session of the mirror back (those no other proxy took meanwhile).
    fn restore(&mut self) -> Result<(), StoreError> {
        let (name, ttl) = (self.name.clone(), self.record_ttl);
        let mut restored = 0usize;
        for (sid, m) in &self.mirror {
            let restored_one = self.conn.with(|c| {
                let script = redis::Script::new(RESTORE);
                let mut inv = script.key(session_key(*sid));
                for b in &m.backends {
                    inv.key(bsession_key(b));
                }
                inv.arg(&name).arg(ttl).arg(sid);
                for (hid, json) in &m.handles {
                    inv.arg(format!("h:{hid}")).arg(json);
                }
                for b in &m.backends {
                    inv.arg(format!("b:{b}")).arg(1);
                }
                inv.invoke::<i64>(c)
            })?;
            restored += restored_one as usize;
        }
        info!(sessions = restored, "cluster records written back");
        Ok(())
    }

    /// Keeps the mirror in step with a write about to be made.
    fn mirror(&mut self, op: &mut Op) {
        match op {
            Op::Session { id, up: true, .. } => {
                self.mirror.entry(*id).or_default();
            }
            Op::Session {
                id,
                up: false,
                linked,
                ..
            } => {
                if let Some(m) = self.mirror.remove(id) {
                    *linked = m.backends.into_iter().collect();
                }
            }
            Op::Handle {
                session,
                handle,
                record: Some((json, b)),
                ..
            } => {
                let m = self.mirror.entry(*session).or_default();
                m.handles.insert(*handle, json.clone());
                if let Some(b) = b {
                    m.backends.insert(b.clone());
                }
            }
            Op::Handle {
                session,
                handle,
                record: None,
                ..
            } => {
                if let Some(m) = self.mirror.get_mut(session) {
                    m.handles.remove(handle);
                }
            }
            _ => {}
        }
    }

    /// Applies a write; `Err` when Redis is away (the caller retries).
    fn write(&mut self, op: &Op) -> Result<(), StoreError> {
        let r = self.apply(op);
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
        r
    }

    fn apply(&mut self, op: &Op) -> Result<(), StoreError> {
        let (name, ttl) = (self.name.clone(), self.record_ttl as i64);
        match op {
            Op::Session { id, up: true, .. } => {
                let key = session_key(*id);
                self.conn.with(|c| {
                    redis::pipe()
                        .hset(&key, "owner", &name)
                        .ignore()
                        .expire(&key, ttl)
                        .ignore()
                        .query::<()>(c)
                })
            }
            Op::Session {
                id,
                up: false,
                linked,
                ..
            } => {
                let key = session_key(*id);
                let field = format!("s:{id}");
                self.conn.with(|c| {
                    let mut p = redis::pipe();
                    p.del(&key).ignore();
                    for b in linked {
                        p.hdel(bsession_key(b), &field).ignore();
                    }
                    p.query::<()>(c)
                })
            }
            Op::Handle {
                session,
                handle,
                record: Some((json, b)),
                ..
            } => {
                let key = session_key(*session);
                self.conn.with(|c| {
                    let mut p = redis::pipe();
                    p.hset(&key, "owner", &name)
                        .ignore()
                        .hset(&key, format!("h:{handle}"), json)
                        .ignore();
                    if let Some(b) = b {
                        let bkey = bsession_key(b);
                        p.hset(&key, format!("b:{b}"), 1)
                            .ignore()
                            .hset(&bkey, "owner", &name)
                            .ignore()
                            .hset(&bkey, format!("s:{session}"), 1)
                            .ignore()
                            .expire(&bkey, ttl)
                            .ignore();
                    }
                    p.expire(&key, ttl).ignore().query::<()>(c)
                })
            }
            Op::Handle {
                session,
                handle,
                record: None,
                ..
            } => {
                let key = session_key(*session);
                self.conn.with(|c| {
                    redis::cmd("HDEL")
                        .arg(&key)
                        .arg(format!("h:{handle}"))
                        .query::<()>(c)
                })
            }
            Op::ForgetBackendSession(b) => {
                let bkey = bsession_key(b);
                self.conn.with(|c| {
                    let owner: Option<String> =
                        redis::cmd("HGET").arg(&bkey).arg("owner").query(c)?;
                    if owner.as_deref() == Some(name.as_str()) {
                        redis::cmd("DEL").arg(&bkey).query::<()>(c)?;
                    }
                    Ok(())
                })
            }
            Op::Adopt(..) | Op::Stop(_) => Ok(()),
        }
    }

    fn adopt(&mut self, id: u64) -> Result<Adoption, StoreError> {
        let key = session_key(id);
        let name = self.name.clone();
        let out: Vec<String> = self.conn.with(|c| {
            redis::Script::new(ADOPT)
                .key(&key)
                .arg(&name)
                .arg(PREFIX)
                .arg(MAX_ADOPTED)
                .invoke(c)
        })?;
        let bad = || StoreError::Unavailable("unexpected answer of the adoption script".into());
        match out.first().map(String::as_str) {
            Some("none") => Ok(Adoption::Unknown),
            Some("mine") => Ok(Adoption::Ours),
            Some("alive") => Ok(Adoption::OwnerAlive {
                owner: out.get(1).cloned().ok_or_else(bad)?,
                stamp: out.get(2).cloned().unwrap_or_default(),
            }),
            Some("adopted") => {
                let from = out.get(1).cloned().ok_or_else(bad)?;
                let mut sessions = Vec::new();
                for skey in &out[2..] {
                    let Some(sid) = skey
                        .strip_prefix(PREFIX)
                        .and_then(|k| k.strip_prefix("session:"))
                        .and_then(|s| s.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    let fields: Vec<(String, String)> = self
                        .conn
                        .with(|c| redis::cmd("HGETALL").arg(skey).query(c))?;
                    let mut handles = Vec::new();
                    let mirrored = self.mirror.entry(sid).or_default();
                    for (f, v) in fields {
                        if let Some(b) = f.strip_prefix("b:") {
                            mirrored.backends.insert(b.to_string());
                        }
                        let Some(hid) = f.strip_prefix("h:").and_then(|h| h.parse::<u64>().ok())
                        else {
                            continue;
                        };
                        match serde_json::from_str::<HandleRecord>(&v) {
                            Ok(r) => {
                                mirrored.handles.insert(hid, v);
                                handles.push((hid, r));
                            }
                            Err(e) => {
                                warn!(session = sid, handle = hid, error = %e, "unreadable handle record skipped")
                            }
                        }
                    }
                    sessions.push(SessionRecord { id: sid, handles });
                }
                info!(from = %from, sessions = sessions.len(), "sessions adopted from a dead proxy");
                Ok(Adoption::Adopted { from, sessions })
            }
            _ => Err(bad()),
        }
    }

    fn run(mut self, rx: Receiver<Op>, every: Duration) {
        let mut next_beat = Instant::now();
        let mut waiting: VecDeque<Op> = VecDeque::new();
        let mut delay = Duration::from_millis(50);
        loop {
            if Instant::now() >= next_beat {
                match self.heartbeat() {
                    Ok(()) => next_beat = Instant::now() + every,
                    Err(e) => {
                        warn!(error = %e, "cluster heartbeat failed; retrying");
                        next_beat = Instant::now() + Duration::from_millis(500).min(every);
                    }
                }
            }
            // Writes that failed wait in order; new ones queue behind them.
            if let Some(op) = waiting.front() {
                match self.write(op) {
                    Ok(()) => {
                        if let Some(op) = waiting.pop_front() {
                            acknowledge(op);
                        }
                        delay = Duration::from_millis(50);
                    }
                    Err(e) => {
                        warn!(error = %e, queued = waiting.len(), "cluster record write failed; retrying");
                        std::thread::sleep(
                            delay.min(next_beat.saturating_duration_since(Instant::now())),
                        );
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                }
                // Serve adoptions and stops even while writes wait.
                while let Ok(op) = rx.try_recv() {
                    if self.serve(op, &mut waiting).is_some() {
                        return;
                    }
                }
                continue;
            }
            match rx.recv_timeout(next_beat.saturating_duration_since(Instant::now())) {
                Ok(op) => {
                    if self.serve(op, &mut waiting).is_some() {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Handles one request; `Some` when the worker must stop.
    fn serve(&mut self, op: Op, waiting: &mut VecDeque<Op>) -> Option<()> {
        match op {
            Op::Adopt(id, reply) => {
                let _ = reply.send(self.adopt(id));
            }
            Op::Stop(done) => {
                // The hand-off: without a heartbeat, other proxies adopt at once.
                let key = proxy_key(&self.name);
                for op in waiting.drain(..) {
                    if self.write(&op).is_ok() {
                        acknowledge(op);
                    }
                }
                if let Err(e) = self
                    .conn
                    .with(|c| redis::cmd("DEL").arg(&key).query::<()>(c))
                {
                    warn!(error = %e, "cannot delete the cluster heartbeat; it expires by itself");
                }
                let _ = done.send(());
                return Some(());
            }
            mut op => {
                self.mirror(&mut op);
                if !waiting.is_empty() {
                    waiting.push_back(op);
                } else {
                    match self.write(&op) {
                        Ok(()) => acknowledge(op),
                        Err(_) => waiting.push_back(op),
                    }
                }
            }
        }
        None
    }
}

/// Tells whoever waits for a write that it is in Redis.
fn acknowledge(op: Op) {
    if let Op::Session { done: Some(d), .. } | Op::Handle { done: Some(d), .. } = op {
        let _ = d.send(());
    }
}

impl SessionDirectory {
    /// Starts the directory thread. This process is known in the cluster as
    /// `<name>#<random>` (`name` "" = `proxy`): a proxy restarted under the same name is
    /// another owner, and adopts what its previous run left like any other proxy.
    ///
    /// # Errors
    /// A malformed URL, or Redis unreachable at start.
    pub fn start(
        url: &str,
        name: &str,
        heartbeat_ttl: Duration,
        record_ttl: Duration,
    ) -> Result<SessionDirectory, StoreError> {
        let mut conn = RedisConn::new(url)?;
        conn.ping()?;
        let base = if name.is_empty() { "proxy" } else { name };
        let name = format!("{base}#{:012x}", fastrand::u64(..1 << 48));
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let ttl = heartbeat_ttl.as_secs().max(2);
        let healthy = Arc::new(AtomicBool::new(true));
        let mut worker = Worker {
            conn,
            healthy: healthy.clone(),
            name: name.clone(),
            heartbeat_ttl: ttl,
            record_ttl: record_ttl.as_secs().max(60),
            mirror: BTreeMap::new(),
            beaten: false,
            restore_pending: false,
        };
        worker.heartbeat()?;
        let every = Duration::from_millis(ttl * 1000 / 3);
        std::thread::Builder::new()
            .name("cluster-sessions".into())
            .spawn(move || worker.run(rx, every))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(SessionDirectory { tx, healthy, name })
    }

    fn queue(&self, op: Op) {
        match self.tx.try_send(op) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => warn!("cluster record writes backed up; one dropped"),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// A client session was created here; the receiver fires once that is in Redis
    /// (`None` while Redis is away: the write waits in the queue, nobody should).
    pub fn session_up(&self, id: u64) -> Option<Written> {
        let (tx, rx) = self.waiter();
        self.queue(Op::Session {
            id,
            up: true,
            linked: Vec::new(),
            done: tx,
        });
        rx
    }

    fn waiter(&self) -> (Option<oneshot::Sender<()>>, Option<Written>) {
        if self.healthy.load(Ordering::Relaxed) {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        }
    }

    /// A client session is gone.
    pub fn session_down(&self, id: u64) {
        self.queue(Op::Session {
            id,
            up: false,
            linked: Vec::new(),
            done: None,
        });
    }

    /// A handle was attached; as [`SessionDirectory::session_up`].
    pub fn handle_up(&self, session: u64, handle: u64, record: HandleRecord) -> Option<Written> {
        let (tx, rx) = self.waiter();
        let json = serde_json::to_string(&record).unwrap_or_default();
        let b = record.backend.as_ref().map(BackendRecord::session_key);
        self.queue(Op::Handle {
            session,
            handle,
            record: Some((json, b)),
            done: tx,
        });
        rx
    }

    /// A handle is gone.
    pub fn handle_down(&self, session: u64, handle: u64) {
        self.queue(Op::Handle {
            session,
            handle,
            record: None,
            done: None,
        });
    }

    /// A backend session this proxy owned is gone.
    pub fn forget_backend_session(&self, key: String) {
        self.queue(Op::ForgetBackendSession(key));
    }

    /// Adopts client session `id` if its owner is dead.
    ///
    /// # Errors
    /// Redis unavailable, or the directory thread stopped.
    pub async fn adopt(&self, id: u64) -> Result<Adoption, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .try_send(Op::Adopt(id, tx))
            .map_err(|_| StoreError::Unavailable("session directory busy or stopped".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("session directory stopped".into())))
    }

    /// Writes what waits, deletes the heartbeat and stops the thread (the hand-off of a
    /// drain); waits at most `within`.
    pub fn stop(&self, within: Duration) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send_timeout(Op::Stop(tx), within).is_ok() {
            let _ = rx.recv_timeout(within);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_records_round_trip() {
        let r = HandleRecord {
            plugin: "janus.plugin.echotest".into(),
            opaque_id: None,
            backend: Some(BackendRecord {
                server: "ws://127.0.0.1:8188".into(),
                session: 7,
                handle: 9,
                peer: false,
            }),
            state: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"plugin":"janus.plugin.echotest","backend":{"server":"ws://127.0.0.1:8188","session":7,"handle":9}}"#
        );
        assert_eq!(serde_json::from_str::<HandleRecord>(&json).unwrap(), r);
        assert_eq!(r.backend.unwrap().session_key(), "ws://127.0.0.1:8188|7");
        let bare: HandleRecord = serde_json::from_str(r#"{"plugin":"x"}"#).unwrap();
        assert!(!bare.adoptable());
        assert_eq!((bare.opaque_id, bare.backend), (None, None));
        // A plugin's own state travels as a JSON string.
        let with_state = HandleRecord {
            plugin: "janus.plugin.videocall".into(),
            opaque_id: None,
            backend: None,
            state: Some(r#"{"user":"alice"}"#.into()),
        };
        let json = serde_json::to_string(&with_state).unwrap();
        assert_eq!(
            json,
            r#"{"plugin":"janus.plugin.videocall","state":"{\"user\":\"alice\"}"}"#
        );
        assert_eq!(
            serde_json::from_str::<HandleRecord>(&json).unwrap(),
            with_state
        );
        assert!(with_state.adoptable());
        // A handle on another proxy (a relayed VideoRoom handle) says so; others do not.
        let on_peer = BackendRecord {
            server: "ws://10.0.0.1:8188".into(),
            session: 3,
            handle: 4,
            peer: true,
        };
        let json = serde_json::to_string(&on_peer).unwrap();
        assert_eq!(
            json,
            r#"{"server":"ws://10.0.0.1:8188","session":3,"handle":4,"peer":true}"#
        );
        assert_eq!(
            serde_json::from_str::<BackendRecord>(&json).unwrap(),
            on_peer
        );
    }
}
