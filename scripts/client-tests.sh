#!/usr/bin/env bash
# client-tests.sh - part of janus-cloud: standard Janus clients, unchanged, against janus-proxy.
#
# Usage: scripts/client-tests.sh [NODE_TEST_ARGS...]   (from any directory)
#
#   clients/test/janode.test.mjs   janode 1.8 (Node.js): sessions, echotest, a VideoCall call
#                                  between two janode sessions, keep-alives, timeout, destroy
#   clients/test/janusjs.test.mjs  janus.js 1.4 in headless Chromium (html/echotest.html): an
#                                  EchoTest with real audio/video over 127.0.0.1, signalling
#                                  through the proxy
#   clients/test/failover.test.mjs janus.js echotest, and a videocall between two pages,
#                                  through a TCP load balancer in front of two proxies sharing
#                                  a redis-server: kill -9 of their proxy, janus.reconnect()
#                                  claims each session on the other, media keeps flowing
#                                  (failover time and media gap reported)
#   clients/test/videoroom.test.mjs   janus.js VideoRoom over three backends: one subscriber
#                                  PeerConnection receives three publishers (time to first
#                                  frame reported)
#   clients/test/videoroom_cluster.test.mjs  the same room across two proxies sharing a
#                                  redis-server (room_db): publishers through A, the
#                                  subscriber page through B (relayed to A, the owner);
#                                  then kill -9 of the subscriber's proxy, or of the room's
#                                  owner (through a load balancer): sessions are claimed on the
#                                  other proxy, the room is taken over, and every feed keeps
#                                  flowing (claim times, gap per mid)
#
# 1. Installs what is missing: Debian's chromium (apt, when /usr/bin/chromium is missing;
#    root or sudo; with a temporary policy-rc.d so that no package starts a service), g++,
#    make and python3 when the npm packages need building, redis-server (failover.test.mjs,
#    videoroom_cluster.test.mjs), and the npm packages of clients/ with `npm ci` when
#    clients/node_modules is missing, older than clients/package-lock.json or lacks janode's
#    native unix-dgram addon. node and npm must be on PATH.
# 2. Builds target/debug/janus-proxy and janus-sentinel (first-run.test.mjs runs
#    scripts/run-cluster.sh with them) unless
#    JANUS_CLOUD_NO_BUILD=1 (scripts/test.sh sets it: it has built the workspace already).
# 3. node --test [NODE_TEST_ARGS...] clients/test/*.test.mjs; the exit status is node's.
#
# Each test file starts its own Janus backends (scripts/janus-backends.sh, under
# $JANUS_CLOUD_TEST_DIR/clients-*) and janus-proxy processes (config files under
# $JANUS_CLOUD_TEST_DIR/proxies/clients-*), and stops them at the end; on exit this script
# also stops whatever of those is left (a test run killed hard).
#
# Environment:
#   JANUS_CLOUD_TEST_DIR      exported; default ${TMPDIR:-/tmp}/janus-cloud-tests
#   JANUS_BACKENDS_SCRIPT     exported; absolute path of scripts/janus-backends.sh
#   JANUS_CLOUD_NO_INSTALL=1  never run apt-get
#   JANUS_CLOUD_NO_BUILD=1    do not build janus-proxy
#   CLIENT_TEST_TARGET=direct point the clients at a Janus backend instead of the proxy
#                             (to tell a proxy bug from a test problem)
#   JANODE_LOG=debug          print every frame janode sends and receives
#   CHROMIUM                  browser binary (default /usr/bin/chromium)

# shellcheck disable=SC2317  # functions run from traps
set -euo pipefail

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

