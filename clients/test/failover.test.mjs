// janus.js 1.4 (html/echotest.html, unchanged library) in headless Chromium survives the
// death of its proxy (issue 13, acceptance 2): the realistic topology of a cluster.
//
//   Chromium (janus.js, ?reconnect=1) -> TCP load balancer -> janus-proxy A | janus-proxy B
//                                                               \  one redis-server  /
//                                                                 one real Janus (reclaim 30 s)
//
// The EchoTest runs over both client transports: the WebSocket API (janus.js sees the socket
// close) and Janus's HTTP API with long polls (janus.js gives up after 4 failed polls: the
// new proxy answers 404 for a session it does not hold yet); either way janus.js calls the
// page's `error` callback and `reconnect()` claims the session.
//
// The load balancer (a few lines of Node, clients/lib/failover.mjs) forwards each new connection to the first
// proxy that accepts it, as HAProxy with `option redispatch` or a DNS list would. The page
// runs an EchoTest with real audio and video (Chromium's fake devices) through proxy A; A is
// killed with SIGKILL; janus.js reports the lost connection on its `error` callback and the
// page does what an application does: `janus.reconnect()`, which connects again through the
// load balancer (now to B) and sends `claim`. B adopts the session from Redis, and the
// echoed media, measured in the page with getStats (inbound-rtp bytesReceived, every 20 ms),
// keeps growing through the switch. Prints the failover time (kill -> claim answered) and the
// longest pause of the inbound bytes around the switch, next to the longest pause in the 2 s
// before it.
//
// The last test does the same with a VideoCall between two pages (html/videocall.html), both
// on proxy A: both reconnect to B, the call's media keeps flowing both ways, and a hangup
// after the failover reaches the other page through B.
//
// Each test has its own pair of proxies and load balancers (WebSocket, HTTP); Janus (echotest, videocall) and
// redis-server are shared. Port plan (see clients/lib/fixtures.mjs): Janus WS 18520, admin
// 18530, RTP UDP 49000-49299; proxies, redis-server, the load balancer and the page server on
// free ports.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';
import { startBackends, startProxy, startRedis, waitFor, waitEchotestReady, tail, ROOT, CHROMIUM_ARGS } from '../lib/fixtures.mjs';
import { startBalancer, startSampler, baseline, pauses, inbound, clusterSection } from '../lib/failover.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SET = 'clients-failover';
const HEARTBEAT_TTL = 2;

let backends;
let redis;
let server;
let browser;

// ------------------------------------------------------------------ pages

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.map': 'application/json' };

/** html/ served by node: the page must not depend on the proxy that is going to die. */
function serveStatic() {
  const dir = path.join(ROOT, 'html');
  const srv = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const file = path.normalize(path.join(dir, decodeURIComponent(pathname)));
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

// ------------------------------------------------------------------ set-up

function clusterProxy(name) {
  return startProxy({
    name: `${SET}-${name}`,
    backendUrls: backends.urls(),
    plugins: ['echotest', 'videocall'],
    general: { reclaim_session_timeout: 30 },
    http: true,
    sections: {
      cluster: clusterSection(redis.url, name, HEARTBEAT_TTL),
      videocall: { user_db: JSON.stringify(redis.url), refresh_interval: 1 },
    },
  });
}

/**
 * Proxies A and B of one test, and the load balancers in front of them: `balancer` for their
 * WebSocket listeners, `httpBalancer` for their HTTP ones (Janus's REST API).
 */
async function startCluster(names) {
  const proxies = [];
  try {
    for (const n of names) proxies.push(await clusterProxy(n));
    for (const p of proxies) await waitEchotestReady(p.url);
    const balancer = await startBalancer(proxies.map((p) => p.port));
    const httpBalancer = await startBalancer(proxies.map((p) => p.httpPort));
    return {
      proxies,
      balancer,
      httpBalancer,
      stop: async () => {
        await balancer.close();
        await httpBalancer.close();
        for (const p of proxies) await p.stop();
      },
    };
  } catch (e) {
    for (const p of proxies) await p.stop();
    throw e;
  }
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium; scripts/client-tests.sh does it)`);
  const browserReady = chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  [backends, redis, browser, server] = await Promise.all([
    startBackends({
      name: SET, n: 1, wsBase: 18520, adminBase: 18530, rtpBase: 49000, rtpSpan: 300, plugins: 'echotest videocall',
      env: { JANUS_RECLAIM_SESSION_TIMEOUT: '30' },
    }),
    startRedis(SET),
    browserReady,
    serveStatic(),
  ]);
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await new Promise((r) => server.close(r));
  if (redis) await redis.stop();
  if (backends) await backends.stop();
});

// ------------------------------------------------------------------ the test

/** A page with its console collected and its state object (window[stateName]) read by `state()`. */
async function openPage(url, stateName) {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const state = () => page.evaluate((n) => window[n] && JSON.parse(JSON.stringify(window[n])), stateName);
  const until = (what, pred, within = 20000) => waitFor(what, async () => {
    const s = await state();
    if (s && s.errors.length) throw Object.assign(new Error(`page error: ${s.errors.join('; ')}`), { fatal: true });
    return s && pred(s);
  }, { within, every: 50 });
  await page.goto(url);
  return { page, state, until, consoleLines, url };
}

/** The URL of demo page `name` through a load balancer, reconnecting, with `extra` params. */
function pageUrl(cluster, name, extra = {}, transport = 'ws') {
  const api = transport === 'ws' ? `ws://127.0.0.1:${cluster.balancer.port}` : `http://127.0.0.1:${cluster.httpBalancer.port}/janus`;
  const q = new URLSearchParams({ server: api, reconnect: '1', ...extra });
  return `http://127.0.0.1:${server.address().port}/${name}?${q}`;
}

