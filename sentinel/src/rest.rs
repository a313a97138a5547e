//! The sentinel's REST interface (spec 03 §8) on `admin_api.http_listen` (default
//! `127.0.0.1:8200`), served on its own thread by janus-proxy's admin HTTP server
//! (`janus_cloud::admin::server`), with the same limits and access rules:
//!
//! | route | answer |
//! |---|---|
//! | `GET /sentinel/info` | `{"janus_server": {...}, "janus_watcher": {...}}` (watcher only when supervising) |
//! | `POST /sentinel/op` | `op` = `start_maintenance` / `stop_maintenance` / `restart_process`, as query, form or JSON; 200 empty |
//! | `GET /sentinel/posters` | `[{post_type, name, connected, post_urls, expire}]` |
//!
//! Same conventions as janus-proxy's admin API: JSON bodies indented by 4 spaces; every
//! route requires `Authorization: Bearer <admin_api.secret>` when a secret is set (401
//! otherwise); a `POST` without it must be JSON (415), so a cross-site form cannot
//! restart Janus; a browser page gets CORS headers, and is served at all, only when its
//! origin is in `admin_api.cors_origins` (403 otherwise); `OPTIONS` answers the CORS
//! preflight (401 when `Access-Control-Request-Method` is not a method of the route);
//! errors are `{"info", "exception"}` with 400 for bad input, 501 for `restart_process`
//! without supervision, 404 for an unknown route or method. This module owns only the
//! routes: it never blocks (an operation is a state change or a message to the
//! supervisor).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::Sender;
use serde_json::{json, Value};
use tracing::info;

use janus_cloud::admin::http::{self, Reply};
use janus_cloud::admin::server::{self, Method};

use crate::config::Poster;
use crate::load;
use crate::state::Shared;
use crate::status::Event;
use crate::supervisor::Command;

/// Routes and their methods (for 404s and CORS preflight).
const ROUTES: [(&str, &str); 3] = [
    ("/sentinel/info", "GET"),
    ("/sentinel/op", "POST"),
    ("/sentinel/posters", "GET"),
];

/// The route's methods, for CORS preflight.
fn methods_of(path: &str) -> Option<&'static str> {
    ROUTES.iter().find(|(p, _)| *p == path).map(|(_, m)| *m)
}

/// The CORS preflight answer for `path`.
pub fn preflight(path: &str, asked: Option<&str>) -> Reply {
    http::preflight(methods_of(path), path, asked)
}

/// Local date-time text "YYYY-MM-DD HH:MM:SS.ffffff".
pub fn local_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// What the routes work on.
pub struct Rest {
    pub shared: Arc<Shared>,
    /// `None` when not supervising.
    pub supervisor: Option<Sender<Command>>,
    pub posters: Vec<Poster>,
}

impl Rest {
    /// Dispatches one request (after the preflight check).
    pub fn route(&self, method: &Method, path: &str, params: &BTreeMap<String, String>) -> Reply {
        match (method, path) {
            (&Method::GET, "/sentinel/info") => Reply::json(200, &self.info()),
            (&Method::GET, "/sentinel/posters") => Reply::json(200, &self.posters()),
            (&Method::POST, "/sentinel/op") => self.op(params.get("op").map(|s| s.trim())),
            (m, p) => http::not_found(m.as_str(), p),
        }
    }

    fn op(&self, op: Option<&str>) -> Reply {
        let event = match op {
            Some("start_maintenance") => Event::StartMaintenance,
            Some("stop_maintenance") => Event::StopMaintenance,
            Some("restart_process") => {
                let Some(tx) = &self.supervisor else {
                    return Reply::error(501, "JanusCloudError", "janus_watcher not enable");
                };
                info!("REST: restart_process");
                return match tx.send(Command::Restart) {
                    Ok(()) => Reply::empty(),
                    Err(_) => Reply::error(503, "JanusCloudError", "the supervisor is stopping"),
                };
            }
            Some(other) => {
                return Reply::error(
                    400,
                    "ValidationError",
                    format!("op: {other:?} is not one of start_maintenance, stop_maintenance, restart_process"),
                )
            }
            None => return Reply::error(400, "ValidationError", "op: required"),
        };
        info!("REST: {event:?}");
        if let Some(s) = self.shared.apply(event) {
            info!("status -> {s:?} ({})", s.code());
        }
        Reply::empty()
    }

    fn info(&self) -> Value {
        let id = &self.shared.identity;
        let s = self.shared.snapshot();
        let started = s.watcher.as_ref().and_then(|w| w.started);
        let mut out = json!({
            "janus_server": {
                "server_name": id.name,
                "server_url": id.server_url,
                "server_public_url": id.public_url,
                "server_admin_url": id.admin_url,
                "status": s.status.code(),
                "session_num": s.session_num,
                "handle_num": s.handle_num,
                "cpu": s.cpu,
                "load": load::load(s.session_num, s.handle_num, s.cpu),
                "start_time": started.map(|(t, _)| local_time(t)),
            }
        });
        if let Some(w) = &s.watcher {
            out["janus_watcher"] = json!({
                "args": w.args,
                "process_status": u8::from(w.pid.is_some()),
                "pid": w.pid,
                "process_running_time": started.map_or(0.0, |(_, i)| i.elapsed().as_secs_f64()),
                "auto_restart_count": w.auto_restart_count,
                "last_exit_time": w.last_exit_time.map(local_time),
                "last_return_code": w.last_return_code,
            });
        }
        out
    }

