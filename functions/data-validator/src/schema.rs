//! Table descriptions on each side and what their comparison finds.

use serde::{Deserialize, Serialize};

use crate::canonical::{Category, Dialect};
use crate::ident::TableRef;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub category: Category,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Whose catalog this is: type names are graded in their own dialect.
    pub dialect: Dialect,
    pub columns: Vec<Column>,
    /// Primary-key column names in key order; empty when the table has none.
    pub key: Vec<String>,
}

/// One column compared on both sides, with the encoding both use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnPair {
    pub source: String,
    pub target: String,
    pub source_type: String,
    pub target_type: String,
    pub category: Category,
    pub source_own: Category,
    pub target_own: Category,
}

/// How a table is compared, derived from both schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    /// The table as the source names it.
    pub table: TableRef,
    /// The table as the target names it, when that differs (Oracle's `APP.ORDERS`
    /// is PostgreSQL's `app.orders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_table: Option<TableRef>,
    pub columns: Vec<ColumnPair>,
    /// Indices into `columns` of the key, in key order; empty = compared as a multiset.
    pub key: Vec<usize>,
    /// The leading key column is an integer, so ranges are split arithmetically.
    pub integer_lead: bool,
}

impl TablePlan {
    pub fn is_multiset(&self) -> bool {
        self.key.is_empty()
    }

    pub fn lead(&self) -> Option<&ColumnPair> {
        self.key.first().map(|i| &self.columns[*i])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `error` findings make the table a MISMATCH; `warning` and `info` ones are
    /// reported (the verdict is then MATCH_WITH_FINDINGS, not a bare MATCH).
    pub severity: String,
    pub message: String,
    /// For a change of declared type: how the target's type relates to the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<TypeGrade>,
}

impl Finding {
    fn error(message: String) -> Self {
        Finding {
            severity: "error".into(),
            message,
            grade: None,
        }
    }
    fn warning(message: String) -> Self {
        Finding {
            severity: "warning".into(),
            message,
            grade: None,
        }
    }
}

/// How a column's declared type changed from the source to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeGrade {
    /// Every value the source type can hold, the target type holds unchanged
    /// (`integer` → `bigint`, `numeric(10)` → `numeric(12,2)`, `varchar(10)` → `text`).
    Widening,
    /// Some values of the source type do not fit, or lose precision or padding.
    Narrowing,
    /// Another type of the same family (compared in its canonical form), or a
    /// cross-dialect pair whose sizes the catalogs do not tell apart.
    Changed,
}

/// A declared type split into its base name and its numeric parameters:
/// `numeric(12,2)` → ("numeric", [12, 2]); `character varying(80)` → ("character varying", [80]).
fn parse_type(data_type: &str) -> (String, Vec<i64>) {
    let t = data_type.trim().to_ascii_lowercase();
    let Some(open) = t.find('(') else {
        return (t, Vec::new());
    };
    let close = t[open..].find(')').map_or(t.len(), |c| open + c);
    let params = t[open + 1..close]
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    // `timestamp(3) with time zone`: the words after the parameters belong to the name.
    let name = format!(
        "{} {}",
        t[..open].trim(),
        t[(close + 1).min(t.len())..].trim()
    );
    (name.trim().to_string(), params)
}

/// Decimal digits an integer type holds in full (the widest count where every value fits).
fn integer_digits(base: &str) -> Option<i64> {
    match base {
        "smallint" | "int2" => Some(4),
        "integer" | "int" | "int4" => Some(9),
        "bigint" | "int8" => Some(18),
        _ => None,
    }
}

