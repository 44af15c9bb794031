//! The canonical encoding: how each side turns a value into text that is equal
//! exactly when the values are equal, the same for Oracle and PostgreSQL.
//!
//! The encoding is computed inside the databases (so a whole table is hashed
//! without leaving the server); this module writes those SQL expressions.
//!
//! | category | canonical text |
//! |---|---|
//! | NULL | `N` |
//! | `''`, when one side is Oracle (which cannot tell it from NULL) | `N` |
//! | `''`, between two PostgreSQL databases (where it is a value) | `0:` |
//! | text, varchar, CHAR (trailing blanks removed) | `<chars>:<value>` |
//! | integer, numeric/NUMBER | the decimal with no trailing zeros (`1.50` → `1.5`, `0.5`, `-0.5`) |
//! | float8/BINARY_DOUBLE | IEEE-754 bits in hex; `-0.0` as `0`, every NaN as `NaN` |
//! | date, timestamp | `YYYY-MM-DD HH24:MI:SS.ffffff` (a DATE carries its time) |
//! | timestamptz/TIMESTAMP WITH TIME ZONE | microseconds since the Unix epoch, UTC |
//! | bytea/BLOB/RAW | `<bytes>:<md5 hex>` |
//! | CLOB (and text compared to a CLOB) | `<chars>:<md5 hex of UTF-8>` |
//! | jsonb | PostgreSQL's normalised jsonb text (keys ordered, no whitespace) |
//! | uuid | lower-case hyphenated |
//! | boolean | `t` / `f` |
//!
//! A row's text is its columns' texts joined with `|`; strings are
//! length-prefixed, so no value can imitate a separator. The row hash is the
//! first 60 bits of the MD5 of that text as a non-negative integer, which both
//! engines compute the same way (`md5` / `STANDARD_HASH`), and a segment's
//! hash is the sum of its rows' hashes: order-independent, so the same rows in
//! any physical order give the same sum, and duplicates count.

use serde::{Deserialize, Serialize};

use crate::ident::quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Postgres,
    Oracle,
}

/// What a column's values are, as far as comparison is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Integer,
    Decimal,
    Float,
    Text,
    FixedChar,
    LargeText,
    Binary,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Uuid,
    Boolean,
    /// Compared by the engine's own text form; flagged in the schema report.
    Other,
}

impl Category {
    /// Categories whose canonical forms agree, so such columns can be compared.
    pub fn comparable(self, other: Category) -> bool {
        use Category::*;
        let family = |c: Category| match c {
            Integer | Decimal => 1,
            Text | FixedChar | LargeText => 2,
            Date | Timestamp => 3,
            c => 10 + c as u8,
        };
        family(self) == family(other)
    }

    /// The encoding both sides must use for a pair of columns: a CLOB on either
    /// side makes both hash their text; DATE vs timestamp both use timestamps.
    pub fn common(self, other: Category) -> Category {
        use Category::*;
        match (self, other) {
            (LargeText, _) | (_, LargeText) => LargeText,
            (Integer, Decimal) | (Decimal, Integer) => Decimal,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            (FixedChar, Text) | (Text, FixedChar) => FixedChar,
            (a, _) => a,
        }
    }
}

/// Classifies a PostgreSQL type as `format_type` prints it.
pub fn classify_postgres(data_type: &str) -> Category {
    let t = data_type.to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or(&t).trim();
    match base {
        "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8" => Category::Integer,
        "numeric" | "decimal" => Category::Decimal,
        "double precision" | "real" | "float4" | "float8" => Category::Float,
        "text" | "character varying" | "varchar" | "name" | "citext" => Category::Text,
        "character" | "char" | "bpchar" => Category::FixedChar,
        "bytea" => Category::Binary,
        "date" => Category::Date,
        "timestamp without time zone" | "timestamp" => Category::Timestamp,
        "timestamp with time zone" | "timestamptz" => Category::TimestampTz,
        "jsonb" | "json" => Category::Json,
        "uuid" => Category::Uuid,
        "boolean" | "bool" => Category::Boolean,
        _ => Category::Other,
    }
}

