#!/usr/bin/env bash
# bench.sh - part of janus-cloud: the standard benchmark set, on one machine, in one go.
#
# Usage: scripts/bench.sh [--quick] [--only LIST] [--profile] [--out DIR] [--baseline BIN]
#   --quick      a short run (seconds per phase, few clients): checks the set works
#   --only LIST  comma-separated phases to run (default all but clients):
#                echo-max, echo-latency, fake, connect, idle, videocall, clients
#   --profile    also record CPU profiles of janus-proxy during echo-max, fake, connect and
#                the clients phase's echotest and videocall (perf with the software clock,
#                if perf works here) into DIR/perf-*.txt
#   --out DIR    where the JSON/SVG reports and logs go (default $BENCH_DIR/results-<time>)
#   --baseline BIN  also run another janus-proxy build (e.g. the previous release, built
#                from an older commit) in the same run: echo-max and fake run against it
#                too, right after the current build, and the summary gives the ratios
#                current/baseline (CPU per message, throughput)
#
# What it starts (all on 127.0.0.1, all stopped on exit):
#   - 2 Janus 1.1.2 backends via scripts/janus-backends.sh (JANUS_EVENT_LOOPS=2, so tens of
#     thousands of handles do not exhaust threads/fds), ws ports $BASE and $BASE+1
#   - HAProxy in TCP mode (Debian 'haproxy', installed if missing) on $BASE+200, round robin
#     over the two backends: the blind-relay reference
#   - janus-proxy (release build) twice on the same backends: default JSON ("indented") on
#     $BASE+202 and json = "compact" on $BASE+204; admin API on the next port of each
#   - janus-loadtest fake-backend (BENCHMARK INSTRUMENT ONLY) on $BASE+206 and a third
#     janus-proxy (compact) in front of it on $BASE+208: the proxy's own ceiling
# Then janus-loadtest runs each phase against each target with the same load, writes one JSON
# report per run into DIR, and prints the comparison (ratios) at the end.
#
# Phases (full / --quick):
#   echo-max      echotest closed loop, 200 / 50 clients, no think time, 30 / 5 s: throughput
#                 and CPU per client WebSocket message of each target (direct, haproxy, proxy,
#                 proxy-compact)
#   echo-latency  echotest, 1000 / 200 clients with 1 s think time (machine not saturated):
#                 latency added over direct Janus
#   fake          echotest through proxy-compact on fake-backend, 200 / 50 clients, 30 / 5 s
#   connect       connection storm (connect, create, attach, destroy, close), 50 / 10 clients
#   idle          100,000 / 5,000 sessions, 10 per connection, held by proxy-compact with
#                 keepalives: proxy RSS per session (sessions only, no handles)
#   videocall     10,000 / 200 clients (call pairs looping, 4 s hold, 6 s think) through
#                 proxy-compact on both Janus backends, 300 / 20 s after a 60 / 5 s ramp-up
#   clients       per-client cost (not in the default set; BENCHMARKS.md's per-client table is
#                 `--only echo-max,connect,clients`): echotest at 20 clients on every target;
#                 idle clients as janus.js holds them (1 WebSocket + 1 session + 1 echotest
#                 handle) at 1,000 and 15,000 / 200 and 2,000, each on a freshly started
#                 proxy-compact; videocall at 1,000 / 100 clients direct and through
#                 proxy-compact (proxy and Janus work per call)
#
# Environment:
#   BENCH_DIR        state folder (default ${TMPDIR:-/tmp}/janus-cloud-bench)
#   BENCH_BASE_PORT  first Janus ws port (default 19088; admin ports BASE-1000..)
#   BENCH_RTP_BASE / BENCH_RTP_SPAN  UDP ports of the Janus backends (default 14000 / 3000:
#                    14000-19999, which the test suite's Janus sets also use: do not run this
#                    while scripts/test.sh runs)
#   BENCH_NO_BUILD=1 skip cargo build --release
#   BENCH_THREADS    generator threads (default 1)
#   BENCH_LAT_THINK_MS  think time of echo-latency (default 1000)
#   BENCH_VC_HOLD_MS / BENCH_VC_THINK_MS  videocall time in a call / between calls (default
#                    4000 / 6000: about 40 % of the pairs are in a call at any time, which keeps
#                    the PeerConnections per Janus within its RTP port span)
#
# The machine is shared by the generator and everything it measures, so compare numbers
# within one run (ratios), not across runs. See BENCHMARKS.md.
set -euo pipefail
set +m

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

