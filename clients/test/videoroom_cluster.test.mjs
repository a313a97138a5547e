// One VideoRoom conference across two proxies sharing a redis-server (`[videoroom] room_db`),
// in headless Chromium with real media (janus.js 1.4 on html/videoroom.html, unchanged
// clients; issue 13, acceptance 1 in the browser):
//
//   publisher pages (ann, bob, cid) --ws--> janus-proxy A (owner of the room)
//   watcher page (?publish=0)       --ws--> janus-proxy B --peer link--> A
//                                           \ one redis-server /
//                                     three real Janus (VideoRoom)
//
// ann and bob publish through A (A creates the room and owns it, and places every participant
// on the backends); the watcher joins through B, gets ann and bob in its `joined`
// publisher list and subscribes to both with ONE PeerConnection; cid then publishes through
// A, the watcher hears of it from the `publishers` event and adds it to the same
// PeerConnection (renegotiation). The publishers the watcher knows (ids, display names)
// must be exactly the room's (the owner's admin API, and each publisher page's own id);
// inbound-rtp bytes (getStats) grow on all six tracks. bob's page then closes: the watcher
// gets the leave, its autoupdate drops bob's tracks, ann's and cid's keep growing.
// Printed: the time from asking for a feed (join/subscribe request) to its first video
// frame, for each feed, with whether it was mirrored to the watcher's backend.
//
// The other tests are acceptance 2 for a VideoRoom subscriber, each with its own pair of
// proxies with `[cluster] session_db` on the same redis-server: ann and bob publish through
// C, which owns the room, a watcher page subscribes to both in one PeerConnection, and one
// proxy is killed with SIGKILL. Pages whose proxy dies come through a TCP load balancer
// (clients/lib/failover.mjs) that prefers it, with `?reconnect=1`: janus.js reports the
// lost connection, the page calls `janus.reconnect()` and claims its session on the other
// proxy. Three cases:
// - the watcher is relayed through D, D dies: C adopts its session (C keeps D's peer
//   session for its `reclaim_session_timeout`);
// - everyone is on C, C dies: D adopts every session and takes the room over from the
//   snapshot C kept in Redis;
// - the watcher is relayed through D, C dies: the publishers move to D, which takes the
//   room over, and D's relay follows the room (it claims its peer session on D itself).
// The watcher's inbound bytes, sampled per mid every 20 ms, keep growing through the
// switch; afterwards cid publishes through the survivor and reaches the watcher (a
// `publishers` event, a subscribe and an updated offer). Printed: claim times and the
// longest pause per mid.
//
// Port plan (see clients/lib/fixtures.mjs): Janus WS 18600-18602, admin 18610-18612, RTP
// UDP 49300-50199; proxies and redis-server on free ports.
//
// Proxy only (CLIENT_TEST_TARGET=direct skips it: one Janus has neither proxies nor a room
// spanning servers).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';
import { startBackends, startProxy, startRedis, waitFor, target, tail, CHROMIUM_ARGS } from '../lib/fixtures.mjs';
import { startBalancer, startSampler, baseline, pauses, clusterSection } from '../lib/failover.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SET = 'clients-vr-cluster';
const DEADLINE = 30000;
const HEARTBEAT_TTL = 2;

let backends;
let redis;
let browser;
let proxyA;
let proxyB;

function clusterProxy(name) {
  return startProxy({
    name: `${SET}-${name}`,
    backendUrls: backends.urls(),
    plugins: ['videoroom'],
    http: true,
    sections: { videoroom: { room_db: JSON.stringify(redis.url) } },
  });
}

/**
 * A proxy of a cluster that survives the death of its members: session records in Redis,
 * and the peer sessions of a dead relaying proxy kept for `reclaim_session_timeout`.
 */
function failoverProxy(name) {
  return startProxy({
    name: `${SET}-${name}`,
    backendUrls: backends.urls(),
    plugins: ['videoroom'],
    general: { reclaim_session_timeout: 30 },
    http: true,
    sections: {
      videoroom: { room_db: JSON.stringify(redis.url) },
      cluster: clusterSection(redis.url, name, HEARTBEAT_TTL),
    },
  });
}

