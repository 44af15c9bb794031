//! `make bench` — the cutover's write unavailability, side by side in one run.
//!
//! The rehearsal's application commits a numbered row every ~2 ms through SSM while the
//! cutover function moves it from the source to the target (the switch) and back (the
//! fallback). Unavailability = last acknowledged write on one side to the first on the
//! other. Two ways of proving equality at the frozen point, alternated, 3 rounds each:
//! (a) re-validate only the tables that changed since the last passing validation (the
//! cutover's way: change counters), (b) re-validate every table, as the usual practice
//! does. Each round also counts lost and duplicated writes (must be 0).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cutover_rehearsal::cutover_stage::{restore, switch_and_fall_back};
use cutover_rehearsal::world::World;

/// One way of validating at the frozen point: its name, switch, fallback and validation
/// times per round, and the lost plus duplicated writes of all rounds.
type Row = (&'static str, Vec<f64>, Vec<f64>, Vec<f64>, u64);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let world = World::load().expect("the local world is up (make bench brings it up)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rounds = 3;
        let mut rows: Vec<Row> = vec![
            ("(a) changed tables only (cutover)", vec![], vec![], vec![], 0),
            ("(b) every table (usual practice)", vec![], vec![], vec![], 0),
        ];
        for round in 0..rounds {
            for (i, everything) in [false, true].into_iter().enumerate() {
                let r = switch_and_fall_back(&world, Duration::from_secs(3), everything, &mut |_| {})
                    .await
                    .unwrap();
                restore(&world).await.unwrap();
                let row = &mut rows[i];
                row.1.push(r["unavailability_switch_ms"].as_f64().unwrap_or(f64::NAN));
                row.2.push(r["unavailability_fallback_ms"].as_f64().unwrap_or(f64::NAN));
                row.3.push(r["final_validation_ms"].as_f64().unwrap_or(f64::NAN));
                row.4 += r["lost_on_source"].as_u64().unwrap_or(0)
                    + r["lost_on_target"].as_u64().unwrap_or(0)
                    + r["duplicated"].as_u64().unwrap_or(0);
                println!(
                    "[bench] cutover round {}/{rounds} {}: switch {:.0} ms, fallback {:.0} ms, final validation {:.0} ms",
                    round + 1,
                    row.0,
                    row.1.last().unwrap(),
                    row.2.last().unwrap(),
                    row.3.last().unwrap()
                );
            }
        }
        println!("\ncutover: write unavailability (median of {rounds} rounds, this machine: 2 cores, bench profile, moto and PostgreSQL on loopback)");
        println!("{:<38} {:>10} {:>12} {:>16} {:>14}", "final validation", "switch ms", "fallback ms", "validation ms", "lost+dup");
        let mut medians = Vec::new();
        for (name, mut s, mut f, mut v, bad) in rows {
            let (ms, mf, mv) = (median(&mut s), median(&mut f), median(&mut v));
            println!("{name:<38} {ms:>10.0} {mf:>12.0} {mv:>16.0} {bad:>14}");
            medians.push(ms);
        }
        println!(
            "the switch's window with (a) is {:.2}x the window with (b)",
            medians[0] / medians[1]
        );
    });
}
