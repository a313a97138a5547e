//! Backend Janus servers as the whole proxy sees them: the shared entry that every
//! shard's link to that server refers to. The admin thread updates it (registrations,
//! heartbeats, deletions); shards read it lock-free when they select a server.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};

use crate::config::WsUrl;
use crate::store::ServerRecord;

/// Server status (spec 02 §3).
pub mod status {
    pub const NORMAL: u8 = 0;
    pub const ABNORMAL: u8 = 1;
    pub const MAINTENANCE: u8 = 2;
    pub const HWM: u8 = 3;
}

pub use crate::store::now_ms;

/// One backend server, shared by all shards (`Arc`). Everything mutable is atomic.
#[derive(Debug)]
pub struct ServerEntry {
    pub name: String,
    pub url: String,
    pub ws: WsUrl,
    /// Only `NORMAL` servers get new work.
    pub status: AtomicU8,
    /// Handles reported by the server's sentinel (−1 unknown).
    pub reported_handles: AtomicI64,
    /// Frontend handles this proxy currently has on the server, over all shards.
    pub proxy_handles: AtomicI64,
    /// Shards whose link to the server is up.
    pub links_up: AtomicI64,
    /// Validity after the last update, in seconds; 0 = never expires.
    expire_s: AtomicU64,
    utime_ms: AtomicU64,
    /// Deleted from the registry: no new work; links close once their handles are gone.
    removed: AtomicBool,
    /// Bumped when the server reports that it (re)started or recovered, so that links
    /// waiting out a reconnect backoff try again at once.
    pub kicks: AtomicU64,
    start_time_ms: AtomicU64,
}

impl ServerEntry {
    /// `None` if the record's URL is not a usable `ws://` URL.
    pub fn from_record(r: &ServerRecord) -> Option<ServerEntry> {
        let e = ServerEntry {
            name: r.name.clone(),
            url: r.url.clone(),
            ws: WsUrl::parse(&r.url)?,
            status: AtomicU8::new(r.status),
            reported_handles: AtomicI64::new(r.handle_num),
            proxy_handles: AtomicI64::new(0),
            links_up: AtomicI64::new(0),
            expire_s: AtomicU64::new(r.expire),
            utime_ms: AtomicU64::new((r.utime * 1000.0) as u64),
            removed: AtomicBool::new(false),
            kicks: AtomicU64::new(0),
            start_time_ms: AtomicU64::new((r.start_time * 1000.0) as u64),
        };
        Some(e)
    }

    /// The entry of another proxy of the cluster reached at `url` (a peer link's): never
    /// selectable, in no registry.
    pub fn peer(url: &str) -> Option<ServerEntry> {
        let e = ServerEntry {
            name: format!("proxy {url}"),
            url: url.to_string(),
            ws: WsUrl::parse(url)?,
            status: AtomicU8::new(status::MAINTENANCE),
            reported_handles: AtomicI64::new(-1),
            proxy_handles: AtomicI64::new(0),
            links_up: AtomicI64::new(0),
            expire_s: AtomicU64::new(0),
            utime_ms: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            kicks: AtomicU64::new(0),
            start_time_ms: AtomicU64::new(0),
        };
        Some(e)
    }

    /// Takes the mutable fields of a newer record of the same server.
    pub fn refresh(&self, r: &ServerRecord) {
        let old_status = self.status.swap(r.status, Ordering::Relaxed);
        let start = (r.start_time * 1000.0) as u64;
        let old_start = self.start_time_ms.swap(start, Ordering::Relaxed);
        if (old_status != r.status && r.status == status::NORMAL) || old_start != start {
            self.kicks.fetch_add(1, Ordering::Relaxed);
        }
        self.reported_handles.store(r.handle_num, Ordering::Relaxed);
        self.expire_s.store(r.expire, Ordering::Relaxed);
        self.utime_ms
            .store((r.utime * 1000.0) as u64, Ordering::Relaxed);
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    /// The load `lb` and `wr` compare: reported handles, or this proxy's own count when
    /// it is larger (a sentinel reports only every few seconds).
    pub fn load(&self) -> u64 {
        let reported = self.reported_handles.load(Ordering::Relaxed);
        let ours = self.proxy_handles.load(Ordering::Relaxed);
        reported.max(ours).max(0) as u64
    }

    /// A valid server (spec 02 §3): status NORMAL, not deleted, not expired.
    pub fn is_selectable(&self, now_ms: u64) -> bool {
        let expire = self.expire_s.load(Ordering::Relaxed);
        self.status.load(Ordering::Relaxed) == status::NORMAL
            && !self.is_removed()
            && (expire == 0
                || now_ms.saturating_sub(self.utime_ms.load(Ordering::Relaxed)) < expire * 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: u8, expire: u64, utime: f64) -> ServerRecord {
        ServerRecord {
            name: "a".into(),
            url: "ws://127.0.0.1:1".into(),
            status,
            session_timeout: 0,
            location: String::new(),
            isp: String::new(),
            session_num: 0,
            handle_num: 3,
            expire,
            start_time: 0.0,
            ctime: utime,
            utime,
            load: -1.0,
        }
    }

    #[test]
    fn selectable_only_when_normal_fresh_and_present() {
        let e = ServerEntry::from_record(&record(0, 10, 100.0)).unwrap();
        assert!(e.is_selectable(109_999));
        assert!(!e.is_selectable(110_000));
        e.refresh(&record(2, 0, 100.0));
        assert!(!e.is_selectable(100_000));
        e.refresh(&record(0, 0, 100.0));
        assert!(e.is_selectable(u64::MAX / 2));
        e.mark_removed();
        assert!(!e.is_selectable(100_000));
    }

    #[test]
    fn load_is_the_larger_count() {
        let e = ServerEntry::from_record(&record(0, 0, 0.0)).unwrap();
        assert_eq!(e.load(), 3);
        e.proxy_handles.store(7, Ordering::Relaxed);
        assert_eq!(e.load(), 7);
    }
}
