//! The `reconcile` and `replay` commands: the lost-write reconciliation ([`crate::reconcile`])
//! as the function runs it after an unplanned failover.
//!
//! `reconcile` reads `FAILOVER/STATE`: only a completed failover with a recorded fork
//! xid has lost writes to name (a switchover loses none; no fork xid, no evidence), and
//! anything else is answered, not failed. The old primary is
//! `CUTOVER_RECONCILE_OLD_PRIMARY` when set (the rehearsal), otherwise, on
//! `aurora-global`, Aurora's snapshot of it restored to a temporary cluster
//! ([`crate::old_primary`]); the new primary is the writer SSM names. The outcome — counts,
//! steps, and the replay script — is kept in the state table at `FAILOVER/RECONCILE`
//! (one item, bounded: a script over [`MAX_SCRIPT_BYTES`] is not stored and `replay`
//! then refuses, naming the reason).
//!
//! `replay` is separate and explicit (`dry_run` required): it applies the stored
//! script on the writer in one transaction, or rolls it back, and records what it did
//! in the same item.

use std::time::Duration;

use cutover_core::db::Endpoint;
use cutover_core::state::{now_ms, Key};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::driver::AnyDriver;
use crate::failover::{state_key, Failover, FailoverState, Kind, Phase};
use crate::old_primary::OldPrimaryRestore;
use crate::reconcile::{self, ReplayOutcome, ReplayScript};
use crate::FailoverError;

/// DynamoDB items stop at 400 KB; the script's share of the item stays under this.
pub const MAX_SCRIPT_BYTES: usize = 300_000;

pub fn reconcile_key() -> Key {
    Key::new("FAILOVER", "RECONCILE")
}

/// `FAILOVER/RECONCILE`: the last reconciliation, its script, and the replays of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileRecord {
    pub fork_xid: u64,
    pub old_primary: String,
    pub new_primary: String,
    pub lost: usize,
    pub new_since_failover: usize,
    pub conflicts: usize,
    pub steps: Vec<String>,
    /// `None` when it was larger than [`MAX_SCRIPT_BYTES`] (then `script_bytes` says how large).
    pub script: Option<ReplayScript>,
    pub script_bytes: usize,
    pub finished_at_ms: u64,
    #[serde(default)]
    pub replays: Vec<ReplayOutcome>,
}

/// Which failover has lost writes to name, or why none has.
pub fn reconcilable(state: Option<&FailoverState>) -> Result<(&FailoverState, u64), String> {
    let Some(state) = state else {
        return Err("no failover is recorded: nothing to reconcile".into());
    };
    if state.kind != Kind::Failover {
        return Err(format!(
            "the last move ({} → {}) was a switchover, which loses no writes: nothing to reconcile",
            state.from, state.to
        ));
    }
    if state.phase != Phase::Completed {
        return Err(format!(
            "the failover {} → {} has not finished: reconcile after it",
            state.from, state.to
        ));
    }
    match state.fork_xid {
        Some(xid) => Ok((state, xid)),
        None => Err(format!(
            "the failover {} → {} recorded no fork xid (resumed after its endpoint moved): the reconciliation has no evidence to classify rows with",
            state.from, state.to
        )),
    }
}

fn cluster_id(arn: &str) -> &str {
    arn.rsplit_once(":cluster:").map_or(arn, |(_, id)| id)
}

impl Failover {
    pub async fn reconcile_lost_writes(&self) -> Result<Value, FailoverError> {
        let state = self
            .store
            .get::<FailoverState>(&state_key())
            .await?
            .map(|v| v.value);
        let (state, fork_xid) = match reconcilable(state.as_ref()) {
            Ok(found) => found,
            Err(why) => return Ok(json!({"action": "nothing-to-reconcile", "summary": why})),
        };
        let new_primary = self.access.writer_endpoint(&self.ssm).await?;
        let mut steps = vec![format!(
            "failover {} → {} at fork xid {fork_xid}",
            state.from, state.to
        )];
        let settings = &self.config.reconcile;
        let (old_primary, outcome) = match (&settings.old_primary, &self.driver) {
            (Some(old), _) => {
                let endpoint: Endpoint = old.parse().map_err(|e: String| {
                    FailoverError::InvalidInput(format!("CUTOVER_RECONCILE_OLD_PRIMARY: {e}"))
                })?;
                let outcome = self
                    .compare(&endpoint, &new_primary, fork_xid, &mut steps)
                    .await?;
                (old.clone(), outcome)
            }
            (None, AnyDriver::Aurora(aurora)) => {
                let arn = self.config.cluster_arns.get(&state.from).ok_or_else(|| {
                    FailoverError::InvalidInput(format!("no cluster ARN for {}", state.from))
                })?;
                let restore = OldPrimaryRestore {
                    client: aurora
                        .members
                        .get(&state.from)
                        .unwrap_or(&aurora.client)
                        .clone(),
                    old_cluster_id: cluster_id(arn).to_string(),
                    prefix: settings.prefix.clone(),
                    keep_days: settings.keep_days,
                    db_subnet_group: settings.subnet_group.clone(),
                    security_groups: settings.security_groups.clone(),
                    poll_every: Duration::from_secs(15),
                    timeout: Duration::from_secs(12 * 60),
                };
                let mut inner = Vec::new();
                let outcome = restore
                    .reconcile_with(fork_xid, state.started_at_ms, &mut inner, |r| {
                        let new_primary = new_primary.clone();
                        async move {
                            let endpoint: Endpoint = r
                                .endpoint
                                .parse()
                                .map_err(|e: String| FailoverError::Internal(e))?;
                            let mut s = Vec::new();
                            let o = self.compare(&endpoint, &new_primary, fork_xid, &mut s).await?;
                            Ok((r.kept_snapshot, o, s))
                        }
                    })
                    .await;
                steps.append(&mut inner);
                let (kept, outcome, mut compared) = outcome?;
                steps.append(&mut compared);
                (format!("snapshot {kept} (restored, then deleted)"), outcome)
            }
            (None, AnyDriver::Postgres(_)) => {
                return Err(FailoverError::InvalidInput(
                    "postgres-streaming has no snapshot of the old primary: set CUTOVER_RECONCILE_OLD_PRIMARY to where it runs alone".into(),
                ))
            }
        };
        let bytes = serde_json::to_vec(&outcome.script)
            .map_err(|e| FailoverError::Internal(e.to_string()))?
            .len();
        let record = ReconcileRecord {
            fork_xid,
            old_primary,
            new_primary: new_primary.to_string(),
            lost: outcome.lost.len(),
            new_since_failover: outcome.new_since_failover.len(),
            conflicts: outcome.conflicts.len(),
            steps,
            script: (bytes <= MAX_SCRIPT_BYTES).then(|| outcome.script.clone()),
            script_bytes: bytes,
            finished_at_ms: now_ms(),
            replays: Vec::new(),
        };
        self.store.put_latest(&reconcile_key(), &record).await?;
        Ok(json!({
            "action": "reconciled",
            "fork_xid": fork_xid,
            "lost": record.lost,
            "new_since_failover": record.new_since_failover,
            "conflicts": record.conflicts,
            "statements": outcome.script.statements.len(),
            "script_stored": record.script.is_some(),
            "stored_at": "state table FAILOVER/RECONCILE",
            "steps": record.steps,
            "summary": outcome.render(),
        }))
    }

