//! Table descriptions on each side and what their comparison finds.

use serde::{Deserialize, Serialize};

use crate::canonical::Category;
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
    pub table: TableRef,
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
    /// `error` findings make the table a MISMATCH; `warning` ones are reported only.
    pub severity: String,
    pub message: String,
}

impl Finding {
    fn error(message: String) -> Self {
        Finding {
            severity: "error".into(),
            message,
        }
    }
    fn warning(message: String) -> Self {
        Finding {
            severity: "warning".into(),
            message,
        }
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
            columns: vec![
                col("ID", Category::Integer, false),
                col("AMOUNT", Category::Decimal, true),
            ],
            key: vec!["ID".into()],
        };
        let target = TableSchema {
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
            columns: vec![
                col("id", Category::Integer, false),
                col("gone", Category::Text, true),
                col("amount", Category::Decimal, true),
            ],
            key: vec!["id".into()],
        };
        let target = TableSchema {
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
            columns: vec![col("a", Category::Text, true)],
            key: vec![],
        };
        let (plan, findings) = compare(&TableRef::new("app", "audit_log"), &source, &source);
        assert!(plan.is_multiset());
        assert!(findings.is_empty());
        let keyed = TableSchema {
            key: vec!["a".into()],
            ..source.clone()
        };
        let (_, findings) = compare(&TableRef::new("app", "t"), &keyed, &source);
        assert!(findings[0].message.contains("primary keys differ"));
    }
}
