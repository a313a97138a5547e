//! Configuration: the TOML model of `conf/janus-sentinel.toml`, its defaults and its
//! validation. Owns nothing at run time; every other module receives an already
//! validated [`Config`]. Never touches the network (the `public_ip = "auto"` lookup lives
//! in `main.rs`).
//!
//! Section and key names are those of the original `janus-sentinel.yml` (spec 03 §2), plus
//! `janus.public_ip`. Every section is `#[serde(default, deny_unknown_fields)]`, so a
//! misspelt key is an error rather than a silently ignored setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What can go wrong while loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the model (unknown key, wrong type).
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A key has a value outside its allowed range.
    #[error("invalid value {value} for {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

fn invalid(key: impl Into<String>, value: impl std::fmt::Debug, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub general: General,
    pub log: Log,
    pub janus: Janus,
    pub proc_watcher: ProcWatcher,
    pub admin_api: AdminApi,
    /// One poster per entry, each with its own thread and schedule.
    pub posters: Vec<Poster>,
}

/// `[general]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct General {
    /// Accepted for compatibility; `true` is rejected (run under systemd or similar).
    pub daemonize: bool,
}

/// `[log]`: the same keys, defaults and meaning as janus-proxy's.
pub use janus_cloud::config::Log;

/// `[janus]`: the monitored Janus server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Janus {
    /// Name under which the server registers; "" = a random UUID at every start.
    pub server_name: String,
    /// Address used to reach Janus from the sentinel (probe and Admin API).
    pub server_ip: String,
    /// Address put in the URL posted to proxies: "" = `server_ip`; "auto" = the local IPv4
    /// address that routes towards 8.8.8.8 (found with a UDP connect, no packet sent).
    pub public_ip: String,
    /// Janus WebSocket API port.
    pub ws_port: u16,
    /// Janus Admin API WebSocket port; 0 = no statistics.
    pub admin_ws_port: u16,
    /// Seconds between probes.
    pub pingpong_interval: u64,
    /// Seconds between statistics rounds.
    pub statistic_interval: u64,
    /// Seconds to wait for any Janus reply (also the connect timeout).
    pub request_timeout: u64,
    /// Probe round trip (seconds, fractions allowed) above which the status is HWM; 0 = off.
    pub hwm_threshold: f64,
    /// Sent as `admin_secret` in Admin API requests when non-empty.
    pub admin_secret: String,
}

impl Default for Janus {
    fn default() -> Self {
        Janus {
            server_name: String::new(),
            server_ip: "127.0.0.1".into(),
            public_ip: String::new(),
            ws_port: 8188,
            admin_ws_port: 0,
            pingpong_interval: 5,
            statistic_interval: 10,
            request_timeout: 10,
            hwm_threshold: 0.0,
            admin_secret: String::new(),
        }
    }
}

/// `[proc_watcher]`: supervision of the Janus process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcWatcher {
    /// Command line starting Janus in the foreground, split shell-style, run without a
    /// shell; "" = no supervision.
    pub cmdline: String,
    /// Base delay (s) before restarting after a crash; doubles per consecutive crash up to
    /// [`crate::supervisor::MAX_BACKOFF_SECS`] (or the base when larger). 0 = never restart.
    pub error_restart_interval: u64,
    /// Seconds between checks of the child's state.
    pub poll_interval: u64,
}

impl Default for ProcWatcher {
    fn default() -> Self {
        ProcWatcher {
            cmdline: String::new(),
            error_restart_interval: 10,
            poll_interval: 1,
        }
    }
}

impl ProcWatcher {
    /// The command line split into program and arguments (empty when not supervised).
    ///
    /// # Errors
    /// Unbalanced quotes.
    pub fn args(&self) -> Result<Vec<String>, ConfigError> {
        shell_words::split(&self.cmdline)
            .map_err(|e| invalid("proc_watcher.cmdline", &self.cmdline, &e.to_string()))
    }
}

/// `[admin_api]`: the sentinel's own REST interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminApi {
    /// indented, plain or compact; ignored (bodies are always 4-space indented).
    pub json: String,
    /// `ip:port` to listen on.
    pub http_listen: String,
    /// The cluster secret: bearer token every REST route requires, and what posters send
    /// to proxies unless they set their own. "" = the `JANUS_CLOUD_SECRET` environment
    /// variable; none when that is unset too.
    pub secret: String,
    /// Allows a REST listener reachable from other machines without a secret.
    pub allow_no_secret: bool,
    /// Browser origins (`https://host[:port]`) allowed to call the REST interface.
    pub cors_origins: Vec<String>,
}

