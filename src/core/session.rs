//! Frontend sessions and handles owned by one shard, and the index from client
//! connections to the sessions they own (sessions of HTTP clients have an event queue
//! instead of a connection). Pure state: no I/O, no clock reads (callers pass `now`), so
//! expiry rules are tested directly.

use std::rc::Rc;
use std::time::{Duration, Instant};

use ahash::AHashMap;

use std::any::Any;

use super::http_api::HttpEvents;
use super::plugin::AnyPlugin;

/// A client connection anywhere in the proxy: the shard that accepted it and its id there.
/// An HTTP request's one-answer connection has [`HTTP_REQUEST`] set in its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub shard: u16,
    pub id: u64,
}

/// The id bit of an HTTP request's connection: it gets the request's answer, and never
/// owns a session (sessions it creates or claims get an HTTP event queue instead).
pub const HTTP_REQUEST: u64 = 1 << 63;

impl ConnRef {
    pub fn is_http_request(&self) -> bool {
        self.id & HTTP_REQUEST != 0
    }
}

pub struct Handle {
    pub id: u64,
    pub plugin: &'static dyn AnyPlugin,
    pub opaque_id: Option<Rc<str>>,
    /// The plugin's own state of the handle (its `Plugin::Handle`).
    pub state: Rc<dyn Any>,
}

pub struct Session {
    pub id: u64,
    /// The connection that receives this session's events; `None` while orphaned
    /// (its socket closed and it waits to be claimed).
    pub owner: Option<ConnRef>,
    pub last_activity: Instant,
    pub orphaned_at: Option<Instant>,
    pub handles: Handles,
    /// Attaches still waiting for their plugin (they count against the handle limit).
    pub attaching: u32,
    /// Created or claimed over HTTP: its events wait here for long polls (`owner` is then
    /// `None`, and the session is not orphaned).
    /// Boxed: most sessions are WebSocket ones, and an idle one should cost little.
    pub http: Option<Box<HttpEvents>>,
}

/// A session's handles. A list, not a map: sessions hold few handles (janus.js: one or
/// two; at most `limits.max_handles_per_session`), so a scan costs nothing, and a list of
/// one costs a fifth of a hash map's smallest table (issue 12: memory per idle client).
#[derive(Default)]
pub struct Handles(Vec<Handle>);

impl Handles {
    pub fn get(&self, id: &u64) -> Option<&Handle> {
        self.0.iter().find(|h| h.id == *id)
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Handle> {
        self.0.iter_mut().find(|h| h.id == *id)
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Adds `h` under `id` (its own id); the one it replaces, if any.
    pub fn insert(&mut self, id: u64, h: Handle) -> Option<Handle> {
        debug_assert_eq!(id, h.id);
        match self.0.iter_mut().find(|x| x.id == id) {
            Some(old) => Some(std::mem::replace(old, h)),
            None => {
                // Room for one first: most sessions never hold a second handle, and a
                // `Vec`'s first growth would make room for four.
                if self.0.capacity() == 0 {
                    self.0.reserve_exact(1);
                }
                self.0.push(h);
                None
            }
        }
    }

    pub fn remove(&mut self, id: &u64) -> Option<Handle> {
        let i = self.0.iter().position(|h| h.id == *id)?;
        let h = self.0.swap_remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(h)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Handle)> {
        self.0.iter().map(|h| (&h.id, h))
    }
}

impl IntoIterator for Handles {
    type Item = (u64, Handle);
    type IntoIter = std::iter::Map<std::vec::IntoIter<Handle>, fn(Handle) -> (u64, Handle)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().map(|h| (h.id, h))
    }
}

/// Why a session is being destroyed by the shard itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request within `session_timeout`: the client is told with a `timeout` event.
    Timeout,
    /// Orphaned for longer than `reclaim_session_timeout`.
    NotReclaimed,
    /// Its HTTP event queue overflowed: nobody polls it.
    SlowReader,
}

#[derive(Default)]
pub struct Sessions {
    map: AHashMap<u64, Session>,
    by_conn: AHashMap<ConnRef, ConnSessions>,
}

