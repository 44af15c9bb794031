//! The queries each side runs, written for its dialect. Every query returns
//! text columns only, so one small row type serves both drivers; every
//! identifier is quoted and every value is a bind parameter.

use crate::canonical::{column_expr, row_hash_expr, row_text_expr, Category, Dialect, EmptyText};
use crate::ident::{quote, TableRef};
use crate::schema::TablePlan;
use crate::stream::{KeyOrder, Wire};

/// Which side of the comparison a query is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

/// A half-open range `[lo, hi)` of the leading key column; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyRange {
    pub lo: Option<String>,
    pub hi: Option<String>,
}

/// A query and its parameters (all text).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub sql: String,
    pub params: Vec<String>,
}

/// One side's view of a table plan: names, types and expressions in its dialect.
#[derive(Debug, Clone)]
pub struct SideSql {
    pub dialect: Dialect,
    pub from: String,
    pub lead: Option<(String, String)>,
    pub lead_category: Option<Category>,
    pub canonical: Vec<String>,
    pub display: Vec<String>,
    pub key_canonical: Vec<String>,
    pub key_display: Vec<String>,
    pub row_hash: String,
    /// PostgreSQL: each column's form in a binary COPY, and its expression.
    pub wires: Vec<(Wire, String)>,
    /// PostgreSQL: how the rows stream in key order; `None` when a key column has
    /// no order this program can follow byte for byte (jsonb).
    pub keyed: Option<KeyedScan>,
}

/// A key-ordered COPY's key fields: what each key column is sent as, what the
/// rows are ordered by (the column itself where it can, so its index serves), and
/// how the sent value sorts in bytes; and the lead's boundary text when it cannot
/// be made from its order field.
#[derive(Debug, Clone)]
pub struct KeyedScan {
    pub selects: Vec<String>,
    pub order_by: Vec<String>,
    pub orders: Vec<KeyOrder>,
    pub lead_text: Option<String>,
}

impl SideSql {
    /// `empty`: what `''` is for the pair of dialects compared ([`EmptyText::for_pair`]).
    pub fn new(dialect: Dialect, plan: &TablePlan, role: Role, empty: EmptyText) -> Self {
        let name = |c: &crate::schema::ColumnPair| match role {
            Role::Source => (c.source.clone(), c.source_type.clone(), c.source_own),
            Role::Target => (c.target.clone(), c.target_type.clone(), c.target_own),
        };
        let canonical: Vec<String> = plan
            .columns
            .iter()
            .map(|c| {
                let (n, _, own) = name(c);
                column_expr(dialect, &n, c.category, own, empty)
            })
            .collect();
        let display: Vec<String> = plan
            .columns
            .iter()
            .map(|c| {
                let (n, _, own) = name(c);
                display_expr(dialect, &n, own)
            })
            .collect();
        let key_canonical = plan.key.iter().map(|i| canonical[*i].clone()).collect();
        let key_display = plan.key.iter().map(|i| display[*i].clone()).collect();
        let lead = plan.lead().map(|c| {
            let (n, t, _) = name(c);
            lead_order(dialect, &quote(&n), &t, c.category)
        });
        let row_hash = row_hash_expr(dialect, &row_text_expr(dialect, &canonical));
        let wires = plan
            .columns
            .iter()
            .zip(&canonical)
            .map(|(c, sql)| Wire::for_column(&quote(&name(c).0), c.category, sql, empty))
            .collect();
        let table = match role {
            Role::Source => &plan.table,
            Role::Target => plan.target_table.as_ref().unwrap_or(&plan.table),
        };
        let keyed = (dialect == Dialect::Postgres && !plan.key.is_empty())
            .then(|| {
                let mut scan = KeyedScan {
                    selects: Vec::new(),
                    order_by: Vec::new(),
                    orders: Vec::new(),
                    lead_text: None,
                };
                for i in &plan.key {
                    let c = &plan.columns[*i];
                    let q = quote(&name(c).0);
                    let (select, order_by, order) = key_order_expr(&q, c.category)?;
                    scan.selects.push(select);
                    scan.order_by.push(order_by);
                    scan.orders.push(order);
                }
                Some(scan)
            })
            .flatten();
        SideSql {
            dialect,
            from: table.quoted(),
            lead,
            lead_category: plan.lead().map(|c| c.category),
            canonical,
            display,
            key_canonical,
            key_display,
            row_hash,
            wires,
            keyed: None,
        }
        .with_keyed(keyed)
    }

