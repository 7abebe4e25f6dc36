#!/usr/bin/env bash
# The live demo: installs what is missing (scripts/setup.sh), then runs
# openme for real in two throwaway network namespaces and narrates it:
# port 22 closed, knock, port 22 open, the session and its rule, port 22
# closed again, a replayed packet ignored, a clean shutdown. The host's own
# firewall is never touched; everything is removed at the end, on failure and
# on Ctrl-C.
#
# Usage: sudo bash scripts/demo.sh [--backend nft|iptables]
set -euo pipefail

usage="Usage: sudo bash scripts/demo.sh [--backend nft|iptables]"

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    echo "$usage"
    echo "Runs openme live in two network namespaces (needs root); the host's firewall is not touched."
    exit 0
  fi
done

if [ "$(id -u)" != "0" ]; then
  echo "demo: must run as root: it creates network namespaces and firewall rules inside them (the host's own firewall is not touched)." >&2
  echo "$usage" >&2
  exit 1
fi

here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
# The demo does not need shellcheck; setup installs only what is missing.
OPENME_SETUP_SHELLCHECK=0 bash scripts/setup.sh
# npm's global bin may not be on PATH yet in a fresh shell.
if ! command -v deno >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  PATH="$(npm prefix -g)/bin:$PATH"
fi
exec deno run --allow-all scripts/demo.ts "$@"
