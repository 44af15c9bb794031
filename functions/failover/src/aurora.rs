//! `aurora-global`: RDS `SwitchoverGlobalCluster` (planned, RPO 0) and
//! `FailoverGlobalCluster` with `AllowDataLoss` (unplanned), then
//! `DescribeGlobalClusters` polled until the target cluster is the writer and no
//! failover is in progress. The engine takes one move at a time and says who
//! writes, so the driver reads it first: a target that already writes, or a move
//! to it already in flight, is not called again (a resumed run only waits). Throttling and other transient errors are retried
//! with backoff. moto has none of these APIs; the tests use aws-smithy-mocks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_rds::Client;
use cutover_core::state::now_ms;

use crate::driver::{Driver, DriverReport, Fence, Health, Step};
use crate::FailoverError;

pub struct AuroraGlobal {
    /// The global cluster's calls (any member region answers them).
    pub client: Client,
    /// region → an RDS client in that region: `DescribeDBClusters` answers only for the
    /// clusters of its own region, so the new writer's endpoint is asked there. A region
    /// without one is asked through `client`.
    pub members: BTreeMap<String, Client>,
    pub global_cluster_id: String,
    /// region → DB cluster ARN of that region's member.
    pub clusters: BTreeMap<String, String>,
    pub poll_every: Duration,
    pub timeout: Duration,
}

fn rds_err<E, R>(op: &'static str, e: aws_sdk_rds::error::SdkError<E, R>) -> FailoverError
where
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    FailoverError::Core(cutover_core::Error::aws("RDS", op, e))
}

