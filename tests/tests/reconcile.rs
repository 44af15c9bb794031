//! The lost-write reconciliation (`failover::reconcile`) against real PostgreSQL.
//!
//! A fork is played with two databases of one server (the world's us-east-1):
//! transaction ids are the server's, so a history written to both, then the fork xid
//! taken as the failover takes it (`pg_current_xact_id()` on the new side), then
//! writes to each alone, gives row versions older and newer than the fork exactly as
//! an old and a new primary hold them after an unplanned failover.

#![allow(clippy::unwrap_used)]

use cutover_rehearsal::world::{Node, World};
use failover::reconcile::{self, Change};
use tokio::sync::Mutex;

/// The drill kills primaries: the two tests of this file never run at once.
static WORLD: Mutex<()> = Mutex::const_new(());

async fn fresh_database(world: &World, name: &str) -> tokio_postgres::Client {
    let admin = world.admin(Node::UsEast1).await.unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    world.admin_db(Node::UsEast1, name).await.unwrap()
}

const SCHEMA: &str = r#"
    CREATE SCHEMA "Ledger";
    CREATE TABLE "Ledger"."account book" (id int PRIMARY KEY, "owner name" text, amount numeric(12,2), doc json, at timestamptz);
    INSERT INTO "Ledger"."account book"
      SELECT g, 'owner ' || g, g * 10, json_build_object('g', g), '2026-12-01 10:00:00+00'::timestamptz + g * interval '1 minute'
      FROM generate_series(1, 20) g;
"#;