/// Classifies an Oracle type as `ALL_TAB_COLUMNS.DATA_TYPE` gives it, with the
/// scale (NUMBER with scale 0 is an integer).
pub fn classify_oracle(data_type: &str, scale: Option<i64>) -> Category {
    let t = data_type.to_ascii_uppercase();
    if t.starts_with("TIMESTAMP") {
        return if t.contains("TIME ZONE") {
            Category::TimestampTz
        } else {
            Category::Timestamp
        };
    }
    match t.as_str() {
        "NUMBER" | "INTEGER" if scale == Some(0) => Category::Integer,
        "NUMBER" | "FLOAT" | "INTEGER" => Category::Decimal,
        "BINARY_DOUBLE" | "BINARY_FLOAT" => Category::Float,
        "VARCHAR2" | "NVARCHAR2" | "VARCHAR" => Category::Text,
        "CHAR" | "NCHAR" => Category::FixedChar,
        "CLOB" | "NCLOB" | "LONG" => Category::LargeText,
        "BLOB" | "RAW" | "LONG RAW" => Category::Binary,
        "DATE" => Category::Date,
        "JSON" => Category::Json,
        _ => Category::Other,
    }
}

/// What an empty string is, decided by the pair of dialects compared: Oracle
/// stores `''` as NULL, so when either side is Oracle a PostgreSQL `''` must
/// count as NULL too; between two PostgreSQL databases `''` and NULL are
/// different values, and a change from one to the other is a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyText {
    IsNull,
    IsValue,
}

impl EmptyText {
    pub fn for_pair(source: Dialect, target: Dialect) -> Self {
        if source == Dialect::Oracle || target == Dialect::Oracle {
            EmptyText::IsNull
        } else {
            EmptyText::IsValue
        }
    }
}

/// The SQL expression giving the canonical text of one column, never NULL.
/// `category` is the common category of the pair (see [`Category::common`]);
/// `own` is this side's own category (e.g. a BLOB vs a RAW in Oracle);
/// `empty` what `''` means for this pair of dialects.
pub fn column_expr(
    dialect: Dialect,
    column: &str,
    category: Category,
    own: Category,
    empty: EmptyText,
) -> String {
    let c = quote(column);
    match dialect {
        Dialect::Postgres => postgres_expr(&c, category, empty),
        Dialect::Oracle => oracle_expr(&c, category, own),
    }
}

fn postgres_expr(c: &str, category: Category, empty: EmptyText) -> String {
    use Category::*;
    // `''` is NULL only when Oracle is in the pair; otherwise it is the value `0:`.
    let (text_null, fixed_null) = match empty {
        EmptyText::IsNull => (
            format!("{c} IS NULL OR {c}::text = ''"),
            format!("{c} IS NULL OR rtrim({c}::text, ' ') = ''"),
        ),
        EmptyText::IsValue => (format!("{c} IS NULL"), format!("{c} IS NULL")),
    };
    match category {
        Integer => format!("coalesce({c}::text, 'N')"),
        Decimal => format!("coalesce(trim_scale({c}::numeric)::text, 'N')"),
        Float => format!(
            "CASE WHEN {c} IS NULL THEN 'N' WHEN {c}::float8 = 'NaN'::float8 THEN 'NaN' \
             WHEN {c}::float8 = 0 THEN '0' ELSE encode(float8send({c}::float8), 'hex') END"
        ),
        Text | Other => format!(
            "CASE WHEN {text_null} THEN 'N' ELSE length({c}::text)::text || ':' || {c}::text END"
        ),
        FixedChar => format!(
            "CASE WHEN {fixed_null} THEN 'N' \
             ELSE length(rtrim({c}::text, ' '))::text || ':' || rtrim({c}::text, ' ') END"
        ),
        LargeText => format!(
            "CASE WHEN {text_null} THEN 'N' ELSE length({c}::text)::text || ':' || md5({c}::text) END"
        ),
        Binary => format!("CASE WHEN {c} IS NULL THEN 'N' ELSE length({c})::text || ':' || md5({c}) END"),
        // to_char() of ±infinity is NULL: spell them out, or they would equal NULL.
        Date | Timestamp => format!(
            "CASE WHEN {c} IS NULL THEN 'N' WHEN NOT isfinite({c}) THEN {c}::text \
             ELSE to_char({c}::timestamp, 'YYYY-MM-DD HH24:MI:SS.US') END"
        ),
        TimestampTz => format!("coalesce(trim_scale(extract(epoch FROM {c}) * 1000000)::text, 'N')"),
        Json => format!(
            "CASE WHEN {c} IS NULL THEN 'N' ELSE length({c}::jsonb::text)::text || ':' || {c}::jsonb::text END"
        ),
        Uuid => format!("coalesce(lower({c}::text), 'N')"),
        // NULL first: `CASE WHEN NULL` takes the ELSE branch, which would make NULL false.
        Boolean => format!("CASE WHEN {c} IS NULL THEN 'N' WHEN {c} THEN 't' ELSE 'f' END"),
    }
}

