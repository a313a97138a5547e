//! Abuse of the client listener, tried as an attacker and as a careless heavy user would:
//! raw sockets and hand-made WebSocket frames. After each attack the proxy must still run,
//! every shard must still serve new clients, and its memory must be back within bounds.
//! (Admin API abuse lives in tests/admin.rs.)

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = REPLY_TIMEOUT;

/// A client speaking raw WebSocket over a plain socket, so it can send what no library
/// would: any declared length, broken fragmentation, invalid UTF-8, or nothing at all.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn tcp(port: u16) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).ok();
        s
    }

    /// Connects and completes the upgrade.
    fn connect(port: u16) -> Raw {
        let mut s = Raw::tcp(port);
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Protocol: janus-protocol\r\n\r\n",
        )
        .unwrap();
        let mut raw = Raw { s, buf: Vec::new() };
        let head = raw.read_until(b"\r\n\r\n", T).expect("upgrade answer");
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        raw
    }

    fn read_until(&mut self, end: &[u8], within: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.buf.windows(end.len()).position(|w| w == end) {
                return Some(self.buf.drain(..i + end.len()).collect());
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// Reads more bytes; false on timeout or end of stream.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.s.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// A masked frame with `declared` as its length field and `payload` after it (which
    /// may be shorter than declared).
    fn frame(opcode: u8, fin: bool, declared: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![opcode | if fin { 0x80 } else { 0 }];
        if declared < 126 {
            v.push(0x80 | declared as u8);
        } else if declared <= u16::MAX as u64 {
            v.push(0x80 | 126);
            v.extend_from_slice(&(declared as u16).to_be_bytes());
        } else {
            v.push(0x80 | 127);
            v.extend_from_slice(&declared.to_be_bytes());
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }

    fn text(&mut self, payload: &[u8]) {
        self.send(&Raw::frame(0x1, true, payload.len() as u64, payload))
            .unwrap();
    }

    /// The next text message from the server (unmasked frames), if one comes in time.
    fn recv_text(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((opcode, payload, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                match opcode {
                    0x1 => return serde_json::from_slice(&payload).ok(),
                    0x8 => return None,
                    _ => continue,
                }
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// Whether the server closes the connection within `within` (it may send frames first).
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 64 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

/// One unmasked server frame at the start of `buf`: opcode, payload, bytes used.
fn parse_server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, start) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < start + len {
        return None;
    }
    Some((opcode, buf[start..start + len].to_vec(), start + len))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The proxy still runs, and new clients are served whichever shard the kernel gives them
/// to: 24 fresh connections (two shards: all on one shard has odds 2^-23) each get an
/// answer to `ping`, and a session they create works.
fn assert_serves_new_clients(p: &mut Proxy) {
    assert!(p.is_running(), "proxy died:\n{}", p.log());
    let clients: Vec<Client> = (0..24).map(|_| p.client()).collect();
    for mut c in clients {
        let r = c.request(json!({"janus": "ping"}));
        assert_eq!(r["janus"], "pong", "{r}");
        let sid = c.create_session();
        let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
        assert_eq!(r["janus"], "ack", "{r}");
    }
}

/// Memory is back within `slack_kib` of `base_kib` within a few seconds.
fn assert_memory_back(p: &Proxy, base_kib: u64, slack_kib: u64) {
    let pid = p.child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = rss_kib(pid);
        if now <= base_kib + slack_kib {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "proxy RSS {now} KiB, was {base_kib} KiB before the attack"
        );
        poll_pause();
    }
}

fn proxy_with(f: impl FnOnce(ProxyConfig) -> ProxyConfig) -> Proxy {
    Proxy::start(f(ProxyConfig::without_backends()))
}

#[test]
fn wrapped_fragment_length_does_not_kill_a_shard() {
    let mut p = proxy_with(|c| c);
    // Several attackers, so that every shard gets one.
    let mut attackers: Vec<Raw> = (0..8).map(|_| Raw::connect(p.port)).collect();
    for a in &mut attackers {
        a.send(&Raw::frame(0x1, false, 2, b"{\"")).unwrap();
        // open (2) + declared must wrap past 2^64
        a.send(&Raw::frame(0x0, true, u64::MAX - 1, &[0; 32]))
            .unwrap();
    }
    assert_serves_new_clients(&mut p);
}

#[test]
fn huge_declared_lengths_are_skipped_without_buffering() {
    let mut p = proxy_with(|c| c);
    let base = rss_kib(p.child.id());
    let mut attackers: Vec<Raw> = (0..8).map(|_| Raw::connect(p.port)).collect();
    for a in &mut attackers {
        a.send(&Raw::frame(
            0x1,
            true,
            (1 << 63) - 1,
            &vec![b'x'; 256 * 1024],
        ))
        .unwrap();
    }
    // Over max_message_size with its bytes really sent: error 450, then the connection
    // works again.
    let mut c = Raw::connect(p.port);
    let big = vec![b' '; 300 * 1024];
    c.text(&big);
    let e = c.recv_text(T).expect("450 error");
    assert_eq!(e["error"]["code"], 450, "{e}");
    c.text(br#"{"janus":"ping","transaction":"t1"}"#);
    assert_eq!(c.recv_text(T).expect("pong")["janus"], "pong");
    assert_serves_new_clients(&mut p);
    assert_memory_back(&p, base, 32 * 1024);
}

#[test]
fn interleaved_fragments_and_stray_continuations_close_only_that_connection() {
    let mut p = proxy_with(|c| c);
    let mut a = Raw::connect(p.port);
    a.send(&Raw::frame(0x1, false, 3, b"{\"j")).unwrap();
    a.send(&Raw::frame(0x1, true, 2, b"{}")).unwrap();
    assert!(a.closed_within(T), "interleaved message not refused");
    let mut b = Raw::connect(p.port);
    b.send(&Raw::frame(0x0, true, 2, b"{}")).unwrap();
    assert!(b.closed_within(T), "stray continuation not refused");
    // A control frame in the middle of a fragmented message is allowed (RFC 6455 5.4).
    let mut c = Raw::connect(p.port);
    let (head, tail) = (br#"{"janus":"ping","#, br#""transaction":"t"}"#);
    c.send(&Raw::frame(0x1, false, head.len() as u64, head))
        .unwrap();
    c.send(&Raw::frame(0x9, true, 1, b"p")).unwrap();
    c.send(&Raw::frame(0x0, true, tail.len() as u64, tail))
        .unwrap();
    assert_eq!(c.recv_text(T).expect("pong")["janus"], "pong");
    assert_serves_new_clients(&mut p);
}

#[test]
fn invalid_utf8_gets_454_and_the_connection_stays() {
    let mut p = proxy_with(|c| c);
    let mut c = Raw::connect(p.port);
    c.text(b"{\"janus\":\"ping\",\"transaction\":\"\xff\xfe\"}");
    let e = c.recv_text(T).expect("error reply");
    assert_eq!(e["error"]["code"], 454, "{e}");
    c.text(br#"{"janus":"ping","transaction":"t2"}"#);
    assert_eq!(c.recv_text(T).expect("pong")["transaction"], "t2");
    assert_serves_new_clients(&mut p);
}

#[test]
fn deep_json_is_refused_as_malformed() {
    let mut p = proxy_with(|c| c);
    let mut c = p.client();
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    // 5,000 nested arrays in a 10 KB jsep (finding 2), sent to dummytest with async.
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    let msg = format!(
        r#"{{"janus":"message","session_id":{sid},"handle_id":{hid},"transaction":"deep","body":{{"async":true}},"jsep":{{"x":{deep}}}}}"#
    );
    c.send_raw(&msg);
    let e = c.recv(T);
    assert_eq!(e["janus"], "error", "{e}");
    assert_eq!(e["error"]["code"], 454, "{e}");
    let r = c.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_eq!(r["janus"], "ack", "{r}");
    assert_serves_new_clients(&mut p);
}

#[test]
fn relayed_json_output_stays_linear_in_its_input() {
    let mut p = proxy_with(|c| c);
    let mut c = p.client();
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.dummytest");
    // As deep as allowed, with many tiny values: naive indentation would multiply it ~60x.
    let inner = vec!["0"; 30_000].join(",");
    let jsep = format!(r#"{{"x":{}{inner}{}}}"#, "[".repeat(28), "]".repeat(28));
    let msg = format!(
        r#"{{"janus":"message","session_id":{sid},"handle_id":{hid},"transaction":"wide","body":{{"async":true}},"jsep":{jsep}}}"#
    );
    c.send_raw(&msg);
    let ack = c.recv_frame(T);
    assert_eq!(ack.json["janus"], "ack", "{}", ack.text);
    let ev = c.recv_frame(T);
    assert_eq!(ev.json["janus"], "event", "{}", ev.text);
    assert!(
        ev.text.len() <= 10 * msg.len(),
        "{} bytes out for {} in",
        ev.text.len(),
        msg.len()
    );
    let sent: Value = serde_json::from_str(&jsep).unwrap();
    assert_eq!(ev.json["jsep"], sent);
    assert_serves_new_clients(&mut p);
}

#[test]
fn a_client_that_never_reads_is_cut_off_and_memory_stays_bounded() {
    let mut p = proxy_with(|c| c.set("limits", "max_queued_bytes_per_connection", "262144"));
    let pid = p.child.id();
    let base = rss_kib(pid);
    let mut bystander = p.client();
    let mut hog = Raw::connect(p.port);
    hog.s
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    // `info` answers are ~1 KB: ask for them as fast as possible, read nothing.
    let info = br#"{"janus":"info","transaction":"i"}"#;
    let mut batch = Vec::new();
    for _ in 0..200 {
        batch.extend_from_slice(&Raw::frame(0x1, true, info.len() as u64, info));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut peak = base;
    let cut = loop {
        if hog.send(&batch).is_err() {
            break true;
        }
        peak = peak.max(rss_kib(pid));
        // The proxy stays responsive for everyone else meanwhile.
        let r = bystander.request(json!({"janus": "ping"}));
        assert_eq!(r["janus"], "pong");
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(cut, "a client that reads nothing was never disconnected");
    assert!(
        peak < base + 64 * 1024,
        "proxy RSS grew from {base} KiB to {peak} KiB"
    );
    assert_serves_new_clients(&mut p);
    assert_memory_back(&p, base, 32 * 1024);
}

#[test]
fn connection_flood_is_refused_cleanly_and_recovers() {
    let mut p = proxy_with(|c| c.set("limits", "max_connections", "30"));
    let held: Vec<Raw> = (0..30).map(|_| Raw::connect(p.port)).collect();
    let mut extra = Raw::tcp(p.port);
    extra
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 503"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    // Slots come back as the proxy notices the closes.
    let deadline = Instant::now() + T;
    loop {
        if let Ok(mut c) = Client::try_connect(&p.url(), Some("janus-protocol")) {
            if c.try_request(json!({"janus": "ping"}), T).is_some() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no slot freed after the flood");
        poll_pause();
    }
    assert_serves_new_clients(&mut p);
}

#[test]
fn slow_handshakes_are_cut_and_do_not_block_others() {
    let mut p = proxy_with(|c| c.set("limits", "handshake_timeout", "1"));
    let mut slow: Vec<TcpStream> = (0..8).map(|_| Raw::tcp(p.port)).collect();
    for s in &mut slow {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    let started = Instant::now();
    // Trickle one header byte at a time: a slowloris never finishes its head.
    let mut all_closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        all_closed = slow.iter_mut().all(|s| {
            s.write_all(b"X").is_err() || {
                let mut b = [0u8; 1];
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                matches!(s.read(&mut b), Ok(0) | Err(_)) && s.write_all(b"Y").is_err()
            }
        });
        if all_closed {
            break;
        }
        // New clients are served while the slow ones hang on.
        let mut c = p.client();
        assert_eq!(c.request(json!({"janus": "ping"}))["janus"], "pong");
    }
    assert!(
        all_closed,
        "slow handshakes still open after 5 s (timeout 1 s)"
    );
    assert_serves_new_clients(&mut p);
}

#[test]
fn connections_without_a_session_are_closed() {
    let p = proxy_with(|c| c.set("limits", "no_session_timeout", "1"));
    let mut idle = Raw::connect(p.port);
    let mut holder = p.client();
    let sid = holder.create_session();
    assert!(idle.closed_within(Duration::from_secs(5)));
    // A connection that holds a session stays.
    let r = holder.request(json!({"janus": "keepalive", "session_id": sid}));
    assert_eq!(r["janus"], "ack", "{r}");
}

/// A session id in 1..2^53 owned by `shard` of `n`.
fn id_on_shard(shard: usize, n: usize) -> u64 {
    (1u64..)
        .map(|i| i * 7_919)
        .find(|&id| janus_cloud::runtime::jump_hash::jump_hash(id, n) == shard)
        .unwrap()
}

#[test]
fn sessions_per_connection_are_counted_across_shards() {
    let p = proxy_with(|c| c.set("ws_transport", "max_sessions_per_connection", "2"));
    let mut c = p.client();
    let (a, b) = (id_on_shard(0, 2), id_on_shard(1, 2));
    for id in [a, b] {
        let r = c.request(json!({"janus": "create", "id": id}));
        assert_eq!(r["janus"], "success", "{r}");
    }
    let r = c.request(json!({"janus": "create"}));
    assert_error(&r, 472, None);
    let r = c.request(json!({"janus": "destroy", "session_id": b}));
    assert_eq!(r["janus"], "success", "{r}");
    let r = c.request(json!({"janus": "create"}));
    assert_eq!(r["janus"], "success", "{r}");
    // Another connection has its own count.
    let mut other = p.client();
    other.create_session();
}

#[test]
fn handles_per_session_are_capped() {
    let p = proxy_with(|c| c.set("limits", "max_handles_per_session", "3"));
    let mut c = p.client();
    let sid = c.create_session();
    let handles: Vec<u64> = (0..3)
        .map(|_| c.attach(sid, "janus.plugin.dummytest"))
        .collect();
    let r = c
        .request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.dummytest"}));
    assert_error(&r, 461, None);
    let r = c.request(json!({"janus": "detach", "session_id": sid, "handle_id": handles[0]}));
    assert_eq!(r["janus"], "success", "{r}");
    c.attach(sid, "janus.plugin.dummytest");
}

#[test]
fn buffered_candidates_are_capped() {
    let mut config =
        ProxyConfig::without_backends().set("limits", "max_candidates_per_handle", "4");
    config.plugins.push("videocall".into());
    let p = Proxy::start(config);
    let mut c = p.client();
    let sid = c.create_session();
    let hid = c.attach(sid, "janus.plugin.videocall");
    let cand = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"});
    let r = c.request(json!({"janus": "trickle", "session_id": sid, "handle_id": hid, "candidates": [cand, cand, cand]}));
    assert_eq!(r["janus"], "ack", "{r}");
    let r = c.request(json!({"janus": "trickle", "session_id": sid, "handle_id": hid, "candidates": [cand, cand]}));
    assert_error(&r, 503, None);
}