before(async () => {
  if (target() === 'direct') return;
  [backends, redis, browser] = await Promise.all([
    // Janus keeps the sessions of a dead proxy for 30 s, for another proxy to claim.
    startBackends({
      name: SET, n: 3, wsBase: 18600, adminBase: 18610, rtpBase: 49300, rtpSpan: 300, plugins: 'videoroom',
      env: { JANUS_RECLAIM_SESSION_TIMEOUT: '30' },
    }),
    startRedis(SET),
    chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }),
  ]);
  [proxyA, proxyB] = await Promise.all([clusterProxy('a'), clusterProxy('b')]);
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  for (const p of [proxyA, proxyB]) if (p) await p.stop();
  if (redis) await redis.stop();
  if (backends) await backends.stop();
});

/** `GET` on a proxy's admin API. */
async function admin(proxy, path) {
  const r = await fetch(`http://127.0.0.1:${proxy.adminPort}${path}`);
  const text = await r.text();
  assert.equal(r.status, 200, `${path}: ${text}`);
  return JSON.parse(text);
}

/** html/videoroom.html through `proxy` (its own HTTP listener serves the page; WS to it). */
async function openPage(proxy, query) {
  const q = new URLSearchParams({ ...query, transport: 'ws', port: String(proxy.port) });
  const url = `${proxy.httpUrl}/videoroom.html?${q}`;
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const state = () => page.evaluate(() => window.videoroom && JSON.parse(JSON.stringify(window.videoroom)));
  await page.goto(url);
  const until = async (what, pred, within = DEADLINE) => {
    let last = null;
    await waitFor(what, async () => {
      const s = await state();
      last = s;
      if (s && s.errors.length) throw Object.assign(new Error(`page error: ${s.errors.join('; ')}`), { fatal: true });
      return s && pred(s);
    }, { within, every: 100 }).catch((e) => {
      throw new Error(`${e.message}\nlast state: ${JSON.stringify(last && { ...last, log: last.log.slice(-15) })}`);
    });
    return last;
  };
  return { page, state, until, consoleLines, url, name: query.name };
}

/** Bytes of every mid of `mids` grew by more than `by` from `base`. */
function grew(s, base, mids, by) {
  return mids.every((m) => (s.bytes[m] || 0) > (base[m] || 0) + by);
}

const feedsOf = (s) => new Set(Object.values(s.midFeed).map(([feed]) => feed));

/** The publishers of the room as its owner holds them: { id: display }. */
async function roomPublishers(room, owner = proxyA) {
  const parts = await admin(owner, `/plugins/videoroom/rooms/${room}/participants`);
  return { parts, publishers: Object.fromEntries(parts.filter((p) => p.publisher).map((p) => [String(p.id), p.display])) };
}

