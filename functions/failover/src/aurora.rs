//! `aurora-global`: RDS `SwitchoverGlobalCluster` (planned, RPO 0) and
//! `FailoverGlobalCluster` with `AllowDataLoss` (unplanned), then
//! `DescribeGlobalClusters` polled until the target cluster is the writer and no
//! failover is in progress. Throttling and other transient errors are retried
//! with backoff. moto has none of these APIs; the tests use aws-smithy-mocks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_rds::Client;
use cutover_core::state::now_ms;

use crate::driver::{Driver, DriverReport, Health};
use crate::FailoverError;

pub struct AuroraGlobal {
    pub client: Client,
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

    /// Polls until `target` is the writer and no switchover/failover is pending.
    async fn wait_for_writer(
        &self,
        target_arn: &str,
        steps: &mut Vec<String>,
    ) -> Result<u64, FailoverError> {
        let started = Instant::now();
        let mut polls = 0;
        loop {
            polls += 1;
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
                .and_then(|m| m.db_cluster_arn());
            let pending = gc
                .failover_state()
                .and_then(|f| f.status())
                .map(|s| s.as_str().to_string());
            if writer == Some(target_arn) && pending.is_none() {
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
                    writer,
                    pending
                )));
            }
            tokio::time::sleep(self.poll_every).await;
        }
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
                }
            })
            .collect()
    }

    async fn switchover(
        &self,
        _from: &str,
        to: &str,
        _regions: &[String],
    ) -> Result<DriverReport, FailoverError> {
        let target = self.cluster(to)?.to_string();
        let mut steps = Vec::new();
        retrying(|| async {
            self.client
                .switchover_global_cluster()
                .global_cluster_identifier(&self.global_cluster_id)
                .target_db_cluster_identifier(&target)
                .send()
                .await
                .map_err(|e| rds_err("SwitchoverGlobalCluster", e))
        })
        .await?;
        steps.push(format!(
            "SwitchoverGlobalCluster {} -> {target}",
            self.global_cluster_id
        ));
        let at = self.wait_for_writer(&target, &mut steps).await?;
        Ok(DriverReport {
            steps,
            promoted_at_ms: Some(at),
        })
    }

    async fn failover(
        &self,
        _from: &str,
        to: &str,
        _regions: &[String],
    ) -> Result<DriverReport, FailoverError> {
        let target = self.cluster(to)?.to_string();
        let mut steps = Vec::new();
        retrying(|| async {
            self.client
                .failover_global_cluster()
                .global_cluster_identifier(&self.global_cluster_id)
                .target_db_cluster_identifier(&target)
                .allow_data_loss(true)
                .send()
                .await
                .map_err(|e| rds_err("FailoverGlobalCluster", e))
        })
        .await?;
        steps.push(format!(
            "FailoverGlobalCluster {} -> {target} (AllowDataLoss)",
            self.global_cluster_id
        ));
        let at = self.wait_for_writer(&target, &mut steps).await?;
        Ok(DriverReport {
            steps,
            promoted_at_ms: Some(at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput;
    use aws_sdk_rds::operation::failover_global_cluster::{
        FailoverGlobalClusterError, FailoverGlobalClusterOutput,
    };
    use aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput;
    use aws_sdk_rds::types::{FailoverState, FailoverStatus, GlobalCluster, GlobalClusterMember};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const US: &str = "arn:aws:rds:us-east-1:1:cluster:aurora-us-east-1-dev";
    const EU: &str = "arn:aws:rds:eu-west-1:1:cluster:aurora-eu-west-1-dev";
    const AP: &str = "arn:aws:rds:ap-southeast-1:1:cluster:aurora-ap-southeast-1-dev";

    fn global(
        writer: &str,
        pending: Option<FailoverStatus>,
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
        if let Some(p) = pending {
            gc = gc.failover_state(FailoverState::builder().status(p).build());
        }
        DescribeGlobalClustersOutput::builder()
            .global_clusters(gc.build())
            .build()
    }

    /// The driver's own retry loop is under test, not the SDK's.
    fn no_retries(c: aws_sdk_rds::config::Builder) -> aws_sdk_rds::config::Builder {
        c.retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())
    }

    fn driver(client: Client) -> AuroraGlobal {
        AuroraGlobal {
            client,
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
        let describe = mock!(Client::describe_global_clusters)
            .sequence()
            .output(|| global(US, Some(FailoverStatus::FailingOver), "connected"))
            .times(2)
            .output(|| global(EU, None, "connected"))
            .build();
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::Sequential,
            [&switch, &describe],
            no_retries
        );
        let report = driver(client)
            .switchover("us-east-1", "eu-west-1", &regions())
            .await
            .unwrap();
        assert_eq!(switch.num_calls(), 1);
        assert_eq!(describe.num_calls(), 3);
        assert!(
            report.steps[1].contains("is the writer after 3 polls"),
            "{:?}",
            report.steps
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
        let done =
            mock!(Client::describe_global_clusters).then_output(|| global(AP, None, "connected"));
        let client = mock_client!(
            aws_sdk_rds,
            RuleMode::Sequential,
            [&failover, &done],
            no_retries
        );
        let report = driver(client)
            .failover("us-east-1", "ap-southeast-1", &regions())
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
            .output(|| global(US, Some(FailoverStatus::FailingOver), "connected"))
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
            .switchover("us-east-1", "eu-west-1", &regions())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not arn:aws:rds:eu-west-1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn members_pending_resync_are_not_healthy() {
        let describe = mock!(Client::describe_global_clusters)
            .then_output(|| global(US, None, "pending-resync"));
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
            .switchover("us-east-1", "sa-east-1", &regions())
            .await
            .unwrap_err();
        assert!(matches!(err, FailoverError::InvalidInput(_)));
    }
}
