//! Command line of janus-proxy: --version, --check-config (spec 02 §1, §2).

mod common;

use std::process::Command;

use common::*;

fn check_config(cfg: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("janus-proxy.toml");
    write_file(&path, cfg);
    let out = Command::new(proxy_bin())
        .arg("--check-config")
        .arg(&path)
        .env_remove("JANUS_CLOUD_SECRET")
        .output()
        .expect("run janus-proxy --check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn base() -> ProxyConfig {
    ProxyConfig::without_backends().set_str("ws_transport", "ws_listen", "127.0.0.1:1")
}

#[test]
fn version_prints_and_exits_zero() {
    let out = Command::new(proxy_bin()).arg("--version").output().unwrap();
    assert!(out.status.success(), "--version failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.chars().any(|c| c.is_ascii_digit()),
        "--version printed no version: {text:?}"
    );
}

#[test]
fn check_config_accepts_the_reference_config() {
    let (ok, text) = check_config(&base().render());
    assert!(ok, "valid config rejected:\n{text}\n{}", base().render());
}

#[test]
fn check_config_accepts_every_selection_mode_and_json_format() {
    for mode in ["rr", "rand", "lb", "wr"] {
        let (ok, text) = check_config(&base().set_str("general", "server_select", mode).render());
        assert!(ok, "server_select = {mode} rejected:\n{text}");
    }
    for fmt in ["indented", "plain", "compact"] {
        let (ok, text) = check_config(&base().set_str("ws_transport", "json", fmt).render());
        assert!(ok, "json = {fmt} rejected:\n{text}");
    }
}

#[test]
fn check_config_names_the_bad_key() {
    let cases: Vec<(ProxyConfig, &str)> = vec![
        (
            base().set_str("general", "server_select", "bogus"),
            "server_select",
        ),
        (base().set_str("ws_transport", "json", "pretty"), "json"),
        (
            base().set("general", "session_timeout", "-5"),
            "session_timeout",
        ),
        (
            base().set("general", "session_timeout", "\"sixty\""),
            "session_timeout",
        ),
        (base().set_str("log", "debug_level", "LOUD"), "debug_level"),
    ];
    for (cfg, key) in cases {
        let (ok, text) = check_config(&cfg.render());
        assert!(!ok, "invalid {key} accepted:\n{}", cfg.render());
        assert!(text.contains(key), "error does not name {key}: {text:?}");
    }
}

#[test]
fn check_config_rejects_a_bad_backend_url() {
    let mut cfg = base();
    cfg.servers = vec![("bad".into(), "http://127.0.0.1:8188".into())];
    let (ok, text) = check_config(&cfg.render());
    assert!(!ok, "http:// backend url accepted:\n{}", cfg.render());
    assert!(text.contains("url"), "error does not name url: {text:?}");
}

#[test]
fn check_config_rejects_unparsable_toml() {
    let (ok, text) = check_config("plugins = [\"echotest\"\n[general\n");
    assert!(!ok, "garbage accepted: {text}");
}

#[test]
fn check_config_rejects_unknown_plugin() {
    let mut cfg = base();
    cfg.plugins = vec!["echotest".into(), "nosuchplugin".into()];
    let (ok, text) = check_config(&cfg.render());
    assert!(!ok, "unknown plugin accepted");
    assert!(
        text.contains("nosuchplugin"),
        "error does not name the plugin: {text:?}"
    );
}

#[test]
fn an_exposed_admin_api_needs_a_secret() {
    let exposed = base().set_str("admin_api", "secret", "").set_str(
        "admin_api",
        "http_listen",
        "0.0.0.0:18100",
    );
    let (ok, text) = check_config(&exposed.render());
    assert!(!ok, "exposed admin API without a secret accepted");
    assert!(
        text.contains("admin_api.http_listen") && text.contains("secret"),
        "{text}"
    );
    let (ok, text) = check_config(&exposed.set("admin_api", "allow_no_secret", "true").render());
    assert!(ok, "explicit opt-out rejected:\n{text}");
    let (ok, text) = check_config(&base().set("admin_api", "cors_origins", "[\"*\"]").render());
    assert!(!ok && text.contains("admin_api.cors_origins"), "{text}");
}

/// A port still held when the proxy starts (as by a janus-proxy that has just exited: the
/// kernel lets its io_uring listeners go a moment after the process) is waited for; one
/// held for good is refused with a clear error.
#[test]
fn a_port_let_go_soon_after_start_is_waited_for_and_one_kept_is_refused() {
    let held = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold port");
    let config = |port: u16| {
        ProxyConfig::without_backends().set_str(
            "ws_transport",
            "ws_listen",
            &format!("127.0.0.1:{port}"),
        )
    };

    // let go 1 s after the start: the proxy comes up on it
    let port = free_port();
    let holder = held(port);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        drop(holder);
    });
    let proxy = Proxy::start(config(port));
    releaser.join().unwrap();
    assert_eq!(proxy.port, port);
    drop(proxy);

    // kept: the start fails, naming the address
    let port = free_port();
    let _holder = held(port);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("janus-proxy.toml");
    write_file(&path, &config(port).render());
    let started = std::time::Instant::now();
    let out = Command::new(proxy_bin())
        .arg(&path)
        .env_remove("JANUS_CLOUD_SECRET")
        .output()
        .expect("run janus-proxy");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a port in use: {text}");
    assert!(
        text.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{text}"
    );
    // it waited for the port before giving up
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "{text}"
    );
}
