//! `aurora-global`: the old primary as it died, brought back for the lost-write
//! reconciliation.
//!
//! After a failover with `AllowDataLoss`, when the old primary's region recovers,
//! Aurora tries to take a DB cluster snapshot of the old storage volume at the point
//! of failure before rebuilding it as a secondary, named
//! `rds:unplanned-global-failover-<old primary cluster>-<timestamp>`, visible through
//! `DescribeDBClusterSnapshots` in that region. It is a system snapshot under the old
//! cluster's backup retention period (Aurora User Guide, "Using switchover or failover
//! in Amazon Aurora Global Database"). So, in the old primary's region:
//!
//! 1. **find** the newest such snapshot taken after the failover started;
//! 2. **keep**: copy it to a manual snapshot `<prefix>-lost-<fork xid>`, tagged with
//!    the time until which it is kept (`CUTOVER_RECONCILE_KEEP_DAYS`);
//! 3. **restore** it to a temporary cluster of the same name (Serverless v2 at its
//!    minimum capacity, one `db.serverless` instance) and wait until it is available;
//! 4. **reconcile** the restored old primary with the new primary (the caller's job);
//! 5. **tear down** the temporary instance and cluster — always, also when 3 or 4 failed;
//! 6. **prune** this stack's manual snapshots whose keep time has passed.
//!
//! Every step reads before it acts, so a resumed run skips what is done: an existing
//! copy is not copied again, an existing cluster not restored again, a cluster being
//! deleted not deleted twice. moto has none of this; the tests use aws-smithy-mocks.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_rds::types::{DbClusterSnapshot, ServerlessV2ScalingConfiguration, Tag};
use aws_sdk_rds::Client;
use cutover_core::state::now_ms;

use crate::FailoverError;

/// The prefix Aurora gives the snapshot of an old primary after an unplanned failover.
pub const SYSTEM_SNAPSHOT_PREFIX: &str = "rds:unplanned-global-failover-";
/// The tag on a kept copy: until when (Unix seconds) it is kept.
pub const KEEP_UNTIL_TAG: &str = "cutover:keep-until";

pub struct OldPrimaryRestore {
    /// RDS in the old primary's region (the snapshot is there).
    pub client: Client,
    /// The old primary's DB cluster identifier (not its ARN).
    pub old_cluster_id: String,
    /// This stack's name for what it creates: `<prefix>-lost-<fork xid>`.
    pub prefix: String,
    pub keep_days: u32,
    pub db_subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub poll_every: Duration,
    pub timeout: Duration,
}

/// Where the restored old primary answers, and what was done to get there.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub system_snapshot: String,
    pub kept_snapshot: String,
    pub cluster: String,
    /// `host:port` of the temporary cluster's writer.
    pub endpoint: String,
}

fn rds_err<E, R>(op: &'static str, e: aws_sdk_rds::error::SdkError<E, R>) -> FailoverError
where
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    FailoverError::Core(cutover_core::Error::aws("RDS", op, e))
}

/// Minimum Aurora Serverless v2 capacity: the temporary cluster only answers reads.
const MIN_ACU: f64 = 0.5;
const MAX_ACU: f64 = 4.0;

impl OldPrimaryRestore {
    /// The kept snapshot's and the temporary cluster's identifier.
    pub fn name(&self, fork_xid: u64) -> String {
        format!("{}-lost-{fork_xid}", self.prefix)
    }

    fn instance(&self, fork_xid: u64) -> String {
        format!("{}-1", self.name(fork_xid))
    }

