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
//! then refuses, naming the reason). On `aurora-global` the same item is written after
//! every step of the restore ([`RestoreProgress`]): a `reconcile` stopped by the
//! function's timeout is continued by the next one, and an abandoned run of an earlier
//! failover has its temporary cluster deleted first.
//!
//! `replay-script` shows the stored script as SQL (guarded statements, conflicts as
//! comments) for a person to review, reading nothing else. `replay` is separate and
//! explicit (`dry_run` required): it applies the stored script on the writer in one
//! transaction, or rolls it back, and records what it did in the same item. Both check
//! the stored item ([`replayable`]) before anything is connected to.

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use cutover_core::db::Endpoint;
use cutover_core::state::{now_ms, Key, StateStore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::aurora::AuroraGlobal;
use crate::driver::AnyDriver;
use crate::failover::{state_key, Failover, FailoverState, Kind, Phase};
use crate::old_primary::{Checkpoint, OldPrimaryRestore, RestoreProgress, RunEnd};
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
    /// 0 while an `aurora-global` run is under way (its `restore` says how far it got).
    pub finished_at_ms: u64,
    #[serde(default)]
    pub replays: Vec<ReplayOutcome>,
    /// The replay script's guarded statements (also when the script was too large to store).
    #[serde(default)]
    pub statements: usize,
    /// `aurora-global`: how far the restore of the old primary got, saved after each step.
    #[serde(default)]
    pub restore: Option<RestoreProgress>,
}

impl ReconcileRecord {
    fn set_outcome(&mut self, outcome: &reconcile::Reconciliation) {
        // A script that does not encode is not stored, as one too large.
        let bytes = serde_json::to_vec(&outcome.script).map_or(usize::MAX, |v| v.len());
        self.lost = outcome.lost.len();
        self.new_since_failover = outcome.new_since_failover.len();
        self.conflicts = outcome.conflicts.len();
        self.statements = outcome.script.statements.len();
        self.script = (bytes <= MAX_SCRIPT_BYTES).then(|| outcome.script.clone());
        self.script_bytes = bytes;
    }

    /// Whether a replay script is known: an `aurora-global` run that has not compared yet has none.
    fn compared(&self) -> bool {
        self.restore.as_ref().is_none_or(|p| p.compared)
    }
}

/// The reconciliation's item, written after every step of an `aurora-global` run.
struct ItemCheckpoint {
    store: StateStore,
    record: ReconcileRecord,
    /// The outcome, when this run compared (an earlier run's is only in `record`).
    outcome: Option<reconcile::Reconciliation>,
}

impl Checkpoint for ItemCheckpoint {
    type Outcome = (reconcile::Reconciliation, Vec<String>);

    fn compared(&mut self, (outcome, mut lines): Self::Outcome, steps: &mut Vec<String>) {
        steps.append(&mut lines);
        self.record.set_outcome(&outcome);
        self.outcome = Some(outcome);
    }

