//! The evidence a gate reads and its verdict, kept beside the phase.
//!
//! Validation evidence is a data-validator run (`VALIDATION#<run-id>`), named by the
//! caller of `advance`: the controller reads its summary and its tables from the state
//! table and judges them here, so a refusal can name the differing keys.

use cutover_core::state::{keys, StateStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::machine::Gate;

/// One gate's verdict, with what it saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub gate: Gate,
    pub passed: bool,
    /// One sentence a person can act on.
    pub detail: String,
    /// What it measured (positions, counts, run ids, keys).
    #[serde(default)]
    pub evidence: Value,
}

impl GateResult {
    pub fn pass(gate: Gate, detail: impl Into<String>, evidence: Value) -> Self {
        GateResult {
            gate,
            passed: true,
            detail: detail.into(),
            evidence,
        }
    }

    pub fn fail(gate: Gate, detail: impl Into<String>, evidence: Value) -> Self {
        GateResult {
            gate,
            passed: false,
            detail: detail.into(),
            evidence,
        }
    }
}

/// The `VALIDATION#<run-id>` / `RUN` item, as far as a gate needs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunEvidence {
    pub run_id: String,
    pub verdict: String,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
}

/// One table of a run (`SUMMARY#` items).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TableEvidence {
    pub table: Value,
    pub verdict: String,
    #[serde(default)]
    pub missing_in_target: u64,
    #[serde(default)]
    pub extra_in_target: u64,
    #[serde(default)]
    pub different: u64,
    #[serde(default)]
    pub first_keys: Vec<String>,
    /// The source's change counter when the run was planned.
    #[serde(default)]
    pub source_changes: Option<i64>,
}