/// Grades a change of declared type. `None` when the declared types are the same.
/// Between dialects (Oracle `NUMBER` vs PostgreSQL `bigint`) the names always differ
/// and the catalog query reads no sizes, so the change is graded by category.
pub fn grade_type_change(
    dialects: (Dialect, Dialect),
    source: &Column,
    target: &Column,
) -> Option<TypeGrade> {
    if dialects.0 != dialects.1 {
        use Category::*;
        return match (source.category, target.category) {
            (a, b) if a == b => None,
            (Integer, Decimal) | (Date, Timestamp) | (Text | FixedChar, LargeText) => {
                Some(TypeGrade::Widening)
            }
            (Decimal, Integer) | (Timestamp, Date) | (LargeText, Text | FixedChar) => {
                Some(TypeGrade::Narrowing)
            }
            _ => Some(TypeGrade::Changed),
        };
    }
    let (sb, sp) = parse_type(&source.data_type);
    let (tb, tp) = parse_type(&target.data_type);
    if sb == tb && sp == tp {
        return None;
    }
    let widening = |ok: bool| {
        Some(if ok {
            TypeGrade::Widening
        } else {
            TypeGrade::Narrowing
        })
    };
    // Integer digits (precision - scale) and scale of a number type; None = unbounded.
    let number = |base: &str, params: &[i64]| -> Option<(Option<i64>, Option<i64>)> {
        if let Some(d) = integer_digits(base) {
            return Some((Some(d), Some(0)));
        }
        match (base, params) {
            ("numeric" | "decimal", []) => Some((None, None)),
            ("numeric" | "decimal", [p]) => Some((Some(*p), Some(0))),
            ("numeric" | "decimal", [p, s, ..]) => Some((Some(p - s), Some(*s))),
            _ => None,
        }
    };
    let fits = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
    };
    if let (Some((si, ss)), Some((ti, ts))) = (number(&sb, &sp), number(&tb, &tp)) {
        // An integer type holds fewer digits than its width suggests (int4: 9 in full,
        // up to 2147483647), so integer → integer is graded by width alone.
        if let (Some(a), Some(b)) = (integer_digits(&sb), integer_digits(&tb)) {
            return widening(a <= b);
        }
        return widening(fits(si, ti) && fits(ss, ts));
    }
    let text_length = |base: &str, params: &[i64]| -> Option<Option<i64>> {
        match base {
            "text" | "citext" => Some(None),
            "character varying" | "varchar" => Some(params.first().copied()),
            _ => None,
        }
    };
    if let (Some(sl), Some(tl)) = (text_length(&sb, &sp), text_length(&tb, &tp)) {
        return widening(fits(sl, tl));
    }
    let padded = |base: &str| matches!(base, "character" | "char" | "bpchar");
    if padded(&sb) || padded(&tb) {
        // CHAR pads with blanks: a varchar with trailing blanks loses them in a CHAR.
        let sl = sp.first().copied().or(Some(1));
        return match text_length(&tb, &tp) {
            Some(tl) if padded(&sb) => widening(fits(sl, tl)),
            _ => Some(TypeGrade::Narrowing),
        };
    }
    match (sb.as_str(), tb.as_str()) {
        ("real" | "float4", "double precision" | "float8") => widening(true),
        ("double precision" | "float8", "real" | "float4") => widening(false),
        ("date", t) if t.starts_with("timestamp without") || t == "timestamp" => widening(true),
        (s, "date") if s.starts_with("timestamp without") || s == "timestamp" => widening(false),
        (s, t) if s.starts_with("timestamp") && t.starts_with("timestamp") => {
            // Fractional-second precision: timestamp(3) → timestamp (6) widens.
            widening(sp.first().copied().unwrap_or(6) <= tp.first().copied().unwrap_or(6))
        }
        _ => Some(TypeGrade::Changed),
    }
}

