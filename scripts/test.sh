#!/usr/bin/env bash
# test.sh - part of janus-cloud: run all tests, on a fresh Debian machine too.
#
# Usage: scripts/test.sh [ARGS...]      (from any directory; ARGS go to the test runner,
#                                        e.g. a test name filter)
#
# 1. Installs what is missing (root or sudo, apt): the Debian packages 'janus' and
#    'redis-server' (with a temporary /usr/sbin/policy-rc.d so that neither package starts a
#    system-wide service on the default ports), and gcc + libc6-dev when 'cc' is missing.
# 2. cargo build --workspace --all-targets
# 3. cargo nextest run --workspace --no-fail-fast ARGS   (when cargo-nextest is installed)
#    else cargo test --workspace ARGS
# 4. scripts/client-tests.sh: janode and janus.js (headless Chromium) against janus-proxy; it
#    installs Debian's chromium and the npm packages of clients/ when missing
#    (skipped with JANUS_CLOUD_SKIP_CLIENT_TESTS=1).
#    The exit status is the test runner's, else the client tests'.
#
# The integration tests start their own Janus instances with
#   $JANUS_BACKENDS_SCRIPT start N PORT $JANUS_CLOUD_TEST_DIR/<name>
# (and their own janus-proxy / redis-server processes with state under $JANUS_CLOUD_TEST_DIR).
# On exit, whatever way, this script stops every Janus instance set found under
# $JANUS_CLOUD_TEST_DIR and kills leftover janus-proxy / redis-server processes that belong to
# it; it does the same at the start, for leftovers of an earlier run killed hard.
#
# Environment:
#   JANUS_CLOUD_TEST_DIR      exported; default ${TMPDIR:-/tmp}/janus-cloud-tests
#   JANUS_BACKENDS_SCRIPT     exported; absolute path of scripts/janus-backends.sh
#   JANUS_CLOUD_TEST_RUNNER   nextest | cargo (default: nextest when installed, else cargo)
#   JANUS_CLOUD_NO_INSTALL=1  never run apt-get (fail later if something is missing)
#   JANUS_CLOUD_SKIP_CLIENT_TESTS=1  do not run scripts/client-tests.sh
#   CI=true                   also print the versions of the tools used

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
JANUS_BACKENDS_SCRIPT="$ROOT/scripts/janus-backends.sh"
export JANUS_CLOUD_TEST_DIR JANUS_BACKENDS_SCRIPT
[[ -x "$JANUS_BACKENDS_SCRIPT" ]] || die "$JANUS_BACKENDS_SCRIPT is missing or not executable"

# rustup's default location, in case PATH lacks it (e.g. a minimal CI environment)
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
  export PATH
fi

# ---------------------------------------------------------------- cleanup

# shellcheck source=lib/apt.sh
. "$ROOT/scripts/lib/apt.sh"


