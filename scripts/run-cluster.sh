#!/usr/bin/env bash
# run-cluster.sh - part of janus-cloud: run a local cluster in the foreground.
#
#   2 real Janus 1.1.x backends  ws://127.0.0.1:8188, ws://127.0.0.1:8189
#                                (admin ws://127.0.0.1:7188, :7189; via scripts/janus-backends.sh,
#                                which installs the Debian package 'janus' if it is missing)
#   janus-proxy                  ws://0.0.0.0:8288 (built with 'cargo build --release'),
#                                configured by conf/janus-proxy.toml; its admin API
#                                (http://127.0.0.1:8100) requires the cluster secret
#
# Usage: scripts/run-cluster.sh            (from any directory; Ctrl-C stops everything)
#
# Environment:
#   JANUS_CLOUD_DIR       state folder, default /tmp/janus-cloud; backends live in
#                         $JANUS_CLOUD_DIR/backends/janus-<i>/ (janus.log, generated configs)
#   JANUS_PROXY_CONFIG    proxy config, default conf/janus-proxy.toml (relative to the repo root)
#   JANUS_CLOUD_BACKENDS  number of Janus backends, default 2
#   JANUS_CLOUD_BASE_PORT ws port of the first backend, default 8188 (the others follow);
#                         the backends listed in the proxy config must match
#   JANUS_CLOUD_NO_BUILD  set to 1 to skip 'cargo build' and run the existing binary
#   JANUS_CLOUD_SECRET    cluster secret (admin API bearer token); default: a random one per
#                         run, written to $JANUS_CLOUD_DIR/cluster.secret (mode 600) so that
#                         curl and janus-sentinel can use it:
#                           curl -H "Authorization: Bearer $(cat /tmp/janus-cloud/cluster.secret)" \
#                                http://127.0.0.1:8100/backend_servers
#                           JANUS_CLOUD_SECRET=$(cat /tmp/janus-cloud/cluster.secret) janus-sentinel ...
#   JANUS_* knobs of scripts/janus-backends.sh (JANUS_DEBUG_LEVEL, JANUS_PLUGINS, ...) apply.
#
# When the proxy exits, or on Ctrl-C / SIGTERM / SIGHUP, the proxy is stopped and so are the
# backends this script started. The exit status is the proxy's (130/143 after a signal).

# shellcheck disable=SC2317  # cleanup/on_signal/stop_proxy only run from traps
set -euo pipefail

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

