// Test fixtures for the standard-client tests (clients/test/*.test.mjs): real Janus backends
// started with scripts/janus-backends.sh, and a janus-proxy (target/debug/janus-proxy) with a
// generated config. Everything lives under JANUS_CLOUD_TEST_DIR, so scripts/test.sh's cleanup
// trap finds leftovers: the Janus sets are JANUS_CLOUD_TEST_DIR/<name>/janus-<i>, the proxy's
// command line names its config file JANUS_CLOUD_TEST_DIR/proxies/<name>.<random>/janus-proxy.toml
// (the folder of the last run of each proxy is kept, with its proxy.log).
//
// Port plan of the client tests (disjoint from tests/common/mod.rs and from the load-test
// and benchmark ranges 8188-8299, 18088-18999, 19088-19089, 19288-19297):
//
//   set               Janus WS      admin         RTP (UDP)
//   clients-janode    19188-19189   19198-19199   34000-35999
//   clients-janusjs   19190-19191   19200-19201   36000-37999   (Janus HTTP 19210-19211)
//   clients-firstrun  19192-19193   19202-19203   38000-39999   (scripts/run-cluster.sh)
//   clients-failover  18520         18530         49000-49299   (failover.test.mjs; its own
//                                                                redis-server, free port)
//   clients-videoroom 19230-19232   19240-19242   43000-43899   (videoroom.test.mjs)
//   clients-vr-cluster 18600-18602  18610-18612   49300-50199   (videoroom_cluster.test.mjs;
//                                                                its own redis-server)
//
// The proxies listen on free ports picked at start.
//
// Environment:
//   JANUS_CLOUD_TEST_DIR   state folder (default ${TMPDIR:-/tmp}/janus-cloud-tests)
//   JANUS_BACKENDS_SCRIPT  default <repo>/scripts/janus-backends.sh
//   JANUS_PROXY_BIN        default <repo>/target/debug/janus-proxy
//   CLIENT_TEST_TARGET     "proxy" (default) or "direct": point the clients at the first Janus
//                          backend instead of the proxy (to tell a proxy bug from a client or
//                          test problem; the backends then still run, the proxy does not).

import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

import Janode from 'janode';
import EchoTestPlugin from 'janode/plugins/echotest';

// janode logs at "info" to the console by default; JANODE_LOG=debug shows every frame
Janode.Logger.setLevel(process.env.JANODE_LOG || 'none');

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLIENTS = path.join(ROOT, 'clients');

export function testDir() {
  let dir = process.env.JANUS_CLOUD_TEST_DIR;
  if (!dir) dir = path.join(process.env.TMPDIR || '/tmp', 'janus-cloud-tests');
  dir = path.resolve(dir);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function target() {
  const t = process.env.CLIENT_TEST_TARGET || 'proxy';
  if (t !== 'proxy' && t !== 'direct') throw new Error(`CLIENT_TEST_TARGET must be proxy or direct (got ${t})`);
  return t;
}

/**
 * Poll `fn` (async, returns a truthy value when done) every `every` ms until `within` ms.
 * An error thrown by `fn` counts as "not yet", unless it has `fatal: true`.
 */
export async function waitFor(what, fn, { within = 10000, every = 50 } = {}) {
  const deadline = Date.now() + within;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${within} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await delay(every);
  }
}

/** Reject with a clear message when `promise` does not settle within `ms`. */
export function withDeadline(what, promise, ms = 10000) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function run(cmd, args, env) {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ ok: !err, text: `${stdout}${stderr}`, err });
    });
  });
}

// ------------------------------------------------------------------ Janus backends

export class Backends {
  constructor(name, n, wsBase, workdir) {
    this.name = name;
    this.n = n;
    this.wsBase = wsBase;
    this.workdir = workdir;
  }

  urls() {
    return Array.from({ length: this.n }, (_, i) => `ws://127.0.0.1:${this.wsBase + i}`);
  }

  /** Janus's own HTTP API of each instance (when started with `httpBase`). */
  httpUrls() {
    return Array.from({ length: this.n }, (_, i) => `http://127.0.0.1:${this.httpBase + i}/janus`);
  }

  logs() {
    return Array.from({ length: this.n }, (_, i) => path.join(this.workdir, `janus-${i}`, 'janus.log'));
  }

  async stop() {
    const r = await run(backendsScript(), ['stop', this.workdir]);
    if (!r.ok) console.error(`stopping Janus set ${this.name} failed:\n${r.text}`);
  }
}

