//! janus-mediapeer: real WebRTC peers (ICE + DTLS-SRTP + RTP, via webrtc-rs) for janus-cloud's
//! tests and load tester, so that a Janus server sees real publishers reach `webrtcup` and
//! real subscribers receive RTP.
//!
//! A test/benchmark instrument, not part of the proxy. This crate owns the peers and nothing
//! else: it speaks no Janus API (the caller carries the SDP over whatever signalling it
//! uses) and it encodes no media (publishers send fixed pre-encoded frames, see `media`).
//!
//! Two faces over one implementation:
//! * [`Peers`] / [`Peer`]: a blocking facade for synchronous tests; `Peers` owns a small
//!   tokio runtime shared by the peers it creates.
//! * [`AsyncPeer`]: the same operations as `async fn`s, for tokio code (the load tester),
//!   without the facade's runtime.
//!
//! Peers bind one UDP socket on 127.0.0.1 (ephemeral port) and offer exactly one loopback
//! host candidate; they are meant for a Janus on the same machine. Offers and answers are
//! non-trickle: every SDP returned already holds the candidates.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let peers = janus_mediapeer::Peers::new();
//! let (publisher, offer) = peers.publisher(true, true)?;
//! // ... send `offer` to Janus, get its answer back ...
//! # let answer = String::new();
//! publisher.set_answer(&answer)?;
//! publisher.wait_connected(Duration::from_secs(10))?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod media;
mod peer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use peer::AsyncPeer;
/// The combined ICE + DTLS connection state reported by [`Peer::state`] and
/// [`AsyncPeer::state`] (webrtc-rs's type).
pub use webrtc::peer_connection::RTCPeerConnectionState as PeerState;

/// Blocking facade for sync tests: owns a tokio runtime (multi-thread, 2 workers) shared by
/// the peers it creates.
///
/// Use it from plain threads only: its methods block on that runtime, which panics inside an
/// async context (use [`AsyncPeer`] there). The runtime lives until the `Peers` and every
/// [`Peer`] made from it are dropped.
pub struct Peers {
    runtime: Arc<tokio::runtime::Runtime>,
}

/// One WebRTC peer connection created by [`Peers`]; the blocking twin of [`AsyncPeer`].
///
/// Dropping it closes the connection.
pub struct Peer {
    inner: AsyncPeer,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Peers {
    /// Starts the shared runtime (2 worker threads named `mediapeer`).
    ///
    /// # Panics
    ///
    /// When the OS refuses the runtime's threads or its I/O driver (nothing a test can
    /// recover from).
    pub fn new() -> Peers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mediapeer")
            .enable_all()
            .build()
            .expect("cannot start the mediapeer tokio runtime");
        Peers {
            runtime: Arc::new(runtime),
        }
    }

    fn wrap(&self, made: anyhow::Result<(AsyncPeer, String)>) -> anyhow::Result<(Peer, String)> {
        let (inner, sdp) = made?;
        Ok((
            Peer {
                inner,
                runtime: Arc::clone(&self.runtime),
            },
            sdp,
        ))
    }

    /// A sendonly publisher with one Opus audio track (when `audio`) and one VP8 video track
    /// (when `video`), in that m-line order, fed with synthetic media once connected: an Opus
    /// silence frame every 20 ms and a 320x240 VP8 keyframe about 30 times a second. Returns
    /// the peer and its complete offer SDP.
    pub fn publisher(&self, audio: bool, video: bool) -> anyhow::Result<(Peer, String)> {
        self.wrap(self.runtime.block_on(AsyncPeer::publisher(audio, video)))
    }

    /// Like [`publisher`](Peers::publisher) but sendrecv: what the remote end sends back (an
    /// echo such as Janus's EchoTest) is counted by [`Peer::received`].
    pub fn echo_publisher(&self, audio: bool, video: bool) -> anyhow::Result<(Peer, String)> {
        self.wrap(
            self.runtime
                .block_on(AsyncPeer::echo_publisher(audio, video)),
        )
    }

    /// A receive-only peer answering `offer` (Janus's subscriber offer: any number of
    /// audio/video m-lines; a data channel m-line is answered too, unknown codecs' m-lines
    /// are rejected). Returns the peer and its complete answer SDP.
    pub fn subscriber(&self, offer: &str) -> anyhow::Result<(Peer, String)> {
        self.wrap(self.runtime.block_on(AsyncPeer::subscriber(offer)))
    }
}

impl Default for Peers {
    fn default() -> Peers {
        Peers::new()
    }
}

impl Peer {
    /// Applies the remote answer (publisher side).
    pub fn set_answer(&self, sdp: &str) -> anyhow::Result<()> {
        self.runtime.block_on(self.inner.set_answer(sdp))
    }

    /// Applies a new remote offer (a subscriber's renegotiation, e.g. Janus's `updated`
    /// event) and returns the answer.
    pub fn renegotiate(&self, offer: &str) -> anyhow::Result<String> {
        self.runtime.block_on(self.inner.renegotiate(offer))
    }

    /// The current connection state (ICE + DTLS combined).
    pub fn state(&self) -> PeerState {
        self.inner.state()
    }

    /// Waits until ICE+DTLS are connected (`PeerConnectionState::Connected`), or errors after
    /// `within` (or as soon as the connection fails or closes).
    pub fn wait_connected(&self, within: Duration) -> anyhow::Result<()> {
        self.runtime.block_on(self.inner.wait_connected(within))
    }

    /// RTP payload bytes received so far, per receiving transceiver mid (a mid appears with
    /// its first packet).
    pub fn received(&self) -> BTreeMap<String, u64> {
        self.inner.received()
    }

    /// Waits until every mid in `mids` has received more than `min_bytes`, or errors (naming
    /// the mids that didn't) after `within`.
    pub fn wait_received(
        &self,
        mids: &[&str],
        min_bytes: u64,
        within: Duration,
    ) -> anyhow::Result<()> {
        self.runtime
            .block_on(self.inner.wait_received(mids, min_bytes, within))
    }

    /// Closes the PeerConnection (and stops its media). Idempotent.
    pub fn close(&self) {
        self.runtime.block_on(self.inner.close())
    }

    /// The async peer behind this facade.
    pub fn as_async(&self) -> &AsyncPeer {
        &self.inner
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Close in place when we may block; inside an async context AsyncPeer's own Drop
        // closes in the background instead.
        if tokio::runtime::Handle::try_current().is_err() {
            self.close();
        }
    }
}
