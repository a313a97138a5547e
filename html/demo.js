// What the demo pages share: the Janus server URL picked from the page's own origin,
// janus.js 1.x initialisation (html/vendor/, copied from npm by scripts/vendor-web.sh),
// a log panel, and a state object each page exposes on window for the tests
// (clients/test/janusjs.test.mjs).
//
// Server URL, first match wins:
//   ?server=URL                 explicit (ws://, wss://, http://…/janus, https://…/janus)
//   ?transport=ws[&port=N]      WebSocket on this page's host: ws://host:8288, or
//                               wss://host:8289 on an https page (janus-proxy's defaults)
//   otherwise                   Janus's HTTP API of this page's origin: <origin>/janus
//                               (janus-proxy serves these pages on its HTTP listener)
//
// ?reconnect=1 makes the page reconnect and claim its session when the connection is lost,
// as an application of a proxy cluster does (see reconnect() below).

import Janus from './vendor/janus.es.js';

export { Janus };

export const params = new URLSearchParams(location.search);

export function serverUrl() {
  const explicit = params.get('server');
  if (explicit) return explicit;
  const secure = location.protocol === 'https:';
  if (params.get('transport') === 'ws') {
    const port = params.get('port') || (secure ? 8289 : 8288);
    return `${secure ? 'wss' : 'ws'}://${location.hostname}:${port}`;
  }
  if (location.protocol === 'http:' || secure) return `${location.origin}/janus`;
  return 'ws://127.0.0.1:8288';
}

const $ = (id) => document.getElementById(id);
export { $ };

/** The page's state (also window[name]), with a log shown in #log. */
export function pageState(name, fields) {
  const state = { server: serverUrl(), status: 'loading', sessionId: null, errors: [], log: [], ...fields };
  window[name] = state;
  const set = (id, text) => { const el = $(id); if (el) el.textContent = text; };
  set('server', state.server);
  const other = new URL(location.href);
  if (state.server.startsWith('ws')) {
    other.searchParams.delete('transport');
    other.searchParams.delete('server');
    set('switch', 'use HTTP long polls');
  } else {
    other.searchParams.set('transport', 'ws');
    set('switch', 'use a WebSocket');
  }
  if ($('switch')) $('switch').href = other.toString();
  const api = {
    state,
    log(msg) {
      const line = `${new Date().toISOString().slice(11, 23)} ${msg}`;
      state.log.push(line);
      const el = $('log');
      if (el) {
        el.textContent += `${line}\n`;
        el.scrollTop = el.scrollHeight;
      }
    },
    status(s) {
      state.status = s;
      set('status', s);
      api.log(`status: ${s}`);
    },
    fail(what, err) {
      const msg = `${what}: ${err && err.message ? err.message : typeof err === 'string' ? err : JSON.stringify(err)}`;
      state.errors.push(msg);
      api.status(`error (${msg})`);
    },
  };
  return api;
}

/** janus.js initialised with webrtc-adapter (loaded as a classic script before). */
export function initJanus(page, ready) {
  Janus.init({
    debug: params.get('debug') ? 'all' : false,
    dependencies: Janus.useDefaultDependencies({ adapter: window.adapter }),
    callback: () => {
      if (!Janus.isWebrtcSupported()) {
        page.fail('init', 'no WebRTC support');
        return;
      }
      page.status('connecting');
      let up = false;
      const janus = new Janus({
        server: page.state.server,
        success: () => {
          up = true;
          page.state.sessionId = janus.getSessionId();
          page.status('connected');
          ready(janus);
        },
        error: (err) => {
          if (up && params.get('reconnect')) reconnect(page, janus, err);
          else page.fail('session', err);
        },
        destroyed: () => page.log('session destroyed'),
      });
      window.janusSession = janus;
    },
  });
}

/**
 * `?reconnect=1`: what an application does when janus.js reports the connection lost
 * (its server died, or a proxy of a cluster behind a load balancer died or drained):
 * `janus.reconnect()`, which opens a new connection to the same URL and `claim`s the
 * session, retried every 250 ms for up to 60 s. Handles and PeerConnections are kept.
 * Each loss is recorded in `state.reconnects`: { lostAt, reason, attempts, claimedAt }.
 */
function reconnect(page, janus, reason) {
  const { state } = page;
  state.reconnects = state.reconnects || [];
  const open = state.reconnects.at(-1);
  if (open && !open.claimedAt) return; // already reconnecting
  const entry = { lostAt: Date.now(), reason: String(reason), attempts: 0, claimedAt: null };
  state.reconnects.push(entry);
  page.status(`connection lost (${reason}): reconnecting`);
  const attempt = () => {
    entry.attempts += 1;
    janus.reconnect({
      success: () => {
        entry.claimedAt = Date.now();
        page.status(`session ${janus.getSessionId()} claimed again after ${entry.claimedAt - entry.lostAt} ms`);
      },
      error: (err) => {
        page.log(`reconnect attempt ${entry.attempts} failed: ${err}`);
        if (Date.now() - entry.lostAt > 60000) page.fail('reconnect', err);
        else setTimeout(attempt, 250);
      },
    });
  };
  attempt();
}

/** Plays `stream` in `video` and counts its frames into `state[counter]`. */
export function playRemote(video, stream, state, counter) {
  if (video.srcObject !== stream) {
    Janus.attachMediaStream(video, stream);
    if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
      video.requestVideoFrameCallback(function frame() {
        state[counter] += 1;
        video.requestVideoFrameCallback(frame);
      });
    }
  }
  video.play().catch(() => {});
}
