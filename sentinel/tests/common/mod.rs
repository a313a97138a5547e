//! Harness for the janus-sentinel integration tests.
//!
//! * [`JanusSet`]: one real Janus 1.1.2 instance prepared by `scripts/janus-backends.sh`
//!   (which writes its configuration); either left running (the sentinel only probes it) or
//!   stopped again so that the sentinel starts it itself with [`JanusSet::cmdline`].
//! * [`Sentinel`]: a `janus-sentinel` child process with its log captured to a file that is
//!   printed when the test fails; killed on drop.
//! * [`RecordingStub`]: a recording stub HTTP endpoint (tiny_http) standing in for
//!   janus-proxy's `POST /sentinel_callback`: it answers 200 to everything and records
//!   every request (fields of a JSON or form body, content type, `Authorization`), so a
//!   test can check which URLs got which fields. It implements nothing of the proxy.
//! * [`http`]: a small ureq wrapper for the REST interface, sending [`TEST_SECRET`].
//!
//! Every sentinel started here gets [`TEST_SECRET`] as its cluster secret through the
//! `JANUS_CLOUD_SECRET` environment variable (REST and posters).
//!
//! Ports: Janus WebSocket ports in 18388.. (admin = ws - 1000), RTP ranges from 28000 in
//! blocks of 200, so the tests never collide with the proxy's tests (18188/18189/18288).
//! Nothing sleeps for synchronisation: every wait polls with a deadline.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use janus_sentinel::janus_ws::JanusWs;