    fn with_keyed(mut self, keyed: Option<KeyedScan>) -> Self {
        self.keyed = keyed.map(|mut k| {
            if !k.orders[0].gives_lead_text() {
                let (lead, _) = self.lead.clone().unwrap_or_default();
                k.lead_text = Some(self.boundary_text(&lead));
            }
            k
        });
        self
    }

    /// PostgreSQL: the rows of a range in key order for [`crate::stream::KeyedParser`]:
    /// a binary COPY of each key column's order field, the lead's boundary text
    /// when needed, then each column in its wire form; `None` without a key order.
    pub fn keyed_copy(&self, range: &KeyRange) -> Option<String> {
        let keyed = self.keyed.as_ref()?;
        let predicate = self.range_predicate_literal(range);
        let mut select = keyed.selects.clone();
        select.extend(keyed.lead_text.iter().cloned());
        select.extend(self.wires.iter().map(|(_, e)| e.clone()));
        Some(format!(
            "COPY (SELECT {} FROM {} WHERE {predicate} ORDER BY {}) TO STDOUT (FORMAT binary)",
            select.join(", "),
            self.from,
            keyed.order_by.join(", ")
        ))
    }

    /// The plain SELECT of [`Self::keyed_copy`], for `EXPLAIN`.
    pub fn keyed_select(&self, range: &KeyRange) -> Option<String> {
        let copy = self.keyed_copy(range)?;
        let inner = copy.strip_prefix("COPY (")?;
        Some(
            inner
                .strip_suffix(") TO STDOUT (FORMAT binary)")?
                .to_string(),
        )
    }

    /// The rows whose leading key is one of `leads` (boundary texts), as [`Self::rows`]
    /// returns them: where a key-ordered comparison found its first differences,
    /// read again for their columns and values. The values go in as one literal.
    pub fn rows_with_leads(&self, leads: &[String]) -> Query {
        let (lead, ty) = self.lead.clone().unwrap_or_default();
        let key_display = self.key_display.join(" || ',' || ");
        let mut select = vec![self.key_canonical.join(" || ',' || "), key_display];
        select.extend(self.canonical.iter().cloned());
        select.extend(self.display.iter().cloned());
        Query {
            sql: format!(
                "SELECT {} FROM {} WHERE {lead} = ANY({}::{ty}[])",
                select.join(", "),
                self.from,
                string_literal(&array_literal(leads))
            ),
            params: Vec::new(),
        }
    }

    fn placeholder(&self, params: &[String]) -> String {
        match self.dialect {
            Dialect::Postgres => format!("${}", params.len()),
            Dialect::Oracle => format!(":{}", params.len()),
        }
    }

    /// A bind parameter converted to the lead column's type.
    fn lead_value(&self, params: &mut Vec<String>, value: &str) -> String {
        params.push(value.to_string());
        let p = self.placeholder(params);
        let (_, ty) = self
            .lead
            .as_ref()
            .expect("ranges exist only for keyed tables");
        match self.dialect {
            Dialect::Postgres => format!("({p}::text)::{ty}"),
            // Explicit formats: the session's NLS formats are not the boundaries' format.
            Dialect::Oracle => match self.lead_category {
                Some(Category::Integer | Category::Decimal) => format!("TO_NUMBER({p})"),
                Some(Category::Date | Category::Timestamp) => {
                    format!("TO_TIMESTAMP({p}, '{ORACLE_TIMESTAMP}')")
                }
                Some(Category::TimestampTz) => {
                    format!("TO_TIMESTAMP_TZ({p}, '{ORACLE_TIMESTAMP} TZH:TZM')")
                }
                _ => p,
            },
        }
    }

    /// A leading-key value as boundary text both dialects read back the same
    /// way whatever their session settings (DateStyle, TimeZone, NLS formats).
    fn boundary_text(&self, expr: &str) -> String {
        match (self.dialect, self.lead_category) {
            (Dialect::Postgres, Some(Category::Date | Category::Timestamp)) => {
                format!("to_char(({expr})::timestamp, 'YYYY-MM-DD HH24:MI:SS.US')")
            }
            (Dialect::Postgres, Some(Category::TimestampTz)) => format!(
                "to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || ' +00:00'"
            ),
            (Dialect::Postgres, _) => format!("({expr})::text"),
            (Dialect::Oracle, Some(Category::Date | Category::Timestamp)) => {
                format!("TO_CHAR(CAST({expr} AS TIMESTAMP), '{ORACLE_TIMESTAMP}')")
            }
            (Dialect::Oracle, Some(Category::TimestampTz)) => {
                format!("TO_CHAR(SYS_EXTRACT_UTC({expr}), '{ORACLE_TIMESTAMP}') || ' +00:00'")
            }
            (Dialect::Oracle, _) => format!("TO_CHAR({expr})"),
        }
    }

