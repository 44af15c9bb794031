//! The traffic stage: a canary that a watched alarm interrupts (rolled back in
//! every region); a canary whose new group fails 40 % of its own requests —
//! 4 % of the whole ALB, under the whole-ALB alarm's 5 % — rolled back by the
//! gate on green's own target group; then a release region by region to 100 %
//! green in all three regions, green scaled 0 → N before the first step and the
//! old colour to 0 after it. The rehearsal plays EventBridge (the alarm event,
//! the tick schedule every second instead of every minute) and the ALB's
//! request metrics (PutMetricData into `AWS/ApplicationELB`); the weights are
//! read back from the listeners (moto's ELBv2), the task counts from moto's ECS.

use std::time::{Duration, Instant};

use cutover_core::state::now_ms;
use serde_json::{json, Value};
use traffic_shifter::deployment::Status;
use traffic_shifter::handler::handle;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, Statistic};
use traffic_shifter::alb::RegionAlb;

use crate::traffic::{green_weights, reset, set_alarm, shifter, tasks};
use crate::world::{World, WorldError};

/// The production whole-ALB 5XX alarm's threshold, per cent of requests
/// (`THRESHOLDS.errorRatePercent`, infra/components/monitoring.ts).
const WHOLE_ALB_THRESHOLD_PCT: f64 = 5.0;
/// The gate reads the last 5 minutes; the canary's requests are stamped this far
/// inside that window, so they leave it seconds after the canary is judged and
/// the next release is judged on clean numbers.
const VISIBLE_SECS: u64 = 8;
const GATE_WINDOW_SECS: u64 = 300;

/// One minute of the canary's traffic in a region, as the ALB would report it.
struct CanaryTraffic {
    requests: f64,
    green_requests: f64,
    green_errors: f64,
}

fn dims(pairs: &[(&str, String)]) -> Vec<Dimension> {
    pairs
        .iter()
        .map(|(n, v)| Dimension::builder().name(*n).value(v).build())
        .collect()
}

/// (green's group, blue's group) dimensions of a region's listener. The whole
/// ALB's target 5XX and requests are the two groups' sums (read per group: moto
/// matches a LoadBalancer-only query against every series that has it).
fn alb_dimensions(alb: &RegionAlb) -> Result<[Vec<Dimension>; 2], WorldError> {
    let lb = alb
        .load_balancer_dimension()
        .ok_or_else(|| fail("no LoadBalancer dimension"))?;
    let green = alb
        .green_dimension()
        .ok_or_else(|| fail("no TargetGroup dimension"))?;
    let blue = alb
        .swapped()
        .green_dimension()
        .ok_or_else(|| fail("no TargetGroup dimension"))?;
    Ok([
        dims(&[("TargetGroup", green), ("LoadBalancer", lb.clone())]),
        dims(&[("TargetGroup", blue), ("LoadBalancer", lb)]),
    ])
}

async fn put_traffic(
    cw: &aws_sdk_cloudwatch::Client,
    alb: &RegionAlb,
    t: &CanaryTraffic,
    at: std::time::SystemTime,
) -> Result<(), WorldError> {
    let [green, blue] = alb_dimensions(alb)?;
    let blue_requests = t.requests - t.green_requests;
    let mut data = Vec::new();
    for (d, requests, errors) in [
        (green, t.green_requests, t.green_errors),
        (blue, blue_requests, 0.0),
    ] {
        for (metric, value) in [
            ("RequestCount", requests),
            ("HTTPCode_Target_5XX_Count", errors),
        ] {
            data.push(
                MetricDatum::builder()
                    .metric_name(metric)
                    .set_dimensions(Some(d.clone()))
                    .value(value)
                    .timestamp(DateTime::from(at))
                    .build(),
            );
        }
    }
    cw.put_metric_data()
        .namespace("AWS/ApplicationELB")
        .set_metric_data(Some(data))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(cutover_core::error::describe_chain(&e)))
}