/// Compares the two descriptions. Columns are matched by name, ignoring case
/// (Oracle folds to upper case, PostgreSQL to lower). Returns the plan for the
/// columns that can be compared and every finding.
pub fn compare(
    table: &TableRef,
    source: &TableSchema,
    target: &TableSchema,
) -> (TablePlan, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut columns = Vec::new();
    for s in &source.columns {
        let Some(t) = target
            .columns
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&s.name))
        else {
            findings.push(Finding::error(format!(
                "column {} is missing on the target",
                s.name
            )));
            continue;
        };
        if !s.category.comparable(t.category) {
            findings.push(Finding::error(format!(
                "column {}: source type {} and target type {} cannot hold the same values",
                s.name, s.data_type, t.data_type
            )));
            continue;
        }
        if s.category == Category::Other || t.category == Category::Other {
            findings.push(Finding::warning(format!(
                "column {}: type {} / {} is compared by its text form",
                s.name, s.data_type, t.data_type
            )));
        }
        if let Some(grade) = grade_type_change((source.dialect, target.dialect), s, t) {
            let (severity, meaning) = match grade {
                TypeGrade::Widening => ("info", "a compatible widening"),
                TypeGrade::Narrowing => ("warning", "a narrowing: some source values may not fit"),
                TypeGrade::Changed => ("warning", "a change of type, compared in canonical form"),
            };
            findings.push(Finding {
                severity: severity.into(),
                message: format!(
                    "column {}: type {} on the source, {} on the target ({meaning})",
                    s.name, s.data_type, t.data_type
                ),
                grade: Some(grade),
            });
        }
        if s.nullable != t.nullable {
            findings.push(Finding::warning(format!(
                "column {}: nullable on the {} only",
                s.name,
                if s.nullable { "source" } else { "target" }
            )));
        }
        columns.push(ColumnPair {
            source: s.name.clone(),
            target: t.name.clone(),
            source_type: s.data_type.clone(),
            target_type: t.data_type.clone(),
            category: s.category.common(t.category),
            source_own: s.category,
            target_own: t.category,
        });
    }
    for t in &target.columns {
        if !source
            .columns
            .iter()
            .any(|s| s.name.eq_ignore_ascii_case(&t.name))
        {
            findings.push(Finding::error(format!(
                "column {} exists on the target only",
                t.name
            )));
        }
    }
    let same_key = source.key.len() == target.key.len()
        && source
            .key
            .iter()
            .zip(&target.key)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !same_key {
        findings.push(Finding::error(format!(
            "primary keys differ: source ({}) vs target ({})",
            source.key.join(", "),
            target.key.join(", ")
        )));
    }
    // Compare by the source's key when every key column is comparable; else as a multiset.
    let key: Vec<usize> = source
        .key
        .iter()
        .filter_map(|k| {
            columns
                .iter()
                .position(|c| c.source.eq_ignore_ascii_case(k))
        })
        .collect();
    let key = if key.len() == source.key.len() {
        key
    } else {
        Vec::new()
    };
    let integer_lead = key.first().is_some_and(|i| {
        columns[*i].source_own == Category::Integer && columns[*i].target_own == Category::Integer
    });
    (
        TablePlan {
            table: table.clone(),
            target_table: None,
            columns,
            key,
            integer_lead,
        },
        findings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, category: Category, nullable: bool) -> Column {
        Column {
            name: name.into(),
            data_type: format!("{category:?}"),
            category,
            nullable,
        }
    }

    #[test]
    fn identical_schemas_have_no_findings() {
        let s = TableSchema {
            dialect: Dialect::Postgres,
            columns: vec![
                col("id", Category::Integer, false),
                col("total", Category::Decimal, true),
            ],
            key: vec!["id".into()],
        };
        let (plan, findings) = compare(&TableRef::new("app", "orders"), &s, &s);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(plan.key, vec![0]);
        assert!(plan.integer_lead);
        assert_eq!(plan.columns.len(), 2);
    }

    #[test]
    fn oracle_upper_case_names_match_and_number_meets_bigint() {
        let source = TableSchema {
            dialect: Dialect::Oracle,
            columns: vec![
                col("ID", Category::Integer, false),
                col("AMOUNT", Category::Decimal, true),
            ],
            key: vec!["ID".into()],
        };
        let target = TableSchema {
            dialect: Dialect::Postgres,
            columns: vec![
                col("id", Category::Integer, false),
                col("amount", Category::Decimal, true),
            ],
            key: vec!["id".into()],
        };
        let (plan, findings) = compare(&TableRef::new("app", "t"), &source, &target);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(plan.columns[0].target, "id");
    }

    #[test]
    fn missing_extra_and_incompatible_columns_are_findings() {
        let source = TableSchema {
            dialect: Dialect::Postgres,
            columns: vec![
                col("id", Category::Integer, false),
                col("gone", Category::Text, true),
                col("amount", Category::Decimal, true),
            ],
            key: vec!["id".into()],
        };
        let target = TableSchema {
            dialect: Dialect::Postgres,
            columns: vec![
                col("id", Category::Integer, false),
                col("amount", Category::Text, false),
                col("added", Category::Text, true),
            ],
            key: vec!["id".into()],
        };
        let (plan, findings) = compare(&TableRef::new("app", "t"), &source, &target);
        let text: Vec<_> = findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            text.iter()
                .any(|m| m.contains("gone is missing on the target")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|m| m.contains("amount: source type")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|m| m.contains("added exists on the target only")),
            "{text:?}"
        );
        assert_eq!(plan.columns.len(), 1);
    }

    #[test]
    fn tables_without_a_key_are_multisets_and_key_changes_are_found() {
        let source = TableSchema {
            dialect: Dialect::Postgres,
            columns: vec![col("a", Category::Text, true)],
            key: vec![],
        };
        let (plan, findings) = compare(&TableRef::new("app", "audit_log"), &source, &source);
        assert!(plan.is_multiset());
        assert!(findings.is_empty());
        let keyed = TableSchema {
            dialect: Dialect::Postgres,
            key: vec!["a".into()],
            ..source.clone()
        };
        let (_, findings) = compare(&TableRef::new("app", "t"), &keyed, &source);
        assert!(findings[0].message.contains("primary keys differ"));
    }

    fn typed(name: &str, data_type: &str) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            category: crate::canonical::classify_postgres(data_type),
            nullable: true,
        }
    }

    #[test]
    fn every_change_of_declared_type_is_graded() {
        let pg = (Dialect::Postgres, Dialect::Postgres);
        let grade = |a: &str, b: &str| grade_type_change(pg, &typed("c", a), &typed("c", b));
        use TypeGrade::*;
        for (from, to, expected) in [
            ("integer", "bigint", Some(Widening)),
            ("bigint", "integer", Some(Narrowing)),
            ("integer", "integer", None),
            ("numeric(10,0)", "numeric(12,2)", Some(Widening)),
            ("numeric(12,2)", "numeric(10,0)", Some(Narrowing)),
            ("numeric(12,2)", "numeric(12,4)", Some(Narrowing)),
            ("numeric(12,2)", "numeric", Some(Widening)),
            ("numeric", "numeric(12,2)", Some(Narrowing)),
            ("integer", "numeric(10,0)", Some(Widening)),
            ("bigint", "numeric(12,0)", Some(Narrowing)),
            ("character varying(10)", "text", Some(Widening)),
            (
                "character varying(10)",
                "character varying(20)",
                Some(Widening),
            ),
            (
                "character varying(20)",
                "character varying(10)",
                Some(Narrowing),
            ),
            ("text", "character varying(10)", Some(Narrowing)),
            ("character(12)", "character varying(12)", Some(Widening)),
            ("character varying(12)", "character(12)", Some(Narrowing)),
            ("real", "double precision", Some(Widening)),
            ("date", "timestamp without time zone", Some(Widening)),
            (
                "timestamp(3) without time zone",
                "timestamp without time zone",
                Some(Widening),
            ),
            (
                "timestamp without time zone",
                "timestamp(3) without time zone",
                Some(Narrowing),
            ),
            ("json", "jsonb", Some(Changed)),
        ] {
            assert_eq!(grade(from, to), expected, "{from} -> {to}");
        }
    }

    #[test]
    fn type_changes_are_findings_and_an_oracle_mapping_is_not() {
        let schema = |dialect, cols: Vec<Column>| TableSchema {
            dialect,
            columns: cols,
            key: vec!["id".into()],
        };
        let source = schema(
            Dialect::Postgres,
            vec![typed("id", "integer"), typed("amount", "numeric(12,2)")],
        );
        let target = schema(
            Dialect::Postgres,
            vec![typed("id", "bigint"), typed("amount", "numeric(10,2)")],
        );
        let (_, findings) = compare(&TableRef::new("app", "t"), &source, &target);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(findings[0].grade, Some(TypeGrade::Widening));
        assert_eq!(findings[0].severity, "info");
        assert!(findings[0]
            .message
            .contains("integer on the source, bigint on the target"));
        assert_eq!(findings[1].grade, Some(TypeGrade::Narrowing));
        assert_eq!(findings[1].severity, "warning");
        // Oracle NUMBER(…,0) to bigint is the mapping, not a change.
        let oracle = schema(
            Dialect::Oracle,
            vec![
                Column {
                    name: "ID".into(),
                    data_type: "NUMBER".into(),
                    category: Category::Integer,
                    nullable: true,
                },
                Column {
                    name: "AMOUNT".into(),
                    data_type: "NUMBER".into(),
                    category: Category::Integer,
                    nullable: true,
                },
            ],
        );
        let (_, findings) = compare(&TableRef::new("APP", "T"), &oracle, &target);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            findings[0].grade,
            Some(TypeGrade::Widening),
            "NUMBER(p,0) -> numeric(10,2)"
        );
    }
}
