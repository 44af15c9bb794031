//! The lag stage: lag-probe's real code watches both standbys for a window at
//! one-second cadence while a 3-second lag spike is injected into eu-west-1,
//! then the spike is compared with what a 60-second average (CloudWatch's
//! AuroraGlobalDBReplicationLag resolution) would have shown.

use std::time::Duration;

use cutover_core::db::DbAccess;
use lag_probe::config::ProbeConfig;
use lag_probe::handler::Env;
use lag_probe::probe;
use serde_json::{json, Value};

use crate::world::{Node, World, WorldError};

fn setup(e: impl std::fmt::Display) -> WorldError {
    WorldError::Setup(e.to_string())
}

pub async fn run(world: &World, progress: &mut dyn FnMut(String)) -> Result<Value, WorldError> {
    let window_s: u64 = std::env::var("CUTOVER_DEMO_LAG_WINDOW_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(14); // the spike runs from 8 s to 11 s and must drain inside the window
    let config = ProbeConfig::from_vars(&world.vars()).map_err(setup)?;
    let env = Env::new(config, world.aws().await?);
    let access = DbAccess::load(&env.config.core.db, &env.aws.ssm(), "lag-probe").await?;
    let endpoints = env.endpoints(&access).await.map_err(setup)?;
    let settings = env.settings(Duration::from_secs(window_s), Duration::from_secs(1));
    let eu_delay = world.configured_delay_ms(Node::EuWest1);
    progress(format!(
        "probing for {window_s} s at 1 s cadence; a 3 s lag spike is injected into eu-west-1 at t=8 s for 3 s"
    ));
    let spike = async {
        tokio::time::sleep(Duration::from_secs(8)).await;
        let on = world
            .set_network_delay(Node::EuWest1, eu_delay + 3000)
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let off = world.set_network_delay(Node::EuWest1, eu_delay).await;
        on.and(off)
    };
    let sinks = env.sinks();
    let (report, spiked) = tokio::join!(
        probe::run(&access, &endpoints, &settings, &sinks, None, true),
        spike
    );
    spiked?;
    let report = report.map_err(setup)?;

    progress(String::new());
    progress(format!(
        "{:<16}{:>8}{:>10}{:>10}{:>10}{:>12}{:>12}{:>8}{:>12}",
        "region",
        "samples",
        "p50 ms",
        "p99 ms",
        "max ms",
        "engine p50",
        "resolution",
        "polls",
        "unreachable"
    ));
    for r in &report.regions {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        progress(format!(
            "{:<16}{:>8}{:>10}{:>10}{:>10}{:>12}{:>12}{:>8}{:>12}",
            r.region,
            r.heartbeat.samples,
            f(r.heartbeat.p50_ms),
            f(r.heartbeat.p99_ms),
            f(r.heartbeat.max_ms),
            f(r.engine.p50_ms),
            f(r.resolution_p50_ms),
            r.polls,
            r.unreachable
        ));
    }
    let eu: Vec<(u64, f64)> = report
        .timeline
        .iter()
        .filter(|p| p.region == "eu-west-1" && p.source == "heartbeat" && p.status == "ok")
        .filter_map(|p| p.lag_ms.map(|l| (p.at_ms, l)))
        .collect();
    let t0 = eu.first().map_or(0, |p| p.0);
    progress(String::new());
    progress("eu-west-1 heartbeat lag, one sample per second:".into());
    for (at, lag) in &eu {
        let bar = "#".repeat(((lag / 100.0).round() as usize).min(40));
        progress(format!(
            "  t={:>5.1}s {lag:>8.1} ms {bar}",
            (*at - t0) as f64 / 1000.0
        ));
    }
    let mean = eu.iter().map(|p| p.1).sum::<f64>() / eu.len().max(1) as f64;
    let peak = eu.iter().map(|p| p.1).fold(0.0, f64::max);
    let over_1s = eu.iter().filter(|p| p.1 > 1000.0).count();
    progress(format!(
        "at 1 s resolution the spike peaks at {peak:.0} ms ({over_1s} samples over the 1 s target); \
         averaged over the window ({} s, as a 60 s datapoint would be) it reads {mean:.0} ms",
        eu.len()
    ));
    progress(format!(
        "probe load on the primary: {} heartbeat writes ({:.2}/s), {} connections, {:.0} polls/s per standby",
        report.load.heartbeat_writes,
        report.load.writes_per_s,
        report.load.connections,
        report.load.polls_per_s_per_region
    ));
    let ok = over_1s >= 2 && report.regions.iter().all(|r| r.heartbeat.samples > 0);
    Ok(json!({
        "ok": ok,
        "window_s": window_s,
        "spike": {"region": "eu-west-1", "extra_ms": 3000, "at_s": 8, "for_s": 3,
                  "peak_ms": peak, "window_mean_ms": mean, "samples_over_1s": over_1s},
        "method": "delay-proxy: a TCP proxy holding the WAL stream for the delay (no netem on this kernel)",
        "probe": report,
    }))
}
