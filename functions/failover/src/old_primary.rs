//! `aurora-global`: the old primary as it died, brought back for the lost-write
//! reconciliation.
//!
//! After a failover with `AllowDataLoss`, when the old primary's region recovers,
//! Aurora tries to take a DB cluster snapshot of the old storage volume at the point
//! of failure before rebuilding it as a secondary, named
//! `rds:unplanned-global-failover-<old primary cluster>-<timestamp>`, visible through
//! `DescribeDBClusterSnapshots` in that region. It is a system snapshot under the old
//! cluster's backup retention period (Aurora User Guide, "Using switchover or failover
//! in Amazon Aurora Global Database"). So, in the old primary's region, with that
//! region's RDS client for every call:
//!
//! 1. **find** the newest such snapshot taken after the failover started;
//! 2. **keep**: copy it to a manual snapshot `<prefix>-lost-<fork xid>`, tagged with
//!    the time until which it is kept (`CUTOVER_RECONCILE_KEEP_DAYS`), encrypted with
//!    the snapshot's own KMS key;
//! 3. **restore** it to a temporary cluster of the same name (Serverless v2 at its
//!    minimum capacity, one `db.serverless` instance) in the old primary cluster's own
//!    DB subnet group, VPC security groups and DB cluster parameter group (read with
//!    `DescribeDBClusters` on it: the functions reached the old primary there, so they
//!    reach its copy there), and wait until it is available;
//! 4. **reconcile** the restored old primary with the new primary (the caller's job);
//! 5. **tear down** the temporary instance and cluster — always, also when 3 or 4 failed,
//!    but not when the run only ran out of time waiting for AWS ([`RunEnd::Waiting`]);
//! 6. **prune** this stack's manual snapshots whose keep time has passed.
//!
//! A run may outlast the function's timeout (a restore alone takes minutes), so each
//! step's result is saved as soon as it is done ([`RestoreProgress`], through a
//! [`Checkpoint`]: the state table's reconciliation item): a re-invoked run continues
//! where the last one stopped — it does not search, copy, restore or compare again — and
//! an abandoned run's temporary cluster is deleted by the next run. Every step also
//! reads before it acts, for what was done but not yet saved: an existing copy is not
//! copied again, an existing cluster not restored again, a cluster being deleted not
//! deleted twice. moto has none of this; the tests use aws-smithy-mocks.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_rds::types::{DbCluster, DbClusterSnapshot, ServerlessV2ScalingConfiguration, Tag};
use aws_sdk_rds::Client;
use cutover_core::state::now_ms;
use serde::{Deserialize, Serialize};

use crate::FailoverError;

/// The prefix Aurora gives the snapshot of an old primary after an unplanned failover.
pub const SYSTEM_SNAPSHOT_PREFIX: &str = "rds:unplanned-global-failover-";
/// The tag on a kept copy: until when (Unix seconds) it is kept.
pub const KEEP_UNTIL_TAG: &str = "cutover:keep-until";

pub struct OldPrimaryRestore {
    /// RDS in the old primary's region (the snapshot, the old cluster and the temporary
    /// cluster are all there).
    pub client: Client,
    /// The old primary's DB cluster identifier (not its ARN).
    pub old_cluster_id: String,
    /// This stack's name for what it creates: `<prefix>-lost-<fork xid>`.
    pub prefix: String,
    pub keep_days: u32,
    pub poll_every: Duration,
    /// How long one run waits, in all, for the copy and the instance to be available: less
    /// than the function's timeout. When it runs out the run ends `Waiting` (saved, nothing
    /// torn down) and the next one continues.
    pub timeout: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// Compared (now or by an earlier run) and torn down.
    Done,
    /// This run's wait ran out before the copy or the instance was available: the progress
    /// (the last step) is saved and nothing is torn down — the next run continues.
    Waiting { after: &'static str },
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

/// How far one reconciliation got, saved after each step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreProgress {
    /// The old primary's region: every call of this run, and the teardown of an
    /// abandoned one, goes there.
    pub region: String,
    pub old_cluster_id: String,
    pub fork_xid: u64,
    /// 1. Aurora's snapshot of the old primary, once found.
    pub system_snapshot: Option<String>,
    /// 2. The kept copy, once `CopyDBClusterSnapshot` returned (or the copy was found).
    pub kept_snapshot: Option<String>,
    /// 3. The temporary cluster, once `RestoreDBClusterFromSnapshot` returned (or it was found)…
    pub cluster: Option<String>,
    /// …and its writer (`host:port`), once its instance was available.
    pub endpoint: Option<String>,
    /// 4. The reconciliation ran; its outcome is saved with this progress.
    pub compared: bool,
    /// 5. The temporary instance and cluster are deleted (or being deleted).
    pub torn_down: bool,
}

impl RestoreProgress {
    pub fn new(region: &str, old_cluster_id: &str, fork_xid: u64) -> Self {
        RestoreProgress {
            region: region.into(),
            old_cluster_id: old_cluster_id.into(),
            fork_xid,
            ..Default::default()
        }
    }

