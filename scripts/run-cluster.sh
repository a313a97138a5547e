#!/usr/bin/env bash
# run-cluster.sh - part of janus-cloud: run a local cluster in the foreground, in the
# topology of a real deployment, and print the demo pages to open.
#
#   N real Janus 1.1.x backends, each started and watched by its own janus-sentinel
#       (proc_watcher.cmdline = the run.sh that 'scripts/janus-backends.sh configure' writes;
#       that script installs the Debian package 'janus' if it is missing), which registers it
#       with the proxy (POST /sentinel_callback with the cluster secret).
#       Janus i: ws://127.0.0.1:8188+i, admin ws://127.0.0.1:7188+i;
#       sentinel i: REST http://127.0.0.1:8200+i
#   janus-proxy (built with 'cargo build --release'):
#       ws://127.0.0.1:8288                 the Janus WebSocket API
#       http://127.0.0.1:8280/janus         Janus's HTTP API (long polls)
#       http://127.0.0.1:8280/              the demo pages (html/)
#       http://127.0.0.1:8100               its admin API (requires the cluster secret)
#
# Usage: scripts/run-cluster.sh            (from any directory; Ctrl-C stops everything)
#
# Environment:
#   JANUS_CLOUD_DIR        state folder, default /tmp/janus-cloud: generated configs
#                          (janus-proxy.toml, sentinel-<i>.toml), logs (proxy.log,
#                          sentinel-<i>.log), backends in backends/janus-<i>/ (janus.log)
#   JANUS_PROXY_CONFIG     a proxy config of your own instead of the generated one (it must
#                          then match the ports below)
#   JANUS_CLOUD_BACKENDS   number of Janus backends, default 2
#   JANUS_CLOUD_BASE_PORT  ws port of the first backend, default 8188 (the others follow;
#                          their admin ports are 1000 lower)
#   JANUS_CLOUD_WS_PORT    the proxy's WebSocket port, default 8288
#   JANUS_CLOUD_HTTP_PORT  the proxy's HTTP port (API and pages), default 8280
#   JANUS_CLOUD_ADMIN_PORT the proxy's admin API port, default 8100
#   JANUS_CLOUD_SENTINEL_PORT  REST port of the first sentinel, default 8200
#   JANUS_CLOUD_BUILD      release (default) or debug: which build to make and run
#   JANUS_CLOUD_NO_BUILD   set to 1 to skip 'cargo build' and run the existing binaries
#   JANUS_CLOUD_SECRET     cluster secret (admin API bearer token); default: a random one per
#                          run, written to $JANUS_CLOUD_DIR/cluster.secret (mode 600):
#                            curl -H "Authorization: Bearer $(cat /tmp/janus-cloud/cluster.secret)" \
#                                 http://127.0.0.1:8100/backend_servers
#   JANUS_* knobs of scripts/janus-backends.sh (JANUS_DEBUG_LEVEL, JANUS_PLUGINS,
#   JANUS_RTP_BASE, ...) apply.
#
# Everything listens on 127.0.0.1 only. When the proxy or a sentinel exits, or on Ctrl-C /
# SIGTERM / SIGHUP, the sentinels are stopped (each stops its Janus) and so is the proxy.
# The exit status is 0 after a signal, else the status of the process that ended first.

set -euo pipefail

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