    fn range_predicate(&self, range: &KeyRange, params: &mut Vec<String>) -> String {
        self.range_predicate_with(range, |value| self.lead_value(params, value))
    }

    /// The same predicate with the bounds as literals (COPY takes no parameters).
    fn range_predicate_literal(&self, range: &KeyRange) -> String {
        let ty = self
            .lead
            .as_ref()
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        self.range_predicate_with(range, |value| format!("({})::{ty}", string_literal(value)))
    }

    fn range_predicate_with(
        &self,
        range: &KeyRange,
        mut value: impl FnMut(&str) -> String,
    ) -> String {
        let Some((lead, _)) = self.lead.clone() else {
            return "1 = 1".into();
        };
        let mut parts = Vec::new();
        if let Some(lo) = &range.lo {
            parts.push(format!("{lead} >= {}", value(lo)));
        }
        if let Some(hi) = &range.hi {
            parts.push(format!("{lead} < {}", value(hi)));
        }
        if parts.is_empty() {
            "1 = 1".into()
        } else {
            parts.join(" AND ")
        }
    }

    fn text(&self, expr: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("({expr})::text"),
            Dialect::Oracle => format!("TO_CHAR({expr})"),
        }
    }

    /// Smallest and largest leading-key value in a range.
    pub fn lead_bounds(&self, range: &KeyRange) -> Query {
        let mut params = Vec::new();
        let predicate = self.range_predicate(range, &mut params);
        let (lead, _) = self.lead.clone().unwrap_or_default();
        Query {
            sql: format!(
                "SELECT {}, {}, {} FROM {} WHERE {predicate}",
                self.text(&format!("min({lead})")),
                self.text(&format!("max({lead})")),
                self.text("count(*)"),
                self.from
            ),
            params,
        }
    }

    /// About `buckets` boundaries splitting a range into equal row counts: the
    /// smallest key of each of `buckets` equal groups, in key order — of the rows
    /// of a block sample of `sample` percent when given (no sort of every key).
    pub fn sample_boundaries(&self, range: &KeyRange, buckets: u32, sample: Option<f64>) -> Query {
        let mut params = Vec::new();
        let predicate = self.range_predicate(range, &mut params);
        let (lead, _) = self.lead.clone().unwrap_or_default();
        let sampled = match (sample, self.dialect) {
            (None, _) => String::new(),
            (Some(p), Dialect::Postgres) => format!(" TABLESAMPLE SYSTEM ({p:.4})"),
            (Some(p), Dialect::Oracle) => format!(" SAMPLE BLOCK ({p:.4})"),
        };
        let groups = format!(
            "SELECT {lead} AS b, NTILE({buckets}) OVER (ORDER BY {lead}) AS g FROM {}{sampled} WHERE {predicate}",
            self.from
        );
        let sql = match self.dialect {
            // min() does not exist for every type (uuid); DISTINCT ON takes the first of each group.
            Dialect::Postgres => format!(
                "SELECT {} FROM (SELECT DISTINCT ON (g) g, b FROM ({groups}) s ORDER BY g, b) f ORDER BY g",
                self.boundary_text("b")
            ),
            Dialect::Oracle => format!(
                "SELECT {} FROM ({groups}) s GROUP BY g ORDER BY g",
                self.boundary_text("min(b)")
            ),
        };
        Query { sql, params }
    }

    /// Count and hash sum per bucket of a range; bucket `j` holds the rows from
    /// boundary `j-1` (or the range start) up to boundary `j` (or the range end).
    pub fn bucket_hashes(&self, range: &KeyRange, boundaries: &[String]) -> Query {
        let mut params = Vec::new();
        let predicate = self.range_predicate(range, &mut params);
        let (lead, ty) = self.lead.clone().unwrap_or_default();
        let bucket = match self.dialect {
            Dialect::Postgres => {
                // The boundaries go in as a constant, not a parameter: PostgreSQL re-casts
                // a parameter `($n::text)::bigint[]` for every row (22 s instead of 0.25 s
                // for 1M rows and 1000 buckets, measured). They are values this program
                // read from the database, quoted as one string literal.
                format!(
                    "width_bucket({lead}, {}::{ty}[])",
                    string_literal(&array_literal(boundaries))
                )
            }
            Dialect::Oracle => {
                let mut case = String::from("CASE");
                for (j, b) in boundaries.iter().enumerate() {
                    let v = self.lead_value(&mut params, b);
                    case.push_str(&format!(" WHEN {lead} < {v} THEN {j}"));
                }
                case.push_str(&format!(" ELSE {} END", boundaries.len()));
                case
            }
        };
        Query {
            sql: format!(
                "SELECT {}, {}, {} FROM (SELECT {bucket} AS b, {} AS h FROM {} WHERE {predicate}) s GROUP BY b",
                self.text("b"),
                self.text("count(*)"),
                self.text("sum(h)"),
                self.row_hash,
                self.from
            ),
            params,
        }
    }

    /// PostgreSQL: the rows of a range for [`crate::stream::BucketHasher`]: a binary
    /// COPY of the bucket number (as [`Self::bucket_hashes`] numbers them) and each
    /// column in its wire form. Bounds and boundaries are quoted literals.
    pub fn bucket_copy(&self, range: &KeyRange, boundaries: &[String]) -> String {
        let predicate = self.range_predicate_literal(range);
        let bucket = match (&self.lead, boundaries.is_empty()) {
            (Some((lead, _)), false) if self.buckets_text_lead_here() => lead.clone(),
            (Some((lead, ty)), false) => format!(
                "width_bucket({lead}, {}::{ty}[])",
                string_literal(&array_literal(boundaries))
            ),
            _ => "0".into(),
        };
        let columns: Vec<&str> = self.wires.iter().map(|(_, e)| e.as_str()).collect();
        let bucket = if bucket.starts_with("width_bucket") || bucket == "0" {
            format!("({bucket})::int4")
        } else {
            bucket
        };
        format!(
            "COPY (SELECT {bucket}, {} FROM {} WHERE {predicate}) TO STDOUT (FORMAT binary)",
            columns.join(", "),
            self.from
        )
    }

    /// Whether [`Self::bucket_copy`] sends a text lead key itself (in the "C"
    /// collation's byte order) for [`crate::stream::BucketHasher::by_text_lead`] to
    /// bucket, instead of a `width_bucket` number.
    pub fn buckets_text_lead_here(&self) -> bool {
        self.dialect == Dialect::Postgres
            && self.lead.is_some()
            && matches!(
                self.lead_category,
                Some(Category::Text | Category::FixedChar)
            )
    }

    /// Count and hash sum per hash bucket, for tables without a key.
    pub fn multiset_hashes(&self, modulus: u64) -> Query {
        Query {
            sql: format!(
                "SELECT {}, {}, {} FROM (SELECT {} AS h FROM {}) s GROUP BY MOD(h, {modulus})",
                self.text(&format!("MOD(h, {modulus})")),
                self.text("count(*)"),
                self.text("sum(h)"),
                self.row_hash,
                self.from
            ),
            params: Vec::new(),
        }
    }

    /// Each distinct row of the given hash buckets, with its multiplicity.
    pub fn multiset_rows(&self, modulus: u64, buckets: &[u64]) -> Query {
        let list = if buckets.is_empty() {
            "-1".to_string()
        } else {
            buckets
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let display = self.row_display();
        Query {
            sql: format!(
                "SELECT {}, {}, min(d) FROM (SELECT {} AS h, {display} AS d FROM {}) s \
                 WHERE MOD(h, {modulus}) IN ({list}) GROUP BY h",
                self.text("h"),
                self.text("count(*)"),
                self.row_hash,
                self.from
            ),
            params: Vec::new(),
        }
    }

    fn row_display(&self) -> String {
        let parts: Vec<String> = self
            .display
            .iter()
            .map(|d| match self.dialect {
                Dialect::Postgres => format!("coalesce({d}, 'NULL')"),
                Dialect::Oracle => format!("NVL({d}, 'NULL')"),
            })
            .collect();
        match self.dialect {
            Dialect::Postgres => parts.join(" || ' | ' || "),
            Dialect::Oracle => format!("SUBSTR({}, 1, 2000)", parts.join(" || ' | ' || ")),
        }
    }

    /// The rows of a range: key text, then each column's canonical text, then each column's display text.
    pub fn rows(&self, range: &KeyRange) -> Query {
        let mut params = Vec::new();
        let predicate = self.range_predicate(range, &mut params);
        let key = match self.dialect {
            Dialect::Postgres => self.key_canonical.join(" || ',' || "),
            Dialect::Oracle => self.key_canonical.join(" || ',' || "),
        };
        let key_display = self.key_display.join(" || ',' || ");
        let mut select = vec![key, key_display];
        select.extend(self.canonical.iter().cloned());
        select.extend(self.display.iter().cloned());
        Query {
            sql: format!(
                "SELECT {} FROM {} WHERE {predicate}",
                select.join(", "),
                self.from
            ),
            params,
        }
    }
}

