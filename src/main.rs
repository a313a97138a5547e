//! `janus-proxy`: reads the configuration (and the TLS certificate and static pages it
//! names), binds each client listener (ws, wss, http, https) once per shard
//! (SO_REUSEPORT), starts one pinned shard thread per core, and waits for a signal
//! (SIGHUP reloads the certificate). With `[cluster] session_db` it starts the cluster's
//! session directory, and SIGTERM drains: new connections are refused, clients get up to
//! `drain_timeout` to leave, then the heartbeat goes and the process exits with its
//! backend sessions kept, for another proxy to adopt.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{error, info, warn};

use janus_cloud::admin::{self, metrics::Metrics, server, AdminState, Intervals, ProxyApi};
use janus_cloud::backend::registry::Registry;
use janus_cloud::config::Config;
use janus_cloud::core::cluster::Cluster;
use janus_cloud::core::host::Peers;
use janus_cloud::core::metrics::PluginGauge;
use janus_cloud::core::plugin::{self, AnyPlugin, Services, StartCx};
use janus_cloud::core::shard::{self, ShardMsg, Shared};
use janus_cloud::plugins;
use janus_cloud::store::redis_sessions::SessionDirectory;
use janus_cloud::store::{self, ServerUpdate};
use janus_cloud::transport::http::{Cors, HttpOptions, StaticFiles};
use janus_cloud::transport::server::{Door, Serve};
use janus_cloud::transport::tls::{Acceptor, Certs};

