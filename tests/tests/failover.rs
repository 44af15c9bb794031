//! failover against the world: the lease, state, SSM, SNS and EventBridge on
//! moto, the primary probed for real, and the aurora-global driver on
//! aws-smithy-mocks (moto has no global failover APIs). These tests move only
//! the SSM endpoints (put back after each); the real drills that promote
//! PostgreSQL standbys run in `make demo`.

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;
use std::time::Duration;

use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput;
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
use aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput;
use aws_sdk_rds::types::{GlobalCluster, GlobalClusterMember};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use cutover_core::state::keys;
use cutover_rehearsal::failover_kit::{config, put_lag, reset, set_writer_endpoint};
use cutover_rehearsal::world::World;
use failover::aurora::AuroraGlobal;
use failover::driver::AnyDriver;
use failover::failover::{state_key, Failover, FailoverState, Kind, Phase};
use failover::handler::{build, handle};
use failover::FailoverError;
use futures::future::join_all;
use serde_json::{json, Value};

static TURN: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

const US: &str = "arn:aws:rds:us-east-1:123456789012:cluster:aurora-us-east-1-local";
const EU: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:aurora-eu-west-1-local";
const AP: &str = "arn:aws:rds:ap-southeast-1:123456789012:cluster:aurora-ap-southeast-1-local";

fn global(writer: &str) -> DescribeGlobalClustersOutput {
    let m = |arn: &str| {
        GlobalClusterMember::builder()
            .db_cluster_arn(arn)
            .is_writer(arn == writer)
            .synchronization_status("connected".into())
            .build()
    };
    DescribeGlobalClustersOutput::builder()
        .global_clusters(
            GlobalCluster::builder()
                .global_cluster_identifier("aurora-global-local")
                .global_cluster_members(m(US))
                .global_cluster_members(m(EU))
                .global_cluster_members(m(AP))
                .build(),
        )
        .build()
}

/// The function as deployed with the aurora-global driver, its RDS client mocked.
async fn with_aurora(world: &World, rds: aws_sdk_rds::Client) -> Failover {
    let clusters = format!("us-east-1={US},eu-west-1={EU},ap-southeast-1={AP}");
    let cfg = config(
        world,
        &[
            ("CUTOVER_FAILOVER_DRIVER", "aurora-global"),
            ("CUTOVER_GLOBAL_CLUSTER_ID", "aurora-global-local"),
            ("CUTOVER_CLUSTER_ARNS", &clusters),
        ],
    )
    .unwrap();
    let mut f = build(cfg.clone(), &world.aws().await.unwrap())
        .await
        .unwrap();
    f.driver = AnyDriver::Aurora(AuroraGlobal {
        client: rds,
        global_cluster_id: "aurora-global-local".into(),
        clusters: cfg.cluster_arns,
        poll_every: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    });
    f
}

fn no_retries(c: aws_sdk_rds::config::Builder) -> aws_sdk_rds::config::Builder {
    c.retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())
}

fn sample(world: &World, name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(world.root().join("events/failover").join(name)).unwrap(),
    )
    .unwrap()
}

async fn active_region(f: &Failover) -> String {
    f.active_region().await.unwrap()
}

