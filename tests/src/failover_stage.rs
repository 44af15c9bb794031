//! The failover drills, for real: PostgreSQL standbys promoted by the failover
//! function's postgres-streaming driver while a writer commits numbered rows
//! against whatever endpoint SSM names, every acknowledged commit recorded.
//!
//! 1. Planned switchover us-east-1 → eu-west-1 (a manual `switchover`): every
//!    acknowledged write must be on the new primary (RPO 0); RTO = last write
//!    acknowledged by the old primary → first by the new one.
//! 2. Killed primary: eu-west-1 is SIGKILLed and its network cut (the WAL in
//!    flight to ap-southeast-1 is lost with it); the watched alarm's event is
//!    handed to the function, which fails over to ap-southeast-1. RTO from the
//!    event to the first write on ap-southeast-1; RPO = acknowledged writes
//!    missing there, beside what the latest lag sample predicted.
//!
//! 3. Synchronous: eu-west-1 rebuilt as a standby of ap-southeast-1 with
//!    `synchronous_standby_names = 'ANY 1 ("eu-west-1")'`; ap-southeast-1 killed:
//!    nothing acknowledged may be lost.
//!
//! CDC from the source has ended before (the cutover stage takes the migration to `done`;
//! without it, the subscription is dropped here: PostgreSQL 15 has no failover slots). The
//! drills use a 5 s lease and cooldown so that two fit in one rehearsal.
//!
//! Detection needs two vantage points (the failover's default quorum): the
//! function's own probe from us-east-1, and the lag-probe of the region that
//! survives beside the target, run window after window from the kill until the
//! function answers, whose failures to reach the dead writer are recorded in
//! `REACH#<writer>` / `FROM#<vantage>`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use failover::handler::{build, handle};
use failover::reconcile::{ReplayOutcome, ReplayScript};
use serde_json::{json, Value};

use crate::failover_kit::{config, lag_probe_in, spawn_writer, Ack, WriterLog};
use crate::failover_reconcile;
use crate::world::{Node, World, WorldError};

fn fail(e: impl std::fmt::Display) -> WorldError {
    WorldError::Setup(e.to_string())
}

async fn end_cdc(world: &World, progress: &mut dyn FnMut(String)) -> Result<(), WorldError> {
    let target = world.admin_db(Node::UsEast1, "app").await?;
    let exists = target
        .query_opt(
            "SELECT 1 FROM pg_subscription WHERE subname = 'cutover_sub'",
            &[],
        )
        .await
        .map_err(fail)?
        .is_some();
    if exists {
        for sql in [
            "ALTER SUBSCRIPTION cutover_sub DISABLE",
            "ALTER SUBSCRIPTION cutover_sub SET (slot_name = NONE)",
            "DROP SUBSCRIPTION cutover_sub",
        ] {
            target.batch_execute(sql).await.map_err(fail)?;
        }
        let source = world.admin_db(Node::Source, "app").await?;
        source
            .batch_execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'cutover_sub'",
            )
            .await
            .map_err(fail)?;
        progress(
            "CDC from the source ended: subscription cutover_sub dropped (the cutover point)"
                .into(),
        );
    }
    target
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS drill;
             DROP TABLE IF EXISTS drill.writes;
             CREATE TABLE drill.writes (seq bigint PRIMARY KEY, region text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
             GRANT USAGE ON SCHEMA drill TO cutover;
             GRANT SELECT, INSERT ON drill.writes TO cutover;
             -- The failover's own role reconciles (reads both primaries) and replays (guarded
             -- INSERT / UPDATE / DELETE) the drill's tables. infra/sql/roles.sql grants that on
             -- the application's schemas only, and drill is not one: granted here, on these two
             -- tables, so the drill runs the commands with exactly the rights the function has
             -- on an application table, and nothing beyond the drill is widened.
             GRANT USAGE ON SCHEMA drill TO cutover_failover;
             DROP TABLE IF EXISTS drill.balances;
             CREATE TABLE drill.balances (id int PRIMARY KEY, amount numeric(12,2) NOT NULL, note text);
             INSERT INTO drill.balances VALUES (1, 100.00, 'seed'), (2, 200.00, 'seed'), (3, 300.00, 'it''s a seed');
             GRANT SELECT, INSERT, UPDATE, DELETE ON drill.writes, drill.balances TO cutover_failover;",
        )
        .await
        .map_err(fail)?;
    Ok(())
}

/// Acknowledged sequence numbers missing on `node`.
async fn missing_on(world: &World, node: Node, acks: &[Ack]) -> Result<Vec<i64>, WorldError> {
    let c = world.admin_db(node, "app").await?;
    let seqs: Vec<i64> = acks.iter().map(|a| a.seq).collect();
    let found: Vec<i64> = c
        .query("SELECT seq FROM drill.writes WHERE seq = ANY($1)", &[&seqs])
        .await
        .map_err(fail)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let found: std::collections::HashSet<i64> = found.into_iter().collect();
    Ok(seqs.into_iter().filter(|s| !found.contains(s)).collect())
}

