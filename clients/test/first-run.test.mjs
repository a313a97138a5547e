// The README's first command, as a newcomer runs it: scripts/run-cluster.sh brings up Janus
// under janus-sentinel and janus-proxy, and ends by printing a URL. The test opens that URL
// in headless Chromium (fake camera and microphone) and waits for the echoed video to play,
// takes a screenshot, then stops the cluster with SIGTERM (as Ctrl-C) and checks that every
// port is closed again.
//
// The cluster runs the debug build (scripts/client-tests.sh builds it) on the ports of the
// set clients-firstrun (clients/lib/fixtures.mjs), its state in JANUS_CLOUD_TEST_DIR.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { chromium } from 'playwright-core';
import { testDir, waitFor, withDeadline, tail, ROOT, CHROMIUM_ARGS } from '../lib/fixtures.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PORTS = { base: 19192, ws: 19220, http: 19221, admin: 19222, sentinel: 19223 };

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

test('scripts/run-cluster.sh prints a URL whose page shows echoed video; SIGTERM stops everything', async (t) => {
  const dir = path.join(testDir(), 'clients-firstrun');
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const child = spawn('bash', [path.join(ROOT, 'scripts', 'run-cluster.sh')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      JANUS_CLOUD_DIR: dir,
      JANUS_CLOUD_BUILD: 'debug',
      JANUS_CLOUD_NO_BUILD: '1',
      JANUS_CLOUD_BASE_PORT: String(PORTS.base),
      JANUS_CLOUD_WS_PORT: String(PORTS.ws),
      JANUS_CLOUD_HTTP_PORT: String(PORTS.http),
      JANUS_CLOUD_ADMIN_PORT: String(PORTS.admin),
      JANUS_CLOUD_SENTINEL_PORT: String(PORTS.sentinel),
      JANUS_RTP_BASE: '38000',
      JANUS_RTP_SPAN: '1000',
    },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let browser;
  try {
    const url = await waitFor('run-cluster.sh to print a URL', () => {
      const m = out.match(/^(https?:\/\/\S+)$/m);
      return m && m[1];
    }, { within: 120000, every: 100 });
    t.diagnostic(`URL printed after ${Date.now() - started} ms: ${url}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    await page.goto(url);
    const state = () => page.evaluate(() => window.echotest && JSON.parse(JSON.stringify(window.echotest)));
    await waitFor('the echoed video playing (10 frames)', async () => {
      const s = await state();
      if (s && s.errors.length) throw Object.assign(new Error(`page error: ${s.errors.join('; ')}`), { fatal: true });
      return s && s.webrtcup && s.remotePlaying && s.remoteFrames >= 10;
    }, { within: 30000, every: 100 });
    t.diagnostic(`echoed video playing after ${Date.now() - started} ms`);
    const s = await state();
    assert.equal(s.server, `http://127.0.0.1:${PORTS.http}/janus`);
    const shots = process.env.JANUS_CLOUD_SCREENSHOTS || path.join(testDir(), 'screenshots');
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'first-run.png') });
  } catch (e) {
    console.error(`--- run-cluster.sh stdout ---\n${out}\n--- stderr ---\n${err}`);
    console.error(`--- proxy.log ---\n${tail(path.join(dir, 'proxy.log'), 30)}`);
    console.error(`--- sentinel-0.log ---\n${tail(path.join(dir, 'sentinel-0.log'), 30)}`);
    throw e;
  } finally {
    if (browser) await browser.close().catch(() => {});
    child.kill('SIGTERM');
    const r = await withDeadline('run-cluster.sh to stop', exited, 30000);
    assert.equal(r.code, 0, `run-cluster.sh exit ${JSON.stringify(r)}\n${err.slice(-2000)}`);
  }
  const ports = [PORTS.ws, PORTS.http, PORTS.admin, PORTS.base, PORTS.base + 1, PORTS.sentinel, PORTS.sentinel + 1];
  for (const p of ports) assert.equal(await tcpOpen(p), false, `port ${p} still open after the cluster stopped`);
});
