// The VideoRoom spanning three Janus backends, in headless Chromium with real media
// (janus.js 1.4 on html/videoroom.html, unchanged clients): three publishers land on three
// different backends; a watcher page (?publish=0) receives audio and video of all three on
// ONE subscriber PeerConnection (one feed local to the subscriber's backend, two mirrored
// to it), getStats bytes growing on every track; one publisher leaves, the watcher gets the
// autoupdate offer and keeps the other two. The time from asking for a feed to its first
// video frame is reported for the local and the mirrored feeds (the proxy's admin API
// lists the mirrors).
//
// Proxy only (CLIENT_TEST_TARGET=direct skips it: one Janus cannot span servers).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';
import { startBackends, startProxy, waitFor, target, tail, CHROMIUM_ARGS } from '../lib/fixtures.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DEADLINE = 20000;

let backends;
let proxy;
let browser;

before(async () => {
  if (target() === 'direct') return;
  // own set: WS 19230-19232, admin 19240-19242, RTP 43000-43899
  [backends, browser] = await Promise.all([
    startBackends({ name: 'clients-videoroom', n: 3, wsBase: 19230, adminBase: 19240, rtpBase: 43000, rtpSpan: 300, plugins: 'videoroom' }),
    chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }),
  ]);
  proxy = await startProxy({ name: 'clients-videoroom', backendUrls: backends.urls(), plugins: ['videoroom'], http: true });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (proxy) await proxy.stop();
  if (backends) await backends.stop();
});

async function openPage(query) {
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
  return { page, state, until, consoleLines, url };
}

/** `GET` on the proxy's admin API. */
async function admin(path) {
  const r = await fetch(`http://127.0.0.1:${proxy.adminPort}${path}`);
  const text = await r.text();
  assert.equal(r.status, 200, `${path}: ${text}`);
  return JSON.parse(text);
}

/** Bytes of every mid of `mids` grew by more than `by` from `base`. */
function grew(s, base, mids, by) {
  return mids.every((m) => (s.bytes[m] || 0) > (base[m] || 0) + by);
}

test('one room over three backends: one subscriber PeerConnection receives all three publishers; one leaves', async (t) => {
  if (target() === 'direct') {
    t.skip('a room spanning backends is the proxy\'s');
    return;
  }
  const room = 100000 + Math.floor(Math.random() * 800000);
  const pages = [];
  try {
    // publishers that only publish: the watcher's mirrors are then the room's only ones
    for (const name of ['ann', 'bob', 'cid']) {
      const p = await openPage({ room: String(room), name, subscribe: '0' });
      pages.push(p);
      await p.until(`${name} joined and publishing`, (s) => s.joined && s.published);
    }
    const parts = await admin(`/plugins/videoroom/rooms/${room}/participants`);
    const servers = new Set(parts.map((p) => p.backend_server));
    assert.equal(parts.length, 3, JSON.stringify(parts));
    assert.equal(servers.size, 3, `three publishers on three backends: ${JSON.stringify(parts)}`);

    const watcher = await openPage({ room: String(room), name: 'watcher', publish: '0' });
    pages.push(watcher);
    const feedsOf = (s) => new Set(Object.values(s.midFeed).map(([feed]) => feed));
    let s = await watcher.until('audio and video of three feeds on the subscriber', (st) =>
      st.subscribed && feedsOf(st).size === 3 && Object.keys(st.midFeed).length === 6
        && Object.keys(st.midFeed).every((m) => (st.bytes[m] || 0) > 0));
    const mids = Object.keys(s.midFeed);
    s = await watcher.until('bytes growing on every track', (st) => grew(st, s.bytes, mids, 500));
    assert.equal(s.subscriberPcs, 1, 'one subscriber PeerConnection');
    s = await watcher.until('video frames of every feed', (st) => Object.keys(st.firstFrameMs).length === 3);
    // the feeds mirrored to the watcher's backend; the other one publishes there
    const mirrored = new Set((await admin(`/plugins/videoroom/rooms/${room}/mirrors`)).map((m) => m.feed));
    assert.equal(mirrored.size, 2, 'two of the three feeds mirrored');
    const times = Object.entries(s.firstFrameMs).map(([feed, ms]) => `${mirrored.has(Number(feed)) ? 'mirrored' : 'same-backend'} ${ms} ms`);
    t.diagnostic(`asking for a feed to its first video frame: ${times.join(', ')}`);

    // bob leaves (its page closes): the watcher renegotiates and keeps ann and cid
    const bob = parts.find((p) => p.display === 'bob').id;
    const before = s.updates;
    await pages[1].page.close();
    s = await watcher.until('the autoupdate after bob left', (st) => st.updates > before && !feedsOf(st).has(bob), DEADLINE);
    const kept = Object.keys(s.midFeed);
    assert.equal(kept.length, 4, JSON.stringify(s.midFeed));
    await watcher.until('ann and cid still flowing', (st) => grew(st, s.bytes, kept, 500));
    assert.deepEqual((await watcher.state()).errors, []);
  } catch (e) {
    for (const p of pages) {
      console.error(`--- page ${p.url} ---\n${p.consoleLines.slice(-30).join('\n')}`);
    }
    console.error(`--- proxy output ---\n${tail(proxy.logPath, 60)}`);
    throw e;
  } finally {
    for (const p of pages) await p.page.close().catch(() => {});
  }
});
