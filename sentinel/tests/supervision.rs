//! The supervisor against a real Janus 1.1.2: start, restart after `kill -9`,
//! `restart_process`, and a clean stop (plus the ABNORMAL exit post) on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::{alive, http, janus_answers, poll_until, signal, JanusSet, RecordingStub, Sentinel};

fn supervised_config(janus: &JanusSet, extra: &str) -> String {
    format!(
        r#"
[log]
debug_level = "DEBUG"
[janus]
server_name = "sentinel-test"
ws_port = {ws}
pingpong_interval = 1
statistic_interval = 1
request_timeout = 2
[proc_watcher]
cmdline = "{cmd}"
error_restart_interval = 1
poll_interval = 1
[admin_api]
http_listen = "{{REST}}"
{extra}
"#,
        ws = janus.ws_port,
        cmd = janus.cmdline(),
    )
}

fn pid_of(s: &Sentinel) -> Option<u32> {
    s.info()["janus_watcher"]["pid"].as_u64().map(|p| p as u32)
}

#[test]
fn restarts_janus_after_kill_9_and_on_request() {
    let mut janus = JanusSet::start("sentinel-supervise", 18388, 0, None);
    janus.stop();
    let s = Sentinel::start(&supervised_config(&janus, ""));
    let url = janus.ws_url();

    let t0 = Instant::now();
    let pid = poll_until(Duration::from_secs(10), "a supervised Janus pid", || {
        pid_of(&s)
    });
    poll_until(Duration::from_secs(10), "Janus to answer", || {
        janus_answers(&url).then_some(())
    });
    println!("sentinel start -> Janus answering: {:?}", t0.elapsed());
    poll_until(Duration::from_secs(10), "status NORMAL", || {
        (s.info()["janus_server"]["status"] == 0).then_some(())
    });
    let info = s.info();
    assert_eq!(info["janus_watcher"]["process_status"], 1);
    assert_eq!(info["janus_watcher"]["auto_restart_count"], 0);
    assert!(info["janus_server"]["start_time"].is_string());

    // crash: kill -9
    let killed = Instant::now();
    signal(pid, libc::SIGKILL);
    let new_pid = poll_until(Duration::from_secs(15), "a new Janus pid", || {
        pid_of(&s).filter(|p| *p != pid)
    });
    let respawned = killed.elapsed();
    poll_until(
        Duration::from_secs(15),
        "the restarted Janus to answer",
        || janus_answers(&url).then_some(()),
    );
    let answering = killed.elapsed();
    println!("kill -9 -> new Janus process: {respawned:?}; -> answering ping: {answering:?}");
    let info = s.info();
    assert_eq!(info["janus_watcher"]["auto_restart_count"], 1);
    assert_eq!(info["janus_watcher"]["last_return_code"], -9);
    assert!(info["janus_watcher"]["last_exit_time"].is_string());
    // poll_interval 1 s + error_restart_interval 1 s, with slack for a loaded machine
    assert!(
        respawned < Duration::from_secs(6),
        "restart took {respawned:?}"
    );

    // restart on request: a new process, counter reset to 0
    let t = Instant::now();
    let (st, body) = http(
        "POST",
        &format!("{}/sentinel/op", s.rest),
        Some(("application/x-www-form-urlencoded", "op=restart_process")),
    )
    .expect("POST op");
    assert_eq!((st, body), (200, serde_json::Value::Null));
    let third = poll_until(
        Duration::from_secs(10),
        "Janus restarted on request",
        || pid_of(&s).filter(|p| *p != new_pid),
    );
    poll_until(Duration::from_secs(10), "Janus to answer again", || {
        janus_answers(&url).then_some(())
    });
    println!("restart_process -> answering: {:?}", t.elapsed());
    assert!(!alive(new_pid), "the old Janus is still running");
    assert!(alive(third));
    assert_eq!(s.info()["janus_watcher"]["auto_restart_count"], 0);
    // 0 after a clean SIGTERM exit; -9 if Janus hung while shutting down and got SIGKILL
    let code = s.info()["janus_watcher"]["last_return_code"].as_i64();
    assert!(matches!(code, Some(0 | -9)), "last_return_code {code:?}");

    // a sentinel killed hard takes its Janus along (parent-death signal)
    let mut s = s;
    signal(s.child.id(), libc::SIGKILL);
    s.wait_exit(Duration::from_secs(5));
    poll_until(
        Duration::from_secs(5),
        "Janus to die with its sentinel",
        || (!alive(third)).then_some(()),
    );
}

#[test]
fn sigterm_stops_janus_and_posts_abnormal_to_every_url() {
    let mut janus = JanusSet::start("sentinel-sigterm", 18390, 2, None);
    janus.stop();
    let stub = RecordingStub::start();
    let posters = format!(
        r#"
[[posters]]
name = "two proxies"
post_urls = ["{b}/a/sentinel_callback", "{b}/b/sentinel_callback"]
expire = 3
http_timeout = 2
"#,
        b = stub.base
    );
    let mut s = Sentinel::start(&supervised_config(&janus, &posters));
    let pid = poll_until(Duration::from_secs(10), "a supervised Janus pid", || {
        pid_of(&s)
    });

    // every URL gets the NORMAL status once Janus answers
    for path in ["/a/sentinel_callback", "/b/sentinel_callback"] {
        let r = poll_until(Duration::from_secs(15), "a NORMAL post", || {
            stub.at(path)
                .into_iter()
                .find(|r| r.form.get("status").map(String::as_str) == Some("0"))
        });
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.authorization, format!("Bearer {}", common::TEST_SECRET));
        assert_eq!(r.form["name"], "sentinel-test");
        assert_eq!(r.form["url"], format!("ws://127.0.0.1:{}", janus.ws_port));
        assert_eq!(r.form["expire"], "3");
        let start: f64 = r.form["start_time"].parse().expect("start_time");
        assert!(start > 1.6e9, "start_time {start}");
        assert!(
            !r.form.contains_key("session_num"),
            "no Admin API configured"
        );
    }
    // once two CPU samples of the Janus process exist, posts carry `load`
    let r = common::poll_until(Duration::from_secs(10), "a post with load", || {
        stub.at("/a/sentinel_callback")
            .into_iter()
            .rev()
            .find(|r| r.form.contains_key("load"))
    });
    assert!(
        r.form["load"].parse::<u64>().is_ok_and(|l| l <= 100),
        "{:?}",
        r.form
    );
    // periodic posts: expire 3 -> every second
    let n = stub.at("/a/sentinel_callback").len();
    poll_until(Duration::from_secs(5), "a periodic post", || {
        (stub.at("/a/sentinel_callback").len() > n).then_some(())
    });
    let (_, posters) = http("GET", &format!("{}/sentinel/posters", s.rest), None).expect("posters");
    assert_eq!(posters[0]["connected"], true);

    let t = Instant::now();
    signal(s.child.id(), libc::SIGTERM);
    let st = s.wait_exit(Duration::from_secs(15));
    println!("SIGTERM -> sentinel exited: {:?}", t.elapsed());
    assert!(st.success(), "exit status {st}");
    assert!(!alive(pid), "Janus pid {pid} survived the sentinel");
    for path in ["/a/sentinel_callback", "/b/sentinel_callback"] {
        let last = stub.at(path).pop().expect("posts");
        assert_eq!(
            last.form["status"], "1",
            "last post to {path} must be ABNORMAL"
        );
    }
    assert!(s.output().contains("posted status ABNORMAL on exit"));
}
