//! The prober and the statistics thread against a real Janus 1.1.2 started by the
//! backends script (not supervised by the sentinel).

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use common::{signal, JanusSet, Sentinel};
use janus_sentinel::janus_ws::JanusWs;

fn config(janus: &JanusSet, admin: bool) -> String {
    format!(
        r#"
[janus]
ws_port = {ws}
admin_ws_port = {admin}
admin_secret = "janusoverlord"
pingpong_interval = 1
statistic_interval = 1
request_timeout = 2
[admin_api]
http_listen = "{{REST}}"
"#,
        ws = janus.ws_port,
        admin = if admin { janus.admin_port } else { 0 },
    )
}

fn status(s: &Sentinel) -> Value {
    s.info()["janus_server"]["status"].clone()
}

#[test]
fn status_follows_janus() {
    let janus = JanusSet::start("sentinel-probe", 18389, 1, None);
    let s = Sentinel::start(&config(&janus, false));
    assert!(s.info().get("janus_watcher").is_none());
    let t = Instant::now();
    common::poll_until(Duration::from_secs(10), "status NORMAL", || {
        (status(&s) == 0).then_some(())
    });
    println!("sentinel start -> NORMAL: {:?}", t.elapsed());

    let killed = Instant::now();
    signal(janus.script_pid(), libc::SIGKILL);
    common::poll_until(Duration::from_secs(10), "status ABNORMAL", || {
        (status(&s) == 1).then_some(())
    });
    let detected = killed.elapsed();
    println!("kill -9 Janus -> ABNORMAL: {detected:?}");
    // one probe period (1 s) plus the probe itself
    assert!(
        detected < Duration::from_secs(4),
        "detection took {detected:?}"
    );
}

fn counts(s: &Sentinel) -> (i64, i64) {
    let i = s.info();
    let j = &i["janus_server"];
    (
        j["session_num"].as_i64().unwrap_or(-2),
        j["handle_num"].as_i64().unwrap_or(-2),
    )
}

fn req(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Returns the sentinel's output.
fn counts_follow_sessions_and_handles(janus: &JanusSet) -> String {
    let s = Sentinel::start(&config(janus, true));
    common::poll_until(Duration::from_secs(10), "counts 0/0", || {
        (counts(&s) == (0, 0)).then_some(())
    });

    let mut ws = JanusWs::connect(&janus.ws_url(), "janus-protocol", Duration::from_secs(5))
        .expect("connect");
    let r = ws.request(req(json!({"janus": "create"}))).expect("create");
    let session = r["data"]["id"].as_u64().expect("session id");
    let mut handles = Vec::new();
    for _ in 0..3 {
        let r = ws
            .request(req(json!({"janus": "attach", "session_id": session, "plugin": "janus.plugin.echotest"})))
            .expect("attach");
        handles.push(r["data"]["id"].as_u64().expect("handle id"));
    }
    let t = Instant::now();
    common::poll_until(Duration::from_secs(10), "counts 1/3", || {
        (counts(&s) == (1, 3)).then_some(())
    });
    println!("attach -> counts 1/3 seen: {:?}", t.elapsed());
    let load = s.info()["janus_server"]["load"].as_u64().expect("load");
    assert!((3..=104).contains(&load), "load {load}");

    ws.request(req(
        json!({"janus": "detach", "session_id": session, "handle_id": handles[0]}),
    ))
    .expect("detach");
    common::poll_until(Duration::from_secs(10), "counts 1/2", || {
        (counts(&s) == (1, 2)).then_some(())
    });
    ws.request(req(json!({"janus": "destroy", "session_id": session})))
        .expect("destroy");
    common::poll_until(Duration::from_secs(10), "counts 0/0", || {
        (counts(&s) == (0, 0)).then_some(())
    });
    ws.close();
    s.output()
}

#[test]
fn statistics_per_session() {
    let janus = JanusSet::start("sentinel-stats", 18391, 3, None);
    let out = counts_follow_sessions_and_handles(&janus);
    assert!(out.contains("no static event loops"), "{out}");
}

#[test]
fn statistics_with_static_event_loops() {
    let janus = JanusSet::start("sentinel-stats-loops", 18392, 4, Some(2));
    let out = counts_follow_sessions_and_handles(&janus);
    // loops_info answered: list_sessions + loops_info only, never list_handles
    assert!(!out.contains("no static event loops"), "{out}");
}

#[test]
fn wrong_admin_secret_gives_unknown_counts() {
    let janus = JanusSet::start("sentinel-stats-secret", 18393, 5, None);
    let s = Sentinel::start(&config(&janus, true).replace("janusoverlord", "wrong"));
    common::poll_until(Duration::from_secs(10), "status NORMAL", || {
        (status(&s) == 0).then_some(())
    });
    common::poll_until(Duration::from_secs(10), "a failed statistics round", || {
        s.output().contains("statistics from").then_some(())
    });
    assert_eq!(counts(&s), (-1, -1));
}