/// Oracle's format of a boundary timestamp (and of PostgreSQL's, in `to_char` terms).
const ORACLE_TIMESTAMP: &str = "YYYY-MM-DD HH24:MI:SS.FF6";

/// The leading key as both sides order it, and the type its bounds are cast to.
/// Key ranges and buckets are cut on the source and applied on both sides, so
/// both must sort the same way whatever their collations: PostgreSQL compares
/// text keys in the "C" collation (byte order of UTF-8, which is Oracle's
/// BINARY order of AL32UTF8; the Oracle session sets `NLS_COMP`/`NLS_SORT` to
/// BINARY). The cost: an index in another collation cannot serve the range.
fn lead_order(dialect: Dialect, quoted: &str, ty: &str, category: Category) -> (String, String) {
    match (dialect, category) {
        (Dialect::Postgres, Category::Text | Category::FixedChar) => {
            (format!("({quoted}::text COLLATE \"C\")"), "text".into())
        }
        _ => (quoted.to_string(), ty.to_string()),
    }
}

/// A key column in a key-ordered COPY (PostgreSQL): the value sent, the
/// expression ordered by, and how the sent value sorts in bytes. `category` is the
/// pair's common category, so both sides order by the same values.
fn key_order_expr(quoted: &str, category: Category) -> Option<(String, String, KeyOrder)> {
    use Category::*;
    let natural = |select: String, order: KeyOrder| Some((select, quoted.to_string(), order));
    match category {
        Integer => natural(format!("{quoted}::int8"), KeyOrder::Int8),
        Decimal => natural(format!("{quoted}::numeric"), KeyOrder::Numeric),
        Float => natural(format!("{quoted}::float8"), KeyOrder::Float8),
        Binary => natural(format!("{quoted}::bytea"), KeyOrder::Bytes),
        Uuid => natural(format!("{quoted}::uuid"), KeyOrder::Uuid),
        Boolean => natural(format!("{quoted}::bool"), KeyOrder::Bool),
        Date | Timestamp => natural(format!("{quoted}::timestamp"), KeyOrder::Micros),
        TimestampTz => natural(format!("{quoted}::timestamptz"), KeyOrder::Micros),
        Text | LargeText | Other => Some((
            format!("{quoted}::text"),
            format!("({quoted}::text COLLATE \"C\")"),
            KeyOrder::Bytes,
        )),
        FixedChar => {
            let trimmed = format!("rtrim({quoted}::text, ' ')");
            Some((
                trimmed.clone(),
                format!("({trimmed} COLLATE \"C\")"),
                KeyOrder::Bytes,
            ))
        }
        Json => None,
    }
}

