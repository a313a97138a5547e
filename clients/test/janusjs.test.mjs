// janus.js 1.4 (the npm package janus-gateway, vendored in html/vendor/), unchanged, in
// headless Chromium with real media (Chromium's fake camera and microphone), on every demo
// page (html/echotest.html, videocall.html, p2pcall.html) served by janus-proxy's HTTP
// listener, over both client transports: the WebSocket API (?transport=ws) and Janus's HTTP
// API with long polls (the page's own origin, /janus). Media goes to real Janus backends
// over 127.0.0.1 (scripts/janus-backends.sh's loopback ICE shim), or peer to peer (p2pcall).
//
// - echotest: attach, webrtcup, a `media` event with receiving=true, echoed tracks playing;
// - videocall / p2pcall with dashed usernames: register, call, auto-answer, both sides see
//   the other's video; the caller hangs up and the callee's PeerConnection is closed by the
//   core `hangup` event ("Close PC", as Janus sends it) within 1 s.
//
// CLIENT_TEST_TARGET=direct points the pages at the first Janus backend (its WebSocket and
// HTTP APIs) instead of the proxy, serving the pages from a small node server (p2pcall, a
// proxy plugin, is skipped then). CHROMIUM (default /usr/bin/chromium) is the browser.
// JANUS_CLOUD_SCREENSHOTS=DIR also saves a PNG of each working page there (docs/ holds them).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { execFile } from 'node:child_process';

import { chromium } from 'playwright-core';
import Janode from 'janode';
import { startBackends, startProxy, waitFor, waitEchotestReady, target, tail, testDir, ROOT, CHROMIUM_ARGS } from '../lib/fixtures.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MEDIA_DEADLINE = 20000; // ms from page load to media playing

let backends;
let proxy;
let serverPlugins = []; // what the server under test serves
let server; // direct mode only: html/ served by node
let browser;

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.map': 'application/json' };

function serveStatic() {
  const dir = path.join(ROOT, 'html');
  const srv = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const file = path.normalize(path.join(dir, decodeURIComponent(pathname === '/' ? '/index.html' : pathname)));
    if (!file.startsWith(dir + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium; scripts/client-tests.sh does it)`);
  const backendsReady = startBackends({ name: 'clients-janusjs', wsBase: 19190, adminBase: 19200, rtpBase: 36000, httpBase: 19210, plugins: 'echotest videocall videoroom' });
  const browserReady = chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  [backends, browser] = await Promise.all([backendsReady, browserReady]);
  if (target() === 'direct') {
    server = await serveStatic();
    await waitEchotestReady(backends.urls()[0]);
  } else {
    proxy = await startProxy({ name: 'clients-janusjs', backendUrls: backends.urls(), plugins: await proxyPlugins(), http: true });
    await waitEchotestReady(proxy.url);
  }
  serverPlugins = await pluginsOf(proxy ? proxy.url : backends.urls()[0]);
});

/** The plugins `url` serves (its `info`). */
async function pluginsOf(url) {
  const conn = await Janode.connect({ address: { url }, max_retries: 0 });
  try {
    const info = await conn.getInfo();
    return Object.keys(info.plugins || {});
  } finally {
    await conn.close().catch(() => {});
  }
}

/** The proxy plugins of this build among those the pages use (videoroom when built in). */
async function proxyPlugins() {
  const bin = process.env.JANUS_PROXY_BIN || path.join(ROOT, 'target', 'debug', 'janus-proxy');
  // a file: node gives a child's stdin as a socket, which /dev/stdin cannot open
  const probeFile = path.join(testDir(), 'videoroom-probe.toml');
  writeFileSync(probeFile, 'plugins = ["videoroom"]\n');
  const probe = await new Promise((resolve) => {
    execFile(bin, ['--check-config', probeFile], (err, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
  const wanted = ['echotest', 'videocall', 'p2pcall'];
  if (/configuration OK/.test(probe)) wanted.push('videoroom');
  return wanted;
}

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await new Promise((r) => server.close(r));
  if (proxy) await proxy.stop();
  if (backends) await backends.stop();
});

/** The URL of demo page `name` using `transport` (ws or http), with extra query params. */
function pageUrl(name, transport, extra = {}) {
  const q = new URLSearchParams(extra);
  let base;
  if (proxy) {
    base = `${proxy.httpUrl}/${name}`;
    if (transport === 'ws') {
      q.set('transport', 'ws');
      q.set('port', String(proxy.port));
    }
  } else {
    base = `http://127.0.0.1:${server.address().port}/${name}`;
    q.set('server', transport === 'ws' ? backends.urls()[0] : backends.httpUrls()[0]);
  }
  return `${base}?${q}`;
}

