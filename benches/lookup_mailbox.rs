//! Per-request bookkeeping of a shard, measured alone:
//!
//! - `sessions`: `core::session::Sessions` holding 100,000 sessions (one handle each) —
//!   `get` of a session, of a session and its handle, a miss, and inserting all 100k;
//! - `mailbox`: a shard-to-shard hop through `runtime::mailbox` between two threads, each
//!   running a monoio runtime like a shard (FusionDriver: io_uring when available, else epoll;
//!   and the epoll LegacyDriver): one round trip (send, the other side replies, wake), and a
//!   pipelined batch of 64 round trips (cost per message when the receiver drains in bulk).
//!
//! Run: `cargo bench --bench lookup_mailbox`. Numbers for this machine are in BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use janus_cloud::core::session::{ConnRef, Handle, Sessions};
use janus_cloud::plugins;
use janus_cloud::runtime::mailbox::{mailbox, Mailbox, MailboxSender};

const N: usize = 100_000;

/// Random JS-safe ids, like the proxy draws them.
fn ids(n: usize, seed: u64) -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u64(1..1 << 53)).collect()
}

fn filled(session_ids: &[u64], handle_ids: &[u64]) -> Sessions {
    let plugin = plugins::registry()
        .iter()
        .copied()
        .find(|p| p.meta().name == "dummytest")
        .expect("dummytest plugin");
    let now = Instant::now();
    let mut s = Sessions::default();
    for (i, (&sid, &hid)) in session_ids.iter().zip(handle_ids).enumerate() {
        // ten sessions per connection, as a busy client might have
        let conn = ConnRef {
            shard: 0,
            id: (i / 10) as u64,
        };
        s.insert(sid, conn, now);
        if let Some(sess) = s.get_mut(sid) {
            sess.handles.insert(
                hid,
                Handle {
                    id: hid,
                    plugin,
                    opaque_id: None,
                    state: std::rc::Rc::new(()),
                },
            );
        }
    }
    s
}

fn sessions(c: &mut Criterion) {
    let sids = ids(N, 1);
    let hids = ids(N, 2);
    let misses = ids(N, 3);
    let s = filled(&sids, &hids);
    // visit in a shuffled order so the lookups are not cache-friendly by accident
    let mut order: Vec<usize> = (0..N).collect();
    fastrand::Rng::with_seed(4).shuffle(&mut order);

    let mut g = c.benchmark_group("sessions_100k");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("get_session", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(s.get(black_box(sids[order[i]])).is_some())
        })
    });
    g.bench_function("get_session_and_handle", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            let k = order[i];
            let found = s
                .get(black_box(sids[k]))
                .and_then(|sess| sess.handles.get(&hids[k]))
                .is_some();
            black_box(found)
        })
    });
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(s.get(black_box(misses[i])).is_some())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sessions_insert");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("insert_100k_with_handles", |b| {
        b.iter_batched(
            || (),
            |()| filled(&sids, &hids).len(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Builds a monoio runtime with driver `$driver` (the two drivers build different runtime
/// types, hence a macro rather than a generic function).
macro_rules! runtime {
    ($driver:ty) => {
        monoio::RuntimeBuilder::<$driver>::new()
            .with_entries(256)
            .build()
            .expect("monoio runtime")
    };
}

/// The far shard: a thread with its own runtime that answers every message with the same
/// number until its inbox closes.
macro_rules! echo_shard {
    ($driver:ty, $inbox:expr, $reply:expr) => {{
        let (inbox, reply): (Mailbox<u64>, MailboxSender<u64>) = ($inbox, $reply);
        std::thread::spawn(move || {
            let mut rt = runtime!($driver);
            rt.block_on(async move {
                while let Some(n) = inbox.recv().await {
                    if !reply.send(n) {
                        break;
                    }
                }
            });
        })
    }};
}

/// One benchmark group per driver: a round trip, and 64 round trips pipelined.
macro_rules! hop {
    ($c:expr, $name:expr, $driver:ty) => {{
        let (to_far, far_inbox) = mailbox::<u64>();
        let (to_near, near_inbox) = mailbox::<u64>();
        let far = echo_shard!($driver, far_inbox, to_near);
        let mut rt = runtime!($driver);
        let mut g = $c.benchmark_group(format!("mailbox_{}", $name));
        g.throughput(Throughput::Elements(1));
        g.bench_function("round_trip", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for i in 0..iters {
                        to_far.send(i);
                        black_box(near_inbox.recv().await);
                    }
                    t.elapsed()
                })
            })
        });
        g.throughput(Throughput::Elements(64));
        g.bench_function("pipelined_64", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        for i in 0..64 {
                            to_far.send(i);
                        }
                        for _ in 0..64 {
                            black_box(near_inbox.recv().await);
                        }
                    }
                    t.elapsed()
                })
            })
        });
        g.finish();
        drop(to_far);
        let _ = far.join();
    }};
}

fn mailboxes(c: &mut Criterion) {
    hop!(c, "fusion", monoio::FusionDriver);
    hop!(c, "epoll", monoio::LegacyDriver);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = sessions, mailboxes
}
criterion_main!(benches);
