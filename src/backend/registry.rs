//! The proxy-wide set of backend servers, kept by the admin thread: it reconciles the
//! store's records with the live entries the shards hold, and reports which entries are
//! new (each shard then opens a link) and which were deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{info, warn};

use super::server::ServerEntry;
use crate::store::ServerRecord;

#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<String, Arc<ServerEntry>>,
}

/// What a reconciliation changed.
#[derive(Default)]
pub struct Changes {
    pub added: Vec<Arc<ServerEntry>>,
    pub removed: Vec<Arc<ServerEntry>>,
}

impl Registry {
    pub fn entries(&self) -> impl Iterator<Item = &Arc<ServerEntry>> {
        self.entries.values()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ServerEntry>> {
        self.entries.get(name)
    }

    /// Applies one record: refresh in place, or a new entry (also when the URL changed,
    /// since links are per URL).
    pub fn upsert(&mut self, r: &ServerRecord, changes: &mut Changes) {
        if let Some(e) = self.entries.get(&r.name) {
            if e.url == r.url {
                e.refresh(r);
                return;
            }
            e.mark_removed();
            changes.removed.push(e.clone());
        }
        match ServerEntry::from_record(r) {
            Some(e) => {
                info!(server = %r.name, url = %r.url, status = r.status, "backend registered");
                let e = Arc::new(e);
                self.entries.insert(r.name.clone(), e.clone());
                changes.added.push(e);
            }
            None => {
                warn!(server = %r.name, url = %r.url, "ignoring server with unusable url");
                self.entries.remove(&r.name);
            }
        }
    }

    pub fn remove(&mut self, name: &str, changes: &mut Changes) {
        if let Some(e) = self.entries.remove(name) {
            info!(server = %name, "backend deleted");
            e.mark_removed();
            changes.removed.push(e);
        }
    }

    /// Makes the entries match `records` (the store's full list).
    pub fn reconcile(&mut self, records: &[ServerRecord]) -> Changes {
        let mut changes = Changes::default();
        for r in records {
            self.upsert(r, &mut changes);
        }
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|n| !records.iter().any(|r| &&r.name == n))
            .cloned()
            .collect();
        for n in gone {
            self.remove(&n, &mut changes);
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{apply, ServerUpdate};

    fn rec(name: &str, url: &str) -> ServerRecord {
        apply(
            None,
            ServerUpdate {
                name: name.into(),
                url: url.into(),
                ..ServerUpdate::default()
            },
            1.0,
        )
    }

    #[test]
    fn reconcile_adds_refreshes_and_removes() {
        let mut reg = Registry::default();
        let c = reg.reconcile(&[rec("a", "ws://h:1"), rec("b", "ws://h:2")]);
        assert_eq!((c.added.len(), c.removed.len()), (2, 0));
        let a = reg.get("a").unwrap().clone();
        let c = reg.reconcile(&[rec("a", "ws://h:1")]);
        assert_eq!((c.added.len(), c.removed.len()), (0, 1));
        assert!(Arc::ptr_eq(&a, reg.get("a").unwrap()));
        let c = reg.reconcile(&[rec("a", "ws://h:9")]);
        assert_eq!((c.added.len(), c.removed.len()), (1, 1));
        assert!(a.is_removed());
    }
}
