//! A sentinel, the Janus it supervises and a real janus-proxy (with a secret) together:
//! registration through the proxy's access rules (JSON + bearer),
//! `kill -9` of Janus (detection, restart, re-selection) and the sentinel's own SIGTERM.
//! Prints the measured times. Needs the `janus-proxy` binary of the workspace
//! (`cargo build --workspace`, which scripts/test.sh runs first).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    alive, free_port, http, http_full, janus_answers, poll_until, signal, JanusSet, Sentinel,
    TEST_SECRET,
};
use janus_sentinel::janus_ws::JanusWs;
use serde_json::{json, Map, Value};

fn proxy_bin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_janus-sentinel")).with_file_name("janus-proxy");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A janus-proxy with no static backend: servers come only from the sentinel.
struct Proxy {
    child: Child,
    ws: String,
    admin: String,
    dir: tempfile::TempDir,
}

impl Proxy {
    fn start() -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ws_port, admin_port) = (free_port(), free_port());
        let cfg = format!(
            "plugins = [\"echotest\"]\n[general]\nshards = 2\n[log]\ndebug_level = \"INFO\"\n\
             [ws_transport]\nws_listen = \"127.0.0.1:{ws_port}\"\n\
             [admin_api]\nhttp_listen = \"127.0.0.1:{admin_port}\"\nsecret = \"{TEST_SECRET}\"\n\
             [backend]\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
        );
        let path = dir.path().join("janus-proxy.toml");
        fs::write(&path, cfg).expect("config");
        let out = fs::File::create(dir.path().join("proxy.out")).expect("log");
        let child = Command::new(proxy_bin())
            .arg(&path)
            .env_remove("JANUS_CLOUD_SECRET")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn janus-proxy");
        let p = Proxy {
            child,
            ws: format!("ws://127.0.0.1:{ws_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            dir,
        };
        poll_until(Duration::from_secs(10), "the proxy's admin API", || {
            http("GET", &format!("{}/ping", p.admin), None).ok()
        });
        p
    }

    fn server(&self, name: &str) -> Option<Value> {
        let (_, list) = http("GET", &format!("{}/backend_servers", self.admin), None).ok()?;
        list.as_array()?.iter().find(|s| s["name"] == name).cloned()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let out = fs::read_to_string(self.dir.path().join("proxy.out")).unwrap_or_default();
            eprintln!("---- janus-proxy output ----\n{out}");
        }
    }
}

fn req(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Creates a session through the proxy and attaches echotest; the reply to `attach`.
fn attach(proxy: &Proxy) -> Value {
    let Ok(mut ws) = JanusWs::connect(&proxy.ws, "janus-protocol", Duration::from_secs(3)) else {
        return json!({"janus": "error", "error": {"code": 0, "reason": "connect"}});
    };
    let created = ws
        .request(req(json!({"janus": "create"})))
        .unwrap_or_default();
    let sid = created["data"]["id"].as_u64().unwrap_or(0);
    let r = ws
        .request(req(
            json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.echotest"}),
        ))
        .unwrap_or_else(
            |e| json!({"janus": "error", "error": {"code": 0, "reason": e.to_string()}}),
        );
    ws.close();
    r
}

fn attach_works(proxy: &Proxy) -> bool {
    attach(proxy)["janus"] == "success"
}

/// The proxy answers the attach with error 502 "No backend server" (the sentinel's client
/// reports Janus errors as text).
fn attach_refused(proxy: &Proxy) -> bool {
    let r = attach(proxy);
    r["janus"] == "error"
        && r["error"]["reason"]
            .as_str()
            .is_some_and(|t| t.contains("502"))
}

#[test]
fn sentinel_registers_janus_and_the_proxy_follows_its_life() {
    let mut janus = JanusSet::start("sentinel-with-proxy", 18394, 6, None);
    janus.stop();
    let proxy = Proxy::start();
    let pingpong = 1;
    let config = format!(
        r#"
[janus]
server_name = "sj"
ws_port = {ws}
pingpong_interval = {pingpong}
request_timeout = 2
[proc_watcher]
cmdline = "{cmd}"
error_restart_interval = 1
poll_interval = 1
[admin_api]
http_listen = "{{REST}}"
[[posters]]
post_type = "http"
name = "proxy"
post_urls = ["{admin}/sentinel_callback"]
expire = 6
"#,
        ws = janus.ws_port,
        cmd = janus.cmdline(),
        admin = proxy.admin,
    );
    let mut sentinel = Sentinel::start(&config);

    // 1. Registered within 2 x pingpong_interval of Janus answering; echotest lands on it.
    poll_until(Duration::from_secs(15), "Janus to answer", || {
        janus_answers(&janus.ws_url()).then_some(())
    });
    let up = Instant::now();
    poll_until(
        Duration::from_secs(2 * pingpong + 1),
        "registration as NORMAL",
        || proxy.server("sj").filter(|s| s["status"] == 0).map(|_| ()),
    );
    let registered = up.elapsed();
    assert!(
        registered <= Duration::from_secs(2 * pingpong),
        "registration took {registered:?}"
    );
    let s = proxy.server("sj").expect("listed");
    assert_eq!(s["url"], janus.ws_url());
    // The proxy does require its secret: the sentinel's posts got in with it.
    let (st, _, _) = http_full(
        "GET",
        &format!("{}/backend_servers", proxy.admin),
        None,
        &[("Authorization", "")],
    )
    .expect("GET without the secret");
    assert_eq!(st, 401);
    assert_eq!(s["expire"], 6);
    poll_until(
        Duration::from_secs(5),
        "an echotest attach through the proxy",
        || attach_works(&proxy).then_some(()),
    );

    // 2. kill -9: unselectable within 2 s, restarted, selected again without a proxy restart.
    let pid = sentinel.info()["janus_watcher"]["pid"]
        .as_u64()
        .expect("janus pid") as u32;
    let killed = Instant::now();
    signal(pid, libc::SIGKILL);
    poll_until(
        Duration::from_secs(2),
        "the proxy to stop selecting the killed Janus",
        || attach_refused(&proxy).then_some(()),
    );
    let detected = killed.elapsed();
    poll_until(
        Duration::from_secs(15),
        "the restarted Janus to answer",
        || janus_answers(&janus.ws_url()).then_some(()),
    );
    let restarted = killed.elapsed();
    poll_until(
        Duration::from_secs(10),
        "the proxy to select the restarted Janus",
        || attach_works(&proxy).then_some(()),
    );
    let reselected = killed.elapsed();

    // 3. Sentinel SIGTERM: Janus stops, the proxy is told ABNORMAL and stops selecting it.
    let pid = sentinel.info()["janus_watcher"]["pid"]
        .as_u64()
        .expect("janus pid") as u32;
    let term = Instant::now();
    signal(sentinel.child.id(), libc::SIGTERM);
    sentinel.wait_exit(Duration::from_secs(10));
    poll_until(Duration::from_secs(5), "Janus to stop", || {
        (!alive(pid)).then_some(())
    });
    assert_eq!(
        proxy.server("sj").expect("still listed")["status"],
        1,
        "ABNORMAL was posted on exit"
    );
    assert!(
        attach_refused(&proxy),
        "the proxy still selects a stopped server"
    );
    let stopped = term.elapsed();
    println!(
        "measured: registration {registered:?} after Janus answered; kill -9 -> unselectable {detected:?}, \
         Janus answering again {restarted:?}, selected again {reselected:?}; SIGTERM -> stopped+ABNORMAL+unselectable {stopped:?}"
    );
}
