//! HTTP/1.1 for the client listener of Janus's REST API (`[http_transport]`), as pure
//! functions over bytes: request heads (httparse) with bounded size, responses, the CORS
//! headers Janus's HTTP transport sends, and the static files served beside the API.
//!
//! Knows no Janus session: a request under `/janus` is handed whole to the handler as an
//! [`ApiRequest`], and the handler's [`ApiResponse`] is written back. Never blocks: static
//! files are read into memory once, at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Largest request head accepted (request line and headers); browsers send a few KiB.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most headers read from one request.
const MAX_HEADERS: usize = 64;

/// Base path of the Janus API, as in Janus's HTTP transport.
pub const API_PATH: &str = "/janus";

/// A request under [`API_PATH`], for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// As sent (`GET`, `POST`, anything else).
    pub method: String,
    /// The path after `/janus`: `""`, `"/123"`, `"/123/456"`, ... (not decoded).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub body: Vec<u8>,
}

/// What the handler answers to an [`ApiRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiResponse {
    /// 200 with a JSON body (re-formatted with `ws_transport.json`; may be empty, as Janus
    /// answers a request that took too long).
    Json(Vec<u8>),
    /// A status with an empty body (`404`, `400`, `403`).
    Empty(u16),
    /// `302 Found` to this location.
    Redirect(String),
    /// Close the connection without an answer (Janus does it for a POST without body).
    Close,
}

/// What the head of a request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: String,
    pub content_length: usize,
    /// The body comes in chunks (`Transfer-Encoding: chunked`), see [`decode_chunked`].
    pub chunked: bool,
    /// The client may send another request on this connection.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before its body.
    pub expect_continue: bool,
    /// `Origin`, `Access-Control-Request-Method`, `Access-Control-Request-Headers`.
    pub origin: Option<String>,
    pub acrm: Option<String>,
    pub acrh: Option<String>,
}

/// Why a request cannot be served; the connection is answered with the status and closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("unsupported Transfer-Encoding")]
    Encoding,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge(_) => 413,
            HttpError::Encoding => 501,
        }
    }
}

fn header_str(v: &[u8]) -> Option<String> {
    // Printable ASCII only: whatever is echoed back can never split a header.
    let s = std::str::from_utf8(v).ok()?.trim();
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
        .then(|| s.to_string())
}

/// Parses a request head. `Ok(None)` = incomplete, read more. On success also returns the
/// length of the head (the body follows).
///
/// # Errors
/// Not HTTP/1.x, too large, a bad or too large `Content-Length` (over `max_body`), or a
/// chunked body.
pub fn parse_head(buf: &[u8], max_body: usize) -> Result<Option<(usize, Head)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    if n > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    if !path.starts_with('/') {
        return Err(HttpError::Malformed("request target must be a path".into()));
    }
    let mut keep_alive = req.version == Some(1);
    let mut head = Head {
        method,
        path,
        query,
        content_length: 0,
        chunked: false,
        keep_alive,
        expect_continue: false,
        origin: None,
        acrm: None,
        acrh: None,
    };
    let mut length_seen = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| HttpError::Malformed("bad Content-Length".into()))?;
            if length_seen && len != head.content_length as u64 {
                return Err(HttpError::Malformed("conflicting Content-Length".into()));
            }
            length_seen = true;
            if len > max_body as u64 {
                return Err(HttpError::BodyTooLarge(max_body));
            }
            head.content_length = len as usize;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).trim().to_ascii_lowercase();
            if v != "chunked" {
                return Err(HttpError::Encoding);
            }
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                keep_alive = false;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("origin") {
            head.origin = header_str(h.value);
        } else if name.eq_ignore_ascii_case("access-control-request-method") {
            head.acrm = header_str(h.value);
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            head.acrh = header_str(h.value);
        }
    }
    if head.chunked && length_seen {
        return Err(HttpError::Malformed(
            "both Content-Length and Transfer-Encoding".into(),
        ));
    }
    head.keep_alive = keep_alive;
    Ok(Some((n, head)))
}

