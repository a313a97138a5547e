// janus.js VideoCall (janus.plugin.videocall) or P2PCall (janus.plugin.p2pcall, same API):
// register, call or answer, hang up. A call that ends is closed the Janus way: the core
// `hangup` event ("Close PC") closes the PeerConnection (janus.js does it); the page only
// cleans up itself if that event has not come 3 s after the plugin's `hangup`.
import { Janus, $, params, pageState, initJanus, playRemote } from './demo.js';

const plugin = document.body.dataset.plugin || 'janus.plugin.videocall';
const page = pageState('videocall', {
  plugin,
  handleId: null,
  registered: null, // our name, once registered
  incoming: null, // caller of the pending incoming call
  peer: null, // the other party of the call
  calling: false,
  accepted: false, // the call was accepted (both sides)
  webrtcup: false,
  mediaReceiving: false,
  remoteLive: [],
  remotePlaying: false,
  remoteFrames: 0,
  hangups: [], // plugin hangup events: { username, reason, at }
  webrtcDown: null, // { reason, at } when janus.js got webrtcState(false): the core hangup
  cleanups: [], // times of oncleanup (the PeerConnection closed)
  fallbackCleanup: false, // the page had to close the PeerConnection itself
  hungUpAt: null, // when this side hung up
  results: [],
});
const { state, log } = page;
let handle = null;
let incomingJsep = null;
let remoteStream = new MediaStream();
const remoteVideo = $('remote');
remoteVideo.addEventListener('playing', () => { state.remotePlaying = true; });

const buttons = () => {
  const registered = Boolean(state.registered);
  const inCall = Boolean(state.peer);
  $('register').disabled = !handle || registered;
  $('call').disabled = !registered || inCall;
  $('answer').disabled = !state.incoming;
  $('hangup').disabled = !inCall && !state.incoming;
};

function send(message, jsep) {
  handle.send({ message, jsep, error: (e) => page.fail(message.request, e) });
}

function register(name) {
  if (!name) return;
  send({ request: 'register', username: name });
}

const TRACKS = [
  { type: 'audio', capture: true, recv: true },
  { type: 'video', capture: true, recv: true },
];

function call(peer) {
  if (!peer) return;
  state.peer = peer;
  state.calling = true;
  buttons();
  handle.createOffer({
    tracks: TRACKS,
    success: (jsep) => send({ request: 'call', username: peer }, jsep),
    error: (err) => page.fail('createOffer', err),
  });
}

function answer() {
  if (!incomingJsep) return;
  const jsep = incomingJsep;
  incomingJsep = null;
  state.peer = state.incoming;
  state.incoming = null;
  buttons();
  handle.createAnswer({
    jsep,
    tracks: TRACKS,
    success: (ours) => send({ request: 'accept' }, ours),
    error: (err) => page.fail('createAnswer', err),
  });
}

/** This side hangs up: the plugin request, then the local PeerConnection, as Janus's demo. */
function hangup() {
  state.hungUpAt = Date.now();
  send({ request: 'hangup' });
  handle.hangup();
}
window.hangupCall = hangup;

function callEnded() {
  state.peer = null;
  state.calling = false;
  state.incoming = null;
  incomingJsep = null;
  buttons();
}

$('register').onclick = () => register($('user').value.trim());
$('call').onclick = () => call($('peer').value.trim());
$('answer').onclick = answer;
$('hangup').onclick = hangup;

initJanus(page, (janus) => {
  janus.attach({
    plugin,
    opaqueId: `videocall-${Janus.randomString(12)}`,
    success: (h) => {
      handle = h;
      window.callHandle = h; // for the tests (getStats of its PeerConnection)
      state.handleId = h.getId();
      page.status('attached: register a name');
      $('user').value = params.get('user') || `user-${Janus.randomString(4)}`;
      buttons();
      if (params.get('user')) register(params.get('user'));
    },
    error: (err) => page.fail('attach', err),
    webrtcState: (on, reason) => {
      log(`webrtcState: ${on ? 'up' : `down (${reason})`}`);
      if (on) {
        state.webrtcup = true;
        page.status(`in a call with ${state.peer}`);
      } else if (!state.webrtcDown) {
        state.webrtcDown = { reason: reason || null, at: Date.now() };
      }
    },
    mediaState: (type, receiving) => {
      log(`media: ${type} receiving=${receiving}`);
      if (receiving) state.mediaReceiving = true;
    },
    onmessage: (msg, jsep) => {
      log(`message: ${JSON.stringify(msg)}`);
      if (msg.error) {
        page.fail(plugin, `${msg.error_code} ${msg.error}`);
        return;
      }
      const result = msg.result || {};
      if (result.event) state.results.push(result.event);
      switch (result.event) {
        case 'registered':
          state.registered = result.username;
          page.status(`registered as ${result.username}`);
          if (params.get('call')) call(params.get('call'));
          break;
        case 'calling':
          page.status(`calling ${state.peer}`);
          break;
        case 'incomingcall':
          state.incoming = result.username;
          incomingJsep = jsep;
          page.status(`incoming call from ${result.username}`);
          $('remote-name').textContent = result.username;
          if (params.get('answer') === 'auto') answer();
          break;
        case 'accepted':
          state.accepted = true;
          if (result.username) $('remote-name').textContent = result.username;
          if (jsep) handle.handleRemoteJsep({ jsep, error: (e) => page.fail('handleRemoteJsep', e) });
          page.status(`call with ${state.peer} accepted`);
          break;
        case 'update':
          if (jsep) handle.handleRemoteJsep({ jsep });
          break;
        case 'hangup': {
          state.hangups.push({ username: result.username, reason: result.reason, at: Date.now() });
          page.status(`call ended (${result.reason})`);
          const open = Boolean(state.peer);
          callEnded();
          // Janus closes the PeerConnection with a core hangup; wait for it.
          if (open) {
            setTimeout(() => {
              if (!state.webrtcDown && state.cleanups.length === 0 && state.hangups.length) {
                state.fallbackCleanup = true;
                handle.hangup();
              }
            }, 3000);
          }
          break;
        }
        default:
          break;
      }
    },
    onlocaltrack: (track, on) => {
      if (on && track.kind === 'video') {
        const local = $('local');
        local.srcObject = new MediaStream([track]);
        local.play().catch(() => {});
      }
    },
    onremotetrack: (track, mid, on) => {
      log(`remote ${track.kind} track ${on ? 'on' : 'off'}`);
      if (on) {
        if (!remoteStream.getTrackById(track.id)) remoteStream.addTrack(track);
        playRemote(remoteVideo, remoteStream, state, 'remoteFrames');
      } else if (remoteStream.getTrackById(track.id)) {
        remoteStream.removeTrack(track);
      }
      state.remoteLive = remoteStream.getTracks().filter((t) => t.readyState === 'live').map((t) => t.kind).sort();
    },
    oncleanup: () => {
      log('PeerConnection closed');
      state.cleanups.push(Date.now());
      remoteStream = new MediaStream();
      state.remoteLive = [];
      callEnded();
    },
  });
});
