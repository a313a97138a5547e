#!/usr/bin/env bash
# janus-backends.sh (janus-cloud) - start/stop/status N independent Janus 1.x instances on loopback,
# for tests and benchmarks. Nothing under /etc/janus is modified: every instance gets
# its own generated config folder under WORKDIR.
#
# Usage:
#   janus-backends.sh start N [BASE_WS_PORT] [WORKDIR]   # default BASE_WS_PORT=8188
#   janus-backends.sh configure N [BASE_WS_PORT] [WORKDIR]
#       as start, but only writes the configs and WORKDIR/janus-<i>/run.sh, the command that
#       runs instance i in the foreground (for a supervisor such as janus-sentinel)
#   janus-backends.sh stop [WORKDIR]
#   janus-backends.sh status [WORKDIR]
#   WORKDIR defaults to $JANUS_BACKENDS_DIR, else ${TMPDIR:-/tmp}/janus-backends.
#
# Part of janus-cloud (AGPL-3.0, see LICENSE at the repository root). Used by
# scripts/run-cluster.sh (local cluster) and by the integration tests under tests/
# (through scripts/test.sh, which exports JANUS_BACKENDS_SCRIPT pointing here).
#
# Layout, instance i = 0..N-1 (all bound to 127.0.0.1, plain ws, no TLS):
#   Janus API  (WebSocket, subprotocol "janus-protocol")        ws://127.0.0.1:$((BASE_WS_PORT+i))
#   Admin API  (WebSocket, subprotocol "janus-admin-protocol")  ws://127.0.0.1:$((ADMIN_BASE+i))
#              ADMIN_BASE = $JANUS_ADMIN_BASE_PORT, default BASE_WS_PORT-1000 (7188 for 8188)
#              admin_secret = $JANUS_ADMIN_SECRET, default "janusoverlord" (the Janus default)
#   HTTP API   disabled, unless JANUS_HTTP_BASE_PORT is set: http://127.0.0.1:$((HTTP_BASE+i))/janus
#   RTP/ICE    UDP ports RTP_BASE+i*RTP_SPAN .. RTP_BASE+(i+1)*RTP_SPAN-1
#              (JANUS_RTP_BASE default 10000, JANUS_RTP_SPAN default 2000; keep below 32768,
#              the start of Linux's ephemeral port range)
#   Files      WORKDIR/janus-<i>/{janus.jcfg,janus.*.jcfg,janus.log,janus.stdout,janus.pid}
#              WORKDIR/instances.tsv and WORKDIR/instances.json describe the running set.
#   api_secret unset, token_auth off, session_timeout 60 s (JANUS_SESSION_TIMEOUT),
#   reclaim_session_timeout 0 s (JANUS_RECLAIM_SESSION_TIMEOUT: seconds a session outlives
#   its transport and can be claimed by another connection; janus-proxy's [cluster]
#   failover needs it > 0).
#   Plugins    only $JANUS_PLUGINS (default "echotest videocall videoroom"); videoroom has the
#              stock demo rooms 1234 and 5678 (secret "adminpwd"). All other plugins, all other
#              transports (mqtt, rabbitmq, nanomsg, pfunix), event handlers and loggers are disabled.
#
# ICE on loopback: Janus 1.1.x skips every interface flagged IFF_LOOPBACK when gathering
# (hard-coded in ice.c, no setting changes it) and libnice's own fallback skips loopback too,
# so stock Janus never offers a 127.0.0.1 candidate ("ice_enforce_list = lo" does NOT help).
# With JANUS_LOOPBACK_ICE=1 (default) this script compiles a tiny LD_PRELOAD shim (needs cc)
# that clears IFF_LOOPBACK in getifaddrs() results for Janus only, and sets
# ice_enforce_list = "127.0.0.1": every handle then offers exactly one host candidate
# 127.0.0.1:<port in its RTP range>. Also set: ignore_mdns = true (no mDNS lookups of
# browsers' .local candidates), ipv6 off, full ICE (not lite), half trickle (Janus's
# candidates are inside its SDP). With JANUS_LOOPBACK_ICE=0, or without a compiler,
# stock gathering is used (non-loopback interfaces only).
#
# Other environment knobs:
#   JANUS_BIN (default: janus from PATH, else /usr/bin/janus; installed with apt-get if missing)
#   JANUS_LIB_DIR (folder holding plugins/ transports/ events/ loggers/; auto-detected)
#   JANUS_DEBUG_LEVEL (default 4)   JANUS_WS_JSON (indented|plain|compact, default indented)
#   JANUS_EVENT_LOOPS (unset = one thread + one fd per handle, the Janus default; set e.g. 2
#                      for load tests with many thousands of handles)
#   JANUS_NOFILE (fd limit for each Janus, default 65536; raised if allowed, else the hard limit)
#   JANUS_START_TIMEOUT (seconds for a start, default 30)   JANUS_STOP_TIMEOUT (default 10)
#   JANUS_EXTRA_ARGS (appended to the janus command line, e.g. "--no-media-timer=5")
#
# `stop` only signals the pids recorded in WORKDIR/janus-*/janus.pid, and only when
# /proc/<pid>/cmdline still names that instance's config file: SIGTERM (clean shutdown),
# after JANUS_STOP_TIMEOUT two more SIGTERMs (Janus then exits at once), then SIGKILL.
# `status` exits 0 when every instance runs and accepts WebSocket connections, 1 when some
# do not, 3 when WORKDIR holds no instances.

