//! Who the sentinel says the server is: its name and the URLs it reports, built once at
//! start from `[janus]`. The only network use is the `public_ip = "auto"` lookup (a UDP
//! socket "connected" towards 8.8.8.8: the kernel picks the route, no packet is sent).

use std::io;
use std::net::{IpAddr, UdpSocket};

use crate::config::Janus;
use crate::state::Identity;

/// `ws://host:port`, with brackets around an IPv6 literal.
pub fn ws_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("ws://[{host}]:{port}")
    } else {
        format!("ws://{host}:{port}")
    }
}

/// The local IPv4 address used to route towards 8.8.8.8.
///
/// # Errors
/// No IPv4 route (or no network at all).
pub fn detect_public_ipv4() -> io::Result<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect("8.8.8.8:80")?;
    let ip = s.local_addr()?.ip();
    if ip.is_unspecified() {
        return Err(io::Error::other("no IPv4 route towards 8.8.8.8"));
    }
    Ok(ip)
}

/// The host part of the posted URL: `public_ip`, or `server_ip` when it is empty, or the
/// detected address when it is "auto" (`detect` is injected for tests).
///
/// # Errors
/// `public_ip = "auto"` and the detection failed.
pub fn public_host(
    janus: &Janus,
    detect: impl FnOnce() -> io::Result<IpAddr>,
) -> io::Result<String> {
    match janus.public_ip.trim() {
        "" => Ok(janus.server_ip.clone()),
        "auto" => detect().map(|ip| ip.to_string()),
        other => Ok(other.to_owned()),
    }
}

/// `server_name`, or a random UUID when it is empty.
pub fn server_name(configured: &str) -> String {
    if configured.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        configured.to_owned()
    }
}

/// The identity for `janus` with an already resolved public host.
pub fn identity(janus: &Janus, public_host: &str) -> Identity {
    Identity {
        name: server_name(&janus.server_name),
        server_url: ws_url(&janus.server_ip, janus.ws_port),
        public_url: ws_url(public_host, janus.ws_port),
        admin_url: ws_url(&janus.server_ip, janus.admin_ws_port),
        hwm_threshold: janus.hwm_threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(ws_url("10.0.0.1", 8188), "ws://10.0.0.1:8188");
        assert_eq!(ws_url("janus.example", 8188), "ws://janus.example:8188");
        assert_eq!(ws_url("::1", 8188), "ws://[::1]:8188");
        assert_eq!(ws_url("[::1]", 8188), "ws://[::1]:8188");
    }

    #[test]
    fn public_host_choice() {
        let mut j = Janus::default();
        let never = || -> io::Result<IpAddr> { Err(io::Error::other("not called")) };
        assert_eq!(public_host(&j, never).ok().as_deref(), Some("127.0.0.1"));
        j.public_ip = "203.0.113.7".into();
        assert_eq!(public_host(&j, never).ok().as_deref(), Some("203.0.113.7"));
        j.public_ip = "auto".into();
        let fixed = || Ok(IpAddr::from([192, 0, 2, 1]));
        assert_eq!(public_host(&j, fixed).ok().as_deref(), Some("192.0.2.1"));
        assert!(public_host(&j, never).is_err());
    }

    #[test]
    fn identity_fields() {
        let j = Janus {
            server_ip: "127.0.0.1".into(),
            ws_port: 18388,
            admin_ws_port: 17388,
            ..Janus::default()
        };
        let id = identity(&j, "192.0.2.1");
        assert_eq!(id.server_url, "ws://127.0.0.1:18388");
        assert_eq!(id.public_url, "ws://192.0.2.1:18388");
        assert_eq!(id.admin_url, "ws://127.0.0.1:17388");
        assert_eq!(id.name.len(), 36); // random UUID
        assert_ne!(id.name, identity(&j, "x").name);
        assert_eq!(server_name("janus-1"), "janus-1");
    }
}
