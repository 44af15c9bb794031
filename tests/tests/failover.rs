//! failover against the world: the lease, state, SSM, SNS and EventBridge on
//! moto, the primary probed for real, and the aurora-global driver on
//! aws-smithy-mocks (moto has no global failover APIs). The aurora tests move only
//! the SSM endpoints (put back after each); the postgres-streaming crash drill
//! promotes eu-west-1 for real and rebuilds the standbys from us-east-1 after each
//! round (`world.sh rebuild-standby`).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput;
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
use aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput;
use aws_sdk_rds::types::{
    FailoverState as MoveInFlight, FailoverStatus, GlobalCluster, GlobalClusterMember,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use cutover_core::state::keys;
use cutover_rehearsal::failover_kit::{
    config, copy_db_parameters, lag_probe_in, put_lag, put_reach, reach, reset, set_writer_endpoint,
};
use cutover_rehearsal::world::{Node, World};
use failover::aurora::AuroraGlobal;
use failover::driver::{AnyDriver, Step};
use failover::failover::{state_key, Failover, FailoverState, Kind, Phase};
use failover::handler::{build, handle};
use failover::FailoverError;
use futures::future::join_all;
use serde_json::{json, Value};

static TURN: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

const US: &str = "arn:aws:rds:us-east-1:123456789012:cluster:aurora-us-east-1-local";
const EU: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:aurora-eu-west-1-local";
const AP: &str = "arn:aws:rds:ap-southeast-1:123456789012:cluster:aurora-ap-southeast-1-local";

fn global(writer: &str, moving_to: Option<&str>) -> DescribeGlobalClustersOutput {
    let m = |arn: &str| {
        GlobalClusterMember::builder()
            .db_cluster_arn(arn)
            .is_writer(arn == writer)
            .synchronization_status("connected".into())
            .build()
    };
    let mut gc = GlobalCluster::builder()
        .global_cluster_identifier("aurora-global-local")
        .global_cluster_members(m(US))
        .global_cluster_members(m(EU))
        .global_cluster_members(m(AP));
    if let Some(to) = moving_to {
        gc = gc.failover_state(
            MoveInFlight::builder()
                .status(FailoverStatus::FailingOver)
                .from_db_cluster_arn(writer)
                .to_db_cluster_arn(to)
                .build(),
        );
    }
    DescribeGlobalClustersOutput::builder()
        .global_clusters(gc.build())
        .build()
}

/// A cluster's writer (cluster) endpoint as RDS names it.
fn writer_host(name: &str, region: &str) -> String {
    format!("{name}.cluster-x.{region}.rds.amazonaws.com")
}

/// A global cluster that moves like the real one, on aws-smithy-mocks: it shows
/// its writer until a Switchover/Failover call is accepted, then that move in
/// flight for a few DescribeGlobalClusters, then the target writing. A call while
/// a move is in flight is refused, as AWS refuses it.
#[derive(Clone)]
struct Cluster(Arc<Mutex<Moving>>);

struct Moving {
    writer: String,
    moving_to: Option<(String, usize)>,
    accepted: Vec<String>,
    in_flight_polls: usize,
}

impl Cluster {
    fn new(writer: &str, in_flight_polls: usize) -> Cluster {
        Cluster(Arc::new(Mutex::new(Moving {
            writer: writer.into(),
            moving_to: None,
            accepted: vec![],
            in_flight_polls,
        })))
    }

    fn describe(&self) -> DescribeGlobalClustersOutput {
        let mut m = self.0.lock().unwrap();
        match m.moving_to.take() {
            Some((to, 0)) => m.writer = to,
            Some((to, left)) => {
                m.moving_to = Some((to.clone(), left - 1));
                return global(&m.writer.clone(), Some(&to));
            }
            None => {}
        }
        global(&m.writer, None)
    }

    /// Accepts a move unless one is in flight.
    fn start(&self, operation: &str, to: Option<&str>) -> bool {
        let mut m = self.0.lock().unwrap();
        if m.moving_to.is_some() {
            return false;
        }
        let to = to.unwrap_or_default().to_string();
        m.accepted.push(format!("{operation} -> {to}"));
        m.moving_to = Some((to, m.in_flight_polls));
        true
    }

    /// The calls the engine accepted.
    fn accepted(&self) -> Vec<String> {
        self.0.lock().unwrap().accepted.clone()
    }

    fn rules(&self) -> [Rule; 4] {
        let (c1, c2, c3) = (self.clone(), self.clone(), self.clone());
        let refused = || {
            aws_sdk_rds::error::ErrorMetadata::builder()
                .code("InvalidGlobalClusterStateFault")
                .message("a switchover or failover is already in progress")
                .build()
        };
        [
            mock!(aws_sdk_rds::Client::describe_global_clusters)
                .then_compute_output(move |_| c1.describe()),
            mock!(aws_sdk_rds::Client::describe_db_clusters).then_compute_output(|r| {
                let arn = r.db_cluster_identifier().unwrap_or_default().to_string();
                let name = arn.rsplit(':').next().unwrap_or_default().to_string();
                let region = arn.split(':').nth(3).unwrap_or_default().to_string();
                aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput::builder()
                    .db_clusters(
                        aws_sdk_rds::types::DbCluster::builder()
                            .db_cluster_arn(&arn)
                            .endpoint(writer_host(&name, &region))
                            .reader_endpoint(format!("{name}.cluster-ro-x.{region}.rds.amazonaws.com"))
                            .port(5432)
                            .build(),
                    )
                    .build()
            }),
            mock!(aws_sdk_rds::Client::switchover_global_cluster).then_compute_response(
                move |r| {
                    if c2.start("Switchover", r.target_db_cluster_identifier()) {
                        aws_smithy_mocks::MockResponse::Output(
                            SwitchoverGlobalClusterOutput::builder().build(),
                        )
                    } else {
                        aws_smithy_mocks::MockResponse::Error(
                            aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterError::generic(refused()),
                        )
                    }
                },
            ),
            mock!(aws_sdk_rds::Client::failover_global_cluster).then_compute_response(
                move |r| {
                    assert_eq!(r.allow_data_loss(), Some(true));
                    if c3.start("Failover", r.target_db_cluster_identifier()) {
                        aws_smithy_mocks::MockResponse::Output(
                            FailoverGlobalClusterOutput::builder().build(),
                        )
                    } else {
                        aws_smithy_mocks::MockResponse::Error(
                            aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterError::generic(refused()),
                        )
                    }
                },
            ),
        ]
    }

    fn client(&self) -> aws_sdk_rds::Client {
        let [a, b, c, d] = self.rules();
        mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&a, &b, &c, &d],
            no_retries
        )
    }
}