    fn posters(&self) -> Value {
        let connected = self.shared.snapshot().posters_connected;
        Value::Array(
            self.posters
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({
                        "post_type": p.post_type,
                        "name": p.name,
                        "connected": connected.get(i).copied().unwrap_or(false),
                        "post_urls": p.post_urls,
                        "expire": p.expire,
                    })
                })
                .collect(),
        )
    }
}

impl server::Service for Rest {
    fn methods(&self, path: &str) -> Option<&'static str> {
        methods_of(path)
    }

    fn call(&self, req: server::Request) -> server::ReplyFuture {
        let reply = self.route(&req.method, &req.path, &req.params);
        Box::pin(async move { reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Identity;

    fn rest(supervised: bool) -> (Rest, Option<crossbeam_channel::Receiver<Command>>) {
        let shared = Arc::new(Shared::new(
            Identity {
                name: "j1".into(),
                server_url: "ws://127.0.0.1:8188".into(),
                public_url: "ws://10.1.1.1:8188".into(),
                admin_url: "ws://127.0.0.1:7188".into(),
                hwm_threshold: 0.0,
            },
            supervised.then(|| vec!["janus".to_owned()]),
            1,
        ));
        let (tx, rx) = crossbeam_channel::unbounded();
        let poster = Poster {
            name: "p".into(),
            post_urls: vec!["http://127.0.0.1:8100/sentinel_callback".into()],
            ..Poster::default()
        };
        let r = Rest {
            shared,
            supervisor: supervised.then_some(tx),
            posters: vec![poster],
        };
        (r, supervised.then_some(rx))
    }

    fn op(r: &Rest, op: &str) -> Reply {
        let p = BTreeMap::from([("op".to_string(), op.to_string())]);
        r.route(&Method::POST, "/sentinel/op", &p)
    }

    fn body(r: &Reply) -> Value {
        serde_json::from_str(&r.body).expect("json body")
    }

    #[test]
    fn info_and_posters() {
        let (r, _) = rest(false);
        let a = r.route(&Method::GET, "/sentinel/info", &BTreeMap::new());
        assert_eq!(a.status, 200);
        let v = body(&a);
        assert_eq!(v["janus_server"]["server_public_url"], "ws://10.1.1.1:8188");
        assert_eq!(v["janus_server"]["status"], 1);
        assert!(v.get("janus_watcher").is_none());
        assert!(a.body.contains("\n    \"janus_server\""));
        let v = body(&r.route(&Method::GET, "/sentinel/posters", &BTreeMap::new()));
        assert_eq!(v[0]["connected"], false);
        assert_eq!(v[0]["expire"], 60);
        let (r, _) = rest(true);
        let v = body(&r.route(&Method::GET, "/sentinel/info", &BTreeMap::new()));
        assert_eq!(v["janus_watcher"]["process_status"], 0);
        assert_eq!(v["janus_watcher"]["args"], json!(["janus"]));
    }

    #[test]
    fn ops() {
        let (r, rx) = rest(true);
        assert_eq!(op(&r, "start_maintenance").status, 200);
        assert_eq!(r.shared.snapshot().status.code(), 2);
        assert_eq!(op(&r, "stop_maintenance").status, 200);
        assert_eq!(r.shared.snapshot().status.code(), 1);
        assert_eq!(op(&r, "restart_process"), Reply::empty());
        assert_eq!(rx.and_then(|rx| rx.try_recv().ok()), Some(Command::Restart));
        let e = op(&r, "reboot");
        assert_eq!(
            (e.status, body(&e)["exception"].as_str()),
            (400, Some("ValidationError"))
        );
        let e = r.route(&Method::POST, "/sentinel/op", &BTreeMap::new());
        assert_eq!(e.status, 400);
        let (r, _) = rest(false);
        let e = op(&r, "restart_process");
        assert_eq!(
            (e.status, body(&e)["info"].as_str()),
            (501, Some("janus_watcher not enable"))
        );
    }

    #[test]
    fn unknown_routes_and_preflight() {
        let (r, _) = rest(false);
        let e = r.route(&Method::GET, "/sentinel/op", &BTreeMap::new());
        assert_eq!(e.status, 404);
        assert_eq!(
            body(&e)["info"],
            "Resource /sentinel/op not found or method GET not supported"
        );
        assert_eq!(preflight("/sentinel/op", Some("POST")).status, 200);
        assert_eq!(preflight("/sentinel/op", Some("GET")).status, 401);
        assert_eq!(preflight("/nope", None).status, 404);
        let p = preflight("/sentinel/info", None);
        assert!(p
            .headers
            .contains(&("Access-Control-Allow-Methods", "GET".to_string())));
    }

    #[test]
    fn local_time_format() {
        let s = local_time(SystemTime::now());
        assert_eq!(s.len(), "2024-01-01 00:00:00.000000".len(), "{s}");
    }
}