/** A page with its console collected and its state object read by `state()`. */
async function openPage(url, stateName) {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const state = () => page.evaluate((n) => window[n] && JSON.parse(JSON.stringify(window[n])), stateName);
  await page.goto(url);
  const until = async (what, pred, within = MEDIA_DEADLINE) => {
    await waitFor(what, async () => {
      const s = await state();
      if (s && s.errors.length) throw Object.assign(new Error(`page error: ${s.errors.join('; ')}`), { fatal: true });
      return s && pred(s);
    }, { within, every: 50 });
  };
  return { page, state, until, consoleLines, url };
}

async function dump(pages, e, started) {
  console.error(`FAILED after ${Date.now() - started} ms: ${e.message}`);
  for (const p of pages) {
    const s = await p.state().catch(() => null);
    console.error(`--- page ${p.url} ---\n${JSON.stringify(s, null, 1)}`);
    console.error(`--- browser console (last 40) ---\n${p.consoleLines.slice(-40).join('\n')}`);
  }
  if (proxy) console.error(`--- proxy output (${proxy.logPath}) ---\n${tail(proxy.logPath, 40)}`);
  for (const f of backends.logs()) console.error(`--- ${f} ---\n${tail(f, 25)}`);
}

async function screenshot(page, name) {
  const dir = process.env.JANUS_CLOUD_SCREENSHOTS || path.join(testDir(), 'screenshots');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, name) });
}