fn oracle_expr(c: &str, category: Category, own: Category) -> String {
    use Category::*;
    match category {
        Integer => format!("NVL(TO_CHAR({c}, 'TM9'), 'N')"),
        // TM9 prints 0.5 as .5 and -0.5 as -.5; PostgreSQL prints the leading zero.
        Decimal => format!(
            "CASE WHEN {c} IS NULL THEN 'N' WHEN ABS({c}) < 1 AND {c} <> 0 \
             THEN REPLACE(TO_CHAR({c}, 'TM9'), '.', '0.') ELSE TO_CHAR({c}, 'TM9') END"
        ),
        Float => format!(
            "CASE WHEN {c} IS NULL THEN 'N' WHEN {c} IS NAN THEN 'NaN' WHEN {c} = 0 THEN '0' \
             ELSE LOWER(RAWTOHEX(UTL_RAW.CAST_FROM_BINARY_DOUBLE(TO_BINARY_DOUBLE({c})))) END"
        ),
        // Oracle stores '' as NULL, so both print as N. The text is built as a CLOB:
        // a VARCHAR2 result stops at 4000 bytes (ORA-01489 on a long value).
        Text | Other => format!(
            "CASE WHEN {c} IS NULL THEN TO_CLOB('N') ELSE TO_CLOB(LENGTH({c}) || ':') || {c} END"
        ),
        FixedChar => format!(
            "CASE WHEN RTRIM({c}, ' ') IS NULL THEN 'N' ELSE LENGTH(RTRIM({c}, ' ')) || ':' || RTRIM({c}, ' ') END"
        ),
        LargeText => {
            // An empty CLOB is no value, as '' is none.
            let length = if own == LargeText {
                format!("DBMS_LOB.GETLENGTH({c})")
            } else {
                format!("LENGTH({c})")
            };
            format!(
                "CASE WHEN {c} IS NULL OR {length} = 0 THEN 'N' \
                 ELSE {length} || ':' || LOWER(RAWTOHEX(DBMS_CRYPTO.HASH(TO_CLOB({c}), 2))) END"
            )
        }
        Binary => {
            let length = if own == Binary {
                format!("NVL(DBMS_LOB.GETLENGTH(TO_BLOB({c})), 0)")
            } else {
                format!("UTL_RAW.LENGTH({c})")
            };
            format!(
                "CASE WHEN {c} IS NULL THEN 'N' WHEN {length} = 0 THEN '0:d41d8cd98f00b204e9800998ecf8427e' \
                 ELSE {length} || ':' || LOWER(RAWTOHEX(DBMS_CRYPTO.HASH(TO_BLOB({c}), 2))) END"
            )
        }
        Date | Timestamp => format!("NVL(TO_CHAR(CAST({c} AS TIMESTAMP), 'YYYY-MM-DD HH24:MI:SS.FF6'), 'N')"),
        // DATE - DATE is a fraction of days (not exact in binary): round to whole
        // seconds before scaling, then add the microseconds.
        TimestampTz => format!(
            "CASE WHEN {c} IS NULL THEN 'N' ELSE TO_CHAR(\
             ROUND((CAST(SYS_EXTRACT_UTC({c}) AS DATE) - DATE '1970-01-01') * 86400) * 1000000 \
             + TO_NUMBER(TO_CHAR(SYS_EXTRACT_UTC({c}), 'FF6')), 'TM9') END"
        ),
        // Oracle has no jsonb normalisation in SQL; the text is compared as stored.
        Json => format!(
            "CASE WHEN {c} IS NULL THEN TO_CLOB('N') ELSE TO_CLOB(LENGTH({c}) || ':') || {c} END"
        ),
        Uuid => format!(
            "CASE WHEN {c} IS NULL THEN 'N' ELSE LOWER(REGEXP_REPLACE(RAWTOHEX({c}), \
             '^(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})$', '\\1-\\2-\\3-\\4-\\5')) END"
        ),
        Boolean => format!("NVL(TO_CHAR({c}), 'N')"),
    }
}

