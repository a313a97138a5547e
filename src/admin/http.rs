//! admin/http: the HTTP rules shared by janus-proxy's admin API and janus-sentinel's REST
//! interface, as pure functions: replies and the JSON error body, the CORS preflight
//! answer, the access policy (cluster secret, allowed browser origins, the CSRF rule),
//! request parameters. (The configuration checks of an exposed listener are in
//! [`crate::config::access`].)
//!
//! Owns no socket and never does I/O: the server that applies these rules is
//! [`super::server`]. Every rule here must stay safe for hostile input: a request that
//! does not pass [`admit`] changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::config::access::SECRET_ENV;

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra headers (CORS preflight).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with an empty body: what `POST` and `DELETE` routes answer.
    pub fn empty() -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// A JSON body, indented with 4 spaces as the original's.
    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        let body = match value.serialize(&mut ser) {
            Ok(()) => String::from_utf8(out).unwrap_or_default(),
            Err(_) => "null".into(),
        };
        Reply {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    /// A raw JSON document we built ourselves.
    pub fn raw_json(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    pub fn text(content_type: &'static str, body: String) -> Reply {
        Reply {
            status: 200,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// The error body of the original: `{"info": ..., "exception": ...}` (without its
    /// Python traceback).
    pub fn error(status: u16, exception: &str, info: impl Into<String>) -> Reply {
        #[derive(Serialize)]
        struct E<'a> {
            info: String,
            exception: &'a str,
        }
        Reply::json(
            status,
            &E {
                info: info.into(),
                exception,
            },
        )
    }
}

/// The answer to an unknown route or method (the original's text).
pub fn not_found(method: &str, path: &str) -> Reply {
    Reply::error(
        404,
        "NotFound",
        format!("Resource {path} not found or method {method} not supported"),
    )
}

/// The CORS preflight answer (spec 02 §6) for a route accepting `methods` (comma list;
/// `None` = no such route): 401 when the asked method is not one of them. The
/// `Access-Control-Allow-Origin` header is added by the server, and only for an allowed
/// origin, so a preflight from any other page fails in the browser.
pub fn preflight(methods: Option<&str>, path: &str, asked: Option<&str>) -> Reply {
    let Some(methods) = methods else {
        return not_found("OPTIONS", path);
    };
    if let Some(m) = asked {
        if !methods.split(',').any(|x| x.eq_ignore_ascii_case(m.trim())) {
            return Reply::error(
                401,
                "Forbidden",
                format!("method {m} not allowed on {path}"),
            );
        }
    }
    let mut r = Reply::empty();
    r.headers = vec![
        ("Access-Control-Allow-Methods", methods.to_string()),
        (
            "Access-Control-Allow-Headers",
            "Origin, X-Requested-With, Content-Type, Accept, Authorization".to_string(),
        ),
        ("Access-Control-Max-Age", "86400".to_string()),
    ];
    r
}

/// Who may use an HTTP interface: the cluster secret and the browser origins allowed to
/// call it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Bearer token every route requires; `None` = none (loopback, or an explicit opt-out).
    pub secret: Option<String>,
    /// Origins (`scheme://host[:port]`) that get CORS headers and may call from a browser.
    pub cors_origins: Vec<String>,
}

impl Policy {
    /// From the configured secret ("" = none) and browser origins.
    pub fn new(secret: &str, cors_origins: &[String]) -> Policy {
        Policy {
            secret: (!secret.is_empty()).then(|| secret.to_string()),
            cors_origins: cors_origins.to_vec(),
        }
    }

    /// Whether a browser page of `origin` may call (exact, ASCII case-insensitive match).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.cors_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin.trim()))
    }

    /// Whether `authorization` carries the secret (always false without a secret).
    pub fn bearer_ok(&self, authorization: Option<&str>) -> bool {
        self.secret
            .as_deref()
            .is_some_and(|s| bearer_matches(authorization, s))
    }
}

/// What [`admit`] looks at in a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    pub method: &'a str,
    pub origin: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
}

/// The access rules, in order; `Err` is the refusal to send (nothing else happens):
///
/// 1. a request from a browser page (`Origin` header) whose origin is not configured:
///    403 — this also defeats DNS rebinding against a loopback listener;
/// 2. a secret is configured and `Authorization: Bearer <secret>` is missing or wrong: 401;
/// 3. a `POST` without the valid bearer must be `Content-Type: application/json`, which
///    no HTML form and no "simple" cross-site request can send: 415.
///
/// `OPTIONS` (the CORS preflight, which browsers send without credentials) is answered
/// before these rules and changes nothing.
///
/// # Errors
/// The refusal.
pub fn admit(policy: &Policy, seen: &Seen) -> Result<(), Reply> {
    if let Some(origin) = seen.origin {
        if !policy.origin_allowed(origin) {
            return Err(Reply::error(
                403,
                "Forbidden",
                format!("origin {origin} is not allowed (cors_origins)"),
            ));
        }
    }
    let bearer = policy.bearer_ok(seen.authorization);
    if policy.secret.is_some() && !bearer {
        return Err(Reply::error(
            401,
            "Unauthorized",
            "missing or wrong bearer token",
        ));
    }
    if seen.method.eq_ignore_ascii_case("POST") && !bearer && !is_json(seen.content_type) {
        return Err(Reply::error(
            415,
            "UnsupportedMediaType",
            "a POST without the bearer secret must be Content-Type: application/json",
        ));
    }
    Ok(())
}