#[derive(Parser)]
#[command(
    name = "janus-proxy",
    version,
    about = "Janus API proxy over a cluster of Janus servers"
)]
struct Args {
    /// Configuration file (TOML); built-in defaults when omitted.
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match &args.config {
        Some(p) => Config::load(p),
        None => Config::from_toml_with_secret(
            "",
            std::env::var(janus_cloud::config::access::SECRET_ENV).ok(),
        ),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("janus-proxy: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let enabled = match plugin::select(&config, plugins::registry()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("janus-proxy: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // Certificates and static files are read before anything starts (and checked by
    // --check-config too).
    let files = match load_files(&config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("janus-proxy: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    let _guards = match janus_cloud::logging::init(&config.log) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "janus-proxy: cannot open log file {}: {e}",
                config.log.log_to_file
            );
            return ExitCode::from(2);
        }
    };
    janus_cloud::logging::abort_on_panic();
    match run(config, enabled, files) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("janus-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the client listeners read from files at start.
struct Files {
    certs: Option<Arc<Certs>>,
    pages: Option<Arc<StaticFiles>>,
}

fn load_files(config: &Config) -> Result<Files, String> {
    let (w, h) = (&config.ws_transport, &config.http_transport);
    let certs = if w.wss || h.https {
        let c = &config.certificates;
        Some(Certs::load(
            &config.path(&c.cert_pem),
            &config.path(&c.cert_key),
        )?)
    } else {
        None
    };
    let pages = if (h.http || h.https) && !h.static_folder.is_empty() {
        Some(Arc::new(StaticFiles::load(&config.path(&h.static_folder))?))
    } else {
        None
    };
    Ok(Files { certs, pages })
}

/// Every client listener, bound once per shard: `doors[shard]`.
fn bind_doors(config: &Config, files: &Files, n: usize) -> anyhow::Result<Vec<Vec<Door>>> {
    let (w, h) = (&config.ws_transport, &config.http_transport);
    let tls = match &files.certs {
        Some(c) => Some(Acceptor::from(
            c.server_config().map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let http = Arc::new(HttpOptions {
        cors: Cors {
            allow_origin: (h.allow_origin != "*").then(|| h.allow_origin.clone()),
            enforce: h.enforce_cors,
        },
        files: files.pages.clone(),
    });
    let mut doors: Vec<Vec<Door>> = (0..n).map(|_| Vec::new()).collect();
    let wanted = [
        (w.ws, &w.ws_listen, Serve::Ws, false, "ws"),
        (w.wss, &w.wss_listen, Serve::Ws, true, "wss"),
        (
            h.http,
            &h.http_listen,
            Serve::Http(http.clone()),
            false,
            "http",
        ),
        (
            h.https,
            &h.https_listen,
            Serve::Http(http.clone()),
            true,
            "https",
        ),
    ];
    for (on, listen, serve, secure, scheme) in wanted {
        if !on {
            continue;
        }
        let addr: SocketAddr = listen.parse()?;
        let listeners = bind_all(addr, n)?;
        info!(listen = %listeners_addr(&listeners), scheme, "client listener");
        for (shard, listener) in listeners.into_iter().enumerate() {
            doors[shard].push(Door {
                listener,
                serve: serve.clone(),
                tls: if secure { tls.clone() } else { None },
            });
        }
    }
    Ok(doors)
}

fn run(config: Config, plugins: Vec<&'static dyn AnyPlugin>, files: Files) -> anyhow::Result<()> {
    let n = config.shard_count();
    let doors = bind_doors(&config, &files, n)?;
    let admin_listener = server::bind(&config.admin_api.http_listen)?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        shards = n,
        "janus-proxy starting"
    );

    // The store holds the server list; static servers are registered never to expire.
    let mut store = store::open(&config.general.server_db)?;
    for s in &config.janus_server {
        store.update(static_server(s), admin::now_s())?;
    }
    let mut registry = Registry::default();
    let initial = registry.reconcile(&store.list()?);
    let (peers, inboxes) = shard::mailboxes(n);
    let (services, plugin_gauges) = start_plugins(&config, &plugins, &peers)?;
    let cluster = start_cluster(&config)?;
    let metrics = Arc::new(Metrics {
        plugin_gauges,
        ..Metrics::new(n)
    });
    let info_tail = shard::server_info_tail(&config, &plugins);
    let info_json = serde_json::from_str::<serde_json::Value>(&format!(
        "{{\"janus\":\"server_info\"{info_tail}"
    ))?;
    let plugin_routes = plugins.iter().flat_map(|p| p.admin_routes()).collect();
    let shared = Shared {
        config: Arc::new(config),
        servers: Arc::new(initial.added),
        peers,
        rr_counter: Arc::new(AtomicUsize::new(0)),
        metrics: metrics.clone(),
        open_conns: Arc::new(AtomicUsize::new(0)),
        http_sessions: Arc::new(AtomicUsize::new(0)),
        plugins: Arc::new(plugins),
        services: Arc::new(services),
        cluster,
        draining: Arc::new(AtomicBool::new(false)),
    };
    for (id, (inbox, doors)) in inboxes.into_iter().zip(doors).enumerate() {
        shard::start(id, shared.clone(), inbox, doors)?;
    }
    let cfg = &shared.config;
    let state = AdminState {
        store,
        registry,
        peers: shared.peers.clone(),
        metrics: metrics.clone(),
        statics: cfg
            .janus_server
            .iter()
            .map(|s| (s.name.clone(), s.url.clone()))
            .collect(),
    };
    let every = Intervals {
        sync: Duration::from_secs(cfg.general.server_sync_interval),
        sweep: Duration::from_secs(cfg.general.server_sweep_interval),
    };
    let (control, jobs) = admin::control_channel();
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || admin::run(state, jobs, every))?;
    let policy = admin::http::Policy::new(&cfg.admin_api.secret, &cfg.admin_api.cors_origins);
    if policy.secret.is_none() {
        warn!(
            listen = %cfg.admin_api.http_listen,
            "the admin API has no secret: any local process can change the cluster \
             (set admin_api.secret or JANUS_CLOUD_SECRET)"
        );
    }
    let api = ProxyApi {
        control,
        peers: shared.peers.clone(),
        metrics,
        info_json: serde_json::to_string_pretty(&info_json)?.into(),
        plugin_routes,
        drainable: shared.cluster.is_some(),
        draining: shared.draining.clone(),
    };
    let _admin_http = server::spawn(
        "admin-http",
        admin_listener,
        admin::server::Limits::from(&cfg.admin_api),
        policy,
        Arc::new(api),
    )?;
    wait_for_signal(files.certs.as_deref())?;
    match &shared.cluster {
        Some(cluster) => drain(&shared, cluster),
        None => {
            info!("signal received: releasing backend sessions, then exiting");
            release_backends(&shared.peers, Duration::from_secs(2));
        }
    }
    Ok(())
}

/// The cluster's session directory, when `[cluster] session_db` is set.
fn start_cluster(config: &Config) -> anyhow::Result<Option<Arc<Cluster>>> {
    let c = &config.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let directory = SessionDirectory::start(
        &c.session_db,
        &c.proxy_name,
        Duration::from_secs(c.heartbeat_ttl),
        Duration::from_secs(c.record_ttl),
    )
    .map_err(|e| anyhow::anyhow!("cluster.session_db: {e}"))?;
    info!(proxy = %directory.name, "cluster: session records and heartbeat in Redis");
    Ok(Some(Arc::new(Cluster {
        directory,
        adopt_timeout: Duration::from_secs(c.adopt_timeout),
        heartbeat_ttl: Duration::from_secs(c.heartbeat_ttl),
    })))
}

/// SIGTERM in a cluster: refuse newcomers, give the clients up to `drain_timeout` to
/// leave, then hand off: the heartbeat goes, and the process exits without destroying its
/// backend sessions (Janus keeps them for reclaim_session_timeout), so that another proxy
/// adopts the sessions whose clients claim them there.
fn drain(shared: &Shared, cluster: &Cluster) {
    let within = Duration::from_secs(shared.config.cluster.drain_timeout);
    shared.draining.store(true, Ordering::Relaxed);
    info!(
        deadline_s = within.as_secs(),
        clients = shared.open_conns.load(Ordering::Relaxed),
        "draining: new connections refused, waiting for clients to leave"
    );
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until && shared.open_conns.load(Ordering::Relaxed) > 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    info!(
        clients = shared.open_conns.load(Ordering::Relaxed),
        "drain over: handing off (backend sessions kept for adoption), exiting"
    );
    cluster.directory.stop(Duration::from_secs(2));
}

/// Starts the enabled plugins (their sections were checked): the services they set up,
/// to be shared by every shard.
fn start_plugins(
    config: &Config,
    plugins: &[&'static dyn AnyPlugin],
    peers: &Peers,
) -> anyhow::Result<(Services, Vec<PluginGauge>)> {
    let mut services = Services::default();
    let mut gauges = Vec::new();
    for p in plugins {
        let name = p.meta().name;
        let mut cx = StartCx {
            config,
            section: config.sections.get(name),
            peers,
            services: &mut services,
            gauges: &mut gauges,
        };
        p.start(&mut cx)
            .map_err(|e| anyhow::anyhow!("plugin {name}: {e}"))?;
    }
    Ok((services, gauges))
}

/// Asks every shard to destroy its backend sessions, so that the backends free their
/// handles now rather than when their session timeout runs out; waits at most `within`.
fn release_backends(peers: &Peers, within: Duration) {
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..peers.count() {
        peers.send(i, ShardMsg::ReleaseBackends(tx.clone()));
    }
    let deadline = std::time::Instant::now() + within;
    for _ in 0..peers.count() {
        if rx.recv_deadline(deadline).is_err() {
            break;
        }
    }
}

/// A `[[janus_server]]` entry as a registration that never expires.
fn static_server(s: &janus_cloud::config::JanusServer) -> ServerUpdate {
    ServerUpdate {
        name: s.name.clone(),
        url: s.url.clone(),
        status: s.status,
        session_timeout: Some(s.session_timeout),
        location: Some(s.location.clone()),
        isp: Some(s.isp.clone()),
        session_num: Some(s.session_num as i64),
        handle_num: Some(s.handle_num as i64),
        expire: Some(0),
        start_time: None,
        load: None,
    }
}

fn listeners_addr(l: &[std::net::TcpListener]) -> String {
    l.first()
        .and_then(|l| l.local_addr().ok())
        .map_or_else(|| "?".into(), |a| a.to_string())
}

/// Binds `n` listeners on one address with SO_REUSEPORT, so the kernel spreads
/// connections over the shards. A first probe bind without SO_REUSEPORT fails if another
/// process already listens there (with SO_REUSEPORT it would silently share the port).
fn bind_all(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let probe = probe_bind(addr).map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e} (is another janus-proxy running?)")
    })?;
    // Port 0 means "any": all shards must share the port the probe got.
    let addr = probe.local_addr()?;
    drop(probe);
    (0..n)
        .map(|_| {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.set_tcp_nodelay(true)?;
            s.bind(&addr.into())?;
            s.listen(1024)?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// How long a start waits for its port to be let go. A janus-proxy that just exited holds
/// its listeners a little longer: the kernel tears its io_uring instance (and the accepts
/// pending there) down after the process is gone, so a quick restart (systemd,
/// a script) would otherwise fail with "address in use".
const BIND_RETRY: Duration = Duration::from_secs(5);

/// Binds `addr` alone (see [`bind_all`]), retrying for [`BIND_RETRY`] while it is in use.
fn probe_bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let until = std::time::Instant::now() + BIND_RETRY;
    loop {
        match std::net::TcpListener::bind(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < until =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

/// Waits for a signal to stop; SIGHUP reloads the TLS certificate and key meanwhile.
fn wait_for_signal(certs: Option<&Certs>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGQUIT, SIGHUP])?;
    for sig in signals.forever() {
        if sig != SIGHUP {
            info!(signal = sig, "stopping");
            break;
        }
        match certs.map(Certs::reload) {
            Some(Ok(())) => info!("SIGHUP: TLS certificate reloaded"),
            Some(Err(e)) => {
                warn!(error = %e, "SIGHUP: TLS certificate not reloaded; the old one stays")
            }
            None => info!("SIGHUP: no TLS listener, nothing to reload"),
        }
    }
    Ok(())
}