/// The function as deployed with the aurora-global driver, its RDS client mocked.
async fn with_aurora(world: &World, rds: aws_sdk_rds::Client) -> Failover {
    with_aurora_and(world, rds, &[]).await
}

async fn with_aurora_and(
    world: &World,
    rds: aws_sdk_rds::Client,
    overrides: &[(&str, &str)],
) -> Failover {
    let clusters = format!("us-east-1={US},eu-west-1={EU},ap-southeast-1={AP}");
    let mut settings = vec![
        ("CUTOVER_FAILOVER_DRIVER", "aurora-global"),
        ("CUTOVER_GLOBAL_CLUSTER_ID", "aurora-global-local"),
        ("CUTOVER_CLUSTER_ARNS", clusters.as_str()),
        // Twenty TLS probes at once on a busy 2-core machine can take seconds.
        ("CUTOVER_FAILOVER_PROBE_TIMEOUT_MS", "10000"),
        // The writer is lost only after every probe over the grace period failed:
        // short here, so a lost-primary test does not wait the default 30 s.
        ("CUTOVER_FAILOVER_GRACE_MS", "300"),
        ("CUTOVER_FAILOVER_PROBE_EVERY_MS", "100"),
    ];
    settings.extend_from_slice(overrides);
    let cfg = config(world, &settings).unwrap();
    let mut f = build(cfg.clone(), &world.aws().await.unwrap())
        .await
        .unwrap();
    f.driver = AnyDriver::Aurora(AuroraGlobal {
        client: rds,
        members: Default::default(),
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
    let cluster = Cluster::new(US, 2);
    let f = with_aurora(&world, cluster.client()).await;
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
    for o in &outcomes {
        if o["action"] == "refused" {
            println!("{o}");
        }
    }
    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|o| o["action"] == "switchover")
        .collect();
    assert_eq!(winners.len(), 1, "{actions:?}");
    assert_eq!(
        cluster.accepted(),
        vec![format!("Switchover -> {EU}")],
        "exactly one SwitchoverGlobalCluster"
    );
    let winner = winners[0]["holder"].as_str().unwrap();
    for (i, o) in outcomes.iter().enumerate() {
        match o["action"].as_str().unwrap() {
            "switchover" => assert!(
                i % 4 >= 2,
                "only a person's command moves a writer that answers: {o}"
            ),
            // An alarm with the writer answering is refused, and says why.
            "refused" => {
                assert!(i % 4 < 2, "{o}");
                assert!(
                    o["summary"]
                        .as_str()
                        .unwrap()
                        .contains("never moves a writer that answers"),
                    "{o}"
                );
            }
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
    assert_eq!(cluster.accepted().len(), 1);
    reset(&world).await.unwrap();
}

#[tokio::test]
async fn a_half_done_move_is_finished_by_the_next_holder_and_the_stale_one_is_fenced() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    put_lag(&world, "eu-west-1", 75.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
    let cluster = Cluster::new(US, 2);
    let f = with_aurora(&world, cluster.client()).await;
    // A holder that took the lease, recorded a switchover to ap-southeast-1, and died.
    let dead = f
        .leases
        // Long enough that the first trigger below still finds it held on a loaded
        // machine (300 ms was not: CI-like load made the lease expire first).
        .acquire("dead-holder", Duration::from_millis(2000))
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
        loss_is_lower_bound: false,
        started_at_ms: cutover_core::state::now_ms(),
        finished_at_ms: None,
        fork_xid: None,
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
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // After expiry the next trigger takes over with a higher epoch and finishes the same move
    // (to ap-southeast-1, although eu-west-1 has less lag: the recorded move wins).
    let o = handle(&f, json!({"command": "failover"}), "next-holder")
        .await
        .unwrap();
    assert_eq!(o["action"], "switchover", "{o}");
    assert_eq!(o["epoch"], dead.epoch + 1);
    assert_eq!(cluster.accepted(), vec![format!("Switchover -> {AP}")]);
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
    let cluster = Cluster::new(US, 1);
    let f = with_aurora(&world, cluster.client()).await;
    // The primary does not answer, from here nor from ap-southeast-1 (a minute now).
    set_writer_endpoint(&world, "localhost:1").await.unwrap();
    put_reach(
        &world,
        "us-east-1",
        "ap-southeast-1",
        Some(Duration::from_secs(60)),
    )
    .await
    .unwrap();
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
    assert!(cluster.accepted().is_empty());

    put_lag(&world, "eu-west-1", 80.0).await.unwrap();
    let dry = handle(&f, json!({"command": "dry-run"}), "dry")
        .await
        .unwrap();
    assert_eq!(dry["decision"]["decision"], "failover");
    assert_eq!(dry["decision"]["expected_loss_ms"], 80.0);
    assert!(cluster.accepted().is_empty());

    let done = handle(&f, sample(&world, "alarm-eventbridge.json"), "t2")
        .await
        .unwrap();
    assert_eq!(done["action"], "failover", "{done}");
    assert!(done["summary"]
        .as_str()
        .unwrap()
        .contains("up to 80 ms of writes may be lost"));
    assert_eq!(cluster.accepted(), vec![format!("Failover -> {EU}")]);
    assert_eq!(active_region(&f).await, "eu-west-1");
    let writer = cutover_core::db::parameter(&f.ssm, "/migration/db/local/writer-endpoint")
        .await
        .unwrap();
    // The target cluster's writer endpoint, not its reader endpoint.
    assert_eq!(
        writer,
        format!(
            "{}:5432",
            writer_host("aurora-eu-west-1-local", "eu-west-1")
        )
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
    let cluster = Cluster::new(US, 1);
    let f = with_aurora(&world, cluster.client()).await;
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
    assert_eq!(cluster.accepted(), vec![format!("Failover -> {AP}")]);
    assert_eq!(active_region(&f).await, "ap-southeast-1");
    let _ = keys::failover_lease();
    reset(&world).await.unwrap();
}

/// The crash-at-every-step drill on the aurora-global driver: the run dies right
/// before each step in turn (after the lease, after the engine accepted the
/// move, after the writer moved, after the endpoint write, before the final
/// state); the next trigger after the lease expires finishes the same move with
/// a higher epoch, and the engine is asked exactly once.
#[tokio::test]
async fn a_run_killed_after_any_step_is_finished_by_the_next_exactly_once() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    for (died_before, after) in [
        (Step::Move, "the lease"),
        (Step::Wait, "the engine accepted the move"),
        (Step::Endpoint, "the writer moved"),
        (Step::ActiveRegion, "the endpoint write"),
        (Step::Record, "the endpoints, before the final state"),
    ] {
        reset(&world).await.unwrap();
        put_lag(&world, "eu-west-1", 75.0).await.unwrap();
        put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
        let cluster = Cluster::new(US, 2);
        let mut f =
            // Long enough that the dead run still holds it when "too-early" comes (every
            // DynamoDB call goes through the world's router, a few hops under load).
            with_aurora_and(&world, cluster.client(), &[("CUTOVER_LEASE_TTL_MS", "2000")]).await;
        let epoch_before = f.leases.current().await.unwrap().map_or(0, |l| l.epoch);

        f.drill_stop_before = Some(died_before);
        let err = handle(&f, json!({"command": "switchover"}), "doomed")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("drill"), "{died_before}: {err}");
        let state = f
            .store
            .get::<FailoverState>(&state_key())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.value.phase, Phase::InProgress, "killed after {after}");
        assert_eq!(state.value.to, "eu-west-1");
        let accepted_when_killed = cluster.accepted().len();

        // Held by the dead run until its lease expires.
        f.drill_stop_before = None;
        let o = handle(&f, json!({"command": "failover"}), "too-early")
            .await
            .unwrap();
        assert_eq!(o["action"], "fenced", "killed after {after}: {o}");
        tokio::time::sleep(Duration::from_millis(2100)).await;

        // An alarm (not what the dead run was doing) resumes the recorded switchover.
        let o = handle(&f, sample(&world, "alarm-eventbridge.json"), "next")
            .await
            .unwrap();
        assert_eq!(o["action"], "switchover", "killed after {after}: {o}");
        assert_eq!(o["epoch"], epoch_before + 2, "killed after {after}: {o}");
        assert_eq!(
            cluster.accepted(),
            vec![format!("Switchover -> {EU}")],
            "killed after {after}: the engine is asked exactly once ({accepted_when_killed} before the kill); steps {}",
            o["steps"]
        );
        assert_eq!(active_region(&f).await, "eu-west-1", "killed after {after}");
        let state = f
            .store
            .get::<FailoverState>(&state_key())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.value.phase, Phase::Completed, "killed after {after}");
        assert_eq!(state.epoch, Some(epoch_before + 2));
        assert_eq!(state.value.holder, "next");

        // The dead run's lease is useless now, and a later trigger moves nothing.
        let o = handle(&f, json!({"command": "failover"}), "later")
            .await
            .unwrap();
        assert_eq!(o["action"], "cooldown", "killed after {after}: {o}");
        assert_eq!(cluster.accepted().len(), 1);
    }
    reset(&world).await.unwrap();
}

