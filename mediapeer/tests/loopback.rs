//! Two janus-mediapeer peers talking to each other on loopback, no Janus involved: the
//! publisher's offer is answered by a subscriber, both connect, and the subscriber receives
//! the synthetic audio and video.

use std::time::Duration;

use janus_mediapeer::Peers;

/// The `a=mid:` values of the m-sections of `kind` ("audio", "video") in `sdp`.
fn mids(sdp: &str, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("m=") {
            current = rest.split(' ').next().map(str::to_owned);
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if current.as_deref() == Some(kind) {
                out.push(mid.trim().to_owned());
            }
        }
    }
    out
}

#[test]
fn publisher_to_subscriber_on_loopback() {
    let peers = Peers::new();
    let (publisher, offer) = peers.publisher(true, true).unwrap();
    assert!(
        offer.contains("a=candidate:"),
        "offer without candidates:\n{offer}"
    );
    assert!(
        offer.contains("127.0.0.1"),
        "offer without a loopback candidate:\n{offer}"
    );
    assert!(
        offer.contains("a=sendonly"),
        "publisher offer is not sendonly:\n{offer}"
    );
    let (subscriber, answer) = peers.subscriber(&offer).unwrap();
    assert!(
        answer.contains("a=recvonly"),
        "subscriber answer is not recvonly:\n{answer}"
    );
    publisher.set_answer(&answer).unwrap();
    publisher.wait_connected(Duration::from_secs(10)).unwrap();
    subscriber.wait_connected(Duration::from_secs(10)).unwrap();
    let audio = mids(&answer, "audio");
    let video = mids(&answer, "video");
    assert_eq!((audio.len(), video.len()), (1, 1), "answer:\n{answer}");
    subscriber
        .wait_received(&[&audio[0], &video[0]], 200, Duration::from_secs(10))
        .unwrap();
    assert!(
        publisher.received().is_empty(),
        "a sendonly publisher received {:?}",
        publisher.received()
    );
    publisher.close();
    subscriber.close();
}

/// Janus adds an `m=application` section to a subscriber offer when a publisher has data
/// channels; the subscriber must still answer (accepting or rejecting that section).
#[test]
fn subscriber_answers_an_offer_with_a_data_channel_section() {
    let peers = Peers::new();
    let (_publisher, offer) = peers.publisher(true, false).unwrap();
    let ice: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=ice-ufrag:") || l.starts_with("a=ice-pwd:"))
        .take(2)
        .collect();
    let mut with_data = offer.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1");
    with_data.push_str(&format!(
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
         a=setup:actpass\r\na=mid:1\r\n{}\r\n{}\r\na=sctp-port:5000\r\n",
        ice[0], ice[1]
    ));
    let (_subscriber, answer) = peers.subscriber(&with_data).unwrap();
    assert!(answer.contains("m=application"), "answer:\n{answer}");
    assert!(answer.contains("a=recvonly"), "answer:\n{answer}");
}

#[test]
fn publisher_needs_a_track() {
    let peers = Peers::new();
    assert!(peers.publisher(false, false).is_err());
    assert!(peers.subscriber("not sdp").is_err());
}
