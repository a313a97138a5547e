//! The async peer: one webrtc-rs `PeerConnection` on loopback, its synthetic senders and its
//! per-mid receive counters.
//!
//! Owns the connection set-up (codecs, interceptors, ICE settings for loopback), the
//! non-trickle offer/answer exchange (every SDP it returns already holds its candidates), the
//! connection-state watch, the send loops of publisher tracks and the byte counters of
//! received tracks. It speaks no signalling protocol: SDP strings in, SDP strings out.
//! Everything here must run inside a tokio runtime; the blocking facade is in the crate root.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sdp::extmap::SDES_MID_URI;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};

use crate::media::{self, AUDIO_FRAME, OPUS_SILENCE_20MS, VIDEO_FRAME, VP8_KEYFRAME_320X240};

/// Local address every peer binds: one UDP socket on loopback, an ephemeral port.
///
/// A concrete address, not a wildcard: webrtc-rs expands `0.0.0.0` into the machine's
/// interfaces and skips loopback, so a wildcard would never offer 127.0.0.1.
const BIND_ADDR: &str = "127.0.0.1:0";

/// How long ICE gathering may take before an offer/answer is given up on. On loopback with
/// no STUN/TURN servers gathering finishes in milliseconds.
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);

/// Payload type this crate offers for Opus (Chrome's and webrtc-rs's default).
const OPUS_PT: u8 = 111;
/// Payload type this crate offers for VP8 (webrtc-rs's default).
const VP8_PT: u8 = 96;

/// An async WebRTC peer on loopback: a publisher fed with synthetic Opus/VP8 media, or a
/// receive-only subscriber that counts the RTP payload bytes it gets per mid.
///
/// Every method must be called inside a tokio runtime (the one the peer was created in, or
/// any other: the connection's driver runs on the runtime it was created in). Dropping a
/// peer that was not [`close`](AsyncPeer::close)d closes it in the background.
pub struct AsyncPeer {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    senders: Mutex<Vec<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
    closed: AtomicBool,
}

/// State shared by the peer, its event handler and its reader tasks.
struct Shared {
    state: watch::Sender<RTCPeerConnectionState>,
    gathering: watch::Sender<RTCIceGatheringState>,
    received: Mutex<BTreeMap<String, u64>>,
    pc: OnceLock<Weak<dyn PeerConnection>>,
}

struct Handler {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.shared.gathering.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.shared.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Runs on the connection's driver: never call back into the connection from here,
        // hand the track to a task of its own.
        tokio::spawn(read_track(track, Arc::clone(&self.shared)));
    }
}

/// Drains one remote track, adding each RTP packet's payload length to its mid's counter.
async fn read_track(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let mut mid: Option<String> = None;
    while let Some(event) = track.poll().await {
        match event {
            // simulcast layers each open; the first names the mid
            TrackRemoteEvent::OnOpen(init) if mid.is_none() => {
                mid = Some(mid_of(&shared, init.receiver_id).await);
            }
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let key = mid.get_or_insert_with(|| "unknown".to_owned());
                if let Ok(mut received) = shared.received.lock() {
                    *received.entry(key.clone()).or_default() += packet.payload.len() as u64;
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// The mid of the transceiver that owns `receiver_id`, or `receiver-N` when it has none.
async fn mid_of(shared: &Shared, receiver_id: RTCRtpReceiverId) -> String {
    let id = usize::from(receiver_id);
    if let Some(pc) = shared.pc.get().and_then(Weak::upgrade) {
        for transceiver in pc.get_transceivers().await {
            if transceiver.id() == id {
                if let Ok(Some(mid)) = transceiver.mid().await {
                    return mid;
                }
            }
        }
    }
    format!("receiver-{id}")
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PT,
    }
}

fn vp8() -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/VP8".to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![
                fb("goog-remb", ""),
                fb("ccm", "fir"),
                fb("nack", ""),
                fb("nack", "pli"),
            ],
        },
        payload_type: VP8_PT,
    }
}

/// A random non-zero 32-bit value (SSRCs, stream ids), from std's randomly keyed hasher.
fn random_u32() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() as u32).max(1)
}

