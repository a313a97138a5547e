//! `janus-proxy` configuration: the TOML model, its defaults and its validation.
//!
//! Section and key names follow the original janus-cloud (spec 02 §2). Every key is
//! documented in `conf/janus-proxy.toml`. Unknown keys are rejected so that a typo is
//! caught at start instead of silently ignored.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub mod access;
mod ws_url;

pub use ws_url::WsUrl;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Plugins to load, by short name (`echotest`, `videocall`, ...); `None` = every
    /// plugin of this build.
    pub plugins: Option<Vec<String>>,
    pub general: General,
    pub log: Log,
    pub certificates: Certificates,
    pub ws_transport: WsTransport,
    /// Janus's REST API (long polls) and the static pages, plain or TLS.
    pub http_transport: HttpTransport,
    pub admin_api: AdminApi,
    pub backend: BackendConf,
    /// Bounds on what one client may hold or cost.
    pub limits: Limits,
    /// Several proxies as one: session records in Redis, adoption, drain.
    pub cluster: Cluster,
    /// Static backend Janus servers, registered at start and never expiring.
    pub janus_server: Vec<JanusServer>,
    /// Every other top-level table: the plugins' sections (`[videocall]`, ...), read by
    /// the plugins themselves at start. A section no enabled plugin claims is refused
    /// then, so a typo still stops the start.
    #[serde(flatten)]
    pub sections: std::collections::BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct General {
    /// Not supported (run under systemd or a supervisor); `true` is rejected.
    pub daemonize: bool,
    /// Folder of plugin configuration files; "" = folder of the main config file.
    pub configs_folder: String,
    /// Name of this proxy, shown by `info`.
    pub server_name: String,
    /// Seconds without a request before a client session expires (0 = never).
    pub session_timeout: u64,
    /// Seconds a session outlives its WebSocket and can be `claim`ed (0 = destroyed at once).
    pub reclaim_session_timeout: u64,
    /// Backend server store: `memory` or `redis://[user:password@]host:port/db`.
    pub server_db: String,
    /// Seconds between re-reads of the server store (servers registered through other
    /// proxies, entries expired in Redis).
    pub server_sync_interval: u64,
    /// Seconds between deletions of expired server entries from the store.
    pub server_sweep_interval: u64,
    /// Backend selection: `rr`, `rand`, `lb` or `wr`.
    pub server_select: String,
    /// Secret clients must send as `apisecret`; also sent to backends. "" = disabled.
    pub api_secret: String,
    /// Number of shards (threads, one per core); 0 = number of CPU cores.
    pub shards: usize,
}

impl Default for General {
    fn default() -> Self {
        General {
            daemonize: false,
            configs_folder: String::new(),
            server_name: "janus-proxy".into(),
            session_timeout: 60,
            reclaim_session_timeout: 0,
            server_db: "memory".into(),
            server_sync_interval: 2,
            server_sweep_interval: 300,
            server_select: "rr".into(),
            api_secret: String::new(),
            shards: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub log_to_stdout: bool,
    /// Log file path; "" = no file.
    pub log_to_file: String,
    /// DEBUG, INFO, WARN, ERROR or FATAL (any case).
    pub debug_level: String,
    /// Rotate the log file when it reaches this many bytes.
    pub log_file_size: u64,
    /// Number of rotated files kept.
    pub log_file_rotate: u32,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            log_to_stdout: true,
            log_to_file: String::new(),
            debug_level: "INFO".into(),
            log_file_size: 104_857_600,
            log_file_rotate: 10,
        }
    }
}

/// The certificate of the TLS listeners (`wss`, `https`): PEM files, relative paths from
/// the folder of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Certificates {
    pub cert_pem: String,
    pub cert_key: String,
    /// Password of an encrypted key: not supported (must be empty).
    pub cert_pwd: String,
}

/// `[http_transport]`: Janus's REST API with long polls (`/janus`), and static files.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTransport {
    pub http: bool,
    pub http_listen: String,
    pub https: bool,
    pub https_listen: String,
    /// Folder served at `/` beside the API ("" = none); relative to the config's folder.
    pub static_folder: String,
    /// `Access-Control-Allow-Origin` of API answers, as Janus's `allow_origin`.
    pub allow_origin: String,
    /// Refuse API requests from other origins (403), as Janus's `enforce_cors`.
    pub enforce_cors: bool,
    /// Most sessions with an HTTP event queue at once, proxy-wide (error 472 beyond).
    pub max_sessions: usize,
}

impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport {
            http: false,
            http_listen: "127.0.0.1:8280".into(),
            https: false,
            https_listen: "127.0.0.1:8281".into(),
            static_folder: String::new(),
            allow_origin: "*".into(),
            enforce_cors: false,
            max_sessions: 10000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsTransport {
    pub json: JsonStyle,
    /// Idle seconds before the proxy pings a client (0 = never).
    pub pingpong_trigger: u64,
    /// Seconds to wait for the pong before closing.
    pub pingpong_timeout: u64,
    pub ws: bool,
    pub ws_listen: String,
    /// TLS WebSocket listener (`[certificates]`).
    pub wss: bool,
    pub wss_listen: String,
    /// Accepted for compatibility with the original; unused (no worker pool here).
    pub max_greenlet_num: u64,
    /// Largest client message in bytes; larger ones get error 450 and are discarded.
    pub max_message_size: usize,
    /// Most sessions one WebSocket may create or claim.
    pub max_sessions_per_connection: usize,
}

impl Default for WsTransport {
    fn default() -> Self {
        WsTransport {
            json: JsonStyle::Indented,
            pingpong_trigger: 0,
            pingpong_timeout: 30,
            ws: true,
            ws_listen: "0.0.0.0:8288".into(),
            wss: false,
            wss_listen: "0.0.0.0:8289".into(),
            max_greenlet_num: 1000,
            max_message_size: 256 * 1024,
            max_sessions_per_connection: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminApi {
    /// Accepted for compatibility; REST bodies are always indented with 4 spaces.
    pub json: JsonStyle,
    /// Address of the admin REST API (bind it to a private interface).
    pub http_listen: String,
    /// The cluster secret: bearer token every admin route requires
    /// (`Authorization: Bearer ...`), also sent on proxy-to-proxy calls. "" = taken from
    /// the `JANUS_CLOUD_SECRET` environment variable; none when that is unset too.
    pub secret: String,
    /// Allows a listener reachable from other machines without a secret.
    pub allow_no_secret: bool,
    /// Browser origins (`https://host[:port]`) allowed to call the API (CORS); [] = none.
    pub cors_origins: Vec<String>,
    /// Largest request body, in bytes.
    pub max_body_size: usize,
    /// Seconds allowed to send a request's headers (and for a kept-alive connection to idle).
    pub header_timeout: u64,
    /// Seconds allowed to send a request's body.
    pub body_timeout: u64,
    /// Most admin connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Base URL other proxies use to reach this admin API (multi-proxy calls);
    /// "" = `http://<http_listen>`.
    pub public_url: String,
}

impl AdminApi {
    /// The URL other proxies reach this one at.
    pub fn public_base(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.http_listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

impl Default for AdminApi {
    fn default() -> Self {
        AdminApi {
            json: JsonStyle::Indented,
            http_listen: "127.0.0.1:8100".into(),
            secret: String::new(),
            allow_no_secret: false,
            cors_origins: Vec::new(),
            max_body_size: 256 * 1024,
            header_timeout: 10,
            body_timeout: 10,
            max_connections: 64,
            public_url: String::new(),
        }
    }
}

/// How the proxy talks to backend Janus servers (not in the original's config).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConf {
    /// Seconds to wait for a backend reply before answering 504.
    pub request_timeout: u64,
    /// Seconds allowed for TCP connect + WebSocket handshake + session creation.
    pub connect_timeout: u64,
    /// First reconnect delay after a backend connection drops, in milliseconds.
    pub reconnect_min_ms: u64,
    /// Reconnect delays double up to this, in milliseconds.
    pub reconnect_max_ms: u64,
}

impl Default for BackendConf {
    fn default() -> Self {
        BackendConf {
            request_timeout: 30,
            connect_timeout: 10,
            reconnect_min_ms: 200,
            reconnect_max_ms: 5000,
        }
    }
}

/// `[cluster]`: proxy failover (not in the original's config). With `session_db` set,
/// every proxy records its client sessions and their backend sessions in a shared Redis,
/// announces itself there with a heartbeat, and adopts the sessions of a proxy whose
/// heartbeat is gone when their clients `claim` them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// `""` = off (single-proxy behaviour), or `redis://[user:password@]host:port/db`.
    pub session_db: String,
    /// This proxy's name in the cluster, unique among the proxies sharing `session_db`
    /// (`""` = `proxy`); each run is `<proxy_name>#<random>` in Redis.
    pub proxy_name: String,
    /// Seconds the heartbeat lives in Redis; it is refreshed three times as often. A proxy
    /// whose heartbeat is gone is dead: its sessions can be adopted.
    pub heartbeat_ttl: u64,
    /// Seconds an adopted session waits for its client to claim it; then it is destroyed
    /// and its handles detached on the backend.
    pub adopt_timeout: u64,
    /// Seconds a SIGTERM waits for clients to leave before the hand-off.
    pub drain_timeout: u64,
    /// Seconds a session record lives in Redis after its last change.
    pub record_ttl: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            session_db: String::new(),
            proxy_name: String::new(),
            heartbeat_ttl: 10,
            adopt_timeout: 60,
            drain_timeout: 30,
            record_ttl: 86_400,
        }
    }
}

impl Cluster {
    pub fn enabled(&self) -> bool {
        !self.session_db.is_empty()
    }
}

/// `[limits]`: what one client may hold or cost (not in the original's config). A client
/// over a limit gets a Janus error, or is disconnected where no error can reach it; other
/// clients never notice.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most client connections (WebSocket or in handshake) at once, proxy-wide; more are
    /// answered `503 Service Unavailable` and closed.
    pub max_connections: usize,
    /// Seconds allowed for a client's WebSocket handshake.
    pub handshake_timeout: u64,
    /// Seconds a client connection may stay open without holding any session (0 = no
    /// limit). Janus clients create a session right after connecting.
    pub no_session_timeout: u64,
    /// Seconds of silence before TCP keepalive probes start on client sockets (0 = off),
    /// so that connections of vanished hosts end.
    pub tcp_keepalive: u64,
    /// Most bytes queued for one client connection that it has not read yet; a client
    /// over it is disconnected (and counted in `/metrics`).
    pub max_queued_bytes_per_connection: usize,
    /// Most handles one session may hold (attaches in progress included).
    pub max_handles_per_session: usize,
    /// Most plugin requests one handle may have waiting behind the one in progress.
    pub max_queued_requests_per_handle: usize,
    /// Most ICE candidates the proxy buffers for one handle before its call exists.
    pub max_candidates_per_handle: usize,
    /// Deepest nesting of arrays and objects accepted in a JSON message from a client
    /// or a backend; deeper messages are refused as malformed JSON (454).
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            handshake_timeout: 10,
            no_session_timeout: 60,
            tcp_keepalive: 60,
            max_queued_bytes_per_connection: 1024 * 1024,
            max_handles_per_session: 256,
            max_queued_requests_per_handle: 64,
            max_candidates_per_handle: 256,
            max_json_depth: 32,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JanusServer {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub status: u8,
    #[serde(default = "default_server_session_timeout")]
    pub session_timeout: u64,
    #[serde(default)]
    pub session_num: u64,
    #[serde(default)]
    pub handle_num: u64,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub isp: String,
}

fn default_server_session_timeout() -> u64 {
    60
}

/// Output formatting of frames sent to clients (`ws_transport.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JsonStyle {
    /// 3-space indentation, as Janus sends.
    #[default]
    Indented,
    /// One line with `", "` and `": "` separators.
    Plain,
    /// No whitespace at all: the cheapest.
    Compact,
}

/// `general.server_select`: how a backend is chosen for new work (spec 02 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSelect {
    /// Round robin over the selectable servers (a proxy-wide counter).
    RoundRobin,
    /// Uniform random.
    Random,
    /// Least loaded: the fewest handles. The original's `lb` was random; this one is not.
    LeastLoaded,
    /// Weighted random with weight `1 / handles` (1 when a server has none).
    WeightedRandom,
}

