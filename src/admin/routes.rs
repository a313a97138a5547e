//! The admin API routes (spec 02 §6.1) plus `GET /backend_servers/{name}`,
//! `GET /metrics` and `GET /health`: the route table (for CORS preflight) and the routes
//! the control thread serves ([`route`]: everything touching the server store). Access
//! rules are applied before, by the server; `/ping`, `/info`, `/health` and the
//! proxy-to-proxy plugin routes are answered on the HTTP thread (see `admin/mod.rs`).

use std::collections::BTreeMap;

use hyper::Method;

use super::http::{self, Reply};
use super::{now_s, AdminState};
use crate::store::record::parse_update;

/// The routes and their methods, for CORS preflight answers; plugin routes (under
/// `/plugins/`, each with its own methods) come on top.
const ROUTES: [(&str, &str); 9] = [
    ("/drain", "POST"),
    ("/plugins/", "GET,POST,DELETE"),
    ("/info", "GET"),
    ("/ping", "GET"),
    ("/metrics", "GET"),
    ("/health", "GET"),
    ("/sentinel_callback", "POST"),
    ("/backend_servers", "GET,POST"),
    ("/backend_servers/", "GET,DELETE"),
];

/// The methods of the route at `path`; `None` = no such route.
pub fn methods_of(path: &str) -> Option<&'static str> {
    ROUTES.iter().find_map(|(p, m)| {
        let hit = if p.ends_with('/') {
            path.starts_with(p) && path.len() > p.len()
        } else {
            path == *p
        };
        hit.then_some(*m)
    })
}

/// The CORS preflight answer (spec 02 §6).
pub fn preflight(path: &str, asked: Option<&str>) -> Reply {
    http::preflight(methods_of(path), path, asked)
}

fn conflict(name: &str, what: &str) -> Reply {
    Reply::error(
        409,
        "Conflict",
        format!(
            "{name} is a static server ([[janus_server]] in the configuration): \
             it cannot be {what} through the API"
        ),
    )
}

fn store_error(e: crate::store::StoreError) -> Reply {
    Reply::error(
        503,
        "StoreUnavailable",
        format!("server store unavailable: {e}"),
    )
}