    /// The last step done, for a person reading the item.
    pub fn last_step(&self) -> &'static str {
        if self.torn_down {
            "torn down"
        } else if self.compared {
            "compared"
        } else if self.endpoint.is_some() {
            "instance available"
        } else if self.cluster.is_some() {
            "cluster restored"
        } else if self.kept_snapshot.is_some() {
            "snapshot copied"
        } else if self.system_snapshot.is_some() {
            "system snapshot found"
        } else {
            "nothing yet"
        }
    }
}

/// Where a run's progress is kept between invocations: the state table's reconciliation
/// item in the function, a list in the tests.
pub trait Checkpoint {
    /// What the reconciliation (step 4) produced; kept with the progress.
    type Outcome;
    /// Takes the reconciliation's outcome; the next [`Checkpoint::save`] stores it.
    fn compared(&mut self, outcome: Self::Outcome, steps: &mut Vec<String>);
    /// Stores the progress and the steps so far (after every step).
    fn save(
        &mut self,
        progress: &RestoreProgress,
        steps: &[String],
    ) -> impl Future<Output = Result<(), FailoverError>> + Send;
}

/// What a restore takes from the old primary cluster itself.
#[derive(Debug, Clone, Default, PartialEq)]
struct OldCluster {
    subnet_group: Option<String>,
    security_groups: Vec<String>,
    parameter_group: Option<String>,
    kms_key_id: Option<String>,
    engine_version: Option<String>,
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

