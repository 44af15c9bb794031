#!/usr/bin/env bash
# The local three-region world of the cutover rehearsal, on loopback only:
#   source          PostgreSQL standing in for the on-prem Oracle database (publisher)
#   us-east-1       the target primary, fed from the source by logical replication
#   eu-west-1       streaming standby of us-east-1 with its WAL delayed by a TCP proxy (the network distance)
#   ap-southeast-1  streaming standby of us-east-1 with its WAL delayed by a TCP proxy (the network distance)
#   moto            the AWS side: DynamoDB, SNS->SQS, SSM, ELBv2, CloudWatch, per region
#   router          every AWS call goes through it (tests/env/aws_router.py): a region can be
#                   lost whole, and the state table is replicated between the regions' replicas
# Every server speaks TLS with certificates from a locally generated CA.
#
#   world.sh up | down [--purge] | status | purge
#
# Data lives under <repo>/.rehearsal (git-ignored); .rehearsal/world.env is what tests,
# the rehearsal and the benchmarks read.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/env"
R="$ROOT/.rehearsal"
VENV="$ROOT/.venv"
SUFFIX=${CUTOVER_SUFFIX:-local}
PORT_SOURCE=${CUTOVER_PORT_SOURCE:-54320}
PORT_US_EAST_1=${CUTOVER_PORT_US_EAST_1:-54321}
PORT_EU_WEST_1=${CUTOVER_PORT_EU_WEST_1:-54322}
PORT_AP_SOUTHEAST_1=${CUTOVER_PORT_AP_SOUTHEAST_1:-54323}
MOTO_PORT=${CUTOVER_MOTO_PORT:-55000}
# moto's Step Functions interpreter calls Lambda here (tests/env/aws_router.py), which hands
# the invocation to `cargo lambda watch` running the functions' own binaries.
ROUTER_PORT=${CUTOVER_ROUTER_PORT:-$((MOTO_PORT + 1))}
LAMBDA_PORT=${CUTOVER_LAMBDA_PORT:-$((MOTO_PORT + 2))}
# The profile cargo lambda watch builds the functions with (make bench: release).
LAMBDA_PROFILE=${CUTOVER_LAMBDA_PROFILE:-dev}
DELAY_EU_WEST_1_MS=${CUTOVER_DELAY_EU_WEST_1_MS:-75}
DELAY_AP_SOUTHEAST_1_MS=${CUTOVER_DELAY_AP_SOUTHEAST_1_MS:-220}
SEED_CUSTOMERS=${CUTOVER_SEED_CUSTOMERS:-2000}
NODES=(source us-east-1 eu-west-1 ap-southeast-1)
# Each function connects as its own role (infra/sql/roles.sql), with its own password.
FUNCTIONS=(data-validator lag-probe failover cutover)

log() { printf '[world] %3ss %s\n' "$SECONDS" "$*"; }
die() { printf '[world] error: %s\n' "$*" >&2; exit 1; }

port_of() {
  case "$1" in
    source) echo "$PORT_SOURCE" ;; us-east-1) echo "$PORT_US_EAST_1" ;;
    eu-west-1) echo "$PORT_EU_WEST_1" ;; ap-southeast-1) echo "$PORT_AP_SOUTHEAST_1" ;;
  esac
}
port_var() {
  case "$1" in
    source) echo CUTOVER_PORT_SOURCE ;; us-east-1) echo CUTOVER_PORT_US_EAST_1 ;;
    eu-west-1) echo CUTOVER_PORT_EU_WEST_1 ;; ap-southeast-1) echo CUTOVER_PORT_AP_SOUTHEAST_1 ;;
  esac
}
delay_of() {
  case "$1" in
    eu-west-1) echo "$DELAY_EU_WEST_1_MS" ;; ap-southeast-1) echo "$DELAY_AP_SOUTHEAST_1_MS" ;; *) echo 0 ;;
  esac
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_pg() { runuser -u postgres -- "$@"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- the world's ports, kept out of the kernel's ephemeral range ----------------------------
# The world's fixed ports (54320-54339: servers, delay-proxies, the isolated old primary;
# moto, router, functions) lie inside Linux's ephemeral range (32768-60999). Every AWS call
# goes through the router, which opens a connection to moto per request, so client sockets
# cycle through that range quickly; a client socket that happens to hold, say, 54332 at the
# moment a delay-proxy starts makes it fail with "Address already in use" (seen in make test).
# Reserving the ports (net.ipv4.ip_local_reserved_ports) keeps clients off them; best effort:
# where /proc/sys is read-only, the world starts without it.
reserve_ports() {
  local f=/proc/sys/net/ipv4/ip_local_reserved_ports want current
  want="$PORT_SOURCE-$((PORT_SOURCE + 19)),$MOTO_PORT-$((MOTO_PORT + 9))"
  [ -r "$f" ] || return 0
  current=$(cat "$f")
  case ",$current," in *",$want,"*) return 0 ;; esac
  if echo "${current:+$current,}$want" > "$f" 2>/dev/null; then
    log "ports $want reserved (out of the ephemeral range)"
  else
    log "could not reserve ports $want (read-only /proc/sys); a client socket may take one of them"
  fi
}

