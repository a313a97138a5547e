//! The WebSocket opening handshake, both sides, as pure functions over bytes.
//! HTTP parsing is httparse's; the accept key is tungstenite's.

use tungstenite::handshake::derive_accept_key;

pub const SUBPROTOCOL: &str = "janus-protocol";

/// Largest HTTP head we accept; Janus clients send well under 1 KiB.
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("malformed HTTP: {0}")]
    Http(String),
    #[error("HTTP head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("not a WebSocket upgrade: {0}")]
    NotUpgrade(&'static str),
    #[error("backend refused the upgrade with HTTP {0}")]
    Refused(u16),
    #[error("backend answered a wrong Sec-WebSocket-Accept")]
    BadAccept,
}

/// What the server needs from a client's upgrade request.
#[derive(Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub key: String,
    /// Whether the client offered `janus-protocol` (then it is echoed).
    pub janus_protocol: bool,
}

fn header<'h>(headers: &'h [httparse::Header], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim)
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Parses a client's upgrade request. `Ok(None)` = incomplete, read more.
/// On success also returns the length of the HTTP head (bytes after it are frames).
///
/// # Errors
/// Not HTTP, too large, or not a valid WebSocket upgrade.
pub fn parse_upgrade(buf: &[u8]) -> Result<Option<(usize, Upgrade)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::Http(e.to_string())),
    };
    if req.method != Some("GET") {
        return Err(HandshakeError::NotUpgrade("method is not GET"));
    }
    if !has_token(header(req.headers, "Upgrade"), "websocket") {
        return Err(HandshakeError::NotUpgrade("missing Upgrade: websocket"));
    }
    if header(req.headers, "Sec-WebSocket-Version") != Some("13") {
        return Err(HandshakeError::NotUpgrade(
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = header(req.headers, "Sec-WebSocket-Key")
        .filter(|k| !k.is_empty())
        .ok_or(HandshakeError::NotUpgrade("missing Sec-WebSocket-Key"))?;
    Ok(Some((
        n,
        Upgrade {
            key: key.to_string(),
            janus_protocol: has_token(header(req.headers, "Sec-WebSocket-Protocol"), SUBPROTOCOL),
        },
    )))
}

/// The `101 Switching Protocols` answer to `up`.
pub fn accept_response(up: &Upgrade) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(up.key.as_bytes())
    );
    if up.janus_protocol {
        r.push_str("Sec-WebSocket-Protocol: janus-protocol\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The answer to a request that is not a valid upgrade.
pub fn reject_response(err: &HandshakeError) -> Vec<u8> {
    let body = format!("{err}\n");
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The upgrade request the proxy sends to a backend Janus.
pub fn client_request(host: &str, port: u16, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    )
    .into_bytes()
}

/// Checks a backend's answer to [`client_request`]. `Ok(None)` = incomplete.
/// On success returns the length of the HTTP head.
///
/// # Errors
/// Not HTTP, not 101, or a wrong accept key.
pub fn parse_client_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::Http(e.to_string())),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(HandshakeError::Refused(code));
    }
    if header(resp.headers, "Sec-WebSocket-Accept")
        != Some(derive_accept_key(key.as_bytes()).as_str())
    {
        return Err(HandshakeError::BadAccept);
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"GET /janus HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: foo, janus-protocol\r\n\r\n";

    #[test]
    fn accepts_and_echoes_subprotocol() {
        let (n, up) = parse_upgrade(REQ).unwrap().unwrap();
        assert_eq!(n, REQ.len());
        assert!(up.janus_protocol);
        let r = String::from_utf8(accept_response(&up)).unwrap();
        // RFC 6455's example key and accept value.
        assert!(r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(r.contains("Sec-WebSocket-Protocol: janus-protocol\r\n"));
    }

    #[test]
    fn partial_and_bad_requests() {
        assert_eq!(parse_upgrade(&REQ[..20]).unwrap(), None);
        let plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            parse_upgrade(plain),
            Err(HandshakeError::NotUpgrade(_))
        ));
        assert_eq!(
            parse_upgrade(&[b'a'; MAX_HEAD]).unwrap_err(),
            HandshakeError::TooLarge
        );
        assert!(matches!(
            parse_upgrade(b"\x01\x02 / HTTP/1.1\r\n\r\n"),
            Err(HandshakeError::Http(_))
        ));
    }

    #[test]
    fn client_side_round_trip() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let req = client_request("127.0.0.1", 8188, "/", key);
        let (_, up) = parse_upgrade(&req).unwrap().unwrap();
        let resp = accept_response(&up);
        assert_eq!(parse_client_response(&resp, key).unwrap(), Some(resp.len()));
        assert_eq!(
            parse_client_response(&resp, "other").unwrap_err(),
            HandshakeError::BadAccept
        );
        let refused = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        assert_eq!(
            parse_client_response(refused, key).unwrap_err(),
            HandshakeError::Refused(400)
        );
    }
}
