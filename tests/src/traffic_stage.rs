//! The traffic stage: a canary that a watched alarm interrupts (rolled back in
//! every region), then a clean region-by-region run to 100 % green in all three
//! regions. The rehearsal plays EventBridge: it delivers the alarm event and the
//! tick schedule (every second instead of every minute) to the traffic-shifter's
//! real handler; the weights are read back from the listeners (moto's ELBv2).

use std::time::{Duration, Instant};

use cutover_core::state::now_ms;
use serde_json::{json, Value};
use traffic_shifter::deployment::Status;
use traffic_shifter::handler::handle;

use crate::traffic::{green_weights, reset, set_alarm, shifter};
use crate::world::{World, WorldError};

fn fail(e: impl std::fmt::Display) -> WorldError {
    WorldError::Setup(e.to_string())
}

pub async fn run(world: &World, progress: &mut dyn FnMut(String)) -> Result<Value, WorldError> {
    let s = shifter(world).await?;
    reset(world, &s).await?;
    let t0 = now_ms();
    let mut timeline: Vec<Value> = Vec::new();
    let mut sample = |weights: &std::collections::BTreeMap<String, i32>, note: &str| {
        let at = now_ms();
        for (region, green) in weights {
            timeline.push(json!({"t_ms": at - t0, "region": region, "green": green, "blue": 100 - green, "note": note}));
        }
    };
    sample(&green_weights(world, &s).await?, "start");

    // 1. A canary, interrupted by an alarm.
    progress("canary-20-10m in all regions, then app-5xx-local goes to ALARM in eu-west-1".into());
    let o = handle(
        &s,
        json!({"command": "start", "plan": "canary-20-10m", "scope": "all"}),
        None,
    )
    .await
    .map_err(fail)?;
    let w = green_weights(world, &s).await?;
    progress(format!("  {}", o.summary));
    sample(&w, "canary 20 %");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let aws = world.aws().await?;
    let eu = aws.cloudwatch(&"eu-west-1".parse().map_err(fail)?);
    set_alarm(&eu, "app-5xx-local", "ALARM").await?;
    let event = json!({
        "version": "0", "id": format!("rehearsal-alarm-{}", now_ms()), "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-24T10:00:00Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"alarmName": "app-5xx-local", "state": {"value": "ALARM"}, "previousState": {"value": "OK"}}
    });
    let started = Instant::now();
    let r = handle(&s, event, None).await.map_err(fail)?;
    let rollback_ms = started.elapsed().as_secs_f64() * 1000.0;
    let w = green_weights(world, &s).await?;
    sample(&w, "alarm: rolled back");
    let rolled_back = r.deployment.as_ref().map(|d| d.status) == Some(Status::RolledBack)
        && w.values().all(|g| *g == 0);
    progress(format!(
        "  {} in {rollback_ms:.0} ms (event received -> 100 % blue verified in all regions)",
        r.summary
    ));
    set_alarm(&eu, "app-5xx-local", "OK").await?;

    // 2. A clean run, region by region.
    progress(
        "linear-50-every-2s, region by region with a 2 s bake between regions; ticks every second"
            .into(),
    );
    let o = handle(
        &s,
        json!({"command": "start", "plan": "linear-50-every-2s", "scope": "region-by-region", "region_bake": "2s"}),
        None,
    )
    .await
    .map_err(fail)?;
    sample(&green_weights(world, &s).await?, "start");
    progress(format!("  {}", o.summary));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut status = o.deployment.map(|d| d.status);
    let mut ticks = 0;
    while status == Some(Status::Running) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ticks += 1;
        let t = handle(
            &s,
            json!({"command": "tick", "request_id": format!("rehearsal-tick-{ticks}")}),
            None,
        )
        .await
        .map_err(fail)?;
        status = t.deployment.as_ref().map(|d| d.status);
        if !t.steps.is_empty() {
            progress(format!("  tick {ticks}: {}", t.summary));
            sample(&green_weights(world, &s).await?, "step");
        }
    }
    let w = green_weights(world, &s).await?;
    let all_green = status == Some(Status::Succeeded) && w.values().all(|g| *g == 100);
    progress(String::new());
    progress(format!(
        "{:>8}  {:<16}{:>6}{:>7}  note",
        "t (s)", "region", "blue", "green"
    ));
    for p in &timeline {
        progress(format!(
            "{:>8.1}  {:<16}{:>6}{:>7}  {}",
            p["t_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            p["region"].as_str().unwrap_or(""),
            p["blue"].as_i64().unwrap_or(-1),
            p["green"].as_i64().unwrap_or(-1),
            p["note"].as_str().unwrap_or("")
        ));
    }
    Ok(json!({
        "ok": rolled_back && all_green,
        "rollback_ms": rollback_ms,
        "rolled_back": rolled_back,
        "all_green": all_green,
        "ticks": ticks,
        "timeline": timeline,
    }))
}
