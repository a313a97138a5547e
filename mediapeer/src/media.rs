//! Synthetic media: the frames the publisher tracks send and the loop that paces them.
//!
//! Owns the embedded Opus and VP8 frames and the per-track send loop. It encodes nothing:
//! every frame is a fixed, pre-encoded byte string, valid enough that Janus relays it and a
//! browser decodes it. It never touches signalling or the peer connection's state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::Track;
use webrtc::peer_connection::RTCPeerConnectionState;
use webrtc::rtp_transceiver::RtpSender;

/// One 20 ms Opus frame of silence: TOC 0xF8 (CELT-only, fullband, 20 ms, mono, one frame)
/// followed by the two-byte silence payload that libopus's DTX/comfort path emits.
pub(crate) const OPUS_SILENCE_20MS: &[u8] = &[0xf8, 0xff, 0xfe];

/// Spacing of the audio frames.
pub(crate) const AUDIO_FRAME: Duration = Duration::from_millis(20);

/// Spacing of the video frames (about 30 fps).
pub(crate) const VIDEO_FRAME: Duration = Duration::from_micros(33_333);

/// A 320x240 VP8 keyframe (293 bytes): a grey diagonal gradient with flat chroma.
///
/// Made once with libvpx's `vpxenc --codec=vp8 -w 320 -h 240 --i420 --limit=1
/// --kf-max-dist=1 --end-usage=q --cq-level=60 --min-q=50 --max-q=63 -D --ivf` from a
/// synthetic I420 frame, and taken out of the IVF container (the frame after the 32-byte
/// file header and 12-byte frame header); `vpxdec` decodes it back to the gradient. Sending
/// it as every frame makes a valid stream in which every frame is a keyframe, so a
/// subscriber can start decoding at any packet and no PLI/FIR ever needs an answer.
pub(crate) const VP8_KEYFRAME_320X240: &[u8] = &[
    0x70, 0x1c, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0x08, 0x47, 0x08, 0x85, 0x85, 0x88,
    0x85, 0x84, 0x88, 0x2c, 0x03, 0xbb, 0x83, 0x25, 0x08, 0x9b, 0x5a, 0x48, 0xcd, 0x84, 0xff, 0xf9,
    0x7f, 0x9f, 0xb0, 0x35, 0x95, 0x90, 0xdf, 0x83, 0xcd, 0x7e, 0x0f, 0x35, 0xf8, 0x3e, 0x6f, 0xbd,
    0x88, 0x9e, 0xfe, 0x14, 0x81, 0x26, 0xaf, 0xf3, 0x2e, 0xb6, 0xe9, 0x15, 0xa3, 0xeb, 0x32, 0x8f,
    0x01, 0xfa, 0x60, 0xb4, 0x1f, 0xb0, 0x9a, 0xd5, 0x01, 0xf7, 0x24, 0xbe, 0x86, 0x2c, 0xc0, 0x78,
    0xcf, 0x99, 0x93, 0x56, 0xbb, 0x74, 0xbd, 0xc7, 0xc4, 0x51, 0x4a, 0x5d, 0xbc, 0x52, 0xcf, 0x90,
    0xa8, 0x7a, 0xb7, 0x41, 0xd4, 0x75, 0x81, 0x6e, 0xea, 0x7e, 0x80, 0xfb, 0x94, 0x68, 0xa4, 0x97,
    0x62, 0x94, 0x92, 0xa6, 0x0d, 0x46, 0x42, 0xa1, 0xb8, 0xcf, 0xb7, 0x4b, 0xdc, 0x83, 0x2b, 0x10,
    0x2f, 0x6b, 0x05, 0xa0, 0xfd, 0x84, 0xd6, 0xa7, 0xf3, 0x6d, 0x07, 0x8a, 0xe8, 0x69, 0x54, 0x56,
    0xdd, 0xd4, 0xfd, 0x02, 0x0c, 0x30, 0x00, 0xc7, 0x2f, 0x24, 0x6a, 0x18, 0x0c, 0x1a, 0x8c, 0x85,
    0x43, 0xd5, 0xba, 0x0e, 0x97, 0xb9, 0x06, 0x56, 0x1d, 0x79, 0xc6, 0x91, 0x5a, 0x40, 0xfb, 0x94,
    0x68, 0x6e, 0x86, 0xa2, 0x8d, 0xcf, 0x8e, 0x07, 0x8c, 0xf9, 0xa1, 0xb8, 0xcf, 0xb6, 0x4b, 0x70,
    0x83, 0x0c, 0x00, 0x0e, 0x8b, 0x63, 0xad, 0x1f, 0x9b, 0x68, 0x37, 0xd7, 0x25, 0x62, 0x0a, 0x5e,
    0x33, 0x9c, 0x5b, 0xce, 0xd9, 0x2d, 0xc1, 0xf7, 0x28, 0xd0, 0xdd, 0x0d, 0xa4, 0x6a, 0x18, 0x22,
    0xa0, 0xdf, 0x5c, 0x95, 0x88, 0x29, 0x76, 0xf1, 0x49, 0xa1, 0x58, 0x24, 0x80, 0xfe, 0xb1, 0xb1,
    0x7f, 0x49, 0x74, 0xb9, 0x0d, 0xfe, 0x0c, 0xb6, 0xd8, 0x65, 0x0b, 0xf3, 0xeb, 0x24, 0xce, 0xf0,
    0x2e, 0xc1, 0x09, 0x9b, 0x5e, 0xe1, 0xd0, 0x4a, 0x0d, 0xb7, 0xb4, 0xf2, 0xab, 0xbc, 0xbf, 0xa3,
    0x4e, 0xb3, 0xcc, 0x4c, 0x15, 0x92, 0x73, 0xcf, 0xeb, 0x99, 0xc4, 0x88, 0x32, 0xa3, 0x6d, 0xfe,
    0xe8, 0x6e, 0x00, 0xda, 0xc0,
];

