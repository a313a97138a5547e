//! Echotest round trips against one or more Janus API URLs, measured in one run so that
//! the numbers compare (a proxy vs the Janus behind it). A hand-run measuring tool, not
//! a test; the full load generator is `janus-loadtest`.
//!
//! ```text
//! cargo run --release --example echo_rtt -- [--clients K] [--seconds S] [--pid PID] URL...
//! ```
//! Each of K clients (one thread and one WebSocket each) creates a session, attaches
//! echotest, then loops `message {"audio":true}` → `ack` + `event`. Per URL it prints
//! round trips/s, p50/p99 latency, and with `--pid` the CPU time that process used per
//! round trip (from /proc). URLs are measured one after another, `--rounds` times over.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

struct Client {
    ws: WebSocket<TcpStream>,
    session: u64,
    handle: u64,
    n: u64,
}

impl Client {
    fn connect(url: &str) -> Client {
        let mut req = url.into_client_request().expect("url");
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-protocol".parse().expect("header"),
        );
        let (ws, _) = tungstenite::connect(req).expect("connect");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_nodelay(true).expect("nodelay");
        }
        let ws = match ws.into_inner() {
            tungstenite::stream::MaybeTlsStream::Plain(s) => {
                WebSocket::from_raw_socket(s, tungstenite::protocol::Role::Client, None)
            }
            _ => panic!("plain ws only"),
        };
        let mut c = Client {
            ws,
            session: 0,
            handle: 0,
            n: 0,
        };
        c.session = c.request(json!({"janus":"create"}))["data"]["id"]
            .as_u64()
            .expect("session");
        let s = c.session;
        c.handle = c
            .request(json!({"janus":"attach","session_id":s,"plugin":"janus.plugin.echotest"}))
            ["data"]["id"]
            .as_u64()
            .expect("handle");
        c
    }

    fn send(&mut self, mut v: Value) -> String {
        self.n += 1;
        let t = format!("t{}", self.n);
        v["transaction"] = t.clone().into();
        self.ws.send(Message::text(v.to_string())).expect("send");
        t
    }

    fn recv(&mut self) -> Value {
        loop {
            match self.ws.read().expect("read") {
                Message::Text(t) => return serde_json::from_str(&t).expect("json"),
                _ => continue,
            }
        }
    }

    fn request(&mut self, v: Value) -> Value {
        let t = self.send(v);
        loop {
            let r = self.recv();
            if r["transaction"] == t.as_str() && r["janus"] != "ack" {
                return r;
            }
        }
    }

    /// One echotest round trip: until the `event` with our transaction.
    fn echo(&mut self) {
        let (s, h) = (self.session, self.handle);
        let r = self
            .request(json!({"janus":"message","session_id":s,"handle_id":h,"body":{"audio":true}}));
        assert_eq!(r["janus"], "event", "{r}");
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn run(url: &str, clients: usize, seconds: f64, pid: Option<u32>) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let cpu0 = pid.map(cpu_seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let mut c = Client::connect(&url);
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    c.echo();
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                let (s, _) = (c.session, c.handle);
                c.request(json!({"janus":"destroy","session_id":s}));
                lat
            })
        })
        .collect();
    let mut lat: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client"))
        .collect();
    let wall = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let n = lat.len() as f64;
    let cpu = match (pid, cpu0) {
        (Some(p), Some(c0)) => format!(" cpu/rt={:.1}us", (cpu_seconds(p) - c0) / n * 1e6),
        _ => String::new(),
    };
    println!(
        "{url}: clients={clients} round_trips={} rt/s={:.0} p50={:.0}us p99={:.0}us{cpu}",
        lat.len(),
        n / wall,
        q(0.50),
        q(0.99)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut clients, mut seconds, mut rounds) = (16usize, 5.0f64, 1usize);
    let mut targets: Vec<(String, Option<u32>)> = Vec::new();
    let mut pid = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--clients" => {
                clients = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--clients N")
            }
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds S")
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--pid" => pid = args.next().and_then(|v| v.parse().ok()),
            url => targets.push((url.to_string(), pid.take())),
        }
    }
    for _ in 0..rounds {
        for (url, pid) in &targets {
            run(url, clients, seconds, *pid);
        }
    }
}