/// Retries a call while its error is transient (throttling, 5xx, network), with backoff.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, FailoverError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, FailoverError>>,
{
    let mut wait = Duration::from_millis(100);
    for attempt in 1.. {
        match call().await {
            Err(e) if e.is_retryable() && attempt < 6 => {
                tracing::warn!(attempt, error = %e, "transient RDS error; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

/// What `DescribeGlobalClusters` says now.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// The DB cluster ARN of the writer.
    writer: Option<String>,
    /// A switchover/failover in flight: its status and, when told, its target.
    in_flight: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    Switchover,
    Failover,
}

impl AuroraGlobal {
    fn cluster(&self, region: &str) -> Result<&str, FailoverError> {
        self.clusters
            .get(region)
            .map(String::as_str)
            .ok_or_else(|| {
                FailoverError::InvalidInput(format!(
                    "no Aurora cluster is configured for region {region}"
                ))
            })
    }

    /// Who writes, and whether a move is in flight, as the global cluster says.
    async fn look(&self) -> Result<Seen, FailoverError> {
        let out = retrying(|| async {
            self.client
                .describe_global_clusters()
                .global_cluster_identifier(&self.global_cluster_id)
                .send()
                .await
                .map_err(|e| rds_err("DescribeGlobalClusters", e))
        })
        .await?;
        let gc = out.global_clusters().first().ok_or_else(|| {
            FailoverError::Internal(format!(
                "global cluster {} not found",
                self.global_cluster_id
            ))
        })?;
        let writer = gc
            .global_cluster_members()
            .iter()
            .find(|m| m.is_writer() == Some(true))
            .and_then(|m| m.db_cluster_arn())
            .map(str::to_string);
        let in_flight = gc.failover_state().and_then(|f| {
            f.status().map(|s| {
                (
                    s.as_str().to_string(),
                    f.to_db_cluster_arn().map(str::to_string),
                )
            })
        });
        Ok(Seen { writer, in_flight })
    }

    /// Polls until `target` is the writer and no switchover/failover is pending,
    /// renewing the lease at every poll.
    async fn wait_for_writer(
        &self,
        target_arn: &str,
        steps: &mut Vec<String>,
        fence: &impl Fence,
    ) -> Result<u64, FailoverError> {
        let started = Instant::now();
        let mut polls = 0;
        loop {
            fence.check(Step::Wait).await?;
            polls += 1;
            let seen = self.look().await?;
            if seen.writer.as_deref() == Some(target_arn) && seen.in_flight.is_none() {
                steps.push(format!(
                    "DescribeGlobalClusters: {target_arn} is the writer after {polls} polls ({} ms)",
                    started.elapsed().as_millis()
                ));
                return Ok(now_ms());
            }
            if started.elapsed() > self.timeout {
                return Err(FailoverError::Internal(format!(
                    "after {} s the writer is {:?} (pending: {:?}), not {target_arn}",
                    self.timeout.as_secs(),
                    seen.writer,
                    seen.in_flight.map(|(status, _)| status)
                )));
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }

    /// Is the world already where this move goes (`Ok(Some(note))`), or on its way
    /// there (`Ok(Some(note))` too, the caller then only waits)? A move in flight
    /// elsewhere is an error: the engine takes one at a time.
    fn under_way(&self, seen: &Seen, target: &str) -> Result<Option<String>, FailoverError> {
        match (&seen.in_flight, seen.writer.as_deref()) {
            (Some((status, Some(other))), _) if other != target => {
                Err(FailoverError::Driver(format!(
                    "a move to {other} is in flight ({status}); not starting another to {target}"
                )))
            }
            (Some((status, _)), _) => Ok(Some(format!(
                "a move to {target} is already in flight ({status}); not calling again"
            ))),
            (None, Some(writer)) if writer == target => Ok(Some(format!(
                "{target} is already the writer; no call made"
            ))),
            (None, _) => Ok(None),
        }
    }

    async fn call(&self, planned: Planned, target: &str) -> Result<(), FailoverError> {
        retrying(|| async {
            match planned {
                Planned::Switchover => self
                    .client
                    .switchover_global_cluster()
                    .global_cluster_identifier(&self.global_cluster_id)
                    .target_db_cluster_identifier(target)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| rds_err("SwitchoverGlobalCluster", e)),
                Planned::Failover => self
                    .client
                    .failover_global_cluster()
                    .global_cluster_identifier(&self.global_cluster_id)
                    .target_db_cluster_identifier(target)
                    .allow_data_loss(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| rds_err("FailoverGlobalCluster", e)),
            }
        })
        .await
    }

    /// Reads the world, calls the engine only if the move is neither done nor in
    /// flight (and the lease is still ours), then waits for the target to write.
    async fn move_writer(
        &self,
        planned: Planned,
        to: &str,
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError> {
        let target = self.cluster(to)?.to_string();
        let mut steps = Vec::new();
        let seen = self.look().await?;
        if let Some(note) = self.under_way(&seen, &target)? {
            steps.push(note);
            if seen.in_flight.is_none() {
                return Ok(DriverReport {
                    steps,
                    promoted_at_ms: None,
                });
            }
        } else {
            fence.check(Step::Move).await?;
            let what = match planned {
                Planned::Switchover => format!(
                    "SwitchoverGlobalCluster {} -> {target}",
                    self.global_cluster_id
                ),
                Planned::Failover => format!(
                    "FailoverGlobalCluster {} -> {target} (AllowDataLoss)",
                    self.global_cluster_id
                ),
            };
            if let Err(e) = self.call(planned, &target).await {
                // Refused because another holder's call got there first? Then it is ours too.
                match self.under_way(&self.look().await?, &target)? {
                    Some(note) => steps.push(format!("{what} refused ({e}), but {note}")),
                    None => return Err(e),
                }
            } else {
                steps.push(what);
            }
        }
        let at = self.wait_for_writer(&target, &mut steps, fence).await?;
        Ok(DriverReport {
            steps,
            promoted_at_ms: Some(at),
        })
    }
}

impl Driver for AuroraGlobal {
    fn name(&self) -> &'static str {
        "aurora-global"
    }

    async fn secondaries(&self, primary: &str, regions: &[String]) -> Vec<Health> {
        let out = self
            .client
            .describe_global_clusters()
            .global_cluster_identifier(&self.global_cluster_id)
            .send()
            .await;
        let members = match &out {
            Ok(o) => o
                .global_clusters()
                .first()
                .map(|g| g.global_cluster_members().to_vec())
                .unwrap_or_default(),
            Err(_) => vec![],
        };
        regions
            .iter()
            .filter(|r| r.as_str() != primary)
            .map(|region| {
                let arn = self.clusters.get(region);
                let member = members
                    .iter()
                    .find(|m| m.db_cluster_arn() == arn.map(String::as_str));
                let (healthy, note) = match (&out, member) {
                    (Err(e), _) => (false, Some(format!("DescribeGlobalClusters failed: {e}"))),
                    (_, None) => (
                        false,
                        Some("not a member of the global cluster".to_string()),
                    ),
                    (_, Some(m)) => match m.synchronization_status().map(|s| s.as_str()) {
                        Some("pending-resync") => {
                            (false, Some("synchronization pending-resync".into()))
                        }
                        other => (true, other.map(|s| format!("synchronization {s}"))),
                    },
                };
                Health {
                    region: region.clone(),
                    healthy,
                    note,
                    position: None,
                    timed_out: false,
                }
            })
            .collect()
    }

    async fn switchover(
        &self,
        _from: &str,
        to: &str,
        _regions: &[String],
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError> {
        self.move_writer(Planned::Switchover, to, fence).await
    }

    async fn failover(
        &self,
        _from: &str,
        to: &str,
        _regions: &[String],
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError> {
        self.move_writer(Planned::Failover, to, fence).await
    }

    /// The target cluster's own writer (cluster) endpoint, as RDS names it —
    /// not its reader endpoint, which reaches the writer only while the cluster
    /// has a single instance.
    async fn writer_endpoint(&self, region: &str) -> Result<String, FailoverError> {
        let arn = self.cluster(region)?.to_string();
        let client = self.members.get(region).unwrap_or(&self.client);
        let out = retrying(|| async {
            client
                .describe_db_clusters()
                .db_cluster_identifier(&arn)
                .send()
                .await
                .map_err(|e| rds_err("DescribeDBClusters", e))
        })
        .await?;
        let cluster = out.db_clusters().first().ok_or_else(|| {
            FailoverError::Internal(format!("DescribeDBClusters found no cluster {arn}"))
        })?;
        let host = cluster.endpoint().ok_or_else(|| {
            FailoverError::Internal(format!("cluster {arn} has no writer endpoint"))
        })?;
        Ok(format!("{host}:{}", cluster.port().unwrap_or(5432)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::testing::Recording;
    use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput;
    use aws_sdk_rds::operation::failover_global_cluster::{
        FailoverGlobalClusterError, FailoverGlobalClusterOutput,
    };
    use aws_sdk_rds::operation::switchover_global_cluster::{
        SwitchoverGlobalClusterError, SwitchoverGlobalClusterOutput,
    };
    use aws_sdk_rds::types::{FailoverState, FailoverStatus, GlobalCluster, GlobalClusterMember};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const US: &str = "arn:aws:rds:us-east-1:1:cluster:aurora-us-east-1-dev";
    const EU: &str = "arn:aws:rds:eu-west-1:1:cluster:aurora-eu-west-1-dev";
    const AP: &str = "arn:aws:rds:ap-southeast-1:1:cluster:aurora-ap-southeast-1-dev";

    fn global_moving(
        writer: &str,
        pending: Option<(FailoverStatus, &str)>,
        ap_sync: &str,
    ) -> DescribeGlobalClustersOutput {
        let member = |arn: &str, sync: &str| {
            GlobalClusterMember::builder()
                .db_cluster_arn(arn)
                .is_writer(arn == writer)
                .synchronization_status(sync.into())
                .build()
        };
        let mut gc = GlobalCluster::builder()
            .global_cluster_identifier("aurora-global-dev")
            .global_cluster_members(member(US, "connected"))
            .global_cluster_members(member(EU, "connected"))
            .global_cluster_members(member(AP, ap_sync));
        if let Some((status, to)) = pending {
            gc = gc.failover_state(
                FailoverState::builder()
                    .status(status)
                    .from_db_cluster_arn(writer)
                    .to_db_cluster_arn(to)
                    .build(),
            );
        }
        DescribeGlobalClustersOutput::builder()
            .global_clusters(gc.build())
            .build()
    }

    fn global(writer: &str, ap_sync: &str) -> DescribeGlobalClustersOutput {
        global_moving(writer, None, ap_sync)
    }

    /// The driver's own retry loop is under test, not the SDK's.
    fn no_retries(c: aws_sdk_rds::config::Builder) -> aws_sdk_rds::config::Builder {
        c.retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())
    }

    fn driver(client: Client) -> AuroraGlobal {
        AuroraGlobal {
            client,
            members: BTreeMap::new(),
            global_cluster_id: "aurora-global-dev".into(),
            clusters: [("us-east-1", US), ("eu-west-1", EU), ("ap-southeast-1", AP)]
                .iter()
                .map(|(r, a)| (r.to_string(), a.to_string()))
                .collect(),
            poll_every: Duration::from_millis(1),
            timeout: Duration::from_secs(5),
        }
    }

    fn regions() -> Vec<String> {
        ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .map(String::from)
            .to_vec()
    }

    #[tokio::test]
    async fn switchover_is_polled_until_the_target_writes() {
        let switch = mock!(Client::switchover_global_cluster)
            .match_requests(|r| {
                r.global_cluster_identifier() == Some("aurora-global-dev")
                    && r.target_db_cluster_identifier() == Some(EU)
            })
            .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
        let before =
            mock!(Client::describe_global_clusters).then_output(|| global(US, "connected"));
        let describe = mock!(Client::describe_global_clusters)
            .sequence()
            .output(|| global_moving(US, Some((FailoverStatus::FailingOver, EU)), "connected"))
            .times(2)
            .output(|| global(EU, "connected"))
            .build();
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::Sequential,
            [&before, &switch, &describe],
            no_retries
        );
        let fence = Recording::default();
        let report = driver(client)
            .switchover("us-east-1", "eu-west-1", &regions(), &fence)
            .await
            .unwrap();
        assert_eq!(switch.num_calls(), 1);
        assert_eq!(describe.num_calls(), 3);
        assert!(
            report.steps[1].contains("is the writer after 3 polls"),
            "{:?}",
            report.steps
        );
        assert_eq!(
            fence.checks(),
            vec![Step::Move, Step::Wait, Step::Wait, Step::Wait],
            "the lease is checked before the call and renewed at every poll"
        );
    }

    #[tokio::test]
    async fn failover_allows_data_loss_and_retries_throttling() {
        let failover = mock!(Client::failover_global_cluster)
            .match_requests(|r| {
                r.allow_data_loss() == Some(true) && r.target_db_cluster_identifier() == Some(AP)
            })
            .sequence()
            .error(|| {
                FailoverGlobalClusterError::generic(
                    aws_sdk_rds::error::ErrorMetadata::builder()
                        .code("Throttling")
                        .message("Rate exceeded")
                        .build(),
                )
            })
            .output(|| FailoverGlobalClusterOutput::builder().build())
            .build();
        let before =
            mock!(Client::describe_global_clusters).then_output(|| global(US, "connected"));
        let done = mock!(Client::describe_global_clusters).then_output(|| global(AP, "connected"));
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::Sequential,
            [&before, &failover, &done],
            no_retries
        );
        let report = driver(client)
            .failover(
                "us-east-1",
                "ap-southeast-1",
                &regions(),
                &Recording::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            failover.num_calls(),
            2,
            "throttled once, then retried by the driver"
        );
        assert!(report.steps[0].contains("AllowDataLoss"));
    }

    #[tokio::test]
    async fn a_writer_that_never_changes_times_out_with_the_facts() {
        let switch = mock!(Client::switchover_global_cluster)
            .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
        let stuck = mock!(Client::describe_global_clusters)
            .sequence()
            .output(|| global(US, "connected"))
            .repeatedly()
            .build();
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&switch, &stuck],
            no_retries
        );
        let mut d = driver(client);
        d.timeout = Duration::from_millis(30);
        let err = d
            .switchover("us-east-1", "eu-west-1", &regions(), &Recording::default())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not arn:aws:rds:eu-west-1"),
            "{err}"
        );
        assert_eq!(switch.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_resumed_move_whose_call_already_succeeded_is_not_called_again() {
        // The previous holder's SwitchoverGlobalCluster was accepted, then it died.
        let switch = mock!(Client::switchover_global_cluster)
            .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
        let failover = mock!(Client::failover_global_cluster)
            .then_output(|| FailoverGlobalClusterOutput::builder().build());
        let describe = mock!(Client::describe_global_clusters)
            .sequence()
            .output(|| global_moving(US, Some((FailoverStatus::FailingOver, EU)), "connected"))
            .times(3)
            .output(|| global(EU, "connected"))
            .repeatedly()
            .build();
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&switch, &failover, &describe],
            no_retries
        );
        let fence = Recording::default();
        let report = driver(client)
            .switchover("us-east-1", "eu-west-1", &regions(), &fence)
            .await
            .unwrap();
        assert_eq!(switch.num_calls(), 0, "{:?}", report.steps);
        assert_eq!(failover.num_calls(), 0);
        assert!(
            report.steps[0].contains("already in flight"),
            "{:?}",
            report.steps
        );
        assert!(
            report.steps[1].contains("is the writer"),
            "{:?}",
            report.steps
        );
        assert!(!fence.checks().contains(&Step::Move));
    }

    #[tokio::test]
    async fn a_target_that_already_writes_is_not_called_again() {
        let failover = mock!(Client::failover_global_cluster)
            .then_output(|| FailoverGlobalClusterOutput::builder().build());
        let describe =
            mock!(Client::describe_global_clusters).then_output(|| global(AP, "connected"));
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&failover, &describe],
            no_retries
        );
        let fence = Recording::default();
        let report = driver(client)
            .failover("us-east-1", "ap-southeast-1", &regions(), &fence)
            .await
            .unwrap();
        assert_eq!(failover.num_calls(), 0);
        assert_eq!(describe.num_calls(), 1);
        assert!(
            report.steps[0].contains("already the writer"),
            "{:?}",
            report.steps
        );
        assert!(fence.checks().is_empty(), "no side effect, no check needed");
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_driver_before_the_call() {
        let switch = mock!(Client::switchover_global_cluster)
            .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
        let describe =
            mock!(Client::describe_global_clusters).then_output(|| global(US, "connected"));
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&switch, &describe],
            no_retries
        );
        let err = driver(client)
            .switchover(
                "us-east-1",
                "eu-west-1",
                &regions(),
                &Recording::losing_at(Step::Move),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, FailoverError::Core(cutover_core::Error::Fenced(_))),
            "{err}"
        );
        assert_eq!(switch.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_move_in_flight_elsewhere_is_not_joined_and_a_refused_call_for_ours_is() {
        let switch = mock!(Client::switchover_global_cluster)
            .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
        let elsewhere = mock!(Client::describe_global_clusters).then_output(|| {
            global_moving(US, Some((FailoverStatus::FailingOver, AP)), "connected")
        });
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&switch, &elsewhere],
            no_retries
        );
        let err = driver(client)
            .switchover("us-east-1", "eu-west-1", &regions(), &Recording::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not starting another"), "{err}");
        assert_eq!(switch.num_calls(), 0);

        // Another holder's call got in between our look and our call: ours is refused,
        // and the move under way is the one we wanted.
        let refused = mock!(Client::switchover_global_cluster).then_error(|| {
            SwitchoverGlobalClusterError::generic(
                aws_sdk_rds::error::ErrorMetadata::builder()
                    .code("InvalidGlobalClusterStateFault")
                    .message("a switchover is already in progress")
                    .build(),
            )
        });
        let before =
            mock!(Client::describe_global_clusters).then_output(|| global(US, "connected"));
        let moving = mock!(Client::describe_global_clusters).then_output(|| {
            global_moving(US, Some((FailoverStatus::FailingOver, EU)), "connected")
        });
        let done = mock!(Client::describe_global_clusters).then_output(|| global(EU, "connected"));
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::Sequential,
            [&before, &refused, &moving, &done],
            no_retries
        );
        let report = driver(client)
            .switchover("us-east-1", "eu-west-1", &regions(), &Recording::default())
            .await
            .unwrap();
        assert!(report.steps[0].contains("refused"), "{:?}", report.steps);
        assert_eq!(refused.num_calls(), 1);
    }

    #[tokio::test]
    async fn the_writer_endpoint_is_the_target_clusters_writer_endpoint() {
        let describe = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some(EU))
            .then_output(|| {
                aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput::builder()
                    .db_clusters(
                        aws_sdk_rds::types::DbCluster::builder()
                            .db_cluster_arn(EU)
                            .endpoint(
                                "aurora-eu-west-1-dev.cluster-abc.eu-west-1.rds.amazonaws.com",
                            )
                            .reader_endpoint(
                                "aurora-eu-west-1-dev.cluster-ro-abc.eu-west-1.rds.amazonaws.com",
                            )
                            .port(5432)
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe], no_retries);
        assert_eq!(
            driver(client).writer_endpoint("eu-west-1").await.unwrap(),
            "aurora-eu-west-1-dev.cluster-abc.eu-west-1.rds.amazonaws.com:5432"
        );
    }

    #[tokio::test]
    async fn the_writer_endpoint_is_asked_of_the_target_regions_rds() {
        // The home region's RDS knows no cluster of another region (a real DescribeDBClusters
        // there answers DBClusterNotFound); the target region's does.
        let home = mock!(Client::describe_db_clusters).then_error(|| {
            aws_sdk_rds::operation::describe_db_clusters::DescribeDBClustersError::DbClusterNotFoundFault(
                aws_sdk_rds::types::error::DbClusterNotFoundFault::builder().build(),
            )
        });
        let there = mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some(AP))
            .then_output(|| {
                aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput::builder()
                    .db_clusters(
                        aws_sdk_rds::types::DbCluster::builder()
                            .db_cluster_arn(AP)
                            .endpoint("aurora-ap-southeast-1-dev.cluster-xyz.ap-southeast-1.rds.amazonaws.com")
                            .port(5432)
                            .build(),
                    )
                    .build()
            });
        let mut d = driver(mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&home],
            no_retries
        ));
        d.members.insert(
            "ap-southeast-1".into(),
            mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&there], no_retries),
        );
        assert_eq!(
            d.writer_endpoint("ap-southeast-1").await.unwrap(),
            "aurora-ap-southeast-1-dev.cluster-xyz.ap-southeast-1.rds.amazonaws.com:5432"
        );
        assert_eq!(home.num_calls(), 0, "the home region is not asked");
        assert_eq!(there.num_calls(), 1);
    }

    #[tokio::test]
    async fn members_pending_resync_are_not_healthy() {
        let describe =
            mock!(Client::describe_global_clusters).then_output(|| global(US, "pending-resync"));
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe]);
        let health = driver(client).secondaries("us-east-1", &regions()).await;
        assert_eq!(health.len(), 2);
        assert!(
            health
                .iter()
                .find(|h| h.region == "eu-west-1")
                .unwrap()
                .healthy
        );
        assert!(
            !health
                .iter()
                .find(|h| h.region == "ap-southeast-1")
                .unwrap()
                .healthy
        );
    }

    #[tokio::test]
    async fn an_unknown_region_is_input_error() {
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, []);
        let err = driver(client)
            .switchover("us-east-1", "sa-east-1", &regions(), &Recording::default())
            .await
            .unwrap_err();
        assert!(matches!(err, FailoverError::InvalidInput(_)));
    }
}
