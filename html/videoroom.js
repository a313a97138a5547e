// janus.js VideoRoom, Janus 1.x multistream API: one handle publishes (join as publisher,
// configure with an offer), one handle subscribes to every other publisher's streams
// (join as subscriber, then subscribe/unsubscribe as publishers come and go).
// ?publish=0 only watches: it joins (to hear of publishers) without publishing;
// ?subscribe=0 only publishes.
// window.videoroom also keeps, per feed, the time from asking for it to its first video
// frame, and per subscriber mid the bytes received (getStats), for the tests.
import { Janus, $, params, pageState, initJanus } from './demo.js';

const plugin = 'janus.plugin.videoroom';
const room = Number(params.get('room') || 1234);
const display = params.get('name') || `user-${Janus.randomString(4)}`;
const publishing = params.get('publish') !== '0';
const watching = params.get('subscribe') !== '0';
const page = pageState('videoroom', {
  room,
  display,
  joined: false,
  publisherId: null,
  published: false, // the publisher's PeerConnection is up
  subscribed: false, // the subscriber's PeerConnection is up
  feeds: {}, // publisher id -> display
  remoteFrames: {}, // subscriber mid -> video frames shown
  midFeed: {}, // subscriber mid -> [feed id, kind] (active streams)
  firstFrameMs: {}, // feed id -> ms from asking for it to its first video frame
  bytes: {}, // subscriber mid -> bytes received (inbound-rtp)
  subscriberPcs: 0, // subscriber PeerConnections set up (one for all feeds)
  updates: 0, // updated offers the subscriber got (joins, leaves)
  results: [],
});
const askedAt = {}; // feed id -> when it was asked for
const { state, log } = page;
$('room').textContent = String(room);
$('me').textContent = `you (${display})`;

let janus = null;
let pub = null;
let sub = null;
let subscribing = false; // the subscriber's join is on its way
const pending = []; // feeds to subscribe to once the subscriber handle exists
const subscribed = new Set();
const streamsByMid = {}; // subscriber mid -> { feed_id, feed_display, type }

function request(handle, message) {
  return new Promise((resolve, reject) => {
    handle.send({ message, success: resolve, error: reject });
  });
}

function subscribe(publishers) {
  if (!watching) return;
  const feeds = publishers.filter((p) => p.id !== state.publisherId && !subscribed.has(p.id));
  for (const p of feeds) {
    state.feeds[p.id] = p.display || String(p.id);
    subscribed.add(p.id);
  }
  if (feeds.length === 0) return;
  const streams = feeds.map((p) => ({ feed: p.id }));
  for (const p of feeds) askedAt[p.id] = performance.now();
  if (sub) {
    sub.send({ message: { request: 'subscribe', streams } });
  } else if (subscribing) {
    pending.push(...streams);
  } else {
    subscribing = true;
    attachSubscriber(streams);
  }
}

function attachSubscriber(streams) {
  janus.attach({
    plugin,
    opaqueId: `videoroom-sub-${Janus.randomString(12)}`,
    success: (h) => {
      sub = h;
      window.videoroomSubscriber = h; // for the tests (getStats of its PeerConnection)
      h.send({ message: { request: 'join', room, ptype: 'subscriber', streams } });
    },
    error: (e) => page.fail('attach subscriber', e),
    webrtcState: (on) => {
      if (on) {
        state.subscribed = true;
        state.subscriberPcs += 1;
        log('receiving the room');
        pollStats();
      }
    },
    onmessage: (msg, jsep) => {
      log(`subscriber: ${JSON.stringify(msg)}`);
      if (msg.error) {
        page.fail('subscriber', `${msg.error_code} ${msg.error}`);
        return;
      }
      if (Array.isArray(msg.streams)) {
        for (const st of msg.streams) {
          streamsByMid[st.mid] = st;
          if (st.active === false || st.feed_id === undefined) delete state.midFeed[st.mid];
          else state.midFeed[st.mid] = [st.feed_id, st.type];
        }
      }
      if (msg.videoroom === 'updated' && jsep) state.updates += 1;
      if (msg.videoroom === 'attached' && pending.length) {
        sub.send({ message: { request: 'subscribe', streams: pending.splice(0) } });
      }
      if (jsep) {
        sub.createAnswer({
          jsep,
          tracks: [{ type: 'data' }],
          success: (answer) => sub.send({ message: { request: 'start', room }, jsep: answer }),
          error: (e) => page.fail('createAnswer', e),
        });
      }
    },
    onremotetrack: (track, mid, on) => {
      log(`remote ${track.kind} mid=${mid} ${on ? 'on' : 'off'}`);
      const id = `remote-${mid}`;
      if (!on) {
        const el = document.getElementById(`fig-${mid}`);
        if (el) el.remove();
        return;
      }
      if (track.kind !== 'video' || document.getElementById(id)) return;
      const info = streamsByMid[mid] || {};
      const fig = document.createElement('figure');
      fig.id = `fig-${mid}`;
      const video = document.createElement('video');
      video.id = id;
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true;
      const caption = document.createElement('figcaption');
      caption.textContent = info.feed_display || `feed ${info.feed_id || mid}`;
      fig.append(video, caption);
      $('videos').append(fig);
      Janus.attachMediaStream(video, new MediaStream([track]));
      state.remoteFrames[mid] = 0;
      if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
        video.requestVideoFrameCallback(function frame() {
          state.remoteFrames[mid] += 1;
          const feed = (streamsByMid[mid] || {}).feed_id;
          if (feed !== undefined && state.firstFrameMs[feed] === undefined && askedAt[feed] !== undefined) {
            state.firstFrameMs[feed] = Math.round(performance.now() - askedAt[feed]);
          }
          video.requestVideoFrameCallback(frame);
        });
      }
      video.play().catch(() => {});
    },
    oncleanup: () => log('subscriber PeerConnection closed'),
  });
}