async function dump(cluster, pages, e, started) {
  console.error(`FAILED after ${Date.now() - started} ms: ${e.message}`);
  for (const p of pages) {
    console.error(`--- page ${p.url} ---\n${JSON.stringify(await p.state().catch(() => null), null, 1)}`);
    console.error(`--- browser console (last 40) ---\n${p.consoleLines.slice(-40).join('\n')}`);
  }
  console.error(`--- balancers ---\nws ${JSON.stringify(cluster.balancer.routed)}\nhttp ${JSON.stringify(cluster.httpBalancer.routed)}`);
  for (const p of cluster.proxies) console.error(`--- proxy output (${p.logPath}) ---\n${tail(p.logPath, 40)}`);
  for (const f of backends.logs()) console.error(`--- ${f} ---\n${tail(f, 25)}`);
}

/** Waits until the page's inbound audio and video have grown well past what they were now. */
async function mediaGrows(p, what) {
  const now = (await inbound(p.page)).at(-1);
  await waitFor(what, async () => {
    const last = (await inbound(p.page)).at(-1);
    return last.video > now.video + 20000 && last.audio > now.audio + 2000;
  }, { within: 10000 });
}

for (const transport of ['ws', 'http']) {
  test(`janus.js echotest over ${transport} through a load balancer: kill -9 of its proxy, reconnect + claim on the other, inbound media never stops`, async (t) => {
    const started = Date.now();
    const cluster = await startCluster(transport === 'ws' ? ['a', 'b'] : ['e', 'f']);
    const [a, b] = cluster.proxies;
    const balancer = transport === 'ws' ? cluster.balancer : cluster.httpBalancer;
    const [portA, portB] = transport === 'ws' ? [a.port, b.port] : [a.httpPort, b.httpPort];
    const pages = [];
    try {
      const p = await openPage(pageUrl(cluster, 'echotest.html', {}, transport), 'echotest');
      pages.push(p);
      await p.until('the echoed video playing (10 frames)', (s) => s.remotePlaying && s.remoteFrames >= 10);
      assert.ok(balancer.routed.length >= 1 && balancer.routed.every((x) => x.port === portA), `every connection goes to proxy A: ${JSON.stringify(balancer.routed)}`);
      const sid = (await p.state()).sessionId;

      await p.page.evaluate(startSampler, 'echoHandle');
      const sampling = await baseline(p.page);

      const killedAt = Date.now();
      await a.kill9();
      await p.until('the session claimed again (janus.reconnect)', (s) => s.reconnects && s.reconnects[0] && s.reconnects[0].claimedAt, 30000);
      const r = (await p.state()).reconnects[0];
      // The echo keeps coming after the claim: well past what had arrived then, both kinds.
      await mediaGrows(p, 'inbound audio and video growing after the claim');
      // The adopted handle answers through proxy B: an echotest request gets its "ok".
      const oks = (await p.state()).echoResults.length;
      await p.page.evaluate(() => window.echoHandle.send({ message: { bitrate: 256000 } }));
      await p.until('the echotest answer through proxy B', (s) => s.echoResults.length > oks && s.echoResults.at(-1) === 'ok', 10000);

      const { pause: gap, baseline: calm, samples } = await pauses(p.page, sampling, killedAt);
      const failover = r.claimedAt - killedAt;
      t.diagnostic(`echotest failover over ${transport} (janus.js in Chromium, via a load balancer): kill -9 -> connection lost seen by janus.js ${r.lostAt - killedAt} ms, ` +
        `session claimed on proxy B ${failover} ms (${r.attempts} reconnect attempt(s)); longest pause of inbound bytes after the kill: ` +
        `audio ${gap.audio} ms, video ${gap.video} ms (${calm} ms in 2 s before it); ${samples} getStats samples`);

      const s = await p.state();
      assert.deepEqual(s.errors, []);
      assert.equal(s.sessionId, sid, 'the same session');
      assert.equal(s.reconnects.length, 1, JSON.stringify(s.reconnects));
      assert.ok(balancer.routed.some((x) => x.port === portB && x.at >= killedAt), `reconnected through the balancer to B: ${JSON.stringify(balancer.routed)}`);
      assert.ok(failover < HEARTBEAT_TTL * 1000 + 5000, `claimed ${failover} ms after the kill`);
      assert.ok(gap.audio < 1000 && gap.video < 1000, `inbound media paused audio ${gap.audio} ms, video ${gap.video} ms`);

      await p.page.evaluate(() => new Promise((resolve, reject) => {
        window.janusSession.destroy({ success: resolve, error: reject });
      }));
    } catch (e) {
      await dump(cluster, pages, e, started);
      throw e;
    } finally {
      for (const p of pages) await p.page.close().catch(() => {});
      await cluster.stop();
    }
  });
}

