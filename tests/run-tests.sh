#!/usr/bin/env bash
# `make test`: build once, bring the local world up, run every test, take the world down.
# A world that was already up before is left up.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n[test] %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

if ! command -v chromium >/dev/null; then
  step "installing Chromium from Debian's packages (the report test renders the HTML report headless)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

step "building the workspace and its tests"
cargo test --workspace --no-run --locked
cargo build --workspace --bins --locked
make --no-print-directory deps-lambda

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
# A world that is not running may hold what an earlier run left (e.g. KEEP_WORLD=1 after the
# failover drills): start from a fresh one.
if [ "$was_up" = no ]; then bash tests/env/world.sh down --purge >/dev/null 2>&1 || true; fi
bash tests/env/world.sh up

status=0
step "Rust tests (unit, moto, real PostgreSQL)"
cargo test --workspace --locked --no-fail-fast -- --test-threads=4 || status=1

step "every sample event through cargo lambda (watch + invoke)"
bash tests/lambda-invoke.sh || status=1

step "infra tests"
make --no-print-directory infra-test || status=1

if [ "$status" -ne 0 ]; then
  step "FAILED"
  exit 1
fi
step "all tests passed"