# --- what a fresh machine lacks -------------------------------------------------------
ensure_packages() {
  if [ -z "$(pg_bin)" ] || ! command -v openssl >/dev/null; then
    log "installing PostgreSQL and openssl from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null
  fi
  PGBIN=$(pg_bin)
  [ -n "$PGBIN" ] || die "PostgreSQL is not installed and could not be installed"
  id postgres >/dev/null 2>&1 || die "the postgres OS user is missing (the postgresql package creates it)"
}

ensure_venv() {
  if [ ! -x "$VENV/bin/moto_server" ]; then
    log "installing moto into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server,stepfunctions]==5.*' boto3
  fi
  if [ ! -x "$VENV/bin/cargo-lambda" ]; then
    log "installing cargo-lambda into $VENV (it serves the functions to the state machines)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check cargo-lambda ziglang
  fi
}

# --- layout -----------------------------------------------------------------------------
layout() {
  mkdir -p "$R" "$R/secrets" "$R/tls"
  chmod 755 "$R" "$R/tls"
  chmod 700 "$R/secrets"
  local hash
  hash=$(printf '%s' "$ROOT" | md5sum | cut -c1-8)
  SOCK="/tmp/cutover-$hash"
  mkdir -p "$SOCK" && chown postgres "$SOCK" && chmod 755 "$SOCK"
  if [ ! -e "$R/pg" ]; then
    if as_pg test -x "$R"; then
      mkdir -p "$R/pg"
    else
      local elsewhere="/var/tmp/cutover-rehearsal-$hash"
      log "the postgres user cannot reach $R; the clusters live in $elsewhere (linked as .rehearsal/pg)"
      mkdir -p "$elsewhere"
      ln -s "$elsewhere" "$R/pg"
    fi
  fi
  chown postgres "$R/pg/" && chmod 755 "$R/pg/"
}

# --- TLS --------------------------------------------------------------------------------
make_tls() {
  local t="$R/tls"
  [ -f "$t/server.crt" ] && [ -f "$t/other-ca.crt" ] && return 0
  log "tls: generating a local CA, a server certificate (localhost, 127.0.0.1) and an unrelated CA"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cutover rehearsal CA" \
    -keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$t/server.ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 3650 \
    -extfile "$t/server.ext" -out "$t/server.crt" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=some other CA" \
    -keyout "$t/other-ca.key" -out "$t/other-ca.crt" 2>/dev/null
  chmod 644 "$t/ca.crt" "$t/other-ca.crt" "$t/server.crt"
  chmod 600 "$t/ca.key" "$t/other-ca.key" "$t/server.key"
}

secret() {
  local f="$R/secrets/$1"
  [ -f "$f" ] || { openssl rand -hex 16 > "$f"; chmod 600 "$f"; }
  cat "$f"
}

# --- PostgreSQL ---------------------------------------------------------------------------
datadir() { echo "$R/pg/$1"; }
running() { [ -d "$(datadir "$1")" ] && as_pg "$PGBIN/pg_ctl" -D "$(datadir "$1")" status >/dev/null 2>&1; }
psql_on() { local node=$1 db=$2; shift 2; as_pg env PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -h "$SOCK" -p "$(port_of "$node")" -d "$db" -v ON_ERROR_STOP=1 -qAtX "$@"; }

check_port() {
  local node=$1 port
  port=$(port_of "$node")
  if ! running "$node" && port_busy "$port"; then
    die "port $port ($node) is in use by another process; set $(port_var "$node") to another port"
  fi
}

