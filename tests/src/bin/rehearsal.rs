//! `rehearsal`: the program behind `make demo`.
//!
//! Stage by stage, it drives the local three-region world with the functions'
//! own code and events, prints what it measured, and writes
//! `rehearsal-report/report.json`. It exits non-zero if any stage fails.

use std::process::ExitCode;
use std::time::Instant;

use cutover_rehearsal::world::World;
use cutover_rehearsal::{
    cutover_stage, data_validator_stage, failover_stage, lag_stage, region_loss, replication,
    traffic_stage,
};
use serde_json::{json, Map, Value};

const STAGES: usize = 9;

fn banner(n: usize, title: &str) {
    println!("\n== stage {n}/{STAGES}: {title}");
}

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
    let started = Instant::now();
    let mut report = Map::new();
    let mut summary: Vec<(String, bool, String)> = Vec::new();

    banner(1, &format!("the world is alive — a row written on the source reaches every region ({probes} probes)"));
    match replication::measure(&world, probes, |line| println!("   {line}")).await {
        Ok(r) => {
            println!();
            print!("{}", replication::render(&r));
            let mut ok = true;
            for (node, matches) in replication::delays_match(&r) {
                println!(
                    "   {node}: measured primary->standby delay {} the configured delay",
                    if matches { "matches" } else { "DOES NOT match" }
                );
                ok &= matches;
            }
            let detail = r
                .nodes
                .iter()
                .filter_map(|n| n.from_source_ms.map(|ms| format!("{} {ms:.0} ms", n.node)))
                .collect::<Vec<_>>()
                .join(", ");
            summary.push(("replication to every region".into(), ok, detail));
            report.insert("replication".into(), json!(r));
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("replication to every region".into(), false, e.to_string()));
        }
    }

    banner(2, "data validation (the validation state machine) — drift injected into the target is found row by row, repaired, and validated clean");
    match data_validator_stage::run(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let detail = format!(
                "drift found exactly; {} ms before repair, {} ms after; {} executions of the validation state machine",
                v["before_repair_ms"],
                v["after_repair_ms"],
                v["executions"].as_array().map_or(0, Vec::len)
            );
            summary.push(("data validation".into(), true, detail));
            report.insert("validation".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("data validation".into(), false, e.to_string()));
        }
    }

    banner(
        3,
        "the cutover — a failed gate, the switch under load and its fallback, then the runbook: its rollback branch, and cdc to done",
    );
    match cutover_stage::run(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let s = &v["switch"];
            let ms = |x: &Value| x.as_f64().map_or("-".into(), |v| format!("{v:.0}"));
            let detail = format!(
                "write unavailability: switch {} ms, fallback {} ms; {} writes acknowledged, lost {}, duplicated {}; final validation {}; freeze refused on drift: {}; runbook: drift -> {} {}, cdc -> {} in {} ms ({})",
                ms(&s["unavailability_switch_ms"]),
                ms(&s["unavailability_fallback_ms"]),
                s["acknowledged"],
                s["lost_on_source"].as_u64().unwrap_or(0) + s["lost_on_target"].as_u64().unwrap_or(0),
                s["duplicated"],
                s["final_validation"]["verdict"].as_str().unwrap_or("?"),
                v["failed_gate"]["advance"]["result"] == "refused",
                v["runbook_rollback"]["execution"]["status"].as_str().unwrap_or("?"),
                v["runbook_rollback"]["execution"]["error"].as_str().unwrap_or(""),
                v["finish"]["phase"].as_str().unwrap_or("?"),
                v["finish"]["execution"]["wall_ms"],
                v["finish"]["execution"]["status"].as_str().unwrap_or("?"),
            );
            summary.push(("cutover".into(), ok, detail));
            report.insert("cutover".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("cutover".into(), false, e.to_string()));
        }
    }

    banner(4, "replication lag per region at one-second resolution, with a lag spike a 60 s average hides");
    match lag_stage::run(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let regions = v["probe"]["regions"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .map(|r| {
                            format!(
                                "{} p50 {} ms",
                                r["region"].as_str().unwrap_or("?"),
                                r["heartbeat"]["p50_ms"]
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let detail = format!(
                "{regions}; spike peak {:.0} ms vs window mean {:.0} ms",
                v["spike"]["peak_ms"].as_f64().unwrap_or(0.0),
                v["spike"]["window_mean_ms"].as_f64().unwrap_or(0.0)
            );
            summary.push(("replication lag (heartbeat)".into(), ok, detail));
            report.insert("lag".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("replication lag (heartbeat)".into(), false, e.to_string()));
        }
    }

    banner(5, "blue/green traffic: a canary rolled back by an alarm, one rolled back on green's own 5XX share, then region by region to 100 % green with scaling");
    match traffic_stage::run(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let g = &v["green_only"];
            let detail = format!(
                "alarm rollback in {:.0} ms to 100 % blue in 3 regions; green's group at {:.1} % 5XX (the whole ALB {:.1} %, under its {} %) rolled back; then 100 % green in 3 regions after {} ticks, green 0 -> N -> live, blue -> 0",
                v["rollback_ms"].as_f64().unwrap_or(0.0),
                g["green_pct"].as_f64().unwrap_or(0.0),
                g["whole_pct"].as_f64().unwrap_or(0.0),
                g["whole_threshold_pct"],
                v["ticks"]
            );
            summary.push(("traffic shift".into(), ok, detail));
            report.insert("traffic".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("traffic shift".into(), false, e.to_string()));
        }
    }

    banner(
        6,
        "failover drills under load: a planned switchover, a killed primary (twice), and the fail-back home",
    );
    match failover_stage::run(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let detail = v["drills"]
                .as_array()
                .map(|ds| {
                    ds.iter()
                        .map(|d| {
                            format!(
                                "{} RTO {} ms, {} writes lost",
                                d["drill"].as_str().unwrap_or(""),
                                d["rto_ms"]
                                    .as_f64()
                                    .map_or("-".into(), |v| format!("{v:.0}")),
                                d["lost"]
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            let detail = match cutover_rehearsal::report::reconciliation_line(&v["reconciliation"])
            {
                Some(line) => format!("{detail}; {line}"),
                None => detail,
            };
            summary.push(("failover drills".into(), ok, detail));
            report.insert("failover".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("failover drills".into(), false, e.to_string()));
        }
    }
    println!("   crash at every step: a switchover us-east-1 -> eu-west-1 killed before each of its steps in turn, finished by the next trigger");
    match failover_stage::crash_drill(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let rounds = v["rounds"].as_array().map_or(&[][..], Vec::as_slice);
            let detail = format!(
                "{} of {} kill points finished by the next trigger with a higher epoch, one promotion and one writer each",
                rounds.iter().filter(|r| r["ok"] == true).count(),
                rounds.len()
            );
            summary.push(("crash at every step".into(), ok, detail));
            report.insert("crash_drill".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("crash at every step".into(), false, e.to_string()));
        }
    }

    banner(
        7,
        "nothing may move: us-east-1's server stopped for 10 s, then unreachable from eu-west-1 only past the grace period; every region's own control plane watches",
    );
    match region_loss::no_move(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let phase = |p: &Value| {
                format!(
                    "{} invocations, {} moves, alarms fired in {}",
                    p["invocations"],
                    p["moves"],
                    p["alarms_fired_ms"]
                        .as_object()
                        .filter(|o| !o.is_empty())
                        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                        .unwrap_or_else(|| "none".into())
                )
            };
            let detail = format!(
                "blip of 10 s: {}; eu-west-1 cut off for {} s: {}",
                phase(&v["blip"]),
                v["partition_held_ms"].as_u64().unwrap_or(0) / 1000,
                phase(&v["partial_partition"])
            );
            summary.push((
                "no move on a blip or a partial partition".into(),
                ok,
                detail,
            ));
            report.insert("no_move".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push((
                "no move on a blip or a partial partition".into(),
                false,
                e.to_string(),
            ));
        }
    }

    banner(
        8,
        "region loss: us-east-1 lost whole (database, WAL links, AWS); the survivors' own control planes detect, decide and move",
    );
    match region_loss::run(&world, &mut |line| println!("   {line}")).await {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let detail = format!(
                "us-east-1 -> {}: RTO {} ms from the kill (detection included), {} promotion among {} invocations, {} writes lost (predicted {})",
                v["to"].as_str().unwrap_or("-"),
                v["rto_from_kill_ms"],
                v["promotions"],
                v["invocations"],
                v["lost"],
                v["predicted_lost_writes"]
            );
            summary.push(("region loss".into(), ok, detail));
            report.insert("region_loss".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("region loss".into(), false, e.to_string()));
        }
    }

    banner(
        9,
        "two regions at once: the state table's replication held back, a switchover asked in eu-west-1 (to eu-west-1) and in ap-southeast-1 (to ap-southeast-1) together",
    );
    let raced = match world.rebuild() {
        Ok(()) => region_race(&world).await,
        Err(e) => Err(e),
    };
    match raced {
        Ok(v) => {
            let ok = v["ok"].as_bool().unwrap_or(false);
            let detail = format!(
                "both leases granted (one per region's replica); {} promotion, writer now {}",
                v["promotions"],
                v["writers"]
                    .as_array()
                    .map(|w| w
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
            summary.push(("two regions at once".into(), ok, detail));
            report.insert("region_race".into(), v);
        }
        Err(e) => {
            eprintln!("   failed: {e}");
            summary.push(("two regions at once".into(), false, e.to_string()));
        }
    }

    // The samples run through `cargo lambda` by run-demo.sh just before this program.
    let invoke_log = world.root().join("rehearsal-report/lambda-invoke.log");
    let fresh = std::fs::metadata(&invoke_log)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(1800));
    if let (true, Ok(text)) = (fresh, std::fs::read_to_string(&invoke_log)) {
        let last = text
            .lines()
            .rev()
            .find(|l| l.contains(" passed, "))
            .unwrap_or("")
            .to_string();
        let ok = last.contains(", 0 failed");
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| l.starts_with("[invoke] ok") || l.starts_with("[invoke] FAIL"))
            .map(|l| json!(l.trim_start_matches("[invoke] ")))
            .collect();
        println!(
            "\n   sample events through cargo lambda: {}",
            last.trim_start_matches("[invoke] ")
        );
        summary.insert(
            0,
            (
                "every sample event via cargo lambda".into(),
                ok,
                last.trim_start_matches("[invoke] ").to_string(),
            ),
        );
        report.insert(
            "lambda_invoke".into(),
            json!({"ok": ok, "summary": last, "invocations": lines}),
        );
    }

    match cutover_rehearsal::notifications::drain(&world).await {
        Ok(n) => {
            println!("\n   {} notifications were published to SNS (read back from the SQS capture queues)", n.len());
            report.insert("notifications".into(), Value::Array(n));
        }
        Err(e) => eprintln!("   reading the notifications failed: {e}"),
    }

    println!("\n== summary ({} s)", started.elapsed().as_secs());
    for (name, ok, detail) in &summary {
        println!(
            "   [{}] {name}: {detail}",
            if *ok { " ok " } else { "FAIL" }
        );
    }
    report.insert(
        "summary".into(),
        Value::Array(
            summary
                .iter()
                .map(|(stage, ok, detail)| json!({"stage": stage, "ok": ok, "detail": detail}))
                .collect(),
        ),
    );
    report.insert(
        "generated_at".into(),
        json!(time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()),
    );
    report.insert("duration_s".into(), json!(started.elapsed().as_secs()));
    let report = Value::Object(report);
    let out_dir = world.root().join("rehearsal-report");
    if std::fs::create_dir_all(&out_dir).is_ok() {
        let json_path = out_dir.join("report.json");
        let html_path = out_dir.join("index.html");
        let written = serde_json::to_string_pretty(&report)
            .map(|text| std::fs::write(&json_path, text))
            .map(|_| std::fs::write(&html_path, cutover_rehearsal::report::render_html(&report)));
        match written {
            Ok(Ok(())) => println!(
                "   report: {} and {}",
                html_path.display(),
                json_path.display()
            ),
            _ => eprintln!("rehearsal: could not write {}", out_dir.display()),
        }
    }
    if summary.iter().all(|(_, ok, _)| *ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Stage 9: the world rebuilt after the region loss, then the race with different targets.
async fn region_race(world: &World) -> Result<Value, cutover_rehearsal::world::WorldError> {
    region_loss::race(world, ["eu-west-1", "ap-southeast-1"], &mut |line| {
        println!("   {line}")
    })
    .await
}
