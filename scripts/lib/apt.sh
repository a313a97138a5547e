# shellcheck shell=bash
# apt.sh - part of janus-cloud: installing Debian packages from the project's scripts.
# Sourced by test.sh and client-tests.sh, which define log() and die().
#
# apt_install PKG...  installs the packages as root (or with sudo), retrying apt-get,
# with a temporary /usr/sbin/policy-rc.d (exit 101) while it runs: the postinst scripts of
# janus, redis-server and chromium's dependencies would otherwise start system services
# (a system Janus on 8188, Redis on 6379, cups, ...). The policy file is removed again,
# also when the caller exits early (apt_cleanup, to call from the caller's EXIT trap).

APT_SUDO=()
APT_MADE_POLICY=0

apt_cleanup() {
  if [[ $APT_MADE_POLICY -eq 1 ]]; then
    log "+ removing the temporary /usr/sbin/policy-rc.d"
    "${APT_SUDO[@]}" rm -f /usr/sbin/policy-rc.d || true
    APT_MADE_POLICY=0
  fi
}

apt_install() {
  local pkgs=("$@") say=""
  command -v apt-get >/dev/null 2>&1 || die "apt-get not available: install ${pkgs[*]} by hand"
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install ${pkgs[*]}"
    APT_SUDO=(sudo)
    say="sudo "
  fi
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    log "+ creating a temporary /usr/sbin/policy-rc.d (exit 101) so no package starts a service"
    APT_MADE_POLICY=1
    printf '#!/bin/sh\nexit 101\n' | "${APT_SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${APT_SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
  fi
  local try ok=0
  for try in 1 2 3; do
    log "+ ${say}apt-get update (try $try)"
    if "${APT_SUDO[@]}" apt-get update -q; then ok=1; break; fi
    sleep $((try * 5))
  done
  [[ $ok -eq 1 ]] || die "apt-get update failed"
  ok=0
  for try in 1 2; do
    log "+ ${say}apt-get install -y ${pkgs[*]} (try $try)"
    if "${APT_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}"; then
      ok=1
      break
    fi
    sleep 5
  done
  apt_cleanup
  [[ $ok -eq 1 ]] || die "apt-get install ${pkgs[*]} failed"
}