/** Bytes received per subscriber mid, every half second. */
function pollStats() {
  const pc = sub && sub.webrtcStuff && sub.webrtcStuff.pc;
  if (!pc) return;
  pc.getStats().then((report) => {
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.mid !== undefined) state.bytes[r.mid] = r.bytesReceived;
    });
  }).catch(() => {}).finally(() => setTimeout(pollStats, 500));
}

function forget(id) {
  delete state.feeds[id];
  if (!subscribed.delete(id) || !sub) return;
  sub.send({ message: { request: 'unsubscribe', streams: [{ feed: id }] } });
}

initJanus(page, (j) => {
  janus = j;
  janus.attach({
    plugin,
    opaqueId: `videoroom-pub-${Janus.randomString(12)}`,
    success: async (h) => {
      pub = h;
      try {
        const exists = await request(h, { request: 'exists', room });
        if (!exists.exists) {
          log(`room ${room} does not exist: creating it`);
          await request(h, { request: 'create', room, publishers: 16, description: 'janus-cloud demo' });
        }
        h.send({ message: { request: 'join', room, ptype: 'publisher', display } });
      } catch (e) {
        page.fail('room', e);
      }
    },
    error: (e) => page.fail('attach', e),
    webrtcState: (on) => {
      if (on) {
        state.published = true;
        page.status(`publishing in room ${room}`);
      }
    },
    onmessage: (msg, jsep) => {
      log(`publisher: ${JSON.stringify(msg)}`);
      if (msg.error) {
        page.fail('publisher', `${msg.error_code} ${msg.error}`);
        return;
      }
      const event = msg.videoroom;
      if (event) state.results.push(event);
      if (event === 'joined') {
        state.joined = true;
        state.publisherId = msg.id;
        page.status(`joined room ${room} as ${display}`);
      }
      if (event === 'joined' && publishing) {
        pub.createOffer({
          tracks: [
            { type: 'audio', capture: true, recv: false },
            { type: 'video', capture: true, recv: false },
          ],
          success: (offer) => pub.send({ message: { request: 'configure', audio: true, video: true }, jsep: offer }),
          error: (e) => page.fail('createOffer', e),
        });
      }
      if (Array.isArray(msg.publishers)) subscribe(msg.publishers);
      if (msg.unpublished !== undefined && msg.unpublished !== 'ok') forget(msg.unpublished);
      if (msg.leaving !== undefined && msg.leaving !== 'ok') forget(msg.leaving);
      if (jsep) pub.handleRemoteJsep({ jsep, error: (e) => page.fail('handleRemoteJsep', e) });
    },
    onlocaltrack: (track, on) => {
      if (on && track.kind === 'video') {
        const local = $('local');
        local.srcObject = new MediaStream([track]);
        local.play().catch(() => {});
      }
    },
    oncleanup: () => log('publisher PeerConnection closed'),
  });
});