test('janus.js videocall over ws through a load balancer: kill -9 of the proxy of both parties, both reconnect, the call keeps its media both ways, a hangup after it arrives', async (t) => {
  const started = Date.now();
  const cluster = await startCluster(['c', 'd']);
  const [a, b] = cluster.proxies;
  const suffix = Math.random().toString(16).slice(2, 8);
  const callee = `bob-${suffix}`;
  const caller = `alice-${suffix}`;
  const pages = [];
  try {
    const pb = await openPage(pageUrl(cluster, 'videocall.html', { user: callee, answer: 'auto' }), 'videocall');
    pages.push(pb);
    await pb.until(`${callee} registered`, (s) => s.registered === callee);
    const pa = await openPage(pageUrl(cluster, 'videocall.html', { user: caller, call: callee }), 'videocall');
    pages.push(pa);
    await pa.until('accepted', (s) => s.accepted);
    for (const [who, p] of [['caller', pa], ['callee', pb]]) {
      await p.until(`${who}: the peer's video playing (10 frames)`, (s) => s.webrtcup && s.remotePlaying && s.remoteFrames >= 10);
    }
    assert.ok(cluster.balancer.routed.every((x) => x.port === a.port), JSON.stringify(cluster.balancer.routed));

    for (const p of [pa, pb]) await p.page.evaluate(startSampler, 'callHandle');
    const sampling = Math.max(await baseline(pa.page), await baseline(pb.page));

    const killedAt = Date.now();
    await a.kill9();
    for (const [who, p] of [['caller', pa], ['callee', pb]]) {
      await p.until(`${who}: the session claimed again`, (s) => s.reconnects && s.reconnects[0] && s.reconnects[0].claimedAt, 30000);
      await mediaGrows(p, `${who}: inbound audio and video growing after the claim`);
    }
    const report = [];
    for (const [who, p] of [['caller', pa], ['callee', pb]]) {
      const r = (await p.state()).reconnects[0];
      const { pause: gap, baseline: calm } = await pauses(p.page, sampling, killedAt);
      report.push(`${who}: claimed on B ${r.claimedAt - killedAt} ms after the kill, longest inbound pause audio ${gap.audio} ms, video ${gap.video} ms (${calm} ms before)`);
      assert.ok(gap.audio < 1000 && gap.video < 1000, `${who}: inbound media paused audio ${gap.audio} ms, video ${gap.video} ms`);
    }
    t.diagnostic(`videocall failover (janus.js in Chromium, via a load balancer): ${report.join('; ')}`);
    assert.ok(cluster.balancer.routed.filter((x) => x.port === b.port && x.at >= killedAt).length >= 2, JSON.stringify(cluster.balancer.routed));

    // The caller hangs up through B: the callee hears it from Janus through B, and its
    // PeerConnection is closed by the core hangup, as without a failover.
    await pa.page.evaluate(() => window.hangupCall());
    await pb.until("the callee's PeerConnection closed", (s) => s.webrtcDown && s.hangups.some((h) => h.username === caller), 10000);
    const sb = await pb.state();
    assert.equal(sb.fallbackCleanup, false, 'closed by the core hangup, not by the page');
    for (const p of [pa, pb]) assert.deepEqual((await p.state()).errors, []);
  } catch (e) {
    await dump(cluster, pages, e, started);
    throw e;
  } finally {
    for (const p of pages) await p.page.close().catch(() => {});
    await cluster.stop();
  }
});