impl ServerSelect {
    pub fn parse(s: &str) -> Option<ServerSelect> {
        match s {
            "rr" => Some(ServerSelect::RoundRobin),
            "rand" => Some(ServerSelect::Random),
            "lb" => Some(ServerSelect::LeastLoaded),
            "wr" => Some(ServerSelect::WeightedRandom),
            _ => None,
        }
    }
}

impl General {
    /// The validated `server_select` (round robin if it somehow is not valid).
    pub fn server_select(&self) -> ServerSelect {
        ServerSelect::parse(&self.server_select).unwrap_or(ServerSelect::RoundRobin)
    }
}

/// A configuration problem, naming the key and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("invalid value for `{key}`: {value:?} ({why})")]
    Invalid {
        key: &'static str,
        value: String,
        why: &'static str,
    },
}

fn invalid(key: &'static str, value: impl ToString, why: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        why,
    }
}

impl Config {
    /// A path from the configuration: as is when absolute, else from the folder of the
    /// configuration file (`general.configs_folder`).
    pub fn path(&self, p: &str) -> std::path::PathBuf {
        let path = Path::new(p);
        if path.is_absolute() || self.general.configs_folder.is_empty() {
            return path.to_path_buf();
        }
        Path::new(&self.general.configs_folder).join(path)
    }