/// Detection: an alarm fires while the writer stops answering for about a
/// second, less than the grace period. The writer is re-probed until it answers
/// again, so nothing moves, and the refusal says it was a blip.
#[tokio::test]
async fn an_alarm_during_a_blip_shorter_than_the_grace_period_moves_nothing() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    put_lag(&world, "eu-west-1", 75.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
    let cluster = Cluster::new(US, 1);
    let f = with_aurora_and(
        &world,
        cluster.client(),
        &[
            ("CUTOVER_FAILOVER_GRACE_MS", "5000"),
            ("CUTOVER_FAILOVER_PROBE_EVERY_MS", "200"),
        ],
    )
    .await;
    set_writer_endpoint(&world, "localhost:1").await.unwrap();
    let back = {
        let world = world.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let port = world.port(Node::UsEast1).unwrap();
            set_writer_endpoint(&world, &format!("localhost:{port}"))
                .await
                .unwrap();
        })
    };
    let o = handle(&f, sample(&world, "alarm-eventbridge.json"), "blip")
        .await
        .unwrap();
    back.await.unwrap();
    assert_eq!(o["action"], "refused", "{o}");
    let reasons = o["decision"]["reasons"].to_string();
    assert!(reasons.contains("a blip"), "{reasons}");
    assert!(
        reasons.contains("never moves a writer that answers"),
        "{reasons}"
    );
    assert!(cluster.accepted().is_empty());
    assert_eq!(active_region(&f).await, "us-east-1");
    assert!(
        f.leases.current().await.unwrap().is_none(),
        "no lease taken"
    );
    reset(&world).await.unwrap();
}

