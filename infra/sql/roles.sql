-- Each function's own database role, granted what its code runs and nothing more:
-- no function connects as the master user.
--
--   cutover_data_validator  reads the compared tables (SELECT only)
--   cutover_lag_probe       reads and writes its heartbeat row; pg_monitor for the engine's lag
--   cutover_failover        reconciles and replays lost writes (DML on the application's tables);
--                           on self-managed PostgreSQL also what the postgres-streaming driver's
--                           fence, promotion and re-pointing run
--   cutover_cutover         the cutover's freeze, drain, sequences and subscriptions
--
-- Run by the operator as the administrator (Aurora: the master user; self-managed: a
-- superuser), in the application's database, on the target's writer (side=target, the
-- default) and on a PostgreSQL source (side=source: the validator and the cutover read and
-- drive it; an Oracle source has its own grants, see functions/cutover/src/oracle.rs):
--
--   psql "host=<writer> dbname=<database> user=<master> sslmode=verify-full" \
--        -v side=target -v schemas=app -f infra/sql/roles.sql
--
-- then give each role the password of its SSM SecureString (never written here):
--
--   ALTER ROLE cutover_lag_probe PASSWORD '<value of /migration/db/<suffix>/passwords/lag-probe>';
--
-- A role without a password cannot log in. Idempotent: run it again after tables are
-- added (DMS's full load, a release's DDL) — grants on existing tables are not inherited
-- by new ones except through the default privileges set below for the running role.
-- The local rehearsal runs this same file (tests/env/world.sh).

\set ON_ERROR_STOP on
\if :{?side}
\else
  \set side target
\endif
\if :{?schemas}
\else
  \set schemas app
\endif
-- DO blocks cannot read psql variables; hand them over as session settings.
SET cutover.side = :'side';
SET cutover.schemas = :'schemas';
SELECT :'side' = 'target' AS on_target \gset

DO $roles$
DECLARE
  side text := current_setting('cutover.side');
  role text;
BEGIN
  IF side NOT IN ('target', 'source') THEN
    RAISE EXCEPTION 'side must be target or source, not %', side;
  END IF;
  FOREACH role IN ARRAY ARRAY['cutover_data_validator', 'cutover_lag_probe', 'cutover_failover', 'cutover_cutover'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role) THEN
      EXECUTE format('CREATE ROLE %I LOGIN', role);
    END IF;
  END LOOP;
END
$roles$;

-- The application's schemas: what the validator compares, the failover reconciles and the
-- cutover counts and moves the sequences of.
DO $app$
DECLARE
  s text;
BEGIN
  FOREACH s IN ARRAY string_to_array(current_setting('cutover.schemas'), ',') LOOP
    s := btrim(s);
    IF to_regnamespace(quote_ident(s)) IS NULL THEN
      RAISE EXCEPTION 'schema % does not exist here (schemas=%)', s, current_setting('cutover.schemas');
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO cutover_data_validator, cutover_failover, cutover_cutover', s);
    -- The validator only reads: whatever it held before is taken back first.
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA %I FROM cutover_data_validator', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO cutover_data_validator', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO cutover_data_validator', s);
    -- The failover reads the old and the new primary and replays the lost writes (guarded
    -- INSERT / UPDATE / DELETE, functions/failover/src/reconcile.rs).
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO cutover_failover', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cutover_failover', s);
    -- The cutover counts rows (the counts gate), reads every sequence and sets the
    -- target's past the source's (pg_sequences shows last_value only to SELECT / USAGE).
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO cutover_cutover', s);
    EXECUTE format('GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO cutover_cutover', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO cutover_cutover', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, UPDATE ON SEQUENCES TO cutover_cutover', s);
  END LOOP;
END
$app$;

-- lag-probe: its heartbeat table (CUTOVER_LAG_HEARTBEAT_TABLE, default cutover.heartbeat)
-- on the target only; the probe cannot create it itself, by design.
\if :on_target
CREATE SCHEMA IF NOT EXISTS cutover;
CREATE TABLE IF NOT EXISTS cutover.heartbeat (
  probe      text PRIMARY KEY,
  seq        bigint NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now()
);
GRANT USAGE ON SCHEMA cutover TO cutover_lag_probe;
REVOKE ALL ON cutover.heartbeat FROM cutover_lag_probe;
GRANT SELECT, INSERT, UPDATE ON cutover.heartbeat TO cutover_lag_probe;
-- The engine's own lag: pg_stat_replication.replay_lag is NULL without it (on Aurora,
-- aurora_global_db_status()). Read-only statistics; no table of the application.
GRANT pg_monitor TO cutover_lag_probe;
\endif