/// Longest chunk-size or trailer line accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// Decodes a chunked body from the start of `buf`. `Ok(None)` = incomplete, read more; on
/// success returns the bytes consumed and the body.
///
/// # Errors
/// A malformed chunk, or a body over `max` bytes.
pub fn decode_chunked(buf: &[u8], max: usize) -> Result<Option<(usize, Vec<u8>)>, HttpError> {
    let bad = |why: &str| HttpError::Malformed(format!("chunked body: {why}"));
    let line_end = |from: usize| -> Result<Option<usize>, HttpError> {
        let rest = buf.get(from..).unwrap_or_default();
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) if i <= MAX_CHUNK_LINE => Ok(Some(from + i)),
            Some(_) => Err(bad("line too long")),
            None if rest.len() > MAX_CHUNK_LINE => Err(bad("line too long")),
            None => Ok(None),
        }
    };
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(end) = line_end(pos)? else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..end]).map_err(|_| bad("size line"))?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| bad("chunk size"))?;
        pos = end + 2;
        if size == 0 {
            // Trailer lines, up to an empty one.
            loop {
                let Some(end) = line_end(pos)? else {
                    return Ok(None);
                };
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Ok(Some((pos, body)));
                }
            }
        }
        if size > max || body.len() + size > max {
            return Err(HttpError::BodyTooLarge(max));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(bad("missing CRLF after a chunk"));
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// Whether `path` is Janus's API (`/janus` or below it).
pub fn is_api(path: &str) -> bool {
    path == API_PATH || path.starts_with("/janus/")
}

/// CORS as Janus's HTTP transport sends it on every API answer: `allow_origin` (`*` when
/// unset), with credentials and `Vary` when it is a real origin; the method and headers
/// the client asked about are echoed.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `None` = `*`.
    pub allow_origin: Option<String>,
    /// Refuse (403) API requests whose `Origin` does not start with `allow_origin`.
    pub enforce: bool,
}

impl Cors {
    pub fn headers(&self, head: &Head) -> Vec<(&'static str, String)> {
        let mut h = vec![(
            "Access-Control-Allow-Origin",
            self.allow_origin.clone().unwrap_or_else(|| "*".into()),
        )];
        if self.allow_origin.is_some() {
            h.push(("Access-Control-Allow-Credentials", "true".into()));
            h.push(("Vary", "Origin".into()));
        }
        h.push(("Access-Control-Max-Age", "86400".into()));
        if let Some(m) = &head.acrm {
            h.push(("Access-Control-Allow-Methods", m.clone()));
        }
        if let Some(a) = &head.acrh {
            h.push(("Access-Control-Allow-Headers", a.clone()));
        }
        h
    }