server_conf() {
  local node=$1 dir
  dir=$(datadir "$node")
  install -o postgres -m 600 "$R/tls/server.key" "$dir/server.key"
  install -o postgres -m 644 "$R/tls/server.crt" "$dir/server.crt"
  install -o postgres -m 644 "$R/tls/ca.crt" "$dir/root.crt"
  cat > "$dir/postgresql.auto.conf" <<CONF
# written by tests/env/world.sh
port = $(port_of "$node")
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'root.crt'
password_encryption = 'scram-sha-256'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
shared_buffers = '128MB'
max_connections = 100
logging_collector = on
log_directory = 'log'
log_filename = 'server.log'
log_min_messages = warning
CONF
  cat > "$dir/pg_hba.conf" <<HBA
# written by tests/env/world.sh: TLS or nothing, except the postgres OS user on the socket
local     all          postgres                     peer
hostssl   all          all          127.0.0.1/32    scram-sha-256
hostssl   replication  all          127.0.0.1/32    scram-sha-256
hostnossl all          all          0.0.0.0/0       reject
HBA
  chown postgres "$dir/postgresql.auto.conf" "$dir/pg_hba.conf"
}

start_node() {
  local node=$1 dir
  dir=$(datadir "$node")
  running "$node" && return 0
  check_port "$node"
  if ! as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/startup.log" -w -t 60 start >/dev/null; then
    tail -n 20 "$dir/startup.log" "$dir/log/server.log" 2>/dev/null >&2 || true
    die "$node did not start (logs above)"
  fi
}

init_node() {
  local node=$1 dir
  dir=$(datadir "$node")
  log "$node: initdb"
  as_pg "$PGBIN/initdb" -D "$dir" -U postgres -E UTF8 --no-locale --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  server_conf "$node"
  start_node "$node"
  local admin app repl
  admin=$(secret admin_password); app=$(secret app_password); repl=$(secret replicator_password)
  psql_on "$node" postgres <<SQL
CREATE ROLE rehearsal_admin LOGIN SUPERUSER PASSWORD '$admin';
CREATE ROLE cutover LOGIN PASSWORD '$app';
CREATE ROLE replicator LOGIN REPLICATION PASSWORD '$repl';
CREATE DATABASE app;
SQL
  psql_on "$node" app <<SQL
CREATE SCHEMA IF NOT EXISTS app;
GRANT USAGE, CREATE ON SCHEMA app TO cutover;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cutover;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO replicator;
ALTER DEFAULT PRIVILEGES FOR ROLE rehearsal_admin GRANT SELECT ON TABLES TO replicator;
SQL
}

up_source() {
  if [ -d "$(datadir source)" ]; then start_node source; return 0; fi
  init_node source
  log "source: schema and seed ($SEED_CUSTOMERS customers)"
  psql_on source app -f "$HERE/schema.sql" >/dev/null
  psql_on source app -v customers="$SEED_CUSTOMERS" -f "$HERE/seed.sql" >/dev/null
  psql_on source app <<SQL
GRANT USAGE ON SCHEMA app TO replicator;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO replicator, cutover;
CREATE PUBLICATION cutover_pub FOR ALL TABLES;
SQL
  function_roles source source
}