    fn save(
        &mut self,
        progress: &RestoreProgress,
        steps: &[String],
    ) -> impl Future<Output = Result<(), FailoverError>> + Send {
        self.record.restore = Some(progress.clone());
        self.record.steps = steps.to_vec();
        let store = self.store.clone();
        let record = self.record.clone();
        async move {
            store.put_latest(&reconcile_key(), &record).await?;
            Ok(())
        }
    }
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

/// What `reconcile` finds of an earlier `aurora-global` run in the item.
#[derive(Debug, PartialEq)]
enum StoredRun {
    /// None, a finished one, or one whose temporary cluster is gone: start afresh.
    Fresh,
    /// This failover's run, stopped mid-way: continue it.
    Resume(RestoreProgress, Box<ReconcileRecord>),
    /// An earlier failover's run, stopped mid-way: its temporary cluster goes first.
    Abandoned(RestoreProgress),
}

fn stored_run(stored: Option<ReconcileRecord>, region: &str, fork_xid: u64) -> StoredRun {
    let Some((progress, record)) = stored.and_then(|r| Some((r.restore.clone()?, r))) else {
        return StoredRun::Fresh;
    };
    if record.finished_at_ms > 0 || progress.torn_down {
        StoredRun::Fresh
    } else if progress.fork_xid == fork_xid && progress.region == region {
        StoredRun::Resume(progress, Box::new(record))
    } else {
        StoredRun::Abandoned(progress)
    }
}

/// The stored script, if `fork_xid` (when given) names the stored reconciliation, it
/// has compared, and its script was small enough to store; otherwise why not, checked
/// before anything is connected to or written.
pub fn replayable(
    record: &ReconcileRecord,
    fork_xid: Option<u64>,
) -> Result<&ReplayScript, FailoverError> {
    if let Some(asked) = fork_xid.filter(|x| *x != record.fork_xid) {
        return Err(FailoverError::InvalidInput(format!(
            "fork_xid {asked} does not name the stored reconciliation: it is of fork xid {}",
            record.fork_xid
        )));
    }
    if !record.compared() {
        return Err(FailoverError::InvalidInput(format!(
            "the reconciliation of fork xid {} is unfinished (last step: {}): run reconcile again first",
            record.fork_xid,
            record.restore.as_ref().map_or("nothing yet", |p| p.last_step())
        )));
    }
    record.script.as_ref().ok_or_else(|| {
        FailoverError::InvalidInput(format!(
            "the replay script ({} bytes) was too large to store (over {MAX_SCRIPT_BYTES}); replay it from the library",
            record.script_bytes
        ))
    })
}

/// The `replay-script` answer: the rendered SQL an operator reviews (guarded statements,
/// conflicts as comments), and the script itself.
pub fn script_answer(
    record: Option<&ReconcileRecord>,
    fork_xid: Option<u64>,
) -> Result<Value, FailoverError> {
    let Some(record) = record else {
        return Ok(
            json!({"action": "nothing-to-show", "summary": "no reconciliation is stored: run reconcile first"}),
        );
    };
    let script = replayable(record, fork_xid)?;
    Ok(json!({
        "action": "replay-script",
        "fork_xid": record.fork_xid,
        "statements": script.statements.len(),
        "conflicts": script.conflicts.len(),
        "replays": record.replays.len(),
        "script": script,
        "sql": script.render(),
        "summary": format!(
            "the replay script of fork xid {}: {} guarded statements, {} conflicts (never applied); applied {} times so far. Review it, then replay with dry_run true, then false",
            record.fork_xid,
            script.statements.len(),
            script.conflicts.len(),
            record.replays.iter().filter(|r| !r.dry_run).count()
        ),
    }))
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
        let (mut record, outcome) = match (&settings.old_primary, &self.driver) {
            (Some(old), _) => {
                let endpoint: Endpoint = old.parse().map_err(|e: String| {
                    FailoverError::InvalidInput(format!("CUTOVER_RECONCILE_OLD_PRIMARY: {e}"))
                })?;
                let outcome = self
                    .compare(&endpoint, &new_primary, fork_xid, &mut steps)
                    .await?;
                let mut record = ReconcileRecord {
                    fork_xid,
                    old_primary: old.clone(),
                    new_primary: new_primary.to_string(),
                    steps,
                    ..Default::default()
                };
                record.set_outcome(&outcome);
                (record, Some(outcome))
            }
            (None, AnyDriver::Aurora(aurora)) => {
                match self
                    .reconcile_from_snapshot(aurora, state, fork_xid, &new_primary, steps)
                    .await?
                {
                    ControlFlow::Continue(compared) => compared,
                    ControlFlow::Break(waiting) => return Ok(waiting),
                }
            }
            (None, AnyDriver::Postgres(_)) => {
                return Err(FailoverError::InvalidInput(
                    "postgres-streaming has no snapshot of the old primary: set CUTOVER_RECONCILE_OLD_PRIMARY to where it runs alone".into(),
                ))
            }
        };
        record.finished_at_ms = now_ms();
        self.store.put_latest(&reconcile_key(), &record).await?;
        let summary = match &outcome {
            Some(outcome) => outcome.render(),
            None => format!(
                "lost-write reconciliation (fork xid {fork_xid}): {} lost, {} new since the failover, {} conflicts; {} guarded statements (compared by an earlier run)",
                record.lost, record.new_since_failover, record.conflicts, record.statements
            ),
        };
        Ok(json!({
            "action": "reconciled",
            "fork_xid": fork_xid,
            "lost": record.lost,
            "new_since_failover": record.new_since_failover,
            "conflicts": record.conflicts,
            "statements": record.statements,
            "script_stored": record.script.is_some(),
            "stored_at": "state table FAILOVER/RECONCILE",
            "tables": outcome.as_ref().map(|o| &o.tables),
            // What `replay` would apply, for a person to read first (also `replay-script`).
            "sql": record.script.as_ref().map(ReplayScript::render),
            "steps": record.steps,
            "summary": summary,
        }))
    }

