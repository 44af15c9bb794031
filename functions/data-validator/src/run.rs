//! A validation run: schema comparison, planning into segments, one checkpoint
//! per segment in DynamoDB (so a run cut off by the Lambda deadline resumes
//! where it stopped), and the merged result: the run summary, the first
//! differing rows per table, an SNS message and CloudWatch metrics.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StandardUnit;
use cutover_core::metrics::{Metric, MetricsPublisher};
use cutover_core::notify::{Notification, Notifier, Severity};
use cutover_core::state::{keys, now_ms, StateStore};
use serde::{Deserialize, Serialize};

use crate::canonical::{classify_oracle, classify_postgres, Dialect};
use crate::engine::{key_order, Options, Pair, RowDiff, SegmentResult};
use crate::ident::TableRef;
use crate::schema::{compare, Column, Finding, TablePlan, TableSchema};
use crate::side::Side;
use crate::sql::{catalog, KeyRange};
use crate::ValidatorError;

/// Time kept before a Lambda deadline for the checkpoint and the summary.
const CHECKPOINT_RESERVE: Duration = Duration::from_secs(2);

/// How long a DIFF item is kept.
const DIFF_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Match,
    /// The rows are the same, and the schemas differ in ways reported as findings
    /// (a widened type, a nullability change, a type compared by its text form).
    MatchWithFindings,
    Mismatch,
    Error,
    Incomplete,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "MATCH",
            Verdict::MatchWithFindings => "MATCH_WITH_FINDINGS",
            Verdict::Mismatch => "MISMATCH",
            Verdict::Error => "ERROR",
            Verdict::Incomplete => "INCOMPLETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSummary {
    pub table: TableRef,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// `None` when the table cannot be compared (missing on a side).
    pub plan: Option<TablePlan>,
    pub segments: u32,
    pub segments_done: u32,
    pub source_rows: u64,
    pub target_rows: u64,
    pub missing_in_target: u64,
    pub extra_in_target: u64,
    pub different: u64,
    /// Live validation (see [`crate::engine::Live`]): rows read again, resolved, in flight.
    #[serde(default)]
    pub rechecked: u64,
    #[serde(default)]
    pub resolved: u64,
    #[serde(default)]
    pub in_flight: u64,
    /// The source's change counter for the table when the run was planned, before any
    /// of its rows were read ([`catalog::change_counter`]); `None` where the source has none.
    #[serde(default)]
    pub source_changes: Option<i64>,
    pub first_keys: Vec<String>,
    pub errors: Vec<String>,
}

impl TableSummary {
    pub fn mismatched(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.different
    }
}

/// The `VALIDATION#<run-id>` / `RUN` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub verdict: Verdict,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    /// Why the run was ended with segments not validated (the fan-out's failure, e.g. a
    /// segment's invocation that kept failing): those tables' verdict is ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub tables: Vec<TableSummary>,
}

impl RunSummary {
    /// The RUN item as stored: its tables are items of their own.
    fn without_tables(&self) -> RunSummary {
        RunSummary {
            tables: Vec::new(),
            ..self.clone()
        }
    }
}

/// Sort-key prefix of a table's summary item in a run ([`keys::validation_table`]).
const TABLE_SUMMARY: &str = "SUMMARY#";

/// The `VALIDATION#<run-id>` / `TABLE#<table>#SEG#<n>` item: a segment's plan and, once done, its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentCheckpoint {
    pub table: TableRef,
    pub index: u32,
    pub range: KeyRange,
    pub expected_rows: u64,
    pub done: bool,
    pub result: Option<SegmentResult>,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    /// A segment cut by a deadline: the leading-key value its rest starts at…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<String>,
    /// …and what was found before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<SegmentResult>,
}

/// The `DIFF#` item.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DiffItem {
    table: String,
    #[serde(flatten)]
    diff: RowDiff,
}

/// A reference to one segment, as the fan-out hands it to `validate-segment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub run_id: String,
    pub table: String,
    pub segment: u32,
}

/// What `validate` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    pub summary: RunSummary,
    pub segments_validated_now: u32,
    /// Set when the run stopped before the deadline: the event that continues it.
    pub resume: Option<serde_json::Value>,
}