/// `world.sh rebuild-standby`: the node's data replaced by a base backup of `primary`.
fn rebuild_standby(world: &World, node: Node, primary: Node) -> Result<(), WorldError> {
    let out = std::process::Command::new("bash")
        .arg(world.root().join("tests/env/world.sh"))
        .args(["rebuild-standby", node.name(), primary.name()])
        .output()
        .map_err(fail)?;
    if !out.status.success() {
        return Err(fail(format!(
            "rebuilding {} as a standby of {}: {}",
            node.name(),
            primary.name(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Waits (up to 15 s) until `standby` streams from the server `primary` is connected to
/// and has flushed the primary's WAL position as of the call: its `pg_stat_replication`
/// state, or "not streaming". A standby that cannot follow a new timeline shows
/// "streaming" for a moment at each reconnect; only WAL received past the call's
/// position proves it follows.
async fn wait_streaming(primary: &tokio_postgres::Client, standby: &str) -> String {
    let target: Option<String> = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .ok()
        .map(|row| row.get(0));
    for _ in 0..150 {
        if let Ok(Some(row)) = primary
            .query_opt(
                "SELECT state, coalesce(flush_lsn >= $2::text::pg_lsn, false)
                   FROM pg_stat_replication WHERE application_name = $1",
                &[&standby, &target],
            )
            .await
        {
            let state: String = row.get(0);
            let caught_up: bool = row.get(1);
            if state == "streaming" && caught_up {
                return state;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    "not streaming".into()
}

/// The lag-probe of a surviving region, one short window after another until
/// `stop`: each window that cannot reach the dead writer is a failure in its
/// reachability record, the second vantage point the failover needs.
fn survivor(
    world: &World,
    vantage: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let world = world.clone();
    tokio::spawn(async move {
        let Ok(env) = lag_probe_in(&world, vantage, &[]).await else {
            return 0;
        };
        let mut windows = 0;
        while !stop.load(Ordering::Relaxed) {
            let _ = lag_probe::handler::handle(
                &env,
                json!({"command": "probe", "window_ms": 1000, "cadence_ms": 250}),
                None,
            )
            .await;
            windows += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        windows
    })
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    if b >= a {
        (b - a).as_secs_f64() * 1000.0
    } else {
        -((a - b).as_secs_f64() * 1000.0)
    }
}

/// One command to the failover function, as an operator invokes it: its action and the
/// first line of its summary printed, an error named with the command.
async fn command(
    f: &failover::failover::Failover,
    event: Value,
    progress: &mut dyn FnMut(String),
) -> Result<Value, WorldError> {
    let name = event["command"].as_str().unwrap_or("").to_string();
    let answer = handle(f, event, "rehearsal-reconcile")
        .await
        .map_err(|e| fail(format!("{name}: {e}")))?;
    progress(format!(
        "  {name} -> {}: {}",
        answer["action"].as_str().unwrap_or("?"),
        answer["summary"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
    ));
    Ok(answer)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, v: &Value) -> Result<T, WorldError> {
    serde_json::from_value(v.clone()).map_err(|e| fail(format!("{what}: {e} in {v}")))
}

/// Drill 2's lost writes named, as an operator would: the killed eu-west-1 started
/// alone on another port, and the failover function's own commands — `reconcile` (with
/// `CUTOVER_RECONCILE_OLD_PRIMARY` pointing there), `replay-script` (the SQL read before
/// anything is applied), `replay` dry run, `replay` — run through its handler as its own
/// database role; then checked, as the administrator, against the writer's log: the lost
/// rows found equal the writes it counted as lost plus only those of its failed attempts
/// that eu-west-1 committed before it died, a second reconciliation finds nothing lost,
/// and the validator says MATCH. The old primary is stopped again before drill 3 rebuilds it.
async fn reconcile_drill(
    world: &World,
    failover: &Value,
    log: &Arc<Mutex<WriterLog>>,
    before_kill: &[Ack],
    writer_lost: &[i64],
    progress: &mut dyn FnMut(String),
) -> Result<Value, WorldError> {
    let new = Node::ApSoutheast1;
    let primary = world.admin_db(new, "app").await?;
    primary
        .batch_execute(
            "UPDATE drill.balances SET amount = amount - 5, note = 'refunded on the new primary' WHERE id = 2;
             UPDATE drill.balances SET note = 'audited on the new primary' WHERE id = 3;",
        )
        .await
        .map_err(fail)?;
    let Some(fork_xid) = failover["timings"]["fork_xid"].as_u64() else {
        return Err(fail(
            "the failover recorded no fork xid: nothing tells new rows from lost ones",
        ));
    };
    let port = failover_reconcile::isolated_port(world);
    progress(format!(
        "reconciliation: the killed eu-west-1's data directory started alone on port {port} (the snapshot's stand-in); fork xid {fork_xid}"
    ));
    failover_reconcile::start_isolated(world, Node::EuWest1, port).await?;
    // The function as deployed after a failover, told where the old primary runs alone and
    // which schemas are the application's (here the drill's).
    let old_primary = format!("localhost:{port}");
    let f = build(
        config(
            world,
            &[
                ("CUTOVER_RECONCILE_OLD_PRIMARY", old_primary.as_str()),
                ("CUTOVER_RECONCILE_SCHEMAS", "drill"),
            ],
        )?,
        &world.aws().await?,
    )
    .await
    .map_err(fail)?;
    let started = Instant::now();
    let outcome = async {
        let schemas = vec!["drill".to_string()];
        let reconciled = command(&f, json!({"command": "reconcile"}), progress).await?;
        let reconcile_ms = started.elapsed().as_millis() as u64;
        if reconciled["action"] != "reconciled" {
            return Err(fail(format!("reconcile answered {reconciled}")));
        }
        for line in reconciled["summary"].as_str().unwrap_or("").lines().skip(1) {
            progress(format!("  {line}"));
        }
        let shown = command(&f, json!({"command": "replay-script"}), progress).await?;
        let script: ReplayScript = decode("replay-script's script", &shown["script"])?;
        let sql = shown["sql"].as_str().unwrap_or("").to_string();
        let dry = command(&f, json!({"command": "replay", "dry_run": true}), progress).await?;
        let dry: ReplayOutcome = decode("the dry run's outcome", &dry["outcome"])?;
        let done = command(&f, json!({"command": "replay", "dry_run": false}), progress).await?;
        let done: ReplayOutcome = decode("the replay's outcome", &done["outcome"])?;
        let after = failover_reconcile::reconcile_with(world, port, new, &schemas, fork_xid, &mut |_| {}).await?;
        let old = failover_reconcile::connect_isolated(world, port, "app").await?;
        let top: i64 = old.query_one("SELECT coalesce(max(seq), 0) FROM drill.writes", &[]).await.map_err(fail)?.get(0);
        let (validation, checked) = failover_reconcile::validate_old_range(world, port, new, &data_validator::ident::TableRef::new("drill", "writes"), top + 1).await?;
        progress(format!(
            "  validation after the replay, drill.writes seq < {}: old primary {} rows, {} {} rows -> {validation}",
            top + 1, checked.source_rows, new.name(), checked.target_rows
        ));
        Ok::<_, WorldError>((reconciled, script, sql, dry, done, after, reconcile_ms, validation, checked.source_rows))
    }
    .await;
    let stopped = failover_reconcile::stop_isolated(world, Node::EuWest1);
    let (reconciled, script, sql, dry, done, after, reconcile_ms, validation, validated_rows) =
        outcome?;
    stopped?;

    let acks = WriterLog::acks(log);
    let failed = WriterLog::failed(log);
    let in_writes = |table: &str| table == "drill.writes";
    let seq_of = |key: &str| key.strip_prefix("seq=").and_then(|v| v.parse::<i64>().ok());
    // Every lost row is one guarded statement of the script the operator read.
    let lost_found = reconciled["lost"].as_u64().unwrap_or(0) as usize;
    let found_set: BTreeSet<i64> = script
        .statements
        .iter()
        .filter(|s| in_writes(&s.table))
        .filter_map(|s| seq_of(&s.key))
        .collect();
    let writer_set: BTreeSet<i64> = writer_lost.iter().copied().collect();
    let last_acked_old = before_kill.iter().map(|a| a.seq).max().unwrap_or(0);
    // The writes in flight to eu-west-1 when it died: sent there after its last
    // acknowledgement, and failed. Each may have been committed with its answer lost.
    let in_flight: BTreeSet<i64> = failed
        .iter()
        .filter(|a| a.region == "eu-west-1" && a.seq > last_acked_old)
        .map(|a| a.seq)
        .collect();
    let extra: BTreeSet<i64> = found_set.difference(&writer_set).copied().collect();
    let unacknowledged: Vec<i64> = extra.intersection(&in_flight).copied().collect();
    let unexplained: Vec<i64> = extra.difference(&in_flight).copied().collect();
    let missed: Vec<i64> = writer_set.difference(&found_set).copied().collect();
    let acked_new: BTreeSet<i64> = acks
        .iter()
        .filter(|a| a.region == new.name())
        .map(|a| a.seq)
        .collect();
    let after_failover_reported_lost = found_set.intersection(&acked_new).count();
    let new_writes = reconciled["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["table"] == "drill.writes")
        .and_then(|t| t["new_since_failover"].as_u64())
        .unwrap_or(0);
    let key_for_key = missed.is_empty()
        && unexplained.is_empty()
        && found_set.len() == writer_set.len() + unacknowledged.len();
    let conflict_keys: Vec<String> = script
        .conflicts
        .iter()
        .map(|c| format!("{} {}", c.table, c.key))
        .collect();
    let lost_keys: Vec<String> = script
        .statements
        .iter()
        .filter(|s| !in_writes(&s.table))
        .map(|s| format!("{} {}", s.table, s.key))
        .collect();
    let still_missing = missing_on(world, new, before_kill).await?;
    let writes_lost_after = after.lost.iter().filter(|r| in_writes(&r.table)).count();
    progress(format!(
        "  drill.writes: lost found {} = the writer's {} acknowledged lost + {} of its {} failed attempt(s) in flight to eu-west-1 at the kill ({unacknowledged:?}: committed, the acknowledgement died with the server — lost writes all the same); unexplained: {unexplained:?}; missed: {missed:?}; key for key: {}; written after the failover and reported lost: {}; new since the failover: {}",
        found_set.len(),
        writer_set.len(),
        unacknowledged.len(),
        in_flight.len(),
        if key_for_key { "yes" } else { "NO" },
        after_failover_reported_lost,
        new_writes
    ));
    progress(format!(
        "  other lost rows: {lost_keys:?}; conflicts: {conflict_keys:?}; after the replay: the writer's acknowledged history missing on {}: {}; validation of the old primary's drill.writes range: {validation} ({validated_rows} rows; {} lost rows left in drill.writes)",
        new.name(), still_missing.len(), writes_lost_after
    ));
    let ok = key_for_key
        && !writer_set.is_empty()
        && lost_found == script.statements.len()
        && after_failover_reported_lost == 0
        && conflict_keys == ["drill.balances id=2"]
        && lost_keys == ["drill.balances id=1"]
        && dry.applied == script.statements.len()
        && done.applied == script.statements.len()
        && still_missing.is_empty()
        && after.lost.is_empty()
        && validation == "MATCH";
    Ok(json!({
        "ok": ok, "fork_xid": fork_xid, "old_primary_port": port, "reconcile_ms": reconcile_ms,
        "commands": ["reconcile", "replay-script", "replay (dry run)", "replay"],
        "writer_lost": writer_set.len(), "lost_found": lost_found, "lost_found_writes": found_set.len(),
        "in_flight_failed": in_flight, "unacknowledged": unacknowledged, "unexplained": unexplained,
        "missed": missed, "key_for_key": key_for_key,
        "new_since_failover": reconciled["new_since_failover"], "new_since_failover_writes": new_writes,
        "written_after_failover_reported_lost": after_failover_reported_lost,
        "conflicts": script.conflicts, "lost_other": lost_keys, "tables": reconciled["tables"],
        "replay_dry_run": dry, "replay": done, "script": sql,
        "missing_after_replay": still_missing.len(), "lost_after_replay": after.lost.len(),
        "validation_after_replay": validation, "validated_rows": validated_rows,
        "lost_sample": script.statements.iter().take(5).collect::<Vec<_>>(),
    }))
}

pub async fn run(world: &World, progress: &mut dyn FnMut(String)) -> Result<Value, WorldError> {
    end_cdc(world, progress).await?;
    let aws = world.aws().await?;
    let cfg = config(
        world,
        &[
            ("CUTOVER_LEASE_TTL_MS", "5000"),
            ("CUTOVER_COOLDOWN_MS", "5000"),
            // The killed primaries of drills 2 and 3 never come back: a 3 s grace
            // period (30 s by default) keeps the demo short. The blip that the grace
            // period exists for is tested in tests/failover.rs.
            ("CUTOVER_FAILOVER_GRACE_MS", "3000"),
            ("CUTOVER_FAILOVER_PROBE_EVERY_MS", "500"),
        ],
    )?;
    let f = build(cfg, &aws).await.map_err(fail)?;
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let w = spawn_writer(
        world.clone(),
        aws.ssm(),
        "drill.writes",
        Duration::from_millis(2),
        log.clone(),
        stop.clone(),
    );
    let acks = |log: &Arc<Mutex<WriterLog>>| WriterLog::acks(log);
    let mut drills = Vec::new();

    // Drill 1: planned switchover.
    progress(
        "drill 1: planned switchover us-east-1 -> eu-west-1 under a writer committing every ~2 ms"
            .into(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = Instant::now();
    let o = handle(
        &f,
        json!({"command": "switchover", "target": "eu-west-1"}),
        "rehearsal-drill-1",
    )
    .await
    .map_err(fail)?;
    let answered = Instant::now();
    for s in o["steps"].as_array().into_iter().flatten() {
        progress(format!("  {}", s.as_str().unwrap_or("")));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a1 = acks(&log);
    let last_old = a1
        .iter()
        .rev()
        .find(|a| a.region == "us-east-1")
        .map(|a| a.at);
    let first_new = a1.iter().find(|a| a.region == "eu-west-1").map(|a| a.at);
    let rto1 = last_old.zip(first_new).map(|(l, n)| ms_between(l, n));
    let missing1 = missing_on(world, Node::EuWest1, &a1).await?;
    progress(format!(
        "  {} writes acknowledged; missing on eu-west-1: {}; RTO (last write on us-east-1 -> first on eu-west-1): {} ms; the function answered in {:.0} ms",
        a1.len(),
        missing1.len(),
        rto1.map_or("-".into(), |r| format!("{r:.0}")),
        ms_between(asked, answered)
    ));
    drills.push(json!({
        "drill": "planned switchover", "from": "us-east-1", "to": "eu-west-1", "action": o["action"],
        "acknowledged": a1.len(), "lost": missing1.len(), "rto_ms": rto1, "rpo_writes": missing1.len(),
        "function_ms": ms_between(asked, answered), "steps": o["steps"], "ok": o["action"] == "switchover" && missing1.is_empty() && rto1.is_some_and(|r| r < 5000.0),
    }));

    // The network distance between ap-southeast-1 and its new primary, as before.
    let port = world.reconnect_network(Node::ApSoutheast1, Node::EuWest1)?;
    let ap = world.admin_db(Node::ApSoutheast1, "app").await?;
    let conninfo: String = ap
        .query_one("SELECT current_setting('primary_conninfo')", &[])
        .await
        .map_err(fail)?
        .get(0);
    let conninfo = conninfo
        .split_whitespace()
        .map(|p| {
            if p.starts_with("port=") {
                format!("port={port}")
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    ap.batch_execute(&format!(
        "ALTER SYSTEM SET primary_conninfo = '{}'",
        conninfo.replace('\'', "''")
    ))
    .await
    .map_err(fail)?;
    ap.batch_execute("SELECT pg_reload_conf()")
        .await
        .map_err(fail)?;
    // A standby that received WAL of the old timeline past the new primary's fork point
    // (the fence's own records, 220 ms in flight) cannot follow it: PostgreSQL's answer
    // is pg_rewind or a new base backup. Seen in about half of the runs here.
    let eu = world.admin_db(Node::EuWest1, "postgres").await?;
    if wait_streaming(&eu, "ap-southeast-1").await != "streaming" {
        progress(
            "ap-southeast-1 cannot follow eu-west-1 (it received WAL past the fork point): rebuilt from a base backup of eu-west-1"
                .into(),
        );
        rebuild_standby(world, Node::ApSoutheast1, Node::EuWest1)?;
        let state = wait_streaming(&eu, "ap-southeast-1").await;
        if state != "streaming" {
            return Err(fail(format!("ap-southeast-1 is {state} after its rebuild")));
        }
    }
    progress(format!(
        "ap-southeast-1 streams from eu-west-1 through delay-proxy :{port} again"
    ));

    // Fresh lag samples for the decision (lag-probe's code, primary now eu-west-1).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lag_cfg =
        lag_probe::config::ProbeConfig::from_vars(&cutover_core::config::Vars::from_pairs(
            world
                .env_pairs()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([
                    ("CUTOVER_PRIMARY_REGION", "eu-west-1"),
                    ("CUTOVER_REGIONS", "eu-west-1,ap-southeast-1"),
                ]),
        ))
        .map_err(fail)?;
    let lag_env = lag_probe::handler::Env::new(lag_cfg, aws.clone());
    let lag = lag_probe::handler::handle(
        &lag_env,
        json!({"command": "probe", "window_ms": 4000}),
        None,
    )
    .await
    .map_err(fail)?;
    let predicted_ms = lag["regions"][0]["heartbeat"]["p50_ms"].as_f64();
    progress(format!(
        "lag-probe: ap-southeast-1 heartbeat lag p50 {} ms (the loss a failover to it would cause)",
        predicted_ms.map_or("-".into(), |v| format!("{v:.0}"))
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Drill 2: the primary's region is lost.
    progress("drill 2: eu-west-1 (primary) is killed and its network cut; the writer-unavailable alarm fires".into());
    // Two updates acknowledged by eu-west-1 a moment before it dies (the 220 ms of WAL
    // in flight to ap-southeast-1 die with it): balance 1 only there (a lost update),
    // balance 2 changed again on the new primary after the failover (a conflict).
    let old_primary = world.admin_db(Node::EuWest1, "app").await?;
    old_primary
        .batch_execute(
            "UPDATE drill.balances SET amount = amount + 10, note = 'lost: paid on the old primary' WHERE id = 1;
             UPDATE drill.balances SET amount = amount + 20, note = 'paid on the old primary' WHERE id = 2;",
        )
        .await
        .map_err(fail)?;
    // The region goes whole: its network first (the WAL in flight to ap-southeast-1,
    // ~220 ms of it, dies there), then its servers. Killing the server first let the
    // proxy deliver what it held when the kill was slow (a loaded machine): no loss.
    world.cut_network(Node::ApSoutheast1)?;
    world.kill(Node::EuWest1)?;
    let killed = Instant::now();
    let watching = Arc::new(AtomicBool::new(false));
    let ap_probe = survivor(world, "ap-southeast-1", watching.clone());
    let event = json!({
        "version": "0", "id": "rehearsal-drill-2", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-24T11:00:00Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"alarmName": f.config.watched_alarms.first().cloned().unwrap_or_default(), "state": {"value": "ALARM"}, "previousState": {"value": "OK"}}
    });
    // The alarm comes after the surviving regions noticed (in AWS, a minute or more later).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let event_at = Instant::now();
    let o2 = handle(&f, event, "rehearsal-drill-2").await;
    watching.store(true, Ordering::Relaxed);
    let windows2 = ap_probe.await.unwrap_or(0);
    let o2 = o2.map_err(fail)?;
    // What eu-west-1 acknowledged, read once the writer has settled every attempt it sent
    // there (each ends within its 1 s timeout; the failover took longer): read right after
    // the kill, an answer that left the server just before it died but was taken in by the
    // writer's task a moment later was missing — acknowledged, lost, yet not counted.
    let before_kill: Vec<Ack> = acks(&log)
        .into_iter()
        .filter(|a| a.region == "eu-west-1")
        .collect();
    progress(format!(
        "  ap-southeast-1's lag-probe ran {windows2} windows meanwhile (the second vantage point)"
    ));
    for s in o2["decision"]["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(o2["steps"].as_array().into_iter().flatten())
    {
        progress(format!("  {}", s.as_str().unwrap_or("")));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = acks(&log);
    let first_ap = all
        .iter()
        .find(|a| a.region == "ap-southeast-1" && a.at > killed)
        .map(|a| a.at);
    let rto2 = first_ap.map(|t| ms_between(event_at, t));
    // From the kill itself: the 1 s the rehearsal waits before handing over the alarm
    // event (CloudWatch's own evaluation, a minute or more in AWS, is not rehearsed) plus
    // the function's detection (grace period, two vantage points), promotion and re-point.
    let rto2_kill = first_ap.map(|t| ms_between(killed, t));
    let lost = missing_on(world, Node::ApSoutheast1, &before_kill).await?;
    let predicted_writes = predicted_ms.map(|p| {
        before_kill
            .iter()
            .filter(|a| ms_between(a.at, killed) <= p)
            .count()
    });
    progress(format!(
        "  {} writes acknowledged by eu-west-1; lost: {} (predicted from the lag sample: {} writes in the last {} ms); RTO (alarm event -> first write on ap-southeast-1): {} ms; from the kill: {} ms",
        before_kill.len(),
        lost.len(),
        predicted_writes.map_or("-".into(), |n| n.to_string()),
        predicted_ms.map_or("-".into(), |v| format!("{v:.0}")),
        rto2.map_or("-".into(), |r| format!("{r:.0}")),
        rto2_kill.map_or("-".into(), |r| format!("{r:.0}"))
    ));
    let errors = log.lock().map(|l| l.failed.len()).unwrap_or(0);
    drills.push(json!({
        "drill": "killed primary", "from": "eu-west-1", "to": "ap-southeast-1", "action": o2["action"],
        "acknowledged": before_kill.len(), "lost": lost.len(), "rpo_writes": lost.len(),
        "predicted_lost_writes": predicted_writes, "predicted_loss_ms": predicted_ms,
        "rto_ms": rto2, "rto_from_kill_ms": rto2_kill, "decision": o2["decision"], "steps": o2["steps"],
        "ok": o2["action"] == "failover" && rto2.is_some_and(|r| r < 10000.0),
    }));
    let reconciliation = reconcile_drill(world, &o2, &log, &before_kill, &lost, progress).await?;
    // Drill 3: synchronous replication (ANY 1) — a killed primary loses nothing.
    progress("drill 3: eu-west-1 rebuilt as a standby of ap-southeast-1 with synchronous_standby_names = 'ANY 1 (\"eu-west-1\")'; then ap-southeast-1 is killed".into());
    rebuild_standby(world, Node::EuWest1, Node::ApSoutheast1)?;
    let primary = world.admin_db(Node::ApSoutheast1, "app").await?;
    primary
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (\"eu-west-1\")'")
        .await
        .map_err(fail)?;
    primary
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .map_err(fail)?;
    let mut sync_state = String::new();
    for _ in 0..100 {
        if let Ok(Some(row)) = primary
            .query_opt(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'eu-west-1'",
                &[],
            )
            .await
        {
            sync_state = row.get(0);
            if sync_state == "quorum" || sync_state == "sync" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress(format!(
        "  eu-west-1 streams from ap-southeast-1 (sync_state {sync_state})"
    ));
    let lag_cfg3 =
        lag_probe::config::ProbeConfig::from_vars(&cutover_core::config::Vars::from_pairs(
            world
                .env_pairs()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([
                    ("CUTOVER_PRIMARY_REGION", "ap-southeast-1"),
                    ("CUTOVER_REGIONS", "ap-southeast-1,eu-west-1"),
                ]),
        ))
        .map_err(fail)?;
    let lag3 = lag_probe::handler::handle(
        &lag_probe::handler::Env::new(lag_cfg3, aws.clone()),
        json!({"command": "probe", "window_ms": 4000}),
        None,
    )
    .await
    .map_err(fail)?;
    let predicted3 = lag3["regions"][0]["heartbeat"]["p50_ms"].as_f64();
    progress(format!(
        "  lag-probe: eu-west-1 heartbeat lag p50 {} ms",
        predicted3.map_or("-".into(), |v| format!("{v:.0}"))
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    world.kill(Node::ApSoutheast1)?;
    world.cut_network(Node::EuWest1)?;
    let killed3 = Instant::now();
    let watching3 = Arc::new(AtomicBool::new(false));
    let eu_probe = survivor(world, "eu-west-1", watching3.clone());
    let before3: Vec<Ack> = acks(&log)
        .into_iter()
        .filter(|a| a.region == "ap-southeast-1" && a.at > killed)
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let event3_at = Instant::now();
    let event3 = json!({
        "version": "0", "id": "rehearsal-drill-3", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-24T11:05:00Z",
        "region": "ap-southeast-1", "resources": [],
        "detail": {"alarmName": f.config.watched_alarms.first().cloned().unwrap_or_default(), "state": {"value": "ALARM"}, "previousState": {"value": "OK"}}
    });
    let o3 = handle(&f, event3, "rehearsal-drill-3").await;
    watching3.store(true, Ordering::Relaxed);
    let windows3 = eu_probe.await.unwrap_or(0);
    let o3 = o3.map_err(fail)?;
    progress(format!(
        "  eu-west-1's lag-probe ran {windows3} windows meanwhile (the second vantage point)"
    ));
    for s in o3["decision"]["reasons"].as_array().into_iter().flatten() {
        progress(format!("  {}", s.as_str().unwrap_or("")));
    }
    for s in o3["steps"].as_array().into_iter().flatten() {
        progress(format!("  {}", s.as_str().unwrap_or("")));
    }
    let drill3_done = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = acks(&log);
    let first_eu = all
        .iter()
        .find(|a| a.region == "eu-west-1" && a.at > killed3)
        .map(|a| a.at);
    let rto3 = first_eu.map(|t| ms_between(event3_at, t));
    let lost3 = missing_on(world, Node::EuWest1, &before3).await?;
    progress(format!(
        "  {} writes acknowledged by ap-southeast-1 under ANY 1; lost: {}; RTO {} ms (the heartbeat showed {} ms from acknowledgement to visibility: each commit already waited for eu-west-1)",
        before3.len(),
        lost3.len(),
        rto3.map_or("-".into(), |r| format!("{r:.0}")),
        predicted3.map_or("-".into(), |v| format!("{v:.0}"))
    ));
    drills.push(json!({
        "drill": "killed primary, sync", "from": "ap-southeast-1", "to": "eu-west-1", "action": o3["action"],
        "acknowledged": before3.len(), "lost": lost3.len(), "rpo_writes": lost3.len(),
        "predicted_loss_ms": predicted3, "sync_state": sync_state,
        "rto_ms": rto3, "decision": o3["decision"], "steps": o3["steps"],
        "ok": o3["action"] == "failover" && lost3.is_empty() && !before3.is_empty() && rto3.is_some_and(|r| r < 10000.0),
    }));

    // Drill 4: fail-back. us-east-1, fenced since drill 1, is rebuilt as a standby of
    // eu-west-1 (75 ms away, as the regions are), and a planned switchover brings the
    // primary home under the same writer; then the lost regions are rebuilt around it.
    progress("drill 4: fail-back — us-east-1 rebuilt as a standby of eu-west-1, then a planned switchover eu-west-1 -> us-east-1".into());
    let distance: u64 = world
        .get("CUTOVER_DELAY_EU_WEST_1_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(75);
    world.set_network_delay(Node::UsEast1, distance).await?;
    rebuild_standby(world, Node::UsEast1, Node::EuWest1)?;
    let eu = world.admin_db(Node::EuWest1, "app").await?;
    let streaming = wait_streaming(&eu, "us-east-1").await;
    progress(format!(
        "  us-east-1 streams from eu-west-1 through delay-proxy ({distance} ms): {streaming}"
    ));
    // The function's cooldown (5 s here) runs from the end of drill 3.
    let cooldown = Duration::from_millis(5500);
    if drill3_done.elapsed() < cooldown {
        tokio::time::sleep(cooldown - drill3_done.elapsed()).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked4 = Instant::now();
    let o4 = handle(
        &f,
        json!({"command": "switchover", "target": "us-east-1"}),
        "rehearsal-drill-4",
    )
    .await
    .map_err(fail)?;
    let answered4 = Instant::now();
    for s in o4["steps"].as_array().into_iter().flatten() {
        progress(format!("  {}", s.as_str().unwrap_or("")));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = w.await;
    let all = acks(&log);
    let on_eu: Vec<Ack> = all
        .iter()
        .filter(|a| a.region == "eu-west-1" && a.at > killed3)
        .cloned()
        .collect();
    let last_eu = on_eu.last().map(|a| a.at);
    let first_us = all
        .iter()
        .find(|a| a.region == "us-east-1" && a.at > asked4)
        .map(|a| a.at);
    let rto4 = last_eu.zip(first_us).map(|(l, n)| ms_between(l, n));
    let missing4 = missing_on(world, Node::UsEast1, &on_eu).await?;
    progress(format!(
        "  {} writes acknowledged by eu-west-1 since drill 3; missing on us-east-1: {}; RTO (last write on eu-west-1 -> first on us-east-1): {} ms; the function answered in {:.0} ms",
        on_eu.len(),
        missing4.len(),
        rto4.map_or("-".into(), |r| format!("{r:.0}")),
        ms_between(asked4, answered4)
    ));
    drills.push(json!({
        "drill": "fail-back", "from": "eu-west-1", "to": "us-east-1", "action": o4["action"],
        "acknowledged": on_eu.len(), "lost": missing4.len(), "rto_ms": rto4, "rpo_writes": missing4.len(),
        "function_ms": ms_between(asked4, answered4), "steps": o4["steps"],
        "ok": o4["action"] == "switchover" && missing4.is_empty() && !on_eu.is_empty() && rto4.is_some_and(|r| r < 5000.0),
    }));
    // Recovery: the two other regions rebuilt as standbys of us-east-1, as at the start.
    let mut recovered = Vec::new();
    for node in [Node::EuWest1, Node::ApSoutheast1] {
        let delay = world
            .get(&format!(
                "CUTOVER_DELAY_{}_MS",
                node.name().to_uppercase().replace('-', "_")
            ))
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        world.set_network_delay(node, delay).await?;
        rebuild_standby(world, node, Node::UsEast1)?;
    }
    let us = world.admin_db(Node::UsEast1, "app").await?;
    for node in [Node::EuWest1, Node::ApSoutheast1] {
        let state = wait_streaming(&us, node.name()).await;
        recovered.push(format!("{}: {state}", node.name()));
    }
    let recovered = format!(
        "us-east-1 is the primary again; its standbys: {}",
        recovered.join(", ")
    );
    progress(format!("  recovered: {recovered}"));

    // Writes acknowledged per 100 ms and region, for the report's timeline.
    let t0 = all.first().map(|a| a.at);
    let mut bins: BTreeMap<(u64, String), u64> = BTreeMap::new();
    if let Some(t0) = t0 {
        for a in &all {
            let bin = ((a.at - t0).as_millis() / 100) as u64;
            *bins.entry((bin, a.region.clone())).or_default() += 1;
        }
    }
    let marks = [
        ("switchover asked", asked),
        ("eu-west-1 killed", killed),
        ("ap-southeast-1 killed", killed3),
        ("fail-back asked", asked4),
    ];
    let throughput: Vec<Value> = bins
        .into_iter()
        .map(|((bin, region), n)| json!({"t_ms": bin * 100, "region": region, "writes": n}))
        .collect();
    let marks: Vec<Value> = marks
        .iter()
        .filter_map(|(what, at)| t0.map(|t0| json!({"what": what, "t_ms": ms_between(t0, *at)})))
        .collect();
    let ok = drills.iter().all(|d| d["ok"] == true);
    progress(String::new());
    progress(format!(
        "{:<24}{:<28}{:>10}{:>12}{:>14}",
        "drill", "move", "RTO ms", "lost writes", "predicted"
    ));
    for d in &drills {
        progress(format!(
            "{:<24}{:<28}{:>10}{:>12}{:>14}",
            d["drill"].as_str().unwrap_or(""),
            format!(
                "{} -> {}",
                d["from"].as_str().unwrap_or(""),
                d["to"].as_str().unwrap_or("")
            ),
            d["rto_ms"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.0}")),
            d["lost"].as_u64().unwrap_or(0),
            d["predicted_lost_writes"]
                .as_u64()
                .map_or("0 (RPO 0)".into(), |v| v.to_string()),
        ));
    }
    let ok = ok && reconciliation["ok"] == true;
    Ok(
        json!({"ok": ok, "drills": drills, "reconciliation": reconciliation, "writer_errors": errors, "lease_ttl_ms": 5000, "cooldown_ms": 5000,
               "throughput": throughput, "marks": marks,
               "recovered": recovered}),
    )
}

/// Whether `node` takes writes: not in recovery, not fenced read-only.
async fn takes_writes(world: &World, node: Node) -> Result<bool, WorldError> {
    Ok(world
        .admin(node)
        .await?
        .query_one(
            "SELECT NOT pg_is_in_recovery() AND NOT current_setting('default_transaction_read_only')::bool",
            &[],
        )
        .await
        .map_err(fail)?
        .get(0))
}

/// us-east-1 the writer again (not fenced), the standbys rebuilt from it, SSM and state reset.
async fn restore_us_east_1(world: &World) -> Result<(), WorldError> {
    let c = world.admin(Node::UsEast1).await?;
    // One statement at a time: ALTER SYSTEM refuses to run in a multi-statement batch.
    for sql in [
        "SET default_transaction_read_only = off",
        "ALTER SYSTEM RESET default_transaction_read_only",
        "SELECT pg_reload_conf()",
    ] {
        c.batch_execute(sql).await.map_err(|e| {
            fail(format!(
                "{sql}: {}",
                cutover_core::error::describe_chain(&e)
            ))
        })?;
    }
    rebuild_standby(world, Node::EuWest1, Node::UsEast1)?;
    rebuild_standby(world, Node::ApSoutheast1, Node::UsEast1)?;
    // Streaming again, and caught up, before the next round or the next stage.
    for standby in ["eu-west-1", "ap-southeast-1"] {
        let state = wait_streaming(&c, standby).await;
        if state != "streaming" {
            return Err(fail(format!(
                "{standby} rebuilt from us-east-1 but {state} within 15 s"
            )));
        }
    }
    crate::failover_kit::reset(world).await
}

/// The crash-at-every-step drill on real PostgreSQL (postgres-streaming): a switchover
/// us-east-1 -> eu-west-1 dies right before each step in turn (after the lease, after
/// fencing, after the promotion, after the endpoint write, before the final state);
/// once the dead run's lease has expired, the next trigger (an alarm) finishes it with
/// a higher epoch. Each round: eu-west-1 promoted exactly once, never fenced again once
/// promoted, one writer, the endpoint and STATE at a consistent end. The world is
/// rebuilt after each round (us-east-1 writing, both standbys streaming from it).
pub async fn crash_drill(
    world: &World,
    progress: &mut dyn FnMut(String),
) -> Result<Value, WorldError> {
    use failover::driver::Step;
    use failover::failover::{state_key, FailoverState, Phase};
    let eu = format!("localhost:{}", world.port(Node::EuWest1)?);
    let alarm: Value = serde_json::from_str(
        &std::fs::read_to_string(world.root().join("events/failover/alarm-eventbridge.json"))
            .map_err(fail)?,
    )
    .map_err(fail)?;
    let mut rounds = Vec::new();
    for (died_before, after, promoted_before_the_kill) in [
        (Step::Fence, "the lease", false),
        (Step::Promote, "fencing", false),
        (Step::Repoint, "the promotion", true),
        (Step::ActiveRegion, "the endpoint write", true),
        (Step::Record, "the endpoints, before the final state", true),
    ] {
        crate::failover_kit::reset(world).await?;
        let cfg = config(
            world,
            &[
                ("CUTOVER_LEASE_TTL_MS", "1500"),
                ("CUTOVER_FAILOVER_PROBE_TIMEOUT_MS", "10000"),
            ],
        )?;
        let mut f = build(cfg, &world.aws().await?).await.map_err(fail)?;
        let epoch_before = f.leases.current().await?.map_or(0, |l| l.epoch);
        f.drill_stop_before = Some(died_before);
        let died = handle(
            &f,
            json!({"command": "switchover", "target": "eu-west-1"}),
            "doomed",
        )
        .await;
        let died_as_planned = died
            .as_ref()
            .is_err_and(|e| e.to_string().contains("drill"));
        let promoted_at_kill = takes_writes(world, Node::EuWest1).await?;
        f.drill_stop_before = None;
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let o = handle(&f, alarm.clone(), "next").await.map_err(fail)?;
        let steps: Vec<String> = o["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        let promotions = steps.iter().filter(|s| s.contains("promoted in")).count();
        let fenced_again =
            promoted_before_the_kill && steps.iter().any(|s| s.contains("us-east-1: fenced"));
        let writers = [
            takes_writes(world, Node::UsEast1).await?,
            takes_writes(world, Node::EuWest1).await?,
            takes_writes(world, Node::ApSoutheast1).await?,
        ];
        let endpoint = cutover_core::db::parameter(
            &f.ssm,
            &format!(
                "/migration/db/{}/writer-endpoint",
                world.get("CUTOVER_SUFFIX")?
            ),
        )
        .await
        .ok();
        let state = f.store.get::<FailoverState>(&state_key()).await?;
        let completed = state
            .as_ref()
            .is_some_and(|s| s.value.phase == Phase::Completed && s.value.to == "eu-west-1");
        let epoch = o["epoch"].as_u64();
        let ok = died_as_planned
            && promoted_at_kill == promoted_before_the_kill
            && o["action"] == "switchover"
            && epoch == Some(epoch_before + 2)
            && promotions == usize::from(!promoted_before_the_kill)
            && (!promoted_before_the_kill || steps.iter().any(|s| s.contains("already promoted")))
            && !fenced_again
            && writers == [false, true, false]
            && endpoint.as_deref() == Some(eu.as_str())
            && completed;
        progress(format!(
            "  killed after {after}: {} -> resumed by an alarm as epoch {} in {} ms; eu-west-1 {}; writers {}; {}",
            if promoted_at_kill { "eu-west-1 already writing" } else { "eu-west-1 still a standby" },
            epoch.map_or("-".into(), |e| e.to_string()),
            o["timings"]["total_ms"],
            if promoted_before_the_kill { "found already promoted (not again)" } else { "promoted once" },
            writers.iter().filter(|w| **w).count(),
            if ok { "ok" } else { "NOT as expected" }
        ));
        rounds.push(json!({
            "killed_after": after, "died_as_planned": died_as_planned,
            "promoted_at_kill": promoted_at_kill, "action": o["action"], "epoch_before": epoch_before,
            "epoch": epoch, "resumed_ms": o["timings"]["total_ms"], "promotions_on_resume": promotions,
            "fenced_again": fenced_again, "writers": writers.iter().filter(|w| **w).count(),
            "writer_endpoint": endpoint, "state_completed": completed, "steps": steps, "ok": ok,
        }));
        restore_us_east_1(world).await?;
    }
    let ok = rounds.iter().all(|r| r["ok"] == true);
    Ok(json!({"drill": "crash at every step", "ok": ok, "rounds": rounds}))
}
