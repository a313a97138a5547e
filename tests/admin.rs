//! The admin REST API against a running proxy and real Janus backends: every route with
//! its error cases, the bearer secret, /metrics, and what registrations do to selection
//! (a registered server gets work, a deleted or drained one gets none).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// An HTTP answer: status, headers we look at, body.
struct Http {
    status: u16,
    cors: Option<String>,
    body: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn http(method: &str, url: &str, body: Option<(&str, &str)>, token: Option<&str>) -> Http {
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
    assert_eq!(ping.cors.as_deref(), Some("*"), "every answer carries CORS");

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
        "/backend_servers/janus-0",
    ] {
        assert_eq!(
            http("GET", &format!("{base}{path}"), None, None).status,
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
            None
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
        http("DELETE", &format!("{base}/backend_servers/s"), None, None).status,
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
