//! The user directory of the call plugins (videocall, p2pcall): which handle a username
//! belongs to. Within a proxy it is partitioned over the shards by a hash of the name, in
//! a shard-local slot ([`Partitions`]), and reached through [`Host::ask`]. With
//! `user_db = "redis://…"` Redis also records which proxy owns each name
//! (`store::redis_users`), so users of several proxies can call each other. Each plugin
//! has its own namespace.

use std::cell::RefCell;

use ahash::AHashMap;

use super::{Host, Peers};
use crate::api::error::{Code, JanusError};
use crate::runtime::jump_hash::jump_hash;
use crate::store::redis_users::{Owner, RedisUsers};
use crate::store::StoreError;

/// Where a registered user's handle lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleLoc {
    pub shard: u16,
    pub session_id: u64,
    pub handle_id: u64,
}

/// Most names `list` returns.
pub const LIST_CAP: usize = 1000;

/// One shard's share of every call plugin's directory (a shard-local slot).
#[derive(Default)]
pub struct Partitions {
    by_ns: RefCell<AHashMap<&'static str, AHashMap<String, HandleLoc>>>,
}

impl Partitions {
    /// Registers `name` to `loc`; `Ok` with the previous owner if it was another handle
    /// (taken over), `Err` with the owner when another handle has it and `allow_takeover`
    /// is off (nothing changes then).
    pub fn register(
        &self,
        ns: &'static str,
        name: String,
        loc: HandleLoc,
        allow_takeover: bool,
    ) -> Result<Option<HandleLoc>, HandleLoc> {
        let mut by_ns = self.by_ns.borrow_mut();
        let names = by_ns.entry(ns).or_default();
        if let Some(owner) = names.get(&name).copied().filter(|o| *o != loc) {
            if !allow_takeover {
                return Err(owner);
            }
        }
        Ok(names.insert(name, loc).filter(|prev| *prev != loc))
    }

    pub fn lookup(&self, ns: &str, name: &str) -> Option<HandleLoc> {
        self.by_ns.borrow().get(ns)?.get(name).copied()
    }

    /// Removes `name` only if it still belongs to `loc` (it may have been taken over).
    pub fn unregister(&self, ns: &str, name: &str, loc: HandleLoc) -> bool {
        let mut by_ns = self.by_ns.borrow_mut();
        let Some(m) = by_ns.get_mut(ns) else {
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
            .borrow()
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

/// Where to reach a registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A handle of this proxy.
    Local(HandleLoc),
    /// A user of another proxy: its plugin's admin base URL (`…/plugins/<ns>`).
    Remote(String),
}

/// How one namespace's directory works.
pub struct Directory {
    /// Whether `register` may take a name another handle holds.
    pub allow_takeover: bool,
    /// Multi-proxy mode: the Redis directory (`None` = this proxy only).
    pub remote: Option<RedisUsers>,
}

/// The directories of the call plugins, by namespace: a plugin service, set up at start.
#[derive(Default)]
pub struct Directories {
    pub by_ns: AHashMap<&'static str, Directory>,
}

fn remote<'h>(host: &'h Host, ns: &str) -> Option<&'h RedisUsers> {
    host.service::<Directories>()?
        .by_ns
        .get(ns)?
        .remote
        .as_ref()
}

/// Whether `register` in namespace `ns` may take a name another handle holds.
pub fn allows_takeover(host: &Host, ns: &str) -> bool {
    host.service::<Directories>()
        .and_then(|d| d.by_ns.get(ns))
        .is_some_and(|d| d.allow_takeover)
}

fn unavailable(e: StoreError) -> JanusError {
    JanusError::new(
        Code::ServiceUnavailable,
        format!("User directory unavailable: {e}"),
    )
}

async fn register_local(
    host: &Host,
    ns: &'static str,
    name: &str,
    loc: HandleLoc,
    allow_takeover: bool,
) -> Result<Option<HandleLoc>, JanusError> {
    let key = name.to_string();
    host.ask(partition_of(name, host.shard_count()), move |h| {
        h.slot::<Partitions>()
            .register(ns, key, loc, allow_takeover)
    })
    .await
    .unwrap_or(Ok(None))
    .map_err(|_| taken(name))
}

/// Janus's error for a name another handle holds.
fn taken(name: &str) -> JanusError {
    JanusError::from_backend(476, format!("Username '{name}' already taken"))
}

async fn lookup_local(host: &Host, ns: &'static str, name: &str) -> Option<HandleLoc> {
    let key = name.to_string();
    host.ask(partition_of(name, host.shard_count()), move |h| {
        h.slot::<Partitions>().lookup(ns, &key)
    })
    .await
    .flatten()
}

