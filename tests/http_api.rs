//! Janus's HTTP API (`[http_transport]`) of janus-proxy against Janus 1.1.2's own HTTP
//! transport (`janus_http.c`): the same requests to both, the same answers (statuses, CORS
//! headers, error codes, long polls, redirects), then what only the proxy does (claims
//! between WebSocket and HTTP, the bounded event queue, the timeout event to a waiting
//! poll, a 30 s long poll ending in `keepalive`) and a round-trip measurement against WS.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Janus with its HTTP API: ws 19498, admin 18498, HTTP 19508 (port plan in common).
fn janus_with_http() -> Backends {
    Backends::own_with(
        "http-compare",
        1,
        19498,
        26000,
        &[("JANUS_HTTP_BASE_PORT", "19508".to_string())],
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(40)))
        .build()
        .into()
}

/// One HTTP exchange: status, the headers that matter, the body. `None` when the server
/// closed the connection without an answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The CORS headers, sorted.
    fn cors(&self) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with("access-control-"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    }
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Option<Answer> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let resp = match body {
        Some(b) => agent.run(builder.body(b.to_string()).ok()?),
        None => agent.run(builder.body(()).ok()?),
    };
    let mut resp = resp.ok()?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// Runs the same scenario against an HTTP API at `base` (`http://host:port/janus`) and
