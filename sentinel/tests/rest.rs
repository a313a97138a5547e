//! The REST interface over real HTTP (no Janus needed: the probe simply fails), the
//! posts a status change triggers, and start-up errors.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

use common::{http, http_full, poll_until, RecordingStub, Sentinel, TEST_SECRET};

fn config(stub: &RecordingStub) -> String {
    format!(
        r#"
[janus]
server_name = "rest-test"
# nothing listens here: the status stays ABNORMAL
ws_port = 1
public_ip = "192.0.2.10"
pingpong_interval = 1
request_timeout = 1
[admin_api]
http_listen = "{{REST}}"
cors_origins = ["http://ops.example:8080"]
[[posters]]
name = "stub"
post_urls = ["{b}/sentinel_callback"]
expire = 60
http_timeout = 2
"#,
        b = stub.base
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

fn status(s: &Sentinel) -> Value {
    s.info()["janus_server"]["status"].clone()
}

#[test]
fn routes_ops_errors_and_cors() {
    let stub = RecordingStub::start();
    let s = Sentinel::start(&config(&stub));
    let op = format!("{}/sentinel/op", s.rest);

    let info = s.info();
    let j = &info["janus_server"];
    assert_eq!(j["server_name"], "rest-test");
    assert_eq!(j["server_url"], "ws://127.0.0.1:1");
    assert_eq!(j["server_public_url"], "ws://192.0.2.10:1");
    assert_eq!(j["status"], 1);
    assert_eq!(
        (j["session_num"].as_i64(), j["handle_num"].as_i64()),
        (Some(-1), Some(-1))
    );
    assert!(info.get("janus_watcher").is_none());

    // the first post registers ABNORMAL with the public URL
    let first = poll_until(Duration::from_secs(10), "a first post", || {
        stub.at("/sentinel_callback").first().cloned()
    });
    assert_eq!(first.form["status"], "1");
    assert_eq!(first.form["url"], "ws://192.0.2.10:1");
    assert_eq!(first.form["start_time"], "0.000000");
    // posted as JSON with the cluster secret, as the proxy's access rules want
    assert_eq!(first.content_type, "application/json");
    assert_eq!(first.authorization, format!("Bearer {TEST_SECRET}"));
    let (_, posters) = http("GET", &format!("{}/sentinel/posters", s.rest), None).expect("posters");
    assert_eq!(posters[0]["post_type"], "http");
    assert_eq!(posters[0]["name"], "stub");
    assert_eq!(posters[0]["expire"], 60);
    poll_until(Duration::from_secs(5), "connected", || {
        let (_, p) = http("GET", &format!("{}/sentinel/posters", s.rest), None).ok()?;
        (p[0]["connected"] == true).then_some(())
    });

    // maintenance as a form: status 2, posted at once (the period is 20 s)
    assert_eq!(
        http("POST", &op, Some((FORM, "op=start_maintenance"))),
        Ok((200, Value::Null))
    );
    assert_eq!(status(&s), 2);
    poll_until(Duration::from_secs(5), "a MAINTENANCE post", || {
        stub.at("/sentinel_callback")
            .into_iter()
            .find(|r| r.form["status"] == "2")
    });
    // probes do not change it
    let n = stub.at("/sentinel_callback").len();
    assert_eq!(status(&s), 2);
    // leaving maintenance as JSON: ABNORMAL until the next probe decides
    assert_eq!(
        http(
            "POST",
            &op,
            Some(("application/json", r#"{"op": "stop_maintenance"}"#))
        ),
        Ok((200, Value::Null))
    );
    assert_eq!(status(&s), 1);
    poll_until(Duration::from_secs(5), "an ABNORMAL post", || {
        stub.at("/sentinel_callback")
            .into_iter()
            .skip(n)
            .find(|r| r.form["status"] == "1")
    });
    // query string works too
    assert_eq!(
        http("POST", &format!("{op}?op=start_maintenance"), None),
        Ok((200, Value::Null))
    );
    assert_eq!(status(&s), 2);

    // errors
    let (st, e) = http("POST", &op, Some((FORM, "op=restart_process"))).expect("501");
    assert_eq!(
        (st, e["info"].as_str()),
        (501, Some("janus_watcher not enable"))
    );
    let (st, e) = http("POST", &op, Some((FORM, "op=reboot"))).expect("400");
    assert_eq!(
        (st, e["exception"].as_str()),
        (400, Some("ValidationError"))
    );
    let (st, _) = http("POST", &op, None).expect("400 no op");
    assert_eq!(st, 400);
    let (st, _) = http("POST", &op, Some(("application/json", "{not json"))).expect("400 json");
    assert_eq!(st, 400);
    let (st, e) = http("GET", &op, None).expect("404");
    assert_eq!(st, 404);
    assert_eq!(
        e["info"],
        "Resource /sentinel/op not found or method GET not supported"
    );
    let (st, _) = http("GET", &format!("{}/nope", s.rest), None).expect("404");
    assert_eq!(st, 404);

    // CORS: only for the configured origin
    let (st, h, _) =
        http_full("GET", &format!("{}/sentinel/info", s.rest), None, &[]).expect("GET");
    assert_eq!(
        (st, h.get("access-control-allow-origin").map(String::as_str)),
        (200, None)
    );
    assert_eq!(
        h.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let ops = "http://ops.example:8080";
    let (st, h, _) = http_full(
        "GET",
        &format!("{}/sentinel/info", s.rest),
        None,
        &[("Origin", ops)],
    )
    .expect("GET");
    assert_eq!(
        (st, h.get("access-control-allow-origin").map(String::as_str)),
        (200, Some(ops))
    );
    let (st, h, _) = http_full(
        "GET",
        &format!("{}/sentinel/info", s.rest),
        None,
        &[("Origin", "http://evil.example")],
    )
    .expect("GET");
    assert_eq!(
        (st, h.get("access-control-allow-origin").map(String::as_str)),
        (403, None)
    );
    let (st, h, _) = http_full(
        "OPTIONS",
        &op,
        None,
        &[("Access-Control-Request-Method", "POST"), ("Origin", ops)],
    )
    .expect("OPTIONS");
    assert_eq!(st, 200);
    assert_eq!(
        h.get("access-control-allow-methods").map(String::as_str),
        Some("POST")
    );
    assert_eq!(
        h.get("access-control-allow-origin").map(String::as_str),
        Some(ops)
    );
    assert_eq!(
        h.get("access-control-max-age").map(String::as_str),
        Some("86400")
    );
    assert!(h.contains_key("access-control-allow-headers"));
    let (st, h, _) = http_full(
        "OPTIONS",
        &op,
        None,
        &[("Access-Control-Request-Method", "DELETE")],
    )
    .expect("OPTIONS");
    assert_eq!(st, 401);
    assert_eq!(h.get("access-control-allow-origin"), None);
}

#[test]
fn every_route_needs_the_secret_and_forms_need_it_too() {
    let stub = RecordingStub::start();
    let s = Sentinel::start(&config(&stub));
    let op = format!("{}/sentinel/op", s.rest);
    for path in ["/sentinel/info", "/sentinel/posters"] {
        let url = format!("{}{path}", s.rest);
        for auth in ["", "Bearer wrong", "Basic xyz"] {
            let (st, _, body) =
                http_full("GET", &url, None, &[("Authorization", auth)]).expect("GET");
            assert_eq!(st, 401, "{path} with {auth:?}: {body}");
        }
    }
    // A cross-site form (no secret, foreign origin) cannot start maintenance or restart.
    let (st, _, _) = http_full(
        "POST",
        &op,
        Some((FORM, "op=start_maintenance")),
        &[("Authorization", ""), ("Origin", "http://evil.example")],
    )
    .expect("POST");
    assert_eq!(st, 403);
    let (st, _, _) = http_full(
        "POST",
        &op,
        Some((FORM, "op=restart_process")),
        &[("Authorization", "")],
    )
    .expect("POST");
    assert_eq!(st, 401);
    let (st, _, _) = http_full(
        "POST",
        &format!("{op}?op=start_maintenance"),
        None,
        &[("Authorization", "Bearer nope")],
    )
    .expect("POST");
    assert_eq!(st, 401);
    assert_eq!(status(&s), 1, "a refused request changed the status");
}

#[test]
fn without_a_secret_only_json_posts_are_served() {
    // Loopback and no secret anywhere: allowed, but a form or a body-less POST is refused.
    let s = Sentinel::spawn_with_secret(
        "[admin_api]\nhttp_listen = \"{REST}\"\n[janus]\nws_port = 1\nrequest_timeout = 1\n",
        None,
    );
    let info = format!("{}/sentinel/info", s.rest);
    poll_until(Duration::from_secs(10), "the REST interface", || {
        http_full("GET", &info, None, &[("Authorization", "")]).ok()
    });
    let op = format!("{}/sentinel/op", s.rest);
    let none = [("Authorization", "")];
    let (st, _, _) =
        http_full("POST", &op, Some((FORM, "op=start_maintenance")), &none).expect("form");
    assert_eq!(st, 415);
    let (st, _, _) =
        http_full("POST", &format!("{op}?op=start_maintenance"), None, &none).expect("query");
    assert_eq!(st, 415);
    let (st, _, _) = http_full(
        "POST",
        &op,
        Some(("application/json", r#"{"op":"start_maintenance"}"#)),
        &none,
    )
    .expect("json");
    assert_eq!(st, 200);
    let (_, _, body) = http_full("GET", &info, None, &none).expect("info");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["janus_server"]["status"], 2);
    poll_until(Duration::from_secs(5), "the no-secret warning", || {
        s.output().contains("no secret").then_some(())
    });
}

#[test]
fn startup_errors_exit_non_zero() {
    let bad = Sentinel::spawn("[janus]\nws_port = 0\n");
    let mut bad = bad;
    let st = bad.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(2));
    assert!(bad.output().contains("janus.ws_port"), "{}", bad.output());

    let mut s = Sentinel::spawn(
        "[admin_api]\nhttp_listen = \"{REST}\"\n[proc_watcher]\ncmdline = \"/nonexistent/janus -F x\"\n",
    );
    let st = s.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(1));
    assert!(s.output().contains("cannot start Janus"), "{}", s.output());

    let mut s = Sentinel::spawn_with_secret("[admin_api]\nhttp_listen = \"0.0.0.0:1\"\n", None);
    let st = s.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(2));
    assert!(
        s.output().contains("admin_api.http_listen") && s.output().contains("secret"),
        "{}",
        s.output()
    );

    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let mut s = Sentinel::spawn(&format!("[admin_api]\nhttp_listen = \"{addr}\"\n"));
    let st = s.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(1));
    assert!(s.output().contains("cannot listen"), "{}", s.output());
}