/// A metric's sum over the gate's window, read back from CloudWatch.
async fn window_sum(
    cw: &aws_sdk_cloudwatch::Client,
    d: &[Dimension],
    metric: &str,
) -> Result<f64, WorldError> {
    let now = std::time::SystemTime::now();
    let out = cw
        .get_metric_statistics()
        .namespace("AWS/ApplicationELB")
        .metric_name(metric)
        .set_dimensions(Some(d.to_vec()))
        .start_time(DateTime::from(now - Duration::from_secs(GATE_WINDOW_SECS)))
        .end_time(DateTime::from(now))
        .period(GATE_WINDOW_SECS as i32)
        .statistics(Statistic::Sum)
        .send()
        .await
        .map_err(|e| fail(cutover_core::error::describe_chain(&e)))?;
    Ok(out.datapoints().iter().filter_map(|p| p.sum()).sum())
}

/// (errors, requests, per cent) over the gate's window, summed over the groups given.
async fn rate(
    cw: &aws_sdk_cloudwatch::Client,
    groups: &[&[Dimension]],
) -> Result<(f64, f64, f64), WorldError> {
    let (mut errors, mut requests) = (0.0, 0.0);
    for d in groups {
        errors += window_sum(cw, d, "HTTPCode_Target_5XX_Count").await?;
        requests += window_sum(cw, d, "RequestCount").await?;
    }
    let pct = if requests > 0.0 {
        100.0 * errors / requests
    } else {
        0.0
    };
    Ok((errors, requests, pct))
}

