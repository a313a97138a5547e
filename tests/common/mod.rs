//! Shared harness for the janus-proxy integration tests.
//!
//! * [`backends`] / [`shared_backends`] / [`Backends::own`]: real Janus 1.1.2 instances started
//!   through `scripts/janus-backends.sh`, guarded by an exclusive `flock` so that parallel test
//!   processes (nextest runs every test in its own process) never race on a set.
//! * [`ProxyConfig`] / [`Proxy`]: a `janus-proxy` child process on a free port, with its output
//!   captured to a file that is printed when the test fails.
//! * [`Client`]: a synchronous WebSocket client speaking `janus-protocol`, with transaction
//!   matching and a stash of unrelated frames for later [`Client::recv_event`].
//! * [`AdminClient`]: Janus Admin API client (`janus-admin-protocol`) used to look at the
//!   backends from outside.
//!
//! Port plan (Janus WS port / admin = WS - 1000 / UDP RTP range); keep new sets disjoint:
//!
//! | set             | WS          | admin       | RTP (UDP)     | used by                 |
//! |-----------------|-------------|-------------|---------------|-------------------------|
//! | shared          | 18188-18189 | 17188-17189 | 20000-23999   | most proxy tests        |
//! | cluster-kill    | 18288-18289 | 17288-17289 | 24000-25999   | tests/cluster.rs        |
//! | (sentinel-*)    | 18388-18393 | 17388-17393 | 28000-29199   | sentinel/tests          |
//! | cluster-rr2     | 18488-18489 | 17488-17489 | 12000-13999   | tests/cluster.rs        |
//! | cluster-gc      | 18588       | 17588       | 16000-16999   | tests/cluster.rs        |
//! | cluster-restart | 18688       | 17688       | 18000-18999   | tests/cluster.rs        |
//! | cluster-rr      | 18788-18789 | 17788-17789 | 10000-11999   | tests/cluster.rs        |
//! | (loadtest-*)    | 18888-18889 | 17888-17889 | 30000-31999   | loadtest/tests/smoke.rs |
//! | videocall-kill  | 18988-18989 | 17988-17989 | 14000-15999   | tests/videocall.rs      |
//! | cluster-release | 18698       | 17698       | 19000-19999   | tests/cluster.rs        |
//! | (clients-*)     | 19188-19193 | 19198-19203 | 34000-39999   | clients/test (node)     |
//! | (clients-failover) | 18520    | 18530       | 49000-49299   | clients/test/failover.test.mjs |
//! | http-compare    | 19498 (HTTP 19508) | 18498 | 26000-26999 | tests/http_api.rs  |
//! | (clients-videoroom) | 19230-19232 | 19240-19242 | 43000-43899 | clients/test/videoroom.test.mjs |
//! | (clients-vr-cluster) | 18600-18602 | 18610-18612 | 49300-50199 | clients/test/videoroom_cluster.test.mjs |
//! | videoroom       | 19250-19252 | 18250-18252 | 41000-42799   | tests/videoroom*.rs     |
//! | videoroom-kill  | 19260-19262 | 18260-18262 | 17000-17899   | tests/videoroom.rs      |
//! | videoroom-kill-media | 19270-19272 | 18270-18272 | 29200-29979 | tests/videoroom_media.rs |
//! | (mediapeer)     | 19388       | 19389       | 40000-40999   | mediapeer/tests         |
//! | failover        | 18078       | 17078       | 32000-32699   | tests/failover.rs (`JANUS_CLOUD_FAILOVER_PORT`/`_RTP` move it) |
//! | vr-cluster      | 18300-18302 | 17300-17302 | 33000-33899   | tests/videoroom_cluster.rs |
//! | videoroom-alt, -kill-alt, -kill-media-alt | 18400-02, 18410-12, 18420-22 | WS - 1000 | 6000-7799, 8000-8899, 9000-9779 | the three videoroom sets with `JANUS_CLOUD_VR_ALT_PORTS` |
//! | (loadtest-videoroom) | 19280-19281 | 18280-18281 | 27000-27999 | loadtest/tests/smoke.rs |
//! | (bench-videoroom) | 19450-19452 (proxy 19455-19456) | 19460-19462 | 44000-48499 | scripts/bench-videoroom.sh (by hand) |
//!
//! `JANUS_CLOUD_SHARED_PORT`/`JANUS_CLOUD_SHARED_RTP` move the shared set (see
//! [`shared_backends`]) when another test tree on the machine uses 18188.
//!
//! Nothing here sleeps for synchronisation: every wait is a poll with a deadline or a blocking
//! read with a timeout.

#![allow(dead_code)]

pub mod vr;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

/// Largest id a Janus API id may take (JavaScript-safe integers).
pub const MAX_ID: u64 = 1 << 53;

/// Default time to wait for a direct reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------------------
// paths / environment

/// Folder under which every backend set lives (`JANUS_CLOUD_TEST_DIR`, default
/// `${TMPDIR:-/tmp}/janus-cloud-tests`). scripts/test.sh stops everything under it.
pub fn test_dir() -> PathBuf {
    let dir = match std::env::var_os("JANUS_CLOUD_TEST_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let tmp = std::env::var_os("TMPDIR")
                .filter(|t| !t.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            tmp.join("janus-cloud-tests")
        }
    };
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// `JANUS_BACKENDS_SCRIPT`, else `<CARGO_MANIFEST_DIR>/scripts/janus-backends.sh`.
pub fn backends_script() -> PathBuf {
    match std::env::var_os("JANUS_BACKENDS_SCRIPT") {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/janus-backends.sh"),
    }
}

/// Path of the proxy binary built by cargo for these tests.
pub fn proxy_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_janus-proxy"))
}

// ------------------------------------------------------------------------------------------
// file lock (flock)

/// An exclusive `flock` on a file; released on drop.
pub struct FileLock {
    file: File,
}

impl FileLock {
    pub fn exclusive(path: &Path) -> FileLock {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()));
        loop {
            // SAFETY: flock on a valid, open file descriptor.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != ErrorKind::Interrupted {
                panic!("flock({}) failed: {err}", path.display());
            }
        }
        FileLock { file }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing it would release the lock anyway.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Janus backends

/// A set of Janus instances started by janus-backends.sh.
pub struct Backends {
    pub set: String,
    pub workdir: PathBuf,
    pub n: usize,
    pub base_port: u16,
    pub rtp_base: u16,
    /// Owned sets are stopped on drop (and hold their lock for their whole life).
    owned: bool,
    _lock: Option<FileLock>,
}

