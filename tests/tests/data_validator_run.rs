//! data-validator runs end to end: checkpoints in DynamoDB (moto), a run killed
//! mid-way that resumes without redoing finished segments, the deadline, and
//! the Lambda handler against the world's real app tables.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::state::StateStore;
use cutover_rehearsal::world::{Node, World};
use data_validator::engine::Options;
use data_validator::handler::{handle, new_run_id, Env, ValidatorConfig};
use data_validator::ident::TableRef;
use data_validator::run::{Validator, Verdict};
use data_validator::side::Side;

async fn validator(world: &World, schema: &str, options: Options) -> Validator {
    for node in [Node::Source, Node::UsEast1] {
        let admin = world.admin(node).await.unwrap();
        if admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = 'dv_run'", &[])
            .await
            .unwrap()
            .is_none()
        {
            // Another test binary may race us to it; losing that race is fine.
            let _ = admin.batch_execute("CREATE DATABASE dv_run").await;
        }
        let c = world.admin_db(node, "dv_run").await.unwrap();
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.big (id bigint PRIMARY KEY, v text, n numeric(10,2));
             INSERT INTO {schema}.big SELECT g, 'value ' || g, g / 4.0 FROM generate_series(1, 20000) g;
             ANALYZE {schema}.big;"
        ))
        .await
        .unwrap();
        if node == Node::UsEast1 {
            c.batch_execute(&format!(
                "UPDATE {schema}.big SET v = 'drift' WHERE id IN (5, 19999); DELETE FROM {schema}.big WHERE id = 10000;"
            ))
            .await
            .unwrap();
        }
    }
    let settings = world.core_settings().unwrap();
    let aws = world.aws().await.unwrap();
    Validator {
        source: Side::Postgres {
            label: "source".into(),
            client: world.admin_db(Node::Source, "dv_run").await.unwrap(),
        },
        target: Side::Postgres {
            label: "target".into(),
            client: world.admin_db(Node::UsEast1, "dv_run").await.unwrap(),
        },
        store: StateStore::new(aws.dynamodb(), settings.state_table),
        notifier: None,
        metrics: None,
        options,
    }
}

fn segmented() -> Options {
    Options {
        segment_rows: 2000,
        bucket_rows: 200,
        leaf_rows: 32,
        ..Options::default()
    }
}