function backendsScript() {
  return process.env.JANUS_BACKENDS_SCRIPT || path.join(ROOT, 'scripts', 'janus-backends.sh');
}

/**
 * Start `n` Janus instances (echotest and videocall only) as the set `name`:
 * WS ports wsBase.., admin adminBase.., RTP rtpBase + i*rtpSpan.
 */
export async function startBackends({ name, n = 2, wsBase, adminBase, rtpBase, rtpSpan = 1000, sessionTimeout = 60, httpBase = null, plugins = 'echotest videocall', env = {} }) {
  const workdir = path.join(testDir(), name);
  const script = backendsScript();
  // leftovers of an earlier run killed hard
  if (existsSync(path.join(workdir, 'janus-0'))) await run(script, ['stop', workdir]);
  const r = await run(script, ['start', String(n), String(wsBase), workdir], {
    JANUS_PLUGINS: plugins,
    JANUS_ADMIN_BASE_PORT: String(adminBase),
    JANUS_RTP_BASE: String(rtpBase),
    JANUS_RTP_SPAN: String(rtpSpan),
    JANUS_SESSION_TIMEOUT: String(sessionTimeout),
    ...(httpBase ? { JANUS_HTTP_BASE_PORT: String(httpBase) } : {}),
    ...env,
  });
  const set = new Backends(name, n, wsBase, workdir);
  set.httpBase = httpBase;
  if (!r.ok) {
    await set.stop();
    throw new Error(`starting Janus set ${name} failed:\n${r.text}`);
  }
  return set;
}

// ------------------------------------------------------------------ janus-proxy

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function quote(s) {
  return JSON.stringify(String(s));
}

