// What the failover tests share (issue 13): a TCP load balancer in front of proxies, and the
// measurement of a page's inbound media across the death of its proxy (getStats samples
// every 20 ms, the longest time a counter did not grow).

import net from 'node:net';

import { waitFor } from './fixtures.mjs';

/**
 * The `[cluster]` section of a proxy that survives the death of its peers (and whose
 * clients survive its own): session records in `redisUrl`, heartbeat `heartbeatTtl` s,
 * adopted sessions wait 20 s for their clients, no drain.
 */
export function clusterSection(redisUrl, name, heartbeatTtl) {
  return {
    session_db: JSON.stringify(redisUrl),
    proxy_name: JSON.stringify(name),
    heartbeat_ttl: heartbeatTtl,
    adopt_timeout: 20,
    drain_timeout: 0,
  };
}

/**
 * A TCP load balancer: each new connection goes to the first of `ports` that accepts it
 * (a dead proxy refuses: the next one is tried), as HAProxy with `option redispatch` or a
 * DNS list would. Both directions are piped untouched; when one side closes, so does the
 * other. `routed` lists where each connection went.
 */
export function startBalancer(ports) {
  const routed = [];
  const open = new Set();
  const srv = net.createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.on('error', () => {});
    client.pause();
    let i = 0;
    const next = () => {
      if (i >= ports.length || client.destroyed) {
        client.destroy();
        return;
      }
      const port = ports[i++];
      const up = net.connect({ host: '127.0.0.1', port });
      up.once('error', next);
      up.once('connect', () => {
        up.removeListener('error', next);
        up.on('error', () => {});
        routed.push({ at: Date.now(), port });
        open.add(up);
        up.once('close', () => { open.delete(up); client.destroy(); });
        client.once('close', () => up.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    next();
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    port: srv.address().port,
    routed,
    close: () => new Promise((r) => {
      for (const s of open) s.destroy();
      srv.close(r);
    }),
  })));
}

/**
 * In the page (`page.evaluate(startSampler, name)`): samples the inbound-rtp bytes of the
 * PeerConnection of the janus.js handle window[name] every 20 ms into window.inbound, as
 * { t, audio, video, 'mid:<mid>': bytes… } (audio and video summed over their mids).
 */
export function startSampler(handle) {
  const pc = window[handle].webrtcStuff.pc;
  window.inbound = [];
  const tick = async () => {
    const stats = await pc.getStats();
    const s = { t: Date.now(), audio: 0, video: 0 };
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) {
        s[r.kind] += r.bytesReceived || 0;
        if (r.mid !== undefined) s[`mid:${r.mid}`] = r.bytesReceived || 0;
      }
    });
    window.inbound.push(s);
  };
  window.samplerTimer = setInterval(() => { tick().catch(() => {}); }, 20);
}

/** The longest time within [from, to] the sampled counter `key` did not grow, in ms. */
export function longestPause(samples, key, from, to) {
  let longest = 0;
  let since = null;
  let last = null;
  for (const s of samples) {
    if (s.t < from || s.t > to) continue;
    const v = s[key] || 0;
    if (last === null) {
      last = v;
      since = s.t;
      continue;
    }
    if (v > last) {
      longest = Math.max(longest, s.t - since);
      last = v;
      since = s.t;
    }
  }
  if (since !== null) longest = Math.max(longest, Math.min(to, samples.at(-1).t) - since);
  return longest;
}

/** The samples of startSampler so far. */
export const inbound = (page) => page.evaluate(() => window.inbound);

/**
 * Waits until the sampler covers 2 s with every counter of `keys` growing: the undisturbed
 * baseline. Returns when it began.
 */
export async function baseline(page, keys = ['audio', 'video']) {
  const from = Date.now();
  await waitFor('2 s of inbound samples', async () => {
    const s = await inbound(page);
    return s.length > 0 && s.at(-1).t - from >= 2000 && keys.every((k) => (s.at(-1)[k] || 0) > (s[0][k] || 0));
  }, { within: 10000 });
  return from;
}

/**
 * Stops the sampler; the longest pause of each counter of `keys` after `killedAt`
 * (`pause[key]`, ms), and the longest of any of them in [from, killedAt] (`baseline`).
 */
export async function pauses(page, from, killedAt, keys = ['audio', 'video']) {
  await page.evaluate(() => clearInterval(window.samplerTimer));
  const samples = await inbound(page);
  const end = samples.at(-1).t;
  return {
    baseline: Math.max(...keys.map((k) => longestPause(samples, k, from, killedAt))),
    pause: Object.fromEntries(keys.map((k) => [k, longestPause(samples, k, killedAt, end)])),
    samples: samples.length,
  };
}
