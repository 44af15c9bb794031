//! After an unplanned failover with loss: which writes were lost, row by row, and a
//! guarded script that puts them back.
//!
//! The old primary (Aurora's snapshot of it restored, or in the rehearsal its data
//! directory started on its own) is compared with the new primary by the
//! data-validator's engine — the same comparison, the same canonical encoding, no
//! second comparer. Each differing key is then read on both sides with its row
//! version's `xmin`, and the failover's recorded **fork xid** (the first transaction
//! id the new primary assigned, read before the application was pointed at it; see
//! `FailoverState::fork_xid`) says which side changed it after the fork:
//!
//! | old primary | new primary | class |
//! |---|---|---|
//! | row | absent | **lost** insert (the old row's version is newer than the fork) |
//! | row, version older than the fork | absent | **conflict**: deleted on the new primary since, or a commit in flight at the failover |
//! | absent | row written since the fork | **new** since the failover |
//! | absent | row older than the fork | **lost** delete (the old primary deleted it after the fork) |
//! | different, old changed | new unchanged since the fork | **lost** update |
//! | different, old unchanged | new changed since the fork | **new** since the failover (changed) |
//! | different, both changed | | **conflict** |
//!
//! Lost rows become guarded statements (insert only if the key is absent; update and
//! delete only if the new primary still holds the value it had at the reconciliation,
//! which is the pre-failover value); conflicts are listed apart and never applied.
//! [`replay`] applies a script in one transaction, or rolls it back (dry run).

use std::collections::BTreeMap;

use data_validator::canonical::{Dialect, EmptyText};
use data_validator::engine::{DiffKind, Options, Pair, RowDiff};
use data_validator::ident::{quote, TableRef};
use data_validator::run::{describe, list_tables};
use data_validator::schema::{compare, TablePlan};
use data_validator::side::{Side, POSTGRES_SESSION_SETUP};
use data_validator::sql::{string_literal, KeyRange, Query, Role, SideSql};
use serde::{Deserialize, Serialize};

use crate::FailoverError;

/// Differences read per table; more than this and the table is reported incomplete.
pub const MAX_ROWS_PER_TABLE: usize = 100_000;

/// One column's value as text (`None` is SQL NULL).
pub type Values = Vec<(String, Option<String>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Insert,
    Update,
    Delete,
}

/// A row that differs between the old and the new primary, classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    /// `schema.table` as the new primary names it.
    pub table: String,
    /// The key as the validator shows it: `seq=42`, `order_id=7,line_no=2`.
    pub key: String,
    /// What replaying the old primary's row would do on the new one.
    pub change: Change,
    pub why: String,
    /// The row on the old primary (absent: `None`).
    pub old: Option<Values>,
    /// The row on the new primary at the reconciliation (absent: `None`).
    pub new: Option<Values>,
}

/// One table's count of each class, or why it was not reconciled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOutcome {
    pub table: String,
    pub old_rows: u64,
    pub new_rows: u64,
    pub lost: usize,
    pub new_since_failover: usize,
    pub conflicts: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A lost row as the statement that puts it back, only if its guard holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guarded {
    pub table: String,
    pub key: String,
    pub change: Change,
    pub sql: String,
}

/// What an operator reviews: guarded statements, and the conflicts apart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayScript {
    pub fork_xid: u64,
    pub statements: Vec<Guarded>,
    /// Never applied: each needs a person's decision.
    pub conflicts: Vec<RowChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub fork_xid: u64,
    pub tables: Vec<TableOutcome>,
    pub lost: Vec<RowChange>,
    pub new_since_failover: Vec<RowChange>,
    pub conflicts: Vec<RowChange>,
    pub script: ReplayScript,
}

impl Reconciliation {
    /// One screen: counts per table, then the lost rows and the conflicts.
    pub fn render(&self) -> String {
        let mut out = format!(
            "lost-write reconciliation (fork xid {}): {} lost, {} new since the failover, {} conflicts; {} guarded statements\n",
            self.fork_xid,
            self.lost.len(),
            self.new_since_failover.len(),
            self.conflicts.len(),
            self.script.statements.len()
        );
        for t in &self.tables {
            out.push_str(&format!(
                "  {:<28} old {:>7} rows, new {:>7} rows: {} lost, {} new, {} conflicts{}\n",
                t.table,
                t.old_rows,
                t.new_rows,
                t.lost,
                t.new_since_failover,
                t.conflicts,
                t.skipped
                    .as_ref()
                    .map(|s| format!(" (not reconciled: {s})"))
                    .unwrap_or_default()
            ));
        }
        for c in &self.conflicts {
            out.push_str(&format!("  conflict {} {}: {}\n", c.table, c.key, c.why));
        }
        out
    }
}