#[tokio::test]
async fn a_killed_run_resumes_without_redoing_finished_segments() {
    let world = World::load().expect("the local world is up");
    let schema = format!("resume_{}", std::process::id());
    let validator = Arc::new(validator(&world, &schema, segmented()).await);
    let tables = vec![TableRef::new(schema.clone(), "big")];
    let run_id = new_run_id();

    let task = {
        let (validator, tables, run_id) = (validator.clone(), tables.clone(), run_id.clone());
        tokio::spawn(async move { validator.validate(&run_id, &tables, None).await })
    };
    // Kill it once a few segments are checkpointed.
    let started = Instant::now();
    loop {
        let done = match validator.segments(&run_id).await {
            Ok(s) => s.iter().filter(|(c, _)| c.done).count(),
            Err(_) => 0,
        };
        if done >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "segments never completed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    let _ = task.await;
    let segments = validator.segments(&run_id).await.unwrap();
    let total = segments.len();
    let done_before = segments.iter().filter(|(c, _)| c.done).count();
    assert!(total >= 8, "the table was planned into {total} segments");
    assert!(done_before < total, "the kill came before the end");

    let outcome = validator.validate(&run_id, &tables, None).await.unwrap();
    assert_eq!(
        outcome.segments_validated_now as usize,
        total - done_before,
        "finished segments are not redone"
    );
    let table = &outcome.summary.tables[0];
    assert_eq!(outcome.summary.verdict, Verdict::Mismatch);
    assert_eq!(
        (
            table.different,
            table.missing_in_target,
            table.extra_in_target
        ),
        (2, 1, 0)
    );
    assert_eq!(table.source_rows, 20000);
    assert_eq!(table.target_rows, 19999);
    // In key order, not text order (where id=10000 comes before id=5).
    assert_eq!(table.first_keys, ["id=5", "id=10000", "id=19999"]);
    // One DIFF item per differing row, and a query returns them in key order.
    let pk = cutover_core::state::keys::validation_run(&run_id).pk;
    let stored: Vec<String> = validator
        .store
        .query_prefix::<serde_json::Value>(&pk, "DIFF#")
        .await
        .unwrap()
        .into_iter()
        .map(|(_, item)| item.value["key"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stored, ["id=5", "id=10000", "id=19999"]);
    // The RUN item holds no table: each table's summary is an item of its own.
    let run = validator
        .store
        .get::<serde_json::Value>(&cutover_core::state::keys::validation_run(&run_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.value["tables"], serde_json::json!([]));
    let summaries = validator
        .store
        .query_prefix::<serde_json::Value>(&pk, "SUMMARY#")
        .await
        .unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].1.value["different"], 2);

    // A third call finds nothing left to do and the same answer.
    let again = validator.validate(&run_id, &tables, None).await.unwrap();
    assert_eq!(again.segments_validated_now, 0);
    assert_eq!(again.summary.tables[0].different, 2);
}

#[tokio::test]
async fn a_run_at_its_deadline_stops_and_says_how_to_continue() {
    let world = World::load().expect("the local world is up");
    let schema = format!("deadline_{}", std::process::id());
    let validator = validator(&world, &schema, segmented()).await;
    let tables = vec![TableRef::new(schema.clone(), "big")];
    let run_id = new_run_id();
    let outcome = validator
        .validate(&run_id, &tables, Some(Instant::now()))
        .await
        .unwrap();
    // The first segment always starts (it is cut inside when it is longer than the
    // time left); these segments are short, so it ends and the next does not start.
    assert_eq!(outcome.segments_validated_now, 1);
    assert_eq!(outcome.summary.verdict, Verdict::Incomplete);
    let resume = outcome.resume.expect("a resume event");
    assert_eq!(resume["command"], "validate");
    assert_eq!(resume["run_id"], run_id.as_str());
    // Continuing with that event finishes the run.
    let finished = validator.validate(&run_id, &tables, None).await.unwrap();
    assert_eq!(finished.summary.verdict, Verdict::Mismatch);
    assert!(finished.resume.is_none());
}

#[tokio::test]
async fn the_handler_validates_the_app_schema_and_rejects_bad_events_before_connecting() {
    let world = World::load().expect("the local world is up");
    // world.env holds what the function's environment would: suffix, topic ARNs, endpoints.
    let vars = world.vars();
    assert!(vars.optional("CUTOVER_VALIDATION_TOPIC_ARN").is_some());
    let env = Env {
        config: ValidatorConfig::from_vars(&vars).unwrap(),
        aws: world.aws().await.unwrap(),
    };

    for bad in [
        include_str!("../../events/data-validator/invalid/unknown-command.json"),
        include_str!("../../events/data-validator/invalid/bad-run-id.json"),
    ] {
        let err = handle(&env, serde_json::from_str(bad).unwrap(), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), cutover_core::ErrorKind::InvalidInput, "{err}");
    }

    let event = serde_json::from_str(include_str!(
        "../../events/data-validator/validate-tables.json"
    ))
    .unwrap();
    let out = handle(&env, event, None).await.unwrap();
    assert_eq!(
        out["verdict"],
        "MATCH",
        "{}",
        out["report"].as_str().unwrap_or("")
    );
    assert_eq!(out["tables"].as_array().unwrap().len(), 5);
    let run_id = out["run_id"].as_str().unwrap().to_string();

    let status = handle(
        &env,
        serde_json::json!({"command": "status", "run_id": run_id}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status["verdict"], "MATCH");
    let unknown = handle(
        &env,
        serde_json::json!({"command": "status", "run_id": "no-such-run"}),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        unknown.to_string().contains("no validation run"),
        "{unknown}"
    );

    let missing = handle(
        &env,
        serde_json::json!({"command": "validate", "tables": ["app.no_such_table"]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(missing["verdict"], "MISMATCH");
    assert!(
        missing["report"]
            .as_str()
            .unwrap()
            .contains("exists on neither side"),
        "{}",
        missing["report"]
    );
}

#[tokio::test]
async fn a_table_without_statistics_is_sized_by_counting_its_rows() {
    let world = World::load().expect("the local world is up");
    let schema = format!("unanalysed_{}", std::process::id());
    let validator = validator(&world, &schema, segmented()).await;
    // Never analysed: reltuples is -1. Sized on it, the table was one segment and one
    // bucket, and a single difference loaded it whole from both sides.
    for side in [&validator.source, &validator.target] {
        let Side::Postgres { client, .. } = side else {
            unreachable!()
        };
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.fresh (id bigint PRIMARY KEY, v text);
                 INSERT INTO {schema}.fresh SELECT g, 'v' || g FROM generate_series(1, 20000) g;"
            ))
            .await
            .unwrap();
    }
    let tables = vec![TableRef::new(schema.clone(), "fresh")];
    let run_id = new_run_id();
    let outcome = validator.validate(&run_id, &tables, None).await.unwrap();
    let table = &outcome.summary.tables[0];
    assert!(
        table.segments >= 8,
        "20,000 rows at 2,000 per segment, planned into {} segments",
        table.segments
    );
    assert_eq!((table.source_rows, table.target_rows), (20000, 20000));
    assert_eq!(outcome.summary.verdict, Verdict::Match);
}

#[tokio::test]
async fn the_world_seeds_at_benchmark_sizes() {
    // tests/env/seed.sql multiplied 32-bit row numbers: above 6,835 customers an order's
    // total overflowed ("integer out of range") and the world could not be seeded.
    let world = World::load().expect("the local world is up");
    let admin = world.admin(Node::Source).await.unwrap();
    let db = format!("seed_check_{}", std::process::id());
    // One statement per call: CREATE DATABASE refuses a multi-statement batch.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let c = world.admin_db(Node::Source, &db).await.unwrap();
    let root = cutover_rehearsal::world::repo_root();
    let schema = std::fs::read_to_string(root.join("tests/env/schema.sql")).unwrap();
    let seed = std::fs::read_to_string(root.join("tests/env/seed.sql"))
        .unwrap()
        .replace(":customers", "7000");
    c.batch_execute(&schema).await.unwrap();
    c.batch_execute(&seed).await.unwrap();
    let customers: i64 = c
        .query_one("SELECT count(*) FROM app.customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(customers, 7000);
    drop(c);
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_segment_cut_by_the_deadline_resumes_where_it_stopped_and_equals_an_uncut_run() {
    let world = World::load().expect("the local world is up");
    let schema = format!("cut_{}", std::process::id());
    // One segment of 20,000 rows: before, the deadline was only checked between
    // segments, so a segment longer than an invocation started over every time.
    let options = Options {
        segment_rows: 1_000_000,
        bucket_rows: 200,
        leaf_rows: 32,
        ..Options::default()
    };
    let validator = validator(&world, &schema, options).await;
    let tables = vec![TableRef::new(schema.clone(), "big")];

    let uncut = validator
        .validate(&new_run_id(), &tables, None)
        .await
        .unwrap();
    assert_eq!(uncut.summary.tables[0].segments, 1);

    let run_id = new_run_id();
    let mut invocations = 0;
    let mut positions = Vec::new();
    let cut = loop {
        invocations += 1;
        assert!(invocations < 50, "the run does not advance");
        // A deadline already passed: each invocation compares a little and stops.
        let outcome = validator
            .validate(&run_id, &tables, Some(Instant::now()))
            .await
            .unwrap();
        if outcome.resume.is_none() {
            break outcome;
        }
        assert_eq!(outcome.summary.verdict, Verdict::Incomplete);
        let segments = validator.segments(&run_id).await.unwrap();
        let checkpoint = &segments[0].0;
        assert!(!checkpoint.done);
        let at: i64 = checkpoint
            .resume_from
            .as_deref()
            .expect("a resume position")
            .parse()
            .unwrap();
        positions.push(at);
    };
    assert!(
        invocations >= 3,
        "{invocations} invocations: the segment was cut"
    );
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "each invocation goes on where the last stopped: {positions:?}"
    );
    let (a, b) = (&uncut.summary.tables[0], &cut.summary.tables[0]);
    assert_eq!(cut.summary.verdict, uncut.summary.verdict);
    assert_eq!(
        (
            b.source_rows,
            b.target_rows,
            b.different,
            b.missing_in_target,
            b.extra_in_target
        ),
        (
            a.source_rows,
            a.target_rows,
            a.different,
            a.missing_in_target,
            a.extra_in_target
        )
    );
    assert_eq!(
        (b.source_rows, b.different, b.missing_in_target),
        (20000, 2, 1)
    );
    assert_eq!(b.first_keys, a.first_keys);
}

#[tokio::test]
async fn a_table_analysed_while_empty_is_sized_by_counting_its_rows() {
    let world = World::load().expect("the local world is up");
    let schema = format!("stale_{}", std::process::id());
    let validator = validator(&world, &schema, segmented()).await;
    // Analysed while empty (reltuples 0), then bulk-loaded; its change counters not
    // yet in the statistics (reset here, as a crash or a stats reset leaves them).
    // Sized on the 0, the table was one segment. And one analysed at 2,000 rows,
    // grown tenfold since: sized as its current pages say.
    for side in [&validator.source, &validator.target] {
        let Side::Postgres { client, .. } = side else {
            unreachable!()
        };
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.empty_then_loaded (id bigint PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
                 ANALYZE {schema}.empty_then_loaded;
                 INSERT INTO {schema}.empty_then_loaded SELECT g, 'v' || g FROM generate_series(1, 20000) g;
                 CREATE TABLE {schema}.grown (id bigint PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
                 INSERT INTO {schema}.grown SELECT g, 'v' || g FROM generate_series(1, 2000) g;
                 ANALYZE {schema}.grown;
                 INSERT INTO {schema}.grown SELECT g, 'v' || g FROM generate_series(2001, 20000) g;"
            ))
            .await
            .unwrap();
        // The loads' counters reach the statistics first (else they would arrive
        // after the reset), then the reset, checked.
        client
            .batch_execute("SELECT pg_stat_force_next_flush()")
            .await
            .unwrap();
        let modified = |table: &'static str| {
            let schema = schema.clone();
            async move {
                let n: i64 = client
                    .query_one(
                        "SELECT coalesce(n_mod_since_analyze, 0) FROM pg_stat_all_tables \
                         WHERE schemaname = $1 AND relname = $2",
                        &[&schema, &table],
                    )
                    .await
                    .unwrap()
                    .get(0);
                n
            }
        };
        for table in ["empty_then_loaded", "grown"] {
            let started = Instant::now();
            while modified(table).await < 18000 {
                assert!(started.elapsed() < Duration::from_secs(30), "no statistics");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            client
                .execute(
                    "SELECT pg_stat_reset_single_table_counters(($1 || '.' || $2)::regclass)",
                    &[&schema, &table],
                )
                .await
                .unwrap();
            assert_eq!(modified(table).await, 0);
        }
    }
    for table in ["empty_then_loaded", "grown"] {
        let tables = vec![TableRef::new(schema.clone(), table)];
        let outcome = validator
            .validate(&new_run_id(), &tables, None)
            .await
            .unwrap();
        let summary = &outcome.summary.tables[0];
        assert!(
            summary.segments >= 8,
            "{table}: 20,000 rows at 2,000 per segment, planned into {} segments",
            summary.segments
        );
        assert_eq!((summary.source_rows, summary.target_rows), (20000, 20000));
        assert_eq!(outcome.summary.verdict, Verdict::Match);
    }
}