/// Registers `name` to `loc`; returns the previous owner if it was another local handle
/// (possible only with `allow_takeover`).
///
/// # Errors
/// 476 when another handle (here, or of another proxy) holds the name and
/// `allow_takeover` is off, as Janus answers; 503 when the Redis directory is
/// unavailable. The local entry is rolled back in both cases.
pub async fn register(
    host: &Host,
    ns: &'static str,
    name: &str,
    loc: HandleLoc,
) -> Result<Option<HandleLoc>, JanusError> {
    let allow_takeover = allows_takeover(host, ns);
    let previous = register_local(host, ns, name, loc, allow_takeover).await?;
    if let Some(users) = remote(host, ns).cloned() {
        let outcome = match users.register(name, allow_takeover).await {
            Ok(true) => return Ok(previous),
            Ok(false) => taken(name),
            Err(e) => unavailable(e),
        };
        let key = name.to_string();
        host.run_on(partition_of(name, host.shard_count()), move |h| {
            let partitions = h.slot::<Partitions>();
            partitions.unregister(ns, &key, loc);
            if let Some(prev) = previous {
                let _ = partitions.register(ns, key, prev, true);
            }
        });
        return Err(outcome);
    }
    Ok(previous)
}

/// Registers `name` to `loc` again for a handle adopted from a dead proxy, whose
/// directory uuid was `previous` (multi-proxy mode): the name is taken back unless another
/// handle or proxy registered it meanwhile.
///
/// # Errors
/// 476 when someone else has the name now, 503 when the Redis directory is unavailable
/// (the local entry is rolled back).
pub async fn adopt(
    host: &Host,
    ns: &'static str,
    name: &str,
    loc: HandleLoc,
    previous: Option<&str>,
) -> Result<(), JanusError> {
    register_local(host, ns, name, loc, false).await?;
    let Some(users) = remote(host, ns).cloned() else {
        return Ok(());
    };
    let outcome = match users.adopt(name, previous.unwrap_or_default()).await {
        Ok(true) => return Ok(()),
        Ok(false) => taken(name),
        Err(e) => unavailable(e),
    };
    let key = name.to_string();
    host.run_on(partition_of(name, host.shard_count()), move |h| {
        h.slot::<Partitions>().unregister(ns, &key, loc);
    });
    Err(outcome)
}

/// This proxy's uuid in namespace `ns`'s Redis directory (multi-proxy mode).
pub fn users_uuid<'h>(host: &'h Host, ns: &str) -> Option<&'h str> {
    remote(host, ns).map(|u| u.uuid.as_str())
}

/// Finds a user, here or (multi-proxy) on another proxy.
///
/// # Errors
/// 503 when the Redis directory is unavailable.
pub async fn lookup(host: &Host, ns: &'static str, name: &str) -> Result<Option<Peer>, JanusError> {
    let Some(users) = remote(host, ns).cloned() else {
        return Ok(lookup_local(host, ns, name).await.map(Peer::Local));
    };
    match users.lookup(name).await.map_err(unavailable)? {
        Owner::Nobody => Ok(None),
        Owner::Us => Ok(lookup_local(host, ns, name).await.map(Peer::Local)),
        Owner::Proxy(url) => Ok(Some(Peer::Remote(url))),
    }
}

/// A local user only (requests arriving from other proxies).
pub async fn lookup_here(host: &Host, ns: &'static str, name: &str) -> Option<HandleLoc> {
    lookup_local(host, ns, name).await
}

/// Releases `name` if `loc` still owns it.
pub fn unregister(host: &Host, ns: &'static str, name: &str, loc: HandleLoc) {
    let key = name.to_string();
    host.run_on(partition_of(name, host.shard_count()), move |h| {
        if h.slot::<Partitions>().unregister(ns, &key, loc) {
            if let Some(users) = remote(h, ns) {
                users.unregister(&key);
            }
        }
    });
}

/// Every registered name (at most [`LIST_CAP`]), sorted.
///
/// # Errors
/// 503 when the Redis directory is unavailable.
pub async fn list(host: &Host, ns: &'static str) -> Result<Vec<String>, JanusError> {
    if let Some(users) = remote(host, ns).cloned() {
        return users.list().await.map_err(unavailable);
    }
    let mut all = Vec::new();
    for target in 0..host.shard_count() {
        if let Some(names) = host
            .ask(target, move |h| h.slot::<Partitions>().names(ns, LIST_CAP))
            .await
        {
            all.extend(names);
        }
    }
    all.sort();
    all.truncate(LIST_CAP);
    Ok(all)
}

/// What a plugin does to its handle whose name another proxy took.
pub type TakenOver = fn(&Host, HandleLoc, &str);

/// Called by the Redis directory thread for a name registered by another proxy: the
/// local entry goes, and the handle is told (on its own shard).
pub fn lost_to_another_proxy(peers: &Peers, ns: &'static str, name: &str, taken: TakenOver) {
    let target = partition_of(name, peers.count());
    let name = name.to_string();
    peers.run_on(target, move |h| {
        let partitions = h.slot::<Partitions>();
        let Some(loc) = partitions.lookup(ns, &name) else {
            return;
        };
        partitions.unregister(ns, &name, loc);
        h.run_on(loc.shard as usize, move |h| taken(h, loc, &name));
    });
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
        let p = Partitions::default();
        assert_eq!(p.register("vc", "alice".into(), A, false), Ok(None));
        assert_eq!(
            p.register("vc", "alice".into(), A, false),
            Ok(None),
            "same handle again"
        );
        assert_eq!(
            p.register("vc", "alice".into(), B, false),
            Err(A),
            "taken, no takeover"
        );
        assert_eq!(p.lookup("vc", "alice"), Some(A));
        assert_eq!(p.register("vc", "alice".into(), B, true), Ok(Some(A)));
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