-- What needs more than grants on objects.
DO $server$
DECLARE
  superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
  aurora boolean := EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_superuser');
BEGIN
  -- The cutover sees and ends the application's sessions at the freeze (pg_stat_activity's
  -- backend_start is hidden from others without pg_read_all_stats).
  GRANT pg_signal_backend, pg_read_all_stats TO cutover_cutover;
  IF superuser THEN
    -- cutover: ALTER ROLE <application> IN DATABASE … SET default_transaction_read_only
    -- (CREATEROLE), pg_replication_slot_advance on the forward slot (REPLICATION), and
    -- CREATE / ALTER … ENABLE|DISABLE / DROP SUBSCRIPTION and CREATE PUBLICATION: up to
    -- PostgreSQL 15 a subscription can only be created and owned by a superuser, and the
    -- forward one is (16 adds pg_create_subscription, still not enough to alter or drop a
    -- subscription another role owns). So on self-managed PostgreSQL this role is a
    -- superuser — still not the master user: its own password, its own audit trail.
    ALTER ROLE cutover_cutover SUPERUSER CREATEROLE REPLICATION;
    -- failover, postgres-streaming driver (functions/failover/src/pgstream.rs), exactly:
    --   SELECT pg_promote(true, 60)                    the promotion
    --   SELECT pg_reload_conf()                        after each ALTER SYSTEM
    --   ALTER SYSTEM SET default_transaction_read_only the fence of the old primary
    --   ALTER SYSTEM SET primary_conninfo              re-pointing a standby
    --   pg_terminate_backend(pid) of client sessions   ending the fenced primary's sessions
    --   pg_stat_activity.backend_type, current_setting('primary_conninfo')
    --   pg_create_physical_replication_slot(…)         a re-pointed standby's slot (REPLICATION)
    -- pg_is_in_recovery, pg_current_wal_lsn, pg_last_wal_replay_lsn,
    -- pg_last_wal_receive_lsn and pg_current_xact_id are open to every role.
    GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer), pg_reload_conf() TO cutover_failover;
    GRANT pg_signal_backend, pg_read_all_stats, pg_read_all_settings TO cutover_failover;
    ALTER ROLE cutover_failover REPLICATION;
    IF current_setting('server_version_num')::int >= 150000 THEN
      -- (EXECUTE: older servers could not even parse it.)
      EXECUTE 'GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only, primary_conninfo TO cutover_failover';
    ELSE
      RAISE NOTICE 'PostgreSQL before 15 has no GRANT ALTER SYSTEM: the postgres-streaming failover driver needs a superuser here';
    END IF;
  ELSIF aurora THEN
    -- Aurora: the failover moves the writer through the RDS API (aurora-global driver)
    -- and needs no server privilege. The cutover's subscription and role DDL need
    -- rds_superuser (which carries rds_replication), the most Aurora grants any role.
    GRANT rds_superuser TO cutover_cutover;
  ELSE
    RAISE NOTICE 'not a superuser and not Aurora: cutover_cutover and cutover_failover get no server privileges';
  END IF;
END
$server$;

-- What each role holds now, for the operator's record.
SELECT r.rolname AS role, r.rolsuper AS superuser, r.rolreplication AS replication,
       coalesce(string_agg(g.rolname, ',' ORDER BY g.rolname), '') AS member_of
  FROM pg_roles r
  LEFT JOIN pg_auth_members m ON m.member = r.oid
  LEFT JOIN pg_roles g ON g.oid = m.roleid
 WHERE r.rolname LIKE 'cutover\_%'
   AND r.rolname IN ('cutover_data_validator', 'cutover_lag_probe', 'cutover_failover', 'cutover_cutover')
 GROUP BY 1, 2, 3
 ORDER BY 1;
