//! HTTP plumbing of the admin API on top of tiny_http: request parameters (query string,
//! form body, JSON body), responses with the CORS headers every answer carries, and the
//! JSON error body.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

/// Largest request body accepted.
const MAX_BODY: u64 = 1024 * 1024;

/// An answer before it becomes a tiny_http response.
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
/// `None` = no such route): 401 when the asked method is not one of them.
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

/// Reads the request parameters: query string, overlaid by a form body, overlaid by a
/// JSON object body when the content type says JSON (values become strings, as a form
/// post would carry them).
///
/// # Errors
/// A body too large, not UTF-8, or JSON that is not an object.
pub fn params(req: &mut tiny_http::Request) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if let Some((_, q)) = req.url().split_once('?') {
        out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let content_type = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_ascii_lowercase())
        .unwrap_or_default();
    let mut body = Vec::new();
    req.as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("cannot read body: {e}"))?;
    if body.len() as u64 > MAX_BODY {
        return Err(format!("body larger than {MAX_BODY} bytes"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
    if content_type.contains("json") {
        out.extend(json_params(&body)?);
    } else {
        out.extend(form_urlencoded::parse(&body).into_owned());
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

/// Sends `reply`, adding the headers every answer carries.
pub fn respond(req: tiny_http::Request, reply: Reply) {
    let mut r = tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
    let mut headers = vec![
        ("Content-Type", reply.content_type.to_string()),
        ("Access-Control-Allow-Origin", "*".to_string()),
    ];
    headers.extend(reply.headers);
    for (k, v) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            r.add_header(h);
        }
    }
    let _ = req.respond(r);
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
    fn error_body_shape() {
        let r = Reply::error(400, "ValidationError", "invalid name");
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["info"], "invalid name");
        assert_eq!(v["exception"], "ValidationError");
        assert!(r.body.contains("\n    \"info\""));
    }
}