/// The function as deployed in eu-west-1 (its vantage point), on the aurora-global driver.
async fn in_eu_west_1(
    world: &World,
    rds: aws_sdk_rds::Client,
    overrides: &[(&str, &str)],
) -> Failover {
    let mut settings = vec![("CUTOVER_PRIMARY_REGION", "eu-west-1")];
    settings.extend_from_slice(overrides);
    with_aurora_and(world, rds, &settings).await
}

/// One window of the lag-probe in `vantage`, against the writer its parameters name.
async fn probe_window_from(
    world: &World,
    vantage: &str,
    overrides: &[(&str, &str)],
    window_ms: u64,
) -> Result<Value, String> {
    let env = lag_probe_in(world, vantage, overrides).await.unwrap();
    lag_probe::handler::handle(
        &env,
        json!({"command": "probe", "window_ms": window_ms, "cadence_ms": 500}),
        None,
    )
    .await
    .map_err(|e| e.to_string())
}

/// A partial partition: the writer does not answer the failover in eu-west-1
/// (the writer endpoint is dead in the parameters it reads), while the
/// lag-probe in ap-southeast-1 (its real code, reading its own region's copy of
/// the parameters, where the writer is alive) takes heartbeat writes from it
/// during the failover's grace period. An alarm, and a person's unforced
/// failover, are refused with the reason, audited, and nothing changes.
#[tokio::test]
async fn a_writer_unreachable_from_one_region_only_is_not_moved() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    put_lag(&world, "eu-west-1", 75.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
    let ap_parameters = "/migration/db/local-ap-southeast-1";
    copy_db_parameters(&world, ap_parameters).await.unwrap();
    // Its successes are rewritten every 500 ms (10 s by default, against a grace of 30 s):
    // the grace here is 2 s, and a success older than the failures seen from eu-west-1
    // would contradict nothing.
    let ap_sees = [
        ("CUTOVER_DB_SSM_PREFIX", ap_parameters),
        ("CUTOVER_LAG_FLUSH_MS", "500"),
    ];
    // From eu-west-1 the writer is gone.
    set_writer_endpoint(&world, "localhost:1").await.unwrap();
    let cluster = Cluster::new(US, 1);
    let f = in_eu_west_1(
        &world,
        cluster.client(),
        &[
            ("CUTOVER_FAILOVER_GRACE_MS", "2000"),
            ("CUTOVER_FAILOVER_PROBE_EVERY_MS", "200"),
        ],
    )
    .await;

    for (trigger, event) in [
        ("alarm", sample(&world, "alarm-eventbridge.json")),
        ("person", json!({"command": "failover"})),
    ] {
        let (o, ap_window) = tokio::join!(
            handle(&f, event, trigger),
            probe_window_from(&world, "ap-southeast-1", &ap_sees, 2500)
        );
        let o = o.unwrap();
        ap_window.unwrap();
        let ap = reach(&world, "us-east-1", "ap-southeast-1")
            .await
            .unwrap()
            .unwrap();
        assert!(ap.reachable, "{ap:?}");
        assert_eq!(o["action"], "refused", "{trigger}: {o}");
        let summary = o["summary"].as_str().unwrap();
        assert!(
            summary.contains("partial partition: unreachable from eu-west-1 (direct probe")
                && summary.contains("only; reachable from ap-southeast-1 at "),
            "{trigger}: {summary}"
        );
    }
    assert!(cluster.accepted().is_empty(), "the engine was never asked");
    assert_eq!(active_region(&f).await, "us-east-1");
    assert!(
        f.leases.current().await.unwrap().is_none(),
        "no lease taken"
    );
    assert!(f
        .store
        .get::<FailoverState>(&state_key())
        .await
        .unwrap()
        .is_none());
    let audit = f
        .store
        .query_prefix::<Value>("FAILOVER", "EVENT#")
        .await
        .unwrap();
    let refusals = audit
        .iter()
        .filter(|(_, v)| {
            v.value["what"] == "refused"
                && v.value["detail"]["reasons"]
                    .to_string()
                    .contains("partial partition")
        })
        .count();
    assert!(refusals >= 2, "both refusals audited: {audit:?}");
    // `status` shows what every vantage point last saw of the writer.
    let status = handle(&f, json!({"command": "status"}), "status")
        .await
        .unwrap();
    assert!(
        status["writer_reachability"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["vantage"] == "ap-southeast-1" && r["reachable"] == true),
        "{status}"
    );
    reset(&world).await.unwrap();
}

