//! The admin API routes (spec 02 §6.1) plus `GET /backend_servers/{name}` and
//! `GET /metrics`, and the optional bearer-token check (`admin_api.secret`).

use std::collections::BTreeMap;

use tiny_http::Method;

use super::http::{self, Reply};
use super::{now_s, AdminState};
use crate::store::record::parse_update;

/// The routes and their methods, for CORS preflight answers.
const ROUTES: [(&str, &str); 9] = [
    ("/plugins/videocall/", "POST"),
    ("/plugins/p2pcall/", "POST"),
    ("/info", "GET"),
    ("/ping", "GET"),
    ("/metrics", "GET"),
    ("/sentinel_callback", "POST"),
    ("/backend_servers", "GET,POST"),
    ("/backend_servers/", "GET,DELETE"),
    ("", ""),
];

fn methods_of(path: &str) -> Option<&'static str> {
    ROUTES.iter().find_map(|(p, m)| {
        let hit = if p.ends_with('/') {
            path.starts_with(p) && path.len() > p.len()
        } else {
            !p.is_empty() && path == *p
        };
        hit.then_some(*m)
    })
}

/// Serves one request.
pub fn handle(state: &mut AdminState, mut req: tiny_http::Request) {
    let method = req.method().clone();
    let path = req.url().split('?').next().unwrap_or("/").to_string();
    if method == Method::Options {
        let asked = header(&req, "Access-Control-Request-Method");
        return http::respond(req, preflight(&path, asked.as_deref()));
    }
    if let Some(secret) = &state.secret {
        let token = header(&req, "Authorization");
        if !bearer_matches(token.as_deref(), secret) {
            return http::respond(
                req,
                Reply::error(401, "Unauthorized", "missing or wrong bearer token"),
            );
        }
    }
    let params = match http::params(&mut req) {
        Ok(p) => p,
        Err(e) => return http::respond(req, Reply::error(400, "ValidationError", e)),
    };
    let reply = route(state, &method, &path, &params);
    http::respond(req, reply);
}

fn header(req: &tiny_http::Request, name: &'static str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

/// Constant-time comparison of `Authorization: Bearer <token>` with the secret.
pub fn bearer_matches(header: Option<&str>, secret: &str) -> bool {
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (token.trim().as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CORS preflight answer (spec 02 §6).
pub fn preflight(path: &str, asked: Option<&str>) -> Reply {
    http::preflight(methods_of(path), path, asked)
}

fn store_error(e: crate::store::StoreError) -> Reply {
    Reply::error(
        503,
        "StoreUnavailable",
        format!("server store unavailable: {e}"),
    )
}

/// Dispatches a request that passed authentication.
pub fn route(
    state: &mut AdminState,
    method: &Method,
    path: &str,
    params: &BTreeMap<String, String>,
) -> Reply {
    match (method, path) {
        (Method::Get, "/info") => Reply::raw_json(state.info_json.clone()),
        (Method::Get, "/ping") => Reply::json(200, &"pong"),
        (Method::Get, "/metrics") => Reply::text(
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render(state.registry.entries()),
        ),
        (Method::Post, "/sentinel_callback") | (Method::Post, "/backend_servers") => {
            let update = match parse_update(params) {
                Ok(u) => u,
                Err(e) => return Reply::error(400, "ValidationError", e.to_string()),
            };
            match state.store.update(update, now_s()) {
                Ok(record) => {
                    state.applied(&record);
                    Reply::empty()
                }
                Err(e) => store_error(e),
            }
        }
        (Method::Get, "/backend_servers") => match state.store.list() {
            Ok(list) => Reply::json(200, &list),
            Err(e) => store_error(e),
        },
        (m, p) if p.starts_with("/backend_servers/") && p.len() > "/backend_servers/".len() => {
            let name = &p["/backend_servers/".len()..];
            match m {
                Method::Get => match state.store.list() {
                    Ok(list) => match list.into_iter().find(|r| r.name == name) {
                        Some(r) => Reply::json(200, &r),
                        None => {
                            Reply::error(404, "NotFound", format!("no backend server named {name}"))
                        }
                    },
                    Err(e) => store_error(e),
                },
                Method::Delete => match state.store.delete(name) {
                    Ok(()) => {
                        state.deleted(name);
                        Reply::empty()
                    }
                    Err(e) => store_error(e),
                },
                _ => http::not_found(m.as_str(), p),
            }
        }
        (Method::Post, p)
            if p.starts_with("/plugins/videocall/")
                && state.plugins.iter().any(|x| x == "videocall") =>
        {
            super::plugin_routes::videocall_incoming(state, p, params)
        }
        (Method::Post, p)
            if p.starts_with("/plugins/p2pcall/")
                && state.plugins.iter().any(|x| x == "p2pcall") =>
        {
            super::plugin_routes::p2pcall_relay(state, p, params)
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
            peers: Arc::new(Vec::new()),
            metrics: Arc::new(Metrics::default()),
            info_json: "{}".into(),
            secret: None,
            plugins: Vec::new(),
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
            route(&mut s, &Method::Post, "/sentinel_callback", &body).status,
            200
        );
        assert!(s.registry.get("j1").is_some());
        let list = route(&mut s, &Method::Get, "/backend_servers", &p(&[]));
        let v: serde_json::Value = serde_json::from_str(&list.body).unwrap();
        assert_eq!(v[0]["name"], "j1");
        assert_eq!(v[0]["expire"], 60);
        assert_eq!(
            route(&mut s, &Method::Get, "/backend_servers/j1", &p(&[])).status,
            200
        );
        assert_eq!(
            route(&mut s, &Method::Get, "/backend_servers/nope", &p(&[])).status,
            404
        );
        assert_eq!(
            route(&mut s, &Method::Delete, "/backend_servers/j1", &p(&[])).status,
            200
        );
        assert_eq!(
            route(&mut s, &Method::Delete, "/backend_servers/j1", &p(&[])).status,
            200
        );
        assert!(s.registry.get("j1").is_none());
    }

    #[test]
    fn errors() {
        let mut s = state();
        let bad = route(
            &mut s,
            &Method::Post,
            "/backend_servers",
            &p(&[("name", "x")]),
        );
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("url"));
        assert_eq!(route(&mut s, &Method::Get, "/nope", &p(&[])).status, 404);
        assert_eq!(
            route(&mut s, &Method::Put, "/backend_servers", &p(&[])).status,
            404
        );
    }

    #[test]
    fn preflight_and_auth() {
        let r = preflight("/backend_servers", Some("POST"));
        assert_eq!(r.status, 200);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Access-Control-Allow-Methods" && v == "GET,POST"));
        assert_eq!(preflight("/backend_servers", Some("DELETE")).status, 401);
        assert_eq!(preflight("/backend_servers/x", Some("DELETE")).status, 200);
        assert_eq!(preflight("/zzz", None).status, 404);
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cres"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
        assert!(!bearer_matches(Some("s3cret"), "s3cret"));
    }
}
