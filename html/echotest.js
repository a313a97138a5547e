// A minimal janus.js EchoTest (janus.js 1.4 from the npm package janus-gateway, with
// webrtc-adapter loaded as a classic script before this module, so window.adapter is set).
// Server URL from the query string: ?server=ws://host:port[&debug=1].
// Progress goes into the page and into window.echotest (polled by clients/test/janusjs.test.mjs).

import Janus from './node_modules/janus-gateway/npm/dist/janus.es.js';

const params = new URLSearchParams(location.search);
const server = params.get('server') || `ws://${location.hostname || '127.0.0.1'}:8288`;

const state = {
  server,
  status: 'loading',
  sessionId: null,
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
  errors: [],
  log: [],
};
window.echotest = state;

const $ = (id) => document.getElementById(id);
$('server').textContent = server;

function log(msg) {
  const line = `${new Date().toISOString().slice(11, 23)} ${msg}`;
  state.log.push(line);
  $('log').textContent += `${line}\n`;
}

function setStatus(s) {
  state.status = s;
  $('status').textContent = s;
  log(`status: ${s}`);
}

function fail(what, err) {
  const msg = `${what}: ${err && err.message ? err.message : typeof err === 'string' ? err : JSON.stringify(err)}`;
  state.errors.push(msg);
  setStatus(`error (${msg})`);
}

const remoteStream = new MediaStream();
const remoteVideo = $('remote');
remoteVideo.addEventListener('playing', () => {
  state.remotePlaying = true;
  log('remote video playing');
});

function countFrames() {
  if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype)) return;
  remoteVideo.requestVideoFrameCallback(function frame() {
    state.remoteFrames += 1;
    remoteVideo.requestVideoFrameCallback(frame);
  });
}

function updateRemoteLive() {
  state.remoteLive = remoteStream.getTracks().filter((t) => t.readyState === 'live').map((t) => t.kind).sort();
}

Janus.init({
  debug: params.get('debug') ? 'all' : false,
  dependencies: Janus.useDefaultDependencies({ adapter: window.adapter }),
  callback: start,
});

function start() {
  if (!Janus.isWebrtcSupported()) {
    fail('init', 'no WebRTC support');
    return;
  }
  setStatus('connecting');
  const janus = new Janus({
    server,
    success: () => {
      state.sessionId = janus.getSessionId();
      setStatus('connected');
      attach(janus);
    },
    error: (err) => fail('session', err),
    destroyed: () => log('session destroyed'),
  });
  window.janusSession = janus;
}

function attach(janus) {
  let echo = null;
  janus.attach({
    plugin: 'janus.plugin.echotest',
    opaqueId: `echotest-${Janus.randomString(12)}`,
    success: (handle) => {
      echo = handle;
      state.attached = true;
      state.handleId = handle.getId();
      setStatus('attached');
      handle.createOffer({
        // getUserMedia (audio + video) happens here, then the offer
        tracks: [
          { type: 'audio', capture: true, recv: true },
          { type: 'video', capture: true, recv: true },
        ],
        success: (jsep) => {
          log('offer created, sending it');
          handle.send({ message: { audio: true, video: true }, jsep });
        },
        error: (err) => fail('createOffer', err),
      });
    },
    error: (err) => fail('attach', err),
    iceState: (s) => {
      state.iceStates.push(s);
      log(`ICE state: ${s}`);
    },
    webrtcState: (on, reason) => {
      log(`webrtcState: ${on ? 'up' : `down (${reason})`}`);
      if (on) {
        state.webrtcup = true;
        setStatus('webrtcup');
      }
    },
    mediaState: (type, receiving, mid) => {
      state.media.push({ type, receiving, mid });
      log(`media: ${type} mid=${mid} receiving=${receiving}`);
      if (receiving) state.mediaReceiving = true;
    },
    slowLink: (uplink, lost, mid) => log(`slowLink: uplink=${uplink} lost=${lost} mid=${mid}`),
    onmessage: (msg, jsep) => {
      log(`message: ${JSON.stringify(msg)}`);
      if (msg.result) state.echoResults.push(msg.result);
      if (msg.error) fail('echotest', `${msg.error_code} ${msg.error}`);
      if (jsep) {
        echo.handleRemoteJsep({
          jsep,
          success: () => {
            state.jsepAnswer = true;
            log(`remote ${jsep.type} applied`);
          },
          error: (err) => fail('handleRemoteJsep', err),
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
    onremotetrack: (track, mid, on, metadata) => {
      const reason = metadata && metadata.reason;
      log(`remote ${track.kind} track mid=${mid} ${on ? 'on' : 'off'}${reason ? ` (${reason})` : ''}`);
      state.remoteTracks[mid] = { kind: track.kind, readyState: track.readyState, on };
      if (on) {
        if (!remoteStream.getTrackById(track.id)) remoteStream.addTrack(track);
        track.addEventListener('ended', updateRemoteLive);
        if (remoteVideo.srcObject !== remoteStream) {
          Janus.attachMediaStream(remoteVideo, remoteStream);
          countFrames();
        }
        remoteVideo.play().catch((e) => log(`remote play(): ${e.message}`));
      } else if (remoteStream.getTrackById(track.id)) {
        remoteStream.removeTrack(track);
      }
      updateRemoteLive();
    },
    oncleanup: () => log('cleanup'),
  });
}