/// The writer is down from two vantage points: the failover's own in eu-west-1
/// and ap-southeast-1's lag-probe (its real code, whose windows fail at their
/// first connection). While ap-southeast-1's failures span less than the grace
/// period nothing moves; once they span it, ten alarms at once make exactly one
/// failover.
#[tokio::test]
async fn a_writer_down_from_two_regions_past_the_grace_period_moves_exactly_once() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    put_lag(&world, "eu-west-1", 75.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
    set_writer_endpoint(&world, "localhost:1").await.unwrap();
    let cluster = Cluster::new(US, 1);
    let f = in_eu_west_1(&world, cluster.client(), &[]).await;

    // ap-southeast-1 has failed once: not yet for the grace period (300 ms here).
    let err = probe_window_from(&world, "ap-southeast-1", &[], 1500)
        .await
        .unwrap_err();
    assert!(!err.is_empty());
    let early = handle(&f, sample(&world, "alarm-eventbridge.json"), "early")
        .await
        .unwrap();
    assert_eq!(early["action"], "refused", "{early}");
    let summary = early["summary"].as_str().unwrap();
    assert!(
        summary.contains("no agreement") && summary.contains("failing, but not for long"),
        "{summary}"
    );
    assert!(cluster.accepted().is_empty());

    // Its next window fails too: a streak longer than the grace period.
    tokio::time::sleep(Duration::from_millis(400)).await;
    probe_window_from(&world, "ap-southeast-1", &[], 1500)
        .await
        .unwrap_err();
    let ap = reach(&world, "us-east-1", "ap-southeast-1")
        .await
        .unwrap()
        .unwrap();
    assert!(!ap.reachable, "{ap:?}");
    assert!(ap.consecutive_failures >= 2, "{ap:?}");
    assert!(ap.unreachable_for_ms() >= 300, "{ap:?}");

    let alarms = (0..10).map(|i| {
        let f = &f;
        let e = sample(&world, "alarm-eventbridge.json");
        async move { handle(f, e, &format!("alarm-{i:02}")).await.unwrap() }
    });
    let outcomes = join_all(alarms).await;
    let moved: Vec<&Value> = outcomes
        .iter()
        .filter(|o| o["action"] == "failover")
        .collect();
    assert_eq!(moved.len(), 1, "{outcomes:?}");
    println!(
        "one failover among ten alarms; timings {}; actions {:?}",
        moved[0]["timings"],
        outcomes
            .iter()
            .map(|o| o["action"].to_string())
            .collect::<Vec<_>>()
    );
    let reasons = moved[0]["decision"]["reasons"].to_string();
    assert!(
        reasons.contains("is lost: unreachable for at least the grace period")
            && reasons.contains("eu-west-1 (direct probe")
            && reasons.contains("ap-southeast-1 (lag-probe record"),
        "{reasons}"
    );
    assert!(
        reasons.contains("lag 75 ms (sampled from us-east-1)"),
        "{reasons}"
    );
    for o in &outcomes {
        assert!(
            ["failover", "fenced", "cooldown", "completed-elsewhere"]
                .contains(&o["action"].as_str().unwrap_or("")),
            "{o}"
        );
    }
    assert_eq!(cluster.accepted(), vec![format!("Failover -> {EU}")]);
    assert_eq!(active_region(&f).await, "eu-west-1");
    reset(&world).await.unwrap();
}

