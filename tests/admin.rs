//! The admin REST API against a running proxy and real Janus backends: every route with
//! its error cases, the bearer secret, /metrics and /health, what registrations do to
//! selection (a registered server gets work, a deleted or drained one gets none), and
//! hostile clients over raw TCP: cross-site forms, foreign origins, wrong secrets,
//! oversized and slow bodies, idle connections up to the cap.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// For [`http`]: no `Authorization` header.
const NO_TOKEN: Option<&str> = Some("");

fn admin_base(p: &Proxy) -> String {
    format!("http://127.0.0.1:{}", p.admin_port)
}

fn json_body(h: &Http) -> Value {
    serde_json::from_str(&h.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", h.body))
}

fn form(kv: &[(&str, &str)]) -> String {
    kv.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn servers(p: &Proxy) -> Vec<Value> {
    let h = http(
        "GET",
        &format!("{}/backend_servers", admin_base(p)),
        None,
        None,
    );
    assert_eq!(h.status, 200, "{}", h.body);
    json_body(&h).as_array().cloned().unwrap_or_default()
}

#[test]
fn every_route_succeeds_and_fails_as_documented() {
    let p = Proxy::start(ProxyConfig::shared());
    let base = admin_base(&p);

    let ping = http("GET", &format!("{base}/ping"), None, None);
    assert_eq!((ping.status, json_body(&ping)), (200, json!("pong")));
    assert_eq!(ping.cors, None, "no CORS header without an allowed Origin");

    let info = json_body(&http("GET", &format!("{base}/info"), None, None));
    assert_eq!(info["janus"], "server_info");
    assert_eq!(info["name"], "Janus-Cloud Proxy");
    assert!(info["plugins"]["janus.plugin.echotest"].is_object());
    assert!(info.get("transaction").is_none());

    // Static servers are listed with every field, never expiring.
    let list = servers(&p);
    assert_eq!(list.len(), 2);
    for key in [
        "name",
        "url",
        "status",
        "session_timeout",
        "location",
        "isp",
        "session_num",
        "handle_num",
        "expire",
        "start_time",
        "ctime",
        "utime",
    ] {
        assert!(list[0].get(key).is_some(), "missing {key} in {}", list[0]);
    }
    assert_eq!(list[0]["expire"], 0);

    // Form post (as sentinels send), JSON post, status 3 accepted.
    let form_body = form(&[
        ("name", "extra-1"),
        ("url", "ws://127.0.0.1:1"),
        ("status", "1"),
        ("handle_num", "4"),
    ]);
    let h = http(
        "POST",
        &format!("{base}/sentinel_callback"),
        Some(("application/x-www-form-urlencoded", &form_body)),
        None,
    );
    assert_eq!((h.status, h.body.as_str()), (200, ""));
    let h = http(
        "POST",
        &format!("{base}/backend_servers"),
        Some((
            "application/json",
            r#"{"name":"extra-2","url":"ws://127.0.0.1:2","status":3,"expire":30,"location":"lab"}"#,
        )),
        None,
    );
    assert_eq!(h.status, 200, "{}", h.body);
    let one = json_body(&http(
        "GET",
        &format!("{base}/backend_servers/extra-1"),
        None,
        None,
    ));
    assert_eq!(
        (
            one["status"].as_u64(),
            one["handle_num"].as_i64(),
            one["expire"].as_u64()
        ),
        (Some(1), Some(4), Some(60))
    );
    let two = json_body(&http(
        "GET",
        &format!("{base}/backend_servers/extra-2"),
        None,
        None,
    ));
    assert_eq!(
        (two["status"].as_u64(), two["location"].as_str()),
        (Some(3), Some("lab"))
    );
    // An update keeps the fields it does not carry.
    let h = http(
        "POST",
        &format!("{base}/backend_servers"),
        Some((
            "application/json",
            r#"{"name":"extra-2","url":"ws://127.0.0.1:2","status":2}"#,
        )),
        None,
    );
    assert_eq!(h.status, 200);
    let two = json_body(&http(
        "GET",
        &format!("{base}/backend_servers/extra-2"),
        None,
        None,
    ));
    assert_eq!(
        (
            two["status"].as_u64(),
            two["location"].as_str(),
            two["expire"].as_u64()
        ),
        (Some(2), Some("lab"), Some(30))
    );

    // Validation errors: 400 with a JSON body naming the field.
    for (body, field) in [
        (r#"{"url":"ws://h:1","status":0}"#, "name"),
        (r#"{"name":"bad name","url":"ws://h:1","status":0}"#, "name"),
        (r#"{"name":"x","url":"http://h:1","status":0}"#, "url"),
        (r#"{"name":"x","url":"ws://h:1","status":4}"#, "status"),
        (r#"{"name":"x","url":"ws://h:1"}"#, "status"),
        (
            r#"{"name":"x","url":"ws://h:1","status":0,"expire":100000}"#,
            "expire",
        ),
        (
            r#"{"name":"x","url":"ws://h:1","status":0,"handle_num":"many"}"#,
            "handle_num",
        ),
        (r#"[1,2]"#, "object"),
        (r#"{not json"#, "JSON"),
    ] {
        let h = http(
            "POST",
            &format!("{base}/backend_servers"),
            Some(("application/json", body)),
            None,
        );
        assert_eq!(h.status, 400, "{body}: {}", h.body);
        let e = json_body(&h);
        assert!(
            e["info"].as_str().unwrap_or("").contains(field),
            "{body}: {e}"
        );
        assert!(e["exception"].is_string());
    }

    // Unknown server, unknown route, unsupported method.
    let h = http("GET", &format!("{base}/backend_servers/nobody"), None, None);
    assert_eq!(h.status, 404);
    assert!(json_body(&h)["info"].as_str().unwrap().contains("nobody"));
    assert_eq!(http("GET", &format!("{base}/nope"), None, None).status, 404);
    let h = http(
        "PUT",
        &format!("{base}/backend_servers"),
        Some(("application/json", "{}")),
        None,
    );
    assert_eq!(h.status, 404);
    assert!(json_body(&h)["info"].as_str().unwrap().contains("PUT"));

    // Delete: gone from the list; deleting again is still 200.
    assert_eq!(
        http(
            "DELETE",
            &format!("{base}/backend_servers/extra-1"),
            None,
            None
        )
        .status,
        200
    );
    assert_eq!(
        http(
            "DELETE",
            &format!("{base}/backend_servers/extra-1"),
            None,
            None
        )
        .status,
        200
    );
    assert!(!servers(&p).iter().any(|s| s["name"] == "extra-1"));

    // CORS preflight.
    let pre = agent()
        .options(&format!("{base}/backend_servers"))
        .header("Access-Control-Request-Method", "POST")
        .call()
        .expect("preflight");
    assert_eq!(pre.status().as_u16(), 200);
    assert_eq!(
        pre.headers()
            .get("Access-Control-Allow-Methods")
            .and_then(|v| v.to_str().ok()),
        Some("GET,POST")
    );
    let pre = agent()
        .options(&format!("{base}/backend_servers"))
        .header("Access-Control-Request-Method", "DELETE")
        .call()
        .expect("preflight");
    assert_eq!(pre.status().as_u16(), 401);
}

#[test]
fn secret_protects_every_route() {
    let p = Proxy::start(ProxyConfig::shared().set_str("admin_api", "secret", "t0ken"));
    let base = admin_base(&p);
    for path in [
        "/ping",
        "/info",
        "/backend_servers",
        "/metrics",
        "/health",
        "/backend_servers/janus-0",
    ] {
        assert_eq!(
            http("GET", &format!("{base}{path}"), None, NO_TOKEN).status,
            401,
            "{path} without token"
        );
        assert_eq!(
            http("GET", &format!("{base}{path}"), None, Some("wrong")).status,
            401,
            "{path} wrong token"
        );
        assert_eq!(
            http("GET", &format!("{base}{path}"), None, Some("t0ken")).status,
            200,
            "{path} with token"
        );
    }
    let body = form(&[("name", "s"), ("url", "ws://127.0.0.1:3"), ("status", "1")]);
    let ct = "application/x-www-form-urlencoded";
    assert_eq!(
        http(
            "POST",
            &format!("{base}/sentinel_callback"),
            Some((ct, &body)),
            NO_TOKEN
        )
        .status,
        401
    );
    assert_eq!(
        http(
            "POST",
            &format!("{base}/sentinel_callback"),
            Some((ct, &body)),
            Some("t0ken")
        )
        .status,
        200
    );
    assert_eq!(
        http(
            "DELETE",
            &format!("{base}/backend_servers/s"),
            None,
            NO_TOKEN
        )
        .status,
        401
    );
}

/// Parses the Prometheus text format: every sample line is `name[{labels}] value`.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {l:?}"));
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            assert!(
                name.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
                "bad metric name in {l:?}"
            );
            if let Some(i) = name.find('{') {
                assert!(name.ends_with('}'), "bad labels in {l:?}");
                for pair in name[i + 1..name.len() - 1].split(',') {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in {l:?}"));
                    assert!(
                        !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                        "bad label in {l:?}"
                    );
                }
            }
            (name.to_string(), v)
        })
        .collect()
}

fn metric(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0.0, |(_, v)| *v)
}

#[test]
fn metrics_parse_and_move() {
    let p = Proxy::start(ProxyConfig::shared());
    p.wait_echotest_ready(Duration::from_secs(15));
    let scrape = || {
        let h = http("GET", &format!("{}/metrics", admin_base(&p)), None, None);
        assert_eq!(h.status, 200);
        parse_prometheus(&h.body)
    };
    let before = scrape();
    let mut c = p.client();
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.echotest");
    let (ack, ev) = c.request_async(
        json!({"janus":"message","session_id":sid,"handle_id":hid,"body":{"audio":true}}),
        REPLY_TIMEOUT,
    );
    assert_eq!(
        (ack["janus"].as_str(), ev["janus"].as_str()),
        (Some("ack"), Some("event"))
    );
    let bad = c.request(json!({"janus":"keepalive","session_id":42}));
    assert_eq!(bad["error"]["code"], 458);
    let after = scrape();
    let grew = |n: &str| metric(&after, n) - metric(&before, n);
    assert!(grew("janus_proxy_client_messages_received_total") >= 4.0);
    assert!(grew("janus_proxy_client_messages_sent_total") >= 5.0);
    assert!(grew("janus_proxy_backend_messages_sent_total") >= 2.0);
    assert!(grew("janus_proxy_errors_total{code=\"458\"}") >= 1.0);
    assert_eq!(metric(&after, "janus_proxy_sessions"), 1.0);
    assert_eq!(metric(&after, "janus_proxy_handles"), 1.0);
    assert_eq!(metric(&after, "janus_proxy_connections"), 1.0);
    assert_eq!(
        metric(&after, "janus_proxy_backend_links_up{server=\"janus-0\"}"),
        2.0
    );
    assert_eq!(
        metric(&after, "janus_proxy_backend_status{server=\"janus-1\"}"),
        0.0
    );
}

/// Attaches echotest on a new session; returns the reply.
fn try_attach(c: &mut Client) -> Value {
    let sid = c.create_session();
    c.request(json!({"janus":"attach","session_id":sid,"plugin":"janus.plugin.echotest"}))
}

#[test]
fn registered_server_gets_work_and_deleted_one_does_not() {
    let shared = shared_backends();
    let p = Proxy::start(ProxyConfig::new(Vec::new()));
    let mut c = p.client();
    let r = try_attach(&mut c);
    assert_eq!(
        (r["janus"].as_str(), r["error"]["code"].as_u64()),
        (Some("error"), Some(502)),
        "{r}"
    );

    let base = admin_base(&p);
    let body = format!(
        r#"{{"name":"dyn","url":"{}","status":0,"expire":0}}"#,
        shared.ws_url(0)
    );
    assert_eq!(
        http(
            "POST",
            &format!("{base}/backend_servers"),
            Some(("application/json", &body)),
            None
        )
        .status,
        200
    );
    // The shards connect in the background: poll until an attach works.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (sid, hid) = loop {
        let sid = c.create_session();
        let r =
            c.request(json!({"janus":"attach","session_id":sid,"plugin":"janus.plugin.echotest"}));
        if r["janus"] == "success" {
            break (sid, r["data"]["id"].as_u64().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "registered server never selected: {r}"
        );
        poll_pause();
    };
    assert_eq!(
        http("DELETE", &format!("{base}/backend_servers/dyn"), None, None).status,
        200
    );
    let r = try_attach(&mut c);
    assert_eq!(
        r["error"]["code"], 502,
        "a deleted server gets no new work: {r}"
    );
    // ... but the handle already on it keeps working.
    let (_, ev) = c.request_async(
        json!({"janus":"message","session_id":sid,"handle_id":hid,"body":{"audio":true}}),
        REPLY_TIMEOUT,
    );
    assert_eq!(ev["plugindata"]["data"]["result"], "ok", "{ev}");
}

/// Registers (or updates) a static-like server with `status` through the admin API.
fn set_status(base: &str, name: &str, url: &str, status: u8) {
    let body = format!(r#"{{"name":"{name}","url":"{url}","status":{status},"expire":0}}"#);
    let h = http(
        "POST",
        &format!("{base}/backend_servers"),
        Some(("application/json", &body)),
        None,
    );
    assert_eq!(h.status, 200, "{}", h.body);
}

#[test]
fn maintenance_drains_a_server() {
    let b = shared_backends();
    let p = Proxy::start(ProxyConfig::shared());
    p.wait_echotest_ready(Duration::from_secs(15));
    let base = admin_base(&p);
    // Sessions on both servers (rr over 2 servers: 4 attaches hit each at least once).
    let mut c = p.client();
    let before0 = b.handle_count(0);
    let mut handles = Vec::new();
    for _ in 0..4 {
        let sid = c.create_session();
        let hid = c.attach(sid, "janus.plugin.echotest");
        handles.push((sid, hid));
    }
    assert!(b.handle_count(0) > before0, "janus-0 got no handle");
    // Drain janus-0.
    set_status(&base, "janus-0", &b.ws_url(0), 2);
    let on0 = b.handle_count(0);
    for _ in 0..6 {
        let sid = c.create_session();
        c.attach(sid, "janus.plugin.echotest");
    }
    assert_eq!(
        b.handle_count(0),
        on0,
        "a server in maintenance got new handles"
    );
    // Existing sessions, on both servers, still work.
    for (sid, hid) in handles {
        let (_, ev) = c.request_async(
            json!({"janus":"message","session_id":sid,"handle_id":hid,"body":{"audio":true}}),
            REPLY_TIMEOUT,
        );
        assert_eq!(ev["plugindata"]["data"]["result"], "ok", "{ev}");
    }
    // Back to normal: it gets work again.
    set_status(&base, "janus-0", &b.ws_url(0), 0);
    for _ in 0..4 {
        let sid = c.create_session();
        c.attach(sid, "janus.plugin.echotest");
    }
    assert!(
        b.handle_count(0) > on0,
        "janus-0 got no work after maintenance ended"
    );
}

#[test]
fn two_proxies_share_one_redis() {
    let b = shared_backends();
    let redis = RedisServer::start();
    let cfg = || {
        ProxyConfig::new(Vec::new())
            .set_str("general", "server_db", &redis.url())
            .set("general", "server_sync_interval", "1")
    };
    let a = Proxy::start(cfg());
    let pb = Proxy::start(cfg());
    let body = format!(
        r#"{{"name":"shared-0","url":"{}","status":0,"expire":3}}"#,
        b.ws_url(0)
    );
    let post = || {
        http(
            "POST",
            &format!("{}/sentinel_callback", admin_base(&a)),
            Some(("application/json", &body)),
            None,
        )
    };
    assert_eq!(post().status, 200);
    // B lists it at once (same store) and selects it once its sync picked it up.
    assert!(
        servers(&pb).iter().any(|s| s["name"] == "shared-0"),
        "B does not list A's server"
    );
    let mut c = pb.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Keep the entry fresh while waiting.
        assert_eq!(post().status, 200);
        if try_attach(&mut c)["janus"] == "success" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never selected the server registered through A"
        );
        poll_pause();
    }
    // Stop refreshing: after `expire` the entry disappears from both lists (Redis TTL)
    // and B stops selecting it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while servers(&a).iter().any(|s| s["name"] == "shared-0")
        || servers(&pb).iter().any(|s| s["name"] == "shared-0")
    {
        assert!(Instant::now() < deadline, "expired entry still listed");
        poll_pause();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = try_attach(&mut c);
        if r["error"]["code"] == 502 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired server still selected: {r}"
        );
        poll_pause();
    }
}

// ------------------------------------------------------------------------------------------
// hostile clients, over raw TCP

/// A raw HTTP exchange: the answer's status, headers (lower-case names) and body, and
/// whether the server closed the connection after it.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", p.admin_port)).expect("connect to the admin API");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s
}

/// Reads one whole answer from `s` until the server closes it (requests here carry
/// `Connection: close`, or are refused with it).
fn read_answer(s: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Raw {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` on a new
/// connection, with `Connection: close`, and reads the answer.
fn raw(p: &Proxy, head: &str, body: &str) -> Raw {
    let mut s = connect(p);
    let req = format!(
        "{head}\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    read_answer(&mut s)
}

fn error_of(r: &Raw) -> (String, String) {
    let v: Value =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body));
    (
        v["exception"].as_str().unwrap_or_default().to_string(),
        v["info"].as_str().unwrap_or_default().to_string(),
    )
}

fn url_of(p: &Proxy, name: &str) -> Option<String> {
    servers(p)
        .into_iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["url"].as_str().map(str::to_string))
}

#[test]
fn cross_site_requests_change_nothing() {
    let p = Proxy::start(ProxyConfig::without_backends());
    let before = url_of(&p, "janus-0").expect("static janus-0 listed");
    let evil_form = "name=janus-0&url=ws%3A%2F%2F203.0.113.9%3A8188&status=0";
    let form_ct = "Content-Type: application/x-www-form-urlencoded";

    // What a cross-site <form method=post> sends: refused (foreign Origin).
    let r = raw(
        &p,
        &format!("POST /backend_servers HTTP/1.1\r\nOrigin: http://evil.example\r\n{form_ct}"),
        evil_form,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(error_of(&r).0, "Forbidden");
    // The same without Origin (an old browser, a script): no secret, 401.
    let r = raw(
        &p,
        &format!("POST /backend_servers HTTP/1.1\r\n{form_ct}"),
        evil_form,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let r = raw(
        &p,
        &format!("POST /sentinel_callback HTTP/1.1\r\nAuthorization: Bearer wrong\r\n{form_ct}"),
        evil_form,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let r = raw(&p, "DELETE /backend_servers/janus-1 HTTP/1.1", "");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = raw(
        &p,
        "POST /plugins/p2pcall/alice HTTP/1.1\r\nContent-Type: application/json",
        r#"{"from_user":"mallory","async_event":"{}"}"#,
    );
    assert_eq!(r.status, 401, "{}", r.body);

    // Even with the secret, static servers cannot be re-pointed or deleted: 409.
    let auth = format!("Authorization: Bearer {TEST_ADMIN_SECRET}");
    let r = raw(
        &p,
        &format!("POST /backend_servers HTTP/1.1\r\n{auth}\r\n{form_ct}"),
        evil_form,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let (exception, info) = error_of(&r);
    assert_eq!(exception, "Conflict");
    assert!(
        info.contains("janus-0") && info.contains("static"),
        "{info}"
    );
    let r = raw(
        &p,
        &format!("DELETE /backend_servers/janus-1 HTTP/1.1\r\n{auth}"),
        "",
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(error_of(&r).0, "Conflict");

    assert_eq!(
        url_of(&p, "janus-0"),
        Some(before),
        "janus-0 was re-pointed"
    );
    assert!(url_of(&p, "janus-1").is_some(), "janus-1 was deleted");
}

#[test]
fn without_a_secret_only_json_posts_change_state() {
    // Loopback without a secret is allowed; the CSRF rule still holds.
    let p = Proxy::start(ProxyConfig::without_backends().set_str("admin_api", "secret", ""));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.log().contains("no secret") {
        assert!(Instant::now() < deadline, "no warning: {}", p.log());
        poll_pause();
    }
    let body = "name=csrf-1&url=ws%3A%2F%2F127.0.0.1%3A9&status=0";
    for ct in [
        "Content-Type: application/x-www-form-urlencoded",
        "Content-Type: text/plain",
        "Content-Type: text/plain; a=application/json",
        "Content-Type: multipart/form-data; boundary=x",
    ] {
        let r = raw(
            &p,
            &format!("POST /sentinel_callback HTTP/1.1\r\n{ct}"),
            body,
        );
        assert_eq!(r.status, 415, "{ct}: {}", r.body);
    }
    // A body-less POST with the parameters in the query string, as fetch(no-cors) can send.
    let r = raw(
        &p,
        "POST /sentinel_callback?name=csrf-1&url=ws%3A%2F%2F127.0.0.1%3A9&status=0 HTTP/1.1",
        "",
    );
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(
        url_of(&p, "csrf-1"),
        None,
        "a refused request registered a server"
    );
    // DNS rebinding: a page of another origin reaching the loopback listener.
    let r = raw(
        &p,
        "POST /sentinel_callback HTTP/1.1\r\nOrigin: http://rebound.example:8100\r\nContent-Type: application/json",
        r#"{"name":"csrf-1","url":"ws://127.0.0.1:9","status":0}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A JSON post (no browser can send one cross-site without a preflight) is served.
    let r = raw(
        &p,
        "POST /sentinel_callback HTTP/1.1\r\nContent-Type: application/json",
        r#"{"name":"csrf-1","url":"ws://127.0.0.1:9","status":0}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(url_of(&p, "csrf-1").as_deref(), Some("ws://127.0.0.1:9"));
}

#[test]
fn cors_only_for_configured_origins() {
    let ops = "http://ops.example:8080";
    let p = Proxy::start(ProxyConfig::without_backends().set(
        "admin_api",
        "cors_origins",
        &format!("[\"{ops}\"]"),
    ));
    let auth = format!("Authorization: Bearer {TEST_ADMIN_SECRET}");
    let r = raw(
        &p,
        &format!("GET /ping HTTP/1.1\r\nOrigin: {ops}\r\n{auth}"),
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ops));
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = raw(
        &p,
        &format!("GET /ping HTTP/1.1\r\nOrigin: http://other.example\r\n{auth}"),
        "",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = raw(&p, &format!("GET /ping HTTP/1.1\r\n{auth}"), "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Preflight: answered for the route, the origin echoed only when configured.
    let pre = |origin: &str| {
        raw(
            &p,
            &format!(
                "OPTIONS /backend_servers HTTP/1.1\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST"
            ),
            "",
        )
    };
    let r = pre(ops);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ops));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET,POST"));
    let r = pre("http://evil.example");
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn oversized_body_is_refused_and_the_connection_closed() {
    let p = Proxy::start(ProxyConfig::without_backends().set("admin_api", "max_body_size", "4096"));
    let auth = format!("Authorization: Bearer {TEST_ADMIN_SECRET}");
    // Declared too large: refused before a byte of it is read.
    let mut s = connect(&p);
    s.write_all(
        format!(
            "POST /sentinel_callback HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("send");
    let r = read_answer(&mut s);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(error_of(&r).0, "PayloadTooLarge");
    assert_eq!(r.header("connection"), Some("close"));
    // Chunked, no length announced: cut at the limit.
    let mut s = connect(&p);
    let chunk = format!("{{\"name\":\"big\",\"pad\":\"{}\"}}", "x".repeat(5000));
    s.write_all(
        format!(
            "POST /sentinel_callback HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
            chunk.len()
        )
        .as_bytes(),
    )
    .expect("send");
    let r = read_answer(&mut s);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(url_of(&p, "big"), None);
}

/// Registers a server through `/sentinel_callback` on a fresh connection; returns how long
/// the answer took.
fn timed_callback(p: &Proxy, name: &str) -> Duration {
    let t = Instant::now();
    let body = format!(r#"{{"name":"{name}","url":"ws://127.0.0.1:9","status":1}}"#);
    let r = raw(
        p,
        &format!(
            "POST /sentinel_callback HTTP/1.1\r\nAuthorization: Bearer {TEST_ADMIN_SECRET}\r\nContent-Type: application/json"
        ),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    t.elapsed()
}

#[test]
fn a_slow_body_does_not_stall_the_control_path() {
    let p = Proxy::start(ProxyConfig::without_backends().set("admin_api", "body_timeout", "2"));
    let mut slow = connect(&p);
    slow.write_all(
        format!(
            "POST /sentinel_callback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_ADMIN_SECRET}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"na"
        )
        .as_bytes(),
    )
    .expect("send the start of the body");
    let stalled = Instant::now();
    // Meanwhile, other connections are served at once: a sentinel callback and a ping.
    let took = timed_callback(&p, "while-slow");
    assert!(took < Duration::from_secs(1), "callback took {took:?}");
    assert_eq!(
        http("GET", &format!("{}/ping", admin_base(&p)), None, None).status,
        200
    );
    assert!(url_of(&p, "while-slow").is_some());
    // The slow one is answered 408 and closed once body_timeout has passed.
    let r = read_answer(&mut slow);
    let cut = stalled.elapsed();
    assert_eq!(r.status, 408, "{}", r.body);
    assert_eq!(error_of(&r).0, "RequestTimeout");
    assert!(
        cut >= Duration::from_millis(1500) && cut < Duration::from_secs(6),
        "cut after {cut:?}"
    );
}

#[test]
fn idle_connections_up_to_the_cap_do_not_stall_the_control_path() {
    let cap = 8;
    let p = Proxy::start(ProxyConfig::without_backends().set(
        "admin_api",
        "max_connections",
        &cap.to_string(),
    ));
    // cap - 1 connections that send nothing, and one that sent half a request line.
    let mut idle: Vec<TcpStream> = (0..cap - 2).map(|_| connect(&p)).collect();
    let mut half = connect(&p);
    half.write_all(b"POST /sentinel_cal").expect("send");
    idle.push(half);
    let took = timed_callback(&p, "beside-idle");
    assert!(took < Duration::from_secs(1), "callback took {took:?}");
    // The cap is now full: one more connection is closed at once, unanswered.
    let _last = connect(&p);
    let mut over = connect(&p);
    let mut buf = [0u8; 64];
    let t = Instant::now();
    let n = over.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a connection over the cap got an answer");
    assert!(t.elapsed() < Duration::from_secs(5));
    // Freeing slots lets new connections in again.
    drop(idle);
    drop(_last);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(&p);
        let req = format!(
            "GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_ADMIN_SECRET}\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(req.as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if out.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "slots were never freed");
        poll_pause();
    }
}

#[test]
fn health_reports_every_shard_alive() {
    let p = Proxy::start(ProxyConfig::without_backends());
    let base = admin_base(&p);
    let h = http("GET", &format!("{base}/health"), None, None);
    assert_eq!(h.status, 200, "{}", h.body);
    let v = json_body(&h);
    assert_eq!(v["status"], "ok");
    let shards = v["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    assert!(shards
        .iter()
        .all(|s| s["heartbeat_age_seconds"].as_f64().is_some_and(|a| a < 5.0)));
    let m = http("GET", &format!("{base}/metrics"), None, None);
    let samples = parse_prometheus(&m.body);
    for shard in ["0", "1"] {
        let name = format!("janus_proxy_shard_heartbeat_age_seconds{{shard=\"{shard}\"}}");
        assert!(
            samples.iter().any(|(n, v)| *n == name && *v < 5.0),
            "no fresh {name} in {}",
            m.body
        );
    }
}