    /// Whether a request with this head is refused by `enforce_cors` (as in Janus: its
    /// `Origin` must start with `allow_origin`).
    pub fn refuses(&self, head: &Head) -> bool {
        match (&self.allow_origin, self.enforce) {
            (Some(allowed), true) => !head
                .origin
                .as_deref()
                .is_some_and(|o| o.starts_with(allowed.as_str())),
            _ => false,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A whole response: status line, headers (plus `Content-Length` and `Connection`), body.
pub fn response(
    status: u16,
    headers: &[(&'static str, String)],
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n".as_slice()
    } else {
        b"Connection: close\r\n\r\n".as_slice()
    });
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text error page.
pub fn text_response(status: u16, text: &str, keep_alive: bool) -> Vec<u8> {
    response(
        status,
        &[("Content-Type", "text/plain; charset=utf-8".into())],
        format!("{text}\n").as_bytes(),
        keep_alive,
        false,
    )
}

/// One static file, in memory.
#[derive(Debug)]
pub struct StaticFile {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The files of `http_transport.static_folder`, read once at start: only what was found
/// under the folder then can ever be served, so no request path can reach outside it.
#[derive(Debug, Default)]
pub struct StaticFiles {
    /// By URL path (`/videocall.html`).
    files: HashMap<String, StaticFile>,
}

/// Largest static file served, and the most bytes and files read in all.
pub const MAX_STATIC_FILE: u64 = 8 * 1024 * 1024;
const MAX_STATIC_TOTAL: u64 = 64 * 1024 * 1024;
const MAX_STATIC_FILES: usize = 4096;
const MAX_STATIC_DEPTH: usize = 8;

/// The content type of a file name.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "wasm" => "application/wasm",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl StaticFiles {
    /// Reads every regular file under `root` (hidden files and anything a symlink leads
    /// out of `root` skipped; bounded in depth, count and size).
    ///
    /// # Errors
    /// `root` is not a readable folder, or the bounds are exceeded.
    pub fn load(root: &Path) -> Result<StaticFiles, String> {
        let root = root
            .canonicalize()
            .map_err(|e| format!("http_transport.static_folder {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!(
                "http_transport.static_folder {}: not a folder",
                root.display()
            ));
        }
        let mut files = StaticFiles::default();
        let mut total = 0u64;
        files.walk(&root, &root, "", 0, &mut total)?;
        Ok(files)
    }

    fn walk(
        &mut self,
        root: &Path,
        dir: &Path,
        prefix: &str,
        depth: usize,
        total: &mut u64,
    ) -> Result<(), String> {
        if depth > MAX_STATIC_DEPTH {
            return Ok(());
        }
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            // Symlinks are followed only when they stay under the root.
            let Ok(real) = entry.path().canonicalize() else {
                continue;
            };
            if !real.starts_with(root) {
                continue;
            }
            let url = format!("{prefix}/{name}");
            if real.is_dir() {
                self.walk(root, &real, &url, depth + 1, total)?;
                continue;
            }
            let Ok(meta) = std::fs::metadata(&real) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_STATIC_FILE {
                continue;
            }
            *total += meta.len();
            if *total > MAX_STATIC_TOTAL || self.files.len() >= MAX_STATIC_FILES {
                return Err(format!(
                    "http_transport.static_folder {}: more than {MAX_STATIC_FILES} files or {MAX_STATIC_TOTAL} bytes",
                    root.display()
                ));
            }
            let body = std::fs::read(&real).map_err(|e| format!("{}: {e}", real.display()))?;
            self.files.insert(
                url,
                StaticFile {
                    content_type: content_type(name),
                    body,
                },
            );
        }
        Ok(())
    }

    /// The file for a request path (`/` and `/dir/` mean their `index.html`).
    pub fn get(&self, path: &str) -> Option<&StaticFile> {
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .ok()?;
        let mut key = decoded.into_owned();
        if key.ends_with('/') {
            key.push_str("index.html");
        }
        self.files.get(&key)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// How an HTTP listener serves: CORS for the API, and its static files.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub cors: Cors,
    pub files: Option<Arc<StaticFiles>>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `OPTIONS` under `/janus`: 200 with the CORS headers, no body.
    Preflight,
    /// Janus's API.
    Api,
    /// A static file (or 404/405).
    File,
}

pub fn route(head: &Head) -> Route {
    if !is_api(&head.path) {
        return Route::File;
    }
    if head.method == "OPTIONS" {
        Route::Preflight
    } else {
        Route::Api
    }
}

/// The answer to a request for a static file.
pub fn file_response(files: Option<&StaticFiles>, head: &Head) -> Vec<u8> {
    let head_only = head.method == "HEAD";
    if head.method != "GET" && !head_only {
        return text_response(405, "method not allowed", head.keep_alive);
    }
    match files.and_then(|f| f.get(&head.path)) {
        Some(f) => response(
            200,
            &[
                ("Content-Type", f.content_type.into()),
                ("Cache-Control", "no-cache".into()),
                ("X-Content-Type-Options", "nosniff".into()),
            ],
            &f.body,
            head.keep_alive,
            head_only,
        ),
        None => text_response(404, "not found", head.keep_alive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes(), 1024).unwrap().unwrap().1
    }

    #[test]
    fn heads() {
        let h = head("POST /janus/12?maxev=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nOrigin: http://a\r\n\r\n");
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.query.as_str()),
            ("POST", "/janus/12", "maxev=5")
        );
        assert_eq!(h.content_length, 10);
        assert!(h.keep_alive);
        assert_eq!(h.origin.as_deref(), Some("http://a"));
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost", 10).unwrap(), None);
        let big = "POST / HTTP/1.1\r\nContent-Length: 2048\r\n\r\n";
        assert_eq!(parse_head(big.as_bytes(), 1024).unwrap_err().status(), 413);
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(head(chunked).chunked);
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse_head(gzip.as_bytes(), 1024).unwrap_err().status(), 501);
        let both = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse_head(both.as_bytes(), 1024).unwrap_err().status(), 400);
        assert!(parse_head(&[b'a'; MAX_HEAD], 10).is_err());
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(
            parse_head(long.as_bytes(), 10).unwrap_err(),
            HttpError::HeadTooLarge
        );
        let bad_len = "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(
            parse_head(bad_len.as_bytes(), 10).unwrap_err().status(),
            400
        );
        let twice = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_head(twice.as_bytes(), 10).unwrap_err().status(), 400);
    }

    #[test]
    fn chunked_bodies() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let (n, b) = decode_chunked(body, 100).unwrap().unwrap();
        assert_eq!(b, b"Wikipedia");
        assert_eq!(&body[n..], b"NEXT");
        for cut in 0..body.len() - 4 {
            assert_eq!(decode_chunked(&body[..cut], 100).unwrap(), None, "{cut}");
        }
        assert_eq!(decode_chunked(b"0\r\n\r\n", 10).unwrap(), Some((5, vec![])));
        assert_eq!(decode_chunked(body, 5).unwrap_err().status(), 413);
        assert_eq!(decode_chunked(b"zz\r\n", 10).unwrap_err().status(), 400);
        assert_eq!(decode_chunked(b"3\r\nabcXY", 10).unwrap_err().status(), 400);
        assert_eq!(
            decode_chunked(b"ffffffffffffffffffff\r\n", 10)
                .unwrap_err()
                .status(),
            400
        );
        assert!(decode_chunked(&[b'1'; 2048], 10).is_err());
    }

    #[test]
    fn cors_as_janus() {
        let h = head("OPTIONS /janus HTTP/1.1\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n");
        assert_eq!(route(&h), Route::Preflight);
        let any = Cors {
            allow_origin: None,
            enforce: false,
        };
        let hs = any.headers(&h);
        assert!(hs.contains(&("Access-Control-Allow-Origin", "*".into())));
        assert!(hs.contains(&("Access-Control-Allow-Methods", "POST".into())));
        assert!(hs.contains(&("Access-Control-Allow-Headers", "content-type".into())));
        assert!(!any.refuses(&h));
        let strict = Cors {
            allow_origin: Some("https://app".into()),
            enforce: true,
        };
        assert!(strict.refuses(&h));
        let ok = head("GET /janus/1 HTTP/1.1\r\nOrigin: https://app\r\n\r\n");
        assert!(!strict.refuses(&ok));
        assert!(strict.headers(&ok).contains(&("Vary", "Origin".into())));
        assert_eq!(route(&head("GET /janusx HTTP/1.1\r\n\r\n")), Route::File);
        assert_eq!(route(&head("GET /janus/info HTTP/1.1\r\n\r\n")), Route::Api);
    }

    #[test]
    fn static_files_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("html");
        std::fs::create_dir_all(root.join("vendor")).unwrap();
        std::fs::write(root.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(root.join("vendor/janus.js"), "x").unwrap();
        std::fs::write(root.join(".secret"), "no").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("index.html"), root.join("in.html")).unwrap();
        let f = StaticFiles::load(&root).unwrap();
        assert_eq!(f.get("/").unwrap().body, b"<p>hi</p>");
        assert_eq!(
            f.get("/index.html").unwrap().content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(
            f.get("/vendor/janus.js").unwrap().content_type,
            "text/javascript; charset=utf-8"
        );
        assert!(f.get("/in.html").is_some());
        for bad in [
            "/out.txt",
            "/.secret",
            "/../outside.txt",
            "/vendor/../../outside.txt",
            "/%2e%2e/outside.txt",
            "/nope",
        ] {
            assert!(f.get(bad).is_none(), "{bad}");
        }
        let h = head("GET /index.html HTTP/1.1\r\n\r\n");
        let r = String::from_utf8(file_response(Some(&f), &h)).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n")
                && r.contains("nosniff")
                && r.ends_with("<p>hi</p>")
        );
        let h = head("DELETE /index.html HTTP/1.1\r\n\r\n");
        assert!(file_response(Some(&f), &h).starts_with(b"HTTP/1.1 405"));
        let h = head("GET /x HTTP/1.1\r\n\r\n");
        assert!(file_response(None, &h).starts_with(b"HTTP/1.1 404"));
    }
}