/// returns what was observed, with ids replaced by names.
fn scenario(base: &str) -> Vec<String> {
    let a = agent();
    let mut seen = Vec::new();
    let mut note = |what: &str, v: String| seen.push(format!("{what}: {v}"));
    let code = |ans: &Answer| {
        let j = ans.json();
        format!("{} {} {}", ans.status, j["janus"], j["error"]["code"])
    };

    let r = call(
        &a,
        "OPTIONS",
        base,
        None,
        &[
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
            ("Origin", "http://example.com"),
        ],
    )
    .expect("OPTIONS answered");
    note(
        "OPTIONS",
        format!("{} {:?} {:?}", r.status, r.cors(), r.body),
    );
    let r = call(&a, "GET", &format!("{base}/info"), None, &[]).unwrap();
    note("GET info", format!("{} {}", r.status, r.json()["janus"]));
    note("GET info cors", format!("{:?}", r.cors()));
    let r = call(&a, "POST", &format!("{base}/info"), Some("{}"), &[]).unwrap();
    note("POST info", r.status.to_string());
    for path in ["", "/", "/abc", "/0", "/1/2/3"] {
        let r = call(&a, "GET", &format!("{base}{path}"), None, &[]).unwrap();
        note(&format!("GET {path:?}"), r.status.to_string());
    }
    let r = call(&a, "PUT", base, None, &[]).unwrap();
    note("PUT", code(&r));
    let r = call(&a, "POST", base, Some("nope"), &[]).unwrap();
    note("POST nope", code(&r));
    let r = call(&a, "POST", base, Some("[1]"), &[]).unwrap();
    note("POST [1]", code(&r));
    let r = call(
        &a,
        "POST",
        &format!("{base}/5"),
        Some(r#"{"janus":"create"}"#),
        &[],
    )
    .unwrap();
    note(
        "POST /5 create",
        format!("{} {}", code(&r), r.json()["session_id"]),
    );
    let r = call(&a, "POST", base, None, &[]);
    note("POST empty", format!("{:?}", r.map(|r| r.status)));
    let r = call(
        &a,
        "POST",
        base,
        Some(r#"{"janus":"ping","transaction":"p"}"#),
        &[],
    )
    .unwrap();
    note("ping", r.json().to_string());
    let cors = r.cors();
    note("POST cors", format!("{cors:?}"));
    note("content type", format!("{:?}", r.header("content-type")));

    // a session: ids in the path only
    let r = call(
        &a,
        "POST",
        base,
        Some(r#"{"janus":"create","transaction":"c"}"#),
        &[],
    )
    .unwrap();
    let sid = r.json()["data"]["id"].as_u64().expect("session id");
    let s = format!("{base}/{sid}");
    let body = r#"{"janus":"attach","plugin":"janus.plugin.echotest","transaction":"a"}"#;
    let r = call(&a, "POST", &s, Some(body), &[]).unwrap();
    let hid = r.json()["data"]["id"].as_u64().expect("handle id");
    let h = format!("{s}/{hid}");
    let ids = |v: &Value| {
        v.to_string()
            .replace(&sid.to_string(), "SID")
            .replace(&hid.to_string(), "HID")
    };
    note("attach", ids(&r.json()));
    for t in ["m1", "m2"] {
        let body = format!(r#"{{"janus":"message","body":{{"audio":true}},"transaction":"{t}"}}"#);
        let r = call(&a, "POST", &h, Some(&body), &[]).unwrap();
        note(&format!("message {t}"), r.json()["janus"].to_string());
    }
    for _ in 0..2 {
        let r = call(&a, "GET", &s, None, &[]).unwrap();
        let ev = r.json();
        note(
            "poll",
            format!(
                "{} {} {} {}",
                r.status,
                ev["janus"],
                ev["transaction"],
                ids(&ev["sender"])
            ),
        );
    }
    let body = r#"{"janus":"message","body":{"audio":true},"transaction":"m3"}"#;
    call(&a, "POST", &h, Some(body), &[]).unwrap();
    let r = call(&a, "GET", &format!("{s}?maxev=3"), None, &[]).unwrap();
    let evs = r.json();
    note(
        "poll maxev=3",
        format!(
            "{} array of {:?}: {}",
            r.status,
            evs.as_array().map(Vec::len),
            evs[0]["transaction"]
        ),
    );
    let r = call(&a, "GET", &h, None, &[]).unwrap();
    note(
        "GET handle",
        format!(
            "{} {:?}",
            r.status,
            r.header("location")
                .map(|l| l.replace(&sid.to_string(), "SID"))
        ),
    );
    let r = call(
        &a,
        "POST",
        &s,
        Some(r#"{"janus":"keepalive","session_id":1,"transaction":"k"}"#),
        &[],
    )
    .unwrap();
    note("conflicting session", code(&r));
    let body = r#"{"janus":"message","handle_id":1,"body":{},"transaction":"x"}"#;
    let r = call(&a, "POST", &h, Some(body), &[]).unwrap();
    note("conflicting handle", code(&r));
    let body = format!(r#"{{"janus":"keepalive","session_id":{sid},"transaction":"k2"}}"#);
    let r = call(&a, "POST", &s, Some(&body), &[]).unwrap();
    note("same session", ids(&r.json()));
    let r = call(
        &a,
        "POST",
        &h,
        Some(r#"{"janus":"detach","transaction":"d"}"#),
        &[],
    )
    .unwrap();
    note("detach", ids(&r.json()));
    // Janus's EchoTest sometimes pushes a last `{"result":"done"}` on detach, before
    // `detached`, sometimes not (its hangup races the handle's teardown); the proxy never
    // relays it. What must match is the `detached`.
    let mut r = call(&a, "GET", &format!("{s}?maxev=1"), None, &[]).unwrap();
    if r.json()["janus"] == "event" && r.json()["plugindata"]["data"]["result"] == "done" {
        r = call(&a, "GET", &format!("{s}?maxev=1"), None, &[]).unwrap();
    }
    note("poll detached", ids(&r.json()));
    let r = call(
        &a,
        "POST",
        &s,
        Some(r#"{"janus":"destroy","transaction":"x"}"#),
        &[],
    )
    .unwrap();
    note("destroy", ids(&r.json()));
    let r = call(&a, "GET", &s, None, &[]).unwrap();
    note("poll destroyed", r.status.to_string());
    let r = call(
        &a,
        "POST",
        &s,
        Some(r#"{"janus":"keepalive","transaction":"k3"}"#),
        &[],
    )
    .unwrap();
    note("keepalive destroyed", code(&r));
    seen
}

#[test]
fn answers_as_janus_http_transport() {
    let janus = janus_with_http();
    let p = Proxy::start(ProxyConfig::new(janus.servers()).all_transports().set(
        "general",
        "session_timeout",
        "60",
    ));
    p.wait_echotest_ready(Duration::from_secs(10));
    let direct = scenario("http://127.0.0.1:19508/janus");
    let proxied = scenario(&p.url_over(Transport::Http));
    for (d, q) in direct.iter().zip(&proxied) {
        assert_eq!(d, q, "\nJanus:\n{direct:#?}\nproxy:\n{proxied:#?}");
    }
    assert_eq!(direct.len(), proxied.len());
}

/// A session moves between transports with `claim`: its events follow it.
fn claims(ws_url: &str, http_base: &str) -> Vec<String> {
    let a = agent();
    let mut seen = Vec::new();
    let r = call(
        &a,
        "POST",
        http_base,
        Some(r#"{"janus":"create","transaction":"c"}"#),
        &[],
    )
    .unwrap();
    let sid = r.json()["data"]["id"].as_u64().unwrap();
    let s = format!("{http_base}/{sid}");
    let body = r#"{"janus":"attach","plugin":"janus.plugin.echotest","transaction":"a"}"#;
    let hid = call(&a, "POST", &s, Some(body), &[]).unwrap().json()["data"]["id"]
        .as_u64()
        .unwrap();
    // claimed over a WebSocket: events go there, and the HTTP queue is gone
    let mut ws = Client::connect(ws_url);
    let r = ws.request(json!({"janus": "claim", "session_id": sid}));
    seen.push(format!("ws claim: {}", r["janus"]));
    let (ack, ev) = ws.request_async(
        json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"audio": true}}),
        REPLY_TIMEOUT,
    );
    seen.push(format!(
        "ws message: {} {}",
        ack["janus"], ev["plugindata"]["data"]["result"]
    ));
    let r = call(&a, "GET", &s, None, &[]).unwrap();
    seen.push(format!("http poll after ws claim: {}", r.status));
    // claimed back over HTTP
    let r = call(
        &a,
        "POST",
        &s,
        Some(r#"{"janus":"claim","transaction":"cl"}"#),
        &[],
    )
    .unwrap();
    seen.push(format!("http claim: {}", r.json()["janus"]));
    let body = r#"{"janus":"message","body":{"audio":true},"transaction":"m"}"#;
    let r = call(&a, "POST", &format!("{s}/{hid}"), Some(body), &[]).unwrap();
    seen.push(format!("http message: {}", r.json()["janus"]));
    let r = call(&a, "GET", &s, None, &[]).unwrap();
    seen.push(format!(
        "http poll: {} {}",
        r.json()["transaction"],
        r.json()["plugindata"]["data"]["result"]
    ));
    seen.push(format!(
        "ws quiet: {}",
        ws.try_recv(Duration::from_millis(300)).is_none()
    ));
    call(
        &a,
        "POST",
        &s,
        Some(r#"{"janus":"destroy","transaction":"d"}"#),
        &[],
    );
    seen
}

#[test]
fn claims_between_websocket_and_http_as_janus() {
    let janus = janus_with_http();
    let p = Proxy::start(ProxyConfig::new(janus.servers()).all_transports());
    p.wait_echotest_ready(Duration::from_secs(10));
    let direct = claims(&janus.ws_url(0), "http://127.0.0.1:19508/janus");
    let proxied = claims(&p.url(), &p.url_over(Transport::Http));
    assert_eq!(direct, proxied);
    assert_eq!(proxied[0], "ws claim: \"success\"", "{proxied:?}");
}

#[test]
fn a_waiting_poll_gets_the_timeout_event_and_a_silent_one_a_keepalive_after_30s() {
    let p = Proxy::start(ProxyConfig::without_backends().all_transports().set(
        "general",
        "session_timeout",
        "2",
    ));
    let base = p.url_over(Transport::Http);
    let a = agent();
    let r = call(
        &a,
        "POST",
        &base,
        Some(r#"{"janus":"create","transaction":"c"}"#),
        &[],
    )
    .unwrap();
    let sid = r.json()["data"]["id"].as_u64().unwrap();
    // the poll itself counts as activity, as in Janus: the session times out 2 s later
    let t0 = Instant::now();
    let r = call(&a, "GET", &format!("{base}/{sid}?maxev=2"), None, &[]).unwrap();
    assert_eq!(r.json(), json!([{"janus": "timeout", "session_id": sid}]));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let r = call(&a, "GET", &format!("{base}/{sid}"), None, &[]).unwrap();
    assert_eq!(r.status, 404);

    // a session nobody writes to: the poll ends with a keepalive after Janus's 30 s
    let p = Proxy::start(ProxyConfig::without_backends().all_transports());
    let base = p.url_over(Transport::Http);
    let r = call(
        &a,
        "POST",
        &base,
        Some(r#"{"janus":"create","transaction":"c"}"#),
        &[],
    )
    .unwrap();
    let sid = r.json()["data"]["id"].as_u64().unwrap();
    let t0 = Instant::now();
    let r = call(&a, "GET", &format!("{base}/{sid}"), None, &[]).unwrap();
    let waited = t0.elapsed();
    assert_eq!(r.json(), json!({"janus": "keepalive"}));
    assert!(
        (Duration::from_secs(29)..Duration::from_secs(33)).contains(&waited),
        "{waited:?}"
    );
}

#[test]
fn a_session_whose_events_are_never_polled_is_dropped_as_a_slow_reader() {
    let p = Proxy::start(ProxyConfig::without_backends().all_transports().set(
        "limits",
        "max_queued_bytes_per_connection",
        "65536",
    ));
    let base = p.url_over(Transport::Http);
    let a = agent();
    let r = call(
        &a,
        "POST",
        &base,
        Some(r#"{"janus":"create","transaction":"c"}"#),
        &[],
    )
    .unwrap();
    let sid = r.json()["data"]["id"].as_u64().unwrap();
    let s = format!("{base}/{sid}");
    let body = r#"{"janus":"attach","plugin":"janus.plugin.dummytest","transaction":"a"}"#;
    let hid = call(&a, "POST", &s, Some(body), &[]).unwrap().json()["data"]["id"]
        .as_u64()
        .unwrap();
    // dummytest answers `async` requests with an event carrying the JSEP: ~2 KiB events,
    // never polled, overflow the 64 KiB queue
    let big = "x".repeat(2000);
    let mut gone = false;
    for i in 0..200 {
        let body = json!({"janus": "message", "transaction": format!("m{i}"), "body": {"async": true}, "jsep": {"type": "offer", "sdp": big}}).to_string();
        let r = call(&a, "POST", &format!("{s}/{hid}"), Some(&body), &[]).unwrap();
        if r.json()["error"]["code"] == 458 || r.json()["error"]["code"] == 459 {
            gone = true;
            break;
        }
    }
    if !gone {
        // the sweep runs once a second
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !gone {
            let body = r#"{"janus":"keepalive","transaction":"k"}"#;
            gone = call(&a, "POST", &s, Some(body), &[]).unwrap().json()["error"]["code"] == 458;
        }
    }
    assert!(gone, "the session outlived its overflowing event queue");
    let metrics = call(
        &a,
        "GET",
        &format!("http://127.0.0.1:{}/metrics", p.admin_port),
        None,
        &[("Authorization", &format!("Bearer {TEST_ADMIN_SECRET}"))],
    )
    .unwrap()
    .body;
    assert!(
        metrics.contains("janus_proxy_client_disconnects_total{reason=\"slow_reader\"} 1"),
        "{metrics}"
    );
}

#[test]
fn api_secret_guards_long_polls() {
    let p = Proxy::start(ProxyConfig::without_backends().all_transports().set_str(
        "general",
        "api_secret",
        "s3cr3t",
    ));
    let base = p.url_over(Transport::Http);
    let a = agent();
    let body = r#"{"janus":"create","transaction":"c","apisecret":"s3cr3t"}"#;
    let sid = call(&a, "POST", &base, Some(body), &[]).unwrap().json()["data"]["id"]
        .as_u64()
        .unwrap();
    let r = call(&a, "GET", &format!("{base}/{sid}"), None, &[]).unwrap();
    assert_eq!(r.status, 403);
    let r = call(
        &a,
        "GET",
        &format!("{base}/{sid}?apisecret=wrong"),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 403);
    let body = r#"{"janus":"destroy","transaction":"d","apisecret":"s3cr3t"}"#;
    let r = call(&a, "POST", &format!("{base}/{sid}"), Some(body), &[]).unwrap();
    assert_eq!(r.json()["janus"], "success");
}

/// 100 echotest message round trips (request to its event) with a client at `url`;
/// prints mean, p50, p90 and max.
fn measure(what: &str, url: &str) {
    let mut c = Client::connect(url);
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.echotest");
    let mut times = Vec::new();
    for i in 0..100 {
        let t0 = Instant::now();
        let (ack, ev) = c.request_async(
            json!({"janus": "message", "session_id": sid, "handle_id": hid, "body": {"audio": true}, "transaction": format!("rt{i}")}),
            REPLY_TIMEOUT,
        );
        times.push(t0.elapsed());
        assert_eq!(ack["janus"], "ack");
        assert_eq!(ev["plugindata"]["data"]["result"], "ok", "{ev}");
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{what}: echotest message -> event, 100 round trips: mean {mean:?}, p50 {:?}, p90 {:?}, max {:?}",
        times[50], times[90], times[99]
    );
    let r = c.request(json!({"janus": "destroy", "session_id": sid}));
    assert_eq!(r["janus"], "success");
}

/// Round trips over each transport of the proxy and of Janus itself, printed:
/// `cargo test --test http_api round_trips -- --nocapture`.
#[test]
fn round_trips_over_each_transport() {
    let janus = janus_with_http();
    let p = Proxy::start(ProxyConfig::new(janus.servers()).all_transports());
    p.wait_echotest_ready(Duration::from_secs(10));
    measure("Janus WS", &janus.ws_url(0));
    measure("Janus HTTP", "http://127.0.0.1:19508/janus");
    for t in Transport::ALL {
        measure(&format!("proxy {t:?}"), &p.url_over(t));
    }
}

#[test]
fn http_sessions_are_bounded_proxy_wide() {
    let p = Proxy::start(ProxyConfig::without_backends().all_transports().set(
        "http_transport",
        "max_sessions",
        "2",
    ));
    let base = p.url_over(Transport::Http);
    let a = agent();
    let create = || {
        call(
            &a,
            "POST",
            &base,
            Some(r#"{"janus":"create","transaction":"c"}"#),
            &[],
        )
        .unwrap()
        .json()
    };
    let s1 = create()["data"]["id"].as_u64().unwrap();
    let s2 = create()["data"]["id"].as_u64().unwrap();
    let r = create();
    assert_eq!(r["error"]["code"], 472, "{r}");
    // a WebSocket claiming one frees its place
    let mut ws = p.client();
    let r = ws.request(json!({"janus": "claim", "session_id": s1}));
    assert_eq!(r["janus"], "success", "{r}");
    let s3 = create()["data"]["id"].as_u64().expect("a place again");
    // claiming it back over HTTP needs a place too
    let body = r#"{"janus":"claim","transaction":"cl"}"#;
    let r = call(&a, "POST", &format!("{base}/{s1}"), Some(body), &[])
        .unwrap()
        .json();
    assert_eq!(r["error"]["code"], 472, "{r}");
    let body = r#"{"janus":"destroy","transaction":"d"}"#;
    let r = call(&a, "POST", &format!("{base}/{s2}"), Some(body), &[])
        .unwrap()
        .json();
    assert_eq!(r["janus"], "success", "{r}");
    let body = r#"{"janus":"claim","transaction":"cl"}"#;
    let r = call(&a, "POST", &format!("{base}/{s1}"), Some(body), &[])
        .unwrap()
        .json();
    assert_eq!(r["janus"], "success", "{r}");
    let _ = s3;
}

/// Sends `bytes` on a fresh connection to `port` and reads until the server closes (or
/// `within` passes); returns what came back and whether it closed.
/// A connection that sent `GET /janus/info` (keep-alive) and read its whole answer.
fn answered_keep_alive(port: u16) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /janus/info HTTP/1.1\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("an answer");
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .expect("Content-Length");
        if body.len() >= length {
            return s;
        }
    }
}

fn raw(port: u16, bytes: &[u8], within: Duration) -> (String, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(bytes).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), true),
        }
    }
}

#[test]
fn hostile_http_requests_get_an_answer_and_a_close() {
    let p = Proxy::start(
        ProxyConfig::without_backends()
            .all_transports()
            .set("limits", "handshake_timeout", "1")
            .set("ws_transport", "max_message_size", "4096"),
    );
    let port = p.http_port.unwrap();
    let w = Duration::from_secs(5);
    // a head past 16 KiB
    let big = format!(
        "GET /janus/info HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let (r, closed) = raw(port, big.as_bytes(), w);
    assert!(r.starts_with("HTTP/1.1 431 ") && closed, "{r}");
    // a body over max_message_size, declared or chunked: refused before it is read
    let (r, closed) = raw(
        port,
        b"POST /janus HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
        w,
    );
    assert!(r.starts_with("HTTP/1.1 413 ") && closed, "{r}");
    let chunks = format!(
        "POST /janus HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n{}\r\n",
        "x".repeat(0x2000)
    );
    let (r, closed) = raw(port, chunks.as_bytes(), w);
    assert!(r.starts_with("HTTP/1.1 413 ") && closed, "{r}");
    // not HTTP
    let (r, closed) = raw(port, b"\x16\x03\x01\x02\x00hello\r\n\r\n", w);
    assert!(r.starts_with("HTTP/1.1 400 ") && closed, "{r}");
    // a head or a body that never finishes: cut after handshake_timeout
    let t0 = Instant::now();
    let (r, closed) = raw(port, b"POST /janus HTTP/1.1\r\nHost: x\r\n", w);
    assert!(closed && r.is_empty(), "{r}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let t0 = Instant::now();
    let (r, closed) = raw(
        port,
        b"POST /janus HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
        w,
    );
    assert!(r.starts_with("HTTP/1.1 408 ") && closed, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // JSON nested too deep: a Janus error, and the connection goes on
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let req = format!("POST /janus HTTP/1.1\r\nContent-Length: {}\r\n\r\n{deep}GET /janus/info HTTP/1.1\r\nConnection: close\r\n\r\n", deep.len());
    let (r, closed) = raw(port, req.as_bytes(), w);
    assert!(
        r.contains("\"code\": 454") && r.contains("server_info") && closed,
        "{r}"
    );
    // the proxy still serves everybody else
    let mut c = p.client_over(Transport::Http);
    assert_eq!(c.request(json!({"janus": "ping"}))["janus"], "pong");
}

#[test]
fn http_connections_count_against_the_connection_cap() {
    let p = Proxy::start(ProxyConfig::without_backends().all_transports().set(
        "limits",
        "max_connections",
        "2",
    ));
    let port = p.http_port.unwrap();
    // Two kept-alive connections, each answered once: both hold a slot for sure (a bare
    // connect may still wait in another shard's accept queue while a probe takes its
    // slot, and then be the one refused).
    let hold: Vec<std::net::TcpStream> = (0..2).map(|_| answered_keep_alive(port)).collect();
    let (r, _) = raw(
        port,
        b"GET /janus/info HTTP/1.1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    );
    assert!(r.starts_with("HTTP/1.1 503 "), "no 503 at the cap: {r}");
    drop(hold);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (r, _) = raw(
            port,
            b"GET /janus/info HTTP/1.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        );
        if r.starts_with("HTTP/1.1 200 ") {
            break;
        }
        assert!(Instant::now() < deadline, "slots not freed: {r}");
    }
}
