#!/usr/bin/env bash
# bench-videoroom.sh - part of janus-cloud: the VideoRoom benchmark. A manual benchmark (it
# takes minutes and most of a small machine): not run by scripts/test.sh or CI.
#
# Usage: scripts/bench-videoroom.sh [--quick] [--only LIST] [--out DIR]
#   --quick      a short, small run (3 publishers, 12 subscribers, 10 s): checks the set works
#   --only LIST  comma-separated runs (default both): proxy, direct
#   --out DIR    where the JSON/SVG reports and logs go (default $BENCH_DIR/videoroom-<time>)
#
# What it starts (all on 127.0.0.1, all stopped on exit, on failure and on Ctrl-C too):
#   - 3 Janus 1.1.2 backends via scripts/janus-backends.sh: WebSocket 19450-19452, admin
#     19460-19462 (JANUS_ADMIN_BASE_PORT), RTP/ICE UDP 44000-48499 (JANUS_RTP_BASE 44000,
#     JANUS_RTP_SPAN 1500 each), JANUS_EVENT_LOOPS=2, work folder $BENCH_DIR/janus-videoroom
#   - janus-proxy (release build) on 19455, admin API on 19456, plugins = ["videoroom"],
#     the 3 backends as [[janus_server]] entries (server_select = "rr")
# Then janus-loadtest videoroom (release build) runs:
#   1. proxy:  through janus-proxy, 1 room spanning the 3 backends: 30 publishers (real
#      WebRTC peers, janus-mediapeer: Opus + VP8, so Janus reaches webrtcup and announces
#      them) and 300 subscribers, each subscribing to all 30 feeds (60 streams), looping
#      join → attached (offer) → start (synthetic answer, no ICE) → hold → leave → detach →
#      think; 20 s ramp-up, then 60 s steady. CPU/RSS of the proxy and of the 3 Janus.
#   2. direct: the same load on ONE Janus (janus-0; a Janus room cannot span servers), with
#      the proxy stopped first: the reference.
# Reports: DIR/{proxy,direct}.{json,svg,txt}, the proxy's /metrics in the middle and at the
# end of its run (videoroom gauges, backend handles = where the subscribers were placed),
# logs; a summary at the end (DIR/summary.txt).
#
# Environment:
#   BENCH_DIR        state folder (default ${TMPDIR:-/tmp}/janus-cloud-bench)
#   BENCH_NO_BUILD=1 skip cargo build --release
#   BENCH_THREADS    generator runtime threads (default 1)
#   VR_ROOMS / VR_PUBLISHERS / VR_SUBSCRIBERS   default 1 / 30 / 300 (--quick: 1 / 3 / 12)
#   VR_RAMP / VR_STEADY   seconds of ramp-up / steady run after it (default 20 / 60)
#   VR_HOLD_MS / VR_THINK_MS  subscriber time subscribed / between subscriptions
#                    (default 5000 / 1000)
#   VR_TIMEOUT       seconds per request before it counts as timed out (default 15)
#   VR_EXTRA         more janus-loadtest arguments for both runs (e.g. --real-subscribers)
#
# The machine is shared by the generator and everything it measures: compare the two runs
# (ratios), and look at "busy" (the whole machine) and the load average printed with them.
set -euo pipefail
set +m

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

QUICK=0
ONLY="proxy,direct"
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    -h | --help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}/janus-cloud-bench}
THREADS=${BENCH_THREADS:-1}
WS_BASE=19450
ADMIN_BASE=19460
RTP_BASE=44000
RTP_SPAN=1500
P_PROXY=19455
P_PROXY_ADMIN=19456
JANUS_DIR=$BENCH_DIR/janus-videoroom
if [[ $QUICK -eq 1 ]]; then
  ROOMS=${VR_ROOMS:-1} PUBS=${VR_PUBLISHERS:-3} SUBS=${VR_SUBSCRIBERS:-12}
  RAMP=${VR_RAMP:-3} STEADY=${VR_STEADY:-10}
else
  ROOMS=${VR_ROOMS:-1} PUBS=${VR_PUBLISHERS:-30} SUBS=${VR_SUBSCRIBERS:-300}
  RAMP=${VR_RAMP:-20} STEADY=${VR_STEADY:-60}
fi
HOLD=${VR_HOLD_MS:-5000}
THINK=${VR_THINK_MS:-1000}
TIMEOUT=${VR_TIMEOUT:-15}
read -r -a EXTRA <<<"${VR_EXTRA:-}"
OUT=${OUT:-$BENCH_DIR/videoroom-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_DIR" "$OUT"
OUT=$(cd "$OUT" && pwd -P)

wants() { [[ ",$ONLY," == *",$1,"* ]]; }

# ---------------------------------------------------------------- cleanup

PROXY_PID=""
STARTED_JANUS=0
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ $STARTED_JANUS -eq 1 ]]; then
    bash scripts/janus-backends.sh stop "$JANUS_DIR" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