/// Sends `frame` on `track` every `period` once the connection is up, until the task is
/// aborted or the connection closes or fails.
///
/// Waits for [`RTCPeerConnectionState::Connected`] first (samples written before the sender
/// is bound go nowhere), then reads the payload type that negotiation gave the sender's
/// codec, falling back to `default_pt` (the one this crate offered).
pub(crate) async fn send_loop(
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    frame: &'static [u8],
    period: Duration,
    default_pt: u8,
) {
    let connected = state
        .wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Closed
                    | RTCPeerConnectionState::Failed
            )
        })
        .await
        .map(|s| *s == RTCPeerConnectionState::Connected);
    if !matches!(connected, Ok(true)) {
        return;
    }
    let payload_type = match sender.get_parameters().await {
        Ok(p) => p
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .unwrap_or(default_pt),
        Err(_) => default_pt,
    };
    let Some(ssrc) = track.ssrcs().await.first().copied() else {
        return;
    };
    let data = Bytes::from_static(frame);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if matches!(
            *state.borrow(),
            RTCPeerConnectionState::Closed | RTCPeerConnectionState::Failed
        ) {
            return;
        }
        let sample = webrtc_sample(data.clone(), period);
        // A write can fail transiently (e.g. while a renegotiation rebinds the sender); the
        // next tick tries again. The loop ends with the connection or when aborted.
        let _ = track.write_sample(ssrc, payload_type, &sample, &[]).await;
    }
}

fn webrtc_sample(data: Bytes, duration: Duration) -> rtc::media::Sample {
    rtc::media::Sample {
        data,
        timestamp: Instant::now(),
        duration,
        packet_timestamp: 0,
        prev_dropped_packets: 0,
        prev_padding_packets: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_header_is_a_320x240_keyframe() {
        let f = VP8_KEYFRAME_320X240;
        assert_eq!(f.len(), 293);
        // frame tag: bit 0 clear = keyframe; first partition size fits in the frame
        assert_eq!(f[0] & 1, 0);
        let first_partition = (u32::from(f[0]) | u32::from(f[1]) << 8 | u32::from(f[2]) << 16) >> 5;
        assert!((first_partition as usize) < f.len());
        assert_eq!(&f[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([f[6], f[7]]) & 0x3fff, 320);
        assert_eq!(u16::from_le_bytes([f[8], f[9]]) & 0x3fff, 240);
    }

    #[test]
    fn opus_silence_is_one_20ms_celt_frame() {
        let toc = OPUS_SILENCE_20MS[0];
        assert_eq!(toc >> 3, 31, "config 31: CELT fullband 20 ms");
        assert_eq!(toc & 0x3, 0, "code 0: one frame");
    }
}
