#!/usr/bin/env bash
# `make bench`: the benchmarks of every crate that has them, side by side in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
benches=$(ls functions/*/benches/*.rs tests/benches/*.rs 2>/dev/null || true)
if [ -z "$benches" ]; then
  echo "[bench] no benchmarks yet: they arrive with the function crates (data-validator, lag-probe, traffic-shifter)"
  exit 0
fi
cargo bench --workspace --locked