test('a room over two proxies: publishers on A, one subscriber PeerConnection on B receives them all', async (t) => {
  if (target() === 'direct') {
    t.skip('a room spanning proxies is the proxies\'');
    return;
  }
  const room = 100000 + Math.floor(Math.random() * 800000);
  const pages = [];
  const pubs = {}; // name -> page
  const publish = async (name) => {
    const p = await openPage(proxyA, { room: String(room), name, subscribe: '0' });
    pages.push(p);
    pubs[name] = p;
    const s = await p.until(`${name} joined and publishing through A`, (st) => st.joined && st.published);
    p.id = s.publisherId;
    return p;
  };
  try {
    // ann creates the room through A (A owns it), bob joins it
    await publish('ann');
    await publish('bob');

    // the watcher joins through B: ann and bob come in its joined list
    const watcher = await openPage(proxyB, { room: String(room), name: 'watcher', publish: '0' });
    pages.push(watcher);
    let s = await watcher.until('the watcher (B) receiving audio and video of ann and bob', (st) =>
      st.joined && st.subscribed && feedsOf(st).size === 2 && Object.keys(st.midFeed).length === 4
        && Object.keys(st.midFeed).every((m) => (st.bytes[m] || 0) > 0));
    assert.deepEqual(s.feeds, { [pubs.ann.id]: 'ann', [pubs.bob.id]: 'bob' }, 'the joined list of the watcher');

    // cid joins through A after the watcher: the watcher hears it from a publishers event
    // and adds it to its one PeerConnection
    const updatesBefore = s.updates;
    await publish('cid');
    s = await watcher.until('the watcher receiving audio and video of all three', (st) =>
      feedsOf(st).size === 3 && Object.keys(st.midFeed).length === 6 && st.updates > updatesBefore
        && Object.keys(st.midFeed).every((m) => (st.bytes[m] || 0) > 0));
    const mids = Object.keys(s.midFeed);
    s = await watcher.until('bytes growing on all six tracks', (st) => grew(st, s.bytes, mids, 500));
    assert.equal(s.subscriberPcs, 1, 'one subscriber PeerConnection');

    // what the watcher (on B) knows of the publishers is the room (on A)
    const { parts, publishers } = await roomPublishers(room);
    const expected = Object.fromEntries(['ann', 'bob', 'cid'].map((n) => [String(pubs[n].id), n]));
    assert.deepEqual(publishers, expected, `the owner's participants: ${JSON.stringify(parts)}`);
    assert.deepEqual(s.feeds, expected, 'the publishers the watcher knows');
    const midFeeds = Object.values(s.midFeed);
    for (const [id] of Object.entries(expected)) {
      const kinds = midFeeds.filter(([f]) => String(f) === id).map(([, k]) => k).sort();
      assert.deepEqual(kinds, ['audio', 'video'], `feed ${id}: ${JSON.stringify(s.midFeed)}`);
    }
    const watcherPart = parts.find((p) => p.display === 'watcher');
    assert.ok(watcherPart && !watcherPart.publisher, `the watcher is in the room, not publishing: ${JSON.stringify(parts)}`);
    // A places every participant (the watcher too): the publishers span backends
    const servers = new Set(parts.filter((p) => p.publisher).map((p) => p.backend_server));
    assert.ok(servers.size >= 2, `the publishers on more than one backend: ${JSON.stringify(parts)}`);
    // each publisher page sees the others with the same ids and names
    for (const n of ['ann', 'bob']) {
      const ps = await pubs[n].state();
      assert.equal(ps.publisherId, pubs[n].id);
    }

    s = await watcher.until('video frames of every feed', (st) => Object.keys(st.firstFrameMs).length === 3);
    const mirrors = await admin(proxyA, `/plugins/videoroom/rooms/${room}/mirrors`);
    const mirrored = new Set(mirrors.map((m) => String(m.feed)));
    // the feeds of the other backends, and only those, mirrored to the subscriber's
    const to = new Set(mirrors.map((m) => m.to));
    assert.equal(to.size, 1, `one subscriber backend: ${JSON.stringify(mirrors)}`);
    const [subBackend] = to;
    const elsewhere = parts.filter((p) => p.publisher && !p.backend_server.endsWith(`(${subBackend})`)).map((p) => String(p.id));
    assert.deepEqual([...mirrored].sort(), elsewhere.sort(), `mirrors ${JSON.stringify(mirrors)} of ${JSON.stringify(parts)}`);
    t.diagnostic(`mirrors: ${JSON.stringify(mirrors)}`);
    const nameOf = (feed) => expected[String(feed)];
    const times = Object.entries(s.firstFrameMs).map(([feed, ms]) =>
      `${nameOf(feed)} (${nameOf(feed) === 'cid' ? 'publishers event' : 'joined list'}, ${mirrored.has(String(feed)) ? 'mirrored' : 'same backend'}) ${ms} ms`);
    t.diagnostic(`subscribe to first video frame, watcher on B, publishers on A: ${times.join('; ')}`);
    t.diagnostic(`bytes per track: ${Object.entries(s.bytes).map(([m, b]) => `${nameOf(s.midFeed[m]?.[0])}/${s.midFeed[m]?.[1]} ${b}`).join(', ')}`);

    // bob's page closes: the watcher (B) hears it leave, drops its tracks, keeps the others
    const before = s.updates;
    await pubs.bob.page.close();
    s = await watcher.until('the leave and autoupdate after bob left', (st) =>
      st.updates > before && !feedsOf(st).has(pubs.bob.id) && !(String(pubs.bob.id) in st.feeds));
    const kept = Object.keys(s.midFeed);
    assert.equal(kept.length, 4, JSON.stringify(s.midFeed));
    delete expected[String(pubs.bob.id)];
    assert.deepEqual(s.feeds, expected, 'the publishers the watcher knows after bob left');
    await waitFor('bob gone from the owner\'s room', async () => (await roomPublishers(room)).publishers[String(pubs.bob.id)] === undefined);
    assert.deepEqual((await roomPublishers(room)).publishers, expected);
    await watcher.until('ann and cid still flowing', (st) => grew(st, s.bytes, kept, 500));
    assert.deepEqual((await watcher.state()).errors, []);
  } catch (e) {
    for (const p of pages) {
      console.error(`--- page ${p.url} ---\n${p.consoleLines.slice(-30).join('\n')}`);
    }
    for (const p of [proxyA, proxyB]) console.error(`--- proxy ${p.url} output ---\n${tail(p.logPath, 60)}`);
    throw e;
  } finally {
    for (const p of pages) await p.page.close().catch(() => {});
  }
});

