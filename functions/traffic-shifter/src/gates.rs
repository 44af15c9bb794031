//! Gates checked before every step, per region: the watched alarms are not in
//! ALARM, the new target group has enough healthy targets, and the new group's
//! own 5XX rate and p99 response time (its `TargetGroup` dimension, not the
//! whole ALB's: 40 % errors on a 10 % canary is 4 % of the ALB) are under their limits.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, StateValue};
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use serde::Serialize;

use crate::alb::RegionAlb;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    pub region: String,
    pub gate: String,
    pub ok: bool,
    pub detail: String,
}

/// The gate settings.
#[derive(Debug, Clone)]
pub struct GateSettings {
    pub watched_alarms: Vec<String>,
    pub min_healthy_green: usize,
    /// The new group's p99 TargetResponseTime limit in ms; `None` = this gate is off.
    pub latency_p99_ms: Option<f64>,
    /// The new group's 5XX share of its requests, in %; `None` = this gate is off.
    pub error_rate_pct: Option<f64>,
}

fn result(region: &str, gate: &str, ok: bool, detail: String) -> GateResult {
    GateResult {
        region: region.into(),
        gate: gate.into(),
        ok,
        detail,
    }
}

/// Every watched alarm must exist and not be in ALARM.
pub async fn alarms(
    cw: &aws_sdk_cloudwatch::Client,
    region: &str,
    watched: &[String],
) -> GateResult {
    if watched.is_empty() {
        return result(region, "alarms", true, "no alarms watched".into());
    }
    let out = match cw
        .describe_alarms()
        .set_alarm_names(Some(watched.to_vec()))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            return result(
                region,
                "alarms",
                false,
                format!(
                    "DescribeAlarms failed: {}",
                    cutover_core::error::describe_chain(&e)
                ),
            )
        }
    };
    let mut bad = Vec::new();
    for name in watched {
        match out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name.as_str()))
        {
            None => bad.push(format!("{name} does not exist")),
            Some(a) if a.state_value() == Some(&StateValue::Alarm) => {
                bad.push(format!("{name} is in ALARM"))
            }
            Some(_) => {}
        }
    }
    if bad.is_empty() {
        result(
            region,
            "alarms",
            true,
            format!("{} alarm(s) not in ALARM", watched.len()),
        )
    } else {
        result(region, "alarms", false, bad.join("; "))
    }
}

/// The green group must have at least `min` healthy targets.
pub async fn green_healthy(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    alb: &RegionAlb,
    min: usize,
) -> GateResult {
    match elb
        .describe_target_health()
        .target_group_arn(&alb.green_tg_arn)
        .send()
        .await
    {
        Ok(out) => {
            let descriptions = out.target_health_descriptions();
            let healthy = descriptions
                .iter()
                .filter(|d| {
                    d.target_health().and_then(|h| h.state())
                        == Some(&TargetHealthStateEnum::Healthy)
                })
                .count();
            result(
                &alb.region,
                "green-healthy",
                healthy >= min,
                format!(
                    "{healthy} of {} green targets healthy (need {min})",
                    descriptions.len()
                ),
            )
        }
        Err(e) => result(
            &alb.region,
            "green-healthy",
            false,
            format!(
                "DescribeTargetHealth failed: {}",
                cutover_core::error::describe_chain(&e)
            ),
        ),
    }
}

/// Judges the p99 datapoints (seconds) of the last minutes against `limit_ms`.
/// No datapoints (no traffic) passes; datapoints without a p99 fail closed.
pub fn judge_latency(p99_seconds: &[Option<f64>], limit_ms: f64) -> (bool, String) {
    if p99_seconds.is_empty() {
        return (
            true,
            "no datapoints in the last 5 minutes (no traffic)".into(),
        );
    }
    if p99_seconds.iter().any(Option::is_none) {
        return (
            false,
            "CloudWatch returned datapoints without a p99 value; cannot judge latency".into(),
        );
    }
    let worst = p99_seconds.iter().flatten().fold(0.0_f64, |a, v| a.max(*v)) * 1000.0;
    (
        worst < limit_ms,
        format!("p99 TargetResponseTime {worst:.0} ms (limit {limit_ms:.0} ms)"),
    )
}

/// The new group's metric dimensions: `TargetGroup` and its `LoadBalancer`.
fn group_dimensions(alb: &RegionAlb) -> Result<Vec<Dimension>, String> {
    let lb = alb.load_balancer_dimension().ok_or_else(|| {
        format!(
            "cannot derive the LoadBalancer dimension from {}",
            alb.listener_arn
        )
    })?;
    let tg = alb.green_dimension().ok_or_else(|| {
        format!(
            "cannot derive the TargetGroup dimension from {}",
            alb.green_tg_arn
        )
    })?;
    Ok(vec![
        Dimension::builder().name("TargetGroup").value(tg).build(),
        Dimension::builder().name("LoadBalancer").value(lb).build(),
    ])
}

