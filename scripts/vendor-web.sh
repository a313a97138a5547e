#!/usr/bin/env bash
# Copies the browser libraries of the demo pages (html/) from the npm packages pinned in
# clients/package-lock.json into html/vendor/, with their licence texts:
#
#   html/vendor/janus.es.js   janus-gateway 1.x   npm/dist/janus.es.js   MIT (its header; the
#                                                  package's COPYING is Janus's GPLv3, which
#                                                  covers the server, not janus.js)
#   html/vendor/adapter.js    webrtc-adapter 9.x  out/adapter.js         BSD-3-Clause
#
# The copies are committed, so a fresh clone serves the pages without npm; run this script
# (it runs `npm ci` in clients/ when node_modules is missing or stale) after changing the
# versions in clients/package.json, then commit html/vendor/.
#
#   scripts/vendor-web.sh          copy
#   scripts/vendor-web.sh --check  exit 1 when html/vendor/ differs from the packages
set -euo pipefail

PROG=$(basename "$0")
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CLIENTS="$ROOT/clients"
NM="$CLIENTS/node_modules"
OUT="$ROOT/html/vendor"
check=0
[[ "${1:-}" == "--check" ]] && check=1

stamp="$NM/.package-lock.json"
if [[ ! -f "$stamp" || "$CLIENTS/package-lock.json" -nt "$stamp" ]]; then
  command -v npm >/dev/null 2>&1 || die "npm not found (needed once to fetch the packages)"
  log "+ npm ci (in clients/)"
  (cd "$CLIENTS" && npm ci --no-audit --no-fund --loglevel=error)
fi

version() { node -p "require('$NM/$1/package.json').version" 2>/dev/null || sed -n 's/^[[:space:]]*"version": "\(.*\)",$/\1/p' "$NM/$1/package.json" | head -n 1; }
janus_v=$(version janus-gateway)
adapter_v=$(version webrtc-adapter)
[[ "$janus_v" == 1.* ]] || die "janus-gateway $janus_v: the pages need janus.js 1.x"

# source  destination
files=(
  "$NM/janus-gateway/npm/dist/janus.es.js" janus.es.js
  "$NM/webrtc-adapter/out/adapter.js" adapter.js
  "$NM/webrtc-adapter/LICENSE.md" LICENSE.webrtc-adapter.md
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 0; i < ${#files[@]}; i += 2)); do
  src=${files[i]}
  [[ -f "$src" ]] || die "$src is missing"
  cp "$src" "$tmp/${files[i + 1]}"
done
# janus.js carries its MIT licence in its header; keep it as a file too
sed -n '1,/\*\//p' "$NM/janus-gateway/npm/dist/janus.es.js" >"$tmp/LICENSE.janus-js.txt"
cat >"$tmp/VERSIONS" <<V
janus-gateway $janus_v (npm/dist/janus.es.js, MIT)
webrtc-adapter $adapter_v (out/adapter.js, BSD-3-Clause)
copied by scripts/vendor-web.sh from clients/node_modules (clients/package-lock.json)
V

if [[ $check -eq 1 ]]; then
  if diff -r "$tmp" "$OUT" >/dev/null 2>&1; then
    log "html/vendor/ matches janus-gateway $janus_v and webrtc-adapter $adapter_v"
    exit 0
  fi
  log "html/vendor/ differs from the npm packages: run scripts/vendor-web.sh"
  exit 1
fi
mkdir -p "$OUT"
rm -f "$OUT"/*
cp "$tmp"/* "$OUT"/
log "html/vendor/: janus-gateway $janus_v, webrtc-adapter $adapter_v"