    /// `aurora-global`: the old primary restored from Aurora's snapshot of it, in its own
    /// region, continuing the stored run of this failover if one was stopped mid-way.
    /// `Break`: the answer of a run that ran out of time waiting for AWS (saved; the next
    /// `reconcile` continues).
    async fn reconcile_from_snapshot(
        &self,
        aurora: &AuroraGlobal,
        state: &FailoverState,
        fork_xid: u64,
        new_primary: &Endpoint,
        mut steps: Vec<String>,
    ) -> Result<
        ControlFlow<Value, (ReconcileRecord, Option<reconcile::Reconciliation>)>,
        FailoverError,
    > {
        let settings = &self.config.reconcile;
        // Every call goes to the old primary's region: its snapshot and cluster are there.
        let restore_in = |region: &str, old_cluster_id: &str| {
            let client = aurora.members.get(region).ok_or_else(|| {
                FailoverError::InvalidInput(format!(
                    "no RDS client for {region}: it is not one of CUTOVER_REGIONS"
                ))
            })?;
            Ok::<_, FailoverError>(OldPrimaryRestore {
                client: client.clone(),
                old_cluster_id: old_cluster_id.to_string(),
                prefix: settings.prefix.clone(),
                keep_days: settings.keep_days,
                // Never longer than a tenth of the wait: a short wait still looks a few times.
                poll_every: Duration::from_secs(15).min(settings.restore_wait / 10),
                // Of the function's 900 s: what is left is for the comparison and the teardown.
                timeout: settings.restore_wait,
            })
        };
        let arn = self.config.cluster_arns.get(&state.from).ok_or_else(|| {
            FailoverError::InvalidInput(format!("no cluster ARN for {}", state.from))
        })?;
        let restore = restore_in(&state.from, cluster_id(arn))?;
        let mut progress = RestoreProgress::new(&state.from, cluster_id(arn), fork_xid);
        let mut record = ReconcileRecord {
            fork_xid,
            old_primary: format!(
                "snapshot {} (restored, then deleted)",
                restore.name(fork_xid)
            ),
            new_primary: new_primary.to_string(),
            ..Default::default()
        };
        let stored = self
            .store
            .get::<ReconcileRecord>(&reconcile_key())
            .await?
            .map(|v| v.value);
        match stored_run(stored, &state.from, fork_xid) {
            StoredRun::Fresh => {}
            StoredRun::Resume(p, r) => {
                steps = r.steps.clone();
                steps.push(format!("resumed after: {}", p.last_step()));
                progress = p;
                record = *r;
            }
            StoredRun::Abandoned(p) => {
                // An earlier failover's run, abandoned: its temporary cluster goes first.
                steps.push(format!(
                    "an abandoned reconciliation (fork xid {}, {}, after: {}): its temporary cluster is deleted first",
                    p.fork_xid,
                    p.region,
                    p.last_step()
                ));
                restore_in(&p.region, &p.old_cluster_id)?
                    .tear_down(p.fork_xid, &mut steps)
                    .await?;
            }
        }
        let mut checkpoint = ItemCheckpoint {
            store: self.store.clone(),
            record,
            outcome: None,
        };
        let end = restore
            .reconcile_with(
                &mut progress,
                &mut steps,
                &mut checkpoint,
                state.started_at_ms,
                |r| async move {
                    let endpoint: Endpoint = r
                        .endpoint
                        .parse()
                        .map_err(|e: String| FailoverError::Internal(e))?;
                    let mut lines = Vec::new();
                    let outcome = self
                        .compare(&endpoint, new_primary, fork_xid, &mut lines)
                        .await?;
                    Ok((outcome, lines))
                },
            )
            .await?;
        if let RunEnd::Waiting { after } = end {
            return Ok(ControlFlow::Break(json!({
                "action": "reconcile-in-progress",
                "fork_xid": fork_xid,
                "after": after,
                "steps": steps,
                "stored_at": "state table FAILOVER/RECONCILE",
                "summary": format!(
                    "the old primary's restore is still under way (after: {after}); its progress is saved: invoke reconcile again to continue"
                ),
            })));
        }
        let mut record = checkpoint.record;
        record.steps = steps;
        record.restore = Some(progress);
        Ok(ControlFlow::Continue((record, checkpoint.outcome)))
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

    /// `replay-script`: the stored script as an operator reads it before applying it
    /// (read-only: nothing is connected to, nothing is written).
    pub async fn show_replay_script(&self, fork_xid: Option<u64>) -> Result<Value, FailoverError> {
        let record = self
            .store
            .get::<ReconcileRecord>(&reconcile_key())
            .await?
            .map(|v| v.value);
        script_answer(record.as_ref(), fork_xid)
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
        let script = replayable(&record, fork_xid)?.clone();
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
    fn a_stopped_run_of_this_failover_is_resumed_and_one_of_another_is_abandoned() {
        let record = |progress: Option<RestoreProgress>, finished_at_ms: u64| ReconcileRecord {
            fork_xid: 7000,
            restore: progress,
            finished_at_ms,
            ..Default::default()
        };
        let restored = RestoreProgress {
            cluster: Some("cutover-dev-lost-7000".into()),
            ..RestoreProgress::new("us-east-1", "aurora-us-east-1-dev", 7000)
        };
        assert_eq!(stored_run(None, "us-east-1", 7000), StoredRun::Fresh);
        // the rehearsal's record, and a finished run: nothing to continue
        assert_eq!(
            stored_run(Some(record(None, 5)), "us-east-1", 7000),
            StoredRun::Fresh
        );
        assert_eq!(
            stored_run(Some(record(Some(restored.clone()), 5)), "us-east-1", 7000),
            StoredRun::Fresh
        );
        let torn_down = RestoreProgress {
            torn_down: true,
            ..restored.clone()
        };
        assert_eq!(
            stored_run(Some(record(Some(torn_down), 0)), "us-east-1", 7000),
            StoredRun::Fresh
        );
        let stopped = record(Some(restored.clone()), 0);
        assert_eq!(
            stored_run(Some(stopped.clone()), "us-east-1", 7000),
            StoredRun::Resume(restored.clone(), Box::new(stopped.clone()))
        );
        // a later failover (another fork xid, or from another region)
        assert_eq!(
            stored_run(Some(stopped.clone()), "us-east-1", 9000),
            StoredRun::Abandoned(restored.clone())
        );
        assert_eq!(
            stored_run(Some(stopped), "eu-west-1", 7000),
            StoredRun::Abandoned(restored)
        );
    }

    #[tokio::test]
    async fn each_saved_step_is_written_to_the_reconciliation_item() {
        use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
        use aws_sdk_dynamodb::types::AttributeValue;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        let s = |v: &str| AttributeValue::S(v.into());
        let put = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |r| {
                let Some(item) = r.item() else { return false };
                let restore = match item.get("restore") {
                    Some(AttributeValue::M(m)) => m,
                    _ => return false,
                };
                item.get("pk") == Some(&s(&reconcile_key().pk))
                    && item.get("sk") == Some(&s(&reconcile_key().sk))
                    && item.get("finished_at_ms") == Some(&AttributeValue::N("0".into()))
                    && restore.get("cluster") == Some(&s("cutover-dev-lost-7000"))
                    && restore.get("region") == Some(&s("us-east-1"))
                    && item.get("steps") == Some(&AttributeValue::L(vec![s("restored")]))
            })
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&put]);
        let mut checkpoint = ItemCheckpoint {
            store: StateStore::new(client, "migration-state"),
            record: ReconcileRecord {
                fork_xid: 7000,
                ..Default::default()
            },
            outcome: None,
        };
        let progress = RestoreProgress {
            cluster: Some("cutover-dev-lost-7000".into()),
            ..RestoreProgress::new("us-east-1", "aurora-us-east-1-dev", 7000)
        };
        checkpoint
            .save(&progress, &["restored".to_string()])
            .await
            .unwrap();
        assert_eq!(put.num_calls(), 1);
    }

    #[test]
    fn a_record_stored_before_progress_was_saved_still_reads() {
        let old = json!({
            "fork_xid": 7000, "old_primary": "x", "new_primary": "y", "lost": 1,
            "new_since_failover": 2, "conflicts": 0, "steps": [], "script": null,
            "script_bytes": 10, "finished_at_ms": 5, "replays": [],
        });
        let record: ReconcileRecord = serde_json::from_value(old).unwrap();
        assert_eq!(record.restore, None);
        assert!(record.compared());
    }

    #[test]
    fn a_reconciliation_that_has_not_compared_has_no_script_to_replay() {
        let mut record = ReconcileRecord::default();
        assert!(record.compared(), "the rehearsal's record");
        record.restore = Some(RestoreProgress::new("us-east-1", "a", 1));
        assert!(!record.compared());
        record.restore.as_mut().unwrap().compared = true;
        assert!(record.compared());
    }

    fn stored(script: Option<ReplayScript>) -> ReconcileRecord {
        ReconcileRecord {
            fork_xid: 7000,
            lost: 1,
            statements: 1,
            conflicts: 1,
            script,
            finished_at_ms: 5,
            ..Default::default()
        }
    }

    fn script() -> ReplayScript {
        ReplayScript {
            fork_xid: 7000,
            statements: vec![reconcile::Guarded {
                table: "app.orders".into(),
                key: "id=7".into(),
                change: reconcile::Change::Insert,
                sql: "INSERT INTO \"app\".\"orders\" (\"id\") OVERRIDING SYSTEM VALUE VALUES ('7'::integer) ON CONFLICT (\"id\") DO NOTHING;".into(),
            }],
            conflicts: vec![reconcile::RowChange {
                table: "app.balances".into(),
                key: "id=2".into(),
                change: reconcile::Change::Update,
                why: "changed on both".into(),
                old: Some(vec![("amount".into(), Some("220.00".into()))]),
                new: Some(vec![("amount".into(), Some("195.00".into()))]),
            }],
        }
    }

    #[test]
    fn the_replay_script_is_shown_as_the_sql_an_operator_reviews() {
        let record = stored(Some(script()));
        let answer = script_answer(Some(&record), None).unwrap();
        assert_eq!(answer["action"], "replay-script");
        assert_eq!(
            (answer["statements"].as_u64(), answer["conflicts"].as_u64()),
            (Some(1), Some(1))
        );
        let sql = answer["sql"].as_str().unwrap();
        assert!(
            sql.contains("BEGIN;\n-- Insert app.orders id=7\nINSERT INTO"),
            "{sql}"
        );
        // The conflict is a comment only: no line of it is a statement.
        let conflicts = sql.split("-- Conflicts: NOT applied").nth(1).unwrap();
        assert!(
            conflicts.contains("app.balances id=2: changed on both"),
            "{sql}"
        );
        assert!(
            conflicts
                .lines()
                .skip(1)
                .all(|l| l.is_empty() || l.starts_with("--")),
            "{sql}"
        );
        assert_eq!(
            script_answer(Some(&record), Some(7000)).unwrap()["sql"],
            sql
        );
        assert_eq!(
            script_answer(None, None).unwrap()["action"],
            "nothing-to-show"
        );
    }

    #[test]
    fn a_replay_of_the_wrong_unfinished_or_unstored_script_is_refused_naming_why() {
        let record = stored(Some(script()));
        let wrong = replayable(&record, Some(9000)).unwrap_err();
        assert!(matches!(wrong, FailoverError::InvalidInput(_)));
        assert!(
            wrong.to_string().contains("fork_xid 9000") && wrong.to_string().contains("7000"),
            "{wrong}"
        );
        assert_eq!(replayable(&record, Some(7000)).unwrap(), &script());
        let mut unfinished = record.clone();
        unfinished.restore = Some(RestoreProgress {
            cluster: Some("cutover-dev-lost-7000".into()),
            ..RestoreProgress::new("us-east-1", "a", 7000)
        });
        let e = replayable(&unfinished, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("unfinished (last step: cluster restored)"),
            "{e}"
        );
        let too_large = ReconcileRecord {
            script_bytes: MAX_SCRIPT_BYTES + 1,
            ..stored(None)
        };
        let e = replayable(&too_large, None).unwrap_err();
        assert!(e.to_string().contains("too large to store"), "{e}");
        // The same checks answer replay-script, before anything is read from a database.
        assert!(script_answer(Some(&too_large), None).is_err());
        assert!(script_answer(Some(&record), Some(1)).is_err());
    }

    #[test]
    fn the_old_cluster_is_named_by_its_arn() {
        assert_eq!(
            cluster_id("arn:aws:rds:us-east-1:1:cluster:aurora-us-east-1-dev"),
            "aurora-us-east-1-dev"
        );
    }
}
