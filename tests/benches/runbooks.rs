//! `make bench` — the validation fan-out through the state machine infra deploys, against one
//! `validate` invocation of the same function, side by side in one run.
//!
//! A table of 16 × 20,000 rows on the source and the primary (the world's functions cut
//! segments of 20,000 rows: `.rehearsal/lambda.env`), identical. (a) one `validate`
//! invocation (the whole table in one Lambda); (b) the validation machine: plan, a Map of 16
//! `validate-segment` invocations (MaxConcurrency 8), merge — executed by moto's interpreter,
//! each invocation through the world's router to `cargo lambda watch`. Median of 3 rounds,
//! alternated. This machine has 2 cores: parallel segments share them with both PostgreSQL
//! servers, moto and the router, so the fan-out shows its overhead here, not its speed-up.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cutover_rehearsal::runbooks::{self, Router};
use cutover_rehearsal::world::{Node, World};
use serde_json::json;

const SEGMENTS: i64 = 16;
const SEGMENT_ROWS: i64 = 20_000;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let world = World::load().expect("the local world is up (make bench brings it up)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rows = SEGMENTS * SEGMENT_ROWS;
        for node in [Node::Source, Node::UsEast1] {
            let c = world.admin_db(node, "app").await.unwrap();
            c.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS drill;
                 DROP TABLE IF EXISTS drill.bench_fanout;
                 CREATE TABLE drill.bench_fanout (id bigint PRIMARY KEY, label text NOT NULL, amount numeric(12,2), at timestamptz NOT NULL);
                 INSERT INTO drill.bench_fanout SELECT g, 'row ' || g, g * 1.25, '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, {rows}) g;
                 ANALYZE drill.bench_fanout;
                 GRANT USAGE ON SCHEMA drill TO PUBLIC;
                 GRANT SELECT ON drill.bench_fanout TO PUBLIC;"
            ))
            .await
            .unwrap();
        }
        let router = Router::of(&world).unwrap();
        router.reset().await.unwrap();
        let arn = runbooks::install(&world, "validation").await.unwrap();
        let tables = json!(["drill.bench_fanout"]);
        // Warm: the first invocation builds the function under cargo lambda watch.
        router
            .invoke("data-validator", json!({"command": "validate", "tables": tables}))
            .await
            .unwrap();
        let rounds = 3;
        let (mut one, mut fan, mut segs) = (Vec::new(), Vec::new(), 0);
        for round in 0..rounds {
            let started = Instant::now();
            let out = router
                .invoke("data-validator", json!({"command": "validate", "tables": tables}))
                .await
                .unwrap();
            one.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(out["verdict"], "MATCH", "{out}");
            let exec = runbooks::run(&world, &arn, &json!({"tables": tables}), Duration::from_secs(600))
                .await
                .unwrap();
            assert!(exec.succeeded(), "{}", exec.timeline());
            segs = exec.output.as_ref().unwrap()["tables"][0]["segments"].as_u64().unwrap();
            // The execution's own clock (its history), not this process's polling.
            let ms = exec.steps.last().map_or(exec.wall_ms, |s| s.at_ms) as f64;
            fan.push(ms);
            println!(
                "[bench] fan-out round {}/{rounds}: one validate {:.0} ms, state machine ({segs} segments) {ms:.0} ms",
                round + 1,
                one.last().unwrap()
            );
        }
        let profile = world.get("CUTOVER_LAMBDA_PROFILE").unwrap_or("dev").to_string();
        println!(
            "\nvalidation fan-out: {rows} identical rows, median of {rounds} rounds (this machine: 2 cores; the function as cargo lambda watch serves it, {profile} profile)"
        );
        println!("{:<52} {:>10} {:>12}", "method", "wall ms", "x (a)");
        let (a, b) = (median(&mut one), median(&mut fan));
        println!("{:<52} {a:>10.0} {:>12.2}", "(a) one validate invocation", 1.0);
        println!(
            "{:<52} {b:>10.0} {:>12.2}",
            format!("(b) state machine: plan, Map of {segs} segments, merge"),
            b / a
        );
        println!("the fan-out takes {:.2}x one invocation here", b / a);
        for node in [Node::Source, Node::UsEast1] {
            let c = world.admin_db(node, "app").await.unwrap();
            c.batch_execute("DROP TABLE IF EXISTS drill.bench_fanout").await.unwrap();
        }
    });
}