/// The canonical text of a whole row: the columns' texts joined with `|`.
pub fn row_text_expr(dialect: Dialect, column_exprs: &[String]) -> String {
    if column_exprs.is_empty() {
        return "''".to_string();
    }
    match dialect {
        Dialect::Postgres => column_exprs.join(" || '|' || "),
        // VARCHAR2 concatenation stops at 4000 bytes; a CLOB does not.
        Dialect::Oracle => format!("TO_CLOB({})", column_exprs.join(") || '|' || TO_CLOB(")),
    }
}

/// The row hash: the first 60 bits of MD5(row text), non-negative.
pub fn row_hash_expr(dialect: Dialect, row_text: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("('x' || substr(md5({row_text}), 1, 15))::bit(60)::bigint"),
        Dialect::Oracle => format!(
            "TO_NUMBER(SUBSTR(RAWTOHEX(DBMS_CRYPTO.HASH({row_text}, 2)), 1, 15), 'XXXXXXXXXXXXXXX')"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_types_are_classified() {
        assert_eq!(classify_postgres("numeric(12,2)"), Category::Decimal);
        assert_eq!(classify_postgres("character(2)"), Category::FixedChar);
        assert_eq!(
            classify_postgres("timestamp with time zone"),
            Category::TimestampTz
        );
        assert_eq!(
            classify_postgres("timestamp without time zone"),
            Category::Timestamp
        );
        assert_eq!(classify_postgres("double precision"), Category::Float);
        assert_eq!(classify_postgres("jsonb"), Category::Json);
        assert_eq!(classify_postgres("bigint"), Category::Integer);
        assert_eq!(classify_postgres("tsvector"), Category::Other);
    }

    #[test]
    fn oracle_types_are_classified() {
        assert_eq!(classify_oracle("NUMBER", Some(0)), Category::Integer);
        assert_eq!(classify_oracle("NUMBER", Some(2)), Category::Decimal);
        assert_eq!(classify_oracle("NUMBER", None), Category::Decimal);
        assert_eq!(
            classify_oracle("TIMESTAMP(6) WITH TIME ZONE", None),
            Category::TimestampTz
        );
        assert_eq!(classify_oracle("TIMESTAMP(6)", None), Category::Timestamp);
        assert_eq!(classify_oracle("DATE", None), Category::Date);
        assert_eq!(classify_oracle("CLOB", None), Category::LargeText);
        assert_eq!(classify_oracle("BLOB", None), Category::Binary);
        assert_eq!(classify_oracle("CHAR", None), Category::FixedChar);
        assert_eq!(classify_oracle("BINARY_DOUBLE", None), Category::Float);
    }

    #[test]
    fn oracle_and_postgres_pairs_agree_on_a_common_encoding() {
        assert!(Category::Integer.comparable(Category::Decimal));
        assert_eq!(
            Category::Integer.common(Category::Decimal),
            Category::Decimal
        );
        assert_eq!(
            Category::LargeText.common(Category::Text),
            Category::LargeText
        );
        assert_eq!(
            Category::Date.common(Category::Timestamp),
            Category::Timestamp
        );
        assert!(!Category::Text.comparable(Category::Decimal));
        assert!(!Category::TimestampTz.comparable(Category::Timestamp));
    }

    #[test]
    fn oracle_empty_string_is_null_by_construction() {
        // Oracle has no '' distinct from NULL; PostgreSQL must print '' as NULL too.
        let pg = column_expr(
            Dialect::Postgres,
            "email",
            Category::Text,
            Category::Text,
            EmptyText::IsNull,
        );
        assert!(pg.contains("IS NULL OR \"email\"::text = ''"), "{pg}");
        let ora = column_expr(
            Dialect::Oracle,
            "EMAIL",
            Category::Text,
            Category::Text,
            EmptyText::IsNull,
        );
        assert!(
            ora.starts_with("CASE WHEN \"EMAIL\" IS NULL THEN TO_CLOB('N')"),
            "{ora}"
        );
        assert_eq!(
            EmptyText::for_pair(Dialect::Oracle, Dialect::Postgres),
            EmptyText::IsNull
        );
    }

    #[test]
    fn between_two_postgres_databases_empty_and_null_differ() {
        assert_eq!(
            EmptyText::for_pair(Dialect::Postgres, Dialect::Postgres),
            EmptyText::IsValue
        );
        for category in [Category::Text, Category::FixedChar, Category::LargeText] {
            let pg = column_expr(
                Dialect::Postgres,
                "email",
                category,
                category,
                EmptyText::IsValue,
            );
            assert!(
                pg.starts_with("CASE WHEN \"email\" IS NULL THEN 'N'"),
                "{pg}"
            );
            assert!(!pg.contains("= ''"), "{pg}");
        }
    }

    #[test]
    fn oracle_long_text_is_built_as_a_clob() {
        // LENGTH(c) || ':' || c is a VARCHAR2 and raises ORA-01489 past 4000 bytes.
        for category in [Category::Text, Category::Json] {
            let ora = column_expr(
                Dialect::Oracle,
                "NOTE",
                category,
                category,
                EmptyText::IsNull,
            );
            assert!(
                ora.contains("TO_CLOB(LENGTH(\"NOTE\") || ':') || \"NOTE\""),
                "{ora}"
            );
            assert!(!ora.contains("'N' ELSE"), "both branches are CLOBs: {ora}");
        }
    }

    #[test]
    fn postgres_infinite_dates_are_not_null() {
        // to_char('infinity'::timestamp) is NULL, which would make ±infinity equal NULL.
        let pg = column_expr(
            Dialect::Postgres,
            "d",
            Category::Timestamp,
            Category::Date,
            EmptyText::IsValue,
        );
        assert!(
            pg.contains("WHEN NOT isfinite(\"d\") THEN \"d\"::text"),
            "{pg}"
        );
        assert!(pg.starts_with("CASE WHEN \"d\" IS NULL THEN 'N'"), "{pg}");
    }

    #[test]
    fn oracle_numbers_get_their_leading_zero_back() {
        let ora = column_expr(
            Dialect::Oracle,
            "AMOUNT",
            Category::Decimal,
            Category::Decimal,
            EmptyText::IsNull,
        );
        assert!(
            ora.contains("REPLACE(TO_CHAR(\"AMOUNT\", 'TM9'), '.', '0.')"),
            "{ora}"
        );
        let pg = column_expr(
            Dialect::Postgres,
            "amount",
            Category::Decimal,
            Category::Decimal,
            EmptyText::IsNull,
        );
        assert!(pg.contains("trim_scale"), "{pg}");
    }

    #[test]
    fn oracle_char_padding_and_dates_with_time() {
        let ora = column_expr(
            Dialect::Oracle,
            "COUNTRY",
            Category::FixedChar,
            Category::FixedChar,
            EmptyText::IsNull,
        );
        assert!(ora.contains("RTRIM(\"COUNTRY\", ' ')"));
        let ora = column_expr(
            Dialect::Oracle,
            "CREATED",
            Category::Timestamp,
            Category::Date,
            EmptyText::IsNull,
        );
        assert!(
            ora.contains("TO_CHAR(CAST(\"CREATED\" AS TIMESTAMP), 'YYYY-MM-DD HH24:MI:SS.FF6')")
        );
        let pg = column_expr(
            Dialect::Postgres,
            "created",
            Category::Timestamp,
            Category::Date,
            EmptyText::IsNull,
        );
        assert!(pg.contains("to_char(\"created\"::timestamp, 'YYYY-MM-DD HH24:MI:SS.US')"));
    }

    #[test]
    fn oracle_timestamps_with_zone_go_to_utc_microseconds() {
        let ora = column_expr(
            Dialect::Oracle,
            "PAID_AT",
            Category::TimestampTz,
            Category::TimestampTz,
            EmptyText::IsNull,
        );
        assert!(ora.contains("SYS_EXTRACT_UTC(\"PAID_AT\")"));
        // Whole seconds rounded before scaling: DATE - DATE is an inexact fraction of days.
        assert!(
            ora.contains("ROUND((CAST(SYS_EXTRACT_UTC(\"PAID_AT\") AS DATE) - DATE '1970-01-01') * 86400) * 1000000"),
            "{ora}"
        );
        assert!(!ora.contains("86400000000"), "{ora}");
        assert!(ora.contains("'FF6'"));
    }

    #[test]
    fn oracle_floats_use_ieee_bits_like_float8send() {
        let ora = column_expr(
            Dialect::Oracle,
            "SCORE",
            Category::Float,
            Category::Float,
            EmptyText::IsNull,
        );
        assert!(ora.contains("IS NAN THEN 'NaN'"));
        assert!(ora.contains("= 0 THEN '0'"));
        assert!(ora.contains("UTL_RAW.CAST_FROM_BINARY_DOUBLE"));
        let pg = column_expr(
            Dialect::Postgres,
            "score",
            Category::Float,
            Category::Float,
            EmptyText::IsNull,
        );
        assert!(pg.contains("float8send"));
    }

    #[test]
    fn oracle_lobs_are_hashed_as_md5_like_postgres() {
        let ora = column_expr(
            Dialect::Oracle,
            "AVATAR",
            Category::Binary,
            Category::Binary,
            EmptyText::IsNull,
        );
        assert!(
            ora.contains("DBMS_CRYPTO.HASH(TO_BLOB(\"AVATAR\"), 2)"),
            "{ora}"
        );
        let ora = column_expr(
            Dialect::Oracle,
            "NOTES",
            Category::LargeText,
            Category::LargeText,
            EmptyText::IsNull,
        );
        assert!(ora.contains("DBMS_LOB.GETLENGTH(\"NOTES\")"), "{ora}");
        let pg = column_expr(
            Dialect::Postgres,
            "notes",
            Category::LargeText,
            Category::Text,
            EmptyText::IsNull,
        );
        assert!(pg.contains("md5(\"notes\"::text)"), "{pg}");
    }

    #[test]
    fn oracle_uuid_raw_is_printed_hyphenated() {
        let ora = column_expr(
            Dialect::Oracle,
            "EXTERNAL_ID",
            Category::Uuid,
            Category::Uuid,
            EmptyText::IsNull,
        );
        assert!(ora.contains("RAWTOHEX(\"EXTERNAL_ID\")"), "{ora}");
        assert!(ora.contains("\\1-\\2-\\3-\\4-\\5"), "{ora}");
    }

    #[test]
    fn row_hash_is_the_same_function_on_both_sides() {
        let pg = row_hash_expr(Dialect::Postgres, "t");
        assert_eq!(pg, "('x' || substr(md5(t), 1, 15))::bit(60)::bigint");
        let ora = row_hash_expr(Dialect::Oracle, "t");
        assert!(
            ora.contains("DBMS_CRYPTO.HASH(t, 2)") && ora.contains("1, 15"),
            "{ora}"
        );
        assert_eq!(
            row_text_expr(Dialect::Oracle, &["a".into(), "b".into()]),
            "TO_CLOB(a) || '|' || TO_CLOB(b)"
        );
    }

    #[test]
    fn identifiers_in_expressions_are_quoted() {
        let pg = column_expr(
            Dialect::Postgres,
            "we\"ird col",
            Category::Text,
            Category::Text,
            EmptyText::IsNull,
        );
        assert!(pg.contains("\"we\"\"ird col\""), "{pg}");
    }
}
