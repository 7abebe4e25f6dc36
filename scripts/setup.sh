#!/usr/bin/env bash
# Installs what openme's tests and demo need when it is missing: Deno 2.9.6
# (from npm), and as root nftables, iptables, iproute2 and shellcheck,
# prometheus (its promtool checks the metrics file), and for the packages and
# the manual page rpm, lintian, groff, man-db and binutils (apt).
# Safe to run again: it installs only what is missing.
set -euo pipefail

DENO_VERSION="2.9.6"

say() { printf '%s\n' "$*" >&2; }

if ! command -v deno >/dev/null 2>&1 || ! deno --version 2>/dev/null | grep -q "^deno ${DENO_VERSION} "; then
  if command -v npm >/dev/null 2>&1; then
    say "setup: installing Deno ${DENO_VERSION} from npm"
    npm install -g "deno@${DENO_VERSION}" >/dev/null
  elif ! command -v deno >/dev/null 2>&1; then
    say "setup: Deno is missing and npm is not available; install Deno ${DENO_VERSION} (https://deno.com) and run this again"
    exit 1
  fi
fi

missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${OPENME_SETUP_SHELLCHECK:-1}" = "1" ]; then
  command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
fi
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v rpmbuild >/dev/null 2>&1 || missing+=(rpm)
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v groff >/dev/null 2>&1 || missing+=(groff-base)
command -v man >/dev/null 2>&1 || missing+=(man-db)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "setup: installing ${missing[*]} with apt"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "setup: missing ${missing[*]}; tests that need them will skip (run as root on Debian/Ubuntu to install them)"
  fi
fi