impl Default for AdminApi {
    fn default() -> Self {
        AdminApi {
            json: "indented".into(),
            http_listen: "127.0.0.1:8200".into(),
            secret: String::new(),
            allow_no_secret: false,
            cors_origins: Vec::new(),
        }
    }
}

impl AdminApi {
    /// Who may call the REST interface.
    pub fn policy(&self) -> janus_cloud::admin::http::Policy {
        janus_cloud::admin::http::Policy::new(&self.secret, &self.cors_origins)
    }
}

/// `[[posters]]`: where the server state is posted.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Poster {
    /// Only "http" exists.
    pub post_type: String,
    /// Label shown by `GET /sentinel/posters`.
    pub name: String,
    /// Every URL receives every post (normally `http://<proxy>:8100/sentinel_callback`).
    pub post_urls: Vec<String>,
    /// Seconds the proxy keeps the entry; also sets the period, min(60, expire / 3).
    pub expire: u64,
    /// Timeout (s) of each HTTP request.
    pub http_timeout: u64,
    /// Bearer token sent to the proxies (their `admin_api.secret`); "" = the sentinel's
    /// own `admin_api.secret` (the cluster secret).
    pub secret: String,
}

impl Default for Poster {
    fn default() -> Self {
        Poster {
            post_type: "http".into(),
            name: String::new(),
            post_urls: Vec::new(),
            expire: 60,
            http_timeout: 10,
            secret: String::new(),
        }
    }
}

fn check_range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(invalid(key, v, &format!("must be in {lo}..={hi}")))
    }
}

