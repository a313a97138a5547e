//! Posting the server state to proxies (spec 03 §6), one thread per `[[posters]]` entry.
//!
//! Each round POSTs one JSON body (`application/json`, an object of string values, as the
//! proxy's CSRF rule requires of requests without the secret) with
//! `Authorization: Bearer <secret>` (the poster's `secret`, by default the cluster secret)
//! to **every** URL of the entry, in parallel (the original used them round-robin with fail-over, so only
//! one proxy heard from the sentinel; fan-out keeps every proxy's memory store fed without
//! one poster per proxy). A round happens every `min(60, expire / 3)` s, and at once when the
//! status or the counters change. When the sentinel stops, a last round posts status 1
//! (ABNORMAL), so proxies stop selecting the server before Janus goes down.
//!
//! Body fields: `name`, `url`, `status`, `start_time`, `expire`, then `session_num` and
//! `handle_num` when known (≥ 0), and `load` (see [`crate::load`]) when known.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use crate::config::Poster;
use crate::load;
use crate::state::{Shared, State, Wake};
use crate::status::Status;

/// Time between periodic posts: `min(60, expire / 3)` seconds.
pub fn period(expire: u64) -> Duration {
    Duration::from_secs_f64((expire as f64 / 3.0).min(60.0))
}

/// Epoch seconds of `t` (0 for `None` or a time before 1970).
pub fn epoch_secs(t: Option<SystemTime>) -> f64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The form fields of one post. `status` overrides the current status (the exit post).
pub fn form_fields(
    name: &str,
    url: &str,
    state: &State,
    expire: u64,
    status: Option<Status>,
) -> Vec<(&'static str, String)> {
    let status = status.unwrap_or(state.status);
    let started = state
        .watcher
        .as_ref()
        .and_then(|w| w.started)
        .map(|(t, _)| t);
    let mut f = vec![
        ("name", name.to_owned()),
        ("url", url.to_owned()),
        ("status", status.code().to_string()),
        ("start_time", format!("{:.6}", epoch_secs(started))),
        ("expire", expire.to_string()),
    ];
    if state.session_num >= 0 {
        f.push(("session_num", state.session_num.to_string()));
    }
    if state.handle_num >= 0 {
        f.push(("handle_num", state.handle_num.to_string()));
    }
    if let Some(l) = load::load(state.session_num, state.handle_num, state.cpu) {
        f.push(("load", l.to_string()));
    }
    f
}

/// The JSON object of `fields` (string values, as a form would carry them).
pub fn json_body(fields: &[(&str, String)]) -> String {
    let obj: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(obj).to_string()
}

/// Sends the JSON `body` to one URL, with the bearer `secret` when not empty; `Ok` only
/// for HTTP 200.
///
/// # Errors
/// Network error, timeout or a non-200 answer, as text for the log.
pub fn post_one(agent: &ureq::Agent, url: &str, body: &str, secret: &str) -> Result<(), String> {
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if !secret.is_empty() {
        req = req.header("Authorization", &format!("Bearer {secret}"));
    }
    let resp = req.send(body).map_err(|e| e.to_string())?;
    match resp.status().as_u16() {
        200 => Ok(()),
        code => {
            let text = resp.into_body().read_to_string().unwrap_or_default();
            Err(format!(
                "HTTP {code}: {}",
                text.chars().take(200).collect::<String>()
            ))
        }
    }
}

/// Posts `body` to every URL in parallel; the results are in URL order.
pub fn post_all(
    agent: &ureq::Agent,
    urls: &[String],
    body: &str,
    secret: &str,
) -> Vec<Result<(), String>> {
    std::thread::scope(|s| {
        let jobs: Vec<_> = urls
            .iter()
            .map(|u| s.spawn(move || post_one(agent, u, body, secret)))
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err("poster thread panicked".into()))
            })
            .collect()
    })
}

/// An HTTP client with `http_timeout` for the whole request, which reports non-2xx answers
/// as responses (so that their status and body can be logged).
pub fn agent(http_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(http_timeout))
        .http_status_as_error(false)
        // Shorter than the proxy's admin `header_timeout`: never reuse a connection the
        // proxy is closing as idle.
        .max_idle_age(Duration::from_secs(5))
        .build()
        .into()
}

