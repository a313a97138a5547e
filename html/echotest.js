// janus.js EchoTest: attach, offer audio + video, apply the answer, play the echo.
import { Janus, $, pageState, initJanus, playRemote } from './demo.js';

const page = pageState('echotest', {
  attached: false,
  handleId: null,
  echoResults: [], // plugin results ("ok", ...)
  jsepAnswer: false, // the answer came and was applied
  localTracks: [], // kinds of captured tracks
  iceStates: [],
  webrtcup: false,
  media: [], // every mediaState callback: { type, receiving, mid }
  mediaReceiving: false, // some `media` event said receiving=true
  remoteTracks: {}, // mid -> { kind, readyState }
  remoteLive: [], // kinds of live tracks in the remote stream
  remotePlaying: false, // the remote <video> fired "playing"
  remoteFrames: 0, // video frames the remote <video> presented
});
const { state, log } = page;

const remoteStream = new MediaStream();
const remoteVideo = $('remote');
remoteVideo.addEventListener('playing', () => {
  state.remotePlaying = true;
  log('remote video playing');
});

function updateRemoteLive() {
  state.remoteLive = remoteStream.getTracks().filter((t) => t.readyState === 'live').map((t) => t.kind).sort();
}

initJanus(page, (janus) => {
  let echo = null;
  janus.attach({
    plugin: 'janus.plugin.echotest',
    opaqueId: `echotest-${Janus.randomString(12)}`,
    success: (handle) => {
      echo = handle;
      window.echoHandle = handle; // for the tests (getStats of its PeerConnection)
      state.attached = true;
      state.handleId = handle.getId();
      page.status('attached');
      handle.createOffer({
        tracks: [
          { type: 'audio', capture: true, recv: true },
          { type: 'video', capture: true, recv: true },
        ],
        success: (jsep) => {
          log('offer created, sending it');
          handle.send({ message: { audio: true, video: true }, jsep });
        },
        error: (err) => page.fail('createOffer', err),
      });
    },
    error: (err) => page.fail('attach', err),
    iceState: (s) => {
      state.iceStates.push(s);
      log(`ICE state: ${s}`);
    },
    webrtcState: (on, reason) => {
      log(`webrtcState: ${on ? 'up' : `down (${reason})`}`);
      if (on) {
        state.webrtcup = true;
        page.status('webrtcup: echoing');
      }
    },
    mediaState: (type, receiving, mid) => {
      state.media.push({ type, receiving, mid });
      log(`media: ${type} mid=${mid} receiving=${receiving}`);
      if (receiving) state.mediaReceiving = true;
    },
    onmessage: (msg, jsep) => {
      log(`message: ${JSON.stringify(msg)}`);
      if (msg.result) state.echoResults.push(msg.result);
      if (msg.error) page.fail('echotest', `${msg.error_code} ${msg.error}`);
      if (jsep) {
        echo.handleRemoteJsep({
          jsep,
          success: () => {
            state.jsepAnswer = true;
            log(`remote ${jsep.type} applied`);
          },
          error: (err) => page.fail('handleRemoteJsep', err),
        });
      }
    },
    onlocaltrack: (track, on) => {
      log(`local ${track.kind} track ${on ? 'added' : 'removed'}`);
      if (on) state.localTracks.push(track.kind);
      if (on && track.kind === 'video') {
        const local = $('local');
        local.srcObject = new MediaStream([track]);
        local.play().catch(() => {});
      }
    },
    onremotetrack: (track, mid, on) => {
      log(`remote ${track.kind} track mid=${mid} ${on ? 'on' : 'off'}`);
      state.remoteTracks[mid] = { kind: track.kind, readyState: track.readyState, on };
      if (on) {
        if (!remoteStream.getTrackById(track.id)) remoteStream.addTrack(track);
        track.addEventListener('ended', updateRemoteLive);
        playRemote(remoteVideo, remoteStream, state, 'remoteFrames');
      } else if (remoteStream.getTrackById(track.id)) {
        remoteStream.removeTrack(track);
      }
      updateRemoteLive();
    },
    oncleanup: () => log('cleanup'),
  });
});