/// The crash-at-every-step drill on real PostgreSQL (postgres-streaming): a
/// switchover us-east-1 -> eu-west-1 dies right before each step in turn (after
/// the lease, after fencing, after the promotion, after the endpoint write,
/// before the final state); the next trigger after the lease expires finishes it
/// with a higher epoch, promoting eu-west-1 exactly once and never fencing again
/// once it was promoted. The world is rebuilt after each round.
#[tokio::test]
async fn a_postgres_switchover_killed_after_any_step_is_finished_exactly_once() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    let out = cutover_rehearsal::failover_stage::crash_drill(&world, &mut |l| println!("{l}"))
        .await
        .unwrap();
    let rounds = out["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 5, "{out}");
    for r in rounds {
        let after = &r["killed_after"];
        assert_eq!(r["died_as_planned"], true, "after {after}: {r}");
        assert_eq!(r["action"], "switchover", "after {after}: {r}");
        assert_eq!(
            r["epoch"].as_u64(),
            Some(r["epoch_before"].as_u64().unwrap() + 2),
            "after {after}: {r}"
        );
        let steps = r["steps"].to_string();
        if r["promoted_at_kill"] == true {
            assert!(steps.contains("already promoted"), "after {after}: {steps}");
            assert_eq!(r["promotions_on_resume"], 0, "promoted twice: {steps}");
            assert_eq!(r["fenced_again"], false, "fenced again: {steps}");
        } else {
            assert!(
                steps.contains("eu-west-1: promoted in"),
                "after {after}: {steps}"
            );
        }
        assert_eq!(r["writers"], 1, "after {after}: two writers or none: {r}");
        assert_eq!(r["state_completed"], true, "after {after}: {r}");
        assert_eq!(r["ok"], true, "after {after}: {r}");
    }
    // The kill points that came after the promotion found eu-west-1 already writing.
    let promoted: Vec<bool> = rounds
        .iter()
        .map(|r| r["promoted_at_kill"] == true)
        .collect();
    assert_eq!(promoted, [false, false, true, true, true], "{out}");
    assert_eq!(out["ok"], true, "{out}");
}