# The functions' roles, by the script the runbook runs against Aurora, then what is the
# rehearsal's own: its passwords, and the tables its drills create (as rehearsal_admin, in
# schemas of their own) treated as the application's. Idempotent.
function_roles() {
  local node=$1 side=$2 fn role
  log "$node: the functions' database roles (infra/sql/roles.sql, side=$side)"
  psql_on "$node" app -v side="$side" -v schemas=app -f "$ROOT/infra/sql/roles.sql" >/dev/null
  for fn in "${FUNCTIONS[@]}"; do
    role="cutover_${fn//-/_}"
    psql_on "$node" app -c "ALTER ROLE $role PASSWORD '$(secret "role_${fn//-/_}_password")'" >/dev/null
  done
  psql_on "$node" app <<SQL
ALTER DEFAULT PRIVILEGES FOR ROLE rehearsal_admin GRANT USAGE ON SCHEMAS TO cutover_data_validator, cutover_failover, cutover_cutover;
ALTER DEFAULT PRIVILEGES FOR ROLE rehearsal_admin GRANT SELECT ON TABLES TO cutover_data_validator, cutover_cutover;
ALTER DEFAULT PRIVILEGES FOR ROLE rehearsal_admin GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cutover_failover;
ALTER DEFAULT PRIVILEGES FOR ROLE rehearsal_admin GRANT SELECT, UPDATE ON SEQUENCES TO cutover_cutover;
SQL
}

# A world made before the functions had roles of their own gets them (on the writer only).
ensure_function_roles() {
  if [ ! -f "$R/secrets/role_cutover_password" ]; then
    function_roles source source
    if [ "$(psql_on us-east-1 postgres -c 'SELECT pg_is_in_recovery()')" = f ]; then
      function_roles us-east-1 target
    fi
  fi
}

up_primary() {
  if [ -d "$(datadir us-east-1)" ]; then start_node us-east-1; return 0; fi
  init_node us-east-1
  # Before the schema: the source's dump grants to these roles, and the tables it creates
  # get the script's default privileges.
  function_roles us-east-1 target
  log "us-east-1: schema from the source, subscription cutover_sub (logical replication over TLS)"
  as_pg "$PGBIN/pg_dump" -h "$SOCK" -p "$PORT_SOURCE" -d app --schema-only --schema=app --no-publications --no-owner \
    | grep -v '^CREATE SCHEMA app;$' | psql_on us-east-1 app >/dev/null
  local repl
  repl=$(secret replicator_password)
  psql_on us-east-1 app <<SQL
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO cutover;
-- After the cutover's switch the target publishes back to the source (reverse replication).
GRANT USAGE ON SCHEMA app TO replicator;
CREATE SUBSCRIPTION cutover_sub
  CONNECTION 'host=localhost port=$PORT_SOURCE dbname=app user=replicator password=$repl sslmode=verify-full sslrootcert=$R/tls/ca.crt'
  PUBLICATION cutover_pub
  -- The apply worker's default (off) leaves commits to the WAL writer (up to 200 ms),
  -- which would add up to 200 ms of lag to every standby; flush at commit instead.
  WITH (synchronous_commit = 'local');
SQL
  log "us-east-1: waiting for the initial copy"
  local i
  for i in $(seq 1 600); do
    local pending
    pending=$(psql_on us-east-1 app -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")
    if [ "$pending" = 0 ] && [ "$(psql_on us-east-1 app -c 'SELECT count(*) FROM pg_subscription_rel')" -gt 0 ]; then
      log "us-east-1: initial copy done"
      return 0
    fi
    [ $((i % 20)) = 0 ] && log "us-east-1: $pending tables still copying"
    sleep 0.5
  done
  die "the initial copy did not finish within 5 minutes"
}

# --- the network between regions: a delaying TCP proxy per standby -------------------------
# The standby streams WAL from the primary through delay-proxy, which holds the bytes from
# the primary for the region's delay (tests change it in $R/net/<node>.delay_ms while it
# runs). Killing a proxy drops the WAL in flight, as a cut network would.
proxy_port_of() { echo $(( $(port_of "$1") + 10 )); }

proxy_bin() {
  local bin="$ROOT/target/debug/delay-proxy"
  if [ ! -x "$bin" ]; then
    log "building delay-proxy (cargo build -p cutover-rehearsal --bin delay-proxy)" >&2
    (cd "$ROOT" && cargo build -q --locked -p cutover-rehearsal --bin delay-proxy) >&2
  fi
  echo "$bin"
}

start_proxy() {
  local node=$1 upstream=${2:-$PORT_US_EAST_1} pidfile="$R/net/$1.pid" port
  port=$(proxy_port_of "$node")
  mkdir -p "$R/net"
  [ -f "$R/net/$node.delay_ms" ] || echo "$(delay_of "$node")" > "$R/net/$node.delay_ms"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  port_busy "$port" && die "port $port (delay-proxy for $node) is in use by another process"
  nohup "$(proxy_bin)" "$port" "$upstream" "$R/net/$node.delay_ms" > "$R/net/$node.log" 2>&1 &
  echo $! > "$pidfile"
  local i
  for i in $(seq 1 50); do port_busy "$port" && return 0; sleep 0.1; done
  die "delay-proxy for $node did not start (see $R/net/$node.log)"
}

stop_proxies() {
  local f
  for f in "$R"/net/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null && log "delay-proxy $(basename "$f" .pid): stopped" || true
    rm -f "$f"
  done
}

up_standby() {
  local node=$1 dir delay
  dir=$(datadir "$node")
  delay=$(delay_of "$node")
  start_proxy "$node"
  if [ -d "$dir" ]; then start_node "$node"; return 0; fi
  check_port "$node"
  log "$node: pg_basebackup from us-east-1 over TLS; WAL through delay-proxy :$(proxy_port_of "$node") (${delay} ms)"
  local slot=${node//-/_}
  psql_on us-east-1 postgres -c "SELECT pg_create_physical_replication_slot('$slot') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$slot')" >/dev/null
  local repl
  repl=$(secret replicator_password)
  as_pg env PGPASSWORD="$repl" PGSSLMODE=verify-full PGSSLROOTCERT="$R/tls/ca.crt" \
    "$PGBIN/pg_basebackup" -h localhost -p "$PORT_US_EAST_1" -U replicator -D "$dir" -X stream -S "$slot" --checkpoint=fast >/dev/null
  server_conf "$node"
  cat >> "$dir/postgresql.auto.conf" <<CONF
primary_conninfo = 'host=localhost port=$(proxy_port_of "$node") user=replicator password=$repl sslmode=verify-full sslrootcert=$R/tls/ca.crt application_name=$node'
primary_slot_name = '$slot'
CONF
  as_pg touch "$dir/standby.signal"
  start_node "$node"
}

# --- moto -----------------------------------------------------------------------------------
moto_up() { curl -fs "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; }

start_moto() {
  if moto_up && [ -f "$R/moto.pid" ] && kill -0 "$(cat "$R/moto.pid")" 2>/dev/null && [ -f "$R/aws.env" ]; then
    return 0
  fi
  if port_busy "$MOTO_PORT"; then
    die "port $MOTO_PORT (moto) is in use by another process; set CUTOVER_MOTO_PORT to another port"
  fi
  log "moto: starting on 127.0.0.1:$MOTO_PORT (state machines executed; their Lambda calls via 127.0.0.1:$ROUTER_PORT)"
  # MOTO_PORT is where moto's interpreter sends its AWS calls: the router, not moto itself.
  MOTO_PORT=$ROUTER_PORT nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "$R/moto.log" 2>&1 &
  echo $! > "$R/moto.pid"
  local i
  for i in $(seq 1 100); do moto_up && break; sleep 0.2; done
  moto_up || { tail -n 20 "$R/moto.log" >&2; die "moto did not start"; }
  curl -fsS -X POST "http://127.0.0.1:$MOTO_PORT/moto-api/config" \
    -H 'Content-Type: application/json' -d '{"stepfunctions": {"execute_state_machine": true}}' >/dev/null \
    || die "moto refused the config that makes it execute state machines"
  log "moto: seeding DynamoDB, SNS->SQS, SSM, ELBv2 and CloudWatch in three regions"
  "$VENV/bin/python" "$HERE/seed_aws.py" \
    --endpoint "http://127.0.0.1:$MOTO_PORT" --suffix "$SUFFIX" \
    --ports "$PORT_US_EAST_1,$PORT_EU_WEST_1,$PORT_AP_SOUTHEAST_1,$PORT_SOURCE" \
    --app-password-file "$R/secrets/app_password" --ca "$R/tls/ca.crt" \
    --role-password-dir "$R/secrets" \
    --replicator-password-file "$R/secrets/replicator_password" > "$R/aws.env.tmp"
  mv "$R/aws.env.tmp" "$R/aws.env"
}

# --- the state machines' Lambda: router + cargo lambda watch -----------------------------------
router_up() { curl -fs "http://127.0.0.1:$ROUTER_PORT/_router/health" >/dev/null 2>&1; }
lambda_up() { (exec 3<>/dev/tcp/127.0.0.1/"$LAMBDA_PORT") 2>/dev/null; }

start_router() {
  router_up && return 0
  port_busy "$ROUTER_PORT" && die "port $ROUTER_PORT (the AWS router) is in use; set CUTOVER_ROUTER_PORT"
  nohup "$VENV/bin/python" "$HERE/aws_router.py" --port "$ROUTER_PORT" --moto-port "$MOTO_PORT" \
    --lambda-port "$LAMBDA_PORT" --global-table "migration-state-$SUFFIX" > "$R/router.log" 2>&1 &
  echo $! > "$R/router.pid"
  local i
  for i in $(seq 1 50); do router_up && break; sleep 0.1; done
  router_up || { cat "$R/router.log" >&2; die "the AWS router did not start"; }
  log "router: 127.0.0.1:$ROUTER_PORT (every AWS call: per-region kill switch, the state table replicated as a global table; Lambda Invoke -> 127.0.0.1:$LAMBDA_PORT, the rest -> moto)"
}

# The functions as the state machines run them: the world's environment plus the rehearsal's
# function settings (the same the in-process stages use: tests/src/cutover_stage.rs `config`).
write_lambda_env() {
  {
    sed -n "s/^export \([A-Za-z0-9_]*\)=\(.*\)$/\1='\2'/p" "$R/world.env"
    echo "CUTOVER_VALIDATION_SCHEMAS=app"
    # Segments of 20,000 rows: the rehearsal's larger tables fan out over several.
    echo "CUTOVER_VALIDATION_SEGMENT_ROWS=20000"
    echo "CUTOVER_STABLE_WATCH_MS=2000"
    echo "CUTOVER_MAX_LAG_MS=3000"
    echo "CUTOVER_LAG_WINDOW_MS=4000"
    echo "RUST_LOG=warn"
  } > "$R/lambda.env"
}

start_lambdas() {
  if lambda_up && [ -f "$R/lambda.pid" ] && kill -0 "$(cat "$R/lambda.pid")" 2>/dev/null; then return 0; fi
  port_busy "$LAMBDA_PORT" && die "port $LAMBDA_PORT (cargo lambda watch) is in use; set CUTOVER_LAMBDA_PORT"
  write_lambda_env
  # Seen here a few times: the emulator logs "terminating lambda scheduler" a moment after it
  # started, from whatever shell started it. It is started again (three attempts) until it
  # stays up for two seconds.
  local attempt i
  for attempt in 1 2 3; do
    # Its own process group: the functions it starts are stopped with it.
    (cd "$ROOT" && exec env PATH="$VENV/bin:$PATH" setsid nohup cargo lambda watch --ignore-changes --timeout 900 --profile "$LAMBDA_PROFILE" \
      --env-file "$R/lambda.env" -A 127.0.0.1 -P "$LAMBDA_PORT") >> "$R/lambda-watch.log" 2>&1 < /dev/null &
    echo $! > "$R/lambda.pid"
    for i in $(seq 1 150); do lambda_up && break; sleep 0.2; done
    sleep 2
    if lambda_up && kill -0 "$(cat "$R/lambda.pid")" 2>/dev/null; then
      log "functions: cargo lambda watch on 127.0.0.1:$LAMBDA_PORT (built on first invocation)"
      return 0
    fi
    kill -- "-$(cat "$R/lambda.pid")" 2>/dev/null || true
    for i in $(seq 1 50); do port_busy "$LAMBDA_PORT" || break; sleep 0.1; done
    log "functions: cargo lambda watch stopped right after it started (attempt $attempt of 3)"
  done
  tail -n 20 "$R/lambda-watch.log" >&2
  die "cargo lambda watch did not start"
}

stop_lambdas() {
  if [ -f "$R/lambda.pid" ]; then
    kill -- "-$(cat "$R/lambda.pid")" 2>/dev/null && log "functions: stopped" || true
    rm -f "$R/lambda.pid"
  fi
  if [ -f "$R/router.pid" ]; then
    kill "$(cat "$R/router.pid")" 2>/dev/null && log "router: stopped" || true
    rm -f "$R/router.pid"
  fi
}

write_env() {
  cat > "$R/world.env" <<ENV
# written by tests/env/world.sh up — the local world, as tests and the rehearsal see it
export CUTOVER_SUFFIX=$SUFFIX
# Every AWS call goes through the router (tests/env/aws_router.py): it is where a region can be
# lost whole, and where the state table is replicated between the regions as a global table.
export AWS_ENDPOINT_URL=http://127.0.0.1:$ROUTER_PORT
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export CUTOVER_STATE_TABLE=migration-state-$SUFFIX
export CUTOVER_PRIMARY_REGION=us-east-1
export CUTOVER_REGIONS=us-east-1,eu-west-1,ap-southeast-1
export CUTOVER_DB_CA_FILE=$R/tls/ca.crt
export CUTOVER_TLS_OTHER_CA=$R/tls/other-ca.crt
export CUTOVER_PORT_SOURCE=$PORT_SOURCE
export CUTOVER_PORT_US_EAST_1=$PORT_US_EAST_1
export CUTOVER_PORT_EU_WEST_1=$PORT_EU_WEST_1
export CUTOVER_PORT_AP_SOUTHEAST_1=$PORT_AP_SOUTHEAST_1
export CUTOVER_MOTO_PORT=$MOTO_PORT
export CUTOVER_ROUTER_PORT=$ROUTER_PORT
export CUTOVER_LAMBDA_PORT=$LAMBDA_PORT
export CUTOVER_LAMBDA_PROFILE=$LAMBDA_PROFILE
export CUTOVER_DELAY_EU_WEST_1_MS=$DELAY_EU_WEST_1_MS
export CUTOVER_DELAY_AP_SOUTHEAST_1_MS=$DELAY_AP_SOUTHEAST_1_MS
export CUTOVER_SEED_CUSTOMERS=$SEED_CUSTOMERS
export CUTOVER_REHEARSAL_ADMIN_USER=rehearsal_admin
export CUTOVER_REHEARSAL_ADMIN_PASSWORD_FILE=$R/secrets/admin_password
export CUTOVER_PG_BIN=$PGBIN
export CUTOVER_PG_SOCKET_DIR=$SOCK
export CUTOVER_PG_DATA=$R/pg
export CUTOVER_NET_DIR=$R/net
export CUTOVER_PROXY_PORT_EU_WEST_1=$(proxy_port_of eu-west-1)
export CUTOVER_PROXY_PORT_AP_SOUTHEAST_1=$(proxy_port_of ap-southeast-1)
ENV
  cat "$R/aws.env" >> "$R/world.env"
}

summary() {
  printf '\n%-16s %-34s %-6s %-8s %s\n' "node" "role" "port" "TLS" "network delay (WAL via delay-proxy)"
  local node role tls
  for node in "${NODES[@]}"; do
    case "$node" in
      source) role="source (on-prem stand-in)" ;; us-east-1) role="primary, logical subscriber" ;;
      *) role="streaming standby of us-east-1" ;;
    esac
    tls=$(grep -q "^ssl = on" "$(datadir "$node")/postgresql.auto.conf" 2>/dev/null && echo on || echo off)
    printf '%-16s %-34s %-6s %-8s %s\n' "$node" "$role" "$(port_of "$node")" "$tls" \
      "$( [ "$(delay_of "$node")" = 0 ] && echo - || echo "$(delay_of "$node") ms")"
  done
  printf '%-16s %-34s %-6s\n' "moto" "AWS (DynamoDB, SNS, SSM, ELBv2, SFN...)" "$MOTO_PORT"
  printf '%-16s %-34s %-6s\n' "router" "AWS endpoint: regions, global table" "$ROUTER_PORT"
  printf '%-16s %-34s %-6s\n' "functions" "cargo lambda watch (the binaries)" "$LAMBDA_PORT"
  printf '\nenvironment: %s\n' "$R/world.env"
}

cmd_up() {
  local started=$SECONDS
  reserve_ports
  ensure_packages
  ensure_venv
  layout
  make_tls
  up_source
  up_primary
  up_standby eu-west-1
  up_standby ap-southeast-1
  ensure_function_roles
  start_moto
  write_env
  start_router
  start_lambdas
  log "up in $((SECONDS - started)) s"
  summary
}

cmd_down() {
  PGBIN=$(pg_bin)
  local node
  if [ -n "$PGBIN" ] && [ -d "$R/pg" ]; then
    for node in ap-southeast-1 eu-west-1 us-east-1 source; do
      if running "$node"; then
        log "$node: stopping"
        as_pg "$PGBIN/pg_ctl" -D "$(datadir "$node")" -m fast -w stop >/dev/null || true
      fi
    done
  fi
  if [ -f "$R/moto.pid" ]; then
    kill "$(cat "$R/moto.pid")" 2>/dev/null && log "moto: stopped" || true
    rm -f "$R/moto.pid"
  fi
  stop_proxies
  stop_lambdas
  rm -f "$R/aws.env"
  if [ "${1:-}" = "--purge" ]; then
    local target
    target=$(readlink -f "$R/pg" 2>/dev/null || true)
    [ -n "$target" ] && [ "$target" != "$R/pg" ] && rm -rf "$target"
    rm -rf "$R"
    log "purged"
  fi
}

cmd_status() {
  PGBIN=$(pg_bin)
  [ -n "$PGBIN" ] && [ -d "$R/pg" ] || { echo "the world is down (not created)"; return 1; }
  layout >/dev/null
  local node ok=0
  for node in "${NODES[@]}"; do
    if running "$node"; then echo "$node: running on $(port_of "$node")"; else echo "$node: stopped"; ok=1; fi
  done
  if moto_up; then echo "moto: running on $MOTO_PORT"; else echo "moto: stopped"; ok=1; fi
  if router_up; then echo "router: running on $ROUTER_PORT"; else echo "router: stopped"; ok=1; fi
  if lambda_up; then echo "functions: cargo lambda watch on $LAMBDA_PORT"; else echo "functions: stopped"; ok=1; fi
  if [ "$ok" = 0 ]; then
    echo "replication (pg_stat_replication on us-east-1):"
    psql_on us-east-1 postgres -F ' ' -c "SELECT application_name, state, coalesce(replay_lag::text, '-') FROM pg_stat_replication ORDER BY 1" | sed 's/^/  /'
    echo "subscription (us-east-1):"
    psql_on us-east-1 app -F ' ' -c "SELECT subname, CASE WHEN subenabled THEN 'enabled' ELSE 'disabled' END FROM pg_subscription" | sed 's/^/  /'
  fi
  return "$ok"
}

# Rebuilds <node> from scratch as a streaming standby of <primary> (after a failover drill
# moved the primary), its WAL through its delay-proxy as before.
cmd_rebuild_standby() {
  local node=$1 primary=$2 dir slot repl
  PGBIN=$(pg_bin)
  layout >/dev/null
  dir=$(datadir "$node")
  if running "$node"; then as_pg "$PGBIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null || true; fi
  # A killed server leaves its processes' pid file; make sure nothing of it is left running.
  if [ -f "$dir/postmaster.pid" ]; then kill -9 "$(head -1 "$dir/postmaster.pid")" 2>/dev/null || true; fi
  rm -rf "$dir"
  # A killed postmaster's backends keep its listening socket until they notice it is gone:
  # wait for the port, or the new server cannot bind it.
  local i
  for i in $(seq 1 100); do port_busy "$(port_of "$node")" || break; sleep 0.1; done
  if [ -f "$R/net/$node.pid" ]; then kill "$(cat "$R/net/$node.pid")" 2>/dev/null || true; rm -f "$R/net/$node.pid"; fi
  # The old delay-proxy exits a moment after its signal: wait for its port too.
  for i in $(seq 1 100); do port_busy "$(proxy_port_of "$node")" || break; sleep 0.1; done
  start_proxy "$node" "$(port_of "$primary")"
  slot=${node//-/_}
  psql_on "$primary" postgres -c "SELECT pg_create_physical_replication_slot('$slot') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$slot')" >/dev/null
  repl=$(secret replicator_password)
  log "$node: rebuilding as a standby of $primary (pg_basebackup over TLS)"
  as_pg env PGPASSWORD="$repl" PGSSLMODE=verify-full PGSSLROOTCERT="$R/tls/ca.crt" \
    "$PGBIN/pg_basebackup" -h localhost -p "$(port_of "$primary")" -U replicator -D "$dir" -X stream -S "$slot" --checkpoint=fast >/dev/null
  server_conf "$node"
  cat >> "$dir/postgresql.auto.conf" <<CONF
primary_conninfo = 'host=localhost port=$(proxy_port_of "$node") user=replicator password=$repl sslmode=verify-full sslrootcert=$R/tls/ca.crt application_name=$node'
primary_slot_name = '$slot'
CONF
  as_pg touch "$dir/standby.signal"
  start_node "$node"
}

case "${1:-}" in
  rebuild-standby) shift; [ $# = 2 ] || { echo "usage: $0 rebuild-standby <node> <primary-node>" >&2; exit 2; }; cmd_rebuild_standby "$1" "$2" ;;
  up) cmd_up ;;
  down) shift; cmd_down "${1:-}" ;;
  purge) cmd_down --purge ;;
  status) cmd_status ;;
  *) echo "usage: $0 up | down [--purge] | status | purge | rebuild-standby <node> <primary>" >&2; exit 2 ;;
esac
