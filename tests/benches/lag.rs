//! `make bench` — lag-probe's accuracy against real standbys, and its own load.
//!
//! The two standbys of the local world are set to network delays of 0 ms and
//! 250 ms, then 2000 ms and 250 ms; for each, one probing window (15 s at 1 s
//! cadence, `BENCH_LAG_WINDOW_S`) measures the heartbeat lag. Printed per
//! configured delay: samples, median, its error against the delay and the
//! allowed error (±25 ms or ±5 %), p99, the samples' resolution, polls per
//! second, and the probe's load on the primary (writes/s, connections).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cutover_core::db::DbAccess;
use cutover_rehearsal::world::{Node, World};
use lag_probe::config::ProbeConfig;
use lag_probe::handler::Env;
use lag_probe::probe::{self, Sinks};

fn main() {
    let window_s: u64 = std::env::var("BENCH_LAG_WINDOW_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let world = World::load().expect("the local world is up (make bench brings it up)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = ProbeConfig::from_vars(&world.vars()).unwrap();
        let env = Env::new(config, world.aws().await.unwrap());
        let access = DbAccess::load(&env.config.core.db, &env.aws.ssm(), "lag-probe").await.unwrap();
        let endpoints = env.endpoints(&access).await.unwrap();
        let settings = env.settings(Duration::from_secs(window_s), Duration::from_secs(1));
        let mut rows = Vec::new();
        let mut loads = Vec::new();
        for (eu, ap) in [(0u64, 250u64), (2000, 250)] {
            println!("[bench] lag: eu-west-1 apply delay {eu} ms, ap-southeast-1 {ap} ms, {window_s} s window");
            world.set_network_delay(Node::EuWest1, eu).await.unwrap();
            world.set_network_delay(Node::ApSoutheast1, ap).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let report = probe::run(&access, &endpoints, &settings, &Sinks::default(), None, false)
                .await
                .unwrap();
            for (region, delay) in [("eu-west-1", eu), ("ap-southeast-1", ap)] {
                let r = report.regions.iter().find(|r| r.region == region).unwrap().clone();
                rows.push((delay, r, report.duration_ms));
            }
            loads.push(report.load.clone());
        }
        for node in [Node::EuWest1, Node::ApSoutheast1] {
            world.set_network_delay(node, world.configured_delay_ms(node)).await.unwrap();
        }
        println!("\nlag-probe accuracy (heartbeat, one clock) against real streaming standbys");
        println!(
            "{:>10} {:<15}{:>8}{:>10}{:>9}{:>9}{:>6}{:>9}{:>11}{:>11}{:>9}",
            "delay ms", "standby", "samples", "median", "error", "allowed", "ok", "p99", "res p50", "res max", "polls/s"
        );
        for (delay, r, duration_ms) in &rows {
            let median = r.heartbeat.p50_ms.unwrap_or(f64::NAN);
            let error = median - *delay as f64;
            let allowed = (*delay as f64 * 0.05).max(25.0);
            println!(
                "{:>10} {:<15}{:>8}{:>10.1}{:>+9.1}{:>9.1}{:>6}{:>9.1}{:>11.1}{:>11.1}{:>9.1}",
                delay,
                r.region,
                r.heartbeat.samples,
                median,
                error,
                allowed,
                if error.abs() <= allowed { "yes" } else { "NO" },
                r.heartbeat.p99_ms.unwrap_or(f64::NAN),
                r.resolution_p50_ms.unwrap_or(f64::NAN),
                r.resolution_max_ms.unwrap_or(f64::NAN),
                r.polls as f64 / (*duration_ms as f64 / 1000.0),
            );
        }
        for (i, load) in loads.iter().enumerate() {
            println!(
                "probe load on the primary, window {}: {:.2} heartbeat writes/s, {} connections (1 primary + 1 per standby), write ack p50 {:?} ms",
                i + 1,
                load.writes_per_s,
                load.connections,
                load.write_ack.p50_ms
            );
        }
    });
}
