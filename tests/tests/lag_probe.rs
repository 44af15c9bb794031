//! lag-probe against the world's real standbys: accuracy at apply delays of
//! 0, 250 ms and 2 s, a 3-second spike, an unreachable region, the missing
//! heartbeat table, and what reaches CloudWatch and DynamoDB (moto).
//!
//! These tests change the standbys' apply delays and freeze servers, so they
//! take turns (one lock) and put the configured delays back when done.

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;
use std::time::Duration;

use cutover_core::reach::ReachRecord;
use cutover_core::state::{keys, LagSample, StateStore};
use cutover_rehearsal::failover_kit::{lag_probe_in, reach, reset, set_writer_endpoint};
use cutover_rehearsal::world::{Node, World};
use lag_probe::config::{ProbeConfig, TableName};
use lag_probe::handler::{handle, Env};
use lag_probe::probe::{self, ProbeReport, ProbeSettings, Sinks};
use lag_probe::LagError;
use serde_json::json;

static TURN: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

async fn env(world: &World) -> Env {
    let config = ProbeConfig::from_vars(&world.vars()).unwrap();
    Env::new(config, world.aws().await.unwrap())
}

async fn window(world: &World, env: &Env, settings: &ProbeSettings, sinks: &Sinks) -> ProbeReport {
    let access = cutover_core::db::DbAccess::load(&env.config.core.db, &env.aws.ssm(), "lag-probe")
        .await
        .unwrap();
    let endpoints = env.endpoints(&access).await.unwrap();
    let _ = world;
    probe::run(&access, &endpoints, settings, sinks, None, true)
        .await
        .unwrap()
}

async fn restore_delays(world: &World) {
    for node in [Node::EuWest1, Node::ApSoutheast1] {
        world
            .set_network_delay(node, world.configured_delay_ms(node))
            .await
            .unwrap();
    }
}

fn region<'a>(report: &'a ProbeReport, name: &str) -> &'a probe::RegionReport {
    report.regions.iter().find(|r| r.region == name).unwrap()
}

fn within(measured: f64, configured: f64) -> bool {
    (measured - configured).abs() <= (configured * 0.05).max(25.0)
}

#[tokio::test]
async fn median_heartbeat_lag_matches_delays_of_0_250_and_2000_ms() {
    let _turn = TURN.lock().await;
    let world = World::load().unwrap();
    let env = env(&world).await;
    let settings = env.settings(Duration::from_secs(10), Duration::from_secs(1));
    let mut results = Vec::new();
    for (eu, ap) in [(0, 250), (2000, 250)] {
        world.set_network_delay(Node::EuWest1, eu).await.unwrap();
        world
            .set_network_delay(Node::ApSoutheast1, ap)
            .await
            .unwrap();
        // Let WAL held back under the old delay drain first.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let report = window(&world, &env, &settings, &Sinks::default()).await;
        for (name, delay) in [("eu-west-1", eu), ("ap-southeast-1", ap)] {
            let r = region(&report, name);
            results.push((
                name,
                delay,
                r.heartbeat.p50_ms,
                r.heartbeat.samples,
                r.resolution_p50_ms,
            ));
        }
    }
    restore_delays(&world).await;
    for (name, delay, p50, samples, resolution) in &results {
        println!("{name}: configured {delay} ms, median {p50:?} ms over {samples} samples, resolution p50 {resolution:?} ms");
        let p50 = p50.unwrap();
        assert!(
            within(p50, *delay as f64),
            "{name}: median {p50} ms vs configured {delay} ms"
        );
        assert!(*samples >= 8, "{name}: only {samples} samples in 10 s");
        assert!(
            resolution.unwrap() <= 10.0,
            "{name}: resolution {resolution:?} ms"
        );
    }
}

#[tokio::test]
async fn a_three_second_spike_shows_in_consecutive_samples() {
    let _turn = TURN.lock().await;
    let world = World::load().unwrap();
    let env = env(&world).await;
    restore_delays(&world).await;
    let settings = env.settings(Duration::from_secs(12), Duration::from_secs(1));
    let spike = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        world.set_network_delay(Node::EuWest1, 3075).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        world.set_network_delay(Node::EuWest1, 75).await.unwrap();
    };
    let sinks = Sinks::default();
    let (report, ()) = tokio::join!(window(&world, &env, &settings, &sinks), spike);
    restore_delays(&world).await;
    let eu: Vec<f64> = report
        .timeline
        .iter()
        .filter(|p| p.region == "eu-west-1" && p.source == "heartbeat" && p.status == "ok")
        .filter_map(|p| p.lag_ms)
        .collect();
    println!("eu-west-1 heartbeat lag over the window: {eu:?}");
    let mut run = 0;
    let mut longest = 0;
    for lag in &eu {
        run = if *lag > 575.0 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    assert!(
        longest >= 2,
        "the spike was seen in {longest} consecutive samples: {eu:?}"
    );
    assert!(eu.iter().copied().fold(0.0, f64::max) > 2000.0, "{eu:?}");
    // Outside the spike the other region kept its own lag.
    let ap = region(&report, "ap-southeast-1");
    assert!(
        within(ap.heartbeat.p50_ms.unwrap(), 220.0),
        "{:?}",
        ap.heartbeat
    );
}

