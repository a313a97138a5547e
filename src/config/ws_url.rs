//! Backend URLs: `ws://host:port/path` as configured and registered.

/// A `ws://host:port/path` URL (`wss://` is not supported yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl WsUrl {
    pub fn parse(url: &str) -> Option<WsUrl> {
        let rest = url.strip_prefix("ws://")?;
        if rest.chars().any(char::is_whitespace) {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            // [v6]:port
            let (h, p) = h.split_once(']')?;
            (h, p.strip_prefix(':').map_or(Some(80), |p| p.parse().ok())?)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(WsUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            WsUrl::parse("ws://127.0.0.1:8188"),
            Some(WsUrl {
                host: "127.0.0.1".into(),
                port: 8188,
                path: "/".into()
            })
        );
        assert_eq!(WsUrl::parse("ws://h/janus").unwrap().port, 80);
        assert_eq!(WsUrl::parse("ws://[::1]:9/x").unwrap().host, "::1");
        assert!(WsUrl::parse("wss://h:1").is_none());
        assert!(WsUrl::parse("ws://:1").is_none());
        assert!(WsUrl::parse("ws://h:port").is_none());
    }
}