async fn keys(r: &[reconcile::RowChange], change: Option<Change>) -> Vec<String> {
    let mut k: Vec<String> = r
        .iter()
        .filter(|c| change.is_none_or(|ch| c.change == ch))
        .map(|c| c.key.clone())
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn lost_rows_are_named_apart_from_new_ones_and_conflicts_and_replayed_under_guard() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let old = fresh_database(&world, "reconcile_old").await;
    let new = fresh_database(&world, "reconcile_new").await;
    for c in [&old, &new] {
        c.batch_execute(SCHEMA).await.unwrap();
    }
    // The failover's evidence: the first transaction id after the fork.
    let fork: String = new
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap()
        .get(0);
    let fork: u64 = fork.parse().unwrap();
    // The old primary, after the fork (never shipped): two inserts, an update, a
    // delete, and a change to a row the new primary changes too.
    old.batch_execute(
        r#"INSERT INTO "Ledger"."account book" VALUES (21, 'O''Brien \ "quoted"', 210.50, '{"a": [1, 2]}', '2026-12-02 11:00:00.123456+00');
           INSERT INTO "Ledger"."account book" VALUES (22, NULL, 220, NULL, NULL);
           UPDATE "Ledger"."account book" SET amount = 55.55, "owner name" = 'paid on the old' WHERE id = 5;
           UPDATE "Ledger"."account book" SET amount = 66 WHERE id = 6;
           DELETE FROM "Ledger"."account book" WHERE id = 7;"#,
    )
    .await
    .unwrap();
    // The new primary, after the failover.
    new.batch_execute(
        r#"INSERT INTO "Ledger"."account book" VALUES (30, 'new', 300, NULL, now());
           UPDATE "Ledger"."account book" SET amount = 67 WHERE id = 6;
           UPDATE "Ledger"."account book" SET "owner name" = 'changed on the new' WHERE id = 8;
           DELETE FROM "Ledger"."account book" WHERE id = 9;"#,
    )
    .await
    .unwrap();

    let old_side = reconcile::side(
        "old",
        world
            .admin_db(Node::UsEast1, "reconcile_old")
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let new_side = reconcile::side(
        "new",
        world
            .admin_db(Node::UsEast1, "reconcile_new")
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let schemas = vec!["Ledger".to_string()];
    let found = reconcile::reconcile(&old_side, &new_side, &schemas, fork, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        keys(&found.lost, Some(Change::Insert)).await,
        ["id=21", "id=22"]
    );
    assert_eq!(keys(&found.lost, Some(Change::Update)).await, ["id=5"]);
    assert_eq!(keys(&found.lost, Some(Change::Delete)).await, ["id=7"]);
    assert_eq!(
        keys(&found.new_since_failover, None).await,
        ["id=30", "id=8"]
    );
    // 6: changed on both; 9: deleted on the new primary since (a blind insert would resurrect it).
    assert_eq!(keys(&found.conflicts, None).await, ["id=6", "id=9"]);
    let lost21 = found.lost.iter().find(|r| r.key == "id=21").unwrap();
    assert!(lost21.old.as_ref().unwrap().contains(&(
        "owner name".to_string(),
        Some(r#"O'Brien \ "quoted""#.to_string())
    )));

    let script = found.script.render();
    assert_eq!(found.script.statements.len(), 4, "{script}");
    assert!(
        script.contains(r#"INSERT INTO "Ledger"."account book" ("id", "owner name""#),
        "{script}"
    );
    assert!(script.contains(r#"E'O''Brien \\ "quoted"'"#), "{script}");
    assert!(script.contains("-- Conflicts: NOT applied"), "{script}");
    assert!(
        found
            .script
            .statements
            .iter()
            .all(|s| !s.sql.contains("= 67") && !s.key.ends_with("=6") && !s.key.ends_with("=9")),
        "a conflict reached the statements: {script}"
    );

    // A dry run changes nothing.
    let replayer = world
        .admin_db(Node::UsEast1, "reconcile_new")
        .await
        .unwrap();
    let dry = reconcile::replay(&replayer, &found.script, true)
        .await
        .unwrap();
    assert_eq!((dry.applied, dry.skipped.len(), dry.conflicts), (4, 0, 2));
    let present: i64 = new
        .query_one(
            r#"SELECT count(*) FROM "Ledger"."account book" WHERE id IN (21, 22)"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(present, 0, "the dry run left rows behind");

    // Someone changes row 5 on the new primary after the reconciliation: its guard fails.
    new.batch_execute(r#"UPDATE "Ledger"."account book" SET amount = 5.01 WHERE id = 5"#)
        .await
        .unwrap();
    let done = reconcile::replay(&replayer, &found.script, false)
        .await
        .unwrap();
    assert_eq!(done.applied, 3, "{done:?}");
    assert_eq!(done.skipped.len(), 1, "{done:?}");
    assert!(done.skipped[0].contains("id=5"), "{done:?}");
    let (v, amount): (Option<String>, String) = new
        .query_one(
            r#"SELECT "owner name", amount::text FROM "Ledger"."account book" WHERE id = 21"#,
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(
        (v.as_deref(), amount.as_str()),
        (Some(r#"O'Brien \ "quoted""#), "210.50")
    );
    let amount5: String = new
        .query_one(
            r#"SELECT amount::text FROM "Ledger"."account book" WHERE id = 5"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(amount5, "5.01", "a guarded update overwrote a later change");

    // Replayed again: nothing left to apply, every guard refuses.
    let again = reconcile::replay(&replayer, &found.script, false)
        .await
        .unwrap();
    assert_eq!(again.applied, 0, "{again:?}");

    // What is left between the two: no lost rows but 5 (changed on both now), the
    // conflicts, the new rows.
    let after = reconcile::reconcile(&old_side, &new_side, &schemas, fork, &mut |_| {})
        .await
        .unwrap();
    assert!(after.lost.is_empty(), "{:?}", after.lost);
    assert_eq!(keys(&after.conflicts, None).await, ["id=5", "id=6", "id=9"]);
    assert_eq!(
        keys(&after.new_since_failover, None).await,
        ["id=30", "id=8"]
    );
}

/// The whole failover stage of `make demo` (four drills, the reconciliation after the
/// killed primary, the recovery). It kills primaries and ends CDC from the source, so the
/// world is rebuilt afresh afterwards (`world.sh down --purge`, `up`), whatever happened,
/// for the test binaries that run after this one.
#[tokio::test]
async fn killed_primary_drill_names_every_lost_write_and_replays_them() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let out = cutover_rehearsal::failover_stage::run(&world, &mut |l| println!("{l}")).await;
    let rebuilt = world.rebuild();
    assert!(
        rebuilt.is_ok(),
        "the world was rebuilt after the drill: {rebuilt:?}"
    );
    let out = out.unwrap();
    let r = &out["reconciliation"];
    println!(
        "{}",
        serde_json::to_string_pretty(&{
            let mut r = r.clone();
            r["script"] = serde_json::Value::Null;
            r
        })
        .unwrap()
    );
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let seqs = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect()
    };
    // Lost, found by the function's reconcile, equals the writer's count key for key: the
    // writes it saw acknowledged by eu-west-1 and missing on ap-southeast-1, plus only
    // those of its failed attempts that were in flight to eu-west-1 at the kill (committed
    // there, their acknowledgement lost with the server: lost writes too).
    let in_flight = seqs(&r["in_flight_failed"]);
    let unacknowledged = seqs(&r["unacknowledged"]);
    assert!(n(&r["writer_lost"]) > 0, "the drill lost nothing: {r}");
    assert!(
        unacknowledged.iter().all(|s| in_flight.contains(s)),
        "a found row that is no failed attempt in flight at the kill: {r}"
    );
    assert!(
        unacknowledged.len() <= in_flight.len(),
        "more unacknowledged rows than attempts in flight: {r}"
    );
    assert_eq!(seqs(&r["unexplained"]), Vec::<u64>::new(), "{r}");
    assert_eq!(seqs(&r["missed"]), Vec::<u64>::new(), "{r}");
    assert_eq!(
        n(&r["lost_found_writes"]),
        n(&r["writer_lost"]) + unacknowledged.len() as u64,
        "{r}"
    );
    // …and beside drill.writes, only the balance updated on the old primary alone.
    assert_eq!(
        r["lost_other"],
        serde_json::json!(["drill.balances id=1"]),
        "{r}"
    );
    assert_eq!(n(&r["lost_found"]), n(&r["lost_found_writes"]) + 1, "{r}");
    assert_eq!(n(&r["written_after_failover_reported_lost"]), 0, "{r}");
    assert!(n(&r["new_since_failover_writes"]) > 0, "{r}");
    let conflicts: Vec<String> = r["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["table"].as_str().unwrap(),
                c["key"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(conflicts, ["drill.balances id=2"], "{r}");
    // The script the operator read (replay-script), applied by replay: dry run, then for real.
    let sql = r["script"].as_str().unwrap();
    println!(
        "the script's head:\n{}",
        sql.lines().take(14).collect::<Vec<_>>().join("\n")
    );
    assert!(sql.contains("-- Conflicts: NOT applied"), "{sql}");
    assert!(sql.contains("-- drill.balances id=2:"), "{sql}");
    assert_eq!(
        n(&r["replay_dry_run"]["applied"]),
        n(&r["lost_found"]),
        "{r}"
    );
    assert_eq!(n(&r["replay"]["applied"]), n(&r["lost_found"]), "{r}");
    assert_eq!(n(&r["replay"]["conflicts"]), 1, "{r}");
    assert_eq!(n(&r["missing_after_replay"]), 0, "{r}");
    assert_eq!(n(&r["lost_after_replay"]), 0, "{r}");
    assert_eq!(r["validation_after_replay"], "MATCH", "{r}");
    assert_eq!(r["key_for_key"], true, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    println!(
        "reconcile counts: writer lost {} (acknowledged) + {} in flight, found lost in drill.writes {}, lost in all {}, new since the failover {}, conflicts {}, replayed {}",
        n(&r["writer_lost"]),
        unacknowledged.len(),
        n(&r["lost_found_writes"]),
        n(&r["lost_found"]),
        n(&r["new_since_failover"]),
        conflicts.len(),
        n(&r["replay"]["applied"])
    );
}
