//! The in-process server store (`server_db = "memory"`).

use std::collections::BTreeMap;

use super::record::{apply, ServerRecord, ServerUpdate};
use super::{ServerStore, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    records: BTreeMap<String, ServerRecord>,
}

impl ServerStore for MemoryStore {
    fn update(&mut self, update: ServerUpdate, now: f64) -> Result<ServerRecord, StoreError> {
        let name = update.name.clone();
        let r = apply(self.records.remove(&name), update, now);
        self.records.insert(name, r.clone());
        Ok(r)
    }

    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.records.remove(name);
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<ServerRecord>, StoreError> {
        Ok(self.records.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_list_sweep_delete() {
        let mut s = MemoryStore::default();
        let u = |name: &str, expire| ServerUpdate {
            name: name.into(),
            url: "ws://h:1".into(),
            expire: Some(expire),
            ..ServerUpdate::default()
        };
        s.update(u("a", 0), 0.0).unwrap();
        s.update(u("b", 10), 0.0).unwrap();
        assert_eq!(s.list().unwrap().len(), 2);
        assert_eq!(s.sweep(10.0).unwrap(), ["b"]);
        s.delete("a").unwrap();
        s.delete("nope").unwrap();
        assert!(s.list().unwrap().is_empty());
    }
}
