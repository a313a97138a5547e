//! Synthetic SDP: audio-only (opus + PCMU) offers and answers for the videocall scenario,
//! and receive-only answers mirroring any offer (the VideoRoom's subscriber offers), all
//! with a fake DTLS fingerprint and **no candidates**.
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

/// One media section (`m=` line and what follows it up to the next one) of an SDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    /// `audio`, `video`, `application`, …
    pub kind: &'a str,
    /// The port of the `m=` line: `0` means the section is rejected / disabled.
    pub port: &'a str,
    /// The transport protocol (`UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`, …).
    pub proto: &'a str,
    /// The formats (payload types, or `webrtc-datachannel`).
    pub fmts: Vec<&'a str>,
    /// Its `a=` lines, without the `a=`.
    pub attrs: Vec<&'a str>,
}

impl<'a> Section<'a> {
    /// The value of the first `a=<name>:<value>` attribute.
    pub fn attr(&self, name: &str) -> Option<&'a str> {
        self.attrs.iter().find_map(|a| {
            a.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    }

    /// `a=mid:` ("" when the section has none).
    pub fn mid(&self) -> &'a str {
        self.attr("mid").unwrap_or("")
    }

    /// Whether the offerer sends media here: not rejected, and `sendonly`/`sendrecv`.
    pub fn sends(&self) -> bool {
        self.port != "0" && self.direction().is_some_and(|d| d.starts_with("send"))
    }

    /// The direction attribute (`sendrecv` when none is given, as RFC 3264 says).
    pub fn direction(&self) -> Option<&'a str> {
        const DIRS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];
        let found = self
            .attrs
            .iter()
            .find(|a| DIRS.contains(&a.trim()))
            .map(|a| a.trim());
        found.or(Some("sendrecv"))
    }

    /// `a=rtpmap:` of payload type `pt` (after the `pt `): `VP8/90000`, `opus/48000/2`.
    pub fn rtpmap(&self, pt: &str) -> Option<&'a str> {
        self.attrs.iter().find_map(|a| {
            let rest = a.strip_prefix("rtpmap:")?;
            let (p, codec) = rest.split_once(' ')?;
            (p == pt).then_some(codec.trim())
        })
    }

    /// `a=fmtp:` parameters of payload type `pt`.
    pub fn fmtp(&self, pt: &str) -> Option<&'a str> {
        self.attrs.iter().find_map(|a| {
            let rest = a.strip_prefix("fmtp:")?;
            let (p, params) = rest.split_once(' ')?;
            (p == pt).then_some(params.trim())
        })
    }

    /// The payload type an answer keeps: the first that is a real codec (not `rtx`, `red`,
    /// `ulpfec`, `flexfec`), or the first at all.
    pub fn main_payload(&self) -> Option<&'a str> {
        let helper = |pt: &&str| {
            self.rtpmap(pt).is_some_and(|c| {
                let c = c.to_ascii_lowercase();
                ["rtx/", "red/", "ulpfec/", "flexfec"]
                    .iter()
                    .any(|h| c.starts_with(h))
            })
        };
        self.fmts
            .iter()
            .find(|pt| !helper(pt))
            .or(self.fmts.first())
            .copied()
    }
}

/// The media sections of `sdp`, in order (lines may end with CRLF or LF).
pub fn sections(sdp: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            let proto = parts.next().unwrap_or("");
            out.push(Section {
                kind,
                port,
                proto,
                fmts: parts.collect(),
                attrs: Vec::new(),
            });
        } else if let (Some(a), Some(s)) = (line.strip_prefix("a="), out.last_mut()) {
            s.attrs.push(a);
        }
    }
    out
}

/// The mids of the audio/video sections of `sdp` in which the offerer sends media.
pub fn sending_mids(sdp: &str) -> Vec<String> {
    sections(sdp)
        .iter()
        .filter(|s| matches!(s.kind, "audio" | "video") && s.sends())
        .map(|s| s.mid().to_string())
        .collect()
}