QUICK=0
PROFILE=0
ONLY="echo-max,echo-latency,fake,connect,idle,videocall"
OUT=""
BASELINE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --profile) PROFILE=1 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    --baseline) BASELINE=${2:?--baseline needs a janus-proxy binary}; shift ;;
    -h | --help) sed -n '2,50p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}/janus-cloud-bench}
BASE=${BENCH_BASE_PORT:-19088}
RTP_BASE=${BENCH_RTP_BASE:-14000}
RTP_SPAN=${BENCH_RTP_SPAN:-3000}
THREADS=${BENCH_THREADS:-1}
LAT_THINK=${BENCH_LAT_THINK_MS:-1000}
VC_HOLD=${BENCH_VC_HOLD_MS:-4000}
VC_THINK=${BENCH_VC_THINK_MS:-6000}
OUT=${OUT:-$BENCH_DIR/results-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_DIR" "$OUT"
OUT=$(cd "$OUT" && pwd -P)

P_HAPROXY=$((BASE + 200))
P_PROXY=$((BASE + 202))
P_COMPACT=$((BASE + 204))
P_FAKE=$((BASE + 206))
P_PROXY_FAKE=$((BASE + 208))
P_BASE_PROXY=$((BASE + 210))
P_BASE_FAKE=$((BASE + 212))
P_FRESH=$((BASE + 214))
JANUS_URLS=("ws://127.0.0.1:$BASE" "ws://127.0.0.1:$((BASE + 1))")

wants() { [[ ",$ONLY," == *",$1,"* ]]; }

# ---------------------------------------------------------------- cleanup

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -d "$BENCH_DIR/janus/janus-0" ]]; then
    bash scripts/janus-backends.sh stop "$BENCH_DIR/janus" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

for p in "$BASE" "$((BASE + 1))" "$P_HAPROXY" "$P_PROXY" "$((P_PROXY + 1))" "$P_COMPACT" \
  "$((P_COMPACT + 1))" "$P_FAKE" "$P_PROXY_FAKE" "$((P_PROXY_FAKE + 1))"; do
  port_free "$p" || die "port $p is in use (another bench running? set BENCH_BASE_PORT)"
done

# ---------------------------------------------------------------- tools

