//! `make bench` — the region-loss drill, run several times: RTO from the kill (detection
//! included) against the 30 s target, one promotion per run, and the writes lost against
//! the number predicted before the kill. `BENCH_REGION_LOSS_RUNS` sets the runs (3).
//! Each run kills us-east-1, so the world is rebuilt after each.

#![allow(clippy::unwrap_used)]

use cutover_rehearsal::world::World;

fn main() {
    let world = World::load().expect("the local world is up (make bench brings it up)");
    let runs: usize = std::env::var("BENCH_REGION_LOSS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for run in 1..=runs {
        let out = runtime.block_on(cutover_rehearsal::region_loss::run(&world, &mut |_| {}));
        world.rebuild().unwrap();
        let out = out.unwrap();
        let at = |i: usize| out["timeline"][i]["ms"].as_i64();
        let row = (
            out["to"].as_str().unwrap_or("-").to_string(),
            out["rto_from_kill_ms"].as_i64(),
            at(3).into_iter().chain(at(4)).min(),
            at(5),
            at(6),
            out["promotions"].as_u64().unwrap_or(0),
            out["lost"].as_u64(),
            out["predicted_lost_writes"].as_u64(),
            out["predicted_loss_ms"].as_f64(),
            out["returned_region"]["healed"].as_bool().unwrap_or(false),
        );
        println!("[bench] region loss run {run}/{runs}: {row:?}");
        if row.5 != 1 {
            println!("[bench]   outcomes: {}", out["examples"]);
        }
        rows.push(row);
    }
    let f = |v: Option<i64>| v.map_or("-".to_string(), |m| format!("{:.1}", m as f64 / 1000.0));
    println!("\nregion loss: us-east-1 lost whole, {runs} runs (seconds from the kill)");
    println!(
        "{:<4} {:<15} {:>8} {:>8} {:>9} {:>10} {:>6} {:>11} {:>6} {:>8}",
        "run",
        "new writer",
        "alarm",
        "decided",
        "promoted",
        "RTO",
        "promo",
        "lost/pred",
        "lag",
        "healed"
    );
    for (i, r) in rows.iter().enumerate() {
        println!(
            "{:<4} {:<15} {:>8} {:>8} {:>9} {:>10} {:>6} {:>11} {:>6} {:>8}",
            i + 1,
            r.0,
            f(r.2),
            f(r.3),
            f(r.4),
            f(r.1),
            r.5,
            format!(
                "{}/{}",
                r.6.map_or("-".into(), |n| n.to_string()),
                r.7.map_or("-".into(), |n| n.to_string())
            ),
            r.8.map_or("-".into(), |l| format!("{l:.0}ms")),
            r.9
        );
    }
    let mut rto: Vec<i64> = rows.iter().filter_map(|r| r.1).collect();
    rto.sort_unstable();
    let exact = rows.iter().filter(|r| r.6.is_some() && r.6 == r.7).count();
    let within_two = rows
        .iter()
        .filter(|r| matches!((r.6, r.7), (Some(l), Some(p)) if l.abs_diff(p) <= 2))
        .count();
    println!(
        "RTO from the kill: median {} s, max {} s (target < 30 s); one promotion in {} of {runs} runs; loss equal to the prediction in {exact} of {runs}, within 2 writes in {within_two}",
        f(rto.get(rto.len() / 2).copied()),
        f(rto.last().copied()),
        rows.iter().filter(|r| r.5 == 1).count(),
    );
}