fn run_script(args: &[&str], envs: &[(&str, String)]) -> (bool, String) {
    let script = backends_script();
    assert!(
        script.exists(),
        "janus-backends.sh not found at {} (set JANUS_BACKENDS_SCRIPT)",
        script.display()
    );
    let mut cmd = Command::new("bash");
    cmd.arg(&script).args(args).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let text = format!(
        "$ janus-backends.sh {}\n--- stdout ---\n{}--- stderr ---\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// UDP ports each Janus instance of a shared set gets for RTP/ICE.
pub const SHARED_RTP_SPAN: u16 = 2000;
/// UDP ports each Janus instance of an owned (per-test) set gets for RTP/ICE.
pub const OWN_RTP_SPAN: u16 = 1000;

fn start_set(n: usize, base_port: u16, rtp_base: u16, rtp_span: u16, workdir: &Path) {
    start_set_with(n, base_port, rtp_base, rtp_span, workdir, &[]);
}

fn start_set_with(
    n: usize,
    base_port: u16,
    rtp_base: u16,
    rtp_span: u16,
    workdir: &Path,
    extra: &[(&str, String)],
) {
    let wd = workdir.to_str().expect("utf-8 workdir").to_string();
    let mut envs = vec![
        ("JANUS_RTP_BASE", rtp_base.to_string()),
        ("JANUS_RTP_SPAN", rtp_span.to_string()),
    ];
    envs.extend(extra.iter().cloned());
    let (ok, text) = run_script(
        &["start", &n.to_string(), &base_port.to_string(), &wd],
        &envs,
    );
    assert!(ok, "starting Janus backends failed:\n{text}");
}

fn set_running(workdir: &Path, n: usize) -> bool {
    if !workdir.join("janus-0").exists() {
        return false;
    }
    let wd = workdir.to_str().expect("utf-8 workdir").to_string();
    let (ok, text) = run_script(&["status", &wd], &[]);
    // status exits 0 only when every instance runs and accepts connections; also make sure the
    // set has the expected size.
    ok && text.lines().filter(|l| l.contains("\trunning\t")).count() == n
}

fn stop_set(workdir: &Path) -> String {
    let wd = workdir.to_str().expect("utf-8 workdir").to_string();
    let (_ok, text) = run_script(&["stop", &wd], &[]);
    text
}

/// Start (once) or reuse the backend set `set` with `n` instances on `base_port..`, RTP ports
/// from `rtp_base` (each instance uses a 2000-port span). Never stopped by the tests.
pub fn backends_with(set: &str, n: usize, base_port: u16, rtp_base: u16) -> Backends {
    backends_with_span(set, n, base_port, rtp_base, SHARED_RTP_SPAN)
}

/// [`backends_with`] with `rtp_span` UDP ports per instance.
pub fn backends_with_span(
    set: &str,
    n: usize,
    base_port: u16,
    rtp_base: u16,
    rtp_span: u16,
) -> Backends {
    backends_with_env(set, n, base_port, rtp_base, rtp_span, &[])
}

/// [`backends_with_span`] with more `janus-backends.sh` settings (e.g.
/// `JANUS_RECLAIM_SESSION_TIMEOUT`), applied when the set is (re)started.
pub fn backends_with_env(
    set: &str,
    n: usize,
    base_port: u16,
    rtp_base: u16,
    rtp_span: u16,
    extra: &[(&str, String)],
) -> Backends {
    let dir = test_dir();
    let workdir = dir.join(set);
    {
        let _lock = FileLock::exclusive(&dir.join(format!("{set}.lock")));
        if !set_running(&workdir, n) {
            // clean up a half-dead set before starting it again
            if workdir.join("janus-0").exists() {
                stop_set(&workdir);
            }
            start_set_with(n, base_port, rtp_base, rtp_span, &workdir, extra);
        }
    }
    Backends {
        set: set.to_string(),
        workdir,
        n,
        base_port,
        rtp_base,
        owned: false,
        _lock: None,
    }
}

/// Shared-set helper with the RTP base derived from the WS port (18188 -> 20000,
/// 18288 -> 24000); prefer [`backends_with`] with a base from the port plan above.
pub fn backends(set: &str, n: usize, base_port: u16) -> Backends {
    let slot = (base_port.saturating_sub(18188) / 100) as u32;
    let rtp_base = 20000 + slot * 4000;
    assert!(
        rtp_base + (n as u32) * 2000 <= 32768,
        "RTP range for {set} would reach the ephemeral port range"
    );
    backends_with(set, n, base_port, rtp_base as u16)
}

/// The shared set used by most tests: 2 instances, ws 18188/18189, admin 17188/17189,
/// RTP 20000..23999. Started once, never killed by the tests.
///
/// `JANUS_CLOUD_SHARED_PORT` (ws port of the first instance) and `JANUS_CLOUD_SHARED_RTP`
/// (first RTP port) move it, for a second test tree on the same machine; the set is then
/// named `shared-<port>`.
pub fn shared_backends() -> &'static Backends {
    static SHARED: OnceLock<Backends> = OnceLock::new();
    SHARED.get_or_init(|| {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u16>().ok());
        match env("JANUS_CLOUD_SHARED_PORT") {
            Some(port) => {
                let rtp = env("JANUS_CLOUD_SHARED_RTP").unwrap_or(20000);
                backends_with(&format!("shared-{port}"), 2, port, rtp)
            }
            None => backends_with("shared", 2, 18188, 20000),
        }
    })
}

impl Backends {
    /// A set owned by one test: (re)started fresh, locked for the test's whole life and stopped
    /// on drop. Use a distinct set name, base port and RTP base per test (see the port plan
    /// above); instance i gets UDP ports `rtp_base + i * OWN_RTP_SPAN ..`.
    pub fn own(set: &str, n: usize, base_port: u16, rtp_base: u16) -> Backends {
        Backends::own_with_span(set, n, base_port, rtp_base, OWN_RTP_SPAN)
    }

    /// [`Backends::own`] with `rtp_span` UDP ports per instance.
    pub fn own_with_span(
        set: &str,
        n: usize,
        base_port: u16,
        rtp_base: u16,
        rtp_span: u16,
    ) -> Backends {
        let dir = test_dir();
        let workdir = dir.join(set);
        let lock = FileLock::exclusive(&dir.join(format!("{set}.lock")));
        if workdir.join("janus-0").exists() {
            stop_set(&workdir);
        }
        start_set(n, base_port, rtp_base, rtp_span, &workdir);
        Backends {
            set: set.to_string(),
            workdir,
            n,
            base_port,
            rtp_base,
            owned: true,
            _lock: Some(lock),
        }
    }

    /// Like [`Backends::own`], with more `janus-backends.sh` settings (e.g.
    /// `JANUS_HTTP_BASE_PORT`); [`Backends::restart`] does not keep them.
    pub fn own_with(
        set: &str,
        n: usize,
        base_port: u16,
        rtp_base: u16,
        extra: &[(&str, String)],
    ) -> Backends {
        let dir = test_dir();
        let workdir = dir.join(set);
        let lock = FileLock::exclusive(&dir.join(format!("{set}.lock")));
        if workdir.join("janus-0").exists() {
            stop_set(&workdir);
        }
        start_set_with(n, base_port, rtp_base, OWN_RTP_SPAN, &workdir, extra);
        Backends {
            set: set.to_string(),
            workdir,
            n,
            base_port,
            rtp_base,
            owned: true,
            _lock: Some(lock),
        }
    }

    /// Stop whatever is left of an owned set and start all its instances again.
    pub fn restart(&self) {
        assert!(self.owned, "never restart a shared backend set");
        stop_set(&self.workdir);
        start_set(
            self.n,
            self.base_port,
            self.rtp_base,
            OWN_RTP_SPAN,
            &self.workdir,
        );
    }

    pub fn ws_port(&self, i: usize) -> u16 {
        self.base_port + i as u16
    }

