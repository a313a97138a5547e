//! Who may reach the HTTP control interfaces (the proxy's admin API, the sentinel's
//! REST interface): the checks of their configuration values, and where the cluster
//! secret comes from. Pure functions.

use std::net::SocketAddr;

/// Environment variable holding the cluster secret when the configuration leaves
/// `admin_api.secret` empty (so that no secret has to be written into a config file).
pub const SECRET_ENV: &str = "JANUS_CLOUD_SECRET";

/// Whether `listen` (`ip:port`) only accepts connections from this machine.
pub fn is_loopback(listen: &str) -> bool {
    listen
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// The rule for an exposed listener: a listener reachable from other machines needs a
/// secret, unless `allow_no_secret` says the operator protects it otherwise.
///
/// # Errors
/// Why the combination is refused.
pub fn check_exposure(
    listen: &str,
    secret: &str,
    allow_no_secret: bool,
) -> Result<(), &'static str> {
    if secret.is_empty() && !allow_no_secret && !is_loopback(listen) {
        return Err(
            "not a loopback address and no secret is set: set admin_api.secret (or \
             the JANUS_CLOUD_SECRET environment variable), listen on 127.0.0.1, or set \
             admin_api.allow_no_secret = true",
        );
    }
    Ok(())
}

/// A usable secret: printable ASCII without spaces (it travels in an HTTP header),
/// at most 512 bytes. Empty is valid (= none).
pub fn valid_secret(secret: &str) -> bool {
    secret.len() <= 512 && secret.bytes().all(|b| b.is_ascii_graphic())
}

/// A CORS origin as browsers send it: `http(s)://host[:port]`, no path, never `*`.
pub fn valid_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 253
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// The secret from the configuration, else from [`SECRET_ENV`] (trimmed; empty = none).
pub fn secret_or_env(configured: &str, env: Option<String>) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    env.map(|s| s.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_and_values() {
        assert!(is_loopback("127.0.0.1:8100"));
        assert!(is_loopback("[::1]:8100"));
        assert!(!is_loopback("0.0.0.0:8100"));
        assert!(!is_loopback("10.0.0.1:8100"));
        assert!(check_exposure("127.0.0.1:1", "", false).is_ok());
        assert!(check_exposure("0.0.0.0:1", "", false).is_err());
        assert!(check_exposure("0.0.0.0:1", "", true).is_ok());
        assert!(check_exposure("0.0.0.0:1", "s", false).is_ok());
        assert!(valid_secret(""));
        assert!(valid_secret("abc-DEF_123+/="));
        assert!(!valid_secret("has space"));
        assert!(!valid_secret("tab\t"));
        assert!(valid_origin("https://ops.example:8443"));
        assert!(valid_origin("http://127.0.0.1:3000"));
        assert!(!valid_origin("*"));
        assert!(!valid_origin("https://ops.example/path"));
        assert!(!valid_origin("ops.example"));
        assert_eq!(secret_or_env("a", Some("b".into())), "a");
        assert_eq!(secret_or_env("", Some(" b \n".into())), "b");
        assert_eq!(secret_or_env("", None), "");
    }
}
