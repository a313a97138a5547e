#!/usr/bin/env bash
# videocall-stress.sh - part of janus-cloud: the VideoCall churn that used to crash Janus.
#
# Usage: scripts/videocall-stress.sh [RUNS [CLIENTS [SECONDS]]]     (default 5 2000 60)
#
# Starts 2 Janus 1.1.2 backends with Janus's DEFAULT configuration (no event_loops: one
# thread and one descriptor per handle, as most operators run it) via
# scripts/janus-backends.sh, and the release janus-proxy in front of them. Then RUNS times:
#   janus-loadtest videocall -c CLIENTS -d SECONDS --think-ms 3000 --hold-ms 2000
# through the proxy (call pairs looping register/call/accept/hangup, synthetic SDP), and
# after each run checks that both Janus processes are still the ones started (no crash, no
# restart) and that the run had no error. Janus 1.1.2's VideoCall plugin segfaults when a
# handle is detached while its peer's hangup is being handled; before the proxy retired
# backend handles safely, 2 of 7 such runs crashed both backends within 40 s.
#
# Environment: STRESS_DIR (state, default ${TMPDIR:-/tmp}/janus-cloud-vc-stress),
# STRESS_BASE_PORT (default 19480; 19388 is the mediapeer tests'), STRESS_NO_BUILD=1 (skip cargo build --release),
# STRESS_THINK_MS / STRESS_HOLD_MS (default 3000 / 2000).
# Exit status: 0 when every run ended with 0 errors and both Janus alive, else 1.
set -euo pipefail
set +m

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

RUNS=${1:-5}
CLIENTS=${2:-2000}
SECONDS_PER_RUN=${3:-60}
DIR=${STRESS_DIR:-${TMPDIR:-/tmp}/janus-cloud-vc-stress}
BASE=${STRESS_BASE_PORT:-19480}
THINK=${STRESS_THINK_MS:-3000}
HOLD=${STRESS_HOLD_MS:-2000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac

if [[ "${STRESS_NO_BUILD:-0}" != "1" ]]; then
  log "+ cargo build --release -p janus-cloud -p janus-loadtest"
  cargo build --release -p janus-cloud -p janus-loadtest
fi
PROXY_BIN="$TARGET_DIR/release/janus-proxy"
LOADTEST_BIN="$TARGET_DIR/release/janus-loadtest"

mkdir -p "$DIR"
proxy_pid=""
cleanup() {
  [[ -n "$proxy_pid" ]] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
  scripts/janus-backends.sh stop "$DIR/backends" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Janus's defaults: JANUS_EVENT_LOOPS unset.
unset JANUS_EVENT_LOOPS
JANUS_DEBUG_LEVEL=${JANUS_DEBUG_LEVEL:-3} \
  scripts/janus-backends.sh start 2 "$BASE" "$DIR/backends" >&2
jpid() { cat "$DIR/backends/janus-$1/janus.pid"; }
J0=$(jpid 0)
J1=$(jpid 1)

PORT=$((BASE + 300))
ADMIN=$((BASE + 301))
cat >"$DIR/proxy.toml" <<EOF
plugins = ["echotest", "videocall"]
[general]
server_select = "rr"
[log]
debug_level = "WARN"
[ws_transport]
ws_listen = "127.0.0.1:$PORT"
json = "compact"
[admin_api]
http_listen = "127.0.0.1:$ADMIN"
[limits]
max_connections = $((CLIENTS + 100))
[[janus_server]]
name = "j0"
url = "ws://127.0.0.1:$BASE"
[[janus_server]]
name = "j1"
url = "ws://127.0.0.1:$((BASE + 1))"
EOF
"$PROXY_BIN" "$DIR/proxy.toml" >"$DIR/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 100); do
  "$LOADTEST_BIN" echotest -u "ws://127.0.0.1:$PORT" -c 1 -d 1 >/dev/null 2>&1 && break
  sleep 0.2
done

failures=0
for run in $(seq "$RUNS"); do
  log "run $run/$RUNS: $CLIENTS clients, $SECONDS_PER_RUN s, think $THINK ms, hold $HOLD ms"
  rc=0
  "$LOADTEST_BIN" videocall -u "ws://127.0.0.1:$PORT" -c "$CLIENTS" -d "$SECONDS_PER_RUN" \
    --think-ms "$THINK" --hold-ms "$HOLD" --pid "$proxy_pid" --pid "$J0" --pid "$J1" \
    --json "$DIR/run-$run.json" >"$DIR/run-$run.txt" 2>&1 || rc=$?
  alive=1
  for p in "$J0" "$J1"; do
    kill -0 "$p" 2>/dev/null || alive=0
  done
  kill -0 "$proxy_pid" 2>/dev/null || alive=0
  summary=$(python3 - "$DIR/run-$run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ops = {o["op"]: o for o in r.get("ops", [])}
errors = sum(e.get("count", 1) for e in r.get("errors", []))
calls = ops.get("call", {}).get("count", 0)
print(f"calls={calls} errors={errors}")
PY
) || summary="no report"
  log "run $run: loadtest exit $rc, $summary, janus+proxy alive=$alive"
  if [[ $rc -ne 0 || $alive -ne 1 ]]; then
    failures=$((failures + 1))
    [[ $alive -eq 1 ]] || break
  fi
done
log "$((RUNS - failures)) of $RUNS runs clean (reports in $DIR)"
[[ $failures -eq 0 ]]