for p in $WS_BASE $((WS_BASE + 1)) $((WS_BASE + 2)) $ADMIN_BASE $((ADMIN_BASE + 1)) \
  $((ADMIN_BASE + 2)) $P_PROXY $P_PROXY_ADMIN; do
  port_free "$p" || die "port $p is in use (another bench-videoroom running?)"
done

# ---------------------------------------------------------------- build

if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
  log "cargo build --release (janus-proxy, janus-loadtest)"
  cargo build --release -p janus-cloud --bin janus-proxy -p janus-loadtest --bin janus-loadtest >&2
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
PROXY_BIN=$TARGET_DIR/release/janus-proxy
LT=$TARGET_DIR/release/janus-loadtest
[[ -x "$PROXY_BIN" && -x "$LT" ]] || die "release binaries missing in $TARGET_DIR/release"
git log -1 --format='commit %h %s' >"$OUT/build.txt" 2>/dev/null || true
git status --short -- src loadtest mediapeer >>"$OUT/build.txt" 2>/dev/null || true

# ---------------------------------------------------------------- start the targets

log "starting 3 Janus backends (ws $WS_BASE-$((WS_BASE + 2)), RTP $RTP_BASE+$RTP_SPAN each)"
STARTED_JANUS=1
JANUS_EVENT_LOOPS=${JANUS_EVENT_LOOPS:-2} JANUS_ADMIN_BASE_PORT=$ADMIN_BASE \
  JANUS_RTP_BASE=$RTP_BASE JANUS_RTP_SPAN=$RTP_SPAN JANUS_DEBUG_LEVEL=${JANUS_DEBUG_LEVEL:-3} \
  bash scripts/janus-backends.sh start 3 "$WS_BASE" "$JANUS_DIR" >"$OUT/janus-start.log" 2>&1 ||
  { cat "$OUT/janus-start.log" >&2; die "Janus did not start"; }
JANUS_PIDS=()
for i in 0 1 2; do
  JANUS_PIDS+=("$(cat "$JANUS_DIR/janus-$i/janus.pid")")
done

cat >"$OUT/proxy.toml" <<EOF
plugins = ["videoroom"]

[general]
server_name = "bench-videoroom"
session_timeout = 60
server_select = "rr"
shards = 0

[log]
log_to_stdout = true
debug_level = "WARN"

[ws_transport]
ws_listen = "127.0.0.1:$P_PROXY"

[admin_api]
http_listen = "127.0.0.1:$P_PROXY_ADMIN"
EOF
for i in 0 1 2; do
  printf '\n[[janus_server]]\nname = "backend-%d"\nurl = "ws://127.0.0.1:%d"\n' "$i" $((WS_BASE + i)) \
    >>"$OUT/proxy.toml"
done

metrics() { curl -sf --max-time 5 "http://127.0.0.1:$P_PROXY_ADMIN/metrics"; }

start_proxy() {
  # no admin secret: allowed on loopback (JANUS_CLOUD_SECRET must not leak in from outside)
  env -u JANUS_CLOUD_SECRET "$PROXY_BIN" "$OUT/proxy.toml" >"$OUT/proxy.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  # ready when every shard has its link to each of the 3 backends
  local deadline=$((SECONDS + 30)) shards up
  shards=$(nproc)
  while :; do
    kill -0 "$PROXY_PID" 2>/dev/null || { cat "$OUT/proxy.log" >&2; die "janus-proxy exited"; }
    up=$(metrics 2>/dev/null | awk -v s="$shards" \
      '/^janus_proxy_backend_links_up\{/ && $NF >= s {n++} END {print n + 0}')
    [[ "$up" -ge 3 ]] && break
    [[ $SECONDS -lt $deadline ]] || { cat "$OUT/proxy.log" >&2; die "janus-proxy links not up in 30 s"; }
    sleep 0.2
  done
  log "janus-proxy ready: pid $PROXY_PID, ws://127.0.0.1:$P_PROXY"
}