set -euo pipefail
set +m

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

default_workdir() {
  if [[ -n "${JANUS_BACKENDS_DIR:-}" ]]; then
    printf '%s\n' "$JANUS_BACKENDS_DIR"
  else
    printf '%s\n' "${TMPDIR:-/tmp}/janus-backends"
  fi
}

abs_dir() {
  # absolute path of a (possibly not yet existing) directory
  local d=$1
  case "$d" in
    /*) ;;
    *) d="$PWD/$d" ;;
  esac
  printf '%s\n' "${d%/}"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------- janus binary/libs

ensure_janus() {
  if [[ -n "${JANUS_BIN:-}" ]]; then
    [[ -x "$JANUS_BIN" ]] || die "JANUS_BIN=$JANUS_BIN is not executable"
    return
  fi
  if command -v janus >/dev/null 2>&1; then
    JANUS_BIN=$(command -v janus)
    return
  fi
  if [[ -x /usr/bin/janus ]]; then
    JANUS_BIN=/usr/bin/janus
    return
  fi
  log "janus binary not found; installing the Debian package 'janus'"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not available; install Janus (>= 1.1) manually"
  local sudo=() say=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install janus"
    sudo=(sudo)
    say="sudo "
  fi
  # The package's postinst runs 'invoke-rc.d janus start', which would start a system-wide
  # Janus on the default ports (8188, 8088, ...) when no policy-rc.d forbids it.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    log "+ creating a temporary /usr/sbin/policy-rc.d (exit 101) so the package does not start a system Janus"
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  log "+ ${say}apt-get update"
  "${sudo[@]}" apt-get update || rc=$?
  if [[ $rc -eq 0 ]]; then
    log "+ ${say}env DEBIAN_FRONTEND=noninteractive apt-get install -y janus"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y janus || rc=$?
  fi
  if [[ $made_policy -eq 1 ]]; then
    log "+ removing the temporary /usr/sbin/policy-rc.d"
    "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
  fi
  [[ $rc -eq 0 ]] || die "apt-get failed (exit $rc)"
  JANUS_BIN=$(command -v janus || true)
  [[ -n "$JANUS_BIN" ]] || die "janus still not found after apt-get install"
  log "installed: $("$JANUS_BIN" --help 2>&1 | head -1)"
}

find_lib_dir() {
  if [[ -n "${JANUS_LIB_DIR:-}" ]]; then
    [[ -d "$JANUS_LIB_DIR/plugins" ]] || die "JANUS_LIB_DIR=$JANUS_LIB_DIR has no plugins/ folder"
    return
  fi
  local c
  for c in /usr/lib/*/janus /usr/lib/janus /usr/local/lib/janus /opt/janus/lib/janus; do
    if [[ -d "$c/plugins" && -d "$c/transports" ]]; then
      JANUS_LIB_DIR=$c
      return
    fi
  done
  die "cannot find the Janus plugins/transports folders (set JANUS_LIB_DIR)"
}