/// One poster: posts until the sentinel stops, then posts ABNORMAL once.
pub fn run(shared: Arc<Shared>, index: usize, conf: Poster) {
    let agent = agent(Duration::from_secs(conf.http_timeout));
    let period = period(conf.expire);
    let name = shared.identity.name.clone();
    let url = shared.identity.public_url.clone();
    let label = if conf.name.is_empty() {
        format!("poster {index}")
    } else {
        conf.name.clone()
    };
    let round = |state: &State, status: Option<Status>| {
        let fields = form_fields(&name, &url, state, conf.expire, status);
        let body = json_body(&fields);
        let results = post_all(&agent, &conf.post_urls, &body, &conf.secret);
        for (u, r) in conf.post_urls.iter().zip(&results) {
            match r {
                Ok(()) => debug!("{label}: posted to {u}: {body}"),
                Err(e) => warn!("{label}: post to {u} failed: {e}"),
            }
        }
        results.iter().all(Result::is_ok)
    };
    let mut was_connected = None;
    loop {
        let state = shared.snapshot();
        if state.stopping {
            break;
        }
        let ok = round(&state, None);
        if was_connected != Some(ok) {
            info!(
                "{label}: {}",
                if ok {
                    "every proxy accepted the post"
                } else {
                    "some proxy did not accept the post"
                }
            );
            was_connected = Some(ok);
        }
        shared.update(|s| {
            if let Some(c) = s.posters_connected.get_mut(index) {
                *c = ok;
            }
            false
        });
        if shared.wait(period, Some(state.generation)) == Wake::Stopping {
            break;
        }
    }
    let ok = round(&shared.snapshot(), Some(Status::Abnormal));
    info!(
        "{label}: posted status ABNORMAL on exit ({})",
        if ok {
            "accepted"
        } else {
            "not accepted everywhere"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Watcher;

    fn state() -> State {
        State {
            status: Status::Normal,
            session_num: -1,
            handle_num: -1,
            cpu: None,
            watcher: None,
            posters_connected: vec![],
            generation: 0,
            stopping: false,
        }
    }

    #[test]
    fn period_is_a_third_of_expire_capped_at_60() {
        assert_eq!(period(60), Duration::from_secs(20));
        assert_eq!(period(3600), Duration::from_secs(60));
        assert_eq!(period(3), Duration::from_secs(1));
        assert_eq!(period(1), Duration::from_secs_f64(1.0 / 3.0));
    }

    #[test]
    fn fields_without_counts() {
        let f = form_fields("j1", "ws://10.0.0.1:8188", &state(), 60, None);
        let keys: Vec<_> = f.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["name", "url", "status", "start_time", "expire"]);
        assert_eq!(f[2].1, "0");
        assert_eq!(f[3].1, "0.000000");
    }

    #[test]
    fn fields_with_counts_start_time_and_exit_override() {
        let mut s = state();
        s.session_num = 2;
        s.handle_num = 7;
        s.cpu = Some(0.1);
        s.watcher = Some(Watcher {
            started: Some((
                UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
                std::time::Instant::now(),
            )),
            ..Watcher::default()
        });
        let f = form_fields("j1", "ws://h:1", &s, 30, Some(Status::Abnormal));
        let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("status"), Some("1"));
        assert_eq!(get("start_time"), Some("1700000000.500000"));
        assert_eq!(get("expire"), Some("30"));
        assert_eq!(get("session_num"), Some("2"));
        assert_eq!(get("handle_num"), Some("7"));
        assert_eq!(get("load"), Some("17")); // 7 + 0.2 + 10
    }

    #[test]
    fn body_is_a_json_object_of_strings() {
        let f = vec![
            ("name", "a \"b\"&c".to_owned()),
            ("url", "ws://h:1/x?y=1".to_owned()),
            ("status", "0".to_owned()),
        ];
        let v: serde_json::Value = serde_json::from_str(&json_body(&f)).expect("json");
        assert_eq!(v["name"], "a \"b\"&c");
        assert_eq!(v["url"], "ws://h:1/x?y=1");
        assert_eq!(v["status"], "0");
        let back = janus_cloud::admin::http::json_params(json_body(&f).as_bytes()).expect("params");
        assert_eq!(back["name"], "a \"b\"&c");
    }

    #[test]
    fn unreachable_url_is_an_error() {
        let a = agent(Duration::from_secs(2));
        let r = post_all(
            &a,
            &["http://127.0.0.1:1/sentinel_callback".to_owned()],
            "{}",
            "k",
        );
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
    }
}