impl AsyncPeer {
    /// Builds a connection bound to 127.0.0.1 with `media_engine`'s codecs and the default
    /// interceptors (NACK, RTCP reports, TWCC receiver, simulcast header extensions).
    async fn build(mut media_engine: MediaEngine) -> Result<AsyncPeer> {
        // The interceptors register the mid extension for video only; browsers (and Janus's
        // subscriber offers) carry it on audio too.
        media_engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: SDES_MID_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)
            .context("registering interceptors")?;
        // Loopback host candidates only, plain IPs (no mDNS names), UDP over IPv4.
        let setting_engine = SettingEngineBuilder::new()
            .with_include_loopback_candidate(true)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_network_types(vec![NetworkType::Udp4])
            .build();
        let (state, _) = watch::channel(RTCPeerConnectionState::New);
        let (gathering, _) = watch::channel(RTCIceGatheringState::New);
        let shared = Arc::new(Shared {
            state,
            gathering,
            received: Mutex::new(BTreeMap::new()),
            pc: OnceLock::new(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                shared: Arc::clone(&shared),
            }))
            .with_udp_addrs(vec![BIND_ADDR.to_owned()])
            .build()
            .await
            .context("creating the peer connection")?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let _ = shared.pc.set(Arc::downgrade(&pc));
        Ok(AsyncPeer {
            pc,
            shared,
            senders: Mutex::new(Vec::new()),
            runtime: tokio::runtime::Handle::current(),
            closed: AtomicBool::new(false),
        })
    }

    /// A sendonly publisher with one Opus track (when `audio`) and one VP8 track (when
    /// `video`), in that m-line order. Media starts once the connection is up: an Opus
    /// silence frame every 20 ms and a 320x240 VP8 keyframe about 30 times a second.
    /// Returns the peer and its complete offer SDP (candidates included: no trickle).
    pub async fn publisher(audio: bool, video: bool) -> Result<(AsyncPeer, String)> {
        Self::sender(audio, video, RTCRtpTransceiverDirection::Sendonly).await
    }

    /// Like [`publisher`](AsyncPeer::publisher) but sendrecv, so that what the remote end
    /// sends back (e.g. Janus's EchoTest) is counted by [`received`](AsyncPeer::received).
    pub async fn echo_publisher(audio: bool, video: bool) -> Result<(AsyncPeer, String)> {
        Self::sender(audio, video, RTCRtpTransceiverDirection::Sendrecv).await
    }

    async fn sender(
        audio: bool,
        video: bool,
        direction: RTCRtpTransceiverDirection,
    ) -> Result<(AsyncPeer, String)> {
        if !audio && !video {
            bail!("a publisher needs audio, video or both");
        }
        let mut media_engine = MediaEngine::default();
        if audio {
            media_engine.register_codec(opus(), RtpCodecKind::Audio)?;
        }
        if video {
            media_engine.register_codec(vp8(), RtpCodecKind::Video)?;
        }
        let peer = Self::build(media_engine).await?;
        let stream_id = format!("mediapeer-{:08x}", random_u32());
        let mut tracks = Vec::new();
        if audio {
            tracks.push((RtpCodecKind::Audio, opus(), OPUS_SILENCE_20MS, AUDIO_FRAME));
        }
        if video {
            tracks.push((
                RtpCodecKind::Video,
                vp8(),
                VP8_KEYFRAME_320X240,
                VIDEO_FRAME,
            ));
        }
        for (kind, codec, frame, period) in tracks {
            let track = Arc::new(TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    stream_id.clone(),
                    format!("{stream_id}-{kind}"),
                    format!("mediapeer {kind}"),
                    kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(random_u32()),
                            ..Default::default()
                        },
                        codec: codec.rtp_codec.clone(),
                        ..Default::default()
                    }],
                ),
            )?);
            let transceiver = peer
                .pc
                .add_transceiver_from_track(
                    Arc::clone(&track) as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction,
                        streams: vec![stream_id.clone()],
                        send_encodings: vec![],
                    }),
                )
                .await
                .with_context(|| format!("adding the {kind} track"))?;
            let sender = transceiver
                .sender()
                .await?
                .ok_or_else(|| anyhow!("the {kind} transceiver has no sender"))?;
            let task = tokio::spawn(media::send_loop(
                track,
                sender,
                peer.shared.state.subscribe(),
                frame,
                period,
                codec.payload_type,
            ));
            peer.senders
                .lock()
                .map_err(|_| anyhow!("sender list poisoned"))?
                .push(task);
        }
        let offer = peer
            .pc
            .create_offer(None)
            .await
            .context("creating the offer")?;
        peer.pc
            .set_local_description(offer)
            .await
            .context("applying the local offer")?;
        let sdp = peer.gathered_local_sdp().await?;
        Ok((peer, sdp))
    }

    /// A receive-only peer answering `offer` (e.g. a Janus VideoRoom subscriber offer: any
    /// number of audio/video m-lines; an application m-line is answered too, and m-lines
    /// whose codecs it does not know are rejected). Knows webrtc-rs's default codecs (Opus,
    /// G722, PCMU/PCMA, VP8, VP9, H264, AV1, ...). Returns the peer and its complete answer.
    pub async fn subscriber(offer: &str) -> Result<(AsyncPeer, String)> {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs()?;
        let peer = Self::build(media_engine).await?;
        let answer = peer.answer(offer).await?;
        Ok((peer, answer))
    }

    /// Applies the remote answer (publisher side).
    pub async fn set_answer(&self, sdp: &str) -> Result<()> {
        let answer = RTCSessionDescription::answer(sdp.to_owned()).context("parsing the answer")?;
        self.pc
            .set_remote_description(answer)
            .await
            .context("applying the remote answer")
    }

    /// Applies a new remote offer (a subscriber's renegotiation, e.g. Janus's `updated`
    /// event) and returns the complete answer.
    pub async fn renegotiate(&self, offer: &str) -> Result<String> {
        self.answer(offer).await
    }

    async fn answer(&self, offer: &str) -> Result<String> {
        let offer = RTCSessionDescription::offer(offer.to_owned()).context("parsing the offer")?;
        self.pc
            .set_remote_description(offer)
            .await
            .context("applying the remote offer")?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .context("creating the answer")?;
        self.pc
            .set_local_description(answer)
            .await
            .context("applying the local answer")?;
        self.gathered_local_sdp().await
    }

    /// Waits for ICE gathering to complete and returns the local description, which then
    /// carries every candidate.
    async fn gathered_local_sdp(&self) -> Result<String> {
        let mut gathering = self.shared.gathering.subscribe();
        let done = tokio::time::timeout(
            GATHER_TIMEOUT,
            gathering.wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await;
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => bail!("the peer connection went away while gathering candidates"),
            Err(_) => bail!("ICE gathering did not complete within {GATHER_TIMEOUT:?}"),
        }
        let sdp = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description after gathering"))?
            .sdp;
        if !sdp.contains("a=candidate:") {
            bail!("the local description has no ICE candidate:\n{sdp}");
        }
        Ok(sdp)
    }

    /// The current connection state (ICE + DTLS combined).
    pub fn state(&self) -> RTCPeerConnectionState {
        *self.shared.state.borrow()
    }

    /// Waits until ICE+DTLS are connected (`PeerConnectionState::Connected`), or errors after
    /// `within`, or as soon as the connection fails or closes.
    pub async fn wait_connected(&self, within: Duration) -> Result<()> {
        let mut state = self.shared.state.subscribe();
        let outcome = tokio::time::timeout(
            within,
            state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        .map(|r| r.map(|s| *s));
        match outcome {
            Ok(Ok(RTCPeerConnectionState::Connected)) => Ok(()),
            Ok(Ok(s)) => bail!("peer connection {s} before it connected"),
            Ok(Err(_)) => bail!("peer connection went away before it connected"),
            Err(_) => bail!(
                "peer connection not connected within {within:?} (state {})",
                self.state()
            ),
        }
    }

    /// RTP payload bytes received so far, per receiving transceiver mid. A mid appears with
    /// its first packet.
    pub fn received(&self) -> BTreeMap<String, u64> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Waits until every mid in `mids` has received more than `min_bytes` of RTP payload, or
    /// errors after `within`, naming the mids that did not (with what they got).
    pub async fn wait_received(
        &self,
        mids: &[&str],
        min_bytes: u64,
        within: Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let received = self.received();
            let short: Vec<String> = mids
                .iter()
                .filter(|mid| received.get(**mid).copied().unwrap_or(0) <= min_bytes)
                .map(|mid| format!("{mid} ({} bytes)", received.get(*mid).copied().unwrap_or(0)))
                .collect();
            if short.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "within {within:?}, these mids did not receive more than {min_bytes} bytes: {} \
                     (all counters: {received:?}, connection {})",
                    short.join(", "),
                    self.state()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the media senders and closes the PeerConnection. Idempotent.
    pub async fn close(&self) {
        self.stop_senders();
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.pc.close().await;
        }
    }

    fn stop_senders(&self) {
        if let Ok(mut senders) = self.senders.lock() {
            for task in senders.drain(..) {
                task.abort();
            }
        }
    }
}

impl Drop for AsyncPeer {
    fn drop(&mut self) {
        self.stop_senders();
        if !self.closed.swap(true, Ordering::SeqCst) {
            let pc = Arc::clone(&self.pc);
            // On a runtime that is shutting down the task is simply dropped with the rest.
            self.runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