stop_proxy() {
  [[ -n "$PROXY_PID" ]] || return 0
  kill "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

FAILED=()
# lt NAME URL PIDS... : one janus-loadtest videoroom run, report in $OUT/NAME.json
lt() {
  local name=$1 url=$2
  shift 2
  local pids=() p
  for p in "$@"; do pids+=(--pid "$p"); done
  local args=(videoroom -u "$url" "${pids[@]}" --rooms "$ROOMS" --publishers "$PUBS"
    --subscribers "$SUBS" --ramp-up "$RAMP" -d "$((RAMP + STEADY))" --hold-ms "$HOLD"
    --think-ms "$THINK" --timeout "$TIMEOUT" --threads "$THREADS" --label "$name"
    --progress-every 10 --json "$OUT/$name.json" --svg "$OUT/$name.svg" "${EXTRA[@]}")
  printf '%s\n' "$LT ${args[*]}" >"$OUT/$name.cmd"
  log "run $name: janus-loadtest ${args[*]}"
  printf 'load average before %s: %s\n' "$name" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.txt"
  if ! "$LT" "${args[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
    FAILED+=("$name")
    log "  $name had errors (see $OUT/$name.txt)"
  fi
  printf 'load average after %s: %s\n' "$name" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.txt"
  grep -E '^(sub-join|start|leave|pub-join|configure) |^target|^generator|^errors' "$OUT/$name.txt" |
    sed 's/^/    /' >&2 || true
}

if wants proxy; then
  start_proxy
  # the proxy's gauges in the middle of the steady window: where the subscribers are
  ( sleep "$((RAMP + STEADY / 2))"; metrics >"$OUT/proxy-metrics-mid.txt" 2>/dev/null || true ) &
  PIDS+=("$!")
  lt proxy "ws://127.0.0.1:$P_PROXY" "$PROXY_PID" "${JANUS_PIDS[@]}"
  metrics >"$OUT/proxy-metrics-end.txt" 2>/dev/null || true
  stop_proxy
fi

if wants direct; then
  lt direct "ws://127.0.0.1:$WS_BASE" "${JANUS_PIDS[0]}"
fi

# ---------------------------------------------------------------- summary

log "summary (reports in $OUT)"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, os, re, sys

out = sys.argv[1]

def load(name):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)

def op(r, name):
    return next((o for o in r["ops"] if o["op"] == name), None)

for line in open(os.path.join(out, "loadavg.txt")):
    print(line.rstrip())
for name in ("proxy", "direct"):
    r = load(name)
    if not r:
        continue
    v = r["run"].get("videoroom", {})
    t = r["totals"]
    print(f"{name}: {v.get('rooms')} room(s) x ({v.get('publishers')} publishers + "
          f"{v.get('subscribers')} subscribers), {r['run']['steady_s']:.0f} s steady, "
          f"machine busy {r['machine_busy_percent']:.0f}% of {r['cores']} cores, "
          f"generator {r['generator']['cpu_percent']:.0f}%")
    print(f"  {'request':<13} {'count':>7} {'rate/s':>8} {'p50 ms':>8} {'p99 ms':>9} {'max ms':>9}")
    for n in ("pub-join", "configure", "webrtcup", "attach", "sub-join", "start", "leave",
              "detach", "sub-webrtcup", "sub-media"):
        o = op(r, n)
        if o:
            print(f"  {n:<13} {o['count']:>7} {o['rate_per_s']:>8.1f} {o['p50_ms']:>8.2f} "
                  f"{o['p99_ms']:>9.2f} {o['max_ms']:>9.2f}")
    joins = op(r, "sub-join")
    join_errors = sum(e["count"] for e in r["errors"] if e["kind"].endswith(":sub-join"))
    print(f"  subscriber joins answered: {joins['count'] if joins else 0}, "
          f"join errors {join_errors}; errors in all {t['errors']}; "
          f"messages {t['messages_sent']} sent + {t['messages_received']} received")
    for e in r["errors"][:8]:
        print(f"    {e['kind']}: {e['count']}")
        for s in e["samples"][:2]:
            print(f"        {s[:300]}")
    for p in r["processes"]:
        print(f"  {p['name']:<12} pid {p['pid']}: cpu {p['cpu_s']:.1f} s ({p['cpu_percent']:.0f}% of a core), "
              f"{p['cpu_us_per_message']:.1f} µs per client message, rss {p['rss_start_kib'] // 1024} -> "
              f"{p['rss_peak_kib'] // 1024} MiB{'' if p['alive_at_end'] else ' [EXITED]'}")

for when in ("mid", "end"):
    p = os.path.join(out, f"proxy-metrics-{when}.txt")
    if not os.path.exists(p):
        continue
    keep = [l.strip() for l in open(p)
            if re.match(r"janus_proxy_(videoroom_\w+|backend_handles)\b", l) and not l.startswith("#")]
    if keep:
        print(f"proxy gauges ({when} of its run): " + "; ".join(keep))
PY

if [[ ${#FAILED[@]} -gt 0 ]]; then
  log "runs with errors: ${FAILED[*]}"
  exit 1
fi
log "done: $OUT"
