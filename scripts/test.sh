#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, then
# runs `deno task test`. Run as root so the end-to-end firewall tests run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
exec deno task test "$@"