#[tokio::test]
async fn an_unreachable_region_is_missing_samples_and_the_others_keep_their_cadence() {
    let _turn = TURN.lock().await;
    let world = World::load().unwrap();
    let env = env(&world).await;
    restore_delays(&world).await;
    let mut settings = env.settings(Duration::from_secs(10), Duration::from_secs(1));
    settings.poll_timeout = Duration::from_millis(500);
    let outage = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        world.freeze(Node::ApSoutheast1).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        world.thaw(Node::ApSoutheast1).unwrap();
    };
    let sinks = Sinks::default();
    let (report, ()) = tokio::join!(window(&world, &env, &settings, &sinks), outage);
    let ap = region(&report, "ap-southeast-1");
    let eu = region(&report, "eu-west-1");
    println!("ap-southeast-1: {ap:?}\neu-west-1: {eu:?}");
    assert!(ap.unreachable >= 1, "{ap:?}");
    assert!(report
        .timeline
        .iter()
        .any(|p| p.region == "ap-southeast-1" && p.status == "unreachable"));
    // Seen again after the thaw.
    assert!(ap.heartbeat.samples >= 2, "{ap:?}");
    assert!(eu.heartbeat.samples >= 9 && eu.unreachable == 0, "{eu:?}");
    assert!(within(eu.heartbeat.p50_ms.unwrap(), 75.0), "{eu:?}");
}

#[tokio::test]
async fn a_missing_heartbeat_table_that_cannot_be_created_says_so() {
    let _turn = TURN.lock().await;
    let world = World::load().unwrap();
    let env = env(&world).await;
    let mut settings = env.settings(Duration::from_secs(2), Duration::from_secs(1));
    settings.heartbeat_table = TableName::parse("no_such_schema.heartbeat").unwrap();
    let access = cutover_core::db::DbAccess::load(&env.config.core.db, &env.aws.ssm(), "lag-probe")
        .await
        .unwrap();
    let endpoints = env.endpoints(&access).await.unwrap();
    let err = probe::run(
        &access,
        &endpoints,
        &settings,
        &Sinks::default(),
        None,
        false,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LagError::HeartbeatTable(_)), "{text}");
    assert!(
        text.contains("no_such_schema.heartbeat does not exist and could not be created"),
        "{text}"
    );
    assert!(
        text.contains("CREATE TABLE IF NOT EXISTS \"no_such_schema\".\"heartbeat\""),
        "{text}"
    );
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "Fatal");
}