    /// Steps 1-6. `run` gets the restored old primary's `host:port`; its result is
    /// returned after the teardown, which happens whatever it returned.
    pub async fn reconcile_with<T, F, Fut>(
        &self,
        fork_xid: u64,
        failover_started_ms: u64,
        steps: &mut Vec<String>,
        run: F,
    ) -> Result<T, FailoverError>
    where
        F: FnOnce(Restored) -> Fut,
        Fut: Future<Output = Result<T, FailoverError>>,
    {
        let outcome = async {
            let system = self
                .find_system_snapshot(failover_started_ms, steps)
                .await?;
            let kept = self.keep(&system, fork_xid, steps).await?;
            let endpoint = self.restore(&kept, fork_xid, steps).await?;
            run(Restored {
                system_snapshot: system
                    .db_cluster_snapshot_identifier()
                    .unwrap_or_default()
                    .to_string(),
                kept_snapshot: self.name(fork_xid),
                cluster: self.name(fork_xid),
                endpoint,
            })
            .await
        }
        .await;
        let teardown = self.tear_down(fork_xid, steps).await;
        let pruned = self.prune(steps).await;
        let value = outcome?;
        teardown?;
        pruned?;
        Ok(value)
    }

    async fn snapshots(
        &self,
        cluster: Option<&str>,
        snapshot: Option<&str>,
    ) -> Result<Vec<DbClusterSnapshot>, FailoverError> {
        let out = self
            .client
            .describe_db_cluster_snapshots()
            .set_db_cluster_identifier(cluster.map(str::to_string))
            .set_db_cluster_snapshot_identifier(snapshot.map(str::to_string))
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.db_cluster_snapshots().to_vec()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_cluster_snapshot_not_found_fault()) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(rds_err("DescribeDBClusterSnapshots", e)),
        }
    }

    /// 1. The newest `rds:unplanned-global-failover-<old cluster>-…` snapshot taken
    ///    after the failover started. Aurora takes it when the old region recovers, and
    ///    only tries: none yet is a clean, repeatable refusal.
    async fn find_system_snapshot(
        &self,
        failover_started_ms: u64,
        steps: &mut Vec<String>,
    ) -> Result<DbClusterSnapshot, FailoverError> {
        let prefix = format!("{SYSTEM_SNAPSHOT_PREFIX}{}-", self.old_cluster_id);
        let found = self
            .snapshots(Some(&self.old_cluster_id), None)
            .await?
            .into_iter()
            .filter(|s| {
                s.db_cluster_snapshot_identifier()
                    .is_some_and(|id| id.starts_with(&prefix))
                    && s.status() == Some("available")
                    && created_ms(s) >= failover_started_ms
            })
            .max_by_key(created_ms)
            .ok_or_else(|| {
                FailoverError::Driver(format!(
                    "no available {prefix}… snapshot taken since the failover yet (Aurora takes it when the old primary's region recovers); try again later"
                ))
            })?;
        steps.push(format!(
            "DescribeDBClusterSnapshots: {} is the old primary at the point of failure",
            found.db_cluster_snapshot_identifier().unwrap_or_default()
        ));
        Ok(found)
    }

    /// 2. A manual copy, so the evidence outlives the old cluster's retention period.
    async fn keep(
        &self,
        system: &DbClusterSnapshot,
        fork_xid: u64,
        steps: &mut Vec<String>,
    ) -> Result<DbClusterSnapshot, FailoverError> {
        let name = self.name(fork_xid);
        if self.snapshots(None, Some(&name)).await?.is_empty() {
            let keep_until = now_ms() / 1000 + u64::from(self.keep_days) * 86_400;
            self.client
                .copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier(
                    system.db_cluster_snapshot_identifier().unwrap_or_default(),
                )
                .target_db_cluster_snapshot_identifier(&name)
                .tags(tag(KEEP_UNTIL_TAG, &keep_until.to_string()))
                .tags(tag("cutover:purpose", "lost-write reconciliation"))
                .send()
                .await
                .map_err(|e| rds_err("CopyDBClusterSnapshot", e))?;
            steps.push(format!(
                "CopyDBClusterSnapshot: kept as {name} for {} days",
                self.keep_days
            ));
        } else {
            steps.push(format!("{name} is already kept; not copied again"));
        }
        self.poll("kept snapshot", || async {
            Ok(self
                .snapshots(None, Some(&name))
                .await?
                .into_iter()
                .find(|s| s.status() == Some("available")))
        })
        .await
    }

    /// 3. A temporary cluster from the kept snapshot, one small instance, available.
    async fn restore(
        &self,
        kept: &DbClusterSnapshot,
        fork_xid: u64,
        steps: &mut Vec<String>,
    ) -> Result<String, FailoverError> {
        let name = self.name(fork_xid);
        let engine = kept.engine().unwrap_or("aurora-postgresql").to_string();
        if self.cluster(&name).await?.is_none() {
            self.client
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(&name)
                .snapshot_identifier(&name)
                .engine(&engine)
                .set_engine_version(kept.engine_version().map(str::to_string))
                .serverless_v2_scaling_configuration(
                    ServerlessV2ScalingConfiguration::builder()
                        .min_capacity(MIN_ACU)
                        .max_capacity(MAX_ACU)
                        .build(),
                )
                .set_db_subnet_group_name(self.db_subnet_group.clone())
                .set_vpc_security_group_ids(
                    (!self.security_groups.is_empty()).then(|| self.security_groups.clone()),
                )
                .deletion_protection(false)
                .tags(tag(
                    "cutover:purpose",
                    "lost-write reconciliation (temporary)",
                ))
                .send()
                .await
                .map_err(|e| rds_err("RestoreDBClusterFromSnapshot", e))?;
            steps.push(format!("RestoreDBClusterFromSnapshot: {name}"));
        } else {
            steps.push(format!("cluster {name} exists; not restored again"));
        }
        let instance = self.instance(fork_xid);
        if self.instance_status(&instance).await?.is_none() {
            self.client
                .create_db_instance()
                .db_instance_identifier(&instance)
                .db_cluster_identifier(&name)
                .db_instance_class("db.serverless")
                .engine(&engine)
                .send()
                .await
                .map_err(|e| rds_err("CreateDBInstance", e))?;
            steps.push(format!("CreateDBInstance: {instance} (db.serverless)"));
        } else {
            steps.push(format!("instance {instance} exists; not created again"));
        }
        self.poll("temporary instance", || async {
            Ok(self
                .instance_status(&instance)
                .await?
                .filter(|s| s == "available"))
        })
        .await?;
        let cluster = self
            .cluster(&name)
            .await?
            .ok_or_else(|| FailoverError::Internal(format!("cluster {name} vanished")))?;
        let host = cluster.endpoint().ok_or_else(|| {
            FailoverError::Internal(format!("cluster {name} has no writer endpoint"))
        })?;
        let endpoint = format!("{host}:{}", cluster.port().unwrap_or(5432));
        steps.push(format!("{name} is available at {endpoint}"));
        Ok(endpoint)
    }

    /// 5. The temporary instance and cluster go, whatever happened before.
    async fn tear_down(&self, fork_xid: u64, steps: &mut Vec<String>) -> Result<(), FailoverError> {
        let name = self.name(fork_xid);
        let instance = self.instance(fork_xid);
        match self.instance_status(&instance).await?.as_deref() {
            None => {}
            Some("deleting") => steps.push(format!("instance {instance} is already being deleted")),
            Some(_) => {
                self.client
                    .delete_db_instance()
                    .db_instance_identifier(&instance)
                    .send()
                    .await
                    .map_err(|e| rds_err("DeleteDBInstance", e))?;
                steps.push(format!("DeleteDBInstance: {instance}"));
            }
        }
        match self.cluster(&name).await?.as_ref().and_then(|c| c.status()) {
            None => steps.push(format!("no temporary cluster {name} to delete")),
            Some("deleting") => steps.push(format!("cluster {name} is already being deleted")),
            Some(_) => {
                self.client
                    .delete_db_cluster()
                    .db_cluster_identifier(&name)
                    .skip_final_snapshot(true)
                    .send()
                    .await
                    .map_err(|e| rds_err("DeleteDBCluster", e))?;
                steps.push(format!(
                    "DeleteDBCluster: {name} (no final snapshot: the kept copy is it)"
                ));
            }
        }
        Ok(())
    }

    /// 6. This stack's kept copies of the old cluster whose keep time has passed (a
    ///    copy keeps its source's cluster identifier; asking by it keeps the grant on
    ///    this stack's clusters).
    async fn prune(&self, steps: &mut Vec<String>) -> Result<(), FailoverError> {
        let now_s = now_ms() / 1000;
        let ours = format!("{}-lost-", self.prefix);
        let out = self
            .client
            .describe_db_cluster_snapshots()
            .db_cluster_identifier(&self.old_cluster_id)
            .snapshot_type("manual")
            .send()
            .await
            .map_err(|e| rds_err("DescribeDBClusterSnapshots", e))?;
        for s in out.db_cluster_snapshots() {
            let Some(id) = s.db_cluster_snapshot_identifier() else {
                continue;
            };
            let expired = s
                .tag_list()
                .iter()
                .find(|t| t.key() == Some(KEEP_UNTIL_TAG))
                .and_then(|t| t.value()?.parse::<u64>().ok())
                .is_some_and(|until| until <= now_s);
            if id.starts_with(&ours) && expired {
                self.client
                    .delete_db_cluster_snapshot()
                    .db_cluster_snapshot_identifier(id)
                    .send()
                    .await
                    .map_err(|e| rds_err("DeleteDBClusterSnapshot", e))?;
                steps.push(format!("DeleteDBClusterSnapshot: {id} (kept time passed)"));
            }
        }
        Ok(())
    }

    async fn cluster(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_rds::types::DbCluster>, FailoverError> {
        match self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_clusters().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_cluster_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(rds_err("DescribeDBClusters", e)),
        }
    }

    async fn instance_status(&self, id: &str) -> Result<Option<String>, FailoverError> {
        match self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .db_instances()
                .first()
                .map(|i| i.db_instance_status().unwrap_or("unknown").to_string())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(rds_err("DescribeDBInstances", e)),
        }
    }

    async fn poll<T, F, Fut>(&self, what: &str, mut look: F) -> Result<T, FailoverError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, FailoverError>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = look().await? {
                return Ok(v);
            }
            if started.elapsed() > self.timeout {
                return Err(FailoverError::Internal(format!(
                    "the {what} is not available after {} s",
                    self.timeout.as_secs()
                )));
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn created_ms(s: &DbClusterSnapshot) -> u64 {
    s.snapshot_create_time()
        .and_then(|t| t.to_millis().ok())
        .map_or(0, |ms| u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::operation::copy_db_cluster_snapshot::CopyDbClusterSnapshotOutput;
    use aws_sdk_rds::operation::create_db_instance::CreateDbInstanceOutput;
    use aws_sdk_rds::operation::delete_db_cluster::DeleteDbClusterOutput;
    use aws_sdk_rds::operation::delete_db_cluster_snapshot::DeleteDbClusterSnapshotOutput;
    use aws_sdk_rds::operation::delete_db_instance::DeleteDbInstanceOutput;
    use aws_sdk_rds::operation::describe_db_cluster_snapshots::{
        DescribeDBClusterSnapshotsError, DescribeDbClusterSnapshotsOutput,
    };
    use aws_sdk_rds::operation::describe_db_clusters::{
        DescribeDBClustersError, DescribeDbClustersOutput,
    };
    use aws_sdk_rds::operation::describe_db_instances::{
        DescribeDBInstancesError, DescribeDbInstancesOutput,
    };
    use aws_sdk_rds::operation::restore_db_cluster_from_snapshot::RestoreDbClusterFromSnapshotOutput;
    use aws_sdk_rds::primitives::DateTime;
    use aws_sdk_rds::types::error::{
        DbClusterNotFoundFault, DbClusterSnapshotNotFoundFault, DbInstanceNotFoundFault,
    };
    use aws_sdk_rds::types::{DbCluster, DbInstance};
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    const OLD: &str = "aurora-us-east-1-dev";
    const SYSTEM: &str = "rds:unplanned-global-failover-aurora-us-east-1-dev-2026-12-02-15-00";
    const KEPT: &str = "cutover-dev-lost-7000";
    const STARTED_MS: u64 = 1_764_687_600_000;

    fn restore(client: Client) -> OldPrimaryRestore {
        OldPrimaryRestore {
            client,
            old_cluster_id: OLD.into(),
            prefix: "cutover-dev".into(),
            keep_days: 30,
            db_subnet_group: Some("aurora-dev".into()),
            security_groups: vec!["sg-1".into()],
            poll_every: Duration::from_millis(1),
            timeout: Duration::from_secs(5),
        }
    }

    fn snapshot(id: &str, status: &str, created_ms: u64) -> DbClusterSnapshot {
        DbClusterSnapshot::builder()
            .db_cluster_snapshot_identifier(id)
            .status(status)
            .engine("aurora-postgresql")
            .engine_version("16.4")
            .snapshot_create_time(DateTime::from_millis(created_ms as i64))
            .build()
    }

    fn snapshots(list: Vec<DbClusterSnapshot>) -> DescribeDbClusterSnapshotsOutput {
        DescribeDbClusterSnapshotsOutput::builder()
            .set_db_cluster_snapshots(Some(list))
            .build()
    }

    fn system_snapshots() -> Rule {
        mock!(Client::describe_db_cluster_snapshots)
            .match_requests(|r| r.db_cluster_identifier() == Some(OLD))
            .then_output(|| {
                snapshots(vec![
                    // an older failover's snapshot, and an unrelated one
                    snapshot(
                        "rds:unplanned-global-failover-aurora-us-east-1-dev-2026-01-01",
                        "available",
                        STARTED_MS - 86_400_000,
                    ),
                    snapshot(
                        "rds:aurora-us-east-1-dev-2026-12-02-03-00",
                        "available",
                        STARTED_MS + 1,
                    ),
                    snapshot(SYSTEM, "available", STARTED_MS + 60_000),
                ])
            })
    }

    fn kept_absent() -> Rule {
        mock!(Client::describe_db_cluster_snapshots)
            .match_requests(|r| r.db_cluster_snapshot_identifier() == Some(KEPT))
            .then_error(|| {
                DescribeDBClusterSnapshotsError::DbClusterSnapshotNotFoundFault(
                    DbClusterSnapshotNotFoundFault::builder().build(),
                )
            })
    }

    fn kept(status: &'static str) -> Rule {
        mock!(Client::describe_db_cluster_snapshots)
            .match_requests(|r| r.db_cluster_snapshot_identifier() == Some(KEPT))
            .then_output(move || snapshots(vec![snapshot(KEPT, status, STARTED_MS + 90_000)]))
    }

    fn copy() -> Rule {
        mock!(Client::copy_db_cluster_snapshot)
            .match_requests(|r| {
                r.source_db_cluster_snapshot_identifier() == Some(SYSTEM)
                    && r.target_db_cluster_snapshot_identifier() == Some(KEPT)
                    && r.tags().iter().any(|t| {
                        t.key() == Some(KEEP_UNTIL_TAG)
                            && t.value()
                                .and_then(|v| v.parse::<u64>().ok())
                                .is_some_and(|until| {
                                    // 30 days from now, give or take the test's run
                                    until.abs_diff(now_ms() / 1000 + 30 * 86_400) < 600
                                })
                    })
            })
            .then_output(|| CopyDbClusterSnapshotOutput::builder().build())
    }

    fn cluster_absent() -> Rule {
        mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some(KEPT))
            .then_error(|| {
                DescribeDBClustersError::DbClusterNotFoundFault(
                    DbClusterNotFoundFault::builder().build(),
                )
            })
    }

    fn cluster(status: &'static str) -> Rule {
        mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some(KEPT))
            .then_output(move || {
                DescribeDbClustersOutput::builder()
                    .db_clusters(
                        DbCluster::builder()
                            .db_cluster_identifier(KEPT)
                            .status(status)
                            .endpoint("cutover-dev-lost-7000.cluster-x.us-east-1.rds.amazonaws.com")
                            .port(5432)
                            .build(),
                    )
                    .build()
            })
    }

    fn restore_call() -> Rule {
        mock!(Client::restore_db_cluster_from_snapshot)
            .match_requests(|r| {
                r.db_cluster_identifier() == Some(KEPT)
                    && r.snapshot_identifier() == Some(KEPT)
                    && r.engine() == Some("aurora-postgresql")
                    && r.engine_version() == Some("16.4")
                    && r.db_subnet_group_name() == Some("aurora-dev")
                    && r.serverless_v2_scaling_configuration()
                        .is_some_and(|s| s.min_capacity() == Some(0.5))
            })
            .then_output(|| RestoreDbClusterFromSnapshotOutput::builder().build())
    }

    fn instance_absent() -> Rule {
        mock!(Client::describe_db_instances)
            .match_requests(|r| r.db_instance_identifier() == Some("cutover-dev-lost-7000-1"))
            .then_error(|| {
                DescribeDBInstancesError::DbInstanceNotFoundFault(
                    DbInstanceNotFoundFault::builder().build(),
                )
            })
    }

    fn instance(status: &'static str) -> Rule {
        mock!(Client::describe_db_instances)
            .match_requests(|r| r.db_instance_identifier() == Some("cutover-dev-lost-7000-1"))
            .then_output(move || {
                DescribeDbInstancesOutput::builder()
                    .db_instances(DbInstance::builder().db_instance_status(status).build())
                    .build()
            })
    }

    fn create_instance() -> Rule {
        mock!(Client::create_db_instance)
            .match_requests(|r| {
                r.db_instance_identifier() == Some("cutover-dev-lost-7000-1")
                    && r.db_cluster_identifier() == Some(KEPT)
                    && r.db_instance_class() == Some("db.serverless")
            })
            .then_output(|| CreateDbInstanceOutput::builder().build())
    }

    fn delete_instance() -> Rule {
        mock!(Client::delete_db_instance)
            .match_requests(|r| r.db_instance_identifier() == Some("cutover-dev-lost-7000-1"))
            .then_output(|| DeleteDbInstanceOutput::builder().build())
    }

    fn delete_cluster() -> Rule {
        mock!(Client::delete_db_cluster)
            .match_requests(|r| {
                r.db_cluster_identifier() == Some(KEPT) && r.skip_final_snapshot() == Some(true)
            })
            .then_output(|| DeleteDbClusterOutput::builder().build())
    }

    fn manual_snapshots() -> Rule {
        let tagged = |id: &str, until: u64| {
            DbClusterSnapshot::builder()
                .db_cluster_snapshot_identifier(id)
                .tag_list(tag(KEEP_UNTIL_TAG, &until.to_string()))
                .build()
        };
        mock!(Client::describe_db_cluster_snapshots)
            .match_requests(|r| {
                r.db_cluster_identifier() == Some(OLD) && r.snapshot_type() == Some("manual")
            })
            .then_output(move || {
                let now = now_ms() / 1000;
                snapshots(vec![
                    tagged("cutover-dev-lost-12", now - 1),
                    tagged("cutover-dev-lost-7000", now + 30 * 86_400),
                    // not ours, expired or not: never touched
                    tagged("someone-else-lost-3", now - 1),
                    DbClusterSnapshot::builder()
                        .db_cluster_snapshot_identifier("cutover-dev-lost-9")
                        .build(),
                ])
            })
    }

    fn delete_expired() -> Rule {
        mock!(Client::delete_db_cluster_snapshot)
            .match_requests(|r| r.db_cluster_snapshot_identifier() == Some("cutover-dev-lost-12"))
            .then_output(|| DeleteDbClusterSnapshotOutput::builder().build())
    }

    fn exhausted(rules: &[&Rule]) {
        for (n, r) in rules.iter().enumerate() {
            assert_eq!(r.num_calls(), 1, "rule {n} was not used exactly once");
        }
    }

    #[tokio::test]
    async fn the_happy_path_keeps_restores_reconciles_tears_down_and_prunes_in_order() {
        let rules = [
            system_snapshots(),
            kept_absent(),
            copy(),
            kept("creating"),
            kept("available"),
            cluster_absent(),
            restore_call(),
            instance_absent(),
            create_instance(),
            instance("creating"),
            instance("available"),
            cluster("available"),
            // the reconciliation runs here
            instance("available"),
            delete_instance(),
            cluster("available"),
            delete_cluster(),
            manual_snapshots(),
            delete_expired(),
        ];
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut steps = Vec::new();
        let seen = restore(client)
            .reconcile_with(7000, STARTED_MS, &mut steps, |r| async move { Ok(r) })
            .await
            .unwrap();
        assert_eq!(
            seen,
            Restored {
                system_snapshot: SYSTEM.into(),
                kept_snapshot: KEPT.into(),
                cluster: KEPT.into(),
                endpoint: "cutover-dev-lost-7000.cluster-x.us-east-1.rds.amazonaws.com:5432".into(),
            }
        );
        exhausted(&refs);
        assert!(
            steps.iter().any(|s| s
                .starts_with("CopyDBClusterSnapshot: kept as cutover-dev-lost-7000 for 30 days")),
            "{steps:#?}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.contains("DeleteDBClusterSnapshot: cutover-dev-lost-12")),
            "{steps:#?}"
        );
    }

    /// The calls of a run whose copy, cluster and instance already exist: reads, then the teardown.
    fn resumed() -> Vec<Rule> {
        vec![
            system_snapshots(),
            kept("available"),
            kept("available"),
            cluster("available"),
            instance("available"),
            instance("available"),
            cluster("available"),
            instance("available"),
            delete_instance(),
            cluster("available"),
            delete_cluster(),
            manual_snapshots(),
            delete_expired(),
        ]
    }

    #[tokio::test]
    async fn a_resumed_run_does_not_copy_or_restore_again() {
        // In sequence: a copy, restore or create call would not match the next rule.
        let rules = resumed();
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut steps = Vec::new();
        let endpoint = restore(client)
            .reconcile_with(
                7000,
                STARTED_MS,
                &mut steps,
                |r| async move { Ok(r.endpoint) },
            )
            .await
            .unwrap();
        assert!(endpoint.ends_with(":5432"));
        exhausted(&refs);
        assert!(
            steps
                .iter()
                .any(|s| s == "cutover-dev-lost-7000 is already kept; not copied again"),
            "{steps:#?}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s == "cluster cutover-dev-lost-7000 exists; not restored again"),
            "{steps:#?}"
        );
    }

    #[tokio::test]
    async fn a_failed_reconciliation_still_deletes_the_temporary_cluster() {
        let rules = resumed();
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut steps = Vec::new();
        let err = restore(client)
            .reconcile_with(7000, STARTED_MS, &mut steps, |_| async {
                Err::<(), _>(FailoverError::Driver(
                    "old primary: connection refused".into(),
                ))
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
        exhausted(&refs);
        assert!(steps.iter().any(|s| s == "DeleteDBCluster: cutover-dev-lost-7000 (no final snapshot: the kept copy is it)"), "{steps:#?}");
    }

    #[tokio::test]
    async fn no_snapshot_since_the_failover_is_refused_and_nothing_is_created() {
        let only_old = mock!(Client::describe_db_cluster_snapshots)
            .match_requests(|r| r.db_cluster_identifier() == Some(OLD))
            .then_output(|| {
                snapshots(vec![snapshot(
                    "rds:unplanned-global-failover-aurora-us-east-1-dev-2026-01-01",
                    "available",
                    STARTED_MS - 1,
                )])
            });
        let rules = [
            only_old,
            instance_absent(),
            cluster_absent(),
            manual_snapshots(),
            delete_expired(),
        ];
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut steps = Vec::new();
        let err = restore(client)
            .reconcile_with(7000, STARTED_MS, &mut steps, |_| async { Ok(()) })
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no available rds:unplanned-global-failover-aurora-us-east-1-dev-"),
            "{err}"
        );
        exhausted(&refs);
    }
}