# comma-separated list of the *.so in folder $1 whose basename is not in the rest of the args
disable_list() {
  local dir=$1; shift
  local out=() f base keep k
  for f in "$dir"/*.so; do
    [[ -e "$f" ]] || continue
    base=$(basename "$f")
    keep=0
    for k in "$@"; do
      [[ "$base" == "$k" ]] && keep=1
    done
    [[ $keep -eq 1 ]] || out+=("$base")
  done
  local IFS=,
  printf '%s' "${out[*]}"
}

# ---------------------------------------------------------------- loopback ICE shim

build_shim() {
  # Prints the path of the shim on success, nothing on failure.
  local libdir="$WORKDIR/lib"
  mkdir -p "$libdir"
  local cc_bin
  cc_bin=$(command -v cc || command -v gcc || command -v clang || true)
  if [[ -z "$cc_bin" ]]; then
    log "WARNING: no C compiler found: cannot build the loopback ICE shim"
    return 0
  fi
  cat >"$libdir/janus-loopback-ice.c" <<'EOF'
/* LD_PRELOAD shim for Janus: report loopback interfaces as ordinary ones, so that
 * Janus (which skips IFF_LOOPBACK interfaces when gathering ICE candidates) adds
 * 127.0.0.1 to its libnice agents. Used together with ice_enforce_list = "127.0.0.1". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

int getifaddrs(struct ifaddrs **ifap) {
	static int (*real_getifaddrs)(struct ifaddrs **) = NULL;
	if(real_getifaddrs == NULL)
		real_getifaddrs = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
	if(real_getifaddrs == NULL)
		return -1;
	int rc = real_getifaddrs(ifap);
	if(rc == 0 && ifap != NULL) {
		for(struct ifaddrs *i = *ifap; i != NULL; i = i->ifa_next)
			i->ifa_flags &= ~IFF_LOOPBACK;
	}
	return rc;
}
EOF
  if "$cc_bin" -shared -fPIC -O2 -Wall -o "$libdir/janus-loopback-ice.so" \
      "$libdir/janus-loopback-ice.c" -ldl >"$libdir/build.log" 2>&1; then
    printf '%s\n' "$libdir/janus-loopback-ice.so"
  else
    log "WARNING: building the loopback ICE shim failed:"
    sed 's/^/    /' "$libdir/build.log" >&2
  fi
}

# ---------------------------------------------------------------- config generation

write_configs() {
  local i=$1 dir=$2 ws=$3 admin=$4 http=$5 rtp_min=$6 rtp_max=$7 enforce=$8
  local plugin_keep=() p
  for p in $JANUS_PLUGINS; do plugin_keep+=("libjanus_${p}.so"); done
  local transport_keep=(libjanus_websockets.so)
  [[ -n "$http" ]] && transport_keep+=(libjanus_http.so)

  local plugins_disabled transports_disabled events_disabled loggers_disabled
  plugins_disabled=$(disable_list "$JANUS_LIB_DIR/plugins" "${plugin_keep[@]}")
  transports_disabled=$(disable_list "$JANUS_LIB_DIR/transports" "${transport_keep[@]}")
  events_disabled=$(disable_list "$JANUS_LIB_DIR/events")
  loggers_disabled=$(disable_list "$JANUS_LIB_DIR/loggers")

  local nat_enforce="#ice_enforce_list unset: stock gathering (non-loopback interfaces only)"
  [[ -n "$enforce" ]] && nat_enforce="ice_enforce_list = \"$enforce\""
  local event_loops="#event_loops unset: one loop thread per handle"
  [[ -n "${JANUS_EVENT_LOOPS:-}" ]] && event_loops="event_loops = ${JANUS_EVENT_LOOPS}"

  cat >"$dir/janus.jcfg" <<EOF
# Generated by janus-backends.sh for instance $i - do not edit, regenerated on every start.
general: {
	configs_folder = "$dir"
	plugins_folder = "$JANUS_LIB_DIR/plugins"
	transports_folder = "$JANUS_LIB_DIR/transports"
	events_folder = "$JANUS_LIB_DIR/events"
	loggers_folder = "$JANUS_LIB_DIR/loggers"
	log_to_stdout = false
	log_to_file = "$dir/janus.log"
	debug_level = $JANUS_DEBUG_LEVEL
	debug_timestamps = true
	debug_colors = false
	server_name = "janus-backend-$i"
	interface = "127.0.0.1"
	session_timeout = $JANUS_SESSION_TIMEOUT
	reclaim_session_timeout = $JANUS_RECLAIM_SESSION_TIMEOUT
	admin_secret = "$JANUS_ADMIN_SECRET"
	#api_secret unset, token_auth disabled
	token_auth = false
	$event_loops
}
certificates: {
	# no cert: Janus generates a self-signed DTLS certificate at startup
}
media: {
	rtp_port_range = "$rtp_min-$rtp_max"
}
nat: {
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ice_tcp = false
	ignore_mdns = true
	$nat_enforce
}
plugins: {
	disable = "$plugins_disabled"
}
transports: {
	disable = "$transports_disabled"
}
loggers: {
	disable = "$loggers_disabled"
}
events: {
	broadcast = false
	disable = "$events_disabled"
}
EOF

  cat >"$dir/janus.transport.websockets.jcfg" <<EOF
general: {
	json = "$JANUS_WS_JSON"
	ws = true
	ws_port = $ws
	ws_ip = "127.0.0.1"
	wss = false
	ws_logging = "err,warn"
}
admin: {
	admin_ws = true
	admin_ws_port = $admin
	admin_ws_ip = "127.0.0.1"
	admin_wss = false
}
cors: {
}
certificates: {
}
EOF

  if [[ -n "$http" ]]; then
    cat >"$dir/janus.transport.http.jcfg" <<EOF
general: {
	json = "$JANUS_WS_JSON"
	base_path = "/janus"
	http = true
	port = $http
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
cors: {
}
certificates: {
}
EOF
  fi

  for p in $JANUS_PLUGINS; do
    local f="$dir/janus.plugin.$p.jcfg"
    case "$p" in
      echotest|videocall)
        printf 'general: {\n}\n' >"$f"
        ;;
      videoroom)
        cat >"$f" <<'EOF'
general: {
	#admin_key unset: anybody may create rooms
}
room-1234: {
	description = "Demo Room"
	secret = "adminpwd"
	publishers = 6
	bitrate = 128000
	fir_freq = 10
	record = false
}
room-5678: {
	description = "VP9-SVC Demo Room"
	secret = "adminpwd"
	publishers = 6
	bitrate = 512000
	fir_freq = 10
	videocodec = "vp9"
	video_svc = true
}
EOF
        ;;
      streaming)
        # the stock config binds fixed UDP ports that would collide between instances
        printf 'general: {\n}\n' >"$f"
        ;;
      *)
        if [[ -f "/etc/janus/janus.plugin.$p.jcfg" ]]; then
          cp "/etc/janus/janus.plugin.$p.jcfg" "$f"
        else
          printf 'general: {\n}\n' >"$f"
        fi
        ;;
    esac
  done
}

# ---------------------------------------------------------------- process helpers

# pid of instance dir $1 if it is alive AND is the Janus we started there, else empty
instance_pid() {
  local dir=$1 pid
  [[ -f "$dir/janus.pid" ]] || return 0
  pid=$(tr -dc '0-9' <"$dir/janus.pid")
  [[ -n "$pid" ]] || return 0
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$dir/janus.jcfg"; then
    # a zombie is not alive
    local state
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ "$state" == "Z" ]] && return 0
    printf '%s\n' "$pid"
  fi
}

port_open() {
  # true if something accepts TCP connections on 127.0.0.1:$1
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}

instance_dirs() {
  # instance folders made by this script (they hold instance.env), in index order
  local d idx
  for d in "$WORKDIR"/janus-*; do
    [[ -d "$d" && -f "$d/instance.env" ]] || continue
    idx=${d##*/janus-}
    is_uint "$idx" || continue
    printf '%s\t%s\n' "$idx" "$d"
  done | sort -n -k1,1 | cut -f2-
}

