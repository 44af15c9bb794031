//! `rehearsal`: the program behind `make demo`.
//!
//! Stage by stage, it drives the local three-region world and prints what it
//! measured. Stages later issues add (validation, lag, traffic, failover) run
//! after the ones here.

use std::process::ExitCode;

use cutover_rehearsal::{replication, world::World};

#[tokio::main]
async fn main() -> ExitCode {
    let probes: usize = std::env::var("CUTOVER_DEMO_PROBES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let world = match World::load() {
        Ok(world) => world,
        Err(e) => {
            eprintln!("rehearsal: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("== stage 1/1: the world is alive — a row written on the source reaches every region ({probes} probes)");
    let report = match replication::measure(&world, probes, |line| println!("   {line}")).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("rehearsal: replication stage failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    print!("{}", replication::render(&report));
    let mut ok = true;
    for (node, matches) in replication::delays_match(&report) {
        println!(
            "   {node}: measured primary->standby delay {} the configured delay",
            if matches { "matches" } else { "DOES NOT match" }
        );
        ok &= matches;
    }
    let out_dir = world.root().join("rehearsal-report");
    if std::fs::create_dir_all(&out_dir).is_ok() {
        let json = serde_json::json!({ "replication": report });
        let path = out_dir.join("report.json");
        match serde_json::to_string_pretty(&json).map(|text| std::fs::write(&path, text)) {
            Ok(Ok(())) => println!("\nreport: {}", path.display()),
            _ => eprintln!("rehearsal: could not write {}", path.display()),
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