    /// Steps 1-6 from where `progress` says the last run stopped, saving after each.
    /// `run` gets the restored old primary's `host:port` (it is not called again once
    /// `compared`); the teardown happens whatever it returned, and its error, if any, is
    /// returned after the teardown — unless this run only ran out of time waiting for
    /// AWS (`RunEnd::Waiting`): then what exists is kept for the next run.
    pub async fn reconcile_with<C, F, Fut>(
        &self,
        progress: &mut RestoreProgress,
        steps: &mut Vec<String>,
        checkpoint: &mut C,
        failover_started_ms: u64,
        run: F,
    ) -> Result<RunEnd, FailoverError>
    where
        C: Checkpoint,
        F: FnOnce(Restored) -> Fut,
        Fut: Future<Output = Result<C::Outcome, FailoverError>>,
    {
        let fork_xid = progress.fork_xid;
        let deadline = Instant::now() + self.timeout;
        let outcome: Result<Option<&'static str>, FailoverError> = if progress.compared {
            steps.push(format!(
                "resumed: {} was compared by an earlier run",
                self.name(fork_xid)
            ));
            Ok(None)
        } else {
            async {
                let restored = self
                    .bring_back(progress, steps, checkpoint, failover_started_ms, deadline)
                    .await?;
                let Some(restored) = restored else {
                    return Ok(Some(progress.last_step()));
                };
                let outcome = run(restored).await?;
                checkpoint.compared(outcome, steps);
                progress.compared = true;
                checkpoint.save(progress, steps).await?;
                Ok(None)
            }
            .await
        };
        if let Ok(Some(after)) = outcome {
            steps.push(format!(
                "still waiting after: {after} ({} s); progress saved, nothing torn down: invoke reconcile again to continue",
                self.timeout.as_secs()
            ));
            checkpoint.save(progress, steps).await?;
            return Ok(RunEnd::Waiting { after });
        }
        let teardown = match self.tear_down(fork_xid, steps).await {
            Ok(()) => {
                progress.torn_down = true;
                checkpoint.save(progress, steps).await
            }
            Err(e) => Err(e),
        };
        let pruned = self.prune(steps).await;
        outcome?;
        teardown?;
        pruned?;
        Ok(RunEnd::Done)
    }

    /// Steps 1-3: the old primary answering at a temporary cluster's writer, or `None`
    /// when the wait for the copy or the instance ran past `deadline`.
    async fn bring_back<C: Checkpoint>(
        &self,
        progress: &mut RestoreProgress,
        steps: &mut Vec<String>,
        checkpoint: &mut C,
        failover_started_ms: u64,
        deadline: Instant,
    ) -> Result<Option<Restored>, FailoverError> {
        let fork_xid = progress.fork_xid;
        let name = self.name(fork_xid);
        let system = match progress.system_snapshot.clone() {
            Some(found) => found,
            None => {
                let found = self
                    .find_system_snapshot(failover_started_ms, steps)
                    .await?;
                progress.system_snapshot = Some(found.clone());
                checkpoint.save(progress, steps).await?;
                found
            }
        };
        if progress.cluster.is_none() {
            // What is still to be created takes the old cluster's key and networking.
            let old = self.old_cluster(steps).await?;
            if progress.kept_snapshot.is_some() {
                steps.push(format!("resumed: {name} was copied by an earlier run"));
            } else {
                self.keep(&system, &old, fork_xid, steps).await?;
                progress.kept_snapshot = Some(name.clone());
                checkpoint.save(progress, steps).await?;
            }
            let Some(kept) = self.kept_available(&name, deadline).await? else {
                return Ok(None);
            };
            self.restore(&kept, &old, fork_xid, steps).await?;
            progress.cluster = Some(name.clone());
            checkpoint.save(progress, steps).await?;
        } else {
            steps.push(format!(
                "resumed: cluster {name} was restored by an earlier run"
            ));
        }
        let Some(endpoint) = self.instance_available(fork_xid, steps, deadline).await? else {
            return Ok(None);
        };
        progress.endpoint = Some(endpoint.clone());
        checkpoint.save(progress, steps).await?;
        Ok(Some(Restored {
            system_snapshot: system,
            kept_snapshot: name.clone(),
            cluster: name,
            endpoint,
        }))
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
    ) -> Result<String, FailoverError> {
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
            .and_then(|s| s.db_cluster_snapshot_identifier().map(str::to_string))
            .ok_or_else(|| {
                FailoverError::Driver(format!(
                    "no available {prefix}… snapshot taken since the failover yet (Aurora takes it when the old primary's region recovers); try again later"
                ))
            })?;
        steps.push(format!(
            "DescribeDBClusterSnapshots: {found} is the old primary at the point of failure"
        ));
        Ok(found)
    }

    /// The old primary cluster's subnet group, security groups, parameter group, key and
    /// version: its copy goes where it was, encrypted as it was.
    async fn old_cluster(&self, steps: &mut Vec<String>) -> Result<OldCluster, FailoverError> {
        let cluster = self.cluster(&self.old_cluster_id).await?.ok_or_else(|| {
            FailoverError::Driver(format!(
                "the old primary cluster {} is not found: where to restore its snapshot (its subnet group, security groups, key) is unknown",
                self.old_cluster_id
            ))
        })?;
        let old = OldCluster {
            subnet_group: cluster.db_subnet_group().map(str::to_string),
            security_groups: cluster
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
                .collect(),
            parameter_group: cluster.db_cluster_parameter_group().map(str::to_string),
            kms_key_id: cluster
                .storage_encrypted()
                .unwrap_or(false)
                .then(|| cluster.kms_key_id().map(str::to_string))
                .flatten(),
            engine_version: cluster.engine_version().map(str::to_string),
        };
        steps.push(format!(
            "DescribeDBClusters: {} is in subnet group {}, security groups [{}], parameter group {}, {}",
            self.old_cluster_id,
            old.subnet_group.as_deref().unwrap_or("(default)"),
            old.security_groups.join(", "),
            old.parameter_group.as_deref().unwrap_or("(default)"),
            old.kms_key_id
                .as_deref()
                .map_or("not encrypted".to_string(), |k| format!("encrypted with {k}"))
        ));
        Ok(old)
    }

    /// 2. A manual copy, so the evidence outlives the old cluster's retention period.
    async fn keep(
        &self,
        system: &str,
        old: &OldCluster,
        fork_xid: u64,
        steps: &mut Vec<String>,
    ) -> Result<(), FailoverError> {
        let name = self.name(fork_xid);
        if !self.snapshots(None, Some(&name)).await?.is_empty() {
            steps.push(format!("{name} is already kept; not copied again"));
            return Ok(());
        }
        let keep_until = now_ms() / 1000 + u64::from(self.keep_days) * 86_400;
        self.client
            .copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(system)
            .target_db_cluster_snapshot_identifier(&name)
            // An encrypted snapshot is copied with a key named, in the same region: its own.
            .set_kms_key_id(old.kms_key_id.clone())
            .tags(tag(KEEP_UNTIL_TAG, &keep_until.to_string()))
            .tags(tag("cutover:purpose", "lost-write reconciliation"))
            .send()
            .await
            .map_err(|e| rds_err("CopyDBClusterSnapshot", e))?;
        steps.push(format!(
            "CopyDBClusterSnapshot: kept as {name} for {} days",
            self.keep_days
        ));
        Ok(())
    }

    async fn kept_available(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<DbClusterSnapshot>, FailoverError> {
        self.poll(deadline, || async {
            Ok(self
                .snapshots(None, Some(name))
                .await?
                .into_iter()
                .find(|s| s.status() == Some("available")))
        })
        .await
    }

    /// 3. A temporary cluster from the kept snapshot, where the old primary was.
    async fn restore(
        &self,
        kept: &DbClusterSnapshot,
        old: &OldCluster,
        fork_xid: u64,
        steps: &mut Vec<String>,
    ) -> Result<(), FailoverError> {
        let name = self.name(fork_xid);
        if self.cluster(&name).await?.is_some() {
            steps.push(format!("cluster {name} exists; not restored again"));
            return Ok(());
        }
        self.client
            .restore_db_cluster_from_snapshot()
            .db_cluster_identifier(&name)
            .snapshot_identifier(&name)
            .engine(kept.engine().unwrap_or("aurora-postgresql"))
            .set_engine_version(
                kept.engine_version()
                    .map(str::to_string)
                    .or_else(|| old.engine_version.clone()),
            )
            .serverless_v2_scaling_configuration(
                ServerlessV2ScalingConfiguration::builder()
                    .min_capacity(MIN_ACU)
                    .max_capacity(MAX_ACU)
                    .build(),
            )
            .set_db_subnet_group_name(old.subnet_group.clone())
            .set_vpc_security_group_ids(
                (!old.security_groups.is_empty()).then(|| old.security_groups.clone()),
            )
            .set_db_cluster_parameter_group_name(old.parameter_group.clone())
            .set_kms_key_id(
                kept.kms_key_id()
                    .map(str::to_string)
                    .or_else(|| old.kms_key_id.clone()),
            )
            .deletion_protection(false)
            .tags(tag(
                "cutover:purpose",
                "lost-write reconciliation (temporary)",
            ))
            .send()
            .await
            .map_err(|e| rds_err("RestoreDBClusterFromSnapshot", e))?;
        steps.push(format!(
            "RestoreDBClusterFromSnapshot: {name} in subnet group {}",
            old.subnet_group.as_deref().unwrap_or("(default)")
        ));
        Ok(())
    }

    /// 3. Its one instance, available: the writer's `host:port` (`None`: not by `deadline`).
    async fn instance_available(
        &self,
        fork_xid: u64,
        steps: &mut Vec<String>,
        deadline: Instant,
    ) -> Result<Option<String>, FailoverError> {
        let name = self.name(fork_xid);
        let instance = self.instance(fork_xid);
        if self.instance_status(&instance).await?.is_none() {
            let engine = self
                .cluster(&name)
                .await?
                .and_then(|c| c.engine().map(str::to_string))
                .unwrap_or_else(|| "aurora-postgresql".into());
            self.client
                .create_db_instance()
                .db_instance_identifier(&instance)
                .db_cluster_identifier(&name)
                .db_instance_class("db.serverless")
                .engine(engine)
                .send()
                .await
                .map_err(|e| rds_err("CreateDBInstance", e))?;
            steps.push(format!("CreateDBInstance: {instance} (db.serverless)"));
        } else {
            steps.push(format!("instance {instance} exists; not created again"));
        }
        let available = self
            .poll(deadline, || async {
                Ok(self
                    .instance_status(&instance)
                    .await?
                    .filter(|s| s == "available"))
            })
            .await?;
        if available.is_none() {
            return Ok(None);
        }
        let cluster = self
            .cluster(&name)
            .await?
            .ok_or_else(|| FailoverError::Internal(format!("cluster {name} vanished")))?;
        let host = cluster.endpoint().ok_or_else(|| {
            FailoverError::Internal(format!("cluster {name} has no writer endpoint"))
        })?;
        let endpoint = format!("{host}:{}", cluster.port().unwrap_or(5432));
        steps.push(format!("{name} is available at {endpoint}"));
        Ok(Some(endpoint))
    }

    /// 5. The temporary instance and cluster of the run of `fork_xid` go, whatever
    ///    happened before (also an abandoned run's, by the next run).
    pub async fn tear_down(
        &self,
        fork_xid: u64,
        steps: &mut Vec<String>,
    ) -> Result<(), FailoverError> {
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

    async fn cluster(&self, id: &str) -> Result<Option<DbCluster>, FailoverError> {
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

    /// Looks until `look` finds it (`Some`), or `None` once `deadline` has passed.
    async fn poll<T, F, Fut>(
        &self,
        deadline: Instant,
        mut look: F,
    ) -> Result<Option<T>, FailoverError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, FailoverError>>,
    {
        loop {
            if let Some(v) = look().await? {
                return Ok(Some(v));
            }
            if Instant::now() >= deadline {
                return Ok(None);
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
    use aws_sdk_rds::error::ErrorMetadata;
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
    use aws_sdk_rds::types::{DbInstance, VpcSecurityGroupMembership};
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    const OLD: &str = "aurora-us-east-1-dev";
    const SYSTEM: &str = "rds:unplanned-global-failover-aurora-us-east-1-dev-2026-12-02-15-00";
    const KEPT: &str = "cutover-dev-lost-7000";
    const STARTED_MS: u64 = 1_764_687_600_000;
    const KEY: &str = "arn:aws:kms:us-east-1:1:key/aurora-us-east-1-dev";

    fn restore(client: Client) -> OldPrimaryRestore {
        restore_with_wait(client, Duration::from_secs(5))
    }

    fn restore_with_wait(client: Client, timeout: Duration) -> OldPrimaryRestore {
        OldPrimaryRestore {
            client,
            old_cluster_id: OLD.into(),
            prefix: "cutover-dev".into(),
            keep_days: 30,
            poll_every: Duration::from_millis(1),
            timeout,
        }
    }

    fn fresh() -> RestoreProgress {
        RestoreProgress::new("us-east-1", OLD, 7000)
    }

    /// The state table's stand-in: every saved progress, in order.
    #[derive(Default)]
    struct Saved {
        progress: Vec<RestoreProgress>,
        outcome: Option<String>,
    }

    impl Checkpoint for Saved {
        type Outcome = String;

        fn compared(&mut self, outcome: String, steps: &mut Vec<String>) {
            steps.push(format!("compared: {outcome}"));
            self.outcome = Some(outcome);
        }

        fn save(
            &mut self,
            progress: &RestoreProgress,
            _steps: &[String],
        ) -> impl Future<Output = Result<(), FailoverError>> + Send {
            self.progress.push(progress.clone());
            async { Ok(()) }
        }
    }

    impl Saved {
        fn last_steps(&self) -> Vec<&'static str> {
            self.progress
                .iter()
                .map(RestoreProgress::last_step)
                .collect()
        }
    }

    fn snapshot(id: &str, status: &str, created_ms: u64) -> DbClusterSnapshot {
        DbClusterSnapshot::builder()
            .db_cluster_snapshot_identifier(id)
            .status(status)
            .engine("aurora-postgresql")
            .engine_version("16.4")
            .storage_encrypted(true)
            .kms_key_id(KEY)
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
                    && r.kms_key_id() == Some(KEY)
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

    /// The old primary cluster: where its copy goes, and its key.
    fn old_cluster() -> Rule {
        mock!(Client::describe_db_clusters)
            .match_requests(|r| r.db_cluster_identifier() == Some(OLD))
            .then_output(|| {
                DescribeDbClustersOutput::builder()
                    .db_clusters(
                        DbCluster::builder()
                            .db_cluster_identifier(OLD)
                            .engine("aurora-postgresql")
                            .engine_version("16.4")
                            .db_subnet_group("db-subnets-us-east-1-dev")
                            .vpc_security_groups(
                                VpcSecurityGroupMembership::builder()
                                    .vpc_security_group_id("sg-aurora")
                                    .status("active")
                                    .build(),
                            )
                            .db_cluster_parameter_group("aurora-params-us-east-1-dev")
                            .storage_encrypted(true)
                            .kms_key_id(KEY)
                            .build(),
                    )
                    .build()
            })
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
                            .engine("aurora-postgresql")
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
                    && r.db_subnet_group_name() == Some("db-subnets-us-east-1-dev")
                    && r.vpc_security_group_ids() == ["sg-aurora"]
                    && r.db_cluster_parameter_group_name() == Some("aurora-params-us-east-1-dev")
                    && r.kms_key_id() == Some(KEY)
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
                    && r.engine() == Some("aurora-postgresql")
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

    /// RDS failing in the old primary's region (e.g. the run is cut off).
    fn instances_fail() -> Rule {
        mock!(Client::describe_db_instances).then_error(|| {
            DescribeDBInstancesError::generic(
                ErrorMetadata::builder()
                    .code("InternalFailure")
                    .message("cut off")
                    .build(),
            )
        })
    }

    fn snapshots_fail() -> Rule {
        mock!(Client::describe_db_cluster_snapshots).then_error(|| {
            DescribeDBClusterSnapshotsError::generic(
                ErrorMetadata::builder()
                    .code("InternalFailure")
                    .message("cut off")
                    .build(),
            )
        })
    }

    /// The calls that tear down and prune, at the end of every run.
    fn teardown() -> Vec<Rule> {
        vec![
            instance("available"),
            delete_instance(),
            cluster("available"),
            delete_cluster(),
            manual_snapshots(),
            delete_expired(),
        ]
    }

    #[tokio::test]
    async fn the_happy_path_keeps_restores_where_the_old_primary_was_reconciles_tears_down_and_prunes_in_order(
    ) {
        let mut rules = vec![
            system_snapshots(),
            old_cluster(),
            kept_absent(),
            copy(),
            kept("creating"),
            kept("available"),
            cluster_absent(),
            restore_call(),
            instance_absent(),
            cluster("creating"),
            create_instance(),
            instance("creating"),
            instance("available"),
            cluster("available"),
            // the reconciliation runs here
        ];
        rules.extend(teardown());
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut steps = Vec::new();
        let mut saved = Saved::default();
        let mut progress = fresh();
        let mut seen = None;
        let end = restore(client)
            .reconcile_with(&mut progress, &mut steps, &mut saved, STARTED_MS, |r| {
                seen = Some(r);
                async { Ok("3 lost".to_string()) }
            })
            .await
            .unwrap();
        assert_eq!(end, RunEnd::Done);
        assert_eq!(
            seen,
            Some(Restored {
                system_snapshot: SYSTEM.into(),
                kept_snapshot: KEPT.into(),
                cluster: KEPT.into(),
                endpoint: "cutover-dev-lost-7000.cluster-x.us-east-1.rds.amazonaws.com:5432".into(),
            })
        );
        exhausted(&refs);
        // Each step saved as soon as it was done.
        assert_eq!(
            saved.last_steps(),
            [
                "system snapshot found",
                "snapshot copied",
                "cluster restored",
                "instance available",
                "compared",
                "torn down"
            ]
        );
        assert_eq!(saved.outcome.as_deref(), Some("3 lost"));
        assert!(progress.compared && progress.torn_down);
        assert!(
            steps.iter().any(|s| s
                .starts_with("CopyDBClusterSnapshot: kept as cutover-dev-lost-7000 for 30 days")),
            "{steps:#?}"
        );
        assert!(
            steps.iter().any(|s| s.starts_with(
                "DescribeDBClusters: aurora-us-east-1-dev is in subnet group db-subnets-us-east-1-dev, security groups [sg-aurora]"
            )),
            "{steps:#?}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.contains("DeleteDBClusterSnapshot: cutover-dev-lost-12")),
            "{steps:#?}"
        );
    }

    #[tokio::test]
    async fn a_run_stopped_after_the_restore_is_continued_without_copying_or_restoring_again() {
        // Run 1: copied and restored, then RDS stops answering (as when the function's
        // timeout cuts it off): no instance, no teardown.
        let first = [
            system_snapshots(),
            old_cluster(),
            kept_absent(),
            copy(),
            kept("available"),
            cluster_absent(),
            restore_call(),
            instances_fail(),
            instances_fail(),
            snapshots_fail(),
        ];
        let refs: Vec<&Rule> = first.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut saved = Saved::default();
        let mut progress = fresh();
        let err = restore(client)
            .reconcile_with(
                &mut progress,
                &mut Vec::new(),
                &mut saved,
                STARTED_MS,
                |_| async { Ok::<_, FailoverError>("never".to_string()) },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
        exhausted(&refs);
        let stored = saved.progress.last().cloned().unwrap();
        assert_eq!(stored.last_step(), "cluster restored");
        assert!(!stored.torn_down);

        // Run 2, from what run 1 saved: no search, no copy, no restore (in sequence, any
        // of those calls would not match the next rule); the instance, the comparison,
        // and the teardown of the temporary cluster run 1 left.
        let mut second = vec![
            instance_absent(),
            cluster("available"),
            create_instance(),
            instance("available"),
            cluster("available"),
        ];
        second.extend(teardown());
        let refs: Vec<&Rule> = second.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut saved = Saved::default();
        let mut progress = stored;
        let mut steps = Vec::new();
        restore(client)
            .reconcile_with(
                &mut progress,
                &mut steps,
                &mut saved,
                STARTED_MS,
                |_| async { Ok("0 lost".to_string()) },
            )
            .await
            .unwrap();
        exhausted(&refs);
        assert_eq!(
            saved.last_steps(),
            ["instance available", "compared", "torn down"]
        );
        assert!(
            steps
                .iter()
                .any(|s| s
                    == "resumed: cluster cutover-dev-lost-7000 was restored by an earlier run"),
            "{steps:#?}"
        );
        assert!(steps.iter().any(|s| s == "DeleteDBCluster: cutover-dev-lost-7000 (no final snapshot: the kept copy is it)"), "{steps:#?}");
    }

    #[tokio::test]
    async fn a_run_out_of_time_waiting_for_the_instance_keeps_what_exists_for_the_next_run() {
        // The instance is still being created when the run's wait ends: saved, not torn
        // down (in sequence, a teardown call would not match: there is no rule left).
        let rules = [
            system_snapshots(),
            old_cluster(),
            kept_absent(),
            copy(),
            kept("available"),
            cluster_absent(),
            restore_call(),
            instance_absent(),
            cluster("creating"),
            create_instance(),
            instance("creating"),
        ];
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut saved = Saved::default();
        let mut progress = fresh();
        let mut steps = Vec::new();
        let end = restore_with_wait(client, Duration::ZERO)
            .reconcile_with(
                &mut progress,
                &mut steps,
                &mut saved,
                STARTED_MS,
                |_| async { Ok::<_, FailoverError>("never".to_string()) },
            )
            .await
            .unwrap();
        assert_eq!(
            end,
            RunEnd::Waiting {
                after: "cluster restored"
            }
        );
        exhausted(&refs);
        let last = saved.progress.last().unwrap();
        assert_eq!(last.last_step(), "cluster restored");
        assert!(!last.torn_down);
        assert!(
            steps
                .last()
                .is_some_and(|s| s.starts_with("still waiting after: cluster restored")),
            "{steps:#?}"
        );
    }

    #[tokio::test]
    async fn a_run_stopped_after_comparing_only_tears_down() {
        let rules = teardown();
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut progress = RestoreProgress {
            system_snapshot: Some(SYSTEM.into()),
            kept_snapshot: Some(KEPT.into()),
            cluster: Some(KEPT.into()),
            endpoint: Some("host:5432".into()),
            compared: true,
            ..fresh()
        };
        let mut saved = Saved::default();
        restore(client)
            .reconcile_with(
                &mut progress,
                &mut Vec::new(),
                &mut saved,
                STARTED_MS,
                |_| async { panic!("compared again") },
            )
            .await
            .unwrap();
        exhausted(&refs);
        assert_eq!(saved.last_steps(), ["torn down"]);
        assert_eq!(saved.outcome, None);
    }

    /// The calls of a run whose copy, cluster and instance exist but whose progress was
    /// not saved (cut off between the call and the save): reads, then the teardown.
    fn unsaved() -> Vec<Rule> {
        let mut rules = vec![
            system_snapshots(),
            old_cluster(),
            kept("available"),
            kept("available"),
            cluster("available"),
            instance("available"),
            instance("available"),
            cluster("available"),
        ];
        rules.extend(teardown());
        rules
    }

    #[tokio::test]
    async fn a_run_whose_progress_was_not_saved_reads_first_and_does_not_copy_or_restore_again() {
        // In sequence: a copy, restore or create call would not match the next rule.
        let rules = unsaved();
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut steps = Vec::new();
        let mut saved = Saved::default();
        let mut endpoint = String::new();
        restore(client)
            .reconcile_with(&mut fresh(), &mut steps, &mut saved, STARTED_MS, |r| {
                endpoint = r.endpoint;
                async { Ok(String::new()) }
            })
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
        let rules = unsaved();
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, &refs);
        let mut steps = Vec::new();
        let mut saved = Saved::default();
        let mut progress = fresh();
        let err = restore(client)
            .reconcile_with(
                &mut progress,
                &mut steps,
                &mut saved,
                STARTED_MS,
                |_| async {
                    Err::<String, _>(FailoverError::Driver(
                        "old primary: connection refused".into(),
                    ))
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
        exhausted(&refs);
        assert!(!progress.compared && progress.torn_down);
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
        let mut saved = Saved::default();
        let err = restore(client)
            .reconcile_with(
                &mut fresh(),
                &mut Vec::new(),
                &mut saved,
                STARTED_MS,
                |_| async { Ok(String::new()) },
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no available rds:unplanned-global-failover-aurora-us-east-1-dev-"),
            "{err}"
        );
        exhausted(&refs);
        // Nothing to resume: the next run starts afresh.
        assert_eq!(saved.last_steps(), ["torn down"]);
    }
}