stop_dir() {
  local dir=$1 pid waited=0
  pid=$(instance_pid "$dir")
  if [[ -z "$pid" ]]; then
    if [[ -f "$dir/janus.pid" ]]; then
      log "$(basename "$dir"): not running (removing stale pid file)"
      rm -f "$dir/janus.pid"
    fi
    return 0
  fi
  # Janus shuts down cleanly on the first SIGTERM/SIGINT once its main loop runs; a signal
  # that lands during startup is only counted, and the third one makes it exit(1) at once.
  kill -TERM "$pid" 2>/dev/null || true
  local limit=$(( ${JANUS_STOP_TIMEOUT:-10} * 10 ))
  while [[ -n "$(instance_pid "$dir")" && $waited -lt $limit ]]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if [[ -n "$(instance_pid "$dir")" ]]; then
    log "$(basename "$dir"): pid $pid still running ${JANUS_STOP_TIMEOUT:-10}s after SIGTERM, sending SIGTERM twice more"
    kill -TERM "$pid" 2>/dev/null || true
    sleep 0.1
    kill -TERM "$pid" 2>/dev/null || true
    waited=0
    while [[ -n "$(instance_pid "$dir")" && $waited -lt 30 ]]; do
      sleep 0.1
      waited=$((waited + 1))
    done
  fi
  if [[ -n "$(instance_pid "$dir")" ]]; then
    log "$(basename "$dir"): pid $pid still running, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$dir/janus.pid"
  log "$(basename "$dir"): stopped pid $pid"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local n=${1:-}
  is_uint "$n" && [[ $n -ge 1 ]] || die "start: N must be a positive integer (got '${n}')"
  local base=${2:-8188}
  is_uint "$base" || die "start: BASE_WS_PORT must be an integer"
  WORKDIR=$(abs_dir "${3:-$(default_workdir)}")
  [[ "$WORKDIR" != "/" && -n "$WORKDIR" ]] || die "refusing WORKDIR '$WORKDIR'"
  [[ "$WORKDIR" =~ ^[A-Za-z0-9._/+-]+$ ]] || die "WORKDIR may only use [A-Za-z0-9._/+-] (it ends up in LD_PRELOAD and config strings)"

  JANUS_ADMIN_SECRET=${JANUS_ADMIN_SECRET:-janusoverlord}
  JANUS_PLUGINS=${JANUS_PLUGINS:-echotest videocall videoroom}
  JANUS_DEBUG_LEVEL=${JANUS_DEBUG_LEVEL:-4}
  JANUS_SESSION_TIMEOUT=${JANUS_SESSION_TIMEOUT:-60}
  JANUS_RECLAIM_SESSION_TIMEOUT=${JANUS_RECLAIM_SESSION_TIMEOUT:-0}
  JANUS_WS_JSON=${JANUS_WS_JSON:-indented}
  local admin_base=${JANUS_ADMIN_BASE_PORT:-$((base - 1000))}
  local http_base=${JANUS_HTTP_BASE_PORT:-}
  local rtp_base=${JANUS_RTP_BASE:-10000}
  local rtp_span=${JANUS_RTP_SPAN:-2000}
  local start_timeout=${JANUS_START_TIMEOUT:-30}
  local nofile=${JANUS_NOFILE:-65536}
  local v
  for v in "$admin_base" "$rtp_base" "$rtp_span" "$start_timeout" "$JANUS_SESSION_TIMEOUT" "$JANUS_RECLAIM_SESSION_TIMEOUT" "$JANUS_DEBUG_LEVEL" "$nofile"; do
    is_uint "$v" || die "non-numeric port/timeout setting: '$v'"
  done
  [[ -z "$http_base" ]] || is_uint "$http_base" || die "JANUS_HTTP_BASE_PORT must be an integer"
  [[ "$JANUS_ADMIN_SECRET" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "JANUS_ADMIN_SECRET may only use [A-Za-z0-9._~+/=-]"
  [[ "$JANUS_WS_JSON" =~ ^(indented|plain|compact)$ ]] || die "JANUS_WS_JSON must be indented, plain or compact"
  [[ -z "${JANUS_EVENT_LOOPS:-}" ]] || is_uint "$JANUS_EVENT_LOOPS" || die "JANUS_EVENT_LOOPS must be an integer"
  [[ $rtp_span -ge 2 ]] || die "JANUS_RTP_SPAN must be >= 2"

  # port sanity: ranges inside 1..65535 and not overlapping each other
  local ranges=("$base" "$admin_base")
  [[ -n "$http_base" ]] && ranges+=("$http_base")
  local a b
  for a in "${ranges[@]}"; do
    [[ $a -ge 1 && $((a + n - 1)) -le 65535 ]] || die "TCP port range $a..$((a + n - 1)) out of bounds"
    for b in "${ranges[@]}"; do
      [[ $a -eq $b ]] && continue
      if [[ $a -lt $((b + n)) && $b -lt $((a + n)) ]]; then
        die "TCP port ranges overlap: $a..$((a + n - 1)) and $b..$((b + n - 1))"
      fi
    done
  done
  [[ $((rtp_base + n * rtp_span - 1)) -le 65535 ]] || die "RTP ranges exceed port 65535"

  ensure_janus
  find_lib_dir
  local pl
  for pl in $JANUS_PLUGINS; do
    [[ -e "$JANUS_LIB_DIR/plugins/libjanus_${pl}.so" ]] || die "no plugin libjanus_${pl}.so in $JANUS_LIB_DIR/plugins"
  done
  mkdir -p "$WORKDIR"

  # refuse to clobber running instances
  local d
  while IFS= read -r d; do
    [[ -n "$d" ]] || continue
    if [[ -n "$(instance_pid "$d")" ]]; then
      die "$(basename "$d") in $WORKDIR is still running; run '$PROG stop $WORKDIR' first"
    fi
  done < <(instance_dirs)
  # remove instance folders of an earlier run (only ones this script made)
  while IFS= read -r d; do
    [[ -n "$d" ]] && rm -rf -- "$d"
  done < <(instance_dirs)
  rm -f "$WORKDIR/instances.tsv" "$WORKDIR/instances.json"

  # ports must be free before we start (otherwise the readiness probe would lie)
  local i p
  for ((i = 0; i < n; i++)); do
    for p in $((base + i)) $((admin_base + i)) ${http_base:+$((http_base + i))}; do
      if port_open "$p"; then
        die "port 127.0.0.1:$p is already in use"
      fi
    done
  done

  local shim="" enforce=""
  if [[ "${JANUS_LOOPBACK_ICE:-1}" != "0" ]]; then
    shim=$(build_shim)
    if [[ -n "$shim" ]]; then
      enforce="127.0.0.1"
    else
      log "WARNING: falling back to stock ICE gathering (non-loopback host candidates only)"
    fi
  fi

  local eff_nofile
  eff_nofile=$( (ulimit -Hn "$nofile" 2>/dev/null || true
                 ulimit -n "$nofile" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
                 ulimit -n) )
  log "janus: $JANUS_BIN ($("$JANUS_BIN" --help 2>&1 | head -1)), libs: $JANUS_LIB_DIR, fd limit $eff_nofile"
  log "starting $n instance(s) in $WORKDIR"

  local pids=() t0
  t0=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    local dir="$WORKDIR/janus-$i"
    local ws=$((base + i)) admin=$((admin_base + i)) http=""
    [[ -n "$http_base" ]] && http=$((http_base + i))
    local rtp_min=$((rtp_base + i * rtp_span)) rtp_max=$((rtp_base + (i + 1) * rtp_span - 1))
    mkdir -p "$dir"
    write_configs "$i" "$dir" "$ws" "$admin" "$http" "$rtp_min" "$rtp_max" "$enforce"
    cat >"$dir/instance.env" <<EOF
INDEX=$i
WS_URL=ws://127.0.0.1:$ws
WS_PORT=$ws
ADMIN_URL=ws://127.0.0.1:$admin
ADMIN_PORT=$admin
ADMIN_SECRET=$JANUS_ADMIN_SECRET
HTTP_URL=${http:+http://127.0.0.1:$http/janus}
RTP_PORT_RANGE=$rtp_min-$rtp_max
LOOPBACK_ICE=${enforce:+1}
EOF
    : >"$dir/janus.log"
    if [[ "${CONFIGURE_ONLY:-0}" == "1" ]]; then
      # the command a supervisor (janus-sentinel's proc_watcher.cmdline) runs in the
      # foreground: same limits, shim and arguments as `start`, without setsid
      {
        printf '#!/usr/bin/env bash\n# janus-%s, written by janus-backends.sh configure: runs Janus in the foreground\n' "$i"
        printf 'cd %q || exit 1\n' "$dir"
        printf 'ulimit -Hn %q 2>/dev/null || true\n' "$nofile"
        printf 'ulimit -n %q 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true\n' "$nofile"
        [[ -n "$shim" ]] && printf 'export LD_PRELOAD=%q${LD_PRELOAD:+:$LD_PRELOAD}\n' "$shim"
        printf 'exec %q -C %q -F %q -L %q -N -o %s\n' "$JANUS_BIN" "$dir/janus.jcfg" "$dir" "$dir/janus.log" "${JANUS_EXTRA_ARGS:-}"
      } >"$dir/run.sh"
      chmod +x "$dir/run.sh"
      continue
    fi
    # shellcheck disable=SC2086
    (
      cd "$dir"
      # stock Janus (event_loops unset) uses 1 thread + 1 fd per handle and aborts with
      # "GLib-ERROR: Creating pipes for GWakeup: Too many open files" at the fd limit
      ulimit -Hn "$nofile" 2>/dev/null || true
      ulimit -n "$nofile" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
      if [[ -n "$shim" ]]; then export LD_PRELOAD="$shim${LD_PRELOAD:+:$LD_PRELOAD}"; fi
      exec setsid "$JANUS_BIN" -C "$dir/janus.jcfg" -F "$dir" -L "$dir/janus.log" -N -o \
        ${JANUS_EXTRA_ARGS:-} </dev/null >"$dir/janus.stdout" 2>&1
    ) &
    local pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$dir/janus.pid"
    pids+=("$pid")
  done

  if [[ "${CONFIGURE_ONLY:-0}" == "1" ]]; then
    log "configured $n instance(s) in $WORKDIR (not started): run WORKDIR/janus-<i>/run.sh"
    printf 'index\tws_url\tadmin_url\tadmin_secret\thttp_url\trun\n'
    for ((i = 0; i < n; i++)); do
      # shellcheck disable=SC1091
      ( . "$WORKDIR/janus-$i/instance.env"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$INDEX" "$WS_URL" "$ADMIN_URL" "$ADMIN_SECRET" "${HTTP_URL:--}" "$WORKDIR/janus-$i/run.sh" )
    done
    return 0
  fi

  # wait for every instance: WS and admin ports accept connections
  local failed=() deadline now
  deadline=$(( $(date +%s) + start_timeout ))
  for ((i = 0; i < n; i++)); do
    local dir="$WORKDIR/janus-$i" pid=${pids[$i]}
    local ws=$((base + i)) admin=$((admin_base + i)) ok=0 why=""
    while :; do
      if ! kill -0 "$pid" 2>/dev/null || [[ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" == "Z" ]]; then
        why="process $pid exited"
        break
      fi
      if port_open "$ws" && port_open "$admin" && { [[ -z "$http_base" ]] || port_open $((http_base + i)); }; then
        ok=1
        break
      fi
      now=$(date +%s)
      if [[ $now -ge $deadline ]]; then
        why="timed out after ${start_timeout}s waiting for 127.0.0.1:$ws"
        break
      fi
      sleep 0.05
    done
    if [[ $ok -eq 1 ]]; then
      log "janus-$i ready: pid $pid, ws://127.0.0.1:$ws (admin ws://127.0.0.1:$admin) after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s"
    else
      log "janus-$i FAILED: $why"
      log "---- tail of $dir/janus.log ----"
      if [[ -s "$dir/janus.log" ]]; then tail -n 40 "$dir/janus.log" >&2 || true; else log "(empty)"; fi
      if [[ -s "$dir/janus.stdout" ]]; then
        log "---- tail of $dir/janus.stdout ----"
        tail -n 20 "$dir/janus.stdout" >&2 || true
      fi
      failed+=("$i")
    fi
  done

  if [[ ${#failed[@]} -gt 0 ]]; then
    log "stopping the instances started by this command"
    for ((i = 0; i < n; i++)); do stop_dir "$WORKDIR/janus-$i"; done
    die "${#failed[@]} of $n instance(s) failed to start"
  fi

  # machine-readable description of the running set
  {
    printf 'index\tpid\tws_url\tadmin_url\tadmin_secret\thttp_url\trtp_port_range\tdir\n'
    for ((i = 0; i < n; i++)); do
      local dir="$WORKDIR/janus-$i"
      # shellcheck disable=SC1091
      ( . "$dir/instance.env"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$INDEX" "${pids[$i]}" "$WS_URL" "$ADMIN_URL" \
          "$ADMIN_SECRET" "${HTTP_URL:--}" "$RTP_PORT_RANGE" "$dir" )
    done
  } >"$WORKDIR/instances.tsv"
  {
    printf '[\n'
    for ((i = 0; i < n; i++)); do
      local dir="$WORKDIR/janus-$i" sep=","
      [[ $i -eq $((n - 1)) ]] && sep=""
      # shellcheck disable=SC1091
      ( . "$dir/instance.env"
        printf '  {"index": %s, "pid": %s, "ws_url": "%s", "admin_url": "%s", "admin_secret": "%s", "http_url": %s, "rtp_port_range": "%s", "dir": "%s"}%s\n' \
          "$INDEX" "${pids[$i]}" "$WS_URL" "$ADMIN_URL" "$ADMIN_SECRET" \
          "$( [[ -n "$HTTP_URL" ]] && printf '"%s"' "$HTTP_URL" || printf 'null')" "$RTP_PORT_RANGE" "$dir" "$sep" )
    done
    printf ']\n'
  } >"$WORKDIR/instances.json"
  log "all $n instance(s) up; see $WORKDIR/instances.tsv"
  cat "$WORKDIR/instances.tsv"
}

cmd_stop() {
  WORKDIR=$(abs_dir "${1:-$(default_workdir)}")
  [[ -d "$WORKDIR" ]] || { log "nothing to stop: $WORKDIR does not exist"; return 0; }
  local d any=0
  while IFS= read -r d; do
    [[ -n "$d" ]] || continue
    any=1
    stop_dir "$d"
  done < <(instance_dirs)
  [[ $any -eq 1 ]] || log "no instances in $WORKDIR"
  rm -f "$WORKDIR/instances.tsv" "$WORKDIR/instances.json"
}

cmd_status() {
  WORKDIR=$(abs_dir "${1:-$(default_workdir)}")
  local d total=0 up=0
  printf 'index\tstate\tpid\trss_kib\tws_url\tws\tadmin_url\tadmin\tdir\n'
  while IFS= read -r d; do
    [[ -n "$d" ]] || continue
    total=$((total + 1))
    local INDEX WS_URL WS_PORT ADMIN_URL ADMIN_PORT pid state rss="-" wsst="-" adst="-"
    # shellcheck disable=SC1091
    . "$d/instance.env"
    pid=$(instance_pid "$d")
    if [[ -n "$pid" ]]; then
      state=running
      rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "-")
      port_open "$WS_PORT" && wsst=open || wsst=closed
      port_open "$ADMIN_PORT" && adst=open || adst=closed
      [[ $wsst == open ]] && up=$((up + 1))
    else
      state=stopped
      pid="-"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$INDEX" "$state" "$pid" "$rss" "$WS_URL" "$wsst" "$ADMIN_URL" "$adst" "$d"
  done < <( [[ -d "$WORKDIR" ]] && instance_dirs )
  if [[ $total -eq 0 ]]; then
    log "no instances in $WORKDIR"
    return 3
  fi
  log "$up of $total instance(s) running and accepting WebSocket connections"
  [[ $up -eq $total ]]
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    start) [[ $# -ge 1 && $# -le 3 ]] || usage; cmd_start "$@" ;;
    configure) [[ $# -ge 1 && $# -le 3 ]] || usage; CONFIGURE_ONLY=1 cmd_start "$@" ;;
    stop) [[ $# -le 1 ]] || usage; cmd_stop "$@" ;;
    status) [[ $# -le 1 ]] || usage; cmd_status "$@" ;;
    -h|--help|help|"") usage ;;
    *) log "unknown command '$cmd'"; usage ;;
  esac
}

main "$@"