pub struct Validator {
    pub source: Side,
    pub target: Side,
    pub store: StateStore,
    pub notifier: Option<Notifier>,
    pub metrics: Option<MetricsPublisher>,
    pub options: Options,
}

pub async fn describe(
    side: &Side,
    table: &TableRef,
) -> Result<Option<TableSchema>, ValidatorError> {
    let dialect = side.dialect();
    let rows = side.query(&catalog::columns(dialect, table)).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns = rows
        .into_iter()
        .map(|r| {
            let name = r[0].clone().unwrap_or_default();
            let data_type = r[1].clone().unwrap_or_default();
            let category = match dialect {
                Dialect::Postgres => classify_postgres(&data_type),
                Dialect::Oracle => {
                    classify_oracle(&data_type, r[3].as_deref().and_then(|s| s.parse().ok()))
                }
            };
            Column {
                name,
                data_type,
                category,
                nullable: r[2].as_deref() != Some("NO") && r[2].as_deref() != Some("N"),
            }
        })
        .collect();
    let key = side
        .query(&catalog::primary_key(dialect, table))
        .await?
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect();
    Ok(Some(TableSchema {
        dialect,
        columns,
        key,
    }))
}

pub async fn list_tables(side: &Side, schemas: &[String]) -> Result<Vec<TableRef>, ValidatorError> {
    let mut out = Vec::new();
    for schema in schemas {
        for row in side.query(&catalog::tables(side.dialect(), schema)).await? {
            out.push(TableRef::new(
                row[0].clone().unwrap_or_default(),
                row[1].clone().unwrap_or_default(),
            ));
        }
    }
    Ok(out)
}

/// A table's name as a dialect folds unquoted names: PostgreSQL to lower case, Oracle to upper.
pub fn fold_name(table: &TableRef, dialect: Dialect) -> TableRef {
    match dialect {
        Dialect::Postgres => TableRef::new(table.schema.to_lowercase(), table.table.to_lowercase()),
        Dialect::Oracle => TableRef::new(table.schema.to_uppercase(), table.table.to_uppercase()),
    }
}

fn table_key(table: &TableRef) -> String {
    format!("{}.{}", table.schema, table.table)
}

impl Validator {
    fn pair<'a>(&'a self, plan: &'a TablePlan) -> Pair<'a> {
        Pair::new(&self.source, &self.target, plan)
    }

    /// Compares schemas and plans segments; writes the RUN item and one
    /// pending checkpoint per segment. An existing run is returned unchanged.
    pub async fn plan(
        &self,
        run_id: &str,
        tables: &[TableRef],
    ) -> Result<RunSummary, ValidatorError> {
        if let Some((existing, _)) = self.load_run(run_id).await? {
            return Ok(existing);
        }
        // The run starts before anything is read, its change counters included.
        let started_at_ms = now_ms();
        let mut summaries = Vec::new();
        let mut checkpoints = Vec::new();
        for table in tables {
            eprintln!("[validate] planning {table}");
            let source_changes = self.source_changes(table).await?;
            let (s, t) = tokio::join!(describe(&self.source, table), self.describe_target(table));
            let (t, target_table) = match t? {
                Some((schema, name)) => (Some(schema), name),
                None => (None, None),
            };
            let mut summary = TableSummary {
                table: table.clone(),
                verdict: Verdict::Incomplete,
                findings: Vec::new(),
                plan: None,
                segments: 0,
                segments_done: 0,
                source_rows: 0,
                target_rows: 0,
                missing_in_target: 0,
                extra_in_target: 0,
                different: 0,
                rechecked: 0,
                resolved: 0,
                in_flight: 0,
                source_changes,
                first_keys: Vec::new(),
                errors: Vec::new(),
            };
            match (s?, t) {
                (None, None) => summary.findings.push(error_finding(format!(
                    "table {table} exists on neither side"
                ))),
                (None, Some(_)) => summary.findings.push(error_finding(format!(
                    "table {table} is missing on the source"
                ))),
                (Some(_), None) => summary.findings.push(error_finding(format!(
                    "table {table} is missing on the target"
                ))),
                (Some(s), Some(t)) => {
                    let (mut plan, findings) = compare(table, &s, &t);
                    plan.target_table = target_table;
                    summary.findings = findings;
                    let estimate = self.source_rows(table).await?;
                    let ranges = self
                        .pair(&plan)
                        .plan_segments(estimate, &self.options)
                        .await?;
                    let per_segment = estimate.div_ceil(ranges.len() as u64).max(1);
                    summary.segments = ranges.len() as u32;
                    for (index, range) in ranges.into_iter().enumerate() {
                        checkpoints.push(SegmentCheckpoint {
                            table: table.clone(),
                            index: index as u32,
                            range,
                            expected_rows: per_segment,
                            done: false,
                            result: None,
                            error: None,
                            duration_ms: None,
                            resume_from: None,
                            partial: None,
                        });
                    }
                    summary.plan = Some(plan);
                }
            }
            summaries.push(summary);
        }
        let run = RunSummary {
            run_id: run_id.to_string(),
            verdict: Verdict::Incomplete,
            started_at_ms,
            finished_at_ms: None,
            failure: None,
            tables: summaries,
        };
        for checkpoint in &checkpoints {
            let key =
                keys::validation_segment(run_id, &table_key(&checkpoint.table), checkpoint.index);
            self.store.create(&key, checkpoint).await?;
        }
        self.store_tables(&run).await?;
        // The RUN item last: a run exists only once all its segments and tables do.
        self.store
            .create(&keys::validation_run(run_id), &run.without_tables())
            .await?;
        Ok(run)
    }