/**
 * Acceptance 2 for a VideoRoom subscriber: ann and bob publish through C, which owns the
 * room; the watcher page subscribes to both in one PeerConnection; one proxy is killed
 * with SIGKILL and every feed keeps reaching the watcher. Pages whose proxy dies come
 * through a load balancer that prefers that proxy, with `?reconnect=1`: they claim their
 * sessions on the other one. `killOwner`: C dies, D takes the room over from C's snapshot
 * (the publishers reconnect to it); else the watcher's relaying proxy D dies.
 * `watcherOnOwner`: the watcher is on C, else on D (relayed to C). Afterwards cid
 * publishes through the survivor and the watcher adds it.
 */
async function conferenceSurvives(t, { killOwner, watcherOnOwner }) {
  const tag = `${killOwner ? 'o' : 'r'}${watcherOnOwner ? 'o' : 'r'}`;
  const [owner, relay] = await Promise.all([failoverProxy(`c${tag}`), failoverProxy(`d${tag}`)]);
  const [killed, survivor] = killOwner ? [owner, relay] : [relay, owner];
  const balancer = await startBalancer([killed.port, survivor.port]);
  const viaBalancer = { server: `ws://127.0.0.1:${balancer.port}`, reconnect: '1' };
  const watcherProxy = watcherOnOwner ? owner : relay;
  const watcherVia = watcherProxy === killed ? viaBalancer : { server: `ws://127.0.0.1:${watcherProxy.port}` };
  const room = 100000 + Math.floor(Math.random() * 800000);
  const pages = [];
  // Pages come from the survivor; the publishers' API goes to the owner C, through the
  // balancer when C dies.
  const publish = async (name, via = killOwner ? viaBalancer : {}) => {
    const p = await openPage(survivor, { room: String(room), name, subscribe: '0', ...via });
    pages.push(p);
    const s = await p.until(`${name} joined and publishing`, (st) => st.joined && st.published);
    p.id = s.publisherId;
    return p;
  };
  try {
    const ann = await publish('ann');
    const bob = await publish('bob');
    const watcher = await openPage(survivor, { room: String(room), name: 'watcher', publish: '0', ...watcherVia });
    pages.push(watcher);
    let s = await watcher.until('the watcher receiving audio and video of ann and bob', (st) =>
      st.joined && st.subscribed && feedsOf(st).size === 2 && Object.keys(st.midFeed).length === 4
        && Object.keys(st.midFeed).every((m) => (st.bytes[m] || 0) > 0));
    assert.deepEqual(s.feeds, { [ann.id]: 'ann', [bob.id]: 'bob' });
    assert.ok(balancer.routed.length >= 1 && balancer.routed.every((x) => x.port === killed.port), `every balanced connection goes to the proxy that dies: ${JSON.stringify(balancer.routed)}`);
    const { parts } = await roomPublishers(room, owner);
    assert.ok(parts.some((p) => p.display === 'watcher'), `C owns the room and holds the watcher: ${JSON.stringify(parts)}`);
    const sid = s.sessionId;

    const mids = Object.keys(s.midFeed);
    const keys = mids.map((m) => `mid:${m}`);
    await watcher.page.evaluate(startSampler, 'videoroomSubscriber');
    const sampling = await baseline(watcher.page, keys);

    const killedAt = Date.now();
    await killed.kill9();
    // Everyone whose proxy died claims its session again on the survivor.
    const moved = [...(killOwner ? [ann, bob] : []), ...(watcherProxy === killed ? [watcher] : [])];
    for (const p of moved) {
      await p.until(`${p.name}: the session claimed again (janus.reconnect)`, (st) => st.reconnects && st.reconnects[0] && st.reconnects[0].claimedAt);
    }
    const claims = await Promise.all(moved.map(async (p) => ({ name: p.name, r: (await p.state()).reconnects[0] })));
    const mark = (await watcher.state()).bytes;
    // Every feed keeps coming, well past what had arrived once the claims were answered.
    await watcher.until('every mid growing after the failover', (st) => grew(st, mark, mids, 20000), 15000);
    const { pause, baseline: calm, samples } = await pauses(watcher.page, sampling, killedAt, keys);
    const nameOf = (m) => `${s.feeds[s.midFeed[m][0]]}/${s.midFeed[m][1]}`;
    t.diagnostic(`videoroom failover, ${killOwner ? 'the room\'s owner' : 'the watcher\'s relaying proxy'} killed, watcher ${watcherOnOwner ? 'on the owner' : 'relayed'} ` +
      `(janus.js in Chromium, via a load balancer): sessions claimed on the survivor after ${claims.map(({ name, r }) => `${name} ${r.claimedAt - killedAt} ms`).join(', ')}; ` +
      `longest pause of the watcher's inbound bytes after the kill: ${mids.map((m) => `${nameOf(m)} ${pause[`mid:${m}`]} ms`).join(', ')} ` +
      `(${calm} ms in 2 s before it); ${samples} getStats samples`);
    for (const { name, r } of claims) {
      assert.ok(r.claimedAt - killedAt < HEARTBEAT_TTL * 1000 + 5000, `${name} claimed ${r.claimedAt - killedAt} ms after the kill`);
    }
    const now = await watcher.state();
    assert.equal(now.sessionId, sid, 'the same session');
    assert.equal((now.reconnects || []).length, watcherProxy === killed ? 1 : 0, JSON.stringify(now.reconnects));
    if (moved.length) {
      assert.ok(balancer.routed.some((x) => x.port === survivor.port && x.at >= killedAt), `reconnected through the balancer to the survivor: ${JSON.stringify(balancer.routed)}`);
    }
    for (const m of mids) assert.ok(pause[`mid:${m}`] < 1000, `mid ${m} (${nameOf(m)}) paused ${pause[`mid:${m}`]} ms`);

    // The room goes on: cid publishes through the survivor, the watcher hears of it
    // (publishers event on its participant handle), subscribes and gets the updated offer.
    const updatesBefore = s.updates;
    const cid = await publish('cid', {});
    s = await watcher.until('the watcher receiving cid after the failover', (st) =>
      feedsOf(st).has(cid.id) && Object.keys(st.midFeed).length === 6 && st.updates > updatesBefore);
    const all = Object.keys(s.midFeed);
    await watcher.until('bytes growing on all six tracks', (st) => grew(st, s.bytes, all, 500));
    assert.equal(s.subscriberPcs, 1, 'still one subscriber PeerConnection');
    const { publishers } = await roomPublishers(room, survivor);
    assert.deepEqual(publishers, { [ann.id]: 'ann', [bob.id]: 'bob', [cid.id]: 'cid' }, 'the room on the survivor');
    assert.deepEqual((await watcher.state()).errors, []);
  } catch (e) {
    for (const p of pages) {
      console.error(`--- page ${p.url} ---\n${p.consoleLines.slice(-30).join('\n')}`);
    }
    console.error(`--- balancer ---\n${JSON.stringify(balancer.routed)}`);
    for (const p of [owner, relay]) console.error(`--- proxy ${p.url} output ---\n${tail(p.logPath, 60)}`);
    throw e;
  } finally {
    for (const p of pages) await p.page.close().catch(() => {});
    await balancer.close();
    for (const p of [owner, relay]) await p.stop();
  }
}

const SCENARIOS = [
  ['kill -9 of the proxy a VideoRoom subscriber is on (relaying to the owner): janus.reconnect() claims it on the owner, its feeds never stop, the room goes on', { killOwner: false, watcherOnOwner: false }],
  ['kill -9 of the room\'s owner, everyone on it: the clients claim their sessions on the other proxy, which takes the room over; the subscriber\'s feeds never stop, the room goes on', { killOwner: true, watcherOnOwner: true }],
  ['kill -9 of the room\'s owner, the subscriber relayed through the other proxy: the publishers claim their sessions there, which takes the room over, the relay follows it; the subscriber\'s feeds never stop', { killOwner: true, watcherOnOwner: false }],
];

for (const [name, scenario] of SCENARIOS) {
  test(name, async (t) => {
    if (target() === 'direct') {
      t.skip('a room spanning proxies is the proxies\'');
      return;
    }
    await conferenceSurvives(t, scenario);
  });
}
