//! The region-loss drill: us-east-1 lost whole — its database, the network its WAL
//! travels on, and its AWS (the router stops answering anything signed for it) —
//! while an application in eu-west-1 commits numbered rows through the endpoint its
//! own region's SSM names.
//!
//! Every region runs its own control plane, as the infra deploys it, against its own
//! region's AWS (state table replica, SSM copy, CloudWatch, ops topic):
//! - its **lag-probe**, window after window (the deployed schedule's 55 s windows),
//!   which keeps its reachability record of the writer and publishes every failed
//!   attempt on the writer at once (`WriterUnreachable`, dimension `Vantage`);
//! - a stand-in for its **`writer-unreachable` alarm**: CloudWatch evaluates a
//!   10-second high-resolution alarm every 10 s, and the stand-in does the same
//!   against moto's metrics of that region (moto stores metrics, it does not evaluate
//!   alarms): at least 3 failures in the last 10-second period is ALARM;
//! - its **failover function** with the defaults (22 s grace, quorum 2, 2 s probes),
//!   invoked by the alarm ten times at once (EventBridge and SNS both deliver, and
//!   retry): twenty invocations across the two surviving regions.
//!
//! Nothing is handed over by the drill after the kill: detection, the decision and
//! the move are the control planes' own. RTO is measured from the kill to the first
//! write the application had acknowledged by the new writer. The loss is predicted
//! before the kill from the lag sample the writer's region took, and counted after.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use cutover_core::aws::Aws;
use cutover_core::reach::ReachRecord;
use cutover_core::state::{keys, now_ms, LagSample, StateStore};
use failover::failover::Failover;
use failover::handler::{build, parse_event, Request};
use serde_json::{json, Value};

use crate::failover_kit::{config, put, spawn_writer, Ack, WriterLog};
use crate::runbooks::Router;
use crate::world::{Node, World, WorldError};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
/// CloudWatch evaluates high-resolution alarms with 10-second periods every 10 s.
const ALARM_PERIOD_MS: u64 = 10_000;
/// The infra's `writer-unreachable` threshold: failed attempts in one period.
const ALARM_THRESHOLD: f64 = 3.0;
/// EventBridge and SNS both deliver an alarm, and retry: ten invocations per alarm.
const INVOCATIONS_PER_ALARM: usize = 10;

fn fail(e: impl std::fmt::Display) -> WorldError {
    WorldError::Setup(format!("region-loss drill: {e}"))
}

fn node_of(region: &str) -> Node {
    match region {
        "us-east-1" => Node::UsEast1,
        "eu-west-1" => Node::EuWest1,
        _ => Node::ApSoutheast1,
    }
}

/// One region's control plane.
struct Plane {
    region: &'static str,
    aws: Aws,
    failover: Arc<Failover>,
    lag: Arc<lag_probe::handler::Env>,
    topic: Option<String>,
}

/// What a region's alarm stand-in saw and set off.
#[derive(Debug, Clone, Default)]
struct Fired {
    at: Option<Instant>,
    failures_in_period: f64,
    outcomes: Vec<Result<Value, String>>,
}