#[tokio::test]
async fn twenty_concurrent_triggers_make_exactly_one_switchover() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    put_lag(&world, "eu-west-1", 75.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
    let switch = mock!(aws_sdk_rds::Client::switchover_global_cluster)
        .match_requests(|r| r.target_db_cluster_identifier() == Some(EU))
        .sequence()
        .output(|| SwitchoverGlobalClusterOutput::builder().build())
        .repeatedly()
        .build();
    let describe = mock!(aws_sdk_rds::Client::describe_global_clusters)
        .sequence()
        .output(|| global(EU))
        .repeatedly()
        .build();
    let rds = mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&switch, &describe],
        no_retries
    );
    let f = with_aurora(&world, rds).await;
    let epoch_before = f.leases.current().await.unwrap().map_or(0, |l| l.epoch);

    let events: Vec<Value> = (0..20)
        .map(|i| match i % 4 {
            0 => sample(&world, "alarm-eventbridge.json"),
            1 => sample(&world, "alarm-sns.json"),
            2 => json!({"command": "failover"}),
            _ => json!({"command": "switchover"}),
        })
        .collect();
    let runs = events.into_iter().enumerate().map(|(i, e)| {
        let f = &f;
        async move { handle(f, e, &format!("trigger-{i:02}")).await }
    });
    let outcomes: Vec<Value> = join_all(runs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let actions: Vec<&str> = outcomes
        .iter()
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    println!("{actions:?}");
    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|o| o["action"] == "switchover")
        .collect();
    assert_eq!(winners.len(), 1, "{actions:?}");
    assert_eq!(switch.num_calls(), 1, "exactly one SwitchoverGlobalCluster");
    let winner = winners[0]["holder"].as_str().unwrap();
    for o in &outcomes {
        match o["action"].as_str().unwrap() {
            "switchover" => {}
            "fenced" => assert_eq!(o["holder"], winner, "{o}"),
            "cooldown" => assert!(o["summary"].as_str().unwrap().contains("completed"), "{o}"),
            other => panic!("unexpected {other}: {o}"),
        }
    }
    let lease = f.leases.current().await.unwrap().unwrap();
    assert_eq!(lease.epoch, epoch_before + 1, "one epoch increment");
    assert_eq!(lease.holder, winner);
    assert_eq!(active_region(&f).await, "eu-west-1");
    let state = f
        .store
        .get::<FailoverState>(&state_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.value.phase, Phase::Completed);
    assert_eq!(state.epoch, Some(lease.epoch));
    // A trigger after the incident, within the cooldown: refused, nothing moves.
    let later = handle(&f, json!({"command": "failover"}), "later")
        .await
        .unwrap();
    assert_eq!(later["action"], "cooldown");
    assert_eq!(switch.num_calls(), 1);
    reset(&world).await.unwrap();
}

#[tokio::test]
async fn a_half_done_move_is_finished_by_the_next_holder_and_the_stale_one_is_fenced() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    put_lag(&world, "eu-west-1", 75.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
    let switch = mock!(aws_sdk_rds::Client::switchover_global_cluster)
        .match_requests(|r| r.target_db_cluster_identifier() == Some(AP))
        .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
    let describe = mock!(aws_sdk_rds::Client::describe_global_clusters)
        .sequence()
        .output(|| global(AP))
        .repeatedly()
        .build();
    let rds = mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&switch, &describe],
        no_retries
    );
    let f = with_aurora(&world, rds).await;
    // A holder that took the lease, recorded a switchover to ap-southeast-1, and died.
    let dead = f
        .leases
        .acquire("dead-holder", Duration::from_millis(300))
        .await
        .unwrap();
    let half = FailoverState {
        phase: Phase::InProgress,
        kind: Kind::Switchover,
        from: "us-east-1".into(),
        to: "ap-southeast-1".into(),
        lease_epoch: dead.epoch,
        holder: "dead-holder".into(),
        trigger: "alarm".into(),
        expected_loss_ms: Some(0.0),
        started_at_ms: cutover_core::state::now_ms(),
        finished_at_ms: None,
    };
    let v = f
        .store
        .put_fenced(&dead, &state_key(), &half, None)
        .await
        .unwrap();
    // While it is held, a trigger is told who holds it.
    let o = handle(&f, json!({"command": "failover"}), "early")
        .await
        .unwrap();
    assert_eq!(o["action"], "fenced");
    assert_eq!(o["holder"], "dead-holder");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // After expiry the next trigger takes over with a higher epoch and finishes the same move
    // (to ap-southeast-1, although eu-west-1 has less lag: the recorded move wins).
    let o = handle(&f, json!({"command": "failover"}), "next-holder")
        .await
        .unwrap();
    assert_eq!(o["action"], "switchover", "{o}");
    assert_eq!(o["epoch"], dead.epoch + 1);
    assert_eq!(switch.num_calls(), 1);
    assert_eq!(active_region(&f).await, "ap-southeast-1");
    // The dead holder wakes up: its writes are rejected.
    let err = f
        .store
        .put_fenced(&dead, &state_key(), &half, Some(v))
        .await
        .unwrap_err();
    assert!(matches!(err, cutover_core::Error::Fenced(_)), "{err}");
    let err = f
        .leases
        .renew(&dead, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, cutover_core::Error::Fenced(_)), "{err}");
    reset(&world).await.unwrap();
}