BACKENDS_SCRIPT="$ROOT/scripts/janus-backends.sh"
CLUSTER_DIR=${JANUS_CLOUD_DIR:-/tmp/janus-cloud}
case "$CLUSTER_DIR" in /*) ;; *) CLUSTER_DIR="$ROOT/$CLUSTER_DIR" ;; esac
BACKENDS_DIR="${CLUSTER_DIR%/}/backends"
CONFIG=${JANUS_PROXY_CONFIG:-conf/janus-proxy.toml}
N_BACKENDS=${JANUS_CLOUD_BACKENDS:-2}
BASE_PORT=${JANUS_CLOUD_BASE_PORT:-8188}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
PROXY_BIN="$TARGET_DIR/release/janus-proxy"

proxy_pid=""
backends_started=0

stop_proxy() {
  [[ -n "$proxy_pid" ]] || return 0
  if kill -0 "$proxy_pid" 2>/dev/null; then
    log "stopping janus-proxy (pid $proxy_pid)"
    kill -TERM "$proxy_pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$proxy_pid" 2>/dev/null && [[ $waited -lt 100 ]]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$proxy_pid" 2>/dev/null; then
      log "janus-proxy (pid $proxy_pid) still running after 10s, sending SIGKILL"
      kill -KILL "$proxy_pid" 2>/dev/null || true
    fi
    wait "$proxy_pid" 2>/dev/null || true
  fi
  proxy_pid=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  stop_proxy
  if [[ $backends_started -eq 1 ]]; then
    log "stopping the Janus backends in $BACKENDS_DIR"
    "$BACKENDS_SCRIPT" stop "$BACKENDS_DIR" || log "WARNING: stopping the backends failed"
  fi
  log "done (exit $rc)"
  exit "$rc"
}

on_signal() {
  log "caught SIG$1, shutting down"
  exit "$2"   # runs cleanup through the EXIT trap
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- checks

[[ -x "$BACKENDS_SCRIPT" ]] || die "$BACKENDS_SCRIPT is missing or not executable"
[[ -f "$CONFIG" ]] || die "proxy config '$CONFIG' not found (set JANUS_PROXY_CONFIG)"
[[ "$N_BACKENDS" =~ ^[1-9][0-9]*$ ]] || die "JANUS_CLOUD_BACKENDS must be a positive integer"
[[ "$BASE_PORT" =~ ^[0-9]+$ ]] || die "JANUS_CLOUD_BASE_PORT must be an integer"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi

log "repo:     $ROOT"
log "config:   $CONFIG"
log "backends: $N_BACKENDS Janus on ws://127.0.0.1:$BASE_PORT..$((BASE_PORT + N_BACKENDS - 1)), state in $BACKENDS_DIR"

# ---------------------------------------------------------------- build

if [[ "${JANUS_CLOUD_NO_BUILD:-0}" == "1" ]]; then
  log "JANUS_CLOUD_NO_BUILD=1: not building"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found (install a Rust toolchain)"
  log "+ cargo build --release --bin janus-proxy"
  cargo build --release --bin janus-proxy
fi
[[ -x "$PROXY_BIN" ]] || die "$PROXY_BIN not found"

# ---------------------------------------------------------------- backends

mkdir -p "$BACKENDS_DIR"
# Instances left running by an earlier run that was killed hard (only pids recorded in
# $BACKENDS_DIR are touched).
if compgen -G "$BACKENDS_DIR/janus-*/janus.pid" >/dev/null; then
  log "stopping instances left over from an earlier run in $BACKENDS_DIR"
  "$BACKENDS_SCRIPT" stop "$BACKENDS_DIR" || true
fi
for ((i = 0; i < N_BACKENDS; i++)); do
  if port_open $((BASE_PORT + i)); then
    die "127.0.0.1:$((BASE_PORT + i)) is already in use (a system Janus? try 'systemctl stop janus' or 'service janus stop'; 'ss -ltnp' shows who)"
  fi
done

log "+ scripts/janus-backends.sh start $N_BACKENDS $BASE_PORT $BACKENDS_DIR"
backends_started=1
"$BACKENDS_SCRIPT" start "$N_BACKENDS" "$BASE_PORT" "$BACKENDS_DIR" >/dev/null
for ((i = 0; i < N_BACKENDS; i++)); do
  log "backend $i: ws://127.0.0.1:$((BASE_PORT + i)), log $BACKENDS_DIR/janus-$i/janus.log"
done

# ---------------------------------------------------------------- secret

# The proxy takes it from the environment when its config leaves admin_api.secret empty (as
# conf/janus-proxy.toml does): no secret is ever written into the repository.
SECRET_FILE="${CLUSTER_DIR%/}/cluster.secret"
if [[ -z "${JANUS_CLOUD_SECRET:-}" ]]; then
  JANUS_CLOUD_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi
export JANUS_CLOUD_SECRET
rm -f "$SECRET_FILE"
(umask 077 && printf '%s\n' "$JANUS_CLOUD_SECRET" >"$SECRET_FILE")
log "admin API secret in $SECRET_FILE (send it as 'Authorization: Bearer <secret>'; give it to sentinels as JANUS_CLOUD_SECRET)"

# ---------------------------------------------------------------- proxy

log "+ $PROXY_BIN $CONFIG"
log "clients: ws://127.0.0.1:8288 (subprotocol janus-protocol) unless the config says otherwise; Ctrl-C stops the cluster"
# In the background so that a SIGTERM sent to this script is handled at once (bash defers
# traps while a foreground child runs); the signal traps forward it to the proxy.
"$PROXY_BIN" "$CONFIG" &
proxy_pid=$!
rc=0
wait "$proxy_pid" || rc=$?
proxy_pid=""
log "janus-proxy exited with status $rc"
exit "$rc"