    /// Reads and validates a TOML file.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML for this model, or fails [`Config::validate`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let env = std::env::var(access::SECRET_ENV).ok();
        let mut cfg = Config::from_toml_with_secret(&text, env)?;
        if cfg.general.configs_folder.is_empty() {
            if let Some(dir) = path.parent() {
                cfg.general.configs_folder = dir.display().to_string();
            }
        }
        Ok(cfg)
    }

    /// Parses and validates TOML text (the environment is not read).
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_secret(text, None)
    }

    /// Parses TOML text, takes `env_secret` (the value of `JANUS_CLOUD_SECRET`) as the
    /// cluster secret when `admin_api.secret` is empty, and validates.
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn from_toml_with_secret(
        text: &str,
        env_secret: Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.admin_api.secret = access::secret_or_env(&cfg.admin_api.secret, env_secret);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value a type alone cannot check.
    ///
    /// # Errors
    /// The first invalid key, with its value and the rule it breaks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let g = &self.general;
        if g.daemonize {
            return Err(invalid(
                "general.daemonize",
                true,
                "not supported; run under a supervisor such as systemd",
            ));
        }
        if g.server_name.chars().any(char::is_whitespace) {
            return Err(invalid(
                "general.server_name",
                &g.server_name,
                "must not contain whitespace",
            ));
        }
        if g.session_timeout > 86_400 {
            return Err(invalid(
                "general.session_timeout",
                g.session_timeout,
                "must be 0..86400",
            ));
        }
        if g.reclaim_session_timeout > 86_400 {
            return Err(invalid(
                "general.reclaim_session_timeout",
                g.reclaim_session_timeout,
                "must be 0..86400",
            ));
        }
        if g.server_db != "memory" && !g.server_db.starts_with("redis://") {
            return Err(invalid(
                "general.server_db",
                &g.server_db,
                "must be \"memory\" or redis://host:port/db",
            ));
        }
        let c = &self.cluster;
        if !c.session_db.is_empty() && !c.session_db.starts_with("redis://") {
            return Err(invalid(
                "cluster.session_db",
                &c.session_db,
                "must be \"\" (off) or redis://host:port/db",
            ));
        }
        if c.proxy_name.len() > 128
            || c.proxy_name
                .chars()
                .any(|ch| !(ch.is_ascii_alphanumeric() || "-_.:".contains(ch)))
        {
            return Err(invalid(
                "cluster.proxy_name",
                &c.proxy_name,
                "at most 128 characters among A-Z a-z 0-9 - _ . :",
            ));
        }
        if !(2..=3600).contains(&c.heartbeat_ttl) {
            return Err(invalid(
                "cluster.heartbeat_ttl",
                c.heartbeat_ttl,
                "must be 2..3600",
            ));
        }
        if !(1..=86_400).contains(&c.adopt_timeout) {
            return Err(invalid(
                "cluster.adopt_timeout",
                c.adopt_timeout,
                "must be 1..86400",
            ));
        }
        if c.drain_timeout > 86_400 {
            return Err(invalid(
                "cluster.drain_timeout",
                c.drain_timeout,
                "must be 0..86400",
            ));
        }
        if !(60..=2_592_000).contains(&c.record_ttl) {
            return Err(invalid(
                "cluster.record_ttl",
                c.record_ttl,
                "must be 60..2592000",
            ));
        }
        if !(1..=3600).contains(&g.server_sync_interval) {
            return Err(invalid(
                "general.server_sync_interval",
                g.server_sync_interval,
                "must be 1..3600",
            ));
        }
        if !(1..=86_400).contains(&g.server_sweep_interval) {
            return Err(invalid(
                "general.server_sweep_interval",
                g.server_sweep_interval,
                "must be 1..86400",
            ));
        }
        if ServerSelect::parse(&g.server_select).is_none() {
            return Err(invalid(
                "general.server_select",
                &g.server_select,
                "must be one of rr, rand, lb, wr",
            ));
        }
        if g.shards > 1024 {
            return Err(invalid(
                "general.shards",
                g.shards,
                "must be 0 (one per core) .. 1024",
            ));
        }
        if log_level(&self.log.debug_level).is_none() {
            return Err(invalid(
                "log.debug_level",
                &self.log.debug_level,
                "must be DEBUG, INFO, WARN, ERROR or FATAL",
            ));
        }
        if self.log.log_file_size == 0 {
            return Err(invalid("log.log_file_size", 0, "must be > 0"));
        }
        let w = &self.ws_transport;
        if w.pingpong_trigger > 3600 {
            return Err(invalid(
                "ws_transport.pingpong_trigger",
                w.pingpong_trigger,
                "must be 0..3600",
            ));
        }
        if !(1..=3600).contains(&w.pingpong_timeout) {
            return Err(invalid(
                "ws_transport.pingpong_timeout",
                w.pingpong_timeout,
                "must be 1..3600",
            ));
        }
        let h = &self.http_transport;
        if !w.ws && !w.wss && !h.http && !h.https {
            return Err(invalid(
                "ws_transport.ws",
                false,
                "no client listener enabled (ws, wss, http or https)",
            ));
        }
        for (key, on, addr) in [
            ("ws_transport.ws_listen", w.ws, &w.ws_listen),
            ("ws_transport.wss_listen", w.wss, &w.wss_listen),
            ("http_transport.http_listen", h.http, &h.http_listen),
            ("http_transport.https_listen", h.https, &h.https_listen),
        ] {
            if on && addr.parse::<SocketAddr>().is_err() {
                return Err(invalid(key, addr, "must be host:port with a numeric IP"));
            }
        }
        let c = &self.certificates;
        if (w.wss || h.https) && (c.cert_pem.is_empty() || c.cert_key.is_empty()) {
            return Err(invalid(
                "certificates.cert_pem",
                &c.cert_pem,
                "wss and https need cert_pem and cert_key",
            ));
        }
        if !(1..=1_000_000).contains(&h.max_sessions) {
            return Err(invalid(
                "http_transport.max_sessions",
                h.max_sessions,
                "must be 1..1000000",
            ));
        }
        if !c.cert_pwd.is_empty() {
            return Err(invalid(
                "certificates.cert_pwd",
                "(hidden)",
                "encrypted private keys are not supported; decrypt the key (openssl pkey -in key.pem -out plain.pem) and protect the file instead",
            ));
        }
        if h.allow_origin.is_empty()
            || h.allow_origin.len() > 512
            || !h.allow_origin.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(invalid(
                "http_transport.allow_origin",
                &h.allow_origin,
                "must be \"*\" or an origin (printable ASCII, no spaces, at most 512 bytes)",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&w.max_message_size) {
            return Err(invalid(
                "ws_transport.max_message_size",
                w.max_message_size,
                "must be 1024..67108864",
            ));
        }
        if w.max_sessions_per_connection == 0 {
            return Err(invalid(
                "ws_transport.max_sessions_per_connection",
                0,
                "must be > 0",
            ));
        }
        if self.admin_api.http_listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "admin_api.http_listen",
                &self.admin_api.http_listen,
                "must be host:port with a numeric IP",
            ));
        }
        self.validate_admin_access()?;
        if !self.admin_api.public_url.is_empty() && !self.admin_api.public_url.starts_with("http") {
            return Err(invalid(
                "admin_api.public_url",
                &self.admin_api.public_url,
                "must be an http(s):// URL",
            ));
        }
        let b = &self.backend;
        if b.request_timeout == 0 || b.request_timeout > 3600 {
            return Err(invalid(
                "backend.request_timeout",
                b.request_timeout,
                "must be 1..3600",
            ));
        }
        if b.connect_timeout == 0 || b.connect_timeout > 3600 {
            return Err(invalid(
                "backend.connect_timeout",
                b.connect_timeout,
                "must be 1..3600",
            ));
        }
        if b.reconnect_min_ms == 0 || b.reconnect_max_ms < b.reconnect_min_ms {
            return Err(invalid(
                "backend.reconnect_min_ms",
                b.reconnect_min_ms,
                "must be > 0 and <= reconnect_max_ms",
            ));
        }
        self.limits.validate()?;
        let mut names = std::collections::HashSet::new();
        for s in &self.janus_server {
            if s.name.is_empty()
                || s.name.len() > 64
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid(
                    "janus_server.name",
                    &s.name,
                    "must match ^[\\w-]{1,64}$",
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(invalid(
                    "janus_server.name",
                    &s.name,
                    "duplicate server name",
                ));
            }
            if WsUrl::parse(&s.url).is_none() {
                return Err(invalid(
                    "janus_server.url",
                    &s.url,
                    "must be ws://host:port[/path]",
                ));
            }
            if s.status > 1 {
                return Err(invalid("janus_server.status", s.status, "must be 0 or 1"));
            }
            if s.session_timeout > 86_400 {
                return Err(invalid(
                    "janus_server.session_timeout",
                    s.session_timeout,
                    "must be 0..86400",
                ));
            }
            if s.location.len() > 64 || s.isp.len() > 64 {
                return Err(invalid(
                    "janus_server.location",
                    &s.location,
                    "location and isp must be at most 64 characters",
                ));
            }
        }
        Ok(())
    }

    /// The `[admin_api]` keys that decide who can reach the API and how much they may send.
    fn validate_admin_access(&self) -> Result<(), ConfigError> {
        use access::{check_exposure, valid_origin, valid_secret};
        let a = &self.admin_api;
        if !valid_secret(&a.secret) {
            return Err(invalid(
                "admin_api.secret",
                "(hidden)",
                "must be at most 512 printable ASCII characters without spaces",
            ));
        }
        if let Err(why) = check_exposure(&a.http_listen, &a.secret, a.allow_no_secret) {
            return Err(invalid("admin_api.http_listen", &a.http_listen, why));
        }
        if let Some(o) = a.cors_origins.iter().find(|o| !valid_origin(o)) {
            return Err(invalid(
                "admin_api.cors_origins",
                o,
                "each must be http(s)://host[:port] (never \"*\")",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&a.max_body_size) {
            return Err(invalid(
                "admin_api.max_body_size",
                a.max_body_size,
                "must be 1024..67108864",
            ));
        }
        for (key, v) in [
            ("admin_api.header_timeout", a.header_timeout),
            ("admin_api.body_timeout", a.body_timeout),
        ] {
            if !(1..=300).contains(&v) {
                return Err(invalid(key, v, "must be 1..300"));
            }
        }
        if !(1..=10_000).contains(&a.max_connections) {
            return Err(invalid(
                "admin_api.max_connections",
                a.max_connections,
                "must be 1..10000",
            ));
        }
        Ok(())
    }

    /// The number of shards to run.
    pub fn shard_count(&self) -> usize {
        match self.general.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        let ranges: [(&'static str, usize, usize, usize); 9] = [
            ("limits.max_connections", self.max_connections, 1, 1_000_000),
            (
                "limits.handshake_timeout",
                self.handshake_timeout as usize,
                1,
                300,
            ),
            (
                "limits.no_session_timeout",
                self.no_session_timeout as usize,
                0,
                86_400,
            ),
            ("limits.tcp_keepalive", self.tcp_keepalive as usize, 0, 7200),
            (
                "limits.max_queued_bytes_per_connection",
                self.max_queued_bytes_per_connection,
                64 * 1024,
                1 << 30,
            ),
            (
                "limits.max_handles_per_session",
                self.max_handles_per_session,
                1,
                65_536,
            ),
            (
                "limits.max_queued_requests_per_handle",
                self.max_queued_requests_per_handle,
                1,
                65_536,
            ),
            (
                "limits.max_candidates_per_handle",
                self.max_candidates_per_handle,
                1,
                65_536,
            ),
            ("limits.max_json_depth", self.max_json_depth, 8, 1024),
        ];
        for (key, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(ConfigError::Invalid {
                    key,
                    value: value.to_string(),
                    why: "out of range (see conf/janus-proxy.toml)",
                });
            }
        }
        Ok(())
    }
}

/// Maps the original's level names onto tracing levels (FATAL logs as ERROR).
pub fn log_level(name: &str) -> Option<tracing::Level> {
    match name.to_ascii_uppercase().as_str() {
        "DEBUG" => Some(tracing::Level::DEBUG),
        "INFO" => Some(tracing::Level::INFO),
        "WARN" | "WARNING" => Some(tracing::Level::WARN),
        "ERROR" | "FATAL" => Some(tracing::Level::ERROR),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_file_shows_the_transport_defaults() {
        let c = Config::from_toml(include_str!("../../conf/janus-proxy.toml")).unwrap();
        let (h, d) = (&c.http_transport, HttpTransport::default());
        assert_eq!(
            (h.http, &h.http_listen, h.https, &h.https_listen),
            (d.http, &d.http_listen, d.https, &d.https_listen)
        );
        assert_eq!(
            (
                &h.static_folder,
                &h.allow_origin,
                h.enforce_cors,
                h.max_sessions
            ),
            (
                &d.static_folder,
                &d.allow_origin,
                d.enforce_cors,
                d.max_sessions
            )
        );
        let (w, d) = (&c.ws_transport, WsTransport::default());
        assert_eq!((w.wss, &w.wss_listen), (d.wss, &d.wss_listen));
        assert!(c.certificates.cert_pem.is_empty() && c.certificates.cert_pwd.is_empty());
    }

    #[test]
    fn transport_settings_are_checked() {
        let bad = [
            "[ws_transport]\nws = false\n",
            "[ws_transport]\nwss = true\n",
            "[http_transport]\nhttps = true\n",
            "[http_transport]\nhttp = true\nhttp_listen = \"localhost:1\"\n",
            "[http_transport]\nallow_origin = \"a b\"\n",
            "[certificates]\ncert_pwd = \"x\"\n",
        ];
        for text in bad {
            assert!(Config::from_toml(text).is_err(), "{text}");
        }
        let ok = "[ws_transport]\nws = false\n[http_transport]\nhttp = true\n";
        assert!(Config::from_toml(ok).is_ok());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.general.session_timeout, 60);
        assert_eq!(c.ws_transport.max_message_size, 262_144);
        assert_eq!(c.ws_transport.json, JsonStyle::Indented);
    }

    #[test]
    fn full_sample() {
        let c = Config::from_toml(
            r#"
plugins = ["echotest"]
[general]
server_select = "lb"
session_timeout = 30
[ws_transport]
json = "compact"
ws_listen = "127.0.0.1:9000"
[[janus_server]]
name = "s-1"
url = "ws://127.0.0.1:8188"
"#,
        )
        .unwrap();
        assert_eq!(c.janus_server[0].session_timeout, 60);
        assert_eq!(c.ws_transport.json, JsonStyle::Compact);
    }

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key_and_value() {
        assert!(err("[general]\nserver_select = \"fast\"").contains("general.server_select"));
        assert!(err("[general]\nserver_select = \"fast\"").contains("fast"));
        assert!(err("[general]\nsesion_timeout = 3").contains("sesion_timeout"));
        assert!(err("[general]\nsession_timeout = 100000").contains("100000"));
        assert!(err("[[janus_server]]\nname = \"a b\"\nurl = \"ws://x:1\"")
            .contains("janus_server.name"));
        assert!(err("[[janus_server]]\nname = \"a\"\nurl = \"http://x:1\"")
            .contains("janus_server.url"));
        assert!(err("[ws_transport]\njson = \"pretty\"").contains("pretty"));
        assert!(err("[log]\ndebug_level = \"LOUD\"").contains("LOUD"));
        assert!(err("[limits]\nmax_json_depth = 2").contains("limits.max_json_depth"));
        assert!(err("[limits]\nmax_connections = 0").contains("limits.max_connections"));
    }
}