#[tokio::test]
async fn a_lost_primary_fails_over_within_budget_refuses_over_it_and_dry_run_changes_nothing() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    let failover = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .match_requests(|r| {
            r.allow_data_loss() == Some(true) && r.target_db_cluster_identifier() == Some(EU)
        })
        .then_output(|| FailoverGlobalClusterOutput::builder().build());
    let describe = mock!(aws_sdk_rds::Client::describe_global_clusters)
        .sequence()
        .output(|| global(EU))
        .repeatedly()
        .build();
    let rds = mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&failover, &describe],
        no_retries
    );
    let f = with_aurora(&world, rds).await;
    // The primary does not answer.
    set_writer_endpoint(&world, "localhost:1").await.unwrap();
    put_lag(&world, "eu-west-1", 2500.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 3000.0).await.unwrap();

    let dry = handle(&f, json!({"command": "dry-run"}), "dry")
        .await
        .unwrap();
    assert_eq!(dry["action"], "dry-run");
    assert_eq!(dry["decision"]["decision"], "refuse");
    let reasons = dry["decision"]["reasons"].to_string();
    assert!(
        reasons.contains("NOT reachable") && reasons.contains("exceeds the RPO budget"),
        "{reasons}"
    );
    assert!(
        f.leases.current().await.unwrap().is_none(),
        "a dry run takes no lease"
    );

    let refused = handle(&f, json!({"command": "failover"}), "t1")
        .await
        .unwrap();
    assert_eq!(refused["action"], "refused");
    assert!(f.leases.current().await.unwrap().is_none());
    assert_eq!(active_region(&f).await, "us-east-1");
    assert_eq!(failover.num_calls(), 0);

    put_lag(&world, "eu-west-1", 80.0).await.unwrap();
    let dry = handle(&f, json!({"command": "dry-run"}), "dry")
        .await
        .unwrap();
    assert_eq!(dry["decision"]["decision"], "failover");
    assert_eq!(dry["decision"]["expected_loss_ms"], 80.0);
    assert_eq!(failover.num_calls(), 0);

    let done = handle(&f, sample(&world, "alarm-eventbridge.json"), "t2")
        .await
        .unwrap();
    assert_eq!(done["action"], "failover", "{done}");
    assert!(done["summary"]
        .as_str()
        .unwrap()
        .contains("up to 80 ms of writes may be lost"));
    assert_eq!(failover.num_calls(), 1);
    assert_eq!(active_region(&f).await, "eu-west-1");
    let writer = cutover_core::db::parameter(&f.ssm, "/migration/db/local/writer-endpoint")
        .await
        .unwrap();
    assert_eq!(
        writer,
        format!("localhost:{}", world.get("CUTOVER_PORT_EU_WEST_1").unwrap())
    );
    // The audit trail has the whole story.
    let audit = f
        .store
        .query_prefix::<Value>("FAILOVER", "EVENT#")
        .await
        .unwrap();
    let whats: Vec<String> = audit
        .iter()
        .map(|(_, v)| v.value["what"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        whats.contains(&"refused".to_string()) && whats.contains(&"completed".to_string()),
        "{whats:?}"
    );
    reset(&world).await.unwrap();
}

#[tokio::test]
async fn forced_failover_over_budget_and_bad_targets() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    let failover = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .then_output(|| FailoverGlobalClusterOutput::builder().build());
    let describe = mock!(aws_sdk_rds::Client::describe_global_clusters)
        .sequence()
        .output(|| global(AP))
        .repeatedly()
        .build();
    let rds = mock_client!(
        aws_sdk_rds,
        RuleMode::MatchAny,
        [&failover, &describe],
        no_retries
    );
    let f = with_aurora(&world, rds).await;
    for (event, needle) in [
        (
            json!({"command": "failover", "target": "us-east-1"}),
            "already the primary",
        ),
        (
            json!({"command": "failover", "target": "mars-north-1"}),
            "unknown target region",
        ),
    ] {
        let err = handle(&f, event, "bad").await.unwrap_err();
        assert!(matches!(err, FailoverError::InvalidInput(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let ignored = handle(&f, sample(&world, "alarm-not-watched.json"), "x")
        .await
        .unwrap();
    assert_eq!(ignored["action"], "ignored");
    assert!(f.leases.current().await.unwrap().is_none());

    set_writer_endpoint(&world, "localhost:1").await.unwrap();
    put_lag(&world, "eu-west-1", 5000.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 4000.0).await.unwrap();
    let o = handle(
        &f,
        json!({"command": "failover", "target": "ap-southeast-1", "force": true}),
        "op",
    )
    .await
    .unwrap();
    assert_eq!(o["action"], "failover", "{o}");
    assert!(o["decision"]["reasons"].to_string().contains("FORCED"));
    assert_eq!(failover.num_calls(), 1);
    assert_eq!(active_region(&f).await, "ap-southeast-1");
    let _ = keys::failover_lease();
    reset(&world).await.unwrap();
}