/// A value for people to read (bounded, and LOBs summarised).
fn display_expr(dialect: Dialect, column: &str, own: Category) -> String {
    let c = quote(column);
    match (dialect, own) {
        (Dialect::Postgres, Category::Binary) => format!("'\\x' || left(encode({c}, 'hex'), 64)"),
        (Dialect::Postgres, _) => format!("left({c}::text, 200)"),
        (Dialect::Oracle, Category::Binary | Category::LargeText) => {
            format!("TO_CHAR(DBMS_LOB.SUBSTR({c}, 200, 1))")
        }
        (Dialect::Oracle, Category::TimestampTz) => {
            format!("TO_CHAR({c}, 'YYYY-MM-DD HH24:MI:SS.FF6 TZH:TZM')")
        }
        (Dialect::Oracle, Category::Date | Category::Timestamp) => {
            format!("TO_CHAR(CAST({c} AS TIMESTAMP), 'YYYY-MM-DD HH24:MI:SS.FF6')")
        }
        (Dialect::Oracle, _) => format!("SUBSTR(TO_CHAR({c}), 1, 200)"),
    }
}

/// A PostgreSQL string constant that means the same whatever
/// `standard_conforming_strings` is: `E'…'` with quotes and backslashes escaped.
pub fn string_literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A PostgreSQL array literal of text values, quoted and escaped.
pub fn array_literal(values: &[String]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", items.join(","))
}

/// Catalog queries.
pub mod catalog {
    use super::*;