/// Transaction id `xmin` is at or after the 64-bit `fork` (32-bit ids compared
/// modulo 2^32, as PostgreSQL does; the permanent ids 0-2 are always before).
pub fn written_since(xmin: u32, fork: u64) -> bool {
    xmin >= 3 && (xmin.wrapping_sub(fork as u32) as i32) >= 0
}

/// How one differing key is classified from both sides' rows and versions.
pub fn classify(old: Option<u32>, new: Option<u32>, fork: u64) -> (Class, &'static str) {
    let since = |x: u32| written_since(x, fork);
    match (old, new) {
        (Some(o), None) if since(o) => (Class::Lost(Change::Insert), "written on the old primary after the fork, absent on the new"),
        (Some(_), None) => (Class::Conflict, "absent on the new primary, but older than the fork on the old: deleted on the new primary since, or a commit in flight at the failover"),
        (None, Some(n)) if since(n) => (Class::New, "written on the new primary since the failover"),
        (None, Some(_)) => (Class::Lost(Change::Delete), "deleted on the old primary after the fork, still on the new"),
        (Some(o), Some(n)) => match (since(o), since(n)) {
            (true, false) => (Class::Lost(Change::Update), "changed on the old primary after the fork; the new primary still holds the pre-failover value"),
            (false, true) => (Class::New, "changed on the new primary since the failover; the old primary's value is the pre-failover one"),
            (true, true) => (Class::Conflict, "changed on both: on the old primary after the fork and on the new primary since the failover"),
            (false, false) => (Class::Conflict, "different on both sides, yet neither version is newer than the fork"),
        },
        (None, None) => (Class::New, "absent on both sides now"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Lost(Change),
    New,
    Conflict,
}

/// A PostgreSQL side with the validator's session settings.
pub async fn side(label: &str, client: tokio_postgres::Client) -> Result<Side, FailoverError> {
    Side::postgres(label, client)
        .await
        .map_err(|e| FailoverError::Driver(format!("{label}: {e}")))
}

fn query_error(e: impl std::fmt::Display) -> FailoverError {
    FailoverError::Driver(e.to_string())
}

/// Compares every table of `schemas` on the old primary with the new primary and
/// classifies each difference with the fork xid.
pub async fn reconcile(
    old: &Side,
    new: &Side,
    schemas: &[String],
    fork_xid: u64,
    progress: &mut dyn FnMut(String),
) -> Result<Reconciliation, FailoverError> {
    let tables = list_tables(old, schemas).await.map_err(query_error)?;
    let mut out = Reconciliation {
        fork_xid,
        tables: Vec::new(),
        lost: Vec::new(),
        new_since_failover: Vec::new(),
        conflicts: Vec::new(),
        script: ReplayScript {
            fork_xid,
            ..ReplayScript::default()
        },
    };
    for (n, table) in tables.iter().enumerate() {
        let outcome = reconcile_table(old, new, table, fork_xid, &mut out).await?;
        progress(format!(
            "table {} of {}: {} — {} lost, {} new, {} conflicts{}",
            n + 1,
            tables.len(),
            outcome.table,
            outcome.lost,
            outcome.new_since_failover,
            outcome.conflicts,
            outcome
                .skipped
                .as_ref()
                .map(|s| format!(" (not reconciled: {s})"))
                .unwrap_or_default()
        ));
        out.tables.push(outcome);
    }
    Ok(out)
}

async fn count(side: &Side, table: &TableRef) -> Result<u64, FailoverError> {
    let rows = side
        .query(&Query {
            sql: format!("SELECT count(*)::text FROM {}", table.quoted()),
            params: vec![],
        })
        .await
        .map_err(query_error)?;
    Ok(rows
        .first()
        .and_then(|r| r[0].as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

async fn reconcile_table(
    old: &Side,
    new: &Side,
    table: &TableRef,
    fork_xid: u64,
    out: &mut Reconciliation,
) -> Result<TableOutcome, FailoverError> {
    let name = format!("{}.{}", table.schema, table.table);
    let mut outcome = TableOutcome {
        table: name.clone(),
        old_rows: count(old, table).await?,
        new_rows: 0,
        lost: 0,
        new_since_failover: 0,
        conflicts: 0,
        skipped: None,
    };
    let (Some(o), Some(n)) = (
        describe(old, table).await.map_err(query_error)?,
        describe(new, table).await.map_err(query_error)?,
    ) else {
        outcome.skipped = Some("absent on the new primary".into());
        return Ok(outcome);
    };
    outcome.new_rows = count(new, table).await?;
    let (plan, findings) = compare(table, &o, &n);
    if let Some(f) = findings.iter().find(|f| f.severity == "error") {
        outcome.skipped = Some(f.message.clone());
        return Ok(outcome);
    }
    if plan.is_multiset() {
        outcome.skipped = Some("no primary key: a lost copy of a row cannot be guarded".into());
        return Ok(outcome);
    }
    let pair = Pair::new(old, new, &plan);
    let options = Options {
        max_diffs: MAX_ROWS_PER_TABLE,
        leaf_rows: 64,
        ..Options::default()
    };
    let result = pair
        .compare_segment(&KeyRange::default(), outcome.old_rows, &options)
        .await
        .map_err(query_error)?;
    if result.mismatched() as usize > result.diffs.len() {
        outcome.skipped = Some(format!(
            "{} differences, more than the {} read",
            result.mismatched(),
            result.diffs.len()
        ));
        return Ok(outcome);
    }
    let reader = RowReader::new(&plan, &n);
    for diff in &result.diffs {
        let (old_row, new_row) = match diff.kind {
            DiffKind::MissingInTarget => (reader.read(old, diff).await?, None),
            DiffKind::ExtraInTarget => (None, reader.read(new, diff).await?),
            DiffKind::Different | DiffKind::InFlight => {
                (reader.read(old, diff).await?, reader.read(new, diff).await?)
            }
        };
        let (class, why) = classify(
            old_row.as_ref().map(|r| r.xmin),
            new_row.as_ref().map(|r| r.xmin),
            fork_xid,
        );
        let change = match class {
            Class::Lost(c) => c,
            _ => match (&old_row, &new_row) {
                (Some(_), None) => Change::Insert,
                (None, Some(_)) => Change::Delete,
                _ => Change::Update,
            },
        };
        let row = RowChange {
            table: name.clone(),
            key: diff.key.clone(),
            change,
            why: why.into(),
            old: old_row.as_ref().map(|r| reader.named(&r.values)),
            new: new_row.as_ref().map(|r| reader.named(&r.values)),
        };
        match class {
            Class::Lost(c) => {
                let sql = reader.statement(c, old_row.as_ref(), new_row.as_ref());
                if let Some(sql) = sql {
                    out.script.statements.push(Guarded {
                        table: name.clone(),
                        key: diff.key.clone(),
                        change: c,
                        sql,
                    });
                }
                outcome.lost += 1;
                out.lost.push(row);
            }
            Class::New => {
                outcome.new_since_failover += 1;
                out.new_since_failover.push(row);
            }
            Class::Conflict => {
                outcome.conflicts += 1;
                out.script.conflicts.push(row.clone());
                out.conflicts.push(row);
            }
        }
    }
    Ok(outcome)
}

struct Row {
    xmin: u32,
    values: Vec<Option<String>>,
}

/// Reads one row by the key the validator showed, and writes its statements, with
/// the new primary's names and types.
struct RowReader {
    table: String,
    columns: Vec<String>,
    types: Vec<String>,
    key: Vec<usize>,
    /// The validator's own key display expression, per side's names.
    key_display: String,
}

impl RowReader {
    fn new(plan: &TablePlan, new: &data_validator::schema::TableSchema) -> Self {
        let sql = SideSql::new(
            Dialect::Postgres,
            plan,
            Role::Target,
            EmptyText::for_pair(Dialect::Postgres, Dialect::Postgres),
        );
        let types = plan
            .columns
            .iter()
            .map(|c| {
                new.columns
                    .iter()
                    .find(|n| n.name == c.target)
                    .map(|n| n.data_type.clone())
                    .unwrap_or_else(|| c.target_type.clone())
            })
            .collect();
        let table = plan
            .target_table
            .clone()
            .unwrap_or_else(|| plan.table.clone());
        RowReader {
            table: table.quoted(),
            columns: plan.columns.iter().map(|c| c.target.clone()).collect(),
            types,
            key: plan.key.clone(),
            key_display: sql.key_display.join(" || ',' || "),
        }
    }

    fn named(&self, values: &[Option<String>]) -> Values {
        self.columns
            .iter()
            .cloned()
            .zip(values.iter().cloned())
            .collect()
    }

    /// The row whose key shows as the diff's key (without the `name=` labels), or
    /// none. A key shown alike for two rows (values longer than the display, or
    /// commas inside a composite key) is an error, not a guess.
    async fn read(&self, side: &Side, diff: &RowDiff) -> Result<Option<Row>, FailoverError> {
        let shown = self.unlabel(&diff.key);
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}::text", quote(c)))
            .collect();
        let rows = side
            .query(&Query {
                sql: format!(
                    "SELECT xmin::text, {} FROM {} WHERE {} = $1",
                    cols.join(", "),
                    self.table,
                    self.key_display
                ),
                params: vec![shown],
            })
            .await
            .map_err(query_error)?;
        if rows.len() > 1 {
            return Err(FailoverError::Driver(format!(
                "{} {}: the key shows alike for {} rows; reconcile this table by hand",
                self.table,
                diff.key,
                rows.len()
            )));
        }
        Ok(rows.into_iter().next().map(|r| Row {
            xmin: r[0].as_deref().and_then(|x| x.parse().ok()).unwrap_or(0),
            values: r[1..].to_vec(),
        }))
    }

    /// `order_id=7,line_no=2` → `7,2` (the key columns' names are known).
    fn unlabel(&self, key: &str) -> String {
        let mut rest = key;
        let mut parts = Vec::new();
        let names: Vec<&String> = self.key.iter().map(|i| &self.columns[*i]).collect();
        for (i, name) in names.iter().enumerate() {
            let Some(after) = rest.strip_prefix(&format!("{name}=")) else {
                return key.to_string();
            };
            if i + 1 == names.len() {
                parts.push(after.to_string());
            } else {
                let next = format!(",{}=", names[i + 1]);
                let Some(at) = after.find(&next) else {
                    return key.to_string();
                };
                parts.push(after[..at].to_string());
                rest = &after[at + 1..];
            }
        }
        parts.join(",")
    }

    fn literal(&self, i: usize, value: &Option<String>) -> String {
        match value {
            Some(v) => format!("{}::{}", string_literal(v), self.types[i]),
            None => "NULL".into(),
        }
    }

    fn key_condition(&self, values: &[Option<String>]) -> Vec<String> {
        self.key
            .iter()
            .map(|i| {
                format!(
                    "{} = {}",
                    quote(&self.columns[*i]),
                    self.literal(*i, &values[*i])
                )
            })
            .collect()
    }

    /// Every non-key column still as the new primary held it at the reconciliation
    /// (compared as text: every type has one, and `json` has no `=`).
    fn unchanged(&self, values: &[Option<String>]) -> Vec<String> {
        (0..self.columns.len())
            .filter(|i| !self.key.contains(i))
            .map(|i| {
                format!(
                    "{}::text IS NOT DISTINCT FROM {}",
                    quote(&self.columns[i]),
                    values[i]
                        .as_deref()
                        .map(string_literal)
                        .unwrap_or_else(|| "NULL".into())
                )
            })
            .collect()
    }

    fn statement(&self, change: Change, old: Option<&Row>, new: Option<&Row>) -> Option<String> {
        match (change, old, new) {
            (Change::Insert, Some(o), _) => {
                let cols: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
                let vals: Vec<String> = o
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.literal(i, v))
                    .collect();
                let key: Vec<String> = self.key.iter().map(|i| quote(&self.columns[*i])).collect();
                Some(format!(
                    "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({}) ON CONFLICT ({}) DO NOTHING;",
                    self.table,
                    cols.join(", "),
                    vals.join(", "),
                    key.join(", ")
                ))
            }
            (Change::Update, Some(o), Some(n)) => {
                let set: Vec<String> = (0..self.columns.len())
                    .filter(|i| !self.key.contains(i))
                    .map(|i| {
                        format!(
                            "{} = {}",
                            quote(&self.columns[i]),
                            self.literal(i, &o.values[i])
                        )
                    })
                    .collect();
                let mut guard = self.key_condition(&n.values);
                guard.extend(self.unchanged(&n.values));
                Some(format!(
                    "UPDATE {} SET {} WHERE {};",
                    self.table,
                    set.join(", "),
                    guard.join(" AND ")
                ))
            }
            (Change::Delete, _, Some(n)) => {
                let mut guard = self.key_condition(&n.values);
                guard.extend(self.unchanged(&n.values));
                Some(format!(
                    "DELETE FROM {} WHERE {};",
                    self.table,
                    guard.join(" AND ")
                ))
            }
            _ => None,
        }
    }
}

impl ReplayScript {
    /// The script as an operator reviews it: every statement commented with its key,
    /// then the conflicts as comments only.
    pub fn render(&self) -> String {
        let mut out = format!(
            "-- Lost writes after the failover (fork xid {}): {} guarded statements, {} conflicts.\n\
             -- Each statement changes one row, or none when its guard no longer holds\n\
             -- (the key is present now, or the new primary changed the row since).\n\
             -- Apply with the failover function's replay command (dry run first).\n\
             {POSTGRES_SESSION_SETUP};\nBEGIN;\n",
            self.fork_xid,
            self.statements.len(),
            self.conflicts.len()
        );
        for s in &self.statements {
            out.push_str(&format!(
                "-- {:?} {} {}\n{}\n",
                s.change, s.table, s.key, s.sql
            ));
        }
        out.push_str("COMMIT;\n");
        if !self.conflicts.is_empty() {
            out.push_str("\n-- Conflicts: NOT applied; each needs a person's decision.\n");
            for c in &self.conflicts {
                out.push_str(&format!(
                    "-- {} {}: {}\n--   old primary: {}\n--   new primary: {}\n",
                    c.table,
                    c.key,
                    c.why,
                    show(&c.old),
                    show(&c.new)
                ));
            }
        }
        out
    }
}

fn show(values: &Option<Values>) -> String {
    match values {
        None => "(absent)".into(),
        Some(v) => v
            .iter()
            .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("NULL")))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// What applying a script did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayOutcome {
    pub dry_run: bool,
    pub statements: usize,
    /// Statements that changed their row.
    pub applied: usize,
    /// Statements whose guard no longer held: `(table key, why)`.
    pub skipped: Vec<String>,
    /// Conflicts left for a person.
    pub conflicts: usize,
}

/// Runs the script's guarded statements on the new primary in one transaction:
/// committed, or rolled back when `dry_run`. Conflicts are never touched.
pub async fn replay(
    client: &tokio_postgres::Client,
    script: &ReplayScript,
    dry_run: bool,
) -> Result<ReplayOutcome, FailoverError> {
    client
        .batch_execute(&format!("{POSTGRES_SESSION_SETUP}; BEGIN"))
        .await
        .map_err(query_error)?;
    let mut applied = 0;
    let mut skipped = Vec::new();
    let mut counts: BTreeMap<Change, usize> = BTreeMap::new();
    for s in &script.statements {
        match client.execute(s.sql.as_str(), &[]).await {
            Ok(1) => {
                applied += 1;
                *counts.entry(s.change).or_default() += 1;
            }
            Ok(_) => skipped.push(format!(
                "{} {}: {}",
                s.table,
                s.key,
                match s.change {
                    Change::Insert => "the key is present now",
                    Change::Update | Change::Delete =>
                        "the new primary changed the row since the reconciliation",
                }
            )),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(FailoverError::Driver(format!(
                    "replaying {} {}: {}; nothing applied",
                    s.table,
                    s.key,
                    cutover_core::error::describe_chain(&e)
                )));
            }
        }
    }
    client
        .batch_execute(if dry_run { "ROLLBACK" } else { "COMMIT" })
        .await
        .map_err(query_error)?;
    Ok(ReplayOutcome {
        dry_run,
        statements: script.statements.len(),
        applied,
        skipped,
        conflicts: script.conflicts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_from_the_fork_on_is_written_since() {
        assert!(written_since(1000, 1000));
        assert!(written_since(1001, 1000));
        assert!(!written_since(999, 1000));
        assert!(!written_since(2, 1000), "frozen / bootstrap ids are old");
        // 32-bit wraparound: the fork near the top, a new xid past zero.
        let fork = (1u64 << 32) + u64::from(u32::MAX - 5);
        assert!(written_since(10, fork));
        assert!(!written_since(u32::MAX - 6, fork));
    }

    #[test]
    fn lost_new_and_conflicts_follow_which_side_wrote_after_the_fork() {
        let f = 100;
        assert_eq!(classify(Some(120), None, f).0, Class::Lost(Change::Insert));
        assert_eq!(classify(Some(90), None, f).0, Class::Conflict);
        assert_eq!(classify(None, Some(130), f).0, Class::New);
        assert_eq!(classify(None, Some(90), f).0, Class::Lost(Change::Delete));
        assert_eq!(
            classify(Some(120), Some(90), f).0,
            Class::Lost(Change::Update)
        );
        assert_eq!(classify(Some(90), Some(130), f).0, Class::New);
        assert_eq!(classify(Some(120), Some(130), f).0, Class::Conflict);
        assert_eq!(classify(Some(80), Some(90), f).0, Class::Conflict);
    }
}