export class Proxy {
  constructor({ child, port, adminPort, httpPort, dir, logPath, config }) {
    Object.assign(this, { child, port, adminPort, httpPort, dir, logPath, config });
    this.exited = null;
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      });
    });
  }

  get url() {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** The HTTP listener (Janus's REST API at /janus, html/ at /), when started with http. */
  get httpUrl() {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** kill -9, as a crash or a lost host: no clean-up of any kind. */
  async kill9() {
    if (this.exited) return;
    this.child.kill('SIGKILL');
    await this.exitPromise;
  }

  async stop() {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    let timer;
    const done = await Promise.race([
      this.exitPromise,
      new Promise((resolve) => { timer = setTimeout(resolve, 5000, null); }),
    ]);
    clearTimeout(timer);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exitPromise;
    }
  }
}

/**
 * Start target/debug/janus-proxy with a generated config serving `plugins` in front of
 * `backendUrls`; `general` / `ws_transport` add keys to those sections; `http: true` also
 * opens the HTTP listener (Janus's REST API, and html/ as static pages); `sections` adds
 * whole sections ({ cluster: { session_db: '"redis://…"' } }: values are TOML as written).
 * Resolves once the proxy accepts WebSocket connections.
 */
export async function startProxy({ name, backendUrls, plugins = ['echotest', 'videocall'], general = {}, wsTransport = {}, http = false, sections = {} }) {
  const bin = process.env.JANUS_PROXY_BIN || path.join(ROOT, 'target', 'debug', 'janus-proxy');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build the workspace first (cargo build)`);
  const parent = path.join(testDir(), 'proxies');
  mkdirSync(parent, { recursive: true });
  // keep only this run's folder of this proxy (the logs of the last run stay for a look)
  const mine = new RegExp(`^${name.replace(/[^\w-]/g, '')}\\.[A-Za-z0-9]{6}$`);
  for (const d of readdirSync(parent)) {
    if (mine.test(d)) rmSync(path.join(parent, d), { recursive: true, force: true });
  }
  let lastErr = '';
  // a freshly picked port can be taken by someone else before the proxy binds it: retry
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const adminPort = await freePort();
    const httpPort = http ? await freePort() : null;
    const dir = mkdtempSync(path.join(parent, `${name}.`));
    const lines = [`plugins = [${plugins.map(quote).join(', ')}]`, ''];
    const gen = { server_name: quote(`janus-proxy-${name}`), shards: 2, ...general };
    lines.push('[general]', ...Object.entries(gen).map(([k, v]) => `${k} = ${v}`), '');
    lines.push('[log]', 'log_to_stdout = true', `debug_level = "${process.env.PROXY_LOG_LEVEL || 'INFO'}"`, '');
    const wst = { ws_listen: quote(`127.0.0.1:${port}`), ...wsTransport };
    lines.push('[ws_transport]', ...Object.entries(wst).map(([k, v]) => `${k} = ${v}`), '');
    lines.push('[admin_api]', `http_listen = ${quote(`127.0.0.1:${adminPort}`)}`, '');
    for (const [section, keys] of Object.entries(sections)) {
      lines.push(`[${section}]`, ...Object.entries(keys).map(([k, v]) => `${k} = ${v}`), '');
    }
    if (http) {
      lines.push('[http_transport]', 'http = true', `http_listen = ${quote(`127.0.0.1:${httpPort}`)}`,
        `static_folder = ${quote(path.join(ROOT, 'html'))}`, '');
    }
    backendUrls.forEach((url, i) => {
      lines.push('[[janus_server]]', `name = ${quote(`${name}-${i}`)}`, `url = ${quote(url)}`, '');
    });
    const config = lines.join('\n');
    const cfgPath = path.join(dir, 'janus-proxy.toml');
    writeFileSync(cfgPath, config);
    const logPath = path.join(dir, 'proxy.log');
    const fd = openSync(logPath, 'w');
    const child = spawn(bin, [cfgPath], { stdio: ['ignore', fd, fd], cwd: dir });
    closeSync(fd);
    const proxy = new Proxy({ child, port, adminPort, httpPort, dir, logPath, config });
    try {
      await waitFor(`janus-proxy to listen on ${port}`, async () => {
        if (proxy.exited) throw new Error(`janus-proxy exited early (${JSON.stringify(proxy.exited)})`);
        return tcpOpen(port);
      }, { within: 10000 });
      return proxy;
    } catch (e) {
      await proxy.stop();
      const log = proxy.log();
      lastErr = `${e.message}\n--- config ---\n${config}\n--- proxy output ---\n${log}`;
      if (!(/in use|AddrInUse/.test(log))) break;
    }
  }
  throw new Error(`janus-proxy did not start: ${lastErr}`);
}

// ------------------------------------------------------------------ redis-server

/**
 * A redis-server of the test set `set` only (no persistence, a free port), its pid in
 * JANUS_CLOUD_TEST_DIR/<set>/redis/redis.pid (scripts/client-tests.sh kills a leftover one).
 */
export async function startRedis(set) {
  const dir = path.join(testDir(), set, 'redis');
  mkdirSync(dir, { recursive: true });
  const bin = process.env.REDIS_SERVER || 'redis-server';
  const port = await freePort();
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--pidfile', path.join(dir, 'redis.pid'), '--logfile', path.join(dir, 'redis.log')], { stdio: 'ignore' });
  let exited = null;
  child.once('exit', (code, signal) => { exited = { code, signal }; });
  child.once('error', (e) => { exited = { error: e.message }; });
  await waitFor(`redis-server on ${port}`, async () => {
    if (exited) throw Object.assign(new Error(`redis-server exited: ${JSON.stringify(exited)} (install redis-server)`), { fatal: true });
    return ping(port);
  });
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop: async () => {
      if (!exited) {
        await new Promise((resolve) => {
          child.once('exit', resolve);
          child.kill('SIGKILL');
        });
      }
      rmSync(path.join(dir, 'redis.pid'), { force: true });
    },
  };
}

function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Wait until an echotest attach through `url` succeeds (the proxy links to its backends in
 * the background after start). Uses janode; the probe session is destroyed again.
 */
export async function waitEchotestReady(url, within = 15000) {
  const conn = await waitFor(`a WebSocket connection to ${url}`, () => Janode.connect({ address: { url }, max_retries: 0 }), { within });
  try {
    const session = await conn.create();
    await waitFor(`an echotest attach through ${url}`, async () => {
      const h = await session.attach(EchoTestPlugin);
      await h.detach();
      return true;
    }, { within, every: 100 });
    await session.destroy();
  } finally {
    await conn.close().catch(() => {});
  }
}

/** Headless Chromium with fake media devices that need no permission prompt. */
export const CHROMIUM_ARGS = [
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
];

/** Print the tail of a log file (for failure diagnostics). */
export function tail(file, lines = 80) {
  try {
    const all = readFileSync(file, 'utf8').split('\n');
    return all.slice(-lines).join('\n');
  } catch {
    return `(no ${file})`;
  }
}
