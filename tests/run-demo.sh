#!/usr/bin/env bash
# `make demo`: the local cutover rehearsal, with the world brought up and down.
# KEEP_WORLD=1 leaves the world running afterwards for a look around.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n[demo] %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

step "building the rehearsal"
cargo build --locked -p cutover-rehearsal --bin rehearsal

was_up=no
if bash tests/env/world.sh status >/dev/null 2>&1; then was_up=yes; fi
cleanup() {
  if [ "$was_up" = no ] && [ "${KEEP_WORLD:-0}" != 1 ]; then
    step "taking the local world down"
    bash tests/env/world.sh down || true
  fi
}
trap cleanup EXIT

step "bringing the local world up"
bash tests/env/world.sh up

step "running the rehearsal"
./target/debug/rehearsal
step "done"