/// "blue 2 / green 0" in every region, or each region's counts when they differ.
fn describe_tasks(t: &std::collections::BTreeMap<String, (i32, i32)>) -> String {
    let mut counts: Vec<(i32, i32)> = t.values().copied().collect();
    counts.dedup();
    match counts.as_slice() {
        [(b, g)] => format!("blue {b} / green {g} tasks in every region"),
        _ => t
            .iter()
            .map(|(r, (b, g))| format!("{r} blue {b} / green {g}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

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
    // The bake after a deployment is 0 s in the local world: the next tick scales the canary's green to 0.
    let t = handle(&s, json!({"command": "tick"}), None)
        .await
        .map_err(fail)?;
    progress(format!(
        "  tick: {} ({})",
        t.summary,
        describe_tasks(&tasks(world, &s).await?)
    ));

    // 2. A canary judged on green's own group: 40 % of green's requests fail, 4 % of the ALB's.
    progress(String::new());
    progress("a canary at 10 % whose new group fails 40 % of its requests in eu-west-1; the step to 100 % is due in 2 s, gates on green's own group, on_gate_failure = rollback".into());
    let o = handle(
        &s,
        json!({"command": "start", "steps": [{"weight": 10, "bake": "2s"}, {"weight": 100}], "on_gate_failure": "rollback"}),
        None,
    )
    .await
    .map_err(fail)?;
    sample(&green_weights(world, &s).await?, "green-only canary 10 %");
    progress(format!(
        "  {} ({})",
        o.summary,
        describe_tasks(&tasks(world, &s).await?)
    ));
    let alb = s
        .config
        .alb("eu-west-1")
        .ok_or_else(|| fail("no eu-west-1 listener"))?
        .clone();
    let traffic = CanaryTraffic {
        requests: 1000.0,
        green_requests: 100.0,
        green_errors: 40.0,
    };
    let put_at = Instant::now();
    let stamped =
        std::time::SystemTime::now() - Duration::from_secs(GATE_WINDOW_SECS - VISIBLE_SECS);
    put_traffic(&eu, &alb, &traffic, stamped).await?;
    let [green_dims, blue_dims] = alb_dimensions(&alb)?;
    let (whole_errors, whole_requests, whole_pct) = rate(&eu, &[&green_dims, &blue_dims]).await?;
    let (green_errors, green_requests, green_pct) = rate(&eu, &[&green_dims]).await?;
    let gate_pct = s
        .config
        .gates
        .error_rate_pct
        .unwrap_or(WHOLE_ALB_THRESHOLD_PCT);
    let whole_alarm_would_fire = whole_pct > WHOLE_ALB_THRESHOLD_PCT;
    progress(format!(
        "  eu-west-1, read back from CloudWatch over the gate's 5 minutes: the whole ALB {whole_errors:.0} 5XX of {whole_requests:.0} requests = {whole_pct:.1} % (its alarm at > {WHOLE_ALB_THRESHOLD_PCT} %: {}); green's group {green_errors:.0} of {green_requests:.0} = {green_pct:.1} % (gate at {gate_pct} %)",
        if whole_alarm_would_fire { "fires" } else { "stays OK" }
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let started = Instant::now();
    let t = handle(
        &s,
        json!({"command": "tick", "request_id": format!("rehearsal-green-gate-{}", now_ms())}),
        None,
    )
    .await
    .map_err(fail)?;
    let green_gate_ms = started.elapsed().as_secs_f64() * 1000.0;
    let w = green_weights(world, &s).await?;
    sample(&w, "green's 5XX gate: rolled back");
    let reason = t
        .deployment
        .as_ref()
        .and_then(|d| d.reason.clone())
        .unwrap_or_default();
    let green_rolled_back = t.deployment.as_ref().map(|d| d.status) == Some(Status::RolledBack)
        && w.values().all(|g| *g == 0)
        && reason.contains("eu-west-1 error-rate");
    progress(format!(
        "  tick {green_gate_ms:.0} ms: {} — {reason}",
        t.action
    ));
    let t = handle(&s, json!({"command": "tick"}), None)
        .await
        .map_err(fail)?;
    progress(format!(
        "  tick: {} ({})",
        t.summary,
        describe_tasks(&tasks(world, &s).await?)
    ));
    // The next release is judged on clean numbers: wait until the canary's requests leave the window.
    let clean_at = put_at + Duration::from_secs(VISIBLE_SECS + 1);
    tokio::time::sleep(clean_at.saturating_duration_since(Instant::now())).await;

    // 3. A release, region by region, with scaling.
    progress(String::new());
    progress(
        "linear-50-every-2s, region by region with a 2 s bake between regions; ticks every second"
            .into(),
    );
    let mut scaling: Vec<Value> = Vec::new();
    let mut counts = |moment: &str, t: std::collections::BTreeMap<String, (i32, i32)>| {
        for (region, (blue, green)) in &t {
            scaling.push(json!({"moment": moment, "region": region, "blue": blue, "green": green}));
        }
        describe_tasks(&t)
    };
    progress(format!(
        "  before: {}",
        counts("before start", tasks(world, &s).await?)
    ));
    let o = handle(
        &s,
        json!({"command": "start", "plan": "linear-50-every-2s", "scope": "region-by-region", "region_bake": "2s"}),
        None,
    )
    .await
    .map_err(fail)?;
    sample(&green_weights(world, &s).await?, "start");
    progress(format!("  {}", o.summary));
    progress(format!(
        "  after start: {} (green scaled to blue's count, healthy before the first step)",
        counts("after start", tasks(world, &s).await?)
    ));
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
    let live = tasks(world, &s).await?;
    progress(format!("  100 % green: {}", counts("100 % green", live)));
    let t = handle(&s, json!({"command": "tick"}), None)
        .await
        .map_err(fail)?;
    let after = tasks(world, &s).await?;
    let retired = t.action == "retired" && after.values().all(|(b, g)| *b == 0 && *g > 0);
    progress(format!(
        "  after the scale-down bake (0 s here, 10 min in infra): {} — {}",
        t.action,
        counts("after the bake", after)
    ));
    let scaled = {
        let at = |moment: &str, f: &dyn Fn(i64, i64) -> bool| {
            let rows: Vec<&Value> = scaling.iter().filter(|r| r["moment"] == moment).collect();
            !rows.is_empty()
                && rows.iter().all(|r| {
                    f(
                        r["blue"].as_i64().unwrap_or(-1),
                        r["green"].as_i64().unwrap_or(-1),
                    )
                })
        };
        at("before start", &|_, g| g == 0)
            && at("after start", &|b, g| g == b && g > 0)
            && at("100 % green", &|_, g| g > 0)
            && retired
    };
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
        "ok": rolled_back && all_green && green_rolled_back && !whole_alarm_would_fire && scaled,
        "green_only": {
            "region": "eu-west-1",
            "green_share_pct": 10,
            "whole_errors": whole_errors, "whole_requests": whole_requests, "whole_pct": whole_pct,
            "whole_threshold_pct": WHOLE_ALB_THRESHOLD_PCT, "whole_alarm_would_fire": whole_alarm_would_fire,
            "green_errors": green_errors, "green_requests": green_requests, "green_pct": green_pct,
            "gate_pct": gate_pct, "rolled_back": green_rolled_back, "reason": reason, "tick_ms": green_gate_ms,
        },
        "scaling": scaling,
        "scaled": scaled,
        "rollback_ms": rollback_ms,
        "rolled_back": rolled_back,
        "all_green": all_green,
        "ticks": ticks,
        "timeline": timeline,
    }))
}