/// The new group's p99 TargetResponseTime over the last 5 minutes must be under `limit_ms`.
pub async fn latency(
    cw: &aws_sdk_cloudwatch::Client,
    alb: &RegionAlb,
    limit_ms: f64,
) -> GateResult {
    let dimensions = match group_dimensions(alb) {
        Ok(d) => d,
        Err(e) => return result(&alb.region, "latency-p99", false, e),
    };
    let now = SystemTime::now();
    let out = cw
        .get_metric_statistics()
        .namespace("AWS/ApplicationELB")
        .metric_name("TargetResponseTime")
        .set_dimensions(Some(dimensions))
        .start_time(DateTime::from(now - Duration::from_secs(300)))
        .end_time(DateTime::from(now))
        .period(60)
        .extended_statistics("p99")
        .send()
        .await;
    match out {
        Ok(out) => {
            let p99: Vec<Option<f64>> = out
                .datapoints()
                .iter()
                .map(|d| d.extended_statistics().and_then(|m| m.get("p99")).copied())
                .collect();
            let (ok, detail) = judge_latency(&p99, limit_ms);
            result(&alb.region, "latency-p99", ok, detail)
        }
        Err(e) => result(
            &alb.region,
            "latency-p99",
            false,
            format!(
                "GetMetricStatistics failed: {}",
                cutover_core::error::describe_chain(&e)
            ),
        ),
    }
}

/// Judges the new group's 5XX count against its requests over the window.
/// No requests passes (nothing to judge).
pub fn judge_error_rate(errors: f64, requests: f64, limit_pct: f64) -> (bool, String) {
    if requests <= 0.0 {
        return (true, "no requests in the last 5 minutes".into());
    }
    let rate = errors / requests * 100.0;
    (
        rate < limit_pct,
        format!("5XX {rate:.1} % of {requests:.0} requests (limit {limit_pct:.1} %)"),
    )
}

/// The sum of one of the new group's metrics over the last 5 minutes.
async fn group_sum(
    cw: &aws_sdk_cloudwatch::Client,
    dimensions: &[Dimension],
    metric: &str,
) -> Result<f64, String> {
    let now = SystemTime::now();
    let out = cw
        .get_metric_statistics()
        .namespace("AWS/ApplicationELB")
        .metric_name(metric)
        .set_dimensions(Some(dimensions.to_vec()))
        .start_time(DateTime::from(now - Duration::from_secs(300)))
        .end_time(DateTime::from(now))
        .period(300)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetMetricStatistics {metric} failed: {}",
                cutover_core::error::describe_chain(&e)
            )
        })?;
    Ok(out.datapoints().iter().filter_map(|d| d.sum()).sum())
}

/// The new group's 5XX share over the last 5 minutes must be under `limit_pct`.
pub async fn error_rate(
    cw: &aws_sdk_cloudwatch::Client,
    alb: &RegionAlb,
    limit_pct: f64,
) -> GateResult {
    let verdict = async {
        let dimensions = group_dimensions(alb)?;
        let errors = group_sum(cw, &dimensions, "HTTPCode_Target_5XX_Count").await?;
        let requests = group_sum(cw, &dimensions, "RequestCount").await?;
        Ok::<_, String>(judge_error_rate(errors, requests, limit_pct))
    }
    .await;
    match verdict {
        Ok((ok, detail)) => result(&alb.region, "error-rate", ok, detail),
        Err(e) => result(&alb.region, "error-rate", false, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_rate_is_the_new_groups_own() {
        assert!(
            judge_error_rate(0.0, 0.0, 5.0).0,
            "no traffic, nothing to judge"
        );
        // 40 errors in green's 100 requests: 40 %, although the ALB saw 1000 requests (4 %).
        let (ok, detail) = judge_error_rate(40.0, 100.0, 5.0);
        assert!(!ok && detail.contains("40.0 %"), "{detail}");
        assert!(judge_error_rate(4.0, 100.0, 5.0).0);
    }

    #[test]
    fn latency_is_judged_on_the_worst_minute_and_fails_closed() {
        assert!(judge_latency(&[], 200.0).0);
        let (ok, detail) = judge_latency(&[Some(0.12), Some(0.19)], 200.0);
        assert!(ok, "{detail}");
        let (ok, detail) = judge_latency(&[Some(0.12), Some(0.41)], 200.0);
        assert!(!ok);
        assert!(detail.contains("410 ms"), "{detail}");
        let (ok, detail) = judge_latency(&[Some(0.1), None], 200.0);
        assert!(!ok && detail.contains("without a p99"), "{detail}");
    }
}