for (const transport of ['ws', 'http']) {
  test(`videoroom page over ${transport}: two publishers see each other's video`, async (t) => {
    if (!serverPlugins.includes('janus.plugin.videoroom')) {
      t.skip('this janus-proxy has no janus.plugin.videoroom (CLIENT_TEST_TARGET=direct runs the page against Janus)');
      return;
    }
    const started = Date.now();
    const room = 100000 + Math.floor(Math.random() * 800000);
    const pages = [];
    try {
      for (const name of ['anna-1', 'ben-2']) {
        const p = await openPage(pageUrl('videoroom.html', transport, { room: String(room), name }), 'videoroom');
        pages.push(p);
        await p.until(`${name} joined and publishing`, (s) => s.joined && s.published);
      }
      for (const p of pages) {
        await p.until('the other publisher\'s video playing (10 frames)', (s) => s.subscribed && Object.values(s.remoteFrames).some((n) => n >= 10));
      }
      t.diagnostic(`both publishers see each other after ${Date.now() - started} ms`);
      await screenshot(pages[1].page, `videoroom-${transport}.png`);
      for (const p of pages) assert.deepEqual((await p.state()).errors, []);
    } catch (e) {
      await dump(pages, e, started);
      throw e;
    } finally {
      for (const p of pages) await p.page.close().catch(() => {});
    }
  });

  test(`echotest page over ${transport}: attach, webrtcup, media receiving, echoed tracks playing`, async (t) => {
    const started = Date.now();
    const p = await openPage(pageUrl('echotest.html', transport), 'echotest');
    try {
      await p.until('attach success', (s) => s.attached);
      t.diagnostic(`attached after ${Date.now() - started} ms`);
      await p.until('webrtcup', (s) => s.webrtcup);
      t.diagnostic(`webrtcup after ${Date.now() - started} ms`);
      await p.until('a media event with receiving=true', (s) => s.mediaReceiving);
      await p.until('live remote audio and video tracks', (s) => s.remoteLive.includes('audio') && s.remoteLive.includes('video'));
      await p.until('the echoed video playing (10 frames)', (s) => s.remotePlaying && s.remoteFrames >= 10);
      t.diagnostic(`echoed media playing after ${Date.now() - started} ms`);

      const s = await p.state();
      assert.deepEqual(s.errors, []);
      assert.equal(s.server.startsWith(transport === 'ws' ? 'ws://' : 'http://'), true, s.server);
      assert.ok(s.echoResults.includes('ok'), `echotest result ok (${JSON.stringify(s.echoResults)})`);
      assert.ok(s.jsepAnswer, 'the JSEP answer was applied');
      assert.deepEqual([...s.localTracks].sort(), ['audio', 'video']);
      assert.ok(s.sessionId > 0 && s.sessionId < 2 ** 53);
      assert.ok(s.handleId > 0 && s.handleId < 2 ** 53);
      assert.ok(s.media.some((m) => m.receiving && (m.type === 'audio' || m.type === 'video')), JSON.stringify(s.media));
      await screenshot(p.page, `echotest-${transport}.png`);

      await p.page.evaluate(() => new Promise((resolve, reject) => {
        window.janusSession.destroy({ success: resolve, error: reject });
      }));
    } catch (e) {
      await dump([p], e, started);
      throw e;
    } finally {
      await p.page.close().catch(() => {});
    }
  });

  for (const [name, plugin] of [['videocall', 'janus.plugin.videocall'], ['p2pcall', 'janus.plugin.p2pcall']]) {
    test(`${name} page over ${transport}: dashed names call, both play video; the caller hangs up and the callee's PeerConnection closes within 1 s`, { skip: target() === 'direct' && name === 'p2pcall' ? 'p2pcall is a proxy plugin' : false }, async (t) => {
      const started = Date.now();
      const suffix = randomBytes(3).toString('hex');
      const callee = `janode-b-${suffix}`;
      const caller = `janus.js-a-${suffix}`;
      const pages = [];
      try {
        const b = await openPage(pageUrl(`${name}.html`, transport, { user: callee, answer: 'auto' }), 'videocall');
        pages.push(b);
        await b.until(`${callee} registered`, (s) => s.registered === callee);
        const a = await openPage(pageUrl(`${name}.html`, transport, { user: caller, call: callee }), 'videocall');
        pages.push(a);
        await a.until(`${caller} registered`, (s) => s.registered === caller);
        assert.equal((await a.state()).plugin, plugin);
        await b.until('the incoming call answered', (s) => s.peer === caller);
        await a.until('accepted', (s) => s.accepted);
        for (const [who, p] of [['caller', a], ['callee', b]]) {
          await p.until(`${who}: webrtcup`, (s) => s.webrtcup);
          await p.until(`${who}: the peer's video playing (10 frames)`, (s) => s.remotePlaying && s.remoteFrames >= 10);
        }
        t.diagnostic(`call up, video both ways after ${Date.now() - started} ms`);
        await screenshot(b.page, `${name}-${transport}.png`);

        await a.page.evaluate(() => window.hangupCall());
        await b.until("the callee's PeerConnection closed", (s) => s.webrtcDown && s.cleanups.length > 0, 5000);
        const [sa, sb] = [await a.state(), await b.state()];
        const closedIn = sb.webrtcDown.at - sa.hungUpAt;
        t.diagnostic(`callee's PeerConnection closed ${closedIn} ms after the caller hung up (reason ${sb.webrtcDown.reason})`);
        assert.equal(sb.fallbackCleanup, false, 'closed by the core hangup, not by the page');
        assert.equal(sb.webrtcDown.reason, 'Close PC', 'the core hangup as Janus sends it');
        assert.ok(closedIn < 1000, `closed after ${closedIn} ms`);
        assert.ok(sb.hangups.some((h) => h.username === caller), JSON.stringify(sb.hangups));
        assert.deepEqual(sa.errors, []);
        assert.deepEqual(sb.errors, []);
      } catch (e) {
        await dump(pages, e, started);
        throw e;
      } finally {
        for (const p of pages) await p.page.close().catch(() => {});
      }
    });
  }
}