/// Serves a request that passed the access rules, on the control thread.
pub fn route(
    state: &mut AdminState,
    method: &Method,
    path: &str,
    params: &BTreeMap<String, String>,
) -> Reply {
    match (method, path) {
        (&Method::GET, "/metrics") => Reply::text(
            "text/plain; version=0.0.4; charset=utf-8",
            super::metrics::render(&state.metrics, state.registry.entries()),
        ),
        (&Method::POST, "/sentinel_callback") | (&Method::POST, "/backend_servers") => {
            let mut update = match parse_update(params) {
                Ok(u) => u,
                Err(e) => return Reply::error(400, "ValidationError", e.to_string()),
            };
            // A static server keeps its URL and never expires; its status and counters
            // may still be posted (maintenance, a sentinel beside it).
            if let Some(url) = state.statics.get(&update.name) {
                if *url != update.url {
                    return conflict(&update.name, "re-pointed to another URL");
                }
                update.expire = Some(0);
            }
            match state.store.update(update, now_s()) {
                Ok(record) => {
                    state.applied(&record);
                    Reply::empty()
                }
                Err(e) => store_error(e),
            }
        }
        (&Method::GET, "/backend_servers") => match state.store.list() {
            Ok(list) => Reply::json(200, &list),
            Err(e) => store_error(e),
        },
        (m, p) if p.starts_with("/backend_servers/") && p.len() > "/backend_servers/".len() => {
            let name = &p["/backend_servers/".len()..];
            match *m {
                Method::GET => match state.store.list() {
                    Ok(list) => match list.into_iter().find(|r| r.name == name) {
                        Some(r) => Reply::json(200, &r),
                        None => {
                            Reply::error(404, "NotFound", format!("no backend server named {name}"))
                        }
                    },
                    Err(e) => store_error(e),
                },
                Method::DELETE if state.statics.contains_key(name) => conflict(name, "deleted"),
                Method::DELETE => match state.store.delete(name) {
                    Ok(()) => {
                        state.deleted(name);
                        Reply::empty()
                    }
                    Err(e) => store_error(e),
                },
                _ => http::not_found(m.as_str(), p),
            }
        }
        (m, p) => http::not_found(m.as_str(), p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::metrics::Metrics;
    use crate::backend::registry::Registry;
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;

    fn state() -> AdminState {
        AdminState {
            store: Box::new(MemoryStore::default()),
            registry: Registry::default(),
            peers: crate::core::host::Peers::new(Vec::new()),
            metrics: Arc::new(Metrics::default()),
            statics: [("static-0".to_string(), "ws://127.0.0.1:8188".to_string())].into(),
        }
    }

    fn p(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn register_list_get_delete() {
        let mut s = state();
        let body = p(&[
            ("name", "j1"),
            ("url", "ws://127.0.0.1:8188"),
            ("status", "0"),
        ]);
        assert_eq!(
            route(&mut s, &Method::POST, "/sentinel_callback", &body).status,
            200
        );
        assert!(s.registry.get("j1").is_some());
        let list = route(&mut s, &Method::GET, "/backend_servers", &p(&[]));
        let v: serde_json::Value = serde_json::from_str(&list.body).unwrap();
        assert_eq!(v[0]["name"], "j1");
        assert_eq!(v[0]["expire"], 60);
        assert_eq!(
            route(&mut s, &Method::GET, "/backend_servers/j1", &p(&[])).status,
            200
        );
        assert_eq!(
            route(&mut s, &Method::GET, "/backend_servers/nope", &p(&[])).status,
            404
        );
        assert_eq!(
            route(&mut s, &Method::DELETE, "/backend_servers/j1", &p(&[])).status,
            200
        );
        assert_eq!(
            route(&mut s, &Method::DELETE, "/backend_servers/j1", &p(&[])).status,
            200
        );
        assert!(s.registry.get("j1").is_none());
    }

    #[test]
    fn errors() {
        let mut s = state();
        let bad = route(
            &mut s,
            &Method::POST,
            "/backend_servers",
            &p(&[("name", "x")]),
        );
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("url"));
        assert_eq!(route(&mut s, &Method::GET, "/nope", &p(&[])).status, 404);
        assert_eq!(
            route(&mut s, &Method::PUT, "/backend_servers", &p(&[])).status,
            404
        );
    }

    #[test]
    fn static_servers_keep_their_url_and_stay() {
        let mut s = state();
        let same = p(&[
            ("name", "static-0"),
            ("url", "ws://127.0.0.1:8188"),
            ("status", "2"),
            ("expire", "30"),
        ]);
        assert_eq!(
            route(&mut s, &Method::POST, "/backend_servers", &same).status,
            200
        );
        let one = route(&mut s, &Method::GET, "/backend_servers/static-0", &p(&[]));
        let v: serde_json::Value = serde_json::from_str(&one.body).unwrap();
        assert_eq!(
            (v["status"].as_u64(), v["expire"].as_u64()),
            (Some(2), Some(0))
        );
        let moved = p(&[
            ("name", "static-0"),
            ("url", "ws://evil.example:8188"),
            ("status", "0"),
        ]);
        let r = route(&mut s, &Method::POST, "/sentinel_callback", &moved);
        assert_eq!(r.status, 409);
        let e: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(e["exception"], "Conflict");
        assert!(e["info"].as_str().unwrap_or("").contains("static-0"));
        let r = route(
            &mut s,
            &Method::DELETE,
            "/backend_servers/static-0",
            &p(&[]),
        );
        assert_eq!(r.status, 409);
        assert!(s.registry.get("static-0").is_some());
    }

    #[test]
    fn preflight_routes() {
        let r = preflight("/backend_servers", Some("POST"));
        assert_eq!(r.status, 200);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Access-Control-Allow-Methods" && v == "GET,POST"));
        assert_eq!(preflight("/backend_servers", Some("DELETE")).status, 401);
        assert_eq!(preflight("/backend_servers/x", Some("DELETE")).status, 200);
        assert_eq!(preflight("/zzz", None).status, 404);
        assert_eq!(preflight("/health", Some("GET")).status, 200);
    }
}
