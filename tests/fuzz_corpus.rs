//! The fuzz corpora as regression tests, on stable: every input under `fuzz/corpus/<target>/`
//! (seeds from real Janus transcripts plus what `cargo fuzz` kept) and
//! `fuzz/regressions/<target>/` (inputs that once crashed) goes through the same checks the
//! fuzz targets run (`fuzz/checks.rs`).

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).expect("read corpus file");
            let r = std::panic::catch_unwind(|| check(&bytes));
            assert!(r.is_ok(), "{target}: {} fails", e.path().display());
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn ws_frame() {
    replay("ws_frame", checks::ws_frame);
}

#[test]
fn client_request() {
    replay("client_request", checks::client_request);
}

#[test]
fn backend_message() {
    replay("backend_message", checks::backend_message);
}

#[test]
fn admin_body() {
    replay("admin_body", checks::admin_body);
}

#[test]
fn config() {
    replay("config", checks::config);
}

#[test]
fn http_request() {
    replay("http_request", checks::http_request);
}