/// Whether a `Content-Type` value is JSON: its media type (before any `;` parameter) is
/// exactly `application/json`. `text/plain; x=json` is not.
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Constant-time comparison of `Authorization: Bearer <token>` with the secret. The time
/// taken depends only on the length of what the client sent, never on the secret.
pub fn bearer_matches(header: Option<&str>, secret: &str) -> bool {
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    constant_time_eq(token.trim().as_bytes(), secret.as_bytes())
}

pub use crate::api::secret::constant_time_eq;

/// The request parameters: query string, overlaid by the body — a JSON object when the
/// content type is JSON (values become strings, as a form post would carry them), form
/// fields otherwise.
///
/// # Errors
/// A body that is not UTF-8 form data, or JSON that is not an object.
pub fn params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if let Some(q) = query {
        out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
    if is_json(content_type) {
        out.extend(json_params(body)?);
    } else {
        out.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(out)
}

/// A JSON object body as string parameters.
///
/// # Errors
/// Malformed JSON or not an object.
pub fn json_params(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let obj = v.as_object().ok_or("JSON body must be an object")?;
    Ok(obj
        .iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_become_strings() {
        let p =
            json_params(br#"{"name":"a","status":0,"start_time":1.5,"x":true,"n":null}"#).unwrap();
        assert_eq!(p["status"], "0");
        assert_eq!(p["start_time"], "1.5");
        assert_eq!(p["x"], "1");
        assert_eq!(p["n"], "");
        assert!(json_params(b"[1]").is_err());
        assert!(json_params(b"{bad").is_err());
    }

    #[test]
    fn params_overlay_query_with_body() {
        let p = params(Some("a=1&b=2"), Some("application/json"), br#"{"b":"3"}"#).unwrap();
        assert_eq!((p["a"].as_str(), p["b"].as_str()), ("1", "3"));
        let p = params(None, Some("application/x-www-form-urlencoded"), b"x=y+z").unwrap();
        assert_eq!(p["x"], "y z");
        // A form body that merely mentions json is not parsed as JSON.
        let p = params(None, Some("text/plain; charset=json"), b"k=v").unwrap();
        assert_eq!(p["k"], "v");
        assert!(params(None, Some("application/json"), b"[1]").is_err());
    }

    #[test]
    fn error_body_shape() {
        let r = Reply::error(400, "ValidationError", "invalid name");
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["info"], "invalid name");
        assert_eq!(v["exception"], "ValidationError");
        assert!(r.body.contains("\n    \"info\""));
    }

    #[test]
    fn bearer_is_exact() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cres"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cretX"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer "), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
        assert!(!bearer_matches(Some("s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer "), ""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abcabc", b"abc"));
    }

    #[test]
    fn json_media_type_only() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(!is_json(Some("text/plain; x=application/json")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(Some("application/jsonp")));
        assert!(!is_json(None));
    }

    fn seen<'a>(
        method: &'a str,
        origin: Option<&'a str>,
        auth: Option<&'a str>,
        ct: Option<&'a str>,
    ) -> Seen<'a> {
        Seen {
            method,
            origin,
            authorization: auth,
            content_type: ct,
        }
    }

    fn status(r: Result<(), Reply>) -> u16 {
        r.err().map_or(200, |r| r.status)
    }

    #[test]
    fn admission_rules() {
        let open = Policy::default();
        let form = Some("application/x-www-form-urlencoded");
        let json = Some("application/json");
        // Without a secret: GET passes, a form POST does not, a JSON POST does.
        assert_eq!(status(admit(&open, &seen("GET", None, None, None))), 200);
        assert_eq!(status(admit(&open, &seen("POST", None, None, form))), 415);
        assert_eq!(status(admit(&open, &seen("POST", None, None, None))), 415);
        assert_eq!(status(admit(&open, &seen("POST", None, None, json))), 200);
        assert_eq!(status(admit(&open, &seen("DELETE", None, None, None))), 200);
        // A page of another origin: refused whatever it sends.
        let evil = Some("http://evil.example");
        assert_eq!(status(admit(&open, &seen("POST", evil, None, json))), 403);
        assert_eq!(status(admit(&open, &seen("GET", evil, None, None))), 403);
        // With a secret: everything needs it; with it, forms are fine.
        let closed = Policy {
            secret: Some("k".into()),
            cors_origins: vec!["https://ops.example:8443".into()],
        };
        assert_eq!(status(admit(&closed, &seen("GET", None, None, None))), 401);
        let bad = Some("Bearer x");
        assert_eq!(status(admit(&closed, &seen("POST", None, bad, json))), 401);
        let good = Some("Bearer k");
        assert_eq!(status(admit(&closed, &seen("POST", None, good, form))), 200);
        let ops = Some("https://OPS.example:8443");
        assert_eq!(status(admit(&closed, &seen("POST", ops, good, json))), 200);
        assert_eq!(status(admit(&closed, &seen("POST", evil, good, json))), 403);
    }

    #[test]
    fn preflight_answers() {
        let r = preflight(Some("GET,POST"), "/x", Some("POST"));
        assert_eq!(r.status, 200);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Access-Control-Allow-Methods" && v == "GET,POST"));
        assert!(!r.headers.iter().any(|(k, _)| k.contains("Allow-Origin")));
        assert_eq!(preflight(Some("GET"), "/x", Some("DELETE")).status, 401);
        assert_eq!(preflight(None, "/x", None).status, 404);
    }
}
