#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, then
# runs `deno task test`. Run as root so the end-to-end firewall tests run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
# npm's global bin may not be on PATH yet in a fresh shell.
if ! command -v deno >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  PATH="$(npm prefix -g)/bin:$PATH"
fi
exec deno task test "$@"