    /// Each table's summary in an item of its own (`SUMMARY#<n>#<table>`): the RUN
    /// item would pass DynamoDB's 400 KB limit with a few hundred wide tables.
    async fn store_tables(&self, run: &RunSummary) -> Result<(), ValidatorError> {
        for (n, table) in run.tables.iter().enumerate() {
            let key = keys::validation_table(&run.run_id, n, &table_key(&table.table));
            self.store.put_latest(&key, table).await?;
        }
        Ok(())
    }

    /// A run as stored: the RUN item and its table summaries, with the RUN item's version.
    pub async fn load_run(
        &self,
        run_id: &str,
    ) -> Result<Option<(RunSummary, u64)>, ValidatorError> {
        let Some(stored) = self
            .store
            .get::<RunSummary>(&keys::validation_run(run_id))
            .await?
        else {
            return Ok(None);
        };
        let mut run = stored.value;
        if run.tables.is_empty() {
            run.tables = self
                .store
                .query_prefix::<TableSummary>(&keys::validation_run(run_id).pk, TABLE_SUMMARY)
                .await?
                .into_iter()
                .map(|(_, v)| v.value)
                .collect();
        }
        Ok(Some((run, stored.version)))
    }

    /// The target's description of a table, under the source's name or, between
    /// dialects, under the name folded the target's way (Oracle's `APP.ORDERS` is
    /// PostgreSQL's `app.orders`); the second value is that other name.
    async fn describe_target(
        &self,
        table: &TableRef,
    ) -> Result<Option<(TableSchema, Option<TableRef>)>, ValidatorError> {
        if let Some(schema) = describe(&self.target, table).await? {
            return Ok(Some((schema, None)));
        }
        let folded = fold_name(table, self.target.dialect());
        if folded == *table {
            return Ok(None);
        }
        Ok(describe(&self.target, &folded)
            .await?
            .map(|schema| (schema, Some(folded))))
    }

    /// Rows on the source, from its statistics when they can be trusted, else counted.
    async fn source_changes(&self, table: &TableRef) -> Result<Option<i64>, ValidatorError> {
        let Some(query) = catalog::change_counter(self.source.dialect(), table) else {
            return Ok(None);
        };
        Ok(self
            .source
            .query(&query)
            .await?
            .first()
            .and_then(|r| r[0].as_deref())
            .and_then(|v| v.parse().ok()))
    }

