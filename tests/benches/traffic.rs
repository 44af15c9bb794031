//! `make bench` — traffic-shifter against moto: rollback latency and per-step overhead.
//!
//! (1) Rollback latency: 20 runs of a canary at 50 % in all three regions, then
//! a watched alarm's EventBridge event handed to the real handler; timed from
//! receiving the event to 100/0 verified (re-read) on all three listeners and
//! recorded in DynamoDB. p50 / p99 / max.
//! (2) A full linear plan (`linear-10-every-0s`: 10 steps × 3 regions) with zero
//! bake, 3 times: wall time per step, gates + write + verify + record included.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use cutover_rehearsal::traffic::{green_weights, reset, shifter};
use cutover_rehearsal::world::World;
use serde_json::json;
use traffic_shifter::handler::handle;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let world = World::load().expect("the local world is up (make bench brings it up)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let s = shifter(&world).await.unwrap();
        let runs = 20;
        let mut rollback = Vec::new();
        for i in 0..runs {
            reset(&world, &s).await.unwrap();
            handle(&s, json!({"command": "start", "plan": "canary-50-1h"}), None).await.unwrap();
            let event = json!({
                "version": "0", "id": format!("bench-{i}"), "detail-type": "CloudWatch Alarm State Change",
                "source": "aws.cloudwatch", "account": "1", "time": "t", "region": "eu-west-1", "resources": [],
                "detail": {"alarmName": "app-5xx-local", "state": {"value": "ALARM"}}
            });
            let started = Instant::now();
            let o = handle(&s, event, None).await.unwrap();
            rollback.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(o.action, "rolled-back");
            assert!(green_weights(&world, &s).await.unwrap().values().all(|g| *g == 0));
        }
        rollback.sort_by(f64::total_cmp);
        println!("[bench] traffic: rollback latency over {runs} runs");

        let mut per_step = Vec::new();
        for _ in 0..3 {
            reset(&world, &s).await.unwrap();
            let started = Instant::now();
            let o = handle(&s, json!({"command": "start", "plan": "linear-10-every-0s"}), None)
                .await
                .unwrap();
            let total = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(o.steps.len(), 10);
            per_step.push(total / 10.0);
        }
        per_step.sort_by(f64::total_cmp);
        reset(&world, &s).await.unwrap();

        println!("\ntraffic-shifter against moto (3 regions)");
        println!(
            "rollback: alarm event -> 100/0 verified in 3 regions + recorded: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 200 ms)",
            pct(&rollback, 50.0),
            pct(&rollback, 99.0),
            rollback.last().unwrap()
        );
        println!(
            "linear-10-every-0s: 10 steps x 3 regions, per step (gates + write + verify + record): median {:.1} ms (runs: {})",
            per_step[1],
            per_step.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(", ")
        );
    });
}