/// A receive-only answer to `offer` that mirrors each of its media sections in order, as
/// a synthetic VideoRoom subscriber sends it: every section keeps its mid and the offer's
/// main codec, is `recvonly` where the offer sends (`inactive` elsewhere), and rejected
/// sections stay rejected (port 0); a data channel section is accepted. All sections share
/// one set of fake ICE credentials and DTLS fingerprint (one BUNDLE group, `a=setup:active`)
/// and there is no candidate: Janus accepts it, ICE never completes, no media flows.
/// `seed` makes credentials and fingerprint differ per client.
pub fn mirror_answer(offer: &str, seed: u64) -> String {
    let secs = sections(offer);
    let (ufrag, pwd) = ice_credentials(seed);
    let fp = fingerprint(seed);
    let accepted: Vec<&str> = secs
        .iter()
        .filter(|s| s.port != "0")
        .map(Section::mid)
        .collect();
    let mut lines = vec![
        "v=0".to_string(),
        format!(
            "o=- {} 2 IN IP4 127.0.0.1",
            1_000_000_000 + seed % 1_000_000_000
        ),
        "s=-".into(),
        "t=0 0".into(),
    ];
    if !accepted.is_empty() {
        lines.push(format!("a=group:BUNDLE {}", accepted.join(" ")));
    }
    lines.push("a=msid-semantic: WMS".into());
    for s in &secs {
        let mid = s.mid();
        if s.port == "0" {
            lines.push(format!("m={} 0 {} {}", s.kind, s.proto, s.fmts.join(" ")));
            lines.push("c=IN IP4 0.0.0.0".into());
            if !mid.is_empty() {
                lines.push(format!("a=mid:{mid}"));
            }
            lines.push("a=inactive".into());
            continue;
        }
        let data = s.kind == "application";
        let pt = if data {
            s.fmts.first().copied().unwrap_or("webrtc-datachannel")
        } else {
            s.main_payload().unwrap_or("0")
        };
        lines.push(format!("m={} 9 {} {pt}", s.kind, s.proto));
        lines.push("c=IN IP4 0.0.0.0".into());
        if !data {
            lines.push("a=rtcp:9 IN IP4 0.0.0.0".into());
        }
        lines.push(format!("a=ice-ufrag:{ufrag}"));
        lines.push(format!("a=ice-pwd:{pwd}"));
        lines.push("a=ice-options:trickle".into());
        lines.push(format!("a=fingerprint:sha-256 {fp}"));
        lines.push("a=setup:active".into());
        if !mid.is_empty() {
            lines.push(format!("a=mid:{mid}"));
        }
        if data {
            lines.push(format!(
                "a=sctp-port:{}",
                s.attr("sctp-port").unwrap_or("5000")
            ));
            continue;
        }
        lines.push(
            if s.sends() {
                "a=recvonly"
            } else {
                "a=inactive"
            }
            .into(),
        );
        lines.push("a=rtcp-mux".into());
        if let Some(codec) = s.rtpmap(pt) {
            lines.push(format!("a=rtpmap:{pt} {codec}"));
        }
        if let Some(params) = s.fmtp(pt) {
            lines.push(format!("a=fmtp:{pt} {params}"));
        }
    }
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

    /// The shape of a Janus 1.1.2 VideoRoom subscriber offer for two feeds (one with audio
    /// and video, one whose video was disabled), abridged.
    const SUB_OFFER: &str = "v=0\r\no=- 1700000000000000 1 IN IP4 127.0.0.1\r\ns=VideoRoom 1234\r\nt=0 0\r\n\
a=group:BUNDLE 0 1 2\r\na=ice-options:trickle\r\na=fingerprint:sha-256 AA:BB\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=sendonly\r\na=mid:0\r\na=rtcp-mux\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:efgh\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 useinbandfec=1\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=msid:janus janus0\r\na=ssrc:1 cname:janus\r\na=candidate:1 1 udp 2015363327 127.0.0.1 44001 typ host\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 127.0.0.1\r\na=sendonly\r\na=mid:1\r\na=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=sendonly\r\na=mid:2\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 127.0.0.1\r\na=inactive\r\na=mid:3\r\n";

    #[test]
    fn sections_of_a_subscriber_offer() {
        let s = sections(SUB_OFFER);
        assert_eq!(s.len(), 4);
        assert_eq!((s[0].kind, s[0].port, s[0].mid()), ("audio", "9", "0"));
        assert_eq!(s[1].fmts, vec!["96", "97"]);
        assert_eq!(s[1].rtpmap("97"), Some("rtx/90000"));
        assert_eq!(s[1].fmtp("97"), Some("apt=96"));
        assert_eq!(s[1].main_payload(), Some("96"));
        assert!(s[0].sends() && !s[3].sends());
        assert_eq!(s[3].direction(), Some("inactive"));
        assert_eq!(sending_mids(SUB_OFFER), vec!["0", "1", "2"]);
        // LF-only SDP parses the same
        assert_eq!(sections(&SUB_OFFER.replace("\r\n", "\n")), s);
    }

    #[test]
    fn mirror_answer_keeps_order_mids_and_main_codecs() {
        let a = mirror_answer(SUB_OFFER, 5);
        assert!(a.starts_with("v=0\r\n") && a.ends_with("\r\n"));
        assert!(!a.contains("\n\n") && !a.contains("\r\r"));
        let s = sections(&a);
        let offered = sections(SUB_OFFER);
        assert_eq!(
            s.len(),
            offered.len(),
            "one section per offered section:\n{a}"
        );
        for (x, o) in s.iter().zip(&offered) {
            assert_eq!((x.kind, x.mid()), (o.kind, o.mid()));
        }
        assert!(a.contains("a=group:BUNDLE 0 1 2\r\n"), "{a}");
        // recvonly where Janus sends, the main codec only (no rtx), port 9
        assert_eq!(s[0].direction(), Some("recvonly"));
        assert_eq!(s[1].fmts, vec!["96"]);
        assert_eq!(s[1].rtpmap("96"), Some("VP8/90000"));
        assert_eq!(s[1].rtpmap("97"), None);
        assert_eq!(s[0].fmtp("111"), Some("useinbandfec=1"));
        assert_eq!(s[2].port, "9");
        // the disabled section stays rejected
        assert_eq!((s[3].port, s[3].direction()), ("0", Some("inactive")));
        // one set of credentials and fingerprint, setup active, no candidates
        let (ufrag, _) = ice_credentials(5);
        assert_eq!(a.matches(&format!("a=ice-ufrag:{ufrag}")).count(), 3);
        assert_eq!(a.matches(&fingerprint(5)).count(), 3);
        assert_eq!(a.matches("a=setup:active").count(), 3);
        assert!(
            !a.contains("a=candidate"),
            "no candidates: ICE must never fail"
        );
        assert!(!a.contains("sendonly") && !a.contains("sendrecv"));
        assert_ne!(mirror_answer(SUB_OFFER, 6), a);
    }

    #[test]
    fn mirror_answer_of_a_data_channel_and_of_nothing() {
        let offer = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:d\r\na=sctp-port:5000\r\n";
        let a = mirror_answer(offer, 1);
        assert!(
            a.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"),
            "{a}"
        );
        assert!(a.contains("a=sctp-port:5000\r\n") && a.contains("a=mid:d\r\n"));
        assert!(!a.contains("recvonly") && !a.contains("rtcp-mux"));
        let empty = mirror_answer("v=0\r\n", 1);
        assert!(!empty.contains("m=") && !empty.contains("BUNDLE"));
    }
}