    async fn compare(
        &self,
        old: &Endpoint,
        new: &Endpoint,
        fork_xid: u64,
        steps: &mut Vec<String>,
    ) -> Result<reconcile::Reconciliation, FailoverError> {
        let old_side = reconcile::side(
            "old primary",
            self.access
                .connect(&self.access.target("old primary", old.clone()))
                .await?,
        )
        .await?;
        let new_side = reconcile::side(
            "new primary",
            self.access
                .connect(&self.access.target("new primary", new.clone()))
                .await?,
        )
        .await?;
        reconcile::reconcile(
            &old_side,
            &new_side,
            &self.config.reconcile.schemas,
            fork_xid,
            &mut |line| {
                tracing::info!("{line}");
                steps.push(line);
            },
        )
        .await
    }

    pub async fn replay_lost_writes(
        &self,
        dry_run: bool,
        fork_xid: Option<u64>,
    ) -> Result<Value, FailoverError> {
        let Some(mut record) = self
            .store
            .get::<ReconcileRecord>(&reconcile_key())
            .await?
            .map(|v| v.value)
        else {
            return Ok(
                json!({"action": "nothing-to-replay", "summary": "no reconciliation is stored: run reconcile first"}),
            );
        };
        if fork_xid.is_some_and(|x| x != record.fork_xid) {
            return Err(FailoverError::InvalidInput(format!(
                "the stored reconciliation is of fork xid {}, not {}",
                record.fork_xid,
                fork_xid.unwrap_or_default()
            )));
        }
        let Some(script) = record.script.clone() else {
            return Err(FailoverError::InvalidInput(format!(
                "the replay script ({} bytes) was too large to store (over {MAX_SCRIPT_BYTES}); replay it from the library",
                record.script_bytes
            )));
        };
        let writer = self.access.writer_endpoint(&self.ssm).await?;
        let client = self
            .access
            .connect(&self.access.target("writer", writer.clone()))
            .await?;
        let outcome = reconcile::replay(&client, &script, dry_run).await?;
        record.replays.push(outcome.clone());
        self.store.put_latest(&reconcile_key(), &record).await?;
        Ok(json!({
            "action": if dry_run { "replay-dry-run" } else { "replayed" },
            "writer": writer.to_string(),
            "outcome": outcome,
            "summary": format!(
                "{}{} of {} guarded statements applied, {} skipped (guard no longer holds); {} conflicts left for a person",
                if dry_run { "dry run, rolled back: " } else { "" },
                outcome.applied,
                outcome.statements,
                outcome.skipped.len(),
                outcome.conflicts
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(kind: Kind, finished: bool, fork_xid: Option<u64>) -> FailoverState {
        FailoverState {
            phase: if finished {
                Phase::Completed
            } else {
                Phase::InProgress
            },
            kind,
            from: "us-east-1".into(),
            to: "eu-west-1".into(),
            lease_epoch: 1,
            holder: "test".into(),
            trigger: "manual failover".into(),
            expected_loss_ms: None,
            loss_is_lower_bound: false,
            started_at_ms: 1,
            finished_at_ms: finished.then_some(2),
            fork_xid,
        }
    }

    #[test]
    fn only_a_finished_failover_with_a_fork_xid_is_reconciled() {
        assert!(reconcilable(None).unwrap_err().contains("no failover"));
        let s = state(Kind::Switchover, true, Some(5));
        assert!(reconcilable(Some(&s)).unwrap_err().contains("switchover"));
        let s = state(Kind::Failover, false, Some(5));
        assert!(reconcilable(Some(&s)).unwrap_err().contains("not finished"));
        let s = state(Kind::Failover, true, None);
        assert!(reconcilable(Some(&s)).unwrap_err().contains("no fork xid"));
        let s = state(Kind::Failover, true, Some(5));
        assert_eq!(reconcilable(Some(&s)).unwrap().1, 5);
    }

    #[test]
    fn the_old_cluster_is_named_by_its_arn() {
        assert_eq!(
            cluster_id("arn:aws:rds:us-east-1:1:cluster:aurora-us-east-1-dev"),
            "aurora-us-east-1-dev"
        );
    }
}