/// The sessions of one connection: a short list (janus.js holds one; at most
/// `max_sessions_per_connection`), a fraction of a hash set's smallest table.
#[derive(Default)]
struct ConnSessions(Vec<u64>);

impl ConnSessions {
    fn insert(&mut self, id: u64) {
        if !self.0.contains(&id) {
            if self.0.capacity() == 0 {
                self.0.reserve_exact(1);
            }
            self.0.push(id);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.0.iter().position(|&x| x == id) {
            self.0.swap_remove(i);
        }
    }
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.map.contains_key(&id)
    }

    pub fn get(&self, id: u64) -> Option<&Session> {
        self.map.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Session> {
        self.map.get_mut(&id)
    }

    /// Sessions owned by `conn` on this shard.
    pub fn count_of(&self, conn: ConnRef) -> usize {
        self.by_conn.get(&conn).map_or(0, |s| s.0.len())
    }

    /// A new session owned by `owner`, or with an HTTP event queue when `owner` is an
    /// HTTP request.
    pub fn insert(&mut self, id: u64, owner: ConnRef, now: Instant) {
        let http = owner.is_http_request();
        self.map.insert(
            id,
            Session {
                id,
                owner: (!http).then_some(owner),
                last_activity: now,
                orphaned_at: None,
                handles: Handles::default(),
                attaching: 0,
                http: http.then(Box::<HttpEvents>::default),
            },
        );
        if !http {
            self.by_conn.entry(owner).or_default().insert(id);
        }
    }

    /// A session adopted from a dead proxy: orphaned (no owner) until its client claims
    /// it; it expires `reclaim_session_timeout` after `orphaned_at`, which may lie ahead.
    pub fn adopt(&mut self, id: u64, now: Instant, orphaned_at: Instant) {
        self.map.insert(
            id,
            Session {
                id,
                owner: None,
                last_activity: now,
                orphaned_at: Some(orphaned_at),
                handles: Handles::default(),
                attaching: 0,
                http: None,
            },
        );
    }

    pub fn remove(&mut self, id: u64) -> Option<Session> {
        let s = self.map.remove(&id)?;
        if let Some(o) = s.owner {
            self.unindex(o, id);
        }
        Some(s)
    }

    fn unindex(&mut self, conn: ConnRef, id: u64) {
        if let Some(set) = self.by_conn.get_mut(&conn) {
            set.remove(id);
            if set.0.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    /// Moves a session to `conn` (claim). `None` if there is no such session, else the
    /// connection that owned it before (`Some(None)` when it was orphaned).
    ///
    /// A claim over HTTP gives the session a fresh event queue (long polls of the old one
    /// end); a claim over a WebSocket ends its HTTP queue, as Janus's transports do.
    pub fn claim(&mut self, id: u64, conn: ConnRef, now: Instant) -> Option<Option<ConnRef>> {
        let s = self.map.get_mut(&id)?;
        let http = conn.is_http_request();
        let old = if http {
            s.owner.take()
        } else {
            s.owner.replace(conn)
        };
        s.http = http.then(Box::<HttpEvents>::default);
        s.orphaned_at = None;
        s.last_activity = now;
        if let Some(o) = old {
            self.unindex(o, id);
        }
        if !http {
            self.by_conn.entry(conn).or_default().insert(id);
        }
        Some(old)
    }

    /// The connection `conn` closed: its sessions become orphans (to be claimed within
    /// the reclaim window) or, without a window, are returned for destruction.
    pub fn connection_closed(
        &mut self,
        conn: ConnRef,
        reclaim: Duration,
        now: Instant,
    ) -> Vec<u64> {
        let Some(ids) = self.by_conn.remove(&conn) else {
            return Vec::new();
        };
        if reclaim.is_zero() {
            return ids.0;
        }
        for id in ids.0 {
            if let Some(s) = self.map.get_mut(&id) {
                s.owner = None;
                s.orphaned_at = Some(now);
            }
        }
        Vec::new()
    }

    /// Sessions to destroy now, and why. `timeout` zero disables the activity timeout.
    pub fn expired(
        &self,
        now: Instant,
        timeout: Duration,
        reclaim: Duration,
    ) -> Vec<(u64, Expiry)> {
        self.map
            .values()
            .filter_map(|s| {
                if s.http.as_ref().is_some_and(|h| h.overflowed) {
                    return Some((s.id, Expiry::SlowReader));
                }
                if let Some(t) = s.orphaned_at {
                    // `t` lies ahead for an adopted session.
                    if now.checked_duration_since(t).is_some_and(|d| d >= reclaim) {
                        return Some((s.id, Expiry::NotReclaimed));
                    }
                }
                if !timeout.is_zero() && now.duration_since(s.last_activity) >= timeout {
                    return Some((s.id, Expiry::Timeout));
                }
                None
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnRef = ConnRef { shard: 0, id: 1 };
    const B: ConnRef = ConnRef { shard: 1, id: 2 };

    #[test]
    fn claim_moves_ownership() {
        let now = Instant::now();
        let mut s = Sessions::default();
        s.insert(10, A, now);
        assert_eq!(s.count_of(A), 1);
        assert_eq!(s.claim(10, B, now), Some(Some(A)));
        assert_eq!((s.count_of(A), s.count_of(B)), (0, 1));
        assert_eq!(s.get(10).unwrap().owner, Some(B));
        assert_eq!(s.claim(11, B, now), None);
        // The old connection closing no longer affects the session.
        assert!(s.connection_closed(A, Duration::ZERO, now).is_empty());
        assert!(s.contains(10));
    }

    #[test]
    fn close_without_reclaim_destroys() {
        let now = Instant::now();
        let mut s = Sessions::default();
        s.insert(1, A, now);
        s.insert(2, A, now);
        let mut gone = s.connection_closed(A, Duration::ZERO, now);
        gone.sort();
        assert_eq!(gone, [1, 2]);
    }

    #[test]
    fn orphans_expire_after_reclaim_window() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.insert(1, A, t0);
        assert!(s
            .connection_closed(A, Duration::from_secs(5), t0)
            .is_empty());
        assert_eq!(s.get(1).unwrap().owner, None);
        let none = s.expired(
            t0 + Duration::from_secs(4),
            Duration::ZERO,
            Duration::from_secs(5),
        );
        assert!(none.is_empty());
        let due = s.expired(
            t0 + Duration::from_secs(5),
            Duration::ZERO,
            Duration::from_secs(5),
        );
        assert_eq!(due, [(1, Expiry::NotReclaimed)]);
        assert_eq!(s.claim(1, B, t0), Some(None));
        assert!(s
            .expired(
                t0 + Duration::from_secs(9),
                Duration::ZERO,
                Duration::from_secs(5)
            )
            .is_empty());
    }

    #[test]
    fn adopted_sessions_wait_for_their_claim() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.adopt(1, t0, t0 + Duration::from_secs(30));
        assert_eq!(s.get(1).unwrap().owner, None);
        let at = |secs| t0 + Duration::from_secs(secs);
        // Without a frontend reclaim window, it waits until orphaned_at.
        assert!(s.expired(at(29), Duration::ZERO, Duration::ZERO).is_empty());
        assert_eq!(
            s.expired(at(30), Duration::ZERO, Duration::ZERO),
            [(1, Expiry::NotReclaimed)]
        );
        assert_eq!(s.claim(1, A, at(10)), Some(None));
        assert!(s.expired(at(40), Duration::ZERO, Duration::ZERO).is_empty());
    }

    #[test]
    fn activity_timeout() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        s.insert(1, A, t0);
        let t = Duration::from_secs(60);
        assert!(s
            .expired(t0 + Duration::from_secs(59), t, Duration::ZERO)
            .is_empty());
        assert_eq!(s.expired(t0 + t, t, Duration::ZERO), [(1, Expiry::Timeout)]);
        assert!(s.expired(t0 + t, Duration::ZERO, Duration::ZERO).is_empty());
    }
}