#[tokio::test]
async fn the_handler_publishes_metrics_and_the_latest_sample() {
    let _turn = TURN.lock().await;
    let world = World::load().unwrap();
    let env = env(&world).await;
    restore_delays(&world).await;
    let before = lag_probe_now_ms();
    let out = handle(
        &env,
        json!({"command": "probe", "window_ms": 4000, "cadence_ms": 500}),
        None,
    )
    .await
    .unwrap();
    let regions = out["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    for r in regions {
        assert!(r["heartbeat"]["samples"].as_u64().unwrap() >= 6, "{r}");
        assert!(r["heartbeat"]["p99_ms"].as_f64().is_some(), "{r}");
    }
    assert_eq!(out["engine"], "postgres");
    assert!(out["metrics_published"].as_u64().unwrap() >= 12, "{out}");
    assert_eq!(out["publish_errors"], 0);
    assert_eq!(out["load"]["connections"], 3);

    let store = StateStore::new(env.aws.dynamodb(), env.config.core.state_table.clone());
    let mut engine = Vec::new();
    for name in ["eu-west-1", "ap-southeast-1"] {
        let latest = store
            .get::<LagSample>(&keys::lag_from(name, "us-east-1"))
            .await
            .unwrap()
            .unwrap()
            .value;
        assert!(latest.taken_at_ms >= before, "{latest:?}");
        assert!(latest.heartbeat_ms.unwrap() > 0.0, "{latest:?}");
        engine.extend(latest.engine_ms);
    }
    // The engine's figure needs pg_monitor (without it `replay_lag` is NULL for every
    // standby). A standby that caught up between two heartbeats may show NULL for a
    // while too (PostgreSQL clears the lag columns when there is nothing to replay:
    // seen once for eu-west-1's 75 ms link, 500 ms heartbeats), so one region is enough.
    assert!(
        !engine.is_empty(),
        "no engine lag for either region: the lag-probe's role lacks pg_monitor?"
    );
    // What this vantage point (us-east-1, the probe's own region) saw of the writer.
    let seen = store
        .get::<ReachRecord>(&keys::reach("us-east-1", "us-east-1"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert!(seen.reachable && seen.consecutive_failures == 0, "{seen:?}");
    assert!(seen.last_success_at_ms.unwrap() >= before, "{seen:?}");
    assert_eq!(out["writer_reach"]["reachable"], true, "{out}");
    let status = handle(&env, json!({"command": "status"}), None)
        .await
        .unwrap();
    assert_eq!(status["regions"][0]["region"], "eu-west-1");
    assert!(status["regions"][0]["latest"]["heartbeat_ms"]
        .as_f64()
        .is_some());
    assert!(
        status["regions"][0]["from"]["us-east-1"].is_object(),
        "{status}"
    );
    assert!(
        status["writer_reachability"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["vantage"] == "us-east-1" && r["reachable"] == true),
        "{status}"
    );

    let cw = env.aws.cloudwatch(&env.config.core.primary_region);
    let listed = cw
        .list_metrics()
        .namespace(&env.config.core.metrics_namespace)
        .metric_name("ReplicationLagMs")
        .send()
        .await
        .unwrap();
    let sources: std::collections::BTreeSet<String> = listed
        .metrics()
        .iter()
        .flat_map(|m| m.dimensions())
        .filter(|d| d.name() == Some("Source"))
        .filter_map(|d| d.value().map(str::to_string))
        .collect();
    assert!(
        sources.contains("heartbeat") && sources.contains("engine"),
        "{sources:?}"
    );
}

#[tokio::test]
async fn invalid_events_change_nothing() {
    let world = World::load().unwrap();
    let env = env(&world).await;
    for event in [
        json!({"command": "probe", "window_ms": 5}),
        json!({"command": "nope"}),
        json!([1, 2]),
    ] {
        let err = handle(&env, event.clone(), None).await.unwrap_err();
        assert!(matches!(err, LagError::InvalidInput(_)), "{event}: {err}");
    }
}

fn lag_probe_now_ms() -> u64 {
    cutover_core::state::now_ms()
}

/// After a move the writer is the region SSM names, read at every window: the
/// new writer is not measured against itself, and the old primary is measured
/// as a secondary.
#[tokio::test]
async fn the_writer_is_the_active_region_that_ssm_names_at_each_window() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    let env = env(&world).await;
    let access = cutover_core::db::DbAccess::load(&env.config.core.db, &env.aws.ssm(), "lag-probe")
        .await
        .unwrap();
    let before = env.endpoints(&access).await.unwrap();
    assert_eq!(before.primary_region, "us-east-1");
    let eu = world.port(Node::EuWest1).unwrap();
    set_writer_endpoint(&world, &format!("localhost:{eu}"))
        .await
        .unwrap();
    env.aws
        .ssm()
        .put_parameter()
        .name("/migration/app/local/active-region")
        .value("eu-west-1")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let after = env.endpoints(&access).await;
    reset(&world).await.unwrap();
    let after = after.unwrap();
    assert_eq!(after.primary_region, "eu-west-1");
    assert_eq!(after.primary.endpoint.port, eu);
    let readers: Vec<&str> = after.readers.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(readers, vec!["us-east-1", "ap-southeast-1"]);
}

/// Each region's probe keeps its own lag samples and its own record of the
/// writer: a writer it cannot reach is a streak of failures that grows across
/// windows (a window whose first connection fails included), and the samples of
/// another vantage point are not overwritten.
#[tokio::test]
async fn each_vantage_point_records_what_it_saw_of_the_writer() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    restore_delays(&world).await;
    let window = json!({"command": "probe", "window_ms": 1500, "cadence_ms": 500});
    let us = env(&world).await;
    let ap = lag_probe_in(&world, "ap-southeast-1", &[]).await.unwrap();
    handle(&us, window.clone(), None).await.unwrap();
    handle(&ap, window.clone(), None).await.unwrap();
    let store = StateStore::new(us.aws.dynamodb(), us.config.core.state_table.clone());
    let from_us = store
        .get::<LagSample>(&keys::lag_from("eu-west-1", "us-east-1"))
        .await
        .unwrap()
        .unwrap()
        .value;
    let from_ap = store
        .get::<LagSample>(&keys::lag_from("eu-west-1", "ap-southeast-1"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert!(from_us.heartbeat_ms.is_some() && from_ap.heartbeat_ms.is_some());
    let seen = reach(&world, "us-east-1", "ap-southeast-1")
        .await
        .unwrap()
        .unwrap();
    assert!(seen.reachable, "{seen:?}");
    let last_success = seen.last_success_at_ms;

    // The writer's endpoint goes dead: two windows, each failing at its first connection.
    set_writer_endpoint(&world, "localhost:1").await.unwrap();
    let first = handle(&ap, window.clone(), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = handle(&ap, window.clone(), None).await;
    let down = reach(&world, "us-east-1", "ap-southeast-1")
        .await
        .unwrap()
        .unwrap();
    reset(&world).await.unwrap();
    assert!(first.is_err() && second.is_err());
    assert!(!down.reachable, "{down:?}");
    assert_eq!(down.consecutive_failures, 2, "{down:?}");
    assert!(down.unreachable_for_ms() >= 300, "{down:?}");
    assert_eq!(down.last_success_at_ms, last_success, "{down:?}");
    assert!(down.last_error.is_some(), "{down:?}");
    // A window that could not even connect is not silence to an alarm.
    let listed = ap
        .aws
        .cloudwatch(&ap.config.core.primary_region)
        .list_metrics()
        .namespace(&ap.config.core.metrics_namespace)
        .metric_name("RegionUnreachable")
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .metrics()
            .iter()
            .flat_map(|m| m.dimensions())
            .any(|d| d.name() == Some("Region") && d.value() == Some("us-east-1")),
        "{listed:?}"
    );

    // Back: reachable again, the streak gone.
    handle(&ap, window, None).await.unwrap();
    let up = reach(&world, "us-east-1", "ap-southeast-1")
        .await
        .unwrap()
        .unwrap();
    assert!(up.reachable && up.first_failure_at_ms.is_none(), "{up:?}");
}

/// The first failed attempt on the writer publishes the lag samples measured up
/// to it, without waiting for the next flush: when the writer is gone they are
/// the last anyone takes, and the failover's loss estimate reads them. Here the
/// flush is a minute away and the window 9 s long: the sample must arrive
/// within a few seconds of the writer freezing, and be from just before it.
#[tokio::test]
async fn the_first_failure_on_the_writer_publishes_the_samples_taken_before_it() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    restore_delays(&world).await;
    let ap = lag_probe_in(
        &world,
        "ap-southeast-1",
        &[
            ("CUTOVER_LAG_FLUSH_MS", "60000"),
            ("CUTOVER_LAG_POLL_TIMEOUT_MS", "1000"),
        ],
    )
    .await
    .unwrap();
    let store = StateStore::new(ap.aws.dynamodb(), ap.config.core.state_table.clone());
    let key = keys::lag_from("eu-west-1", "ap-southeast-1");
    let started_ms = lag_probe_now_ms();
    let probing = tokio::spawn(async move {
        handle(
            &ap,
            json!({"command": "probe", "window_ms": 9000, "cadence_ms": 250}),
            None,
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frozen_at_ms = lag_probe_now_ms();
    world.freeze(Node::UsEast1).unwrap();
    let mut published = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(s) = store.get::<LagSample>(&key).await.unwrap() {
            if s.value.taken_at_ms >= started_ms {
                published = Some((s.value, lag_probe_now_ms(), probing.is_finished()));
                break;
            }
        }
    }
    world.thaw(Node::UsEast1).unwrap();
    let _ = probing.await.unwrap();
    let (sample, seen_at_ms, window_over) =
        published.expect("no sample of this window within 4 s of the writer freezing");
    assert!(
        !window_over,
        "published only at the end of the window: {sample:?}"
    );
    assert!(
        seen_at_ms <= frozen_at_ms + 3000,
        "published {} ms after the freeze",
        seen_at_ms - frozen_at_ms
    );
    assert!(
        sample.taken_at_ms + 1000 >= frozen_at_ms,
        "the sample is {} ms older than the freeze: {sample:?}",
        frozen_at_ms.saturating_sub(sample.taken_at_ms)
    );
}
