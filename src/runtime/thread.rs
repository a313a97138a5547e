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
    let built = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .with_entries(1024)
        .enable_timer()
        .build();
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