BACKENDS_SCRIPT="$ROOT/scripts/janus-backends.sh"
CLUSTER_DIR=${JANUS_CLOUD_DIR:-/tmp/janus-cloud}
case "$CLUSTER_DIR" in /*) ;; *) CLUSTER_DIR="$ROOT/$CLUSTER_DIR" ;; esac
CLUSTER_DIR=${CLUSTER_DIR%/}
BACKENDS_DIR="$CLUSTER_DIR/backends"
N_BACKENDS=${JANUS_CLOUD_BACKENDS:-2}
BASE_PORT=${JANUS_CLOUD_BASE_PORT:-8188}
WS_PORT=${JANUS_CLOUD_WS_PORT:-8288}
HTTP_PORT=${JANUS_CLOUD_HTTP_PORT:-8280}
ADMIN_PORT=${JANUS_CLOUD_ADMIN_PORT:-8100}
SENTINEL_PORT=${JANUS_CLOUD_SENTINEL_PORT:-8200}
BUILD=${JANUS_CLOUD_BUILD:-release}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
PROXY_BIN="$TARGET_DIR/$BUILD/janus-proxy"
SENTINEL_BIN="$TARGET_DIR/$BUILD/janus-sentinel"

proxy_pid=""
sentinel_pids=()

stop_pid() { # pid name
  local pid=$1 name=$2 waited=0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [[ $waited -lt 100 ]]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) still running after 10s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  local i
  # sentinels first: each stops its Janus, and tells the proxy the server is going
  for i in "${!sentinel_pids[@]}"; do
    stop_pid "${sentinel_pids[$i]}" "janus-sentinel $i"
  done
  [[ -n "$proxy_pid" ]] && stop_pid "$proxy_pid" janus-proxy
  log "done (exit $rc)"
  exit "$rc"
}

on_signal() {
  log "caught SIG$1, shutting down"
  exit 0 # runs cleanup through the EXIT trap
}

trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------- checks

[[ -x "$BACKENDS_SCRIPT" ]] || die "$BACKENDS_SCRIPT is missing or not executable"
[[ "$N_BACKENDS" =~ ^[1-9][0-9]*$ ]] || die "JANUS_CLOUD_BACKENDS must be a positive integer"
for v in "$BASE_PORT" "$WS_PORT" "$HTTP_PORT" "$ADMIN_PORT" "$SENTINEL_PORT"; do
  [[ "$v" =~ ^[0-9]+$ ]] || die "ports must be integers (got '$v')"
done
[[ "$BUILD" == release || "$BUILD" == debug ]] || die "JANUS_CLOUD_BUILD must be release or debug"
if [[ -n "${JANUS_PROXY_CONFIG:-}" ]]; then
  [[ -f "$JANUS_PROXY_CONFIG" ]] || die "proxy config '$JANUS_PROXY_CONFIG' not found"
fi
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
ports=("$WS_PORT" "$HTTP_PORT" "$ADMIN_PORT")
for ((i = 0; i < N_BACKENDS; i++)); do
  ports+=($((BASE_PORT + i)) $((BASE_PORT - 1000 + i)) $((SENTINEL_PORT + i)))
done
for p in "${ports[@]}"; do
  if port_open "$p"; then
    die "127.0.0.1:$p is already in use (a system Janus? 'systemctl stop janus'; an earlier run? 'ss -ltnp' shows who)"
  fi
done

log "repo:     $ROOT"
log "state:    $CLUSTER_DIR"

# ---------------------------------------------------------------------------- build

if [[ "${JANUS_CLOUD_NO_BUILD:-0}" == "1" ]]; then
  log "JANUS_CLOUD_NO_BUILD=1: not building"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found (install a Rust toolchain)"
  flags=()
  [[ "$BUILD" == release ]] && flags+=(--release)
  log "+ cargo build ${flags[*]} --bin janus-proxy --bin janus-sentinel (the first build takes a while)"
  cargo build "${flags[@]}" -p janus-cloud -p janus-sentinel --bin janus-proxy --bin janus-sentinel
fi
[[ -x "$PROXY_BIN" ]] || die "$PROXY_BIN not found"
[[ -x "$SENTINEL_BIN" ]] || die "$SENTINEL_BIN not found"

# ---------------------------------------------------------------------------- secret

mkdir -p "$CLUSTER_DIR"
SECRET_FILE="$CLUSTER_DIR/cluster.secret"
if [[ -z "${JANUS_CLOUD_SECRET:-}" ]]; then
  JANUS_CLOUD_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi
export JANUS_CLOUD_SECRET
rm -f "$SECRET_FILE"
(umask 077 && printf '%s\n' "$JANUS_CLOUD_SECRET" >"$SECRET_FILE")
log "cluster secret in $SECRET_FILE (admin API: 'Authorization: Bearer <secret>')"

# ---------------------------------------------------------------------------- Janus configs

log "+ scripts/janus-backends.sh configure $N_BACKENDS $BASE_PORT $BACKENDS_DIR"
"$BACKENDS_SCRIPT" configure "$N_BACKENDS" "$BASE_PORT" "$BACKENDS_DIR" >/dev/null

# ---------------------------------------------------------------------------- proxy

PROXY_CONFIG=${JANUS_PROXY_CONFIG:-$CLUSTER_DIR/janus-proxy.toml}
if [[ -z "${JANUS_PROXY_CONFIG:-}" ]]; then
  cat >"$PROXY_CONFIG" <<EOF
# Written by scripts/run-cluster.sh (every key: conf/janus-proxy.toml). No static
# [[janus_server]]: the sentinels register the backends.
[general]
server_name = "janus-proxy-local"

[ws_transport]
ws_listen = "127.0.0.1:$WS_PORT"

[http_transport]
http = true
http_listen = "127.0.0.1:$HTTP_PORT"
static_folder = "$ROOT/html"

[admin_api]
http_listen = "127.0.0.1:$ADMIN_PORT"
EOF
fi
log "+ $PROXY_BIN $PROXY_CONFIG (log $CLUSTER_DIR/proxy.log)"
"$PROXY_BIN" "$PROXY_CONFIG" >"$CLUSTER_DIR/proxy.log" 2>&1 &
proxy_pid=$!
for ((t = 0; t < 100; t++)); do
  port_open "$ADMIN_PORT" && break
  kill -0 "$proxy_pid" 2>/dev/null || { tail -n 20 "$CLUSTER_DIR/proxy.log" >&2; proxy_pid=""; die "janus-proxy exited at start"; }
  sleep 0.1
done

# ---------------------------------------------------------------------------- sentinels

for ((i = 0; i < N_BACKENDS; i++)); do
  cfg="$CLUSTER_DIR/sentinel-$i.toml"
  cat >"$cfg" <<EOF
# Written by scripts/run-cluster.sh (every key: conf/janus-sentinel.toml).
[janus]
server_name = "janus-$i"
server_ip = "127.0.0.1"
ws_port = $((BASE_PORT + i))
admin_ws_port = $((BASE_PORT - 1000 + i))
admin_secret = "${JANUS_ADMIN_SECRET:-janusoverlord}"
pingpong_interval = 2
statistic_interval = 5

[proc_watcher]
cmdline = "/bin/bash $BACKENDS_DIR/janus-$i/run.sh"
error_restart_interval = 2

[admin_api]
http_listen = "127.0.0.1:$((SENTINEL_PORT + i))"

[[posters]]
post_type = "http"
name = "proxy"
post_urls = ["http://127.0.0.1:$ADMIN_PORT/sentinel_callback"]
expire = 15
EOF
  "$SENTINEL_BIN" "$cfg" >"$CLUSTER_DIR/sentinel-$i.log" 2>&1 &
  sentinel_pids+=($!)
  log "sentinel $i (pid ${sentinel_pids[$i]}): Janus ws://127.0.0.1:$((BASE_PORT + i)), logs $CLUSTER_DIR/sentinel-$i.log, $BACKENDS_DIR/janus-$i/janus.log"
done

# Wait until every backend is registered and selectable (status 0).
registered() {
  local body
  body=$(curl -fsS -m 2 -H "Authorization: Bearer $JANUS_CLOUD_SECRET" "http://127.0.0.1:$ADMIN_PORT/backend_servers" 2>/dev/null) || return 1
  [[ $(grep -o '"status": *0' <<<"$body" | wc -l) -ge $N_BACKENDS ]]
}
if command -v curl >/dev/null 2>&1; then
  ok=0
  for ((t = 0; t < 300; t++)); do
    if registered; then ok=1; break; fi
    kill -0 "$proxy_pid" 2>/dev/null || die "janus-proxy exited (see $CLUSTER_DIR/proxy.log)"
    sleep 0.1
  done
  [[ $ok -eq 1 ]] || log "WARNING: not every backend registered within 30 s (see $CLUSTER_DIR/sentinel-*.log)"
fi

page="http://127.0.0.1:$HTTP_PORT"
cat >&2 <<EOF

  janus-cloud is up: $N_BACKENDS Janus under janus-sentinel, janus-proxy in front.
  Demo pages (Janus's HTTP API of the same origin; add ?transport=ws for the WebSocket API):
    $page/                  all demos
    $page/videocall.html    (open it in two tabs)
    $page/p2pcall.html
  Janus API for your clients: ws://127.0.0.1:$WS_PORT (subprotocol janus-protocol) or $page/janus
  Ctrl-C stops everything.

EOF
echo "$page/echotest.html"

# Runs until a process ends or a signal comes.
rc=0
wait -n "$proxy_pid" "${sentinel_pids[@]}" || rc=$?
log "a cluster process exited (status $rc)"
exit "$rc"
