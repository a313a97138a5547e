//! The backend server record (spec 02 §3) and the update rules of registration
//! (spec 02 §5–§6.2), as pure functions: validate a posted body, merge it into the stored
//! record, judge whether a record is still valid.

use std::collections::BTreeMap;

use serde::Serialize;

/// A backend server as stored and as listed by `GET /backend_servers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRecord {
    pub name: String,
    pub url: String,
    pub status: u8,
    pub session_timeout: u64,
    pub location: String,
    pub isp: String,
    /// −1 = unknown.
    pub session_num: i64,
    /// −1 = unknown.
    pub handle_num: i64,
    /// Seconds of validity after `utime`; 0 = never expires.
    pub expire: u64,
    /// Janus process start time reported by the sentinel (epoch s; 0 = unknown).
    pub start_time: f64,
    pub ctime: f64,
    pub utime: f64,
    /// Load reported by a sentinel (see janus-sentinel), −1 = unknown. Not in the original.
    pub load: f64,
}

/// A registration or heartbeat: `name`, `url`, `status` always; the rest only when sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerUpdate {
    pub name: String,
    pub url: String,
    pub status: u8,
    pub session_timeout: Option<u64>,
    pub location: Option<String>,
    pub isp: Option<String>,
    pub session_num: Option<i64>,
    pub handle_num: Option<i64>,
    pub expire: Option<u64>,
    pub start_time: Option<f64>,
    pub load: Option<f64>,
}

/// Default validity of a server registered without `expire` (spec 02 §3).
pub const DEFAULT_EXPIRE: u64 = 60;

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

pub fn valid_url(url: &str) -> bool {
    crate::config::WsUrl::parse(url).is_some()
}

/// Validation failure of a posted server body: names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {why}")]
pub struct Invalid {
    pub field: &'static str,
    pub why: String,
}

fn invalid(field: &'static str, why: impl Into<String>) -> Invalid {
    Invalid {
        field,
        why: why.into(),
    }
}

fn int_in(
    params: &BTreeMap<String, String>,
    key: &'static str,
    max: i64,
) -> Result<Option<i64>, Invalid> {
    match params.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => {
            let n: i64 = v
                .parse()
                .or_else(|_| v.parse::<f64>().map(|f| f as i64))
                .map_err(|_| invalid(key, format!("{v:?} is not an integer")))?;
            // Counts may be -1, "unknown", as sentinels send them.
            let unknown_count = n == -1 && key.ends_with("_num");
            if !((0..=max).contains(&n) || unknown_count) {
                return Err(invalid(key, format!("{n} is not in 0..{max}")));
            }
            Ok(Some(n))
        }
    }
}

fn text(params: &BTreeMap<String, String>, key: &'static str) -> Result<Option<String>, Invalid> {
    match params.get(key) {
        None => Ok(None),
        Some(v) if v.chars().count() > 64 => Err(invalid(key, "longer than 64 characters")),
        Some(v) => Ok(Some(v.trim().to_string())),
    }
}

/// Validates a body of `POST /sentinel_callback` or `POST /backend_servers` (all values
/// as strings, as form posts carry them). Unknown keys are ignored.
///
/// # Errors
/// The first invalid or missing field.
pub fn parse_update(params: &BTreeMap<String, String>) -> Result<ServerUpdate, Invalid> {
    let name = params.get("name").map(|s| s.trim()).unwrap_or_default();
    if !valid_name(name) {
        return Err(invalid(
            "name",
            format!("{name:?} must match ^[\\w-]{{1,64}}$"),
        ));
    }
    let url = params.get("url").map(|s| s.trim()).unwrap_or_default();
    if !valid_url(url) {
        return Err(invalid("url", format!("{url:?} must be ws://host:port")));
    }
    // 3 (high-water mark) is accepted: a sentinel sends it for a slow server, which must
    // keep refreshing its entry while not being selected (0.5.0 rejected it).
    let status = match int_in(params, "status", 3)? {
        Some(s) => s as u8,
        None => return Err(invalid("status", "missing")),
    };
    let start_time = match params.get("start_time").map(|v| v.trim()) {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .ok_or_else(|| invalid("start_time", format!("{v:?} is not a time")))?,
        ),
    };
    let load = match params.get("load").map(|v| v.trim()) {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| invalid("load", format!("{v:?} is not a number")))?,
        ),
    };
    Ok(ServerUpdate {
        name: name.to_string(),
        url: url.to_string(),
        status,
        session_timeout: int_in(params, "session_timeout", 86_400)?.map(|v| v as u64),
        location: text(params, "location")?,
        isp: text(params, "isp")?,
        session_num: int_in(params, "session_num", 10_000_000)?,
        handle_num: int_in(params, "handle_num", 100_000_000)?,
        expire: int_in(params, "expire", 86_400)?.map(|v| v as u64),
        start_time,
        load,
    })
}