    async fn source_rows(&self, table: &TableRef) -> Result<u64, ValidatorError> {
        let dialect = self.source.dialect();
        let read = |rows: Vec<crate::side::TextRow>| {
            rows.first()
                .and_then(|r| r[0].as_deref())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Some(estimate) = read(
            self.source
                .query(&catalog::estimated_rows(dialect, table))
                .await?,
        ) {
            return Ok(estimate);
        }
        eprintln!("[validate] {table}: no trustworthy statistics, counting its rows");
        Ok(read(
            self.source
                .query(&catalog::count_rows(dialect, table))
                .await?,
        )
        .unwrap_or(0))
    }

    pub async fn segments(
        &self,
        run_id: &str,
    ) -> Result<Vec<(SegmentCheckpoint, u64)>, ValidatorError> {
        Ok(self
            .store
            .query_prefix::<SegmentCheckpoint>(&keys::validation_run(run_id).pk, "TABLE#")
            .await?
            .into_iter()
            .map(|(_, v)| (v.value, v.version))
            .collect())
    }

    /// Validates one segment unless its checkpoint says it is done. A key-ordered
    /// comparison stops before `deadline` (less [`CHECKPOINT_RESERVE`]) and stores
    /// where it stopped and what it found: the checkpoint comes back not done,
    /// and the next call goes on from there.
    pub async fn validate_segment(
        &self,
        run: &RunSummary,
        checkpoint: &SegmentCheckpoint,
        version: u64,
        deadline: Option<Instant>,
    ) -> Result<SegmentCheckpoint, ValidatorError> {
        if checkpoint.done {
            return Ok(checkpoint.clone());
        }
        let plan = run
            .tables
            .iter()
            .find(|t| t.table == checkpoint.table)
            .and_then(|t| t.plan.as_ref())
            .ok_or_else(|| {
                ValidatorError::InvalidInput(format!(
                    "run {} has no plan for {}",
                    run.run_id, checkpoint.table
                ))
            })?;
        let started = Instant::now();
        let range = KeyRange {
            lo: checkpoint
                .resume_from
                .clone()
                .or_else(|| checkpoint.range.lo.clone()),
            hi: checkpoint.range.hi.clone(),
        };
        let outcome = self
            .pair(plan)
            .compare_segment_until(
                &range,
                checkpoint.expected_rows,
                &self.options,
                deadline.map(|d| d.checked_sub(CHECKPOINT_RESERVE).unwrap_or(d)),
            )
            .await;
        let mut done = checkpoint.clone();
        done.done = true;
        done.duration_ms =
            Some(checkpoint.duration_ms.unwrap_or(0) + started.elapsed().as_millis() as u64);
        match outcome {
            Ok(progress) => {
                let mut result = checkpoint.partial.clone().unwrap_or_default();
                result.add(progress.result, self.options.max_diffs);
                if let Some(resume_from) = progress.resume_from {
                    eprintln!(
                        "[validate] {} segment {}: stopped for the deadline after {} rows, resumes at {resume_from:?}",
                        checkpoint.table, checkpoint.index, result.source_rows
                    );
                    done.done = false;
                    done.resume_from = Some(resume_from);
                    done.partial = Some(result);
                } else {
                    done.resume_from = None;
                    done.partial = None;
                    done.result = Some(result);
                }
            }
            Err(e @ ValidatorError::Query { .. }) => done.error = Some(e.to_string()),
            Err(e) => return Err(e),
        }
        let key =
            keys::validation_segment(&run.run_id, &table_key(&checkpoint.table), checkpoint.index);
        self.store.update(&key, &done, version).await?;
        Ok(done)
    }

    /// Validates every pending segment, stopping before `deadline`.
    pub async fn validate(
        &self,
        run_id: &str,
        tables: &[TableRef],
        deadline: Option<Instant>,
    ) -> Result<RunOutcome, ValidatorError> {
        let run = self.plan(run_id, tables).await?;
        let segments = self.segments(run_id).await?;
        let total = segments.len();
        let pending: Vec<_> = segments.into_iter().filter(|(c, _)| !c.done).collect();
        let mut validated = 0;
        let mut slowest = Duration::from_secs(0);
        for (i, (checkpoint, version)) in pending.iter().enumerate() {
            if let Some(deadline) = deadline {
                let remaining = deadline.saturating_duration_since(Instant::now());
                // The first segment always starts: a segment longer than the whole
                // invocation is cut inside, at the deadline, and goes on next time.
                if i > 0 && remaining < slowest * 2 + CHECKPOINT_RESERVE {
                    eprintln!(
                        "[validate] stopping before the deadline: {} of {total} segments left",
                        pending.len() - i
                    );
                    let summary = self.summarise(&run).await?;
                    return Ok(RunOutcome {
                        summary,
                        segments_validated_now: validated,
                        resume: Some(serde_json::json!({"command": "validate", "run_id": run_id})),
                    });
                }
            }
            let started = Instant::now();
            let done = self
                .validate_segment(&run, checkpoint, *version, deadline)
                .await?;
            slowest = slowest.max(started.elapsed());
            if !done.done {
                let summary = self.summarise(&run).await?;
                return Ok(RunOutcome {
                    summary,
                    segments_validated_now: validated,
                    resume: Some(serde_json::json!({"command": "validate", "run_id": run_id})),
                });
            }
            validated += 1;
            let result = done.result.as_ref();
            eprintln!(
                "[validate] {} segment {}: {} rows, {} mismatched ({} of {} pending segments done, {} ms)",
                done.table,
                done.index,
                result.map_or(0, |r| r.source_rows),
                result.map_or(0, |r| r.mismatched()),
                i + 1,
                pending.len(),
                started.elapsed().as_millis()
            );
        }
        let summary = self.merge(run_id).await?;
        Ok(RunOutcome {
            summary,
            segments_validated_now: validated,
            resume: None,
        })
    }

    /// Totals from the checkpoints, without side effects.
    pub async fn summarise(&self, run: &RunSummary) -> Result<RunSummary, ValidatorError> {
        let segments = self.segments(&run.run_id).await?;
        let mut run = run.clone();
        for table in &mut run.tables {
            let mine: Vec<&SegmentCheckpoint> = segments
                .iter()
                .map(|(c, _)| c)
                .filter(|c| c.table == table.table)
                .collect();
            table.segments_done = mine.iter().filter(|c| c.done).count() as u32;
            table.source_rows = 0;
            table.target_rows = 0;
            table.missing_in_target = 0;
            table.extra_in_target = 0;
            table.different = 0;
            table.rechecked = 0;
            table.resolved = 0;
            table.in_flight = 0;
            table.first_keys.clear();
            table.errors.clear();
            for c in &mine {
                if let Some(e) = &c.error {
                    table.errors.push(format!("segment {}: {e}", c.index));
                }
                if let Some(r) = &c.result {
                    table.source_rows += r.source_rows;
                    table.target_rows += r.target_rows;
                    table.missing_in_target += r.missing_in_target;
                    table.extra_in_target += r.extra_in_target;
                    table.different += r.different;
                    table.rechecked += r.rechecked;
                    table.resolved += r.resolved;
                    table.in_flight += r.in_flight;
                    table
                        .first_keys
                        .extend(r.diffs.iter().map(|d| d.key.clone()));
                }
            }
            table.first_keys.sort_by(|a, b| key_order(a, b));
            table.first_keys.truncate(10);
            let schema_error = table.findings.iter().any(|f| f.severity == "error");
            if let (Some(failure), true) = (&run.failure, table.segments_done < table.segments) {
                table.errors.push(format!(
                    "{} of {} segments not validated: {failure}",
                    table.segments - table.segments_done,
                    table.segments
                ));
            }
            table.verdict = if !table.errors.is_empty() {
                Verdict::Error
            } else if table.plan.is_none() {
                Verdict::Mismatch
            } else if table.segments_done < table.segments {
                Verdict::Incomplete
            } else if schema_error
                || table.mismatched() > 0
                // Under live validation the two sides' first counts are moments apart:
                // a difference whose every differing bucket was equal when re-read (no
                // row differs) is data in flight. Without it, it is a mismatch.
                || (table.source_rows != table.target_rows
                    && self.options.live == crate::engine::Live::Off)
            {
                Verdict::Mismatch
            } else if !table.findings.is_empty()
                || table.in_flight > 0
                || table.source_rows != table.target_rows
            {
                Verdict::MatchWithFindings
            } else {
                Verdict::Match
            };
        }
        run.verdict = overall(&run.tables);
        Ok(run)
    }

    /// Merges the checkpoints into the run's result and publishes it. Safe to repeat.
    pub async fn merge(&self, run_id: &str) -> Result<RunSummary, ValidatorError> {
        self.merge_with(run_id, None).await
    }

    /// Ends a run whose fan-out failed (`merge` with `failure`): the tables with segments
    /// not validated get the verdict ERROR and the failure as their error, the run is
    /// stored as finished and published, as `merge` does. A run already merged is left
    /// as it was; a run whose every segment is done is merged as usual.
    pub async fn merge_failed(
        &self,
        run_id: &str,
        failure: &str,
    ) -> Result<RunSummary, ValidatorError> {
        self.merge_with(run_id, Some(failure)).await
    }

    async fn merge_with(
        &self,
        run_id: &str,
        failure: Option<&str>,
    ) -> Result<RunSummary, ValidatorError> {
        let (mut stored, version) = self.load_run(run_id).await?.ok_or_else(|| {
            ValidatorError::InvalidInput(format!("there is no validation run {run_id:?}"))
        })?;
        if stored.finished_at_ms.is_none() && stored.failure.is_none() {
            stored.failure = failure.map(str::to_string);
        }
        let mut run = self.summarise(&stored).await?;
        if run.verdict == Verdict::Incomplete {
            return Ok(run);
        }
        let already_merged = stored.finished_at_ms.is_some();
        run.finished_at_ms = stored.finished_at_ms.or(Some(now_ms()));
        if !already_merged {
            self.write_diffs(&run).await?;
            self.store_tables(&run).await?;
            self.store
                .update(
                    &keys::validation_run(run_id),
                    &run.without_tables(),
                    version,
                )
                .await?;
            self.publish(&run).await?;
        }
        Ok(run)
    }

    /// One `DIFF#` item per differing row, at most `max_diffs` per table, in key
    /// order: the sort key starts with the row's rank (`DIFF#<table>#000042#<key>`),
    /// so a DynamoDB query returns them in key order, not as text (`id=10` after `id=9`).
    async fn write_diffs(&self, run: &RunSummary) -> Result<(), ValidatorError> {
        let segments = self.segments(&run.run_id).await?;
        for table in &run.tables {
            let name = table_key(&table.table);
            for (rank, diff) in table_diffs(&segments, table, self.options.max_diffs)
                .into_iter()
                .enumerate()
            {
                let row_key: String = diff.key.chars().take(300).collect();
                let item = DiffItem {
                    table: name.clone(),
                    diff,
                };
                let key =
                    keys::validation_diff(&run.run_id, &name, &format!("{rank:06}#{row_key}"));
                match self.store.append(&key, &item, Some(DIFF_TTL)).await {
                    // Written by an earlier merge of this run that stopped before its end.
                    Ok(()) | Err(cutover_core::Error::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn publish(&self, run: &RunSummary) -> Result<(), ValidatorError> {
        if let Some(notifier) = &self.notifier {
            notifier.publish(&notification(run)).await?;
        }
        if let Some(metrics) = &self.metrics {
            let duration = run
                .finished_at_ms
                .unwrap_or_else(now_ms)
                .saturating_sub(run.started_at_ms);
            let mut points = vec![Metric::new(
                "ValidationDuration",
                duration as f64,
                StandardUnit::Milliseconds,
            )];
            for t in &run.tables {
                let table = table_key(&t.table);
                points.push(
                    Metric::new("RowsCompared", t.source_rows as f64, StandardUnit::Count)
                        .dimension("Table", &table),
                );
                points.push(
                    Metric::new("MismatchedRows", t.mismatched() as f64, StandardUnit::Count)
                        .dimension("Table", &table),
                );
            }
            points.push(Metric::new(
                "MismatchedRows",
                run.tables.iter().map(TableSummary::mismatched).sum::<u64>() as f64,
                StandardUnit::Count,
            ));
            points.push(Metric::new(
                "RowsCompared",
                run.tables.iter().map(|t| t.source_rows).sum::<u64>() as f64,
                StandardUnit::Count,
            ));
            metrics.publish(&points).await?;
        }
        Ok(())
    }
}

fn error_finding(message: String) -> Finding {
    Finding {
        severity: "error".into(),
        message,
        grade: None,
    }
}

/// A table's first `limit` differences over all its segments, in key order.
fn table_diffs(
    segments: &[(SegmentCheckpoint, u64)],
    table: &TableSummary,
    limit: usize,
) -> Vec<RowDiff> {
    let mut diffs: Vec<RowDiff> = segments
        .iter()
        .filter(|(c, _)| c.table == table.table)
        .flat_map(|(c, _)| c.result.iter().flat_map(|r| r.diffs.iter().cloned()))
        .collect();
    diffs.sort_by(|a, b| key_order(&a.key, &b.key));
    diffs.truncate(limit);
    diffs
}

fn overall(tables: &[TableSummary]) -> Verdict {
    if tables.iter().any(|t| t.verdict == Verdict::Error) {
        Verdict::Error
    } else if tables.iter().any(|t| t.verdict == Verdict::Incomplete) {
        Verdict::Incomplete
    } else if tables.iter().any(|t| t.verdict == Verdict::Mismatch) {
        Verdict::Mismatch
    } else if tables
        .iter()
        .any(|t| t.verdict == Verdict::MatchWithFindings)
    {
        Verdict::MatchWithFindings
    } else {
        Verdict::Match
    }
}

/// The one-screen text a person reads (terminal and SNS alike).
pub fn render(run: &RunSummary) -> String {
    let mut out = format!("Validation run {}: {}\n", run.run_id, run.verdict.as_str());
    for t in &run.tables {
        out.push_str(&format!(
            "  {:<28} {:<10} source {:>10} rows, target {:>10} rows",
            t.table.to_string(),
            t.verdict.as_str(),
            t.source_rows,
            t.target_rows
        ));
        if t.mismatched() > 0 {
            out.push_str(&format!(
                "; {} missing in target, {} extra in target, {} different",
                t.missing_in_target, t.extra_in_target, t.different
            ));
        }
        if t.rechecked > 0 {
            out.push_str(&format!(
                "\n      live: {} rows re-checked after replication caught up: {} resolved, {} still in flight",
                t.rechecked, t.resolved, t.in_flight
            ));
        }
        out.push('\n');
        for f in &t.findings {
            out.push_str(&format!("      {}: {}\n", f.severity, f.message));
        }
        for e in &t.errors {
            out.push_str(&format!("      error: {e}\n"));
        }
        if !t.first_keys.is_empty() {
            out.push_str(&format!(
                "      first differing keys: {}\n",
                t.first_keys.join("; ")
            ));
        }
    }
    out
}

pub fn notification(run: &RunSummary) -> Notification {
    let mismatched: u64 = run.tables.iter().map(TableSummary::mismatched).sum();
    Notification {
        subject: format!(
            "cutover validation {}: {} tables, {} rows differ",
            run.verdict.as_str(),
            run.tables.len(),
            mismatched
        ),
        event_type: format!("validation.{}", run.verdict.as_str().to_ascii_lowercase()),
        severity: match run.verdict {
            Verdict::Match | Verdict::MatchWithFindings => Severity::Info,
            Verdict::Mismatch | Verdict::Incomplete => Severity::Warning,
            Verdict::Error => Severity::Critical,
        },
        text: render(run),
        detail: serde_json::json!({
            "run_id": run.run_id,
            "verdict": run.verdict,
            "tables": run.tables.iter().map(|t| serde_json::json!({
                "table": table_key(&t.table),
                "verdict": t.verdict,
                "source_rows": t.source_rows,
                "target_rows": t.target_rows,
                "missing_in_target": t.missing_in_target,
                "extra_in_target": t.extra_in_target,
                "different": t.different,
                "rechecked": t.rechecked,
                "resolved": t.resolved,
                "in_flight": t.in_flight,
                "first_keys": t.first_keys,
                "findings": t.findings,
            })).collect::<Vec<_>>(),
        }),
    }
}