    pub fn ws_url(&self, i: usize) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port(i))
    }

    pub fn admin_url(&self, i: usize) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port(i) - 1000)
    }

    /// `(name, url)` pairs for the proxy config, named janus-0, janus-1, ...
    pub fn servers(&self) -> Vec<(String, String)> {
        (0..self.n)
            .map(|i| (format!("janus-{i}"), self.ws_url(i)))
            .collect()
    }

    pub fn pid(&self, i: usize) -> i32 {
        let p = self.workdir.join(format!("janus-{i}/janus.pid"));
        let s =
            fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
        s.trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad pid in {}: {e}", p.display()))
    }

    /// SIGKILL instance `i` (only allowed on owned sets).
    pub fn kill9(&self, i: usize) {
        assert!(self.owned, "never kill a shared backend");
        let pid = self.pid(i);
        // SAFETY: plain kill(2) on the pid the script recorded for this instance.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(
            rc,
            0,
            "kill -9 {pid} failed: {}",
            std::io::Error::last_os_error()
        );
    }

    pub fn admin(&self, i: usize) -> AdminClient {
        AdminClient::connect(&self.admin_url(i))
    }

    /// Total number of handles over all sessions of instance `i` (Admin API).
    pub fn handle_count(&self, i: usize) -> usize {
        self.admin(i).all_handles().len()
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        if self.owned {
            let text = stop_set(&self.workdir);
            if std::thread::panicking() {
                eprintln!("{text}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// proxy

/// The cluster secret every test proxy gets unless a test sets another
/// (`admin_api.secret`): the admin API and proxy-to-proxy calls run authenticated, as in
/// production.
pub const TEST_ADMIN_SECRET: &str = "janus-cloud-test-secret-5b1f0c";

/// Defines a test once per [`Transport`]: module `$name` with tests `ws`, `wss` and `http`,
/// each running the body with `$t` set (a proxy for it needs
/// [`ProxyConfig::all_transports`]).
#[allow(unused_macros)]
macro_rules! over_transports {
    (fn $name:ident($t:ident: Transport) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($t: Transport) $body

            #[test]
            fn ws() {
                run(Transport::Ws)
            }

            #[test]
            fn wss() {
                run(Transport::Wss)
            }

            #[test]
            fn http() {
                run(Transport::Http)
            }
        }
    };
}

/// Builder for the proxy's TOML configuration. Values are TOML literals (`"\"rr\""`, `"60"`).
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub plugins: Vec<String>,
    sections: Vec<(String, Vec<(String, String)>)>,
    pub servers: Vec<(String, String)>,
    /// TOML appended as is (arrays of tables such as `[[videoroom.rooms]]`).
    pub extra: String,
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl ProxyConfig {
    /// Defaults of the brief, pointing at the given backends. `ws_listen` is filled in by
    /// [`Proxy::start`] with a free port unless set explicitly.
    pub fn new(servers: Vec<(String, String)>) -> ProxyConfig {
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        ProxyConfig {
            plugins: vec!["echotest".into(), "dummytest".into()],
            sections: vec![
                (
                    "general".into(),
                    vec![
                        s("server_name", "\"test-proxy\""),
                        s("session_timeout", "60"),
                        s("reclaim_session_timeout", "0"),
                        s("server_select", "\"rr\""),
                        s("api_secret", "\"\""),
                        s("shards", "2"),
                    ],
                ),
                (
                    "log".into(),
                    vec![s("log_to_stdout", "true"), s("debug_level", "\"INFO\"")],
                ),
                (
                    "ws_transport".into(),
                    vec![
                        s("json", "\"indented\""),
                        s("ws", "true"),
                        s("max_message_size", "262144"),
                        s("max_sessions_per_connection", "1024"),
                        s("pingpong_trigger", "0"),
                        s("pingpong_timeout", "30"),
                    ],
                ),
                ("backend".into(), vec![s("request_timeout", "30")]),
                (
                    "admin_api".into(),
                    vec![s("secret", &quote(TEST_ADMIN_SECRET))],
                ),
            ],
            servers,
            extra: String::new(),
        }
    }

    /// Appends raw TOML to the file.
    pub fn raw(mut self, text: &str) -> ProxyConfig {
        self.extra.push_str(text);
        self
    }

    /// Config using the shared backend set (starting it if needed).
    pub fn shared() -> ProxyConfig {
        ProxyConfig::new(shared_backends().servers())
    }

    /// Config whose backends are never contacted (for tests that only use dummytest/core verbs).
    /// It still lists the shared set's URLs: the proxy may connect to them in the background.
    pub fn without_backends() -> ProxyConfig {
        let port = std::env::var("JANUS_CLOUD_SHARED_PORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(18188);
        ProxyConfig::new(vec![
            ("janus-0".into(), format!("ws://127.0.0.1:{port}")),
            ("janus-1".into(), format!("ws://127.0.0.1:{}", port + 1)),
        ])
    }

    /// Also serve WSS (with [`test_cert`]) and Janus's HTTP API, on free ports picked by
    /// [`Proxy::start`]: for tests that run over every [`Transport`].
    pub fn all_transports(self) -> ProxyConfig {
        let (cert, key) = test_cert();
        self.set("ws_transport", "wss", "true")
            .set("http_transport", "http", "true")
            .set_str(
                "certificates",
                "cert_pem",
                cert.to_str().expect("utf-8 path"),
            )
            .set_str(
                "certificates",
                "cert_key",
                key.to_str().expect("utf-8 path"),
            )
    }

    /// Set `section.key` to a TOML literal.
    pub fn set(mut self, section: &str, key: &str, literal: &str) -> ProxyConfig {
        let sec = match self.sections.iter().position(|(n, _)| n == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let entries = &mut self.sections[sec].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = literal.to_string(),
            None => entries.push((key.to_string(), literal.to_string())),
        }
        self
    }

    /// Set `section.key` to a string value.
    pub fn set_str(self, section: &str, key: &str, value: &str) -> ProxyConfig {
        self.set(section, key, &quote(value))
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(n, _)| n == section)
            .and_then(|(_, e)| e.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.as_str())
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let plugins: Vec<String> = self.plugins.iter().map(|p| quote(p)).collect();
        out.push_str(&format!("plugins = [{}]\n", plugins.join(", ")));
        for (name, entries) in &self.sections {
            out.push_str(&format!("\n[{name}]\n"));
            for (k, v) in entries {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for (name, url) in &self.servers {
            out.push_str(&format!(
                "\n[[janus_server]]\nname = {}\nurl = {}\n",
                quote(name),
                quote(url)
            ));
        }
        out.push_str(&self.extra);
        out
    }
}

/// A free TCP port on 127.0.0.1 (bound and released at once).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A running janus-proxy; killed on drop (its output is printed if the test is failing).
pub struct Proxy {
    pub child: Child,
    pub port: u16,
    /// Port of the admin REST API (`admin_api.http_listen`).
    pub admin_port: u16,
    /// Ports of the WSS and HTTP listeners, when enabled.
    pub wss_port: Option<u16>,
    pub http_port: Option<u16>,
    pub dir: tempfile::TempDir,
    pub log_path: PathBuf,
    pub config: ProxyConfig,
}

impl Proxy {
    /// Write the config, spawn the proxy and wait until it answers `info` (10 s deadline).
    pub fn start(config: ProxyConfig) -> Proxy {
        let mut last_err = String::new();
        // a freshly picked port can be taken by someone else before the proxy binds it: retry
        for _attempt in 0..3 {
            let config = if config.get("ws_transport", "ws_listen").is_some() {
                config.clone()
            } else {
                config.clone().set_str(
                    "ws_transport",
                    "ws_listen",
                    &format!("127.0.0.1:{}", free_port()),
                )
            };
            // the admin REST API (default 127.0.0.1:8100) would collide between proxies
            let config = if config.get("admin_api", "http_listen").is_some() {
                config
            } else {
                config.set_str(
                    "admin_api",
                    "http_listen",
                    &format!("127.0.0.1:{}", free_port()),
                )
            };
            let mut config = config;
            for (section, on, key) in [
                ("ws_transport", "wss", "wss_listen"),
                ("http_transport", "http", "http_listen"),
            ] {
                if config.get(section, on) == Some("true") && config.get(section, key).is_none() {
                    config = config.set_str(section, key, &format!("127.0.0.1:{}", free_port()));
                }
            }
            let port_of = |section: &str, key: &str| -> Option<u16> {
                config
                    .get(section, key)
                    .and_then(|v| v.trim_matches('"').rsplit(':').next()?.parse().ok())
            };
            let wss_port = (config.get("ws_transport", "wss") == Some("true"))
                .then(|| port_of("ws_transport", "wss_listen"))
                .flatten();
            let http_port = (config.get("http_transport", "http") == Some("true"))
                .then(|| port_of("http_transport", "http_listen"))
                .flatten();
            let port: u16 = config
                .get("ws_transport", "ws_listen")
                .and_then(|v| {
                    v.trim_matches('"')
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                })
                .expect("ws_listen with a port");
            // under JANUS_CLOUD_TEST_DIR, so that scripts/test.sh finds leftovers by cmdline
            let parent = test_dir().join("proxies");
            fs::create_dir_all(&parent).expect("create proxies dir");
            let admin_port: u16 = config
                .get("admin_api", "http_listen")
                .and_then(|v| {
                    v.trim_matches('"')
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                })
                .expect("admin_api.http_listen with a port");
            let dir = tempfile::Builder::new()
                .prefix("janus-proxy-")
                .tempdir_in(&parent)
                .expect("tempdir");
            let cfg_path = dir.path().join("janus-proxy.toml");
            fs::write(&cfg_path, config.render()).expect("write config");
            let log_path = dir.path().join("proxy.log");
            let log = File::create(&log_path).expect("create log");
            let child = Command::new(proxy_bin())
                .arg(&cfg_path)
                // the secret comes from the config only
                .env_remove("JANUS_CLOUD_SECRET")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", proxy_bin().display()));
            let mut proxy = Proxy {
                child,
                port,
                admin_port,
                wss_port,
                http_port,
                dir,
                log_path,
                config,
            };
            match proxy.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return proxy,
                Err(e) => {
                    last_err = format!(
                        "{e}\n--- config ---\n{}\n--- proxy output ---\n{}",
                        proxy.config.render(),
                        proxy.log()
                    );
                    let exited = proxy.child.try_wait().ok().flatten().is_some();
                    let _ = proxy.child.kill();
                    let _ = proxy.child.wait();
                    let log = proxy.log();
                    // only a lost port race is worth another try
                    if !(exited && (log.contains("in use") || log.contains("AddrInUse"))) {
                        break;
                    }
                }
            }
        }
        panic!("janus-proxy did not become ready: {last_err}");
    }

    fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("janus-proxy exited early with {st}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no `info` answer on port {} within {within:?}",
                    self.port
                ));
            }
            if let Ok(mut c) = Client::try_connect(&self.url(), Some("janus-protocol")) {
                if let Some(reply) = c.try_request(json!({"janus": "info"}), Duration::from_secs(2))
                {
                    if reply["janus"] == "server_info" {
                        return Ok(());
                    }
                    return Err(format!("unexpected reply to info: {reply}"));
                }
            }
            poll_pause();
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The admin API secret this proxy was given (`None` = none).
    pub fn admin_secret(&self) -> Option<String> {
        self.config
            .get("admin_api", "secret")
            .and_then(|v| serde_json::from_str::<String>(v).ok())
            .filter(|s| !s.is_empty())
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.url())
    }

    /// The URL of the client API over `t` (its listener must be enabled, see
    /// [`ProxyConfig::all_transports`]).
    pub fn url_over(&self, t: Transport) -> String {
        let need = |p: Option<u16>, what: &str| {
            p.unwrap_or_else(|| panic!("this proxy has no {what} listener"))
        };
        match t {
            Transport::Ws => self.url(),
            Transport::Wss => format!("wss://127.0.0.1:{}", need(self.wss_port, "wss")),
            Transport::Http => format!("http://127.0.0.1:{}/janus", need(self.http_port, "http")),
        }
    }

    /// A client over `t`.
    pub fn client_over(&self, t: Transport) -> Client {
        Client::connect(&self.url_over(t))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Wait until an echotest attach through this proxy succeeds (backends connect in the
    /// background after start). The probe session is destroyed again.
    pub fn wait_echotest_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut c = self.client();
        let sid = c.create_session();
        loop {
            let r = c.request(
                json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.echotest"}),
            );
            if r["janus"] == "success" {
                let hid = r["data"]["id"].as_u64().unwrap();
                let d = c.request(json!({"janus": "detach", "session_id": sid, "handle_id": hid}));
                assert_eq!(d["janus"], "success", "detach of the probe handle: {d}");
                let _ = c.request(json!({"janus": "destroy", "session_id": sid}));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no echotest attach succeeded within {within:?}; last reply {r}\n--- proxy output ---\n{}",
                self.log()
            );
            poll_pause();
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "--- janus-proxy config ({}) ---\n{}\n--- janus-proxy output (last {} lines) ---\n{}",
                self.dir.path().display(),
                self.config.render(),
                tail.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// Short pause between two polls of a condition that has a deadline.
pub fn poll_pause() {
    std::thread::sleep(Duration::from_millis(50));
}

// ------------------------------------------------------------------------------------------
// redis-server

/// A private redis-server on a free loopback port (no persistence), state under
/// JANUS_CLOUD_TEST_DIR/redis-*; killed on drop.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let parent = test_dir().join("redis");
        fs::create_dir_all(&parent).expect("create redis dir");
        let dir = tempfile::Builder::new()
            .prefix("redis-")
            .tempdir_in(&parent)
            .expect("tempdir");
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string());
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let log = File::create(dir.path().join("redis.log")).expect("redis log");
            let mut child = Command::new(&bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin} (install redis-server): {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    last = format!(
                        "redis-server exited with {st}: {}",
                        read_to_string(&dir.path().join("redis.log"))
                    );
                    break;
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                    let mut buf = [0u8; 64];
                    if s.write_all(b"PING\r\n").is_ok() {
                        if let Ok(n) = s.read(&mut buf) {
                            if buf[..n].starts_with(b"+PONG") {
                                return RedisServer { child, port, dir };
                            }
                        }
                    }
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = "redis-server did not answer PING within 10 s".into();
                    break;
                }
                poll_pause();
            }
        }
        panic!("cannot start redis-server: {last}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills this redis-server and starts an empty one on the same port (no persistence:
    /// every key is lost, as in a restart of a cache without a dump).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// WebSocket client

pub fn transaction() -> String {
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        .chars()
        .collect();
    (0..12)
        .map(|_| alphabet[fastrand::usize(..alphabet.len())])
        .collect()
}

/// One received frame: the raw text and its parsed JSON.
#[derive(Clone, Debug)]
pub struct Frame {
    pub text: String,
    pub json: Value,
}

/// The transports a client can reach the proxy over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The WebSocket API, `ws://`.
    Ws,
    /// The WebSocket API over TLS, `wss://`.
    Wss,
    /// Janus's HTTP API with long polls, `http://…/janus`.
    Http,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Ws, Transport::Wss, Transport::Http];
}

/// A TCP stream, plain or TLS (the test certificate of [`test_cert`]).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    /// A second handle on the TCP socket (raw bytes: plain streams only make sense).
    pub fn try_clone(&self) -> std::io::Result<TcpStream> {
        self.tcp().try_clone()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// A Janus API client over any [`Transport`], with transaction matching and a stash of
/// unrelated frames: over HTTP each request is a POST whose answer is the reply, and the
/// events of the sessions it created or claimed come from long polls in the background,
/// so the same assertions hold whatever the transport.
pub struct Client {
    link: Link,
    /// frames received while waiting for something else, in arrival order
    pub stash: VecDeque<Frame>,
    pub url: String,
    closed: bool,
}

enum Link {
    Ws(Box<WebSocket<Stream>>, Box<Response>),
    Http(HttpLink),
}

impl Client {
    /// Connect with `Sec-WebSocket-Protocol: janus-protocol`; panics on failure.
    pub fn connect(url: &str) -> Client {
        Client::try_connect(url, Some("janus-protocol"))
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
    }

    pub fn try_connect(url: &str, subprotocol: Option<&str>) -> Result<Client, String> {
        if url.starts_with("http://") {
            return Ok(Client {
                link: Link::Http(HttpLink::new(url)),
                stash: VecDeque::new(),
                url: url.to_string(),
                closed: false,
            });
        }
        let mut req = url.into_client_request().map_err(|e| e.to_string())?;
        if let Some(p) = subprotocol {
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
        }
        let tls = url.starts_with("wss://");
        let host = url
            .trim_start_matches("ws://")
            .trim_start_matches("wss://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let addr = host
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        let tcp =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let stream = if tls {
            let name = rustls::pki_types::ServerName::try_from(addr.ip().to_string())
                .map_err(|e| e.to_string())?;
            let conn = rustls::ClientConnection::new(tls_client_config(), name)
                .map_err(|e| e.to_string())?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        } else {
            Stream::Plain(tcp)
        };
        let (ws, response) = tungstenite::client(req, stream).map_err(|e| e.to_string())?;
        Ok(Client {
            link: Link::Ws(Box::new(ws), Box::new(response)),
            stash: VecDeque::new(),
            url: url.to_string(),
            closed: false,
        })
    }

    /// The WebSocket of a `ws://`/`wss://` client (panics for HTTP).
    pub fn ws(&mut self) -> &mut WebSocket<Stream> {
        match &mut self.link {
            Link::Ws(ws, _) => ws,
            Link::Http(_) => panic!("{} is not a WebSocket client", self.url),
        }
    }

    /// Sends one message (WebSocket frame or POST); false when the connection is broken.
    fn try_send(&mut self, text: &str) -> bool {
        match &mut self.link {
            Link::Ws(ws, _) => ws.send(Message::text(text)).is_ok(),
            Link::Http(h) => h.post(text).is_ok(),
        }
    }

    /// The subprotocol the server selected in the handshake.
    pub fn subprotocol(&self) -> Option<String> {
        match &self.link {
            Link::Ws(_, response) => response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap_or("").to_string()),
            Link::Http(_) => None,
        }
    }

    pub fn send_raw(&mut self, text: &str) {
        let url = self.url.clone();
        match &mut self.link {
            Link::Ws(ws, _) => ws
                .send(Message::text(text))
                .unwrap_or_else(|e| panic!("send to {url} failed: {e}")),
            Link::Http(h) => h
                .post(text)
                .unwrap_or_else(|e| panic!("POST to {url} failed: {e}")),
        }
    }

    /// Send a JSON request as is.
    pub fn send(&mut self, v: &Value) {
        self.send_raw(&v.to_string());
    }

    /// Read the next text frame from the socket (ignoring the stash), or `None` on timeout.
    /// Panics when the connection is closed.
    pub fn read_frame(&mut self, timeout: Duration) -> Option<Frame> {
        match self.try_read_frame(timeout) {
            Ok(f) => f,
            Err(e) => panic!("connection to {} failed while reading: {e}", self.url),
        }
    }

    /// Like [`read_frame`] but returns `Err` when the connection is closed/broken.
    pub fn try_read_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, String> {
        if self.closed {
            return Err("connection already closed".into());
        }
        let ws = match &mut self.link {
            Link::Ws(ws, _) => ws,
            Link::Http(h) => return Ok(h.next(timeout)),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            ws.get_mut().tcp().set_read_timeout(Some(left)).ok();
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let text = t.as_str().to_string();
                    let json: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("server sent invalid JSON ({e}): {text:?}"));
                    return Ok(Some(Frame { text, json }));
                }
                Ok(Message::Close(c)) => {
                    self.closed = true;
                    return Err(format!("server closed the connection: {c:?}"));
                }
                Ok(Message::Binary(b)) => {
                    return Err(format!("unexpected binary frame of {} bytes", b.len()));
                }
                Ok(_) => continue, // ping/pong/raw frames
                Err(tungstenite::Error::Io(e))
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) => {
                    self.closed = true;
                    return Err(e.to_string());
                }
            }
        }
    }

    /// Next frame: from the stash first, else from the socket. Panics on timeout.
    pub fn recv_frame(&mut self, timeout: Duration) -> Frame {
        if let Some(f) = self.stash.pop_front() {
            return f;
        }
        match self.read_frame(timeout) {
            Some(f) => f,
            None => panic!("no frame from {} within {timeout:?}", self.url),
        }
    }

    /// Next JSON frame (stash first). Panics on timeout.
    pub fn recv(&mut self, timeout: Duration) -> Value {
        self.recv_frame(timeout).json
    }

    /// Next JSON frame (stash first), or `None` on timeout.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(f) = self.stash.pop_front() {
            return Some(f.json);
        }
        self.read_frame(timeout).map(|f| f.json)
    }

    /// Wait for the first frame (stash first) matching `pred`; other frames are stashed.
    pub fn try_recv_frame_where(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Frame> {
        if let Some(i) = self.stash.iter().position(|f| pred(&f.json)) {
            return self.stash.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            match self.read_frame(deadline - now) {
                Some(f) if pred(&f.json) => return Some(f),
                Some(f) => self.stash.push_back(f),
                None => return None,
            }
        }
    }

    /// Wait for an event matching `pred` (stash first); panics on timeout.
    pub fn recv_event(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        match self.try_recv_frame_where(&pred, timeout) {
            Some(f) => f.json,
            None => panic!(
                "no matching frame from {} within {timeout:?}; stashed frames: {:?}",
                self.url,
                self.stash
                    .iter()
                    .map(|f| f.json.to_string())
                    .collect::<Vec<_>>()
            ),
        }
    }

    pub fn try_recv_event(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        self.try_recv_frame_where(pred, timeout).map(|f| f.json)
    }

    /// Adds a random transaction unless the request has one; returns it.
    fn with_transaction(req: &mut Value) -> String {
        if let Some(t) = req.get("transaction").and_then(|t| t.as_str()) {
            return t.to_string();
        }
        let t = transaction();
        req["transaction"] = json!(t);
        t
    }

    /// Send a request and return the first frame carrying its transaction (an `ack` counts).
    pub fn request(&mut self, req: Value) -> Value {
        self.request_frame(req).json
    }

    /// Like [`request`] but also returns the raw text of the reply.
    pub fn request_frame(&mut self, mut req: Value) -> Frame {
        let t = Client::with_transaction(&mut req);
        self.send(&req);
        match self.try_recv_frame_where(|v| v["transaction"] == t.as_str(), REPLY_TIMEOUT) {
            Some(f) => f,
            None => panic!(
                "no reply to {req} from {} within {REPLY_TIMEOUT:?}; stashed frames: {:?}",
                self.url,
                self.stash
                    .iter()
                    .map(|f| f.json.to_string())
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// Like [`request`] but returns `None` on timeout or on a broken connection.
    pub fn try_request(&mut self, mut req: Value, timeout: Duration) -> Option<Value> {
        let t = Client::with_transaction(&mut req);
        if !self.try_send(&req.to_string()) {
            return None;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            match self.try_read_frame(deadline - now) {
                Ok(Some(f)) if f.json["transaction"] == t.as_str() => return Some(f.json),
                Ok(Some(f)) => self.stash.push_back(f),
                _ => return None,
            }
        }
    }

    /// Send an asynchronous plugin request and collect the `ack` and the `event` carrying the
    /// same transaction, in whatever order they arrive. Returns (ack, event). If the first
    /// reply is not an ack (e.g. an error), returns (reply, Null).
    pub fn request_async(&mut self, mut req: Value, timeout: Duration) -> (Value, Value) {
        let t = Client::with_transaction(&mut req);
        self.send(&req);
        let first = self.recv_event(|v| v["transaction"] == t.as_str(), REPLY_TIMEOUT);
        match first["janus"].as_str() {
            Some("ack") => {
                let ev = self.recv_event(|v| v["transaction"] == t.as_str(), timeout);
                (first, ev)
            }
            Some("event") => {
                let ack = self.recv_event(
                    |v| v["transaction"] == t.as_str() && v["janus"] == "ack",
                    REPLY_TIMEOUT,
                );
                (ack, first)
            }
            _ => (first, Value::Null),
        }
    }

    /// `create` a session; asserts success and returns its id.
    pub fn create_session(&mut self) -> u64 {
        let r = self.request(json!({"janus": "create"}));
        assert_eq!(r["janus"], "success", "create failed: {r}");
        r["data"]["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("create reply without data.id: {r}"))
    }

    /// `attach` to `plugin`; asserts success and returns the handle id.
    pub fn attach(&mut self, session_id: u64, plugin: &str) -> u64 {
        let r =
            self.request(json!({"janus": "attach", "session_id": session_id, "plugin": plugin}));
        assert_eq!(r["janus"], "success", "attach to {plugin} failed: {r}");
        r["data"]["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("attach reply without data.id: {r}"))
    }

    /// Ask the server to close and wait (bounded) for the close handshake to finish (over
    /// HTTP: stop polling).
    pub fn close(mut self) {
        let ws = match &mut self.link {
            Link::Ws(ws, _) => ws,
            Link::Http(h) => {
                h.stop();
                self.closed = true;
                return;
            }
        };
        let _ = ws.close(None);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(_) => break,
            }
        }
        self.closed = true;
    }

    /// Whether the server still answers a `ping`.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.try_request(json!({"janus": "ping"}), Duration::from_secs(5)), Some(v) if v["janus"] == "pong")
    }
}

// ------------------------------------------------------------------------------------------
// HTTP (the proxy's admin REST API)

/// An HTTP answer: status, headers we look at, body.
pub struct Http {
    pub status: u16,
    pub cors: Option<String>,
    pub body: String,
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `token`: `None` sends the test proxies' secret ([`TEST_ADMIN_SECRET`]),
/// [`NO_TOKEN`] sends no `Authorization` header, `Some(t)` sends `t`.
pub fn http(method: &str, url: &str, body: Option<(&str, &str)>, token: Option<&str>) -> Http {
    let token = token.or(Some(TEST_ADMIN_SECRET)).filter(|t| !t.is_empty());
    let a = agent();
    let mut builder = match method {
        "POST" => a.post(url),
        "PUT" => a.put(url),
        "DELETE" => a.delete(url).force_send_body(),
        "GET" => a.get(url).force_send_body(),
        m => panic!("unsupported method {m}"),
    };
    if let Some(t) = token {
        builder = builder.header("Authorization", &format!("Bearer {t}"));
    }
    let resp = match body {
        Some((ctype, text)) => builder.header("Content-Type", ctype).send(text),
        None => builder.send_empty(),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    Http {
        status: resp.status().as_u16(),
        cors: resp
            .headers()
            .get("Access-Control-Allow-Origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: resp.body_mut().read_to_string().unwrap_or_default(),
    }
}

// ------------------------------------------------------------------------------------------
// Janus Admin API client

pub const ADMIN_SECRET: &str = "janusoverlord";

/// A Janus HTTP API client: POSTs whose answers are queued as frames, and one long-poll
/// thread per session it created or claimed, queueing that session's events.
pub struct HttpLink {
    base: String,
    agent: ureq::Agent,
    local: VecDeque<Frame>,
    tx: std::sync::mpsc::Sender<Frame>,
    rx: std::sync::mpsc::Receiver<Frame>,
    polled: std::collections::HashSet<u64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn frame_of(json: Value) -> Frame {
    Frame {
        text: json.to_string(),
        json,
    }
}

impl HttpLink {
    /// `base`: `http://host:port/janus`.
    pub fn new(base: &str) -> HttpLink {
        let (tx, rx) = std::sync::mpsc::channel();
        HttpLink {
            base: base.trim_end_matches('/').to_string(),
            agent: http_agent(Duration::from_secs(15)),
            local: VecDeque::new(),
            tx,
            rx,
            polled: Default::default(),
            stop: Default::default(),
        }
    }

    /// POSTs one request to `/janus` and queues its answer; starts polling a session the
    /// answer created or claimed.
    pub fn post(&mut self, text: &str) -> Result<(), String> {
        let mut resp = self
            .agent
            .post(&self.base)
            .header("Content-Type", "application/json")
            .send(text)
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("HTTP {status}: {body}"));
        }
        if body.is_empty() {
            return Ok(());
        }
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("server sent invalid JSON ({e}): {body:?}"));
        let request: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if json["janus"] == "success" {
            match request["janus"].as_str() {
                Some("create") => {
                    if let Some(id) = json["data"]["id"].as_u64() {
                        self.poll(id, request["apisecret"].as_str());
                    }
                }
                Some("claim") => {
                    if let Some(id) = request["session_id"].as_u64() {
                        self.poll(id, request["apisecret"].as_str());
                    }
                }
                _ => {}
            }
        }
        self.local.push_back(Frame { text: body, json });
        Ok(())
    }

    /// Long-polls session `id` (maxev=10, with the `apisecret` if given) until it is gone
    /// (404) or the client stops.
    pub fn poll(&mut self, id: u64, apisecret: Option<&str>) {
        if !self.polled.insert(id) {
            return;
        }
        let mut url = format!("{}/{id}?maxev=10", self.base);
        if let Some(secret) = apisecret {
            url.push_str("&apisecret=");
            url.extend(form_urlencoded::byte_serialize(secret.as_bytes()));
        }
        let (tx, stop) = (self.tx.clone(), self.stop.clone());
        let agent = http_agent(Duration::from_secs(45));
        std::thread::spawn(move || {
            let mut failures = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && failures < 3 {
                let mut resp = match agent.get(&url).call() {
                    Ok(r) => r,
                    Err(_) => {
                        failures += 1;
                        continue;
                    }
                };
                if resp.status().as_u16() != 200 {
                    return;
                }
                let Ok(body) = resp.body_mut().read_to_string() else {
                    failures += 1;
                    continue;
                };
                let events = match serde_json::from_str::<Value>(&body) {
                    Ok(Value::Array(v)) => v,
                    Ok(v) => vec![v],
                    Err(_) => Vec::new(),
                };
                for ev in events {
                    if ev["janus"] != "keepalive" && tx.send(frame_of(ev)).is_err() {
                        return;
                    }
                }
            }
        });
    }

    /// The next answer or event within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<Frame> {
        if let Some(f) = self.local.pop_front() {
            return Some(f);
        }
        self.rx.recv_timeout(timeout).ok()
    }

    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for HttpLink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The self-signed certificate and key (PEM files) the TLS listeners of test proxies use,
/// made once per test folder with `openssl` (for 127.0.0.1 and localhost).
pub fn test_cert() -> (PathBuf, PathBuf) {
    let dir = test_dir().join("tls");
    fs::create_dir_all(&dir).expect("create tls dir");
    let _lock = FileLock::exclusive(&dir.join("make.lock"));
    let (cert, key) = (dir.join("server-cert.pem"), dir.join("server-key.pem"));
    if !(cert.exists() && key.exists()) {
        make_cert(&cert, &key);
    }
    (cert, key)
}

/// A new self-signed end-entity certificate for 127.0.0.1 and localhost (`openssl`).
pub fn make_cert(cert: &Path, key: &Path) {
    {
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-subj", "/CN=localhost", "-days", "30"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            // an end-entity certificate (webpki refuses a CA one as the server's)
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert)
            .output()
            .expect("openssl is needed for the TLS tests (apt-get install openssl)");
        assert!(out.status.success(), "openssl failed: {out:?}");
    }
}

/// A rustls client configuration trusting [`test_cert`] only.
pub fn tls_client_config() -> std::sync::Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<std::sync::Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| tls_client_config_for(&test_cert().0))
        .clone()
}

