// janode 1.8 (Meetecho's Node.js Janus SDK), unchanged, against janus-proxy in front of two
// real Janus backends: connect (janus-protocol), info, sessions, echotest round trips
// through janode's EchoTest plugin, a full VideoCall call flow between two janode sessions,
// keep-alives, WebSocket ping/pong, the session `timeout` event, detach and destroy.
//
// CLIENT_TEST_TARGET=direct runs the same checks against the first Janus backend (to tell a
// proxy bug from a test problem). JANODE_LOG=debug prints every frame janode sends/receives.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';

import Janode from 'janode';
import EchoTestPlugin from 'janode/plugins/echotest';
import VideoCallPlugin from '../lib/videocall-plugin.mjs';
import { startBackends, startProxy, waitFor, withDeadline, waitEchotestReady, target, tail } from '../lib/fixtures.mjs';

const { EVENT } = Janode;

const STEP = 10000; // deadline of any single expected reply or event (ms)
const SESSION_TIMEOUT = 4; // seconds, for the proxy of the timeout test
const KA_INTERVAL = 2; // seconds between janode keep-alives in that test (each acked within half)

let backends;
let proxy; // session_timeout 60 (the default): janode's own defaults (keep-alive every 30 s) apply
let shortProxy; // session_timeout SESSION_TIMEOUT, for the keep-alive / timeout test
let url;
let shortUrl;
const connections = [];
const frames = []; // last frames on every connection, printed when a test fails