    pub fn columns(dialect: Dialect, table: &TableRef) -> Query {
        match dialect {
            Dialect::Postgres => Query {
                sql: "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                      CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END, ''::text \
                      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                      JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
                      ORDER BY a.attnum"
                    .into(),
                params: vec![table.schema.clone(), table.table.clone()],
            },
            Dialect::Oracle => Query {
                sql: "SELECT column_name, data_type, nullable, TO_CHAR(data_scale) FROM all_tab_columns \
                      WHERE owner = :1 AND table_name = :2 ORDER BY column_id"
                    .into(),
                params: vec![table.schema.clone(), table.table.clone()],
            },
        }
    }

    pub fn primary_key(dialect: Dialect, table: &TableRef) -> Query {
        match dialect {
            Dialect::Postgres => Query {
                sql: "SELECT a.attname::text FROM pg_index i \
                      JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
                      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.ord"
                    .into(),
                params: vec![table.schema.clone(), table.table.clone()],
            },
            Dialect::Oracle => Query {
                sql: "SELECT cc.column_name FROM all_constraints c JOIN all_cons_columns cc \
                      ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name \
                      WHERE c.owner = :1 AND c.table_name = :2 AND c.constraint_type = 'P' ORDER BY cc.position"
                    .into(),
                params: vec![table.schema.clone(), table.table.clone()],
            },
        }
    }

    pub fn tables(dialect: Dialect, schema: &str) -> Query {
        match dialect {
            Dialect::Postgres => Query {
                sql: "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 2"
                    .into(),
                params: vec![schema.to_string()],
            },
            Dialect::Oracle => Query {
                sql: "SELECT owner, table_name FROM all_tables WHERE owner = :1 ORDER BY 2".into(),
                params: vec![schema.to_string()],
            },
        }
    }

    /// The planner's row count, or NULL when there is none to trust: never
    /// analysed (`reltuples` -1, `num_rows` NULL), analysed while empty (0: a table
    /// bulk-loaded since, before its counters reached the statistics, holds rows
    /// the estimate does not know of; an empty table costs nothing to count), or
    /// stale (more rows changed since the last ANALYZE than a fifth of the count,
    /// or Oracle's `STALE_STATS`). PostgreSQL's count is scaled to the table's
    /// current size in pages, as its planner does, so a table grown since its
    /// last ANALYZE is not sized as it was. Sizing on a missing estimate made one
    /// bucket of a whole table.
    pub fn estimated_rows(dialect: Dialect, table: &TableRef) -> Query {
        match dialect {
            Dialect::Postgres => Query {
                sql: "SELECT CASE WHEN c.reltuples <= 0 OR c.relpages <= 0 \
                      OR coalesce(s.n_mod_since_analyze, 0) > c.reltuples / 5 + 1000 THEN NULL \
                      ELSE (c.reltuples / c.relpages * greatest(1, pg_relation_size(c.oid) \
                      / current_setting('block_size')::bigint))::bigint::text END FROM pg_class c \
                      JOIN pg_namespace n ON n.oid = c.relnamespace \
                      LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid \
                      WHERE n.nspname = $1 AND c.relname = $2"
                    .into(),
                params: vec![table.schema.clone(), table.table.clone()],
            },
            Dialect::Oracle => Query {
                sql: "SELECT CASE WHEN s.stale_stats = 'YES' OR NVL(t.num_rows, 0) = 0 THEN NULL \
                      ELSE TO_CHAR(t.num_rows) END \
                      FROM all_tables t LEFT JOIN all_tab_statistics s ON s.owner = t.owner \
                      AND s.table_name = t.table_name AND s.object_type = 'TABLE' \
                      WHERE t.owner = :1 AND t.table_name = :2"
                    .into(),
                params: vec![table.schema.clone(), table.table.clone()],
            },
        }
    }

    /// How many rows were ever inserted, updated or deleted in the table, as the
    /// source's statistics count them (PostgreSQL only; Oracle's `all_tab_modifications`
    /// lags until statistics are flushed, so an Oracle run records nothing). A cutover
    /// compares it with the same number at its freeze: a table whose number did not
    /// move since a validation started needs no second one.
    pub fn change_counter(dialect: Dialect, table: &TableRef) -> Option<Query> {
        match dialect {
            Dialect::Postgres => Some(Query {
                sql: "SELECT (coalesce(n_tup_ins, 0) + coalesce(n_tup_upd, 0) + coalesce(n_tup_del, 0))::text \
                      FROM pg_stat_all_tables WHERE schemaname = $1 AND relname = $2"
                    .into(),
                params: vec![table.schema.clone(), table.table.clone()],
            }),
            Dialect::Oracle => None,
        }
    }