/// A rustls client configuration trusting the certificate in `cert` only.
pub fn tls_client_config_for(cert: &Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(c.expect("cert")).expect("add root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub struct AdminClient {
    inner: Client,
}

impl AdminClient {
    pub fn connect(url: &str) -> AdminClient {
        let inner = Client::try_connect(url, Some("janus-admin-protocol"))
            .unwrap_or_else(|e| panic!("cannot connect to the Admin API {url}: {e}"));
        AdminClient { inner }
    }

    pub fn request(&mut self, mut req: Value) -> Value {
        req["admin_secret"] = json!(ADMIN_SECRET);
        self.inner.request(req)
    }

    pub fn list_sessions(&mut self) -> Vec<u64> {
        let r = self.request(json!({"janus": "list_sessions"}));
        assert_eq!(r["janus"], "success", "list_sessions: {r}");
        r["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    }

    /// Handles of a session; a session that vanished in between yields none.
    pub fn list_handles(&mut self, session_id: u64) -> Vec<u64> {
        let r = self.request(json!({"janus": "list_handles", "session_id": session_id}));
        if r["janus"] != "success" {
            return Vec::new();
        }
        r["handles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    }

    /// (session, handle) pairs over all sessions.
    pub fn all_handles(&mut self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for s in self.list_sessions() {
            for h in self.list_handles(s) {
                out.push((s, h));
            }
        }
        out
    }
}

// ------------------------------------------------------------------------------------------
// JSON helpers

/// Top-level keys of a JSON object text, in the order they appear on the wire.
pub fn wire_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    let mut expect_key = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' => {
                // read the string
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let s = &text[start..i.min(text.len())];
                if depth == 1 && expect_key {
                    let k: String =
                        serde_json::from_str(&format!("\"{s}\"")).unwrap_or_else(|_| s.to_string());
                    keys.push(k);
                    expect_key = false;
                }
            }
            b'{' => {
                depth += 1;
                if depth == 1 {
                    expect_key = true;
                }
            }
            b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    keys
}

/// Sorted top-level keys of a JSON object value.
pub fn key_set(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

pub fn keys(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// A valid Janus id: a JSON integer in 1..2^53.
pub fn assert_id(v: &Value, what: &str) -> u64 {
    let id = v
        .as_u64()
        .unwrap_or_else(|| panic!("{what} is not an unsigned integer: {v}"));
    assert!((1..MAX_ID).contains(&id), "{what} {id} is outside 1..2^53");
    id
}

/// Assert a core error reply: code, reason and (optionally) the echoed session_id/transaction.
pub fn assert_error(reply: &Value, code: u64, reason: Option<&str>) {
    assert_eq!(
        reply["janus"], "error",
        "expected an error {code}, got {reply}"
    );
    assert_eq!(reply["error"]["code"], code, "wrong error code in {reply}");
    if let Some(r) = reason {
        assert_eq!(reply["error"]["reason"], r, "wrong error reason in {reply}");
    } else {
        assert!(
            reply["error"]["reason"].is_string(),
            "error without reason: {reply}"
        );
    }
}

/// A synthetic audio-only SDP offer (from the Janus 1.1.2 transcripts, section 7, with the
/// candidate removed so that no ICE checks run). Janus answers it with an SDP answer.
pub fn sdp_offer() -> String {
    [
        "v=0",
        "o=- 4004279343 4004279343 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic:WMS *",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96 9 0 8",
        "c=IN IP4 0.0.0.0",
        "a=sendrecv",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=mid:0",
        "a=msid:c953fec8-2fec-4597-b93f-f19759f05c68 3e2d6295-0e8a-4c79-a34b-672e511a1623",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=ssrc:3716354741 cname:dffc5fe5-9238-4b4c-bdca-43b6ed5ab49e",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=ice-ufrag:k6ys",
        "a=ice-pwd:UOP67L2uKlYqpXTHKO2A7Z",
        "a=fingerprint:sha-256 FB:C4:15:46:B0:6B:4A:0F:32:B6:52:59:18:92:CA:54:4B:43:B8:12:48:42:DC:0E:36:28:3B:E7:BF:44:A9:94",
        "a=setup:actpass",
        "",
    ]
    .join("\r\n")
}

/// Read a whole file into a string (helper for log assertions).
pub fn read_to_string(p: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(p) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Write helper used by CLI tests.
pub fn write_file(p: &Path, content: &str) {
    let mut f = File::create(p).unwrap();
    f.write_all(content.as_bytes()).unwrap();
}

// ------------------------------------------------------------------------------------------
// call plugins (janus.plugin.videocall / janus.plugin.p2pcall)

/// A synthetic audio-only SDP (`kind` = "offer" or "answer") Janus accepts, without any
/// candidate so that no ICE checks ever fail (transcripts §8.2). The fingerprint is fake.
pub fn call_sdp(kind: &str) -> String {
    let (origin, setup, stream) = if kind == "offer" {
        ("1000000001", "actpass", "lt")
    } else {
        ("1000000002", "active", "ltb")
    };
    [
        "v=0".to_string(),
        format!("o=- {origin} 2 IN IP4 127.0.0.1"),
        "s=-".into(),
        "t=0 0".into(),
        "a=group:BUNDLE 0".into(),
        format!("a=msid-semantic: WMS {stream}"),
        "m=audio 9 UDP/TLS/RTP/SAVPF 111".into(),
        "c=IN IP4 0.0.0.0".into(),
        "a=rtcp:9 IN IP4 0.0.0.0".into(),
        "a=ice-ufrag:abcd1234".into(),
        "a=ice-pwd:abcdefghijklmnopqrstuvwx".into(),
        "a=ice-options:trickle".into(),
        "a=fingerprint:sha-256 E4:00:50:85:76:C1:0E:1A:52:49:3B:BB:E6:6C:DC:A2:53:6D:87:E2:C1:90:07:BC:B0:22:77:B9:B6:31:80:9C".into(),
        format!("a=setup:{setup}"),
        "a=mid:0".into(),
        "a=sendrecv".into(),
        format!("a=msid:{stream} {stream}-audio"),
        "a=rtcp-mux".into(),
        "a=rtpmap:111 opus/48000/2".into(),
        format!("a=ssrc:{} cname:{stream}", if kind == "offer" { 11111111 } else { 22222222 }),
        String::new(),
    ]
    .join("\r\n")
}

/// `{"type": kind, "sdp": call_sdp(kind)}`.
pub fn call_jsep(kind: &str) -> Value {
    json!({"type": kind, "sdp": call_sdp(kind)})
}

/// A host candidate as a browser trickles it (`n` varies the foundation and port).
pub fn call_candidate(n: u32) -> Value {
    json!({
        "candidate": format!("candidate:{n} 1 udp 2130706431 127.0.0.1 {} typ host", 9 + n),
        "sdpMid": "0",
        "sdpMLineIndex": 0
    })
}

/// `prefix_` + 8 random word characters: usernames that never collide between tests.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", &transaction()[..8])
}

/// One side of a call: its own WebSocket, session and handle on a call plugin.
pub struct CallParty {
    pub c: Client,
    pub sid: u64,
    pub hid: u64,
    pub plugin: String,
    /// The name this party registers with [`CallParty::register`].
    pub name: String,
}

impl CallParty {
    /// Connect to `url`, create a session and attach `plugin`.
    pub fn attach(url: &str, plugin: &str, name: &str) -> CallParty {
        let mut c = Client::connect(url);
        let sid = c.create_session();
        let hid = c.attach(sid, plugin);
        CallParty {
            c,
            sid,
            hid,
            plugin: plugin.to_string(),
            name: name.to_string(),
        }
    }

    /// A plugin `message`: asserts the `ack` and an `event` with the same transaction from
    /// this handle and plugin; returns that event frame.
    pub fn msg_frame(&mut self, body: Value, jsep: Option<Value>) -> Value {
        let t = transaction();
        let mut req = json!({"janus": "message", "session_id": self.sid, "handle_id": self.hid,
            "body": body, "transaction": t});
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        let (ack, ev) = self.c.request_async(req.clone(), REPLY_TIMEOUT);
        assert_eq!(
            ack,
            json!({"janus": "ack", "session_id": self.sid, "transaction": t}),
            "ack of {req}"
        );
        assert_eq!(ev["janus"], "event", "reply to {req}: {ev}");
        assert_eq!(ev["session_id"], self.sid, "{ev}");
        assert_eq!(ev["sender"], self.hid, "{ev}");
        assert_eq!(ev["plugindata"]["plugin"], self.plugin.as_str(), "{ev}");
        assert_eq!(ev["plugindata"]["data"]["videocall"], "event", "{ev}");
        ev
    }

    /// `plugindata.data` of the event answering `body`.
    pub fn msg(&mut self, body: Value, jsep: Option<Value>) -> Value {
        self.msg_frame(body, jsep)["plugindata"]["data"].clone()
    }

    /// `result` of a request that must succeed.
    pub fn ok(&mut self, body: Value, jsep: Option<Value>) -> Value {
        let d = self.msg(body.clone(), jsep);
        assert!(
            d.get("error_code").is_none() && d["result"].is_object(),
            "{} ({}): request {body} failed: {d}",
            self.name,
            self.plugin
        );
        d["result"].clone()
    }

    /// (error_code, error) of a request that must fail; the data has exactly these keys.
    pub fn fail(&mut self, body: Value, jsep: Option<Value>) -> (u64, String) {
        let d = self.msg(body.clone(), jsep);
        assert_eq!(
            key_set(&d),
            keys(&["videocall", "error_code", "error"]),
            "{}: request {body} should fail: {d}",
            self.name
        );
        (
            d["error_code"].as_u64().unwrap(),
            d["error"].as_str().unwrap().to_string(),
        )
    }

    /// Asserts that `body` fails with `code` (and `text` when given).
    pub fn expect_error(
        &mut self,
        body: Value,
        jsep: Option<Value>,
        code: u64,
        text: Option<&str>,
    ) {
        let (c, e) = self.fail(body.clone(), jsep);
        assert_eq!(c, code, "{}: error code of {body} ({e})", self.name);
        if let Some(t) = text {
            assert_eq!(e, t, "{}: error text of {body}", self.name);
        }
    }

    /// `register` with [`CallParty::name`]; asserts the `registered` result.
    pub fn register(&mut self) {
        let name = self.name.clone();
        let r = self.ok(json!({"request": "register", "username": name}), None);
        assert_eq!(r, json!({"event": "registered", "username": name}));
    }

    pub fn exists(&mut self, name: &str) -> bool {
        let r = self.ok(json!({"request": "exists", "username": name}), None);
        assert_eq!(r["username"], name, "{r}");
        r["registered"]
            .as_bool()
            .unwrap_or_else(|| panic!("exists without a boolean `registered`: {r}"))
    }

    pub fn list(&mut self) -> Vec<String> {
        let r = self.ok(json!({"request": "list"}), None);
        r["list"]
            .as_array()
            .unwrap_or_else(|| panic!("list without an array: {r}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// Core `trickle` with one candidate; returns the reply (an `ack` on success).
    pub fn trickle(&mut self, candidate: Value) -> Value {
        self.c
            .request(json!({"janus": "trickle", "session_id": self.sid,
            "handle_id": self.hid, "candidate": candidate}))
    }

    /// Core verb on the handle (`hangup`, `detach`); returns the reply.
    pub fn core(&mut self, verb: &str) -> Value {
        self.c
            .request(json!({"janus": verb, "session_id": self.sid, "handle_id": self.hid}))
    }

    /// An unsolicited plugin event (no transaction) of this handle whose `result.event` is
    /// `event` and, when given, whose `result.username` is `username`; returns the frame.
    pub fn try_wait_result(
        &mut self,
        event: &str,
        username: Option<&str>,
        timeout: Duration,
    ) -> Option<Value> {
        let (sid, hid) = (self.sid, self.hid);
        self.c.try_recv_event(
            |v| {
                v["janus"] == "event"
                    && v.get("transaction").is_none()
                    && v["session_id"] == sid
                    && v["sender"] == hid
                    && v["plugindata"]["data"]["result"]["event"] == event
                    && username.is_none_or(|u| v["plugindata"]["data"]["result"]["username"] == u)
            },
            timeout,
        )
    }

    /// Like [`CallParty::try_wait_result`] but panics on timeout; also checks the frame's
    /// envelope (plugin, keys).
    pub fn wait_result(&mut self, event: &str, username: Option<&str>, timeout: Duration) -> Value {
        match self.try_wait_result(event, username, timeout) {
            Some(v) => {
                assert_eq!(v["plugindata"]["plugin"], self.plugin.as_str(), "{v}");
                assert_eq!(v["plugindata"]["data"]["videocall"], "event", "{v}");
                let mut expected = vec!["janus", "session_id", "sender", "plugindata"];
                if v.get("jsep").is_some() {
                    expected.push("jsep");
                }
                if v.get("opaque_id").is_some() {
                    expected.push("opaque_id");
                }
                assert_eq!(key_set(&v), keys(&expected), "{v}");
                v
            }
            None => panic!(
                "{} ({}): no `{event}` event (username {username:?}) within {timeout:?}; stashed frames: {:?}",
                self.name,
                self.plugin,
                self.c.stash.iter().map(|f| f.json.to_string()).collect::<Vec<_>>()
            ),
        }
    }

    /// An unsolicited plugin error event (no transaction) with `code`; returns the frame.
    pub fn wait_error_event(&mut self, code: u64, timeout: Duration) -> Value {
        let (sid, hid) = (self.sid, self.hid);
        let f = self.c.try_recv_event(
            |v| {
                v["janus"] == "event"
                    && v.get("transaction").is_none()
                    && v["session_id"] == sid
                    && v["sender"] == hid
                    && v["plugindata"]["data"]["error_code"] == code
            },
            timeout,
        );
        f.unwrap_or_else(|| {
            panic!(
                "{}: no error event {code} within {timeout:?}; stashed frames: {:?}",
                self.name,
                self.c
                    .stash
                    .iter()
                    .map(|f| f.json.to_string())
                    .collect::<Vec<_>>()
            )
        })
    }

    /// Read whatever arrives within `quiet` and forget everything received so far.
    pub fn drain(&mut self, quiet: Duration) {
        while self.c.read_frame(quiet).is_some() {}
        self.c.stash.clear();
    }

    /// Frames received (stash + socket within `wait`) that match `pred`, removed from the stash.
    pub fn collect(&mut self, pred: impl Fn(&Value) -> bool, wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = self.c.try_recv_event(&pred, wait) {
            out.push(v);
        }
        out
    }
}

impl AdminClient {
    /// `handle_info` of a backend handle (`info` object), or `None` when it is gone.
    pub fn handle_info(&mut self, session_id: u64, handle_id: u64) -> Option<Value> {
        let r = self.request(
            json!({"janus": "handle_info", "session_id": session_id, "handle_id": handle_id}),
        );
        (r["janus"] == "success").then(|| r["info"].clone())
    }
}

impl Backends {
    /// `handle_info` of every `janus.plugin.videocall` handle on instance `i` whose
    /// backend username starts with `name` (the proxy may add a per-call suffix).
    pub fn videocall_handles(&self, i: usize, name: &str) -> Vec<Value> {
        let mut admin = self.admin(i);
        let mut out = Vec::new();
        for (s, h) in admin.all_handles() {
            if let Some(info) = admin.handle_info(s, h) {
                let user = info["plugin_specific"]["username"].as_str().unwrap_or("");
                if info["plugin"] == "janus.plugin.videocall" && user.starts_with(name) {
                    out.push(info);
                }
            }
        }
        out
    }
}

impl RedisServer {
    /// One inline command (`HEXISTS key field`), its raw RESP reply (`:1\r\n`), a bulk
    /// string's whole.
    pub fn command(&self, line: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        s.write_all(format!("{line}\r\n").as_bytes())
            .expect("write to redis");
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).expect("read from redis");
            assert!(n > 0, "redis closed the connection");
            reply.extend_from_slice(&buf[..n]);
            let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
                continue;
            };
            // A bulk string: its header, its bytes and their CRLF; anything else: a line.
            let whole = match reply.first() {
                Some(b'$') => std::str::from_utf8(&reply[1..eol])
                    .ok()
                    .and_then(|l| l.parse::<i64>().ok())
                    .map_or(eol + 2, |len| {
                        eol + 2 + if len < 0 { 0 } else { len as usize + 2 }
                    }),
                _ => eol + 2,
            };
            if reply.len() >= whole {
                return String::from_utf8_lossy(&reply).into_owned();
            }
        }
    }

    /// Kill the server (SIGKILL): clients see connection errors until [`start_again`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a fresh (empty) server on the SAME port after [`stop`]; waits for PING.
    pub fn start_again(&mut self) {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = File::create(self.dir.path().join("redis-again.log")).expect("redis log");
            let mut child = Command::new(&bin)
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // e.g. the port is not free yet: try again
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                    let mut buf = [0u8; 64];
                    if s.write_all(b"PING\r\n").is_ok() {
                        if let Ok(n) = s.read(&mut buf) {
                            if buf[..n].starts_with(b"+PONG") {
                                self.child = child;
                                return;
                            }
                        }
                    }
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "redis-server did not come back on port {}: {}",
                        self.port,
                        read_to_string(&self.dir.path().join("redis-again.log"))
                    );
                }
                poll_pause();
            }
            assert!(
                Instant::now() < deadline,
                "redis-server could not be restarted on port {}: {}",
                self.port,
                read_to_string(&self.dir.path().join("redis-again.log"))
            );
            poll_pause();
        }
    }
}

/// All the bytes `peer` received, every mid together.
pub fn total(peer: &janus_mediapeer::Peer) -> u64 {
    peer.received().values().sum()
}

/// Samples a peer's received bytes every 5 ms until stopped; returns the longest time the
/// total did not grow.
pub struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Duration>,
}

impl Sampler {
    pub fn start(peer: std::sync::Arc<janus_mediapeer::Peer>) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last = total(&peer);
            let mut since = Instant::now();
            let mut longest = Duration::ZERO;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                let now_total = total(&peer);
                if now_total > last {
                    longest = longest.max(since.elapsed());
                    last = now_total;
                    since = Instant::now();
                }
            }
            longest.max(since.elapsed())
        });
        Sampler { stop, thread }
    }

    pub fn stop(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}

/// Waits until every mid of `mids` of `peer` received `more` bytes beyond what it had at the call.
pub fn wait_growth(peer: &janus_mediapeer::Peer, mids: &[String], more: u64, within: Duration) {
    let base = peer.received();
    let deadline = Instant::now() + within;
    loop {
        let now = peer.received();
        let short: Vec<&String> = mids
            .iter()
            .filter(|m| {
                now.get(*m).copied().unwrap_or(0) < base.get(*m).copied().unwrap_or(0) + more
            })
            .collect();
        if short.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no new media on {short:?}: {now:?} (was {base:?})"
        );
        poll_pause();
    }
}
