//! Synthetic SDP for the videocall scenario: audio-only (opus + PCMU) offers and answers that
//! Janus 1.1.2 accepts, with a fake DTLS fingerprint and **no candidates**.
//!
//! Without remote candidates libnice never declares ICE failed, so Janus keeps the call up
//! until an explicit hangup and no media flows (see the Janus 1.1.2 transcripts, videocall
//! variants A/B). Only 127.0.0.1 appears, so nothing leaves loopback. Pure text, no I/O.

/// Which side of the negotiation an SDP is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The caller's offer (`a=setup:actpass`, opus + PCMU).
    Offer,
    /// The callee's answer to the offer Janus relays (`a=setup:active`, opus only).
    Answer,
}

/// A fake, fixed-format DTLS fingerprint: 32 hex bytes separated by colons.
pub fn fingerprint(seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..32)
        .map(|_| format!("{:02X}", rng.u8(..)))
        .collect::<Vec<_>>()
        .join(":")
}

/// ICE credentials: a ufrag of 8 and a pwd of 24 alphanumeric characters.
pub fn ice_credentials(seed: u64) -> (String, String) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut word = |n: usize| (0..n).map(|_| rng.alphanumeric()).collect::<String>();
    (word(8), word(24))
}

/// The `a=mid:` of the first media section of `sdp` ("0" when there is none).
pub fn first_mid(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(str::trim)
        .unwrap_or("0")
}

/// An offer (`Role::Offer`) or an answer to `remote_offer` (`Role::Answer`, which reuses the
/// offer's mid as Janus requires). Lines end with CRLF. `seed` makes ICE credentials,
/// fingerprint and SSRC differ per client.
pub fn build(role: Role, seed: u64, remote_offer: Option<&str>) -> String {
    let mid = remote_offer.map(first_mid).unwrap_or("0");
    let (ufrag, pwd) = ice_credentials(seed);
    let (origin, stream, payloads, setup) = match role {
        Role::Offer => ("1000000001", "loadtest", "111 0", "actpass"),
        Role::Answer => ("1000000002", "loadtestb", "111", "active"),
    };
    let ssrc = (seed % 4_000_000_000) as u32 + 1;
    let mut lines = vec![
        "v=0".to_string(),
        format!("o=- {origin} 2 IN IP4 127.0.0.1"),
        "s=-".into(),
        "t=0 0".into(),
        format!("a=group:BUNDLE {mid}"),
        format!("a=msid-semantic: WMS {stream}"),
        format!("m=audio 9 UDP/TLS/RTP/SAVPF {payloads}"),
        "c=IN IP4 0.0.0.0".into(),
        "a=rtcp:9 IN IP4 0.0.0.0".into(),
        format!("a=ice-ufrag:{ufrag}"),
        format!("a=ice-pwd:{pwd}"),
        "a=ice-options:trickle".into(),
        format!("a=fingerprint:sha-256 {}", fingerprint(seed)),
        format!("a=setup:{setup}"),
        format!("a=mid:{mid}"),
        "a=sendrecv".into(),
        format!("a=msid:{stream} {stream}-audio"),
        "a=rtcp-mux".into(),
        "a=rtpmap:111 opus/48000/2".into(),
        "a=fmtp:111 minptime=10;useinbandfec=1".into(),
    ];
    if role == Role::Offer {
        lines.push("a=rtpmap:0 PCMU/8000".into());
    }
    lines.push(format!("a=ssrc:{ssrc} cname:{stream}"));
    let mut sdp = lines.join("\r\n");
    sdp.push_str("\r\n");
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_has_the_lines_janus_needs() {
        let sdp = build(Role::Offer, 7, None);
        assert!(sdp.starts_with("v=0\r\n"));
        assert!(sdp.ends_with("\r\n"));
        assert!(!sdp.contains("\n\n"));
        for needed in [
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
            "a=setup:actpass",
            "a=mid:0",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=ice-options:trickle",
        ] {
            assert!(sdp.contains(needed), "missing {needed}");
        }
        assert!(
            !sdp.contains("a=candidate"),
            "no candidates: ICE must never fail"
        );
        assert!(sdp.lines().all(|l| !l.is_empty() || l.is_empty()));
    }

    #[test]
    fn answer_reuses_the_offer_mid() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio7\r\n";
        let sdp = build(Role::Answer, 1, Some(offer));
        assert!(sdp.contains("a=mid:audio7\r\n"));
        assert!(sdp.contains("a=group:BUNDLE audio7\r\n"));
        assert!(sdp.contains("a=setup:active"));
        assert!(!sdp.contains("PCMU"));
    }

    #[test]
    fn fingerprint_and_credentials_have_the_right_shape() {
        let fp = fingerprint(3);
        assert_eq!(fp.split(':').count(), 32);
        assert!(fp.split(':').all(|b| b.len() == 2));
        let (u, p) = ice_credentials(3);
        assert_eq!((u.len(), p.len()), (8, 24));
        assert_ne!(fingerprint(3), fingerprint(4));
    }

    #[test]
    fn first_mid_defaults_to_zero() {
        assert_eq!(first_mid("v=0\r\n"), "0");
        assert_eq!(first_mid("a=mid:1 \r\na=mid:2\r\n"), "1");
    }
}
