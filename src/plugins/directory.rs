//! The user directory of the call plugins (videocall, p2pcall): which handle a username
//! belongs to. Within a proxy it is partitioned over the shards by a hash of the name
//! and reached through `Shard::ask`. With `user_db = "redis://…"` Redis also records
//! which proxy owns each name (`store::redis_users`), so users of several proxies can
//! call each other. Each plugin has its own namespace.

use std::rc::Rc;

use ahash::AHashMap;

use crate::api::error::{Code, JanusError};
use crate::core::shard::{Shard, ShardMsg};
use crate::runtime::jump_hash::jump_hash;
use crate::runtime::mailbox::MailboxSender;
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

/// One shard's share of every plugin's directory.
#[derive(Default)]
pub struct Partitions {
    by_ns: AHashMap<&'static str, AHashMap<String, HandleLoc>>,
}

impl Partitions {
    /// Registers `name` to `loc`; `Ok` with the previous owner if it was another handle
    /// (taken over), `Err` with the owner when another handle has it and `allow_takeover`
    /// is off (nothing changes then).
    pub fn register(
        &mut self,
        ns: &'static str,
        name: String,
        loc: HandleLoc,
        allow_takeover: bool,
    ) -> Result<Option<HandleLoc>, HandleLoc> {
        let names = self.by_ns.entry(ns).or_default();
        if let Some(owner) = names.get(&name).copied().filter(|o| *o != loc) {
            if !allow_takeover {
                return Err(owner);
            }
        }
        Ok(names.insert(name, loc).filter(|prev| *prev != loc))
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

/// Where to reach a registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A handle of this proxy.
    Local(HandleLoc),
    /// A user of another proxy: its plugin's admin base URL (`…/plugins/<ns>`).
    Remote(String),
}

/// The Redis directories of the call plugins in multi-proxy mode (`None` = memory only).
#[derive(Default, Clone)]
pub struct RemoteDirs {
    pub videocall: Option<RedisUsers>,
    pub p2pcall: Option<RedisUsers>,
}

impl RemoteDirs {
    pub fn get(&self, ns: &str) -> Option<&RedisUsers> {
        match ns {
            "videocall" => self.videocall.as_ref(),
            "p2pcall" => self.p2pcall.as_ref(),
            _ => None,
        }
    }
}

fn unavailable(e: StoreError) -> JanusError {
    JanusError::new(
        Code::ServiceUnavailable,
        format!("User directory unavailable: {e}"),
    )
}

async fn register_local(
    shard: &Rc<Shard>,
    ns: &'static str,
    name: &str,
    loc: HandleLoc,
    allow_takeover: bool,
) -> Result<Option<HandleLoc>, JanusError> {
    let key = name.to_string();
    shard
        .ask(partition_of(name, shard.count), move |s| {
            s.users.borrow_mut().register(ns, key, loc, allow_takeover)
        })
        .await
        .unwrap_or(Ok(None))
        .map_err(|_| taken(name))
}

/// Janus's error for a name another handle holds.
fn taken(name: &str) -> JanusError {
    JanusError::from_backend(476, format!("Username '{name}' already taken"))
}

async fn lookup_local(shard: &Rc<Shard>, ns: &'static str, name: &str) -> Option<HandleLoc> {
    let key = name.to_string();
    shard
        .ask(partition_of(name, shard.count), move |s| {
            s.users.borrow().lookup(ns, &key)
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
    shard: &Rc<Shard>,
    ns: &'static str,
    name: &str,
    loc: HandleLoc,
    allow_takeover: bool,
) -> Result<Option<HandleLoc>, JanusError> {
    let previous = register_local(shard, ns, name, loc, allow_takeover).await?;
    if let Some(users) = shard.remote_dirs.get(ns) {
        let outcome = match users.register(name, allow_takeover).await {
            Ok(true) => return Ok(previous),
            Ok(false) => taken(name),
            Err(e) => unavailable(e),
        };
        let key = name.to_string();
        shard.run_on(partition_of(name, shard.count), move |s| {
            s.users.borrow_mut().unregister(ns, &key, loc);
            if let Some(prev) = previous {
                let _ = s.users.borrow_mut().register(ns, key, prev, true);
            }
        });
        return Err(outcome);
    }
    Ok(previous)
}

/// Finds a user, here or (multi-proxy) on another proxy.
///
/// # Errors
/// 503 when the Redis directory is unavailable.
pub async fn lookup(
    shard: &Rc<Shard>,
    ns: &'static str,
    name: &str,
) -> Result<Option<Peer>, JanusError> {
    let Some(users) = shard.remote_dirs.get(ns) else {
        return Ok(lookup_local(shard, ns, name).await.map(Peer::Local));
    };
    match users.lookup(name).await.map_err(unavailable)? {
        Owner::Nobody => Ok(None),
        Owner::Us => Ok(lookup_local(shard, ns, name).await.map(Peer::Local)),
        Owner::Proxy(url) => Ok(Some(Peer::Remote(url))),
    }
}

/// A local user only (requests arriving from other proxies).
pub async fn lookup_here(shard: &Rc<Shard>, ns: &'static str, name: &str) -> Option<HandleLoc> {
    lookup_local(shard, ns, name).await
}

/// Releases `name` if `loc` still owns it.
pub fn unregister(shard: &Rc<Shard>, ns: &'static str, name: &str, loc: HandleLoc) {
    let key = name.to_string();
    shard.run_on(partition_of(name, shard.count), move |s| {
        let removed = s.users.borrow_mut().unregister(ns, &key, loc);
        if removed {
            if let Some(users) = s.remote_dirs.get(ns) {
                users.unregister(&key);
            }
        }
    });
}

/// Every registered name (at most [`LIST_CAP`]), sorted.
///
/// # Errors
/// 503 when the Redis directory is unavailable.
pub async fn list(shard: &Rc<Shard>, ns: &'static str) -> Result<Vec<String>, JanusError> {
    if let Some(users) = shard.remote_dirs.get(ns) {
        return users.list().await.map_err(unavailable);
    }
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
    Ok(all)
}

/// What a plugin does to its handle whose name another proxy took.
pub type TakenOver = fn(&Rc<Shard>, HandleLoc, &str);

/// Called by the Redis directory thread for a name registered by another proxy: the
/// local entry goes, and the handle is told (on its own shard).
pub fn lost_to_another_proxy(
    peers: &[MailboxSender<ShardMsg>],
    ns: &'static str,
    name: &str,
    taken: TakenOver,
) {
    let target = partition_of(name, peers.len());
    let name = name.to_string();
    peers[target].send(ShardMsg::Run(Box::new(move |s| {
        let Some(loc) = s.users.borrow().lookup(ns, &name) else {
            return;
        };
        s.users.borrow_mut().unregister(ns, &name, loc);
        s.run_on(loc.shard as usize, move |s| taken(s, loc, &name));
    })));
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
