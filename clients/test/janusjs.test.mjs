// janus.js 1.4 (the npm package janus-gateway), unchanged, in headless Chromium: html/echotest.html
// talks to janus-proxy (signalling) and sends real audio + video (Chromium's fake devices) to a
// Janus backend over 127.0.0.1 (the backends run with scripts/janus-backends.sh's loopback ICE
// shim), which echoes it back. The test waits for attach, webrtcup, a `media` event with
// receiving=true and live, playing remote tracks.
//
// CLIENT_TEST_TARGET=direct points the page at the first Janus backend instead of the proxy.
// CHROMIUM (default /usr/bin/chromium) is the browser playwright-core drives.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';
import { startBackends, startProxy, waitFor, waitEchotestReady, target, tail, ROOT, CLIENTS } from '../lib/fixtures.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MEDIA_DEADLINE = 20000; // ms from page load to echoed media playing

let backends;
let proxy;
let server; // static files: html/ at /, clients/node_modules at /node_modules/
let browser;
let serverUrl;

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.map': 'application/json' };

function serveStatic() {
  const roots = [
    ['/node_modules/', path.join(CLIENTS, 'node_modules')],
    ['/', path.join(ROOT, 'html')],
  ];
  const srv = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const [prefix, dir] = roots.find(([p]) => pathname.startsWith(p));
    const file = path.normalize(path.join(dir, decodeURIComponent(pathname.slice(prefix.length))));
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
  const backendsReady = startBackends({ name: 'clients-janusjs', wsBase: 19190, adminBase: 19200, rtpBase: 36000 });
  // playwright-core gives every launch a fresh, empty --user-data-dir of its own
  const browserReady = chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  [server, backends, browser] = await Promise.all([serveStatic(), backendsReady, browserReady]);
  if (target() === 'direct') {
    serverUrl = backends.urls()[0];
  } else {
    proxy = await startProxy({ name: 'clients-janusjs', backendUrls: backends.urls() });
    serverUrl = proxy.url;
  }
  await waitEchotestReady(serverUrl);
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await new Promise((r) => server.close(r));
  if (proxy) await proxy.stop();
  if (backends) await backends.stop();
});

test('janus.js echotest in Chromium: attach, webrtcup, media receiving, echoed tracks playing', async (t) => {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const state = () => page.evaluate(() => window.echotest && JSON.parse(JSON.stringify(window.echotest)));
  const { port } = server.address();
  const pageUrl = `http://127.0.0.1:${port}/echotest.html?server=${encodeURIComponent(serverUrl)}`;
  const started = Date.now();
  try {
    await page.goto(pageUrl);
    const deadline = Date.now() + MEDIA_DEADLINE;
    const until = async (what, pred) => {
      await waitFor(what, async () => {
        const s = await state();
        if (s && s.errors.length) throw Object.assign(new Error(`page error: ${s.errors.join('; ')}`), { fatal: true });
        return s && pred(s);
      }, { within: Math.max(deadline - Date.now(), 1), every: 100 });
    };
    await until('attach success', (s) => s.attached);
    t.diagnostic(`attached after ${Date.now() - started} ms`);
    await until('webrtcup', (s) => s.webrtcup);
    t.diagnostic(`webrtcup after ${Date.now() - started} ms`);
    await until('a media event with receiving=true', (s) => s.mediaReceiving);
    await until('live remote audio and video tracks', (s) => s.remoteLive.includes('audio') && s.remoteLive.includes('video'));
    await until('the echoed video playing (10 frames)', (s) => s.remotePlaying && s.remoteFrames >= 10);
    t.diagnostic(`echoed media playing after ${Date.now() - started} ms`);

    const s = await state();
    assert.deepEqual(s.errors, []);
    assert.ok(s.echoResults.includes('ok'), `echotest result ok (${JSON.stringify(s.echoResults)})`);
    assert.ok(s.jsepAnswer, 'the JSEP answer was applied');
    assert.deepEqual([...s.localTracks].sort(), ['audio', 'video']);
    assert.ok(s.sessionId > 0 && s.sessionId < 2 ** 53);
    assert.ok(s.handleId > 0 && s.handleId < 2 ** 53);
    assert.ok(s.media.some((m) => m.receiving && (m.type === 'audio' || m.type === 'video')), JSON.stringify(s.media));

    await page.evaluate(() => new Promise((resolve, reject) => {
      window.janusSession.destroy({ success: resolve, error: reject });
    }));
  } catch (e) {
    const s = await state().catch(() => null);
    console.error(`FAILED after ${Date.now() - started} ms: ${e.message}`);
    console.error(`--- page state ---\n${JSON.stringify(s, null, 1)}`);
    console.error(`--- browser console (last 60) ---\n${consoleLines.slice(-60).join('\n')}`);
    if (proxy) console.error(`--- proxy output (${proxy.logPath}) ---\n${tail(proxy.logPath, 40)}`);
    for (const f of backends.logs()) console.error(`--- ${f} ---\n${tail(f, 25)}`);
    throw e;
  } finally {
    await page.close().catch(() => {});
  }
});