impl TableEvidence {
    /// `schema.table` whatever shape the validator stored it in.
    pub fn name(&self) -> String {
        match &self.table {
            Value::String(s) => s.clone(),
            Value::Object(o) => {
                let part = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
                format!(
                    "{}.{}",
                    part("schema").unwrap_or_else(|| "?".into()),
                    part("table")
                        .or_else(|| part("name"))
                        .unwrap_or_else(|| "?".into())
                )
            }
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationEvidence {
    pub run: RunEvidence,
    pub tables: Vec<TableEvidence>,
}

/// Reads a run and its table summaries; `None` when there is no such run.
pub async fn load_validation(
    store: &StateStore,
    run_id: &str,
) -> cutover_core::Result<Option<ValidationEvidence>> {
    let Some(run) = store
        .get::<RunEvidence>(&keys::validation_run(run_id))
        .await?
    else {
        return Ok(None);
    };
    let tables = store
        .query_prefix::<TableEvidence>(&format!("VALIDATION#{run_id}"), "SUMMARY#")
        .await?
        .into_iter()
        .map(|(_, v)| v.value)
        .collect();
    Ok(Some(ValidationEvidence {
        run: run.value,
        tables,
    }))
}

const ACCEPTED: [&str; 2] = ["MATCH", "MATCH_WITH_FINDINGS"];

/// Judges validation evidence: a finished run, not older than `max_age_ms`, that
/// started after `started_after_ms` when given, whose verdict says the rows are equal.
/// A mismatch is refused with the differing keys of every table.
pub fn judge_validation(
    gate: Gate,
    named: Option<&str>,
    evidence: Option<&ValidationEvidence>,
    now_ms: u64,
    max_age_ms: u64,
    started_after_ms: Option<u64>,
) -> GateResult {
    let Some(run_id) = named else {
        return GateResult::fail(
            gate,
            "no validation run named: advance needs \"validation_run\": \"<run-id>\" from a data-validator run",
            Value::Null,
        );
    };
    let Some(ev) = evidence else {
        return GateResult::fail(
            gate,
            format!("validation run {run_id} does not exist in the state table"),
            serde_json::json!({ "run_id": run_id }),
        );
    };
    let run = &ev.run;
    let base = serde_json::json!({
        "run_id": run.run_id, "verdict": run.verdict,
        "started_at_ms": run.started_at_ms, "finished_at_ms": run.finished_at_ms,
        "tables": ev.tables.len(),
    });
    let Some(finished) = run.finished_at_ms else {
        return GateResult::fail(
            gate,
            format!("validation run {run_id} has not finished"),
            base,
        );
    };
    if let Some(after) = started_after_ms {
        if run.started_at_ms < after {
            return GateResult::fail(
                gate,
                format!(
                    "validation run {run_id} started {} ms before the freeze; the final validation must read the frozen source",
                    after - run.started_at_ms
                ),
                base,
            );
        }
    }
    let age = now_ms.saturating_sub(finished);
    if age > max_age_ms {
        return GateResult::fail(
            gate,
            format!("validation run {run_id} finished {age} ms ago, more than the {max_age_ms} ms a run stays evidence"),
            base,
        );
    }
    if !ACCEPTED.contains(&run.verdict.as_str()) {
        let differing: Vec<String> = ev
            .tables
            .iter()
            .filter(|t| !ACCEPTED.contains(&t.verdict.as_str()))
            .map(|t| {
                let keys = if t.first_keys.is_empty() {
                    String::new()
                } else {
                    format!(" keys {}", t.first_keys.join(", "))
                };
                format!(
                    "{} {} ({} missing, {} extra, {} different{keys})",
                    t.name(),
                    t.verdict,
                    t.missing_in_target,
                    t.extra_in_target,
                    t.different
                )
            })
            .collect();
        let mut evidence = base;
        evidence["differing"] = serde_json::json!(differing);
        return GateResult::fail(
            gate,
            format!(
                "validation run {run_id} says {}: {}",
                run.verdict,
                if differing.is_empty() {
                    "no table detail".to_string()
                } else {
                    differing.join("; ")
                }
            ),
            evidence,
        );
    }
    GateResult::pass(
        gate,
        format!(
            "validation run {run_id}: {} over {} tables, finished {age} ms ago",
            run.verdict,
            ev.tables.len()
        ),
        base,
    )
}

/// The tables a final validation must cover: those whose change counter at the freeze
/// differs from the one the last passing validation recorded before it read them, or
/// that it did not cover, or whose counter is unknown. Sorted.
pub fn changed_since(
    validated: Option<&ValidationEvidence>,
    at_freeze: &std::collections::BTreeMap<String, i64>,
) -> Vec<String> {
    at_freeze
        .iter()
        .filter(|(table, now)| {
            let before = validated.and_then(|v| {
                v.tables
                    .iter()
                    .find(|t| t.name() == **table && ACCEPTED.contains(&t.verdict.as_str()))
                    .and_then(|t| t.source_changes)
            });
            before != Some(**now)
        })
        .map(|(table, _)| table.clone())
        .collect()
}

/// The final validation: nothing to re-validate (counts carry it), or a run started
/// after the freeze that says MATCH and covers every table in `revalidate`.
#[allow(clippy::too_many_arguments)]
pub fn judge_final_validation(
    named: Option<&str>,
    evidence: Option<&ValidationEvidence>,
    revalidate: &[String],
    now_ms: u64,
    max_age_ms: u64,
    frozen_at_ms: u64,
) -> GateResult {
    let gate = Gate::ValidationAfterFreeze;
    if revalidate.is_empty() {
        return GateResult::pass(
            gate,
            "no table changed since the last passing validation read it (change counters at the freeze); the counts carry the rest",
            serde_json::json!({ "revalidate": [] }),
        );
    }
    let mut result = judge_validation(
        gate,
        named,
        evidence,
        now_ms,
        max_age_ms,
        Some(frozen_at_ms),
    );
    result.evidence["revalidate"] = serde_json::json!(revalidate);
    if !result.passed {
        result.detail = format!(
            "{} (to re-validate: {})",
            result.detail,
            revalidate.join(", ")
        );
        return result;
    }
    let covered: Vec<String> = evidence
        .map(|e| e.tables.iter().map(TableEvidence::name).collect())
        .unwrap_or_default();
    let missing: Vec<&String> = revalidate.iter().filter(|t| !covered.contains(t)).collect();
    if !missing.is_empty() {
        return GateResult::fail(
            gate,
            format!(
                "validation run {} does not cover {}, which changed since the last validation",
                named.unwrap_or("?"),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            result.evidence,
        );
    }
    result.detail = format!(
        "{}; it covers the {} tables that changed since the last validation",
        result.detail,
        revalidate.len()
    );
    result
}

/// Row counts of every replicated table on both sides.
pub fn judge_counts(counts: &[(String, i64, i64)]) -> GateResult {
    let differing: Vec<String> = counts
        .iter()
        .filter(|(_, s, t)| s != t)
        .map(|(name, s, t)| format!("{name}: source {s}, target {t}"))
        .collect();
    let evidence = serde_json::json!(counts
        .iter()
        .map(|(n, s, t)| serde_json::json!({"table": n, "source": s, "target": t}))
        .collect::<Vec<_>>());
    if counts.is_empty() {
        GateResult::fail(Gate::Counts, "no replicated tables to count", evidence)
    } else if differing.is_empty() {
        let rows: i64 = counts.iter().map(|(_, s, _)| s).sum();
        GateResult::pass(
            Gate::Counts,
            format!(
                "{} tables, {rows} rows, the same count on both sides",
                counts.len()
            ),
            evidence,
        )
    } else {
        GateResult::fail(
            Gate::Counts,
            format!("row counts differ: {}", differing.join("; ")),
            evidence,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(verdict: &str, started: u64, finished: Option<u64>) -> ValidationEvidence {
        ValidationEvidence {
            run: RunEvidence {
                run_id: "r1".into(),
                verdict: verdict.into(),
                started_at_ms: started,
                finished_at_ms: finished,
            },
            tables: vec![TableEvidence {
                table: serde_json::json!({"schema": "app", "table": "customers"}),
                verdict: verdict.into(),
                missing_in_target: 0,
                extra_in_target: 0,
                different: u64::from(verdict == "MISMATCH") * 2,
                first_keys: if verdict == "MISMATCH" {
                    vec!["(7)".into(), "(42)".into()]
                } else {
                    vec![]
                },
                source_changes: Some(10),
            }],
        }
    }

    #[test]
    fn a_recent_match_passes() {
        let ev = evidence("MATCH", 1_000, Some(2_000));
        let r = judge_validation(Gate::Validation, Some("r1"), Some(&ev), 3_000, 60_000, None);
        assert!(r.passed, "{r:?}");
    }

    #[test]
    fn a_mismatch_is_refused_with_the_differing_keys() {
        let ev = evidence("MISMATCH", 1_000, Some(2_000));
        let r = judge_validation(Gate::Validation, Some("r1"), Some(&ev), 3_000, 60_000, None);
        assert!(!r.passed);
        assert!(r.detail.contains("app.customers MISMATCH"), "{}", r.detail);
        assert!(r.detail.contains("keys (7), (42)"), "{}", r.detail);
    }

    #[test]
    fn stale_unfinished_missing_or_unnamed_runs_are_no_evidence() {
        let old = evidence("MATCH", 1_000, Some(2_000));
        let r = judge_validation(
            Gate::Validation,
            Some("r1"),
            Some(&old),
            900_000,
            60_000,
            None,
        );
        assert!(!r.passed && r.detail.contains("ms ago"), "{}", r.detail);
        let running = evidence("INCOMPLETE", 1_000, None);
        let r = judge_validation(
            Gate::Validation,
            Some("r1"),
            Some(&running),
            3_000,
            60_000,
            None,
        );
        assert!(!r.passed && r.detail.contains("has not finished"));
        let r = judge_validation(Gate::Validation, Some("r9"), None, 3_000, 60_000, None);
        assert!(!r.passed && r.detail.contains("r9 does not exist"));
        let r = judge_validation(Gate::Validation, None, None, 3_000, 60_000, None);
        assert!(!r.passed && r.detail.contains("validation_run"));
    }

    #[test]
    fn the_final_validation_must_start_after_the_freeze() {
        let ev = evidence("MATCH", 1_000, Some(2_000));
        let r = judge_validation(
            Gate::ValidationAfterFreeze,
            Some("r1"),
            Some(&ev),
            3_000,
            60_000,
            Some(1_500),
        );
        assert!(
            !r.passed && r.detail.contains("before the freeze"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn only_tables_whose_counter_moved_or_is_unknown_are_revalidated() {
        let ev = evidence("MATCH", 1_000, Some(2_000));
        let mut at_freeze = std::collections::BTreeMap::new();
        at_freeze.insert("app.customers".to_string(), 10);
        assert!(changed_since(Some(&ev), &at_freeze).is_empty());
        at_freeze.insert("app.customers".to_string(), 11);
        at_freeze.insert("app.orders".to_string(), 0);
        assert_eq!(
            changed_since(Some(&ev), &at_freeze),
            ["app.customers", "app.orders"]
        );
        assert_eq!(changed_since(None, &at_freeze).len(), 2);
        let mismatch = evidence("MISMATCH", 1_000, Some(2_000));
        at_freeze.insert("app.customers".to_string(), 10);
        assert!(changed_since(Some(&mismatch), &at_freeze).contains(&"app.customers".to_string()));
    }

    #[test]
    fn the_final_validation_must_cover_what_changed() {
        let ev = evidence("MATCH", 5_000, Some(6_000));
        let none = judge_final_validation(None, None, &[], 7_000, 60_000, 4_000);
        assert!(none.passed, "{}", none.detail);
        let ok = judge_final_validation(
            Some("r1"),
            Some(&ev),
            &["app.customers".into()],
            7_000,
            60_000,
            4_000,
        );
        assert!(ok.passed, "{}", ok.detail);
        let short = judge_final_validation(
            Some("r1"),
            Some(&ev),
            &["app.orders".into()],
            7_000,
            60_000,
            4_000,
        );
        assert!(
            !short.passed && short.detail.contains("does not cover app.orders"),
            "{}",
            short.detail
        );
        let early = judge_final_validation(
            Some("r1"),
            Some(&ev),
            &["app.customers".into()],
            7_000,
            60_000,
            5_500,
        );
        assert!(
            !early.passed && early.detail.contains("to re-validate: app.customers"),
            "{}",
            early.detail
        );
    }

    #[test]
    fn counts_must_agree_table_by_table() {
        let ok = judge_counts(&[("app.a".into(), 3, 3), ("app.b".into(), 0, 0)]);
        assert!(ok.passed, "{}", ok.detail);
        let bad = judge_counts(&[("app.a".into(), 3, 2)]);
        assert!(!bad.passed && bad.detail.contains("app.a: source 3, target 2"));
        assert!(!judge_counts(&[]).passed);
    }
}