/// The blip drill with the defaults: the writer's server is stopped (SIGSTOP: it
/// neither answers nor refuses) for 10 s and resumes in place, while an alarm fires
/// and a second region's lag-probe watches it fail too. The default 22 s grace period
/// outlasts the blip, so the writer answers again before anyone may move it: nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_stopped_for_ten_seconds_and_resumed_in_place_moves_nothing() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    put_lag(&world, "eu-west-1", 75.0).await.unwrap();
    put_lag(&world, "ap-southeast-1", 220.0).await.unwrap();
    let cluster = Cluster::new(US, 1);
    let f = with_aurora_and(
        &world,
        cluster.client(),
        // The defaults (22 s grace, probes every 2 s, 2 s timeout): what is deployed.
        &[
            ("CUTOVER_FAILOVER_GRACE_MS", "22000"),
            ("CUTOVER_FAILOVER_PROBE_EVERY_MS", "2000"),
            ("CUTOVER_FAILOVER_PROBE_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    world.freeze(Node::UsEast1).unwrap();
    let stopped = std::time::Instant::now();
    let resume = {
        let world = world.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            world.thaw(Node::UsEast1).unwrap();
        })
    };
    // ap-southeast-1's lag-probe, window after window while the writer is stopped.
    let watcher = {
        let world = world.clone();
        tokio::spawn(async move {
            let mut failed = 0;
            while stopped.elapsed() < Duration::from_secs(9) {
                if probe_window_from(&world, "ap-southeast-1", &[], 1500)
                    .await
                    .is_err()
                {
                    failed += 1;
                }
            }
            failed
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let o = handle(&f, sample(&world, "alarm-eventbridge.json"), "blip-10s").await;
    resume.await.unwrap();
    let failed_windows = watcher.await.unwrap();
    let answered_after = stopped.elapsed();
    let o = o.unwrap();
    assert_eq!(o["action"], "refused", "{o}");
    assert!(cluster.accepted().is_empty(), "nothing moved");
    let reasons = o["decision"]["reasons"].to_string();
    assert!(
        reasons.contains("blip") || reasons.contains("answers"),
        "{reasons}"
    );
    assert!(
        answered_after >= Duration::from_secs(10),
        "the function waited for the writer to answer again ({answered_after:?})"
    );
    println!(
        "blip of 10 s: ap-southeast-1's probe failed {failed_windows} windows; the function answered after {answered_after:?}: {}",
        o["summary"]
    );
    reset(&world).await.unwrap();
}

/// RDS in the old primary's region as the aurora-global reconciliation meets it: Aurora's
/// snapshot of the old primary, and what the run creates — still being made until `ready`.
/// The restored cluster answers at the world's us-east-1 (the old primary "as it died" is
/// the new primary here: nothing differs, the run is about the steps).
#[derive(Clone)]
struct OldRegion(Arc<Mutex<Made>>);

#[derive(Default)]
struct Made {
    ready: bool,
    kept: Option<String>,
    cluster: Option<String>,
    instance: Option<String>,
    calls: Vec<String>,
}

impl OldRegion {
    fn made(&self) -> std::sync::MutexGuard<'_, Made> {
        self.0.lock().unwrap()
    }

    fn client(&self, old: &'static str, started_ms: u64, port: u16) -> aws_sdk_rds::Client {
        use aws_sdk_rds::operation::{
            copy_db_cluster_snapshot::CopyDbClusterSnapshotOutput,
            create_db_instance::CreateDbInstanceOutput, delete_db_cluster::DeleteDbClusterOutput,
            delete_db_instance::DeleteDbInstanceOutput,
            describe_db_cluster_snapshots::DescribeDbClusterSnapshotsOutput,
            describe_db_clusters::DescribeDbClustersOutput,
            describe_db_instances::DescribeDbInstancesOutput,
            restore_db_cluster_from_snapshot::RestoreDbClusterFromSnapshotOutput,
        };
        use aws_sdk_rds::types::{DbCluster, DbClusterSnapshot, DbInstance};
        let at = |ms: u64| aws_sdk_rds::primitives::DateTime::from_millis(ms as i64);
        let (s, c, cp, r, i, ci, di, dc) = (
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
        );
        let rules = [
            mock!(aws_sdk_rds::Client::describe_db_cluster_snapshots).then_compute_output(
                move |q| {
                    let mut m = s.made();
                    let list = if q.snapshot_type() == Some("manual") {
                        m.calls.push("prune".into());
                        vec![]
                    } else if let Some(id) = q.db_cluster_snapshot_identifier() {
                        m.kept
                            .iter()
                            .filter(|k| *k == id)
                            .map(|k| {
                                DbClusterSnapshot::builder()
                                    .db_cluster_snapshot_identifier(k)
                                    .status(if m.ready { "available" } else { "creating" })
                                    .engine("aurora-postgresql")
                                    .build()
                            })
                            .collect()
                    } else {
                        m.calls.push("find".into());
                        vec![DbClusterSnapshot::builder()
                            .db_cluster_snapshot_identifier(format!(
                                "rds:unplanned-global-failover-{old}-2026-12-03-06-00"
                            ))
                            .status("available")
                            .snapshot_create_time(at(started_ms + 60_000))
                            .build()]
                    };
                    DescribeDbClusterSnapshotsOutput::builder()
                        .set_db_cluster_snapshots(Some(list))
                        .build()
                },
            ),
            mock!(aws_sdk_rds::Client::describe_db_clusters).then_compute_output(move |q| {
                let m = c.made();
                let id = q.db_cluster_identifier().unwrap_or_default();
                let found = if id == old {
                    Some(
                        DbCluster::builder()
                            .db_cluster_identifier(old)
                            .engine("aurora-postgresql")
                            .db_subnet_group("db-subnets-us-east-1-local")
                            .build(),
                    )
                } else {
                    m.cluster.iter().find(|k| *k == id).map(|k| {
                        DbCluster::builder()
                            .db_cluster_identifier(k)
                            .engine("aurora-postgresql")
                            .status("available")
                            .endpoint("localhost")
                            .port(port as i32)
                            .build()
                    })
                };
                DescribeDbClustersOutput::builder()
                    .set_db_clusters(Some(found.into_iter().collect()))
                    .build()
            }),
            mock!(aws_sdk_rds::Client::copy_db_cluster_snapshot).then_compute_output(move |q| {
                let mut m = cp.made();
                m.kept = q
                    .target_db_cluster_snapshot_identifier()
                    .map(str::to_string);
                m.calls.push("copy".into());
                CopyDbClusterSnapshotOutput::builder().build()
            }),
            mock!(aws_sdk_rds::Client::restore_db_cluster_from_snapshot).then_compute_output(
                move |q| {
                    let mut m = r.made();
                    m.cluster = q.db_cluster_identifier().map(str::to_string);
                    m.calls.push("restore".into());
                    RestoreDbClusterFromSnapshotOutput::builder().build()
                },
            ),
            mock!(aws_sdk_rds::Client::describe_db_instances).then_compute_output(move |q| {
                let m = i.made();
                let found: Vec<DbInstance> = m
                    .instance
                    .iter()
                    .filter(|k| Some(k.as_str()) == q.db_instance_identifier())
                    .map(|_| {
                        DbInstance::builder()
                            .db_instance_status(if m.ready { "available" } else { "creating" })
                            .build()
                    })
                    .collect();
                DescribeDbInstancesOutput::builder()
                    .set_db_instances(Some(found))
                    .build()
            }),
            mock!(aws_sdk_rds::Client::create_db_instance).then_compute_output(move |q| {
                let mut m = ci.made();
                m.instance = q.db_instance_identifier().map(str::to_string);
                m.calls.push("create instance".into());
                CreateDbInstanceOutput::builder().build()
            }),
            mock!(aws_sdk_rds::Client::delete_db_instance).then_compute_output(move |_| {
                let mut m = di.made();
                m.instance = None;
                m.calls.push("delete instance".into());
                DeleteDbInstanceOutput::builder().build()
            }),
            mock!(aws_sdk_rds::Client::delete_db_cluster).then_compute_output(move |_| {
                let mut m = dc.made();
                m.cluster = None;
                m.calls.push("delete cluster".into());
                DeleteDbClusterOutput::builder().build()
            }),
        ];
        let refs: Vec<&Rule> = rules.iter().collect();
        mock_client!(aws_sdk_rds, RuleMode::MatchAny, &refs, no_retries)
    }
}

/// `reconcile` on aurora-global, end to end through the handler: the first invocation
/// finds Aurora's snapshot of the old primary and copies it, runs out of its wait while
/// the copy is still being made and answers `reconcile-in-progress` (saved in the state
/// table, nothing torn down); the second continues from there — no search or copy again —
/// restores, compares, tears down, and answers `reconciled`; then the script is shown.
#[tokio::test]
async fn an_aurora_reconciliation_stopped_waiting_for_aws_is_finished_by_the_next_invocation() {
    let _turn = TURN.lock().await;
    let world = World::load().unwrap();
    reset(&world).await.unwrap();
    let store = cutover_core::state::StateStore::new(
        world.aws().await.unwrap().dynamodb(),
        world.get("CUTOVER_STATE_TABLE").unwrap().to_string(),
    );
    let reconcile_key = failover::lost_writes::reconcile_key();
    store.delete(&reconcile_key).await.unwrap();
    let started_ms = cutover_core::state::now_ms() - 120_000;
    store
        .put_latest(
            &state_key(),
            &FailoverState {
                phase: Phase::Completed,
                kind: Kind::Failover,
                from: "us-east-1".into(),
                to: "eu-west-1".into(),
                lease_epoch: 1,
                holder: "test".into(),
                trigger: "alarm".into(),
                expected_loss_ms: Some(220.0),
                loss_is_lower_bound: false,
                started_at_ms: started_ms,
                finished_at_ms: Some(started_ms + 30_000),
                fork_xid: Some(7000),
            },
        )
        .await
        .unwrap();
    let old_region = OldRegion(Arc::new(Mutex::new(Made::default())));
    let rds = old_region.client(
        "aurora-us-east-1-local",
        started_ms,
        world.port(Node::UsEast1).unwrap(),
    );
    let mut f = with_aurora_and(
        &world,
        rds.clone(),
        &[
            ("CUTOVER_RECONCILE_RESTORE_WAIT_MS", "0"),
            ("CUTOVER_RECONCILE_SCHEMAS", "app"),
        ],
    )
    .await;
    if let AnyDriver::Aurora(a) = &mut f.driver {
        a.members = [("us-east-1".to_string(), rds)].into_iter().collect();
    }

    let first = handle(&f, json!({"command": "reconcile"}), "reconcile-1")
        .await
        .unwrap();
    assert_eq!(first["action"], "reconcile-in-progress", "{first}");
    assert_eq!(first["after"], "snapshot copied", "{first}");
    assert_eq!(old_region.made().calls, ["find", "copy"]);
    let refused = handle(
        &f,
        json!({"command": "replay", "dry_run": true}),
        "replay-early",
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("unfinished (last step: snapshot copied)"),
        "{refused}"
    );

    old_region.made().ready = true;
    let second = handle(&f, json!({"command": "reconcile"}), "reconcile-2")
        .await
        .unwrap();
    assert_eq!(second["action"], "reconciled", "{second}");
    assert_eq!(
        (
            second["lost"].as_u64(),
            second["new_since_failover"].as_u64(),
            second["conflicts"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{second}"
    );
    assert_eq!(
        old_region.made().calls,
        [
            "find",
            "copy",
            "restore",
            "create instance",
            "delete instance",
            "delete cluster",
            "prune"
        ],
        "the second run neither searched nor copied again"
    );
    let steps = second["steps"].to_string();
    assert!(steps.contains("resumed after: snapshot copied"), "{steps}");
    let shown = handle(&f, json!({"command": "replay-script"}), "show")
        .await
        .unwrap();
    assert_eq!(shown["action"], "replay-script", "{shown}");
    assert_eq!(shown["statements"], 0, "{shown}");
    println!(
        "aurora reconcile, two invocations: {} then {}; RDS calls {:?}",
        first["action"],
        second["action"],
        old_region.made().calls
    );
    store.delete(&reconcile_key).await.unwrap();
    reset(&world).await.unwrap();
}