    /// The exact row count, for a table whose statistics cannot be trusted.
    pub fn count_rows(dialect: Dialect, table: &TableRef) -> Query {
        let sql = match dialect {
            Dialect::Postgres => format!("SELECT count(*)::text FROM {}", table.quoted()),
            Dialect::Oracle => format!("SELECT TO_CHAR(count(*)) FROM {}", table.quoted()),
        };
        Query {
            sql,
            params: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnPair;

    fn plan() -> TablePlan {
        let col = |n: &str, t: &str, c: Category| ColumnPair {
            source: n.into(),
            target: n.into(),
            source_type: t.into(),
            target_type: t.into(),
            category: c,
            source_own: c,
            target_own: c,
        };
        TablePlan {
            table: TableRef::new("app", "order \"items\""),
            target_table: None,
            columns: vec![
                col("order_id", "bigint", Category::Integer),
                col("line no", "integer", Category::Integer),
                col("sku", "character(12)", Category::FixedChar),
            ],
            key: vec![0, 1],
            integer_lead: true,
        }
    }

    #[test]
    fn postgres_bucket_query_binds_everything_and_quotes_names() {
        let side = SideSql::new(Dialect::Postgres, &plan(), Role::Source, EmptyText::IsValue);
        let q = side.bucket_hashes(
            &KeyRange {
                lo: Some("10".into()),
                hi: Some("20".into()),
            },
            &["13".into(), "16".into()],
        );
        assert!(
            q.sql.contains("FROM \"app\".\"order \"\"items\"\"\""),
            "{}",
            q.sql
        );
        assert!(
            q.sql.contains(
                "\"order_id\" >= ($1::text)::bigint AND \"order_id\" < ($2::text)::bigint"
            ),
            "{}",
            q.sql
        );
        assert!(
            q.sql
                .contains("width_bucket(\"order_id\", E'{\"13\",\"16\"}'::bigint[])"),
            "{}",
            q.sql
        );
        assert_eq!(q.params, vec!["10", "20"]);
        assert!(q.sql.contains("\"line no\""));
    }

    #[test]
    fn oracle_bucket_query_uses_a_case_chain_and_numbered_binds() {
        let side = SideSql::new(Dialect::Oracle, &plan(), Role::Source, EmptyText::IsNull);
        let q = side.bucket_hashes(&KeyRange::default(), &["13".into(), "16".into()]);
        assert!(q.sql.contains("CASE WHEN \"order_id\" < TO_NUMBER(:1) THEN 0 WHEN \"order_id\" < TO_NUMBER(:2) THEN 1 ELSE 2 END"), "{}", q.sql);
        assert!(q.sql.contains("DBMS_CRYPTO.HASH"), "{}", q.sql);
        assert_eq!(q.params, vec!["13", "16"]);
    }

    #[test]
    fn bucket_boundaries_are_one_quoted_constant() {
        let side = SideSql::new(Dialect::Postgres, &plan(), Role::Source, EmptyText::IsValue);
        let q = side.bucket_hashes(&KeyRange::default(), &["O'Brien".into(), "Z\"x".into()]);
        assert!(
            q.sql.contains("E'{\"O''Brien\",\"Z\\\\\"x\"}'::"),
            "{}",
            q.sql
        );
        assert!(q.params.is_empty());
    }

    #[test]
    fn copy_queries_inline_bounds_as_escaped_literals() {
        let side = SideSql::new(Dialect::Postgres, &plan(), Role::Source, EmptyText::IsValue);
        let q = side.bucket_copy(
            &KeyRange {
                lo: Some("1' OR '1'='1".into()),
                hi: Some("9\\".into()),
            },
            &["5".into()],
        );
        assert!(q.starts_with("COPY (SELECT (width_bucket(\"order_id\", E'{\"5\"}'::bigint[]))::int4, \"order_id\"::int8, \"line no\"::int8, rtrim(\"sku\"::text, ' ') FROM"), "{q}");
        assert!(q.contains("\"order_id\" >= (E'1'' OR ''1''=''1')::bigint AND \"order_id\" < (E'9\\\\')::bigint"), "{q}");
        assert!(q.ends_with("TO STDOUT (FORMAT binary)"), "{q}");
        let whole = side.bucket_copy(&KeyRange::default(), &[]);
        assert!(
            whole.contains("SELECT (0)::int4,") && whole.contains("WHERE 1 = 1)"),
            "{whole}"
        );
    }

    fn text_keyed(category: Category, ty: &str) -> TablePlan {
        TablePlan {
            table: TableRef::new("APP", "CUSTOMERS"),
            target_table: Some(TableRef::new("app", "customers")),
            columns: vec![ColumnPair {
                source: "EMAIL".into(),
                target: "email".into(),
                source_type: ty.into(),
                target_type: ty.into(),
                category,
                source_own: category,
                target_own: category,
            }],
            key: vec![0],
            integer_lead: false,
        }
    }

    #[test]
    fn text_keys_are_cut_and_bucketed_in_the_c_collation_on_postgres() {
        let plan = text_keyed(Category::Text, "character varying(80)");
        let side = SideSql::new(Dialect::Postgres, &plan, Role::Target, EmptyText::IsValue);
        let range = KeyRange {
            lo: Some("a".into()),
            hi: Some("b".into()),
        };
        let q = side.bucket_hashes(&range, &["B".into()]);
        assert!(
            q.sql
                .contains("(\"email\"::text COLLATE \"C\") >= ($1::text)::text"),
            "{}",
            q.sql
        );
        assert!(
            q.sql
                .contains("width_bucket((\"email\"::text COLLATE \"C\"), E'{\"B\"}'::text[])"),
            "{}",
            q.sql
        );
        let copy = side.bucket_copy(&range, &["B".into()]);
        assert!(
            copy.contains("(\"email\"::text COLLATE \"C\") < (E'b')::text"),
            "{copy}"
        );
        let sample = side.sample_boundaries(&range, 4, None);
        assert!(
            sample
                .sql
                .contains("ORDER BY (\"email\"::text COLLATE \"C\")"),
            "{}",
            sample.sql
        );
        // The target's own name for the table.
        assert!(q.sql.contains("FROM \"app\".\"customers\""), "{}", q.sql);
        let source = SideSql::new(Dialect::Oracle, &plan, Role::Source, EmptyText::IsNull);
        assert_eq!(source.from, "\"APP\".\"CUSTOMERS\"");
    }

    #[test]
    fn timestamp_boundaries_travel_in_one_explicit_format() {
        let plan = text_keyed(Category::Timestamp, "DATE");
        let ora = SideSql::new(Dialect::Oracle, &plan, Role::Source, EmptyText::IsNull);
        let sample = ora.sample_boundaries(&KeyRange::default(), 4, Some(3.2));
        assert!(
            sample
                .sql
                .contains("TO_CHAR(CAST(min(b) AS TIMESTAMP), 'YYYY-MM-DD HH24:MI:SS.FF6')"),
            "{}",
            sample.sql
        );
        assert!(
            sample.sql.contains("SAMPLE BLOCK (3.2000) WHERE"),
            "{}",
            sample.sql
        );
        let q = ora.bucket_hashes(&KeyRange::default(), &["2024-01-02 03:04:05.000006".into()]);
        assert!(
            q.sql
                .contains("\"EMAIL\" < TO_TIMESTAMP(:1, 'YYYY-MM-DD HH24:MI:SS.FF6') THEN 0"),
            "{}",
            q.sql
        );
        let pg = SideSql::new(Dialect::Postgres, &plan, Role::Target, EmptyText::IsNull);
        let sample = pg.sample_boundaries(&KeyRange::default(), 4, Some(3.2));
        assert!(
            sample
                .sql
                .contains("to_char((b)::timestamp, 'YYYY-MM-DD HH24:MI:SS.US')"),
            "{}",
            sample.sql
        );
        assert!(
            sample.sql.contains("TABLESAMPLE SYSTEM (3.2000) WHERE"),
            "{}",
            sample.sql
        );
        let tz = text_keyed(Category::TimestampTz, "TIMESTAMP(6) WITH TIME ZONE");
        let ora = SideSql::new(Dialect::Oracle, &tz, Role::Source, EmptyText::IsNull);
        let q = ora.bucket_hashes(&KeyRange::default(), &["x".into()]);
        assert!(
            q.sql
                .contains("TO_TIMESTAMP_TZ(:1, 'YYYY-MM-DD HH24:MI:SS.FF6 TZH:TZM')"),
            "{}",
            q.sql
        );
    }

    #[test]
    fn array_literals_escape_quotes_and_backslashes() {
        assert_eq!(
            array_literal(&["a\"b".into(), "c\\d".into()]),
            "{\"a\\\"b\",\"c\\\\d\"}"
        );
    }
}
