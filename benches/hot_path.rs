//! The proxy's per-message JSON work, on realistic Janus messages from 80 B to ~6 KB:
//!
//! - `client_to_backend`: parse a client request's envelope and build the backend
//!   request around the untouched `body`/`jsep` (what `echotest` does per message);
//! - `backend_to_client`: parse a backend event and rewrite its ids for the client
//!   (`reply::relay`);
//!
//! each done two ways: the proxy's serde_json path (borrowed envelope + raw slices) and
//! simd-json (`to_borrowed_value`, rewrite, `to_vec`), which must copy its input first
//! because it parses in place. Run: `cargo bench --bench hot_path`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use janus_cloud::api::json::{ObjectWriter, RawObject};
use janus_cloud::api::reply::{self, Addr};
use janus_cloud::api::request::Request;
use simd_json::prelude::*;

/// A browser-like SDP of roughly `target` bytes: session part, audio section, then video
/// codec lines until the size is reached.
fn sdp(target: usize) -> String {
    let mut s = String::from(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Yx3b\r\na=ice-pwd:9oLqDzjR2bQ0lT0Hcaj+Vv8Z\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CF:CC:86:9A:4E:1C:8D:1E:2D:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4\r\n\
a=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendrecv\r\na=msid:stream audio0\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:1001 cname:abcdefgh\r\n",
    );
    let mut pt = 96;
    if s.len() < target {
        s.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\n");
    }
    while s.len() < target {
        s.push_str(&format!(
            "a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} transport-cc\r\na=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n"
        ));
        pt += 1;
    }
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// (name, client request, backend event) pairs of increasing size.
fn messages() -> Vec<(&'static str, String, String)> {
    let keepalive =
        r#"{"janus":"keepalive","session_id":4387364739262731,"transaction":"0JmZYAgXGmA9"}"#
            .to_string();
    let keepalive_reply =
        r#"{"janus":"ack","session_id":1231750401939818,"transaction":"88172"}"#.to_string();
    let trickle = r#"{"janus":"trickle","session_id":4387364739262731,"handle_id":2730744313639563,"transaction":"tr1","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 50123 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag Yx3b network-cost 999","sdpMid":"0","sdpMLineIndex":0}}"#.to_string();
    let media = r#"{"janus":"media","session_id":1231750401939818,"sender":6984701946367361,"mid":"0","type":"audio","receiving":true}"#.to_string();
    let offer = |size| {
        format!(
            r#"{{"janus":"message","session_id":4387364739262731,"handle_id":2730744313639563,"transaction":"isT0iMKXD3ec","body":{{"audio":true,"video":true}},"jsep":{{"type":"offer","sdp":{}}}}}"#,
            json_str(&sdp(size))
        )
    };
    let answer = |size| {
        format!(
            r#"{{"janus":"event","session_id":1231750401939818,"transaction":"77123","sender":6984701946367361,"plugindata":{{"plugin":"janus.plugin.echotest","data":{{"echotest":"event","result":"ok"}}}},"jsep":{{"type":"answer","sdp":{}}}}}"#,
            json_str(&sdp(size))
        )
    };
    vec![
        ("keepalive", keepalive, keepalive_reply),
        ("trickle", trickle, media),
        ("sdp_1k5", offer(1400), answer(1400)),
        ("sdp_6k", offer(5800), answer(5800)),
    ]
}

/// The proxy's path: envelope parse, then the backend request written around raw slices.
fn serde_client_to_backend(text: &str) -> Vec<u8> {
    let req = Request::parse(text).unwrap();
    let mut w = ObjectWriter::with_capacity(text.len() + 64);
    w.str("janus", &req.verb_text)
        .u64("session_id", 1231750401939818)
        .u64("handle_id", 6984701946367361)
        .str("transaction", "77123");
    for key in ["body", "jsep", "candidate"] {
        if let Some(v) = req.get(key) {
            w.raw(key, v.get());
        }
    }
    w.finish()
}

fn serde_backend_to_client(text: &str) -> Vec<u8> {
    let msg = RawObject::parse(text).unwrap();
    let addr = Addr {
        session_id: 4387364739262731,
        handle_id: 2730744313639563,
        opaque_id: None,
    };
    let janus = msg
        .get("janus")
        .and_then(janus_cloud::api::json::as_str)
        .unwrap_or_default();
    reply::relay(&msg, &janus, addr, Some("\"isT0iMKXD3ec\""))
}

/// simd-json: parse in place (hence the copy), rewrite the ids, serialise everything.
fn simd_rewrite(
    text: &str,
    session: u64,
    handle_key: &str,
    handle: u64,
    transaction: &str,
) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let mut v = simd_json::to_borrowed_value(&mut bytes).unwrap();
    let o = v.as_object_mut().unwrap();
    o.insert("session_id".into(), session.into());
    o.insert(handle_key.into(), handle.into());
    o.insert("transaction".into(), transaction.into());
    simd_json::to_vec(&v).unwrap()
}

fn bench(c: &mut Criterion) {
    for (name, request, event) in messages() {
        let mut g = c.benchmark_group(format!("client_to_backend/{name}"));
        g.throughput(Throughput::Bytes(request.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("serde_json_raw", request.len()),
            &request,
            |b, t| b.iter(|| serde_client_to_backend(black_box(t))),
        );
        g.bench_with_input(
            BenchmarkId::new("simd_json", request.len()),
            &request,
            |b, t| {
                b.iter(|| {
                    simd_rewrite(
                        black_box(t),
                        1231750401939818,
                        "handle_id",
                        6984701946367361,
                        "77123",
                    )
                })
            },
        );
        g.finish();
        let mut g = c.benchmark_group(format!("backend_to_client/{name}"));
        g.throughput(Throughput::Bytes(event.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("serde_json_raw", event.len()),
            &event,
            |b, t| b.iter(|| serde_backend_to_client(black_box(t))),
        );
        g.bench_with_input(
            BenchmarkId::new("simd_json", event.len()),
            &event,
            |b, t| {
                b.iter(|| {
                    simd_rewrite(
                        black_box(t),
                        4387364739262731,
                        "sender",
                        2730744313639563,
                        "isT0iMKXD3ec",
                    )
                })
            },
        );
        g.finish();
    }
}

/// Both paths must produce the same JSON, or the comparison means nothing.
fn check_equivalence() {
    for (_, request, event) in messages() {
        let a: serde_json::Value =
            serde_json::from_slice(&serde_backend_to_client(&event)).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&simd_rewrite(
            &event,
            4387364739262731,
            "sender",
            2730744313639563,
            "isT0iMKXD3ec",
        ))
        .unwrap();
        assert_eq!(a, b);
        let a: serde_json::Value =
            serde_json::from_slice(&serde_client_to_backend(&request)).unwrap();
        assert_eq!(a["handle_id"], 6984701946367361u64);
    }
}

fn all(c: &mut Criterion) {
    check_equivalence();
    bench(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = all
}
criterion_main!(benches);