/// The cluster secret of the sentinels (and proxies) the tests start.
pub const TEST_SECRET: &str = "janus-cloud-test-secret-5b1f0c";

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout`.
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `JANUS_CLOUD_TEST_DIR`, default `${TMPDIR:-/tmp}/janus-cloud-tests`.
pub fn test_dir() -> PathBuf {
    let dir = match std::env::var_os("JANUS_CLOUD_TEST_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::var_os("TMPDIR")
            .filter(|t| !t.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
            .join("janus-cloud-tests"),
    };
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// `JANUS_BACKENDS_SCRIPT`, else the repository's `scripts/janus-backends.sh`.
pub fn backends_script() -> PathBuf {
    match std::env::var_os("JANUS_BACKENDS_SCRIPT") {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/janus-backends.sh"),
    }
}

/// A port nobody listens on right now (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Sends a signal to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain syscall; a wrong pid only makes it fail.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// One Janus instance configured (and possibly running) through the backends script.
pub struct JanusSet {
    pub workdir: PathBuf,
    pub ws_port: u16,
    pub admin_port: u16,
    running: bool,
}

impl JanusSet {
    /// Starts one instance with WebSocket port `ws_port` (admin port `ws_port - 1000`,
    /// RTP ports `28000 + slot*200 ..`). `event_loops` sets Janus's static event loops.
    pub fn start(name: &str, ws_port: u16, slot: u16, event_loops: Option<u32>) -> JanusSet {
        let workdir = test_dir().join(name);
        let script = backends_script();
        // leftovers of an earlier run killed hard
        let _ = Command::new(&script).arg("stop").arg(&workdir).output();
        let mut cmd = Command::new(&script);
        cmd.arg("start")
            .arg("1")
            .arg(ws_port.to_string())
            .arg(&workdir)
            .env("JANUS_RTP_BASE", (28000 + slot * 200).to_string())
            .env("JANUS_RTP_SPAN", "200")
            .env("JANUS_PLUGINS", "echotest")
            .env("JANUS_LOOPBACK_ICE", "0")
            .env_remove("JANUS_ADMIN_BASE_PORT")
            .env_remove("JANUS_HTTP_BASE_PORT");
        match event_loops {
            Some(n) => cmd.env("JANUS_EVENT_LOOPS", n.to_string()),
            None => cmd.env_remove("JANUS_EVENT_LOOPS"),
        };
        let out = cmd.output().expect("run janus-backends.sh");
        assert!(
            out.status.success(),
            "janus-backends.sh start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        JanusSet {
            workdir,
            ws_port,
            admin_port: ws_port - 1000,
            running: true,
        }
    }

    /// Stops the instance (its configuration stays for [`JanusSet::cmdline`]).
    pub fn stop(&mut self) {
        let out = Command::new(backends_script())
            .arg("stop")
            .arg(&self.workdir)
            .output()
            .expect("run janus-backends.sh stop");
        assert!(
            out.status.success(),
            "stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }

    pub fn dir(&self) -> PathBuf {
        self.workdir.join("janus-0")
    }

    /// Pid of the instance started by the script.
    pub fn script_pid(&self) -> u32 {
        let text = fs::read_to_string(self.dir().join("janus.pid")).expect("janus.pid");
        text.trim().parse().expect("pid")
    }

    /// The command line the script runs (without its LD_PRELOAD ICE shim, which only
    /// matters for media), for `proc_watcher.cmdline`.
    pub fn cmdline(&self) -> String {
        let d = self.dir();
        let d = d.display();
        format!("/usr/bin/janus -C {d}/janus.jcfg -F {d} -L {d}/janus.sentinel.log -N -o")
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port)
    }
}

impl Drop for JanusSet {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new(backends_script())
                .arg("stop")
                .arg(&self.workdir)
                .output();
        }
    }
}

/// Whether a Janus answers `ping` at `url` right now.
pub fn janus_answers(url: &str) -> bool {
    let Ok(mut ws) = JanusWs::connect(url, "janus-protocol", Duration::from_secs(2)) else {
        return false;
    };
    let mut ping = Map::new();
    ping.insert("janus".into(), json!("ping"));
    let ok = ws.request(ping).is_ok();
    ws.close();
    ok
}

/// A janus-sentinel child process.
pub struct Sentinel {
    pub child: Child,
    pub rest: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// Writes `config` (which must use `{REST}` for the REST `ip:port`) and starts the
    /// sentinel; waits until its REST interface answers.
    pub fn start(config: &str) -> Sentinel {
        let s = Sentinel::spawn(config);
        poll_until(
            Duration::from_secs(10),
            "the sentinel's REST interface",
            || http("GET", &format!("{}/sentinel/info", s.rest), None).ok(),
        );
        s
    }

    /// As [`Sentinel::start`] without waiting.
    pub fn spawn(config: &str) -> Sentinel {
        Sentinel::spawn_with_secret(config, Some(TEST_SECRET))
    }

    /// As [`Sentinel::spawn`], with `secret` in `JANUS_CLOUD_SECRET` (`None`: unset).
    pub fn spawn_with_secret(config: &str, secret: Option<&str>) -> Sentinel {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen = format!("127.0.0.1:{}", free_port());
        let path = dir.path().join("janus-sentinel.toml");
        fs::write(&path, config.replace("{REST}", &listen)).expect("write config");
        let log = dir.path().join("sentinel.out");
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("dup");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_janus-sentinel"));
        match secret {
            Some(s) => cmd.env("JANUS_CLOUD_SECRET", s),
            None => cmd.env_remove("JANUS_CLOUD_SECRET"),
        };
        let child = cmd
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn janus-sentinel");
        Sentinel {
            child,
            rest: format!("http://{listen}"),
            log,
            _dir: dir,
        }
    }

    pub fn info(&self) -> Value {
        let (status, body) =
            http("GET", &format!("{}/sentinel/info", self.rest), None).expect("GET /sentinel/info");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits for the sentinel to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        poll_until(timeout, "the sentinel to exit", || {
            self.child.try_wait().ok().flatten()
        })
    }

    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    /// SIGTERM, so that the sentinel stops its Janus itself (with SIGKILL escalation);
    /// SIGKILL after 10 s (its Janus then dies by the parent-death signal).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- janus-sentinel output ----\n{}", self.output());
        }
    }
}

/// An HTTP request; returns the status and the body parsed as JSON (`Null` when empty,
/// a JSON string when it is not JSON).
///
/// # Errors
/// Network failure.
pub fn http(method: &str, url: &str, body: Option<(&str, &str)>) -> Result<(u16, Value), String> {
    let (status, _, text) = http_full(method, url, body, &[])?;
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, v))
}

/// An HTTP request with extra headers; returns status, response headers and body text.
/// `Authorization: Bearer <TEST_SECRET>` is added unless `headers` has an `Authorization`
/// entry (an empty value sends none).
///
/// # Errors
/// Network failure.
pub fn http_full(
    method: &str,
    url: &str,
    body: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> Result<(u16, BTreeMap<String, String>, String), String> {
    let bearer = format!("Bearer {TEST_SECRET}");
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, v)| !(k.eq_ignore_ascii_case("authorization") && v.is_empty()))
        .copied()
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        all.push(("Authorization", &bearer));
    }
    let headers = &all;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let resp = match (method, body) {
        ("GET", _) => headers
            .iter()
            .fold(agent.get(url), |r, (k, v)| r.header(*k, *v))
            .call(),
        ("OPTIONS", _) => headers
            .iter()
            .fold(agent.options(url), |r, (k, v)| r.header(*k, *v))
            .call(),
        ("POST", Some((ct, b))) => headers
            .iter()
            .fold(agent.post(url).header("Content-Type", ct), |r, (k, v)| {
                r.header(*k, *v)
            })
            .send(b),
        ("POST", None) => headers
            .iter()
            .fold(agent.post(url), |r, (k, v)| r.header(*k, *v))
            .send_empty(),
        _ => return Err(format!("unsupported method {method}")),
    }
    .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let hs = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, hs, text))
}

/// One request received by the [`RecordingStub`].
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub path: String,
    pub content_type: String,
    /// `Authorization` header ("" when absent).
    pub authorization: String,
    /// The fields of the body (JSON object values or form fields, as strings).
    pub form: BTreeMap<String, String>,
}

/// Recording stub HTTP endpoint: answers 200 to every request and records it. Stands in
/// for janus-proxy's `/sentinel_callback` only to see what the sentinel sends.
pub struct RecordingStub {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl RecordingStub {
    pub fn start() -> RecordingStub {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("stub listen"));
        let base = format!("http://{}", server.server_addr());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (srv, rec) = (Arc::clone(&server), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let header = |name: &'static str| {
                    req.headers()
                        .iter()
                        .find(|h| h.field.equiv(name))
                        .map(|h| h.value.as_str().to_owned())
                        .unwrap_or_default()
                };
                let content_type = header("Content-Type");
                let form = if content_type.starts_with("application/json") {
                    janus_cloud::admin::http::json_params(&body).unwrap_or_default()
                } else {
                    form_urlencoded::parse(&body).into_owned().collect()
                };
                let r = Recorded {
                    at: Instant::now(),
                    path: req.url().to_owned(),
                    authorization: header("Authorization"),
                    content_type,
                    form,
                };
                if let Ok(mut v) = rec.lock() {
                    v.push(r);
                }
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        });
        RecordingStub {
            base,
            seen,
            server,
            thread: Some(thread),
        }
    }

    /// Everything received at `path` so far.
    pub fn at(&self, path: &str) -> Vec<Recorded> {
        self.seen
            .lock()
            .map(|v| v.iter().filter(|r| r.path == path).cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for RecordingStub {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
