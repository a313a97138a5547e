//! The TLS client listeners (`ws_transport.wss`, `http_transport.https`): the
//! `[certificates]` pair served by rustls, the same rules as the plain listeners, a new
//! certificate taken on SIGHUP without dropping open connections, and start-up errors that
//! name the key.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A TLS connection to 127.0.0.1:`port` trusting `config`'s roots.
fn tls(
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("ip name");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // finish the handshake now, so that a refused certificate shows here
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// One HTTP/1.1 request over TLS with `Connection: close`; the whole answer.
fn https_get(port: u16, path: &str) -> String {
    let mut s = tls(port, tls_client_config()).expect("TLS connection");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn wss_follows_the_ws_handshake_rules() {
    let p = Proxy::start(ProxyConfig::without_backends().all_transports());
    let port = p.wss_port.unwrap();
    // not an upgrade: 400, as on the plain listener
    let mut s = tls(port, tls_client_config()).expect("TLS connection");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        out.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // janus-protocol echoed; an upgrade without it is accepted too
    let c = p.client_over(Transport::Wss);
    assert_eq!(c.subprotocol().as_deref(), Some("janus-protocol"));
    let mut c = Client::try_connect(&p.url_over(Transport::Wss), None).expect("upgrade");
    assert_eq!(c.request(json!({"janus": "ping"}))["janus"], "pong");
    // a client speaking plain WebSocket to the TLS port gets nowhere
    assert!(
        Client::try_connect(&format!("ws://127.0.0.1:{port}"), Some("janus-protocol")).is_err()
    );
}

#[test]
fn https_serves_the_api_and_the_pages() {
    let (cert, key) = test_cert();
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("html");
    let p = Proxy::start(
        ProxyConfig::without_backends()
            .set("http_transport", "https", "true")
            .set_str(
                "http_transport",
                "https_listen",
                &format!("127.0.0.1:{}", free_port()),
            )
            .set_str("http_transport", "static_folder", pages.to_str().unwrap())
            .set_str("certificates", "cert_pem", cert.to_str().unwrap())
            .set_str("certificates", "cert_key", key.to_str().unwrap()),
    );
    let port: u16 = p
        .config
        .get("http_transport", "https_listen")
        .and_then(|v| v.trim_matches('"').rsplit(':').next()?.parse().ok())
        .unwrap();
    let info = https_get(port, "/janus/info");
    assert!(info.starts_with("HTTP/1.1 200 OK\r\n"), "{info}");
    assert!(info.contains("\"server_info\""), "{info}");
    assert!(info.contains("Access-Control-Allow-Origin: *"), "{info}");
    let page = https_get(port, "/echotest.html");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("Content-Type: text/html; charset=utf-8"),
        "{page}"
    );
    assert!(page.contains("vendor/adapter.js"), "{page}");
    let missing = https_get(port, "/../Cargo.toml");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[test]
fn sighup_loads_a_new_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    make_cert(&cert, &key);
    let first = dir.path().join("first.pem");
    std::fs::copy(&cert, &first).unwrap();
    let p = Proxy::start(
        ProxyConfig::without_backends()
            .all_transports()
            .set_str("certificates", "cert_pem", cert.to_str().unwrap())
            .set_str("certificates", "cert_key", key.to_str().unwrap()),
    );
    let port = p.wss_port.unwrap();
    let trust_first = tls_client_config_for(&first);
    let mut open = tls(port, trust_first).expect("first certificate served");
    open.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    open.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");

    // a new pair in the same files, then SIGHUP
    make_cert(&cert, &key);
    let trust_second = tls_client_config_for(&cert);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log().contains("TLS certificate reloaded") {
        assert!(Instant::now() < deadline, "no reload logged:\n{}", p.log());
        poll_pause();
    }
    assert!(
        tls(port, trust_second).is_ok(),
        "the new certificate is served"
    );
    // a fresh configuration: no TLS session to resume
    let fresh_first = tls_client_config_for(&first);
    assert!(
        tls(port, fresh_first).is_err(),
        "the old certificate is still served"
    );
    // the connection opened before goes on
    let mut rest = Vec::new();
    let mut byte = [0u8; 1];
    while !rest.ends_with(b"\r\n\r\n") {
        open.read_exact(&mut byte).unwrap();
        rest.push(byte[0]);
    }
    // a masked text frame with a ping request
    let msg = br#"{"janus":"ping","transaction":"t"}"#;
    let mut frame = vec![0x81, 0x80 | msg.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(msg);
    open.write_all(&frame).unwrap();
    let mut answer = [0u8; 64];
    let n = open.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).contains("pong"));

    // a broken pair is refused and the current one stays
    let second = dir.path().join("second.pem");
    std::fs::copy(&cert, &second).unwrap();
    std::fs::write(&cert, "garbage").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log().contains("TLS certificate not reloaded") {
        assert!(Instant::now() < deadline, "no refusal logged:\n{}", p.log());
        poll_pause();
    }
    assert!(tls(port, tls_client_config_for(&second)).is_ok());
}

#[test]
fn bad_certificates_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |cfg: &ProxyConfig| {
        let path = dir.path().join("janus-proxy.toml");
        write_file(&path, &cfg.render());
        let out = Command::new(proxy_bin())
            .arg("--check-config")
            .arg(&path)
            .env_remove("JANUS_CLOUD_SECRET")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let base = ProxyConfig::without_backends()
        .set_str("ws_transport", "ws_listen", "127.0.0.1:1")
        .set("ws_transport", "wss", "true");
    let (ok, text) = check(&base);
    assert!(!ok && text.contains("certificates.cert_pem"), "{text}");
    let missing = base
        .clone()
        .set_str("certificates", "cert_pem", "/nonexistent/cert.pem")
        .set_str("certificates", "cert_key", "/nonexistent/key.pem");
    let (ok, text) = check(&missing);
    assert!(!ok && text.contains("/nonexistent/cert.pem"), "{text}");
    let (cert, key) = test_cert();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    make_cert(&other.join("c.pem"), &other.join("k.pem"));
    let mismatch = base
        .clone()
        .set_str("certificates", "cert_pem", cert.to_str().unwrap())
        .set_str(
            "certificates",
            "cert_key",
            other.join("k.pem").to_str().unwrap(),
        );
    let (ok, text) = check(&mismatch);
    assert!(!ok && text.contains("certificates"), "{text}");
    let good = base
        .clone()
        .set_str("certificates", "cert_pem", cert.to_str().unwrap())
        .set_str("certificates", "cert_key", key.to_str().unwrap());
    let (ok, text) = check(&good);
    assert!(ok, "{text}");
    let (ok, text) = check(&good.set_str("certificates", "cert_pwd", "secret"));
    assert!(!ok && text.contains("certificates.cert_pwd"), "{text}");
}
