#!/usr/bin/env bash
# Every sample event of every function, through the real Lambda runtime:
# `cargo lambda watch` (the Lambda runtime API emulator, running the functions'
# own binaries) and `cargo lambda invoke`, against the local world.
# Valid samples must succeed; every sample under invalid/ must fail with
# errorType InvalidInput. Needs the world up (make env-up / make test).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PORT=${CUTOVER_INVOKE_PORT:-9009}
export PATH="$VENV/bin:$PATH"
command -v cargo-lambda >/dev/null || make --no-print-directory deps-lambda >/dev/null

R=$ROOT/.rehearsal
[ -f "$R/world.env" ] || { echo "[invoke] the local world is not up (make env-up)" >&2; exit 1; }
# Outside .rehearsal: the world is purged and rebuilt half-way (after the failover samples).
WORK=$ROOT/target/lambda-invoke
mkdir -p "$WORK"
ENV_FILE=$WORK/lambda.env
write_env() {
  # world.env is shell; the emulator wants KEY=VALUE lines. Function settings for the rehearsal:
  {
    sed -n "s/^export \([A-Za-z0-9_]*\)=\(.*\)$/\1='\2'/p" "$R/world.env"
    echo "CUTOVER_VALIDATION_SCHEMAS=app"
    echo "CUTOVER_LAG_WINDOW_MS=4000"
    echo "RUST_LOG=warn"
  } > "$ENV_FILE"
}
write_env

# Stateful samples need an order: the run id the later ones name is created first.
order_for() {
  case "$1" in
    data-validator) echo "validate-resume validate-segment merge merge-failed status plan validate-tables validate scheduled" ;;
    # Every start needs 100 % blue; "reset" puts the listeners back between the ones that end green.
    traffic-shifter) echo "reset status start-canary tick scheduled-tick pause resume alarm-ok-eventbridge \
      alarm-not-watched alarm-eventbridge start-explicit abort start-one-region alarm-sns start-linear promote reconcile \
      reset start-with-image reset start-all-at-once reset" ;;
    # The switchover is real (postgres-streaming: fence, promote, re-point); the triggers after it
    # meet the cooldown. reconcile / replay-script / replay-dry-run after it answer that a switchover lost
    # nothing (no script to replay). The world is rebuilt afterwards, since its primary has moved.
    failover) echo "status sync-endpoints dry-run dry-run-forced-target alarm-not-watched alarm-ok-eventbridge \
      switchover follow-new-primary reconcile replay-script replay-dry-run failover failover-forced-target alarm-eventbridge alarm-sns status rebuild-world" ;;
    *) (cd "events/$1" && ls *.json | sed 's/\.json$//') ;;
  esac
}

LOG=$WORK/lambda-watch.log
WATCH=
start_watch() {
  cargo lambda watch --ignore-changes --timeout 120 --env-file "$ENV_FILE" -A 127.0.0.1 -P "$PORT" >>"$LOG" 2>&1 &
  WATCH=$!
  for _ in $(seq 1 100); do
    kill -0 $WATCH 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
}
stop_watch() {
  [ -n "$WATCH" ] || return 0
  kill $WATCH 2>/dev/null || true
  wait $WATCH 2>/dev/null || true
  WATCH=
  # The functions the emulator started run on in its process group until it stops them.
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null || return 0; sleep 0.1; done
}
: > "$LOG"
trap stop_watch EXIT
start_watch

pass=0; fail=0
invoke() { # function file expect(ok|InvalidInput)
  local fn=$1 file=$2 expect=$3 out rc started ms
  started=$(date +%s%N)
  set +e
  out=$(cargo lambda invoke "$fn" -A 127.0.0.1 -P "$PORT" --data-file "$file" 2>&1)
  rc=$?
  set -e
  ms=$(( ($(date +%s%N) - started) / 1000000 ))
  local verdict=FAIL
  if [ "$expect" = ok ] && [ $rc -eq 0 ]; then verdict=ok; fi
  if [ "$expect" = InvalidInput ] && [ $rc -ne 0 ] && grep -q 'InvalidInput' <<<"$out"; then verdict=ok; fi
  if [ $verdict = ok ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
  printf '[invoke] %-4s %-16s %-48s %6s ms  %s\n' "$verdict" "$fn" "${file#events/}" "$ms" \
    "$(tr -d '\n' <<<"$out" | cut -c1-110)"
}

# failover last: its real switchover moves the primary and the world is rebuilt after it
# (which re-seeds moto with new ARNs that the running emulator's environment does not have).
for fn in $(ls events | grep -v '^failover$'; [ -d events/failover ] && echo failover); do
  [ -d "events/$fn" ] && [ -d "functions/$fn" ] || continue
  for name in $(order_for "$fn"); do
    if [ "$name" = reset ]; then
      (set -a; . "$R/world.env"; "$VENV/bin/python" tests/env/reset_traffic.py)
      continue
    fi
    if [ "$name" = follow-new-primary ]; then
      # After the switchover to eu-west-1, ap-southeast-1 is re-pointed at it; a standby that
      # had replayed past the new timeline's fork cannot follow (seen under load), and the
      # next samples need it streaming: rebuild it from eu-west-1 when it does not stream.
      if ! (set -a; . "$R/world.env"; "$VENV/bin/python" - <<'PY'
import os, subprocess, sys, time
for _ in range(50):
    out = subprocess.run(["runuser", "-u", "postgres", "--", os.environ["CUTOVER_PG_BIN"] + "/psql",
        "-h", os.environ["CUTOVER_PG_SOCKET_DIR"], "-p", os.environ["CUTOVER_PORT_EU_WEST_1"], "-d", "postgres", "-Atc",
        "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'ap-southeast-1' AND state = 'streaming'"],
        capture_output=True, text=True)
    if out.stdout.strip() == "1":
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
PY
      ); then
        echo "[invoke] ap-southeast-1 does not stream from eu-west-1 after the switchover: rebuilding it"
        bash tests/env/world.sh rebuild-standby ap-southeast-1 eu-west-1 >/dev/null
      fi
      continue
    fi
    if [ "$name" = rebuild-world ]; then
      echo "[invoke] rebuilding the world (the failover samples moved its primary)"
      bash tests/env/world.sh down --purge >/dev/null && bash tests/env/world.sh up >/dev/null
      # A fresh emulator with the new world's settings (moto was re-seeded: new ARNs), so
      # no function runs on with connections and settings of the world that is gone.
      stop_watch
      write_env
      start_watch
      continue
    fi
    invoke "$fn" "events/$fn/$name.json" ok
  done
  # Every sample must be in the order list (or be invoked by the default order).
  for file in events/"$fn"/*.json; do
    grep -qw "$(basename "$file" .json)" <<<"$(order_for "$fn")" || { echo "[invoke] FAIL $file is not invoked"; fail=$((fail + 1)); }
  done
  if [ -d "events/$fn/invalid" ]; then
    for file in events/"$fn"/invalid/*.json; do invoke "$fn" "$file" InvalidInput; done
  fi
done
echo "[invoke] $pass passed, $fail failed (cargo lambda watch log: $LOG)"
[ "$fail" -eq 0 ]