/// Merges an update into the stored record (spec 02 §5): a new name gets the defaults,
/// an existing one keeps every optional field that the update does not carry.
pub fn apply(existing: Option<ServerRecord>, u: ServerUpdate, now: f64) -> ServerRecord {
    let mut r = existing.unwrap_or_else(|| ServerRecord {
        name: u.name.clone(),
        url: String::new(),
        status: 0,
        session_timeout: 0,
        location: String::new(),
        isp: String::new(),
        session_num: 0,
        handle_num: 0,
        expire: DEFAULT_EXPIRE,
        start_time: 0.0,
        ctime: now,
        utime: now,
        load: -1.0,
    });
    r.url = u.url;
    r.status = u.status;
    if let Some(v) = u.session_timeout {
        r.session_timeout = v;
    }
    if let Some(v) = u.location {
        r.location = v;
    }
    if let Some(v) = u.isp {
        r.isp = v;
    }
    if let Some(v) = u.session_num {
        r.session_num = v;
    }
    if let Some(v) = u.handle_num {
        r.handle_num = v;
    }
    if let Some(v) = u.expire {
        r.expire = v;
    }
    if let Some(v) = u.start_time {
        r.start_time = v;
    }
    if let Some(v) = u.load {
        r.load = v;
    }
    r.utime = now;
    r
}

impl ServerRecord {
    /// Whether the entry is still within its validity (regardless of status).
    pub fn is_fresh(&self, now: f64) -> bool {
        self.expire == 0 || now - self.utime < self.expire as f64
    }

    /// The record as string fields, the Redis hash layout of the original
    /// (`januscloud:backend_servers:<name>`).
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.clone()),
            ("url", self.url.clone()),
            ("status", self.status.to_string()),
            ("session_timeout", self.session_timeout.to_string()),
            ("location", self.location.clone()),
            ("isp", self.isp.clone()),
            ("session_num", self.session_num.to_string()),
            ("handle_num", self.handle_num.to_string()),
            ("expire", self.expire.to_string()),
            ("start_time", self.start_time.to_string()),
            ("ctime", self.ctime.to_string()),
            ("utime", self.utime.to_string()),
            ("load", self.load.to_string()),
        ]
    }

    /// Reads a record back from string fields; `None` when name or url is missing.
    pub fn from_fields(f: &BTreeMap<String, String>) -> Option<ServerRecord> {
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<f64>().ok());
        Some(ServerRecord {
            name: f.get("name")?.clone(),
            url: f.get("url")?.clone(),
            status: num("status").unwrap_or(1.0) as u8,
            session_timeout: num("session_timeout").unwrap_or(0.0) as u64,
            location: f.get("location").cloned().unwrap_or_default(),
            isp: f.get("isp").cloned().unwrap_or_default(),
            session_num: num("session_num").unwrap_or(0.0) as i64,
            handle_num: num("handle_num").unwrap_or(0.0) as i64,
            expire: num("expire").unwrap_or(0.0) as u64,
            start_time: num("start_time").unwrap_or(0.0),
            ctime: num("ctime").unwrap_or(0.0),
            utime: num("utime").unwrap_or(0.0),
            load: num("load").unwrap_or(-1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_a_sentinel_post() {
        let u = parse_update(&params(&[
            ("name", "janus-1"),
            ("url", "ws://10.0.0.1:8188"),
            ("status", "3"),
            ("expire", "60"),
            ("handle_num", "12"),
            ("session_num", "-1"),
            ("start_time", "1700000000.5"),
            ("unknown", "x"),
        ]))
        .unwrap();
        assert_eq!(
            (u.status, u.expire, u.handle_num, u.session_num),
            (3, Some(60), Some(12), Some(-1))
        );
        assert_eq!(u.start_time, Some(1_700_000_000.5));
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let base = [("name", "a"), ("url", "ws://h:1"), ("status", "0")];
        let bad = |k: &str, v: &str| {
            let mut p = params(&base);
            p.insert(k.into(), v.into());
            parse_update(&p).unwrap_err().field
        };
        assert_eq!(bad("name", "a b"), "name");
        assert_eq!(bad("url", "http://h:1"), "url");
        assert_eq!(bad("status", "4"), "status");
        assert_eq!(bad("status", "x"), "status");
        assert_eq!(bad("expire", "100000"), "expire");
        assert_eq!(bad("location", &"x".repeat(65)), "location");
        let mut p = params(&base);
        p.remove("status");
        assert_eq!(parse_update(&p).unwrap_err().field, "status");
    }

    #[test]
    fn apply_keeps_unsent_fields_and_defaults_expire() {
        let u = parse_update(&params(&[
            ("name", "a"),
            ("url", "ws://h:1"),
            ("status", "0"),
            ("handle_num", "5"),
        ]))
        .unwrap();
        let r = apply(None, u, 100.0);
        assert_eq!(
            (r.expire, r.handle_num, r.ctime),
            (DEFAULT_EXPIRE, 5, 100.0)
        );
        let u = parse_update(&params(&[
            ("name", "a"),
            ("url", "ws://h:2"),
            ("status", "2"),
        ]))
        .unwrap();
        let r = apply(Some(r), u, 130.0);
        assert_eq!(
            (r.url.as_str(), r.status, r.handle_num, r.ctime, r.utime),
            ("ws://h:2", 2, 5, 100.0, 130.0)
        );
        assert!(r.is_fresh(189.0));
        assert!(!r.is_fresh(190.0));
    }

    #[test]
    fn fields_round_trip() {
        let u = parse_update(&params(&[
            ("name", "a"),
            ("url", "ws://h:1"),
            ("status", "1"),
            ("expire", "0"),
        ]))
        .unwrap();
        let r = apply(None, u, 7.5);
        let f: BTreeMap<String, String> = r
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(ServerRecord::from_fields(&f), Some(r));
    }
}