# true if process $1 is a janus-proxy or redis-server that belongs to $JANUS_CLOUD_TEST_DIR:
# its command line mentions the folder, or its working folder is inside it, or it was started
# with this JANUS_CLOUD_TEST_DIR in its environment (redis-server rewrites its command line to
# "redis-server host:port", so the command line alone is not enough).
is_test_process() {
  local pid=$1 comm argv0 cmdline cwd
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
  argv0=${argv0%% *}
  argv0=${argv0##*/}
  case "$comm/$argv0" in
    janus-proxy/* | */janus-proxy | redis-server/* | */redis-server) ;;
    *) return 1 ;;
  esac
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmdline" == *"$JANUS_CLOUD_TEST_DIR"* ]] && return 0
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
  [[ -n "$cwd" && ( "$cwd" == "$JANUS_CLOUD_TEST_DIR" || "$cwd" == "$JANUS_CLOUD_TEST_DIR"/* ) ]] && return 0
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "JANUS_CLOUD_TEST_DIR=$JANUS_CLOUD_TEST_DIR"
}

stop_leftovers() {
  [[ -d "$JANUS_CLOUD_TEST_DIR" ]] || return 0
  # Janus instance sets: every folder holding janus-<i>/instance.env (made by janus-backends.sh),
  # whether directly under the test folder (the usual layout) or deeper.
  local d sets=()
  for d in "$JANUS_CLOUD_TEST_DIR"/*/; do
    [[ -d "$d" ]] && sets+=("${d%/}")
  done
  while IFS= read -r d; do
    d=${d%/janus-*/instance.env}
    [[ " ${sets[*]} " == *" $d "* ]] || sets+=("$d")
  done < <(find "$JANUS_CLOUD_TEST_DIR" -mindepth 3 -maxdepth 6 -path '*/janus-*/instance.env' 2>/dev/null)
  for d in "${sets[@]}"; do
    compgen -G "$d/janus-*/janus.pid" >/dev/null || continue
    "$JANUS_BACKENDS_SCRIPT" stop "$d" || log "WARNING: stopping the Janus instances in $d failed"
  done
  # janus-proxy / redis-server processes started by the tests
  local pid pids=()
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ "$pid" -ne $$ ]] || continue
    is_test_process "$pid" && pids+=("$pid")
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  log "killing leftover processes of $JANUS_CLOUD_TEST_DIR: ${pids[*]}"
  for pid in "${pids[@]}"; do
    log "  $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  done
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local waited=0 alive
  while :; do
    alive=()
    for pid in "${pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null && [[ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != "Z" ]]; then
        alive+=("$pid")
      fi
    done
    [[ ${#alive[@]} -gt 0 && $waited -lt 50 ]] || break
    sleep 0.1
    waited=$((waited + 1))
  done
  if [[ ${#alive[@]} -gt 0 ]]; then
    log "still running after 5s, sending SIGKILL: ${alive[*]}"
    kill -KILL "${alive[@]}" 2>/dev/null || true
  fi
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

have_janus() {
  if [[ -n "${JANUS_BIN:-}" ]]; then [[ -x "$JANUS_BIN" ]]; return; fi
  command -v janus >/dev/null 2>&1 || [[ -x /usr/bin/janus ]]
}
have_redis() { command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]; }
have_cc() { command -v cc >/dev/null 2>&1; }

install_missing() {
  local pkgs=()
  have_janus || pkgs+=(janus)
  have_redis || pkgs+=(redis-server)
  have_cc || pkgs+=(gcc libc6-dev)
  [[ ${#pkgs[@]} -gt 0 ]] || return 0
  log "missing: ${pkgs[*]}"
  if [[ "${JANUS_CLOUD_NO_INSTALL:-0}" == "1" ]]; then
    log "JANUS_CLOUD_NO_INSTALL=1: not installing"
    return 0
  fi
  apt_install "${pkgs[@]}"
  have_janus || die "janus still missing after apt-get install"
  have_redis || die "redis-server still missing after apt-get install"
  have_cc || die "cc still missing after apt-get install"
}

install_missing
command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"

runner=${JANUS_CLOUD_TEST_RUNNER:-}
if [[ -z "$runner" ]]; then
  if cargo nextest --version >/dev/null 2>&1; then runner=nextest; else runner=cargo; fi
fi
case "$runner" in
  nextest | cargo) ;;
  *) die "JANUS_CLOUD_TEST_RUNNER must be nextest or cargo (got '$runner')" ;;
esac

if [[ "${CI:-}" == "true" ]]; then
  log "versions:"
  {
    printf '  %s\n' "$(rustc -V 2>&1 || echo 'rustc: not found')"
    printf '  %s\n' "$(cargo -V 2>&1 || echo 'cargo: not found')"
    [[ $runner == nextest ]] && printf '  %s\n' "$(cargo nextest --version 2>&1 | head -n 1)"
    printf '  janus: %s\n' "$( ("${JANUS_BIN:-janus}" --version 2>&1 || true) | head -n 1)"
    printf '  redis-server: %s\n' "$( (redis-server --version 2>&1 || true) | head -n 1)"
    printf '  cc: %s\n' "$( (cc --version 2>&1 || true) | head -n 1)"
  } >&2
fi

# ---------------------------------------------------------------- build and test

mkdir -p "$JANUS_CLOUD_TEST_DIR"
stop_leftovers
log "JANUS_CLOUD_TEST_DIR=$JANUS_CLOUD_TEST_DIR"
log "JANUS_BACKENDS_SCRIPT=$JANUS_BACKENDS_SCRIPT"

log "+ cargo build --workspace --all-targets"
cargo build --workspace --all-targets

rc=0
if [[ $runner == nextest ]]; then
  log "+ cargo nextest run --workspace --no-fail-fast $*"
  cargo nextest run --workspace --no-fail-fast "$@" || rc=$?
else
  log "+ cargo test --workspace $*"
  cargo test --workspace "$@" || rc=$?
fi
if [[ $rc -eq 0 ]]; then
  log "tests passed"
else
  log "tests FAILED (exit $rc); logs of the test Janus instances: $JANUS_CLOUD_TEST_DIR/*/janus-*/janus.log"
fi

# standard clients (janode, janus.js in Chromium) against janus-proxy; the workspace is built
if [[ "${JANUS_CLOUD_SKIP_CLIENT_TESTS:-0}" != "1" ]]; then
  crc=0
  log "+ scripts/client-tests.sh"
  JANUS_CLOUD_NO_BUILD=1 "$ROOT/scripts/client-tests.sh" || crc=$?
  [[ $rc -ne 0 ]] || rc=$crc
fi
exit "$rc"