if ! command -v haproxy >/dev/null 2>&1; then
  log "installing haproxy (Debian package)"
  SUDO=()
  [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
  # keep the package from starting a system-wide haproxy service
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  rc=0
  "${SUDO[@]}" apt-get update >/dev/null && \
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy >/dev/null || rc=$?
  [[ $made_policy -eq 0 ]] || "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  [[ $rc -eq 0 ]] || die "apt-get install haproxy failed"
fi

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  log "cargo build --release (janus-proxy, janus-loadtest)"
  cargo build --release --workspace --bin janus-proxy --bin janus-loadtest >&2
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
PROXY_BIN=$TARGET_DIR/release/janus-proxy
LT=$TARGET_DIR/release/janus-loadtest
[[ -x "$PROXY_BIN" && -x "$LT" ]] || die "release binaries missing in $TARGET_DIR/release"

# ---------------------------------------------------------------- start the targets

log "starting 2 Janus backends (ws $BASE, $((BASE + 1)))"
JANUS_EVENT_LOOPS=${JANUS_EVENT_LOOPS:-2} JANUS_RTP_BASE=$RTP_BASE JANUS_RTP_SPAN=$RTP_SPAN \
  JANUS_DEBUG_LEVEL=${JANUS_DEBUG_LEVEL:-3} \
  bash scripts/janus-backends.sh start 2 "$BASE" "$BENCH_DIR/janus" >"$OUT/janus-start.log" 2>&1 ||
  { cat "$OUT/janus-start.log" >&2; die "Janus did not start"; }
JANUS_PIDS=("$(cat "$BENCH_DIR/janus/janus-0/janus.pid")" "$(cat "$BENCH_DIR/janus/janus-1/janus.pid")")

cat >"$OUT/haproxy.cfg" <<EOF
global
    maxconn 9000
    nbthread 2
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend janus_ws
    bind 127.0.0.1:$P_HAPROXY
    default_backend janus
backend janus
    balance roundrobin
    server janus0 127.0.0.1:$BASE
    server janus1 127.0.0.1:$((BASE + 1))
EOF
haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")

# proxy_config PORT JSON SERVER_URL... ; the [limits] section only for the current build
# (a baseline from before it existed would refuse it)
proxy_config() {
  local port=$1 json=$2 i=0 url
  shift 2
  cat <<EOF
plugins = ["echotest", "videocall"]

[general]
server_name = "bench-proxy"
session_timeout = 60
shards = 0

[log]
log_to_stdout = true
debug_level = "WARN"

[ws_transport]
json = "$json"
ws_listen = "127.0.0.1:$port"
max_sessions_per_connection = 1024

[admin_api]
http_listen = "127.0.0.1:$((port + 1))"
EOF
  if [[ "${CONFIG_LIMITS:-1}" == 1 ]]; then
    # the idle phase holds 10,000 client connections
    printf '\n[limits]\nmax_connections = 60000\n'
  fi
  for url in "$@"; do
    printf '\n[[janus_server]]\nname = "backend-%d"\nurl = "%s"\n' "$i" "$url"
    i=$((i + 1))
  done
}

# start_proxy NAME PORT JSON URL... ; sets LAST_PID (BIN=... to run another binary)
start_proxy() {
  local name=$1 port=$2 json=$3
  shift 3
  proxy_config "$port" "$json" "$@" >"$OUT/$name.toml"
  "${BIN:-$PROXY_BIN}" "$OUT/$name.toml" >"$OUT/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

start_proxy proxy "$P_PROXY" indented "${JANUS_URLS[@]}"
PROXY_PID=$LAST_PID
start_proxy proxy-compact "$P_COMPACT" compact "${JANUS_URLS[@]}"
COMPACT_PID=$LAST_PID
"$LT" fake-backend --listen "127.0.0.1:$P_FAKE" >"$OUT/fake-backend.log" 2>&1 &
FAKE_PID=$!
PIDS+=("$FAKE_PID")
start_proxy proxy-fake "$P_PROXY_FAKE" compact "ws://127.0.0.1:$P_FAKE"
PROXY_FAKE_PID=$LAST_PID
if [[ -n "$BASELINE" ]]; then
  [[ -x "$BASELINE" ]] || die "--baseline $BASELINE is not an executable"
  BIN=$BASELINE CONFIG_LIMITS=0 start_proxy baseline "$P_BASE_PROXY" indented "${JANUS_URLS[@]}"
  BASE_PROXY_PID=$LAST_PID
  BIN=$BASELINE CONFIG_LIMITS=0 start_proxy baseline-fake "$P_BASE_FAKE" compact "ws://127.0.0.1:$P_FAKE"
  BASE_FAKE_PID=$LAST_PID
fi

# ready when one echotest client gets through without an error
wait_ready() {
  local url=$1 name=$2 deadline=$((SECONDS + 20))
  until "$LT" echotest -u "$url" -c 1 -d 0.3 --ramp-up 0 --timeout 2 --progress-every 0 >/dev/null 2>&1; do
    [[ $SECONDS -lt $deadline ]] || die "$name at $url is not ready (see $OUT)"
    sleep 0.3
  done
}
wait_ready "${JANUS_URLS[0]}" janus-0
wait_ready "${JANUS_URLS[1]}" janus-1
wait_ready "ws://127.0.0.1:$P_HAPROXY" haproxy
wait_ready "ws://127.0.0.1:$P_PROXY" janus-proxy
wait_ready "ws://127.0.0.1:$P_COMPACT" janus-proxy-compact
wait_ready "ws://127.0.0.1:$P_PROXY_FAKE" janus-proxy-on-fake
if [[ -n "$BASELINE" ]]; then
  wait_ready "ws://127.0.0.1:$P_BASE_PROXY" baseline-proxy
  wait_ready "ws://127.0.0.1:$P_BASE_FAKE" baseline-proxy-on-fake
fi
log "all targets up; reports go to $OUT"

# ---------------------------------------------------------------- phases

if [[ $QUICK -eq 1 ]]; then
  ECHO_MAX_C=50 ECHO_LAT_C=200 FAKE_C=50 CONN_C=10 IDLE_C=5000 VC_C=200
  D=5 VC_D=20 VC_RAMP=5 IDLE_RAMP=3 IDLE_D=10
  CLIENTS_IDLE=(200 2000) CLIENTS_VC=100 CLIENTS_VC_D=15 CLIENTS_IDLE_D=8
else
  ECHO_MAX_C=200 ECHO_LAT_C=1000 FAKE_C=200 CONN_C=50 IDLE_C=100000 VC_C=10000
  D=30 VC_D=360 VC_RAMP=60 IDLE_RAMP=40 IDLE_D=70
  CLIENTS_IDLE=(1000 15000) CLIENTS_VC=1000 CLIENTS_VC_D=60 CLIENTS_IDLE_D=45
fi


FAILED=()
# lt NAME SCENARIO ARGS... : one janus-loadtest run, report in $OUT/NAME.json
lt() {
  local name=$1 scenario=$2
  shift 2
  log "run $name: janus-loadtest $scenario $*"
  if ! "$LT" "$scenario" --label "$name" --threads "$THREADS" --progress-every 10 \
    --json "$OUT/$name.json" --svg "$OUT/$name.svg" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
    FAILED+=("$name")
    log "  $name had errors (see $OUT/$name.txt)"
  fi
  grep -E '^(message|cycle|keepalive|incomingcall) |^target|^generator|^errors' "$OUT/$name.txt" | sed 's/^/    /' >&2 || true
}

# profile_start PID NAME: with --profile, sample PID's stacks (perf, software clock: no
# hardware counters needed) during the next run; profile_end writes DIR/perf-NAME.txt
PERF_PID=""
PERF_NAME=""
profile_start() {
  [[ $PROFILE -eq 1 ]] || return 0
  if ! perf record -e cpu-clock -o /dev/null true >/dev/null 2>&1; then
    log "perf does not work here: no profile (try valgrind --tool=callgrind on a short run)"
    return 0
  fi
  PERF_NAME=$2
  perf record -e cpu-clock -F 999 -g -p "$1" -o "$OUT/perf-$PERF_NAME.data" -- sleep "$((D - 2))" \
    >/dev/null 2>&1 &
  PERF_PID=$!
}
profile_end() {
  [[ -n "$PERF_PID" ]] || return 0
  wait "$PERF_PID" || true
  perf report -i "$OUT/perf-$PERF_NAME.data" --stdio --no-children -g none --percent-limit 0.5 \
    --sort symbol >"$OUT/perf-$PERF_NAME.txt" 2>/dev/null || true
  log "profile: $OUT/perf-$PERF_NAME.txt"
  PERF_PID=""
}

janus_args=(-u "${JANUS_URLS[0]}" -u "${JANUS_URLS[1]}")
jpids=(--pid "${JANUS_PIDS[0]}" --pid "${JANUS_PIDS[1]}")

if wants echo-max; then
  common=(-c "$ECHO_MAX_C" -d "$D" --ramp-up 1)
  lt echo-max-direct echotest "${janus_args[@]}" "${jpids[@]}" "${common[@]}"
  lt echo-max-haproxy echotest -u "ws://127.0.0.1:$P_HAPROXY" --pid "$HAPROXY_PID" "${jpids[@]}" "${common[@]}"
  profile_start "$PROXY_PID" echo-max-proxy
  lt echo-max-proxy echotest -u "ws://127.0.0.1:$P_PROXY" --pid "$PROXY_PID" "${jpids[@]}" "${common[@]}"
  profile_end
  lt echo-max-compact echotest -u "ws://127.0.0.1:$P_COMPACT" --pid "$COMPACT_PID" "${jpids[@]}" "${common[@]}"
  if [[ -n "$BASELINE" ]]; then
    lt echo-max-baseline echotest -u "ws://127.0.0.1:$P_BASE_PROXY" --pid "$BASE_PROXY_PID" "${jpids[@]}" "${common[@]}"
    # and the current build once more, so that drift of the machine shows
    lt echo-max-proxy2 echotest -u "ws://127.0.0.1:$P_PROXY" --pid "$PROXY_PID" "${jpids[@]}" "${common[@]}"
  fi
fi

if wants echo-latency; then
  common=(-c "$ECHO_LAT_C" -d "$D" --ramp-up 2 --think-ms "$LAT_THINK")
  lt echo-lat-direct echotest "${janus_args[@]}" "${jpids[@]}" "${common[@]}"
  lt echo-lat-haproxy echotest -u "ws://127.0.0.1:$P_HAPROXY" --pid "$HAPROXY_PID" "${jpids[@]}" "${common[@]}"
  lt echo-lat-proxy echotest -u "ws://127.0.0.1:$P_PROXY" --pid "$PROXY_PID" "${jpids[@]}" "${common[@]}"
  lt echo-lat-compact echotest -u "ws://127.0.0.1:$P_COMPACT" --pid "$COMPACT_PID" "${jpids[@]}" "${common[@]}"
fi

if wants fake; then
  profile_start "$PROXY_FAKE_PID" fake-proxy
  lt fake-proxy echotest -u "ws://127.0.0.1:$P_PROXY_FAKE" --pid "$PROXY_FAKE_PID" --pid "$FAKE_PID" \
    -c "$FAKE_C" -d "$D" --ramp-up 1
  profile_end
  if [[ -n "$BASELINE" ]]; then
    lt fake-baseline echotest -u "ws://127.0.0.1:$P_BASE_FAKE" --pid "$BASE_FAKE_PID" --pid "$FAKE_PID" \
      -c "$FAKE_C" -d "$D" --ramp-up 1
    lt fake-proxy2 echotest -u "ws://127.0.0.1:$P_PROXY_FAKE" --pid "$PROXY_FAKE_PID" --pid "$FAKE_PID" \
      -c "$FAKE_C" -d "$D" --ramp-up 1
  fi
fi

if wants connect; then
  common=(-c "$CONN_C" -d "$D" --ramp-up 1)
  lt connect-direct connect "${janus_args[@]}" "${jpids[@]}" "${common[@]}"
  lt connect-haproxy connect -u "ws://127.0.0.1:$P_HAPROXY" --pid "$HAPROXY_PID" "${jpids[@]}" "${common[@]}"
  profile_start "$COMPACT_PID" connect-compact
  lt connect-compact connect -u "ws://127.0.0.1:$P_COMPACT" --pid "$COMPACT_PID" "${jpids[@]}" "${common[@]}"
  profile_end
fi

if wants idle; then
  lt idle-compact idle -u "ws://127.0.0.1:$P_COMPACT" --pid "$COMPACT_PID" -c "$IDLE_C" \
    --sessions-per-conn 10 --ramp-up "$IDLE_RAMP" -d "$IDLE_D" --keepalive 25 --timeout 30
fi

if wants videocall; then
  lt videocall-compact videocall -u "ws://127.0.0.1:$P_COMPACT" --pid "$COMPACT_PID" "${jpids[@]}" \
    -c "$VC_C" --ramp-up "$VC_RAMP" -d "$VC_D" --hold-ms "$VC_HOLD" --think-ms "$VC_THINK" --settle-ms 300 \
    --timeout 30
fi

if wants clients; then
  common=(-c 20 -d "$D" --ramp-up 1)
  lt echo-20-direct echotest "${janus_args[@]}" "${jpids[@]}" "${common[@]}"
  lt echo-20-haproxy echotest -u "ws://127.0.0.1:$P_HAPROXY" --pid "$HAPROXY_PID" "${jpids[@]}" "${common[@]}"
  profile_start "$PROXY_PID" echo-20-proxy
  lt echo-20-proxy echotest -u "ws://127.0.0.1:$P_PROXY" --pid "$PROXY_PID" "${jpids[@]}" "${common[@]}"
  profile_end
  lt echo-20-compact echotest -u "ws://127.0.0.1:$P_COMPACT" --pid "$COMPACT_PID" "${jpids[@]}" "${common[@]}"
  # idle clients, each count on a proxy started for it: its RSS growth is theirs alone
  for n in "${CLIENTS_IDLE[@]}"; do
    start_proxy "proxy-idle-$n" "$P_FRESH" compact "${JANUS_URLS[@]}"
    fresh=$LAST_PID
    wait_ready "ws://127.0.0.1:$P_FRESH" "proxy-idle-$n"
    lt "idle-clients-$n" idle -u "ws://127.0.0.1:$P_FRESH" --pid "$fresh" -c "$n" --sessions-per-conn 1 \
      --attach janus.plugin.echotest --ramp-up "$((n / 500 + 1))" -d "$CLIENTS_IDLE_D" --keepalive 25 --timeout 30
    kill "$fresh" 2>/dev/null || true
    wait "$fresh" 2>/dev/null || true
  done
  common=(-c "$CLIENTS_VC" --ramp-up 5 -d "$CLIENTS_VC_D" --hold-ms "$VC_HOLD" --think-ms "$VC_THINK" \
    --settle-ms 300 --timeout 30)
  lt videocall-1k-direct videocall "${janus_args[@]}" "${jpids[@]}" "${common[@]}"
  profile_start "$COMPACT_PID" videocall-1k-compact
  lt videocall-1k-compact videocall -u "ws://127.0.0.1:$P_COMPACT" --pid "$COMPACT_PID" "${jpids[@]}" "${common[@]}"
  profile_end
fi

# ---------------------------------------------------------------- comparison

log "comparison (reports in $OUT)"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys

out = sys.argv[1]

def load(name):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)

def op(r, name):
    return next((o for o in r["ops"] if o["op"] == name), None)

def proc(r, i=0):
    return r["processes"][i] if r and len(r["processes"]) > i else None

def line(label, r, opname):
    o = op(r, opname)
    p = proc(r)
    g = r["generator"]
    print(f"  {label:<16} {o['rate_per_s'] if o else 0:>9.0f}/s  p50 {o['p50_ms'] if o else 0:6.3f}  "
          f"p99 {o['p99_ms'] if o else 0:6.3f}  p99.9 {o['p999_ms'] if o else 0:7.3f} ms  "
          f"target {p['name'] if p else '-'} {p['cpu_us_per_message'] if p else 0:6.2f} µs/msg "
          f"{p['cpu_percent'] if p else 0:4.0f}%cpu  gen {g['cpu_percent']:3.0f}%  "
          f"busy {r['machine_busy_percent']:3.0f}%  errors {r['totals']['errors']}")

for phase, opname in (("echo-max", "message"), ("echo-20", "message"), ("echo-lat", "message"), ("connect", "cycle")):
    runs = [(t, load(f"{phase}-{t}")) for t in ("direct", "haproxy", "proxy", "compact")]
    runs = [(t, r) for t, r in runs if r]
    if not runs:
        continue
    print(f"{phase} ({opname}):")
    for t, r in runs:
        line(t, r, opname)
    d = dict(runs)
    for t in ("proxy", "compact"):
        if t in d and "haproxy" in d:
            a, h = d[t], d["haproxy"]
            pa, ph = proc(a), proc(h)
            oa, oh = op(a, opname), op(h, opname)
            if pa and ph and ph["cpu_us_per_message"] > 0:
                print(f"  {t}/haproxy CPU per message: {pa['cpu_us_per_message'] / ph['cpu_us_per_message']:.2f}x (target <= 2x)")
            if oa and oh and oh["rate_per_s"] > 0:
                print(f"  {t}/haproxy throughput: {oa['rate_per_s'] / oh['rate_per_s']:.2f}x (target >= 1x)")
        if t in d and "direct" in d:
            oa, od = op(d[t], opname), op(d["direct"], opname)
            if oa and od:
                print(f"  {t} added p50 {oa['p50_ms'] - od['p50_ms']:+.3f} ms, p99 {oa['p99_ms'] - od['p99_ms']:+.3f} ms over direct (target p99 <= +0.5 ms)")

r = load("fake-proxy")
if r:
    print("fake-backend (proxy alone):")
    line("proxy-compact", r, "message")
    o, p = op(r, "message"), proc(r)
    if o and p and p["cpu_s"] > 0:
        per_core = o["count"] / p["cpu_s"]
        print(f"  {per_core:,.0f} request round trips per proxy CPU-second (target >= 50,000)")

pairs = (("echo-max", ("proxy", "proxy2"), "baseline"), ("fake", ("proxy", "proxy2"), "baseline"))
for phase, currents, base in pairs:
    b = load(f"{phase}-{base}")
    if not b:
        continue
    print(f"{phase}: current build vs --baseline, same run (current before and after the baseline):")
    line("baseline", b, "message")
    pb, ob = proc(b), op(b, "message")
    for c in currents:
        r = load(f"{phase}-{c}")
        if not r:
            continue
        line(c, r, "message")
        p, o = proc(r), op(r, "message")
        if p and pb and pb["cpu_us_per_message"] > 0:
            print(f"    {c}/baseline CPU per message: {p['cpu_us_per_message'] / pb['cpu_us_per_message']:.3f}x")
        if o and ob and ob["rate_per_s"] > 0:
            print(f"    {c}/baseline throughput: {o['rate_per_s'] / ob['rate_per_s']:.3f}x")

r = load("idle-compact")
if r:
    p = proc(r)
    print(f"idle: {r['totals']['peak_sessions']} sessions on {r['totals']['peak_clients']} connections, "
          f"proxy rss {p['rss_start_kib']} -> {p['rss_peak_kib']} KiB: "
          f"{p['rss_bytes_per_session']:.0f} B/session (target <= 4096); errors {r['totals']['errors']}")

# the per-client table (phase clients, with echo-max and connect for the 200-client and
# storm ratios)
def cpu(r, i):
    p = proc(r, i)
    return p["cpu_us_per_message"] if p else 0.0

def janus_cpu(r, first):
    # Janus's CPU per client message: the Janus processes of a report are listed after the
    # measured target, or first on a direct run
    ps = r["processes"][first:]
    msgs = r["totals"]["messages_sent"] + r["totals"]["messages_received"]
    return sum(p["cpu_s"] for p in ps) * 1e6 / msgs if msgs else 0.0

rows = []
for phase in ("echo-20", "echo-max"):
    h = load(f"{phase}-haproxy")
    for t in ("proxy", "compact"):
        a = load(f"{phase}-{t}")
        if a and h and cpu(h, 0) > 0:
            rows.append((f"{phase} {t}: proxy CPU per client message vs HAProxy",
                         f"{cpu(a, 0):.2f} vs {cpu(h, 0):.2f} µs = {cpu(a, 0) / cpu(h, 0):.2f}x (target <= 0.7x)"))
for k in sorted((k for k in os.listdir(out) if k.startswith("idle-clients-") and k.endswith(".json")),
                key=lambda k: int(k[13:-5])):
    r = load(k[:-5])
    p = proc(r)
    rows.append((f"idle clients ({r['totals']['peak_clients']} WS + session + echotest handle)",
                 f"{p['rss_bytes_per_client']:.0f} B/client (rss {p['rss_start_kib']} -> {p['rss_peak_kib']} KiB; "
                 f"target <= 2048), errors {r['totals']['errors']}"))
vd, vp, e20 = load("videocall-1k-direct"), load("videocall-1k-compact"), load("echo-20-compact")
if vp and e20 and cpu(e20, 0) > 0:
    rows.append(("videocall: proxy CPU per client message vs its echotest (20 clients, compact)",
                 f"{cpu(vp, 0):.2f} vs {cpu(e20, 0):.2f} µs = {cpu(vp, 0) / cpu(e20, 0):.2f}x (target <= 2x)"))
if vp and vd:
    jp, jd = janus_cpu(vp, 1), janus_cpu(vd, 0)
    if jd > 0:
        rows.append(("videocall: Janus CPU per client message through the proxy vs direct",
                     f"{jp:.1f} vs {jd:.1f} µs = {jp / jd:.2f}x (target <= 1.05x)"))
    for name, r in (("direct", vd), ("proxy", vp)):
        o = op(r, "incomingcall")
        rows.append((f"videocall {name}: calls, errors",
                     f"{o['count'] if o else 0} calls, incomingcall p50/p99 {o['p50_ms'] if o else 0:.1f}/"
                     f"{o['p99_ms'] if o else 0:.1f} ms, errors {r['totals']['errors']}"))
cd, cc = load("connect-direct"), load("connect-compact")
if cd and cc and op(cd, "cycle") and op(cc, "cycle"):
    a, b = op(cc, "cycle")["rate_per_s"], op(cd, "cycle")["rate_per_s"]
    rows.append(("connection storm: cycles/s through the proxy vs direct Janus",
                 f"{a:.0f} vs {b:.0f} = {a / b:.2f}x (target >= 1.5x)"))
if rows:
    print("per-client cost:")
    for k, v in rows:
        print(f"  {k}: {v}")

r = load("videocall-compact")
if r:
    o = op(r, "incomingcall")
    print(f"videocall: {r['totals']['peak_clients']} clients up, {o['count'] if o else 0} calls "
          f"({o['rate_per_s'] if o else 0:.1f}/s), incomingcall p99 {o['p99_ms'] if o else 0:.2f} ms, "
          f"errors {r['totals']['errors']} over {r['run']['elapsed_s']:.0f} s")
    for e in r["errors"][:5]:
        print(f"  {e['kind']}: {e['count']}  {e['samples'][:1]}")
PY

if [[ ${#FAILED[@]} -gt 0 ]]; then
  log "runs with errors: ${FAILED[*]}"
  exit 1
fi
log "done: $OUT"