/// `^[\w-]{1,64}$` as the proxy checks names (ASCII word characters).
pub fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Config {
    /// Parses TOML text and validates it.
    ///
    /// # Errors
    /// Syntax, unknown keys, wrong types and out-of-range values.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_secret(text, None)
    }

    /// As [`Config::from_toml`], taking `env_secret` (the value of `JANUS_CLOUD_SECRET`) as
    /// the cluster secret when `admin_api.secret` is empty; posters without a secret of
    /// their own get the cluster secret.
    ///
    /// # Errors
    /// As [`Config::from_toml`].
    pub fn from_toml_with_secret(
        text: &str,
        env_secret: Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text)?;
        c.admin_api.secret =
            janus_cloud::config::access::secret_or_env(&c.admin_api.secret, env_secret);
        for p in &mut c.posters {
            if p.secret.is_empty() {
                p.secret = c.admin_api.secret.clone();
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Reads, parses and validates a file.
    ///
    /// # Errors
    /// As [`Config::from_toml`], plus an unreadable file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let env = std::env::var(janus_cloud::config::access::SECRET_ENV).ok();
        Config::from_toml_with_secret(&text, env)
    }

    /// Checks every value; the error names the key and the bad value.
    ///
    /// # Errors
    /// The first invalid key found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.general.daemonize {
            return Err(invalid(
                "general.daemonize",
                true,
                "not supported; run under a supervisor such as systemd",
            ));
        }
        let l = &self.log;
        if !matches!(
            l.debug_level.to_ascii_uppercase().as_str(),
            "DEBUG" | "INFO" | "WARN" | "WARNING" | "ERROR" | "FATAL"
        ) {
            return Err(invalid(
                "log.debug_level",
                &l.debug_level,
                "must be DEBUG, INFO, WARN, ERROR or FATAL",
            ));
        }
        if l.log_file_size == 0 {
            return Err(invalid("log.log_file_size", 0, "must be > 0"));
        }
        let j = &self.janus;
        if !j.server_name.is_empty() && !valid_server_name(&j.server_name) {
            return Err(invalid(
                "janus.server_name",
                &j.server_name,
                "must be 1-64 characters from [A-Za-z0-9_-] (or empty for a random UUID)",
            ));
        }
        if j.server_ip.trim().is_empty() || j.server_ip.contains(char::is_whitespace) {
            return Err(invalid(
                "janus.server_ip",
                &j.server_ip,
                "must be a host name or IP address",
            ));
        }
        if j.public_ip.contains(char::is_whitespace) || j.public_ip.contains('/') {
            return Err(invalid(
                "janus.public_ip",
                &j.public_ip,
                "must be \"\", \"auto\" or a host name/IP address",
            ));
        }
        if j.ws_port == 0 {
            return Err(invalid("janus.ws_port", 0, "must be in 1..=65535"));
        }
        check_range("janus.pingpong_interval", j.pingpong_interval, 1, 3600)?;
        check_range("janus.statistic_interval", j.statistic_interval, 1, 3600)?;
        check_range("janus.request_timeout", j.request_timeout, 1, 3600)?;
        if !(0.0..=300.0).contains(&j.hwm_threshold) {
            return Err(invalid(
                "janus.hwm_threshold",
                j.hwm_threshold,
                "must be in 0..=300 seconds",
            ));
        }
        let p = &self.proc_watcher;
        check_range(
            "proc_watcher.error_restart_interval",
            p.error_restart_interval,
            0,
            86_400,
        )?;
        check_range("proc_watcher.poll_interval", p.poll_interval, 1, 3600)?;
        if p.args()?.first().is_some_and(|prog| prog.is_empty()) {
            return Err(invalid(
                "proc_watcher.cmdline",
                &p.cmdline,
                "names no program",
            ));
        }
        let a = &self.admin_api;
        if !matches!(a.json.as_str(), "indented" | "plain" | "compact") {
            return Err(invalid(
                "admin_api.json",
                &a.json,
                "must be indented, plain or compact",
            ));
        }
        if a.http_listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "admin_api.http_listen",
                &a.http_listen,
                "must be ip:port",
            ));
        }
        {
            use janus_cloud::config::access::{check_exposure, valid_origin, valid_secret};
            if !valid_secret(&a.secret) {
                return Err(invalid(
                    "admin_api.secret",
                    "(hidden)",
                    "at most 512 printable ASCII characters without spaces",
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
            if let Some(i) = self.posters.iter().position(|p| !valid_secret(&p.secret)) {
                return Err(invalid(
                    format!("posters[{i}].secret"),
                    "(hidden)",
                    "at most 512 printable ASCII characters without spaces",
                ));
            }
        }
        for (i, ps) in self.posters.iter().enumerate() {
            let key = |k: &str| format!("posters[{i}].{k}");
            if ps.post_type != "http" {
                return Err(invalid(
                    key("post_type"),
                    &ps.post_type,
                    "only \"http\" is supported",
                ));
            }
            if ps.name.chars().count() > 64 {
                return Err(invalid(key("name"), &ps.name, "at most 64 characters"));
            }
            if ps.post_urls.is_empty() {
                return Err(invalid(
                    key("post_urls"),
                    &ps.post_urls,
                    "needs at least one URL",
                ));
            }
            for u in &ps.post_urls {
                let rest = u
                    .strip_prefix("http://")
                    .or_else(|| u.strip_prefix("https://"));
                if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                    return Err(invalid(
                        key("post_urls"),
                        u,
                        "must be an http:// or https:// URL",
                    ));
                }
            }
            check_range(&key("expire"), ps.expire, 1, 3600)?;
            check_range(&key("http_timeout"), ps.http_timeout, 1, 3600)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").expect("defaults are valid");
        assert_eq!(c.janus.server_ip, "127.0.0.1");
        assert_eq!(c.janus.ws_port, 8188);
        assert_eq!(c.janus.admin_ws_port, 0);
        assert_eq!(c.janus.pingpong_interval, 5);
        assert_eq!(c.janus.hwm_threshold, 0.0);
        assert_eq!(c.proc_watcher.error_restart_interval, 10);
        assert_eq!(c.admin_api.http_listen, "127.0.0.1:8200");
        assert_eq!(c.admin_api.secret, "");
        assert!(c.posters.is_empty());
        assert_eq!(c.log.debug_level, "INFO");
    }

    #[test]
    fn full_file_parses() {
        let c = Config::from_toml(
            r#"
            [general]
            daemonize = false
            [log]
            log_to_stdout = false
            debug_level = "info"
            [janus]
            server_name = "janus-1"
            server_ip = "10.0.0.5"
            public_ip = "auto"
            ws_port = 8188
            admin_ws_port = 7188
            hwm_threshold = 1
            admin_secret = "janusoverlord"
            [proc_watcher]
            cmdline = "/usr/bin/janus -C '/etc/janus dir/janus.jcfg'"
            error_restart_interval = 0
            [admin_api]
            http_listen = "127.0.0.1:8200"
            [[posters]]
            post_type = "http"
            name = "main"
            post_urls = ["http://127.0.0.1:8100/sentinel_callback", "https://p2/cb"]
            expire = 30
            http_timeout = 5
            "#,
        )
        .expect("valid");
        assert_eq!(c.janus.hwm_threshold, 1.0);
        assert_eq!(
            c.proc_watcher.args().expect("split"),
            ["/usr/bin/janus", "-C", "/etc/janus dir/janus.jcfg"]
        );
        assert_eq!(c.posters[0].post_urls.len(), 2);
    }

    fn err_of(text: &str) -> String {
        match Config::from_toml(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_key_and_value() {
        let e = err_of("[janus]\npingpong_interval = 0");
        assert!(
            e.contains("janus.pingpong_interval") && e.contains('0'),
            "{e}"
        );
        let e = err_of("[janus]\nserver_name = \"a b\"");
        assert!(
            e.contains("janus.server_name") && e.contains("\"a b\""),
            "{e}"
        );
        let e = err_of("[[posters]]\npost_type = \"mqtt\"\npost_urls = [\"http://x\"]");
        assert!(
            e.contains("posters[0].post_type") && e.contains("mqtt"),
            "{e}"
        );
        let e = err_of("[[posters]]\npost_urls = [\"ftp://x\"]");
        assert!(
            e.contains("posters[0].post_urls") && e.contains("ftp://x"),
            "{e}"
        );
        let e = err_of("[[posters]]\nname = \"x\"");
        assert!(e.contains("posters[0].post_urls"), "{e}");
        let e = err_of("[admin_api]\nhttp_listen = \"nowhere\"");
        assert!(
            e.contains("admin_api.http_listen") && e.contains("nowhere"),
            "{e}"
        );
        let e = err_of("[proc_watcher]\ncmdline = \"janus 'unbalanced\"");
        assert!(e.contains("proc_watcher.cmdline"), "{e}");
        let e = err_of("[proc_watcher]\ncmdline = '\"\" -F x'");
        assert!(e.contains("names no program"), "{e}");
        let e = err_of("[janus]\nhwm_threshold = 301");
        assert!(e.contains("janus.hwm_threshold"), "{e}");
        let e = err_of("[general]\ndaemonize = true");
        assert!(e.contains("general.daemonize"), "{e}");
    }

    #[test]
    fn secrets_and_exposure() {
        let e = err_of("[admin_api]\nhttp_listen = \"0.0.0.0:8200\"");
        assert!(
            e.contains("admin_api.http_listen") && e.contains("secret"),
            "{e}"
        );
        let open = "[admin_api]\nhttp_listen = \"0.0.0.0:8200\"\nallow_no_secret = true";
        assert!(Config::from_toml(open).is_ok());
        let text = "[admin_api]\nhttp_listen = \"0.0.0.0:8200\"\n\
                    [[posters]]\npost_urls = [\"http://p:8100/sentinel_callback\"]\n\
                    [[posters]]\npost_urls = [\"http://q:8100/sentinel_callback\"]\nsecret = \"own\"";
        let c = Config::from_toml_with_secret(text, Some("cluster".into())).expect("env secret");
        assert_eq!(c.admin_api.secret, "cluster");
        assert_eq!(c.posters[0].secret, "cluster");
        assert_eq!(c.posters[1].secret, "own");
        let e = err_of("[admin_api]\ncors_origins = [\"*\"]");
        assert!(e.contains("admin_api.cors_origins"), "{e}");
        let e = err_of("[admin_api]\nsecret = \"two words\"");
        assert!(e.contains("admin_api.secret") && !e.contains("two"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = err_of("[janus]\nws_prot = 8188");
        assert!(e.contains("ws_prot"), "{e}");
        let e = err_of("[[posters]]\npost_urls = [\"http://x\"]\nexpires = 3");
        assert!(e.contains("expires"), "{e}");
    }

    #[test]
    fn server_name_rule() {
        assert!(valid_server_name("janus-1_A"));
        assert!(!valid_server_name(""));
        assert!(!valid_server_name("a.b"));
        assert!(!valid_server_name(&"x".repeat(65)));
    }
}
