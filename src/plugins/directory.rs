//! The user directory of the call plugins (videocall, p2pcall): which handle a username
//! belongs to. Single proxy: partitioned over the shards by a hash of the name and
//! reached through `Shard::ask`. Each plugin has its own namespace.

use std::rc::Rc;

use ahash::AHashMap;

use crate::runtime::jump_hash::jump_hash;
use crate::runtime::shard::Shard;

/// Where a registered user's handle lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleLoc {
    pub shard: u16,
    pub session_id: u64,
    pub handle_id: u64,
}

/// Most names `list` returns.
pub const LIST_CAP: usize = 1000;

/// One shard's share of every plugin's directory.
#[derive(Default)]
pub struct Partitions {
    by_ns: AHashMap<&'static str, AHashMap<String, HandleLoc>>,
}

impl Partitions {
    /// Registers `name` to `loc`; returns the previous owner if it was another handle.
    pub fn register(
        &mut self,
        ns: &'static str,
        name: String,
        loc: HandleLoc,
    ) -> Option<HandleLoc> {
        self.by_ns
            .entry(ns)
            .or_default()
            .insert(name, loc)
            .filter(|prev| *prev != loc)
    }

    pub fn lookup(&self, ns: &str, name: &str) -> Option<HandleLoc> {
        self.by_ns.get(ns)?.get(name).copied()
    }

    /// Removes `name` only if it still belongs to `loc` (it may have been taken over).
    pub fn unregister(&mut self, ns: &str, name: &str, loc: HandleLoc) -> bool {
        let Some(m) = self.by_ns.get_mut(ns) else {
            return false;
        };
        if m.get(name) == Some(&loc) {
            m.remove(name);
            return true;
        }
        false
    }

    pub fn names(&self, ns: &str, cap: usize) -> Vec<String> {
        self.by_ns
            .get(ns)
            .map(|m| m.keys().take(cap).cloned().collect())
            .unwrap_or_default()
    }
}

/// FNV-1a: a fixed hash, so every shard agrees on a name's partition.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The shard holding `name`'s entry.
pub fn partition_of(name: &str, shards: usize) -> usize {
    jump_hash(fnv1a(name), shards)
}

/// Registers `name` to `loc`; the previous owner, if another handle had it.
pub async fn register(
    shard: &Rc<Shard>,
    ns: &'static str,
    name: &str,
    loc: HandleLoc,
) -> Option<HandleLoc> {
    let name = name.to_string();
    let target = partition_of(&name, shard.count);
    shard
        .ask(target, move |s| {
            s.users.borrow_mut().register(ns, name, loc)
        })
        .await
        .flatten()
}

pub async fn lookup(shard: &Rc<Shard>, ns: &'static str, name: &str) -> Option<HandleLoc> {
    let key = name.to_string();
    let target = partition_of(name, shard.count);
    shard
        .ask(target, move |s| s.users.borrow().lookup(ns, &key))
        .await
        .flatten()
}

pub fn unregister(shard: &Rc<Shard>, ns: &'static str, name: &str, loc: HandleLoc) {
    let key = name.to_string();
    shard.run_on(partition_of(name, shard.count), move |s| {
        s.users.borrow_mut().unregister(ns, &key, loc);
    });
}

/// Every registered name (at most [`LIST_CAP`]), sorted.
pub async fn list(shard: &Rc<Shard>, ns: &'static str) -> Vec<String> {
    let mut all = Vec::new();
    for target in 0..shard.count {
        if let Some(names) = shard
            .ask(target, move |s| s.users.borrow().names(ns, LIST_CAP))
            .await
        {
            all.extend(names);
        }
    }
    all.sort();
    all.truncate(LIST_CAP);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: HandleLoc = HandleLoc {
        shard: 0,
        session_id: 1,
        handle_id: 2,
    };
    const B: HandleLoc = HandleLoc {
        shard: 1,
        session_id: 3,
        handle_id: 4,
    };

    #[test]
    fn take_over_and_guarded_unregister() {
        let mut p = Partitions::default();
        assert_eq!(p.register("vc", "alice".into(), A), None);
        assert_eq!(
            p.register("vc", "alice".into(), A),
            None,
            "same handle again"
        );
        assert_eq!(p.register("vc", "alice".into(), B), Some(A));
        assert!(
            !p.unregister("vc", "alice", A),
            "old owner cannot remove the new one"
        );
        assert_eq!(p.lookup("vc", "alice"), Some(B));
        assert_eq!(p.lookup("p2p", "alice"), None, "namespaces are separate");
        assert!(p.unregister("vc", "alice", B));
        assert_eq!(p.lookup("vc", "alice"), None);
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("alice", 4), partition_of("alice", 4));
        let mut counts = [0; 4];
        for i in 0..4000 {
            counts[partition_of(&format!("user{i}"), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
