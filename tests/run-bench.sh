#!/usr/bin/env bash
# `make bench`: every benchmark, side by side in one run, against the local world
# (brought up and taken down here unless it was already up). BENCH_ROWS sets the
# validator's table size (1,000,000 by default; 10,000,000 for the full figure).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n[bench] %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

step "building the benchmarks (release)"
cargo bench --workspace --locked --no-run

was_up=no
if bash tests/env/world.sh status >/dev/null 2>&1; then was_up=yes; fi
cleanup() {
  if [ "$was_up" = no ]; then
    step "taking the local world down"
    bash tests/env/world.sh down || true
  fi
}
trap cleanup EXIT
step "bringing the local world up"
# The functions the state machines invoke, built for speed (a world already up keeps its own).
CUTOVER_LAMBDA_PROFILE=${CUTOVER_LAMBDA_PROFILE:-release} bash tests/env/world.sh up

step "running the benchmarks"
cargo bench --workspace --locked