JANUS_CLOUD_TEST_DIR=${JANUS_CLOUD_TEST_DIR:-${TMPDIR:-/tmp}/janus-cloud-tests}
case "$JANUS_CLOUD_TEST_DIR" in /*) ;; *) JANUS_CLOUD_TEST_DIR="$PWD/$JANUS_CLOUD_TEST_DIR" ;; esac
JANUS_CLOUD_TEST_DIR=${JANUS_CLOUD_TEST_DIR%/}
[[ -n "$JANUS_CLOUD_TEST_DIR" && "$JANUS_CLOUD_TEST_DIR" != "/" ]] || die "refusing JANUS_CLOUD_TEST_DIR '/'"
JANUS_BACKENDS_SCRIPT=${JANUS_BACKENDS_SCRIPT:-$ROOT/scripts/janus-backends.sh}
export JANUS_CLOUD_TEST_DIR JANUS_BACKENDS_SCRIPT
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
  export PATH
fi

# ---------------------------------------------------------------- cleanup

# shellcheck source=lib/apt.sh
. "$ROOT/scripts/lib/apt.sh"


# Janus sets and janus-proxy processes of the client tests only (the ones of the Rust tests
# belong to scripts/test.sh).
stop_leftovers() {
  [[ -d "$JANUS_CLOUD_TEST_DIR" ]] || return 0
  local d pid cmdline pids=()
  for d in "$JANUS_CLOUD_TEST_DIR"/clients-*/; do
    [[ -d "$d" ]] || continue
    # the redis-server of failover.test.mjs (its pid file; the process renames itself)
    if [[ -f "${d}redis/redis.pid" ]]; then
      pid=$(cat "${d}redis/redis.pid" 2>/dev/null || true)
      if [[ "$pid" =~ ^[0-9]+$ && "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server ]]; then
        log "killing leftover client-test redis-server $pid"
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f "${d}redis/redis.pid"
    fi
    compgen -G "${d}janus-*/janus.pid" >/dev/null || continue
    "$JANUS_BACKENDS_SCRIPT" stop "${d%/}" || log "WARNING: stopping the Janus instances in $d failed"
  done
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    case "$(cat "$d/comm" 2>/dev/null)" in janus-proxy | janus-sentinel) ;; *) continue ;; esac
    cmdline=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    # the proxies of the tests, and the cluster of first-run.test.mjs (run-cluster.sh)
    [[ "$cmdline" == *"$JANUS_CLOUD_TEST_DIR/proxies/clients-"* || "$cmdline" == *"$JANUS_CLOUD_TEST_DIR/clients-"* ]] && pids+=("$pid")
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  log "killing leftover client-test proxies and sentinels: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local waited=0
  while [[ $waited -lt 20 ]]; do
    for pid in "${pids[@]}"; do
      [[ -d "/proc/$pid" && "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != "Z" ]] && break
      pid=""
    done
    [[ -n "$pid" ]] || return 0
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  apt_cleanup
  stop_leftovers || true
  exit "$rc"
}
trap cleanup EXIT
trap 'log "caught SIGINT"; exit 130' INT
trap 'log "caught SIGTERM"; exit 143' TERM
trap 'log "caught SIGHUP"; exit 129' HUP

# ---------------------------------------------------------------- install what is missing

command -v node >/dev/null 2>&1 || die "node not found: install Node.js (>= 18) first"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm first"

# npm packages to build: janode depends on unix-dgram, a native addon (node-gyp: python3,
# make, a C++ compiler)
need_native_build() {
  [[ ! -f "$ROOT/clients/node_modules/unix-dgram/build/Release/unix_dgram.node" ]]
}

install_missing() {
  local pkgs=()
  [[ -x "$CHROMIUM" ]] || pkgs+=(chromium)
  command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || pkgs+=(redis-server)
  if need_native_build; then
    command -v c++ >/dev/null 2>&1 || pkgs+=(g++)
    command -v make >/dev/null 2>&1 || pkgs+=(make)
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
  fi
  [[ ${#pkgs[@]} -gt 0 ]] || return 0
  log "missing: ${pkgs[*]}"
  if [[ "${JANUS_CLOUD_NO_INSTALL:-0}" == "1" ]]; then
    log "JANUS_CLOUD_NO_INSTALL=1: not installing"
    return 0
  fi
  if [[ " ${pkgs[*]} " == *" chromium "* && "$CHROMIUM" != /usr/bin/chromium ]]; then
    die "$CHROMIUM is missing (CHROMIUM is set: not installing Debian's chromium)"
  fi
  apt_install "${pkgs[@]}"
  [[ -x "$CHROMIUM" ]] || die "$CHROMIUM still missing after apt-get install"
}

install_node_modules() {
  local dir="$ROOT/clients" stamp="$ROOT/clients/node_modules/.package-lock.json"
  # npm ci writes node_modules/.package-lock.json; older than package-lock.json = stale
  if [[ -f "$stamp" && ! "$dir/package-lock.json" -nt "$stamp" && ! "$dir/package.json" -nt "$stamp" ]] &&
    ! need_native_build; then
    return 0
  fi
  # install scripts stay on: unix-dgram's builds the addon (playwright-core has none; it never
  # downloads a browser)
  log "+ npm ci (in clients/)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
}

install_missing
install_node_modules

if [[ "${JANUS_CLOUD_NO_BUILD:-0}" != "1" ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"
  log "+ cargo build --bin janus-proxy --bin janus-sentinel"
  cargo build -p janus-cloud -p janus-sentinel --bin janus-proxy --bin janus-sentinel
fi
[[ -x "$ROOT/target/debug/janus-proxy" ]] || die "target/debug/janus-proxy is missing: build the workspace first"

# ---------------------------------------------------------------- test

mkdir -p "$JANUS_CLOUD_TEST_DIR"
stop_leftovers
tests=(clients/test/*.test.mjs)
log "+ node --test $* ${tests[*]}"
rc=0
node --test "$@" "${tests[@]}" || rc=$?
if [[ $rc -eq 0 ]]; then
  log "client tests passed"
else
  log "client tests FAILED (exit $rc); logs: $JANUS_CLOUD_TEST_DIR/clients-*/janus-*/janus.log, $JANUS_CLOUD_TEST_DIR/proxies/clients-*/proxy.log"
fi
exit "$rc"