async fn plane(world: &World, region: &'static str) -> Result<Plane, WorldError> {
    let aws = Aws::from_sdk_config(world.aws().await?.regional(&region.parse().map_err(fail)?));
    let key = format!(
        "CUTOVER_OPS_TOPIC_ARN_{}",
        region.to_uppercase().replace('-', "_")
    );
    let topic = world.get(&key).ok().map(str::to_string);
    let alarm = alarm_name(world)?;
    let mut settings = vec![
        ("CUTOVER_PRIMARY_REGION", region),
        ("CUTOVER_FAILOVER_ALARMS", alarm.as_str()),
    ];
    if let Some(t) = &topic {
        settings.push(("CUTOVER_OPS_TOPIC_ARN", t.as_str()));
    }
    let cfg = config(world, &settings)?;
    let failover = Arc::new(build(cfg, &aws).await.map_err(fail)?);
    let mut pairs: Vec<(String, String)> = world
        .env_pairs()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &settings {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    let lag_cfg =
        lag_probe::config::ProbeConfig::from_vars(&cutover_core::config::Vars::from_pairs(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
        .map_err(fail)?;
    let lag = Arc::new(lag_probe::handler::Env::new(lag_cfg, aws.clone()));
    Ok(Plane {
        region,
        aws,
        failover,
        lag,
        topic,
    })
}

/// The infra's name of a region's fast alarm (`components/monitoring.ts`): the
/// same name in every region, each region's alarm its own.
fn alarm_name(world: &World) -> Result<String, WorldError> {
    Ok(format!(
        "writer-unreachable-{}",
        world.get("CUTOVER_SUFFIX")?
    ))
}

/// The lag-probe, window after window, until stopped (aborted).
fn run_lag_probe(p: &Plane) -> tokio::task::JoinHandle<()> {
    let env = p.lag.clone();
    tokio::spawn(async move {
        loop {
            let _ = lag_probe::handler::handle(&env, json!({"command": "probe"}), None).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Failed attempts on the writer this region's lag-probe published in the
/// 10-second period that ends at `end_ms`.
async fn failures_in_period(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    region: &str,
    end_ms: u64,
) -> f64 {
    let out = cw
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name("WriterUnreachable")
        .dimensions(Dimension::builder().name("Vantage").value(region).build())
        .start_time(DateTime::from_millis((end_ms - ALARM_PERIOD_MS) as i64))
        .end_time(DateTime::from_millis(end_ms as i64))
        .period(10)
        .statistics(Statistic::Sum)
        .send()
        .await;
    out.ok()
        .map(|o| o.datapoints().iter().filter_map(|d| d.sum()).sum())
        .unwrap_or(0.0)
}

/// The region's `writer-unreachable` alarm, evaluated every 10 s on the wall
/// clock's 10-second boundaries; on its first ALARM it invokes the region's
/// failover ten times at once and waits for them.
fn run_alarm(
    p: &Plane,
    world: &World,
    fired: Arc<Mutex<Fired>>,
) -> Result<tokio::task::JoinHandle<()>, WorldError> {
    let cw = p.aws.cloudwatch(&p.region.parse().map_err(fail)?);
    let namespace = p.failover.config.core.metrics_namespace.clone();
    let region = p.region;
    let f = p.failover.clone();
    let name = alarm_name(world)?;
    Ok(tokio::spawn(async move {
        loop {
            let now = now_ms();
            let boundary = (now / ALARM_PERIOD_MS + 1) * ALARM_PERIOD_MS;
            tokio::time::sleep(Duration::from_millis(boundary - now)).await;
            let failures = failures_in_period(&cw, &namespace, region, boundary).await;
            if failures < ALARM_THRESHOLD {
                continue;
            }
            if let Ok(mut s) = fired.lock() {
                s.at = Some(Instant::now());
                s.failures_in_period = failures;
            }
            let event = alarm_event(region, &name);
            let runs = (0..INVOCATIONS_PER_ALARM).map(|i| {
                let (f, event) = (f.clone(), event.clone());
                async move { invoke(&f, &event, &format!("{region}-alarm-{i:02}")).await }
            });
            let outcomes = futures::future::join_all(runs).await;
            if let Ok(mut s) = fired.lock() {
                s.outcomes = outcomes;
            }
            return;
        }
    }))
}

/// The EventBridge event of `name` going to ALARM in `region`.
fn alarm_event(region: &str, name: &str) -> Value {
    json!({
        "version": "0", "id": format!("region-loss-{region}"),
        "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
        "account": "123456789012", "time": "2026-12-02T12:00:00Z", "region": region,
        "resources": [], "detail": {"alarmName": name, "state": {"value": "ALARM"},
                                     "previousState": {"value": "OK"}}
    })
}

/// One invocation of the failover function with an alarm event, as its handler
/// takes it (parsed and checked, then run).
async fn invoke(f: &Failover, event: &Value, holder: &str) -> Result<Value, String> {
    match parse_event(event, &f.config.region_names(), &f.config.watched_alarms)
        .map_err(|e| e.to_string())?
    {
        Request::Run(trigger) => f
            .run(trigger, holder)
            .await
            .map_err(|e| e.to_string())
            .and_then(|o| serde_json::to_value(o).map_err(|e| e.to_string())),
        _ => Err(format!("not an alarm that runs the failover: {event}")),
    }
}

async fn put_everywhere(world: &World, name: &str, value: &str) -> Result<(), WorldError> {
    let aws = world.aws().await?;
    for r in REGIONS {
        let ssm = aws_sdk_ssm::Client::new(&aws.regional(&r.parse().map_err(fail)?));
        put(&ssm, name, value).await?;
    }
    Ok(())
}

/// Every region's SSM copy names us-east-1 as the writer, and no replica of the state
/// table holds a failover record, lease or reachability record: the drills' start.
async fn us_east_1_writes_everywhere(world: &World, suffix: &str) -> Result<(), WorldError> {
    let us_endpoint = format!("localhost:{}", world.port(Node::UsEast1)?);
    put_everywhere(
        world,
        &format!("/migration/db/{suffix}/writer-endpoint"),
        &us_endpoint,
    )
    .await?;
    put_everywhere(
        world,
        &format!("/migration/app/{suffix}/active-region"),
        "us-east-1",
    )
    .await?;
    clear_failover_records(world).await
}

/// Every replica of the state table without a failover record, lease or
/// reachability record (each deleted in its own region: no waiting on replication).
async fn clear_failover_records(world: &World) -> Result<(), WorldError> {
    let aws = world.aws().await?;
    for r in REGIONS {
        let store = StateStore::new(
            aws_sdk_dynamodb::Client::new(&aws.regional(&r.parse().map_err(fail)?)),
            world.get("CUTOVER_STATE_TABLE")?.to_string(),
        );
        store.delete(&failover::failover::state_key()).await?;
        store.delete(&keys::failover_lease()).await?;
        for writer in REGIONS {
            let every = keys::reach_from_every_vantage(writer);
            for (key, _) in store.query_prefix::<Value>(&every.pk, &every.sk).await? {
                store.delete(&key).await?;
            }
        }
    }
    Ok(())
}

/// The lost region back (its AWS, not its database): waits until its replica of the
/// state table holds the completed move to `to`, runs its failover's `sync-endpoints`
/// (what its schedule does), and reads its own SSM copy before and after.
async fn heal_returned_region(
    p: &Plane,
    to: &str,
    world: &World,
    suffix: &str,
) -> Result<Value, WorldError> {
    let name = format!("/migration/db/{suffix}/writer-endpoint");
    let before = cutover_core::db::parameter(&p.aws.ssm(), &name).await.ok();
    let waited = Instant::now();
    loop {
        let state = p
            .failover
            .store
            .get::<failover::failover::FailoverState>(&failover::failover::state_key())
            .await?;
        if state.is_some_and(|s| {
            s.value.to == to && s.value.phase == failover::failover::Phase::Completed
        }) {
            break;
        }
        if waited.elapsed() > Duration::from_secs(15) {
            return Err(fail(format!(
                "{}'s replica of the state table did not receive the move to {to} within 15 s",
                p.region
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replicated_ms = waited.elapsed().as_millis() as u64;
    let synced = p.failover.sync_endpoints().await.map_err(fail)?;
    let after = cutover_core::db::parameter(&p.aws.ssm(), &name).await.ok();
    let expected = format!("localhost:{}", world.port(node_of(to))?);
    Ok(json!({
        "region": p.region, "ssm_before": before, "ssm_after": after,
        "healed": after.as_deref() == Some(expected.as_str()),
        "state_replicated_after_ms": replicated_ms, "sync": synced,
    }))
}

fn ms(a: Instant, b: Instant) -> i64 {
    if b >= a {
        b.duration_since(a).as_millis() as i64
    } else {
        -(a.duration_since(b).as_millis() as i64)
    }
}

/// The world as the drills need it: us-east-1 writing and streaming to both other
/// regions, the drill's table empty, every region's SSM naming us-east-1, and no
/// failover record anywhere.
async fn prepare(world: &World, suffix: &str) -> Result<(), WorldError> {
    let us = world.admin_db(Node::UsEast1, "app").await?;
    // A standby just rebuilt by the stage before may still be connecting: up to 15 s.
    let mut streaming: Vec<String> = Vec::new();
    for _ in 0..150 {
        streaming = us
            .query(
                "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1",
                &[],
            )
            .await
            .map_err(fail)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if streaming == ["ap-southeast-1", "eu-west-1"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if streaming != ["ap-southeast-1", "eu-west-1"] {
        return Err(fail(format!(
            "us-east-1 must stream to eu-west-1 and ap-southeast-1; it streams to {streaming:?}"
        )));
    }
    us.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS drill;
         CREATE TABLE IF NOT EXISTS drill.region_loss (seq bigint PRIMARY KEY, region text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
         TRUNCATE drill.region_loss;
         GRANT USAGE ON SCHEMA drill TO cutover;
         GRANT SELECT, INSERT ON drill.region_loss TO cutover;",
    )
    .await
    .map_err(fail)?;
    us_east_1_writes_everywhere(world, suffix).await
}

/// Runs the drill. The world must have us-east-1 writing and both other regions
/// streaming from it; it leaves us-east-1 dead (the caller rebuilds the world) and
/// its AWS answering again.
pub async fn run(world: &World, progress: &mut dyn FnMut(String)) -> Result<Value, WorldError> {
    let router = Router::of(world)?;
    let suffix = world.get("CUTOVER_SUFFIX")?.to_string();
    prepare(world, &suffix).await?;

    let mut planes = Vec::new();
    for r in REGIONS {
        planes.push(plane(world, r).await?);
    }
    progress(format!(
        "control planes: lag-probe, writer-unreachable alarm (10 s periods, >= {ALARM_THRESHOLD} failures) and failover function in each of {}, each against its own region's AWS; failover defaults: grace {} ms, quorum {}, probes every {} ms",
        REGIONS.join(", "),
        planes[0].failover.config.writer_grace.as_millis(),
        planes[0].failover.config.quorum,
        planes[0].failover.config.probe_every.as_millis(),
    ));
    let mut lag_tasks: BTreeMap<&str, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut alarm_tasks = BTreeMap::new();
    let mut fired: BTreeMap<&str, Arc<Mutex<Fired>>> = BTreeMap::new();
    for p in &planes {
        lag_tasks.insert(p.region, run_lag_probe(p));
    }
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // The application in eu-west-1, reading its own region's SSM copy.
    let eu = &planes[1];
    let writer = spawn_writer(
        world.clone(),
        eu.aws.ssm(),
        "drill.region_loss",
        Duration::from_millis(5),
        log.clone(),
        stop.clone(),
    );
    progress("the application in eu-west-1 commits numbered rows to the writer its region's SSM names (us-east-1); the lag-probes warm up (one flush, 12 s)".into());
    tokio::time::sleep(Duration::from_secs(12)).await;
    for p in &planes {
        let f = Arc::new(Mutex::new(Fired::default()));
        alarm_tasks.insert(p.region, run_alarm(p, world, f.clone())?);
        fired.insert(p.region, f);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The prediction, before the kill: what the writer's own lag-probe last sampled.
    let us_store = planes[0].failover.store.clone();
    let mut lag_before = BTreeMap::new();
    for r in ["eu-west-1", "ap-southeast-1"] {
        let sample = us_store
            .get::<LagSample>(&keys::lag_from(r, "us-east-1"))
            .await?
            .map(|v| v.value);
        lag_before.insert(r, sample);
    }
    let acked_before = WriterLog::acks(&log).len();
    if acked_before == 0 {
        return Err(fail("the application wrote nothing before the kill"));
    }

    // The loss of us-east-1: its AWS, its database, the network its WAL travels on.
    progress("us-east-1 is lost: the WAL links from it, its database (SIGKILL) and its AWS (router), at once".into());
    // The clock starts before the first cut. The links go first: what the delay
    // links hold dies with them, as in a real loss; killing the server first would
    // let them deliver it (and the loss would fall short of the prediction).
    let killed = Instant::now();
    let killed_ms = now_ms();
    world.cut_network(Node::EuWest1)?;
    world.cut_network(Node::ApSoutheast1)?;
    world.kill(Node::UsEast1)?;
    router.region_down("us-east-1").await?;
    let kill_took = killed.elapsed();
    // Its control plane dies with it.
    for t in [
        lag_tasks.remove("us-east-1"),
        alarm_tasks.remove("us-east-1"),
    ]
    .into_iter()
    .flatten()
    {
        t.abort();
    }
    // Wait for the first write the new writer acknowledges.
    let mut first_new = None;
    let mut last_report = Instant::now();
    while killed.elapsed() < Duration::from_secs(120) {
        first_new = WriterLog::acks(&log)
            .into_iter()
            .find(|a| a.region != "us-east-1" && a.at > killed);
        if first_new.is_some() {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let alarms: Vec<String> = fired
                .iter()
                .filter_map(|(r, f)| {
                    f.lock()
                        .ok()?
                        .at
                        .map(|at| format!("{r} at +{} ms", ms(killed, at)))
                })
                .collect();
            progress(format!(
                "  +{} s: no write acknowledged by a new writer yet; alarms fired: {}",
                killed.elapsed().as_secs(),
                if alarms.is_empty() {
                    "none".into()
                } else {
                    alarms.join(", ")
                }
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    // The old writer's acknowledged writes, read once the writer has stopped (an
    // acknowledgement received at the kill may be logged a moment later).
    let before_kill: Vec<Ack> = WriterLog::acks(&log)
        .into_iter()
        .filter(|a| a.region == "us-east-1")
        .collect();
    let predicted: BTreeMap<&str, (Option<f64>, Option<usize>)> = lag_before
        .iter()
        .map(|(r, s)| {
            let lag = s.as_ref().and_then(|s| s.heartbeat_ms);
            let n = lag.map(|l| {
                before_kill
                    .iter()
                    .filter(|a| (killed.duration_since(a.at).as_secs_f64() * 1000.0) <= l)
                    .count()
            });
            (*r, (lag, n))
        })
        .collect();

    // The alarms' invocations end by themselves (each answers or fails); bounded.
    for (_, t) in alarm_tasks {
        if tokio::time::timeout(Duration::from_secs(90), t)
            .await
            .is_err()
        {
            progress("  an alarm's invocations did not end within 90 s".into());
        }
    }
    for (_, t) in lag_tasks {
        t.abort();
    }

    // What happened.
    let mut outcomes = Vec::new();
    let mut alarm_at = BTreeMap::new();
    for (r, f) in &fired {
        let Ok(f) = f.lock() else { continue };
        if let Some(at) = f.at {
            alarm_at.insert(
                *r,
                json!({"ms": ms(killed, at), "failures_in_period": f.failures_in_period}),
            );
        }
        for o in &f.outcomes {
            outcomes.push((*r, o.clone()));
        }
    }
    let (actions, examples) = tally(&outcomes);
    let movers: Vec<(&str, &Value)> = outcomes
        .iter()
        .filter_map(|(r, o)| {
            o.as_ref()
                .ok()
                .filter(|v| v["action"] == "failover")
                .map(|v| (*r, v))
        })
        .collect();
    let steps = |v: &Value| -> Vec<String> {
        v["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let promotions: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, o)| o.as_ref().ok())
        .flat_map(&steps)
        .filter(|s| s.contains(": promoted in "))
        .collect();
    let winner = movers
        .iter()
        .find(|(_, v)| steps(v).iter().any(|s| s.contains(": promoted in ")))
        .or(movers.first());
    let to = winner
        .and_then(|(_, v)| {
            v["decision"]["target"].as_str().or_else(|| {
                v["summary"]
                    .as_str()
                    .and_then(|s| s.split(" -> ").nth(1))
                    .and_then(|s| s.split_whitespace().next())
            })
        })
        .map(String::from);
    let acked = WriterLog::acks(&log);
    let (lost, two_writers) = match &to {
        Some(to) => {
            let new = world.admin_db(node_of(to), "app").await?;
            let seqs: Vec<i64> = before_kill.iter().map(|a| a.seq).collect();
            let present: std::collections::BTreeSet<i64> = new
                .query(
                    "SELECT seq FROM drill.region_loss WHERE seq = ANY($1)",
                    &[&seqs],
                )
                .await
                .map_err(fail)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let lost: Vec<i64> = seqs.into_iter().filter(|s| !present.contains(s)).collect();
            // Two writers: another region acknowledging once the new writer has.
            let others: Vec<&str> = acked
                .iter()
                .filter(|a| first_new.as_ref().is_some_and(|f| a.at > f.at) && a.region != *to)
                .map(|a| a.region.as_str())
                .collect();
            (Some(lost), others.len())
        }
        None => (None, 0),
    };
    let mut first_failure = BTreeMap::new();
    for p in &planes[1..] {
        let v = p.region;
        let record = p
            .failover
            .store
            .get::<ReachRecord>(&keys::reach("us-east-1", v))
            .await
            .ok()
            .flatten()
            .map(|r| r.value);
        if let Some(r) = record {
            if let Some(at) = r.first_failure_at_ms {
                first_failure.insert(v, at as i64 - killed_ms as i64);
            }
        }
    }
    let timings = winner
        .map(|(_, v)| v["timings"].clone())
        .unwrap_or(Value::Null);
    let at = |field: &str| timings[field].as_u64().map(|t| t as i64 - killed_ms as i64);
    let decided = match (
        timings["started_at_ms"].as_u64(),
        timings["observe_ms"].as_u64(),
    ) {
        (Some(s), Some(o)) => Some((s + o) as i64 - killed_ms as i64),
        _ => None,
    };
    let rto_ms = first_new.as_ref().map(|a| ms(killed, a.at));
    let mut ssm_copies = BTreeMap::new();
    for p in &planes[1..] {
        let v = cutover_core::db::parameter(
            &p.aws.ssm(),
            &format!("/migration/db/{suffix}/writer-endpoint"),
        )
        .await
        .ok();
        ssm_copies.insert(p.region, v);
    }
    // While us-east-1's AWS is still down, the new writer's region runs its scheduled
    // sync-endpoints: a survivor's job must not wait on the lost region's API. It
    // answers, with us-east-1's copy named as not written.
    let sync_while_down = match planes.iter().find(|p| Some(p.region) == to.as_deref()) {
        Some(p) => {
            let asked = Instant::now();
            let synced = p.failover.sync_endpoints().await.map_err(fail)?;
            Some(
                json!({"from": p.region, "answered_after_ms": asked.elapsed().as_millis() as u64,
                        "regions": synced["regions"].clone()}),
            )
        }
        None => None,
    };
    if let Some(s) = &sync_while_down {
        progress(format!(
            "  sync-endpoints in {} with us-east-1's AWS down: answered after {} ms; {}",
            s["from"].as_str().unwrap_or("?"),
            s["answered_after_ms"],
            s["regions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(r, v)| format!("{r} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let survivors_synced = sync_while_down.as_ref().is_some_and(|s| {
        s["regions"]["us-east-1"]["error"].is_string()
            && ["eu-west-1", "ap-southeast-1"]
                .iter()
                .all(|r| s["regions"][*r]["written"].is_u64())
    });
    router.region_up("us-east-1").await?;
    // us-east-1's AWS is back (its database stays dead): its own SSM copy still names
    // the old writer. Its failover's scheduled sync-endpoints heals it from the move
    // the state table recorded, once the table's replica there has caught up.
    let returned = match &to {
        Some(to) => Some(heal_returned_region(&planes[0], to, world, &suffix).await?),
        None => None,
    };
    let (predicted_ms, predicted_writes) = to
        .as_deref()
        .and_then(|t| predicted.get(t).copied())
        .unwrap_or((None, None));
    let lost_n = lost.as_ref().map(Vec::len);
    let ok = promotions.len() == 1
        && rto_ms.is_some_and(|r| r < 30_000)
        && two_writers == 0
        && to.as_deref() != Some("us-east-1")
        && returned.as_ref().is_some_and(|r| r["healed"] == true)
        && survivors_synced;
    let timeline = json!([
        {"event": "us-east-1 lost (AWS, database, WAL links)", "ms": 0},
        {"event": "first failure recorded by eu-west-1's lag-probe", "ms": first_failure.get("eu-west-1")},
        {"event": "first failure recorded by ap-southeast-1's lag-probe", "ms": first_failure.get("ap-southeast-1")},
        {"event": "writer-unreachable alarm in eu-west-1", "ms": alarm_at.get("eu-west-1").map(|a| a["ms"].clone())},
        {"event": "writer-unreachable alarm in ap-southeast-1", "ms": alarm_at.get("ap-southeast-1").map(|a| a["ms"].clone())},
        {"event": format!("decision ({})", winner.map(|(r, _)| *r).unwrap_or("-")), "ms": decided},
        {"event": format!("promotion of {}", to.as_deref().unwrap_or("-")), "ms": at("promoted_at_ms")},
        {"event": "endpoints written (SSM)", "ms": at("endpoints_at_ms")},
        {"event": "first write acknowledged by the new writer", "ms": rto_ms},
    ]);
    for t in timeline.as_array().into_iter().flatten() {
        progress(format!(
            "  {:>8}  {}",
            t["ms"].as_i64().map_or("-".into(), |m| format!("+{m} ms")),
            t["event"].as_str().unwrap_or("")
        ));
    }
    progress(format!(
        "  {} invocations: {}",
        outcomes.len(),
        actions
            .iter()
            .map(|(a, n)| format!("{n}x {a}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    progress(format!(
        "  promotions: {} ({}); writes acknowledged by us-east-1: {}; lost: {} (predicted before the kill from the {} ms lag sample: {}); SSM copies now: {}",
        promotions.len(),
        promotions.join("; "),
        before_kill.len(),
        lost_n.map_or("-".into(), |n| n.to_string()),
        predicted_ms.map_or("-".into(), |v| format!("{v:.0}")),
        predicted_writes.map_or("-".into(), |n| n.to_string()),
        ssm_copies.iter().map(|(r, v)| format!("{r} {}", v.as_deref().unwrap_or("?"))).collect::<Vec<_>>().join(", ")
    ));
    if let Some(r) = &returned {
        progress(format!(
            "  us-east-1's AWS back: the state table's replica there had the move after {} ms; its SSM copy {} -> {} (sync-endpoints from {})",
            r["state_replicated_after_ms"],
            r["ssm_before"].as_str().unwrap_or("?"),
            r["ssm_after"].as_str().unwrap_or("?"),
            r["sync"]["from"].as_str().unwrap_or("?"),
        ));
    }
    for (a, text) in &examples {
        progress(format!("  {a}: {text}"));
    }
    if let Some((_, v)) = winner {
        progress(format!("  the move's timings: {}", v["timings"]));
        for s in v["decision"]["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(v["steps"].as_array().into_iter().flatten())
        {
            progress(format!("    {}", s.as_str().unwrap_or("")));
        }
    }
    Ok(json!({
        "drill": "region loss", "from": "us-east-1", "to": to, "ok": ok,
        "rto_from_kill_ms": rto_ms, "kill_took_ms": kill_took.as_millis() as u64, "timeline": timeline,
        "invocations": outcomes.len(), "actions": actions, "promotions": promotions.len(),
        "acknowledged_by_old": before_kill.len(), "lost": lost_n, "lost_seqs": lost,
        "predicted_loss_ms": predicted_ms, "predicted_lost_writes": predicted_writes,
        "acknowledged_by_another_writer_after_kill": two_writers,
        "returned_region": returned, "sync_while_down": sync_while_down,
        "alarms": alarm_at, "ssm_copies": ssm_copies, "examples": examples,
        "timings": timings,
        "decision": winner.map(|(_, v)| v["decision"].clone()), "steps": winner.map(|(_, v)| v["steps"].clone()),
        "topics": planes.iter().map(|p| (p.region, p.topic.clone())).collect::<BTreeMap<_, _>>(),
        "replication": router.regions().await.ok(),
    }))
}

/// Two regions move the writer at the same moment, each under its own lease: the
/// state table's replication is held back, so each region's replica grants its own
/// lease (epoch 1 in both) and neither sees the other's move. A person in eu-west-1
/// and a person in ap-southeast-1 each ask for a switchover from us-east-1, to
/// `targets[0]` and `targets[1]`. Exactly one member may end up writing; the engine
/// (the promotion lock on the members, taken in region order) is what serializes
/// them, not the leases. The world must have us-east-1 writing and both other
/// regions streaming from it; it is left with one of them promoted (the caller
/// rebuilds the world).
pub async fn race(
    world: &World,
    targets: [&'static str; 2],
    progress: &mut dyn FnMut(String),
) -> Result<Value, WorldError> {
    let router = Router::of(world)?;
    let suffix = world.get("CUTOVER_SUFFIX")?.to_string();
    us_east_1_writes_everywhere(world, &suffix).await?;
    let (eu, ap) = (
        plane(world, "eu-west-1").await?,
        plane(world, "ap-southeast-1").await?,
    );
    router.hold_replication(true).await?;
    progress(format!(
        "the state table's replication held back; at once: a switchover us-east-1 -> {} asked in eu-west-1, and us-east-1 -> {} in ap-southeast-1",
        targets[0], targets[1]
    ));
    let ask = |p: &Plane, target: &str| {
        let f = p.failover.clone();
        let event = json!({"command": "switchover", "target": target});
        let holder = format!("person-in-{}", p.region);
        async move { handle_one(&f, event, &holder).await }
    };
    let (a, b) = tokio::join!(ask(&eu, targets[0]), ask(&ap, targets[1]));
    router.hold_replication(false).await?;
    let mut writers = Vec::new();
    for r in REGIONS {
        let c = world.admin_db(node_of(r), "app").await?;
        let writes: bool = c
            .query_one(
                "SELECT NOT pg_is_in_recovery() AND NOT current_setting('default_transaction_read_only')::bool",
                &[],
            )
            .await
            .map_err(fail)?
            .get(0);
        if writes {
            writers.push(r);
        }
    }
    let sides: Vec<Value> = [(&eu, targets[0], a), (&ap, targets[1], b)]
        .into_iter()
        .map(|(p, target, o)| {
            let steps: Vec<String> = o
                .as_ref()
                .ok()
                .and_then(|v| v["steps"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
            json!({
                "region": p.region, "target": target,
                "action": o.as_ref().map_or("error".into(), |v| v["action"].clone()),
                "epoch": o.as_ref().ok().map(|v| v["epoch"].clone()),
                "summary": o.as_ref().map_or_else(|e| Value::String(e.clone()), |v| v["summary"].clone()),
                "promoted": steps.iter().any(|s| s.contains(": promoted in ")),
                "found_promoted": steps.iter().any(|s| s.contains("already promoted")),
                "steps": steps,
            })
        })
        .collect();
    for s in &sides {
        progress(format!(
            "  {} (lease epoch {}): {} — {}",
            s["region"],
            s["epoch"],
            s["action"],
            s["summary"].as_str().unwrap_or("")
        ));
    }
    let promotions = sides.iter().filter(|s| s["promoted"] == true).count();
    progress(format!(
        "  promotions: {promotions}; members writing now: {}",
        writers.join(", ")
    ));
    Ok(json!({
        "drill": "two regions at once", "targets": targets, "sides": sides,
        "promotions": promotions, "writers": writers,
        "ok": promotions == 1 && writers.len() == 1,
    }))
}

/// One direct invocation of a failover function, its error as text.
async fn handle_one(f: &Failover, event: Value, holder: &str) -> Result<Value, String> {
    failover::handler::handle(f, event, holder)
        .await
        .map_err(|e| e.to_string())
}

/// The invocations' outcomes counted by "region: action" (an error by its first 80
/// characters), and one summary of each "region: action", for the report.
fn tally(
    outcomes: &[(&str, Result<Value, String>)],
) -> (BTreeMap<String, usize>, BTreeMap<String, String>) {
    let mut actions = BTreeMap::new();
    let mut examples = BTreeMap::new();
    for (r, o) in outcomes {
        let (a, counted, text) = match o {
            Ok(v) => {
                let a = v["action"].as_str().unwrap_or("?").to_string();
                (
                    a.clone(),
                    a,
                    v["summary"].as_str().unwrap_or("").to_string(),
                )
            }
            Err(e) => (
                "error".to_string(),
                format!("error: {}", e.chars().take(80).collect::<String>()),
                e.clone(),
            ),
        };
        *actions.entry(format!("{r}: {counted}")).or_insert(0) += 1;
        examples.entry(format!("{r}: {a}")).or_insert(text);
    }
    (actions, examples)
}

/// What the alarms of one phase set off: (region, outcome) of every invocation,
/// and when each region's alarm fired (ms from the phase's start).
type PhaseOutcomes = (
    Vec<(&'static str, Result<Value, String>)>,
    BTreeMap<&'static str, i64>,
);

/// Runs every region's alarm stand-in through one phase: `disrupt` runs, then the
/// alarms get `settle` more to fire; an alarm that fired is waited for (its ten
/// invocations end by themselves, bounded), the others are stopped.
async fn alarms_through<F: std::future::Future<Output = Result<(), WorldError>>>(
    planes: &[Plane],
    world: &World,
    disrupt: F,
    settle: Duration,
) -> Result<PhaseOutcomes, WorldError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in planes {
        let f = Arc::new(Mutex::new(Fired::default()));
        tasks.push((p.region, run_alarm(p, world, f.clone())?, f));
    }
    disrupt.await?;
    tokio::time::sleep(settle).await;
    let mut outcomes = Vec::new();
    let mut fired_at = BTreeMap::new();
    for (region, task, fired) in tasks {
        let at = fired.lock().ok().and_then(|f| f.at);
        match at {
            Some(at) => {
                fired_at.insert(region, ms(started, at));
                if tokio::time::timeout(Duration::from_secs(90), task)
                    .await
                    .is_err()
                {
                    return Err(fail(format!(
                        "{region}'s alarm invocations did not end within 90 s"
                    )));
                }
            }
            None => task.abort(),
        }
        if let Ok(f) = fired.lock() {
            outcomes.extend(f.outcomes.iter().map(|o| (region, o.clone())));
        }
    }
    Ok((outcomes, fired_at))
}

/// Whether the writer is still us-east-1 everywhere: its server writable, the
/// others standbys, every region's SSM copy naming it, and no move recorded.
async fn still_us_east_1(
    world: &World,
    planes: &[Plane],
    suffix: &str,
) -> Result<Value, WorldError> {
    let mut writable = BTreeMap::new();
    for p in planes {
        let in_recovery: bool = world
            .admin(node_of(p.region))
            .await?
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(fail)?
            .get(0);
        writable.insert(p.region, !in_recovery);
    }
    let mut active = BTreeMap::new();
    let mut moves = 0;
    for p in planes {
        let a = cutover_core::db::parameter(
            &p.aws.ssm(),
            &format!("/migration/app/{suffix}/active-region"),
        )
        .await
        .ok();
        active.insert(p.region, a);
        if p.failover
            .store
            .get::<failover::failover::FailoverState>(&failover::failover::state_key())
            .await?
            .is_some()
        {
            moves += 1;
        }
    }
    let ok = writable.iter().all(|(r, w)| *w == (*r == "us-east-1"))
        && active.values().all(|a| a.as_deref() == Some("us-east-1"))
        && moves == 0;
    Ok(json!({"ok": ok, "writable": writable, "active_region": active, "move_records": moves}))
}

fn phase_report(
    name: &str,
    outcomes: &[(&'static str, Result<Value, String>)],
    fired_at: &BTreeMap<&'static str, i64>,
    acks_during: usize,
    acks_after: usize,
    world_after: Value,
    progress: &mut dyn FnMut(String),
) -> Value {
    let (actions, examples) = tally(outcomes);
    let moves = outcomes
        .iter()
        .filter(|(_, o)| {
            o.as_ref()
                .is_ok_and(|v| v["action"] == "failover" || v["action"] == "switchover")
        })
        .count();
    let errors = outcomes.iter().filter(|(_, o)| o.is_err()).count();
    let ok = moves == 0 && errors == 0 && world_after["ok"] == true && acks_after > 0;
    progress(format!(
        "  {name}: alarms fired: {}; {} invocations: {}; moves: {moves}",
        if fired_at.is_empty() {
            "none".to_string()
        } else {
            fired_at
                .iter()
                .map(|(r, at)| format!("{r} at +{at} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        outcomes.len(),
        if actions.is_empty() {
            "-".to_string()
        } else {
            actions
                .iter()
                .map(|(a, n)| format!("{n}x {a}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    for (a, text) in &examples {
        progress(format!("    {a}: {text}"));
    }
    progress(format!(
        "  {name}: writes acknowledged by us-east-1 during it {acks_during}, after it {acks_after}; writer still us-east-1 everywhere: {}",
        world_after["ok"]
    ));
    json!({"ok": ok, "alarms_fired_ms": fired_at, "invocations": outcomes.len(), "actions": actions,
           "examples": examples, "moves": moves, "errors": errors, "acks_during": acks_during,
           "acks_after": acks_after, "writer": world_after})
}

/// The two drills where nothing may move, on the same control planes as [`run`]
/// (each region's lag-probe, alarm stand-in and failover with the defaults, against
/// its own region's AWS), with an application in ap-southeast-1 writing throughout:
/// - **blip**: us-east-1's server stopped (SIGSTOP: it neither answers nor refuses)
///   for 10 s and resumed in place;
/// - **partial partition**: us-east-1's server unreachable from eu-west-1 only
///   (eu-west-1 reaches it through a [`Path`](crate::partition::Path) that is cut:
///   its probes time out) for longer than the grace period and an alarm period
///   together, while the other regions reach it.
///
/// Every alarm that fires invokes its region's failover ten times; every
/// invocation must refuse, and the writer stays us-east-1 with writes
/// acknowledged after each phase. The world is left as it was found.
pub async fn no_move(world: &World, progress: &mut dyn FnMut(String)) -> Result<Value, WorldError> {
    let suffix = world.get("CUTOVER_SUFFIX")?.to_string();
    prepare(world, &suffix).await?;
    let mut planes = Vec::new();
    for r in REGIONS {
        planes.push(plane(world, r).await?);
    }
    let grace = planes[0].failover.config.writer_grace;
    // eu-west-1 reaches the writer through a path that can be cut.
    let path = crate::partition::Path::open(world.port(Node::UsEast1)?)
        .await
        .map_err(fail)?;
    let writer_name = format!("/migration/db/{suffix}/writer-endpoint");
    put(
        &planes[1].aws.ssm(),
        &writer_name,
        &format!("localhost:{}", path.port()),
    )
    .await?;
    let mut lag_tasks = Vec::new();
    for p in &planes {
        lag_tasks.push(run_lag_probe(p));
    }
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(
        world.clone(),
        planes[2].aws.ssm(),
        "drill.region_loss",
        Duration::from_millis(5),
        log.clone(),
        stop.clone(),
    );
    progress(format!(
        "control planes in {} (failover grace {} ms); eu-west-1 reaches us-east-1's server through a path that can be cut; the application in ap-southeast-1 writes; the lag-probes warm up (12 s)",
        REGIONS.join(", "),
        grace.as_millis()
    ));
    tokio::time::sleep(Duration::from_secs(12)).await;
    let acks_between = |from: Instant, to: Instant| {
        WriterLog::acks(&log)
            .iter()
            .filter(|a| a.region == "us-east-1" && a.at >= from && a.at < to)
            .count()
    };

    // The blip.
    progress("blip: us-east-1's server stopped for 10 s (SIGSTOP), then resumed in place".into());
    let blip_at = Instant::now();
    // Whether or not an alarm reaches ALARM in a 10 s blip (3 failures in one
    // 10-second period), every region's failover is also handed its alarm 1 s into
    // it, as a late or redelivered alarm would be: the decision itself is drilled.
    let name = alarm_name(world)?;
    let handed: Vec<_> = planes
        .iter()
        .map(|p| (p.region, p.failover.clone(), alarm_event(p.region, &name)))
        .collect();
    let handed_outcomes = Arc::new(Mutex::new(Vec::new()));
    let frozen = Arc::new(Mutex::new(None));
    let thawed = Arc::new(Mutex::new(None));
    let blip = {
        let (handed_outcomes, frozen, thawed) =
            (handed_outcomes.clone(), frozen.clone(), thawed.clone());
        async move {
            world.freeze(Node::UsEast1)?;
            if let Ok(mut f) = frozen.lock() {
                *f = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let runs = futures::future::join_all(handed.iter().map(|(r, f, e)| async move {
                (*r, invoke(f, e, &format!("{r}-late-alarm")).await)
            }));
            let thaw = async {
                tokio::time::sleep(Duration::from_secs(9)).await;
                // The blip ends when the resume begins (signalling every process takes a while).
                if let Ok(mut t) = thawed.lock() {
                    *t = Some(Instant::now());
                }
                world.thaw(Node::UsEast1)
            };
            let (outcomes, thawed) = tokio::join!(runs, thaw);
            if let Ok(mut h) = handed_outcomes.lock() {
                *h = outcomes;
            }
            thawed
        }
    };
    let (outcomes, fired) = alarms_through(&planes, world, blip, Duration::from_secs(20)).await?;
    let thawed_at = thawed.lock().ok().and_then(|t| *t).unwrap_or(blip_at);
    // Counted from the moment every one of its processes was stopped.
    let frozen_at = frozen.lock().ok().and_then(|f| *f).unwrap_or(blip_at);
    let mut outcomes = outcomes;
    if let Ok(h) = handed_outcomes.lock() {
        outcomes.extend(h.iter().cloned());
    }
    let now = Instant::now();
    let blip_report = phase_report(
        "blip",
        &outcomes,
        &fired,
        acks_between(frozen_at, thawed_at),
        acks_between(thawed_at, now),
        still_us_east_1(world, &planes, &suffix).await?,
        progress,
    );

    // The partial partition.
    let hold = grace + Duration::from_secs(13);
    progress(format!(
        "partial partition: us-east-1's server unreachable from eu-west-1 only, for {} s (the grace period and an alarm period more)",
        hold.as_secs()
    ));
    let cut_at = Instant::now();
    let healed = Arc::new(Mutex::new(None));
    let eu_saw = Arc::new(Mutex::new(None));
    let (outcomes, fired) = {
        let (path, healed, eu_saw) = (&path, healed.clone(), eu_saw.clone());
        let eu_store = planes[1].failover.store.clone();
        alarms_through(
            &planes,
            world,
            async move {
                path.cut();
                tokio::time::sleep(hold).await;
                // eu-west-1's own record of the writer, as its lag-probe keeps it in the cut.
                let record = eu_store
                    .get::<ReachRecord>(&keys::reach("us-east-1", "eu-west-1"))
                    .await?
                    .map(|r| r.value);
                if let Ok(mut e) = eu_saw.lock() {
                    *e = record;
                }
                path.heal();
                if let Ok(mut h) = healed.lock() {
                    *h = Some(Instant::now());
                }
                Ok(())
            },
            Duration::from_secs(5),
        )
        .await?
    };
    let healed_at = healed.lock().ok().and_then(|h| *h).unwrap_or(cut_at);
    let eu_saw = eu_saw.lock().ok().and_then(|e| e.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    for t in lag_tasks {
        t.abort();
    }
    let partition_report = phase_report(
        "partial partition",
        &outcomes,
        &fired,
        acks_between(cut_at, healed_at),
        acks_between(healed_at, Instant::now()),
        still_us_east_1(world, &planes, &suffix).await?,
        progress,
    );
    // The partition must have been seen where it was: eu-west-1's alarm fired.
    let partition_seen = fired.contains_key("eu-west-1")
        && !fired.contains_key("ap-southeast-1")
        && eu_saw.as_ref().is_some_and(|r| !r.reachable);
    if !partition_seen {
        progress(format!(
            "  partial partition: eu-west-1's alarm {}, ap-southeast-1's {}",
            if fired.contains_key("eu-west-1") {
                "fired"
            } else {
                "did NOT fire"
            },
            if fired.contains_key("ap-southeast-1") {
                "fired (it should not have)"
            } else {
                "did not"
            },
        ));
    }
    put(
        &planes[1].aws.ssm(),
        &writer_name,
        &format!("localhost:{}", world.port(Node::UsEast1)?),
    )
    .await?;
    drop(path);
    let ok = blip_report["ok"] == true && partition_report["ok"] == true && partition_seen;
    Ok(json!({
        "drill": "no move", "ok": ok, "grace_ms": grace.as_millis() as u64,
        "blip": blip_report, "partial_partition": partition_report,
        "partition_held_ms": hold.as_millis() as u64,
        "eu_west_1_saw_during_the_cut": eu_saw,
    }))
}