/** A synthetic audio-only SDP (Janus accepts it; no media ever flows). */
function syntheticSdp(kind) {
  const fp = Array.from(randomBytes(32), (b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
  return [
    'v=0',
    `o=- 10000000${kind === 'offer' ? 1 : 2} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'a=msid-semantic: WMS lt',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111',
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    'a=ice-ufrag:abcd1234',
    'a=ice-pwd:abcdefghijklmnopqrstuvwx',
    'a=ice-options:trickle',
    `a=fingerprint:sha-256 ${fp}`,
    `a=setup:${kind === 'offer' ? 'actpass' : 'active'}`,
    'a=mid:0',
    'a=sendrecv',
    'a=msid:lt lt-audio',
    'a=rtcp-mux',
    'a=rtpmap:111 opus/48000/2',
    'a=ssrc:11111111 cname:lt',
    '',
  ].join('\r\n');
}

async function connect(u = url) {
  const conn = await Janode.connect({ address: { url: u }, max_retries: 0 });
  connections.push(conn);
  // diagnostics only: keep the frames of this connection (janode's own logging is off)
  const ws = conn._transport._ws;
  const tag = `conn${connections.length}`;
  ws.on('message', (d) => { frames.push(`${tag} <- ${d}`); if (frames.length > 400) frames.shift(); });
  const send = ws.send.bind(ws);
  ws.send = (d, ...rest) => { frames.push(`${tag} -> ${d}`); if (frames.length > 400) frames.shift(); return send(d, ...rest); };
  conn.unexpected = [];
  conn.on(EVENT.CONNECTION_ERROR, (e) => conn.unexpected.push(e));
  return conn;
}

/** Resolves with the first `event` emitted by `emitter` (a deadline of STEP). */
function next(emitter, event, ms = STEP) {
  return withDeadline(`janode event ${event}`, once(emitter, event).then(([d]) => d), ms);
}

/** Run `fn`; on failure print the last frames and the logs of the proxy and the backends. */
function dumpOnFailure(t) {
  return async (fn) => {
    try {
      await fn();
    } catch (e) {
      const logs = backends ? backends.logs().map((f) => `--- ${f} ---\n${tail(f, 20)}`).join('\n') : '';
      console.error(`[${t.name}] FAILED: ${e.message}\n--- last frames ---\n${frames.slice(-40).join('\n')}`);
      if (proxy) console.error(`--- proxy output (${proxy.logPath}) ---\n${tail(proxy.logPath, 40)}`);
      console.error(logs);
      throw e;
    }
  };
}

before(async () => {
  backends = await startBackends({
    name: 'clients-janode',
    wsBase: 19188,
    adminBase: 19198,
    rtpBase: 34000,
    // direct: the backends themselves must time out the idle session of the timeout test
    sessionTimeout: target() === 'direct' ? SESSION_TIMEOUT : 60,
  });
  if (target() === 'direct') {
    url = shortUrl = backends.urls()[0];
    return;
  }
  [proxy, shortProxy] = await Promise.all([
    startProxy({ name: 'clients-janode', backendUrls: backends.urls() }),
    startProxy({ name: 'clients-janode-short', backendUrls: backends.urls(), general: { session_timeout: SESSION_TIMEOUT } }),
  ]);
  url = proxy.url;
  shortUrl = shortProxy.url;
  await Promise.all([waitEchotestReady(url), waitEchotestReady(shortUrl)]);
});

after(async () => {
  for (const c of connections) {
    try { await c.close(); } catch { /* already closed */ }
  }
  await Promise.all([proxy && proxy.stop(), shortProxy && shortProxy.stop()]);
  if (backends) await backends.stop();
});

test('info, session, echotest round trips, detach, destroy', async (t) => {
  await dumpOnFailure(t)(async () => {
    const conn = await connect();
    const info = await conn.getInfo();
    assert.equal(info.janus, 'server_info');
    assert.ok(info.plugins && info.plugins['janus.plugin.echotest'], 'server_info lists janus.plugin.echotest');

    const session = await conn.create();
    assert.equal(typeof session.id, 'number');
    assert.ok(session.id > 0 && session.id < 2 ** 53, `session id ${session.id} is JavaScript-safe`);

    const echo = await session.attach(EchoTestPlugin);
    assert.equal(typeof echo.id, 'number');
    assert.ok(echo.id > 0 && echo.id < 2 ** 53);

    // round trip 1: offer in, result "ok" + JSEP answer out (janode's EchoTest helper)
    const res = await echo.start({ audio: true, video: false, jsep: { type: 'offer', sdp: syntheticSdp('offer') } });
    assert.equal(res.result, 'ok');
    assert.equal(res.jsep && res.jsep.type, 'answer');
    assert.match(res.jsep.sdp, /m=audio /);
    assert.match(res.jsep.sdp, /a=candidate:/, 'Janus answers with its candidates (half trickle)');

    // round trip 2: a plain message on the same handle, handled by the EchoTest plugin class
    const reply = await echo.message({ audio: true, video: false, bitrate: 64000 });
    assert.equal(reply.janus, 'event');
    assert.equal(reply.sender, echo.id);
    assert.deepEqual(reply.plugindata, { plugin: 'janus.plugin.echotest', data: { echotest: 'event', result: 'ok' } });

    // core hangup verb, then detach: janode emits HANDLE_DETACHED
    await echo.hangup();
    const detached = next(echo, EVENT.HANDLE_DETACHED);
    await echo.detach();
    assert.deepEqual(await detached, { id: reply.sender });

    // destroy: janode emits SESSION_DESTROYED; a request on the dead session fails cleanly
    const destroyed = next(session, EVENT.SESSION_DESTROYED);
    await session.destroy();
    assert.deepEqual(await destroyed, { id: session.id });
    await assert.rejects(session.attach(EchoTestPlugin), /destroyed|458|No such session/i);

    assert.deepEqual(conn.unexpected, []);
    const closed = next(conn, EVENT.CONNECTION_CLOSED);
    await conn.close();
    await closed;
  });
});

test('videocall: register, call, incomingcall, accept, accepted, hangup (two janode sessions)', async (t) => {
  await dumpOnFailure(t)(async () => {
    const suffix = randomBytes(4).toString('hex');
    const aliceName = `janode-a-${suffix}`;
    const bobName = `janode-b.${suffix}@example`;
    const [connA, connB] = await Promise.all([connect(), connect()]);
    const [sessA, sessB] = await Promise.all([connA.create(), connB.create()]);
    const alice = await sessA.attach(VideoCallPlugin);
    const bob = await sessB.attach(VideoCallPlugin);

    let r = await alice.register(aliceName);
    assert.deepEqual(r, { event: 'videocall_registered', data: { event: 'registered', username: aliceName } });
    r = await bob.register(bobName);
    assert.deepEqual(r, { event: 'videocall_registered', data: { event: 'registered', username: bobName } });

    r = await alice.list();
    assert.equal(r.event, 'videocall_list');
    assert.ok(r.data.list.includes(aliceName) && r.data.list.includes(bobName), `list ${JSON.stringify(r.data.list)}`);

    // a call to nobody is a plugin error, surfaced by janode as a rejected request (no JSEP:
    // with one, Janus would set up ICE on the handle before the plugin refuses the call, and
    // the handle could not carry another offer)
    await assert.rejects(alice.call(`nobody_${suffix}`), (e) => {
      assert.match(e.message, /^478 /);
      return true;
    });

    const incoming = next(bob, 'videocall_incomingcall');
    r = await alice.call(bobName, { type: 'offer', sdp: syntheticSdp('offer') });
    assert.deepEqual(r, { event: 'videocall_calling', data: { event: 'calling' } });

    const inc = await incoming;
    assert.equal(inc.event, 'incomingcall');
    assert.equal(inc.username, aliceName);
    assert.equal(inc.jsep && inc.jsep.type, 'offer');
    assert.match(inc.jsep.sdp, /m=audio /);

    const accepted = next(alice, 'videocall_accepted');
    r = await bob.accept({ type: 'answer', sdp: syntheticSdp('answer') });
    assert.equal(r.event, 'videocall_accepted');
    assert.equal(r.data.event, 'accepted');

    const acc = await accepted;
    assert.equal(acc.event, 'accepted');
    assert.equal(acc.username, bobName);
    assert.equal(acc.jsep && acc.jsep.type, 'answer');
    assert.match(acc.jsep.sdp, /m=audio /);

    r = await alice.set({ bitrate: 128000 });
    assert.equal(r.event, 'videocall_set');

    const bobHangup = next(bob, 'videocall_hangup');
    r = await alice.hangupCall();
    assert.equal(r.event, 'videocall_hangup');
    const bh = await bobHangup;
    assert.equal(bh.event, 'hangup');
    assert.equal(typeof bh.reason, 'string');

    await Promise.all([alice.detach(), bob.detach()]);
    await Promise.all([sessA.destroy(), sessB.destroy()]);
    assert.deepEqual(connA.unexpected, []);
    assert.deepEqual(connB.unexpected, []);
    await Promise.all([connA.close(), connB.close()]);
  });
});

test(`keep-alives hold a session past session_timeout; an idle one gets the timeout event`, async (t) => {
  await dumpOnFailure(t)(async () => {
    const conn = await connect(shortUrl);
    // janode's keep-alive task: one keepalive every KA_INTERVAL s, each acked within half that
    const kept = await conn.create(KA_INTERVAL);
    const kaAcks = [];
    const origKa = kept._sendKeepAlive.bind(kept);
    kept._sendKeepAlive = (ms) => origKa(ms).then((r) => { kaAcks.push(Date.now()); return r; });
    const keptDestroyed = [];
    kept.on(EVENT.SESSION_DESTROYED, (d) => keptDestroyed.push(d));

    // no keep-alive for a day: the proxy must expire it with a `timeout` event, which janode
    // turns into SESSION_DESTROYED
    const idle = await conn.create(86400);
    const started = Date.now();
    const idleDestroyed = await next(idle, EVENT.SESSION_DESTROYED, (SESSION_TIMEOUT + 5) * 1000);
    const took = (Date.now() - started) / 1000;
    assert.deepEqual(idleDestroyed, { id: idle.id });
    assert.ok(took >= SESSION_TIMEOUT - 0.5, `timeout after ${took}s, session_timeout is ${SESSION_TIMEOUT}s`);
    assert.ok(frames.some((f) => f.includes('"timeout"') && f.includes(String(idle.id))), 'a timeout frame for the idle session');

    // the kept session is older than the idle one and lives on
    await waitFor('janode keep-alive acks', () => kaAcks.length >= Math.floor(SESSION_TIMEOUT / KA_INTERVAL), { within: STEP });
    assert.deepEqual(keptDestroyed, []);
    const h = await kept.attach(EchoTestPlugin);
    await h.detach();

    // janode's WebSocket keep-alive (a ping every 10 s, pong within 5 s): run one now
    await conn._transport._ping();

    await kept.destroy();
    assert.deepEqual(conn.unexpected, []);
    await conn.close();
  });
});
