//! Starting a shard: a named thread (`shard-N`), pinned to a core when possible, running
//! its own monoio runtime (io_uring, or epoll where io_uring is missing) until the
//! process exits. What runs on it is the caller's business.

use std::future::Future;

use tracing::{error, info, warn};

/// Spawns shard `id`'s thread. `main` runs on that thread and builds the shard's state
/// there (it need not be `Send`); the future it returns is the shard's life.
///
/// # Errors
/// The thread cannot be spawned.
pub fn spawn_shard<F, Fut>(id: usize, main: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(format!("shard-{id}"))
        .spawn(move || run(id, main))
}

fn run<F, Fut>(id: usize, main: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if let Some(core) = cores.get(id % cores.len().max(1)) {
        if !core_affinity::set_for_current(*core) {
            warn!(shard = id, "could not pin shard thread to a core");
        }
    }
    let driver = if std::env::var_os("MONOIO_FORCE_LEGACY_DRIVER").is_some() {
        "epoll (forced)"
    } else if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll"
    };
    // Cooperative task running: completions are handled when the shard next enters the
    // kernel, not by interrupting it (fewer wake-ups per message); one thread submits.
    // Kernels before 6.0 refuse these flags: then the ring is built without them.
    let mut tuned = io_uring::IoUring::builder();
    tuned.setup_coop_taskrun().setup_single_issuer();
    let build = |urb: io_uring::Builder| {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .with_entries(1024)
            .uring_builder(urb)
            .enable_timer()
            .build()
    };
    let built = build(tuned).or_else(|e| {
        warn!(shard = id, error = %e, "io_uring refused COOP_TASKRUN/SINGLE_ISSUER; without them");
        build(io_uring::IoUring::builder())
    });
    let mut rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            error!(shard = id, error = %e, "cannot build the shard runtime");
            std::process::exit(1);
        }
    };
    info!(shard = id, driver, "shard starting");
    rt.block_on(main());
}
