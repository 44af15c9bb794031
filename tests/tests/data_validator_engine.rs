//! data-validator's engine against two real PostgreSQL servers of the world
//! (the source and the us-east-1 primary), in a database of its own on each
//! (`dv_test`), one schema per test, so tests never see each other's drift.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use cutover_rehearsal::world::{Node, World};
use data_validator::canonical::Category;
use data_validator::canonical::{classify_postgres, column_expr, Dialect, EmptyText};
use data_validator::engine::{DiffKind, Hashing, Options, Pair};
use data_validator::ident::TableRef;
use data_validator::run::describe;
use data_validator::schema::compare;
use data_validator::side::Side;
use data_validator::sql::{KeyRange, Role, SideSql};
use tokio::sync::OnceCell;

static DATABASE: OnceCell<()> = OnceCell::const_new();

async fn ensure_database(world: &World) {
    DATABASE
        .get_or_init(|| async {
            for node in [Node::Source, Node::UsEast1] {
                let admin = world.admin(node).await.unwrap();
                let exists = admin
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = 'dv_test'", &[])
                    .await
                    .unwrap();
                if exists.is_none() {
                    admin
                        .batch_execute("CREATE DATABASE dv_test")
                        .await
                        .unwrap();
                }
            }
        })
        .await;
}

struct Sides {
    source: Side,
    target: Side,
    schema: String,
}

impl Sides {
    async fn new(world: &World) -> Sides {
        ensure_database(world).await;
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let source = world.admin_db(Node::Source, "dv_test").await.unwrap();
        let target = world.admin_db(Node::UsEast1, "dv_test").await.unwrap();
        for c in [&source, &target] {
            c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
        }
        Sides {
            source: Side::Postgres {
                label: "source".into(),
                client: source,
            },
            target: Side::Postgres {
                label: "target".into(),
                client: target,
            },
            schema,
        }
    }

    fn client(side: &Side) -> &tokio_postgres::Client {
        match side {
            Side::Postgres { client, .. } => client,
            Side::Oracle { .. } => unreachable!(),
        }
    }

    async fn both(&self, sql: &str) {
        let sql = sql.replace("$S", &self.schema);
        Self::client(&self.source)
            .batch_execute(&sql)
            .await
            .unwrap();
        Self::client(&self.target)
            .batch_execute(&sql)
            .await
            .unwrap();
    }

    async fn source(&self, sql: &str) {
        Self::client(&self.source)
            .batch_execute(&sql.replace("$S", &self.schema))
            .await
            .unwrap();
    }

    async fn target(&self, sql: &str) {
        Self::client(&self.target)
            .batch_execute(&sql.replace("$S", &self.schema))
            .await
            .unwrap();
    }

    fn table(&self, name: &str) -> TableRef {
        TableRef::new(self.schema.clone(), name)
    }

    async fn compare(
        &self,
        name: &str,
        options: &Options,
    ) -> data_validator::engine::SegmentResult {
        let table = self.table(name);
        let s = describe(&self.source, &table).await.unwrap().unwrap();
        let t = describe(&self.target, &table).await.unwrap().unwrap();
        let (plan, findings) = compare(&table, &s, &t);
        assert!(
            findings.iter().all(|f| f.severity != "error"),
            "{findings:?}"
        );
        let pair = Pair::new(&self.source, &self.target, &plan);
        let client = Self::client(&self.source);
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", table.quoted()), &[])
            .await
            .unwrap()
            .get(0);
        pair.compare_segment(&KeyRange::default(), count as u64, options)
            .await
            .unwrap()
    }
}

fn small() -> Options {
    Options {
        bucket_rows: 100,
        leaf_rows: 16,
        fanout: 8,
        ..Options::default()
    }
}

/// Canonical text of a literal of a type, on the source server.
async fn canonical(side: &Side, ty: &str, literal: Option<&str>) -> String {
    let expr = column_expr(
        Dialect::Postgres,
        "v",
        classify_postgres(ty),
        classify_postgres(ty),
        EmptyText::IsNull,
    );
    let sql = format!("SELECT {expr} FROM (SELECT ($1::text)::{ty} AS \"v\") s");
    let client = Sides::client(side);
    client.query_one(&sql, &[&literal]).await.unwrap().get(0)
}

/// (case, type, a, b, equal?)
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

#[tokio::test]
async fn canonical_encoding_equates_equal_values_and_separates_different_ones() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    // (case, type, a, b, equal?)
    let cases: &[Case] = &[
        ("Oracle '' is NULL", "varchar", Some(""), None, true),
        (
            "text is not its prefix",
            "text",
            Some("ab"),
            Some("a"),
            false,
        ),
        (
            "CHAR padding",
            "character(8)",
            Some("ab"),
            Some("ab      "),
            true,
        ),
        (
            "CHAR vs different",
            "character(8)",
            Some("ab"),
            Some("abc"),
            false,
        ),
        (
            "numeric trailing zeros",
            "numeric",
            Some("1.50"),
            Some("1.5"),
            true,
        ),
        (
            "numeric scale",
            "numeric(12,4)",
            Some("2"),
            Some("2.0000"),
            true,
        ),
        (
            "numeric differs",
            "numeric",
            Some("1.5"),
            Some("1.05"),
            false,
        ),
        (
            "negative zero",
            "double precision",
            Some("-0"),
            Some("0"),
            true,
        ),
        (
            "NaN is NaN",
            "double precision",
            Some("NaN"),
            Some("NaN"),
            true,
        ),
        (
            "infinity",
            "double precision",
            Some("Infinity"),
            Some("Infinity"),
            true,
        ),
        (
            "infinities differ",
            "double precision",
            Some("Infinity"),
            Some("-Infinity"),
            false,
        ),
        (
            "float last bit",
            "double precision",
            Some("0.1"),
            Some("0.10000000000000002"),
            false,
        ),
        (
            "timestamptz to UTC",
            "timestamptz",
            Some("2026-03-01 12:00:00.123456+02"),
            Some("2026-03-01 10:00:00.123456+00"),
            true,
        ),
        (
            "timestamptz microsecond",
            "timestamptz",
            Some("2026-03-01 10:00:00.123456+00"),
            Some("2026-03-01 10:00:00.123457+00"),
            false,
        ),
        (
            "DATE carries a time",
            "timestamp",
            Some("2026-03-01 00:00:00"),
            Some("2026-03-01"),
            true,
        ),
        (
            "timestamp seconds",
            "timestamp",
            Some("2026-03-01 00:00:01"),
            Some("2026-03-01 00:00:00"),
            false,
        ),
        ("bytea", "bytea", Some("\\x00ff10"), Some("\\x00ff10"), true),
        (
            "bytea differs",
            "bytea",
            Some("\\x00ff10"),
            Some("\\x00ff11"),
            false,
        ),
        ("empty bytea is not NULL", "bytea", Some("\\x"), None, false),
        (
            "jsonb key order",
            "jsonb",
            Some("{\"b\": 1, \"a\": [1, 2]}"),
            Some("{\"a\":[1,2],\"b\":1}"),
            true,
        ),
        (
            "jsonb values",
            "jsonb",
            Some("{\"a\": 1}"),
            Some("{\"a\": 2}"),
            false,
        ),
        (
            "uuid case",
            "uuid",
            Some("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            true,
        ),
        ("NULL is not false", "boolean", None, Some("false"), false),
        ("booleans", "boolean", Some("true"), Some("t"), true),
        (
            "text/CLOB",
            "text",
            Some("long text ✓"),
            Some("long text ✓"),
            true,
        ),
    ];
    let mut failures = Vec::new();
    for (case, ty, a, b, equal) in cases {
        let (ca, cb) = (
            canonical(&sides.source, ty, *a).await,
            canonical(&sides.source, ty, *b).await,
        );
        if (ca == cb) != *equal {
            failures.push(format!(
                "{case}: {a:?} -> {ca:?} vs {b:?} -> {cb:?}, expected equal = {equal}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

const ORDERS: &str = "CREATE TABLE $S.orders (id bigint PRIMARY KEY, customer varchar(40), status char(10), \
    total numeric(14,4), score double precision, ordered_at timestamptz, payload jsonb, note text, blob bytea);
    INSERT INTO $S.orders SELECT g, 'customer ' || (g % 97), CASE WHEN g % 3 = 0 THEN 'shipped' ELSE 'open' END, \
    (g * 1.25)::numeric(14,4), g / 7.0, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute', \
    jsonb_build_object('g', g, 'tag', 't' || (g % 5)), CASE WHEN g % 11 = 0 THEN NULL ELSE 'note ' || g END, \
    decode(md5(g::text), 'hex') FROM generate_series(1, 5000) g; ANALYZE $S.orders;";

#[tokio::test]
async fn identical_tables_match_with_no_false_positive() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides.both(ORDERS).await;
    let result = sides.compare("orders", &small()).await;
    assert_eq!(result.source_rows, 5000);
    assert_eq!(result.target_rows, 5000);
    assert_eq!(result.mismatched(), 0, "{:?}", result.diffs);
    assert!(result.diffs.is_empty());
    assert_eq!(result.queries, 2, "one scan per side when nothing differs");
}

#[tokio::test]
async fn every_kind_of_drift_is_found_by_key_and_column() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides.both(ORDERS).await;
    sides
        .target(
            "UPDATE $S.orders SET total = total + 0.0001 WHERE id = 17;
             UPDATE $S.orders SET status = 'lost' WHERE id = 2500;
             UPDATE $S.orders SET note = '' WHERE id = 4001;  -- '' vs a value
             UPDATE $S.orders SET payload = payload || '{\"tag\": \"x\"}' WHERE id = 333;
             DELETE FROM $S.orders WHERE id IN (1, 4999);
             INSERT INTO $S.orders (id, customer) VALUES (6000, 'ghost'), (0, 'zero');",
        )
        .await;
    // Between two PostgreSQL databases '' and NULL are different values.
    sides
        .source("UPDATE $S.orders SET note = '' WHERE id = 22")
        .await;
    sides
        .target("UPDATE $S.orders SET note = NULL WHERE id = 22")
        .await;

    for hashing in [Hashing::Stream, Hashing::Database] {
        let result = sides
            .compare("orders", &Options { hashing, ..small() })
            .await;
        drift_is_exactly_what_was_done(&result);
    }
}

fn drift_is_exactly_what_was_done(result: &data_validator::engine::SegmentResult) {
    assert_eq!(result.different, 5, "{:#?}", result.diffs);
    assert_eq!(result.missing_in_target, 2);
    assert_eq!(result.extra_in_target, 2);
    let by_key = |k: &str| {
        result
            .diffs
            .iter()
            .find(|d| d.key == k)
            .unwrap_or_else(|| panic!("{k} not in {:#?}", result.diffs))
    };
    let d = by_key("id=17");
    assert_eq!(d.kind, DiffKind::Different);
    assert_eq!(d.columns.len(), 1);
    assert_eq!(d.columns[0].column, "total");
    assert_eq!(by_key("id=2500").columns[0].column, "status");
    assert_eq!(by_key("id=4001").columns[0].column, "note");
    assert_eq!(by_key("id=333").columns[0].column, "payload");
    assert_eq!(by_key("id=1").kind, DiffKind::MissingInTarget);
    assert_eq!(by_key("id=4999").kind, DiffKind::MissingInTarget);
    assert_eq!(by_key("id=6000").kind, DiffKind::ExtraInTarget);
    assert_eq!(by_key("id=0").kind, DiffKind::ExtraInTarget);
    let empty = by_key("id=22");
    assert_eq!(empty.kind, DiffKind::Different);
    assert_eq!(empty.columns[0].column, "note");
    assert_eq!(
        (
            empty.columns[0].source.as_deref(),
            empty.columns[0].target.as_deref()
        ),
        (Some(""), None),
        "'' on the source, NULL on the target"
    );
    // Reported in key order: id=0 (extra) first, id=6000 last.
    let keys: Vec<&str> = result.diffs.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys.first(), Some(&"id=0"), "{keys:?}");
    assert_eq!(keys.last(), Some(&"id=6000"), "{keys:?}");
    // Bisection fetched a few small ranges, not the table.
    assert!(result.queries < 60, "{} queries", result.queries);
}

/// Every category, with its edge values, in one table; each row in a bucket of its own.
const EVERY: &str = "CREATE TABLE $S.every (id int PRIMARY KEY, i2 smallint, i8 bigint, n numeric, n4 numeric(12,4), \
    f8 double precision, f4 real, vc varchar(20), ch char(8), tx text, big text, dt date, ts timestamp, tz timestamptz, \
    js jsonb, u uuid, b boolean, by bytea, iv interval);
    INSERT INTO $S.every (id) VALUES (1);
    INSERT INTO $S.every VALUES
      (2, -32768, -9223372036854775808, 'NaN', 0, '-0', 'NaN', '', '', '', '', '0001-01-01', '1970-01-01 00:00:00', '1969-12-31 23:59:59.5+00',
       '{}', '00000000-0000-0000-0000-000000000000', false, '\\x', '0'),
      (3, 32767, 9223372036854775807, 'Infinity', 99999999.9999, 'Infinity', '-Infinity', 'ab  ', 'ab', 'line\nbreak\ttab\\', 'é✓🙂',
       '9999-12-31', '2026-03-01 12:34:56.000001', 'infinity', '{\"b\": [1, 2.50], \"a\": null}', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
       true, '\\x00ff10', '1 day 02:03:04.5'),
      (4, 0, 0, '-Infinity', -0.0001, '-Infinity', 1.5, 'x', 'abcdefgh', 'a|b', repeat('long ', 2000), '2026-03-01', '2026-03-01 00:00:00',
       '-infinity', '[1, \"x\", {\"k\": false}]', gen_random_uuid(), NULL, decode(repeat('ab', 5000), 'hex'), '-3 months'),
      (5, 1, 1, 0.000000000000000000001, 1.5, 5e-324, 3.4e38, 'ünï', ' lead', '  ', 'N', '2000-02-29', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00',
       '\"s\"', NULL, true, '\\x00', NULL);
    INSERT INTO $S.every SELECT g, (g % 1000)::smallint, g * 1000003, ((g * 1.37) - 500)::numeric * power(10::numeric, (g % 40) - 20),
      round(g * 1.2345, 4), g / 7.0 - 300, (g / 3.0)::real, 'v' || g, 'c' || (g % 97), CASE WHEN g % 9 = 0 THEN NULL ELSE 't ' || g END,
      repeat(chr(65 + g % 26), g % 50), date '2020-01-01' + g, timestamp '2020-01-01' + g * interval '1.000001 s',
      timestamptz '2020-01-01 00:00:00+00' - g * interval '7 min 3.25 s', jsonb_build_object('g', g, 'n', g / 4.0),
      md5(g::text)::uuid, g % 2 = 0, decode(md5(g::text), 'hex'), g * interval '1 min'
      FROM generate_series(6, 1500) g;";

#[tokio::test]
async fn streamed_hashes_equal_database_hashes_for_every_category() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides.both(EVERY).await;
    let table = sides.table("every");
    let described = describe(&sides.source, &table).await.unwrap().unwrap();
    let (mut plan, _) = compare(&table, &described, &described);
    // The categories a PostgreSQL pair does not produce by itself: text beside
    // an Oracle CLOB, and varchar beside an Oracle CHAR.
    for column in &mut plan.columns {
        match column.source.as_str() {
            "big" => column.category = Category::LargeText,
            "vc" => column.category = Category::FixedChar,
            _ => {}
        }
    }
    let categories: std::collections::BTreeSet<String> = plan
        .columns
        .iter()
        .map(|c| format!("{:?}", c.category))
        .collect();
    assert_eq!(
        categories.len(),
        14,
        "every category is in the table: {categories:?}"
    );
    // Both meanings of '' (a pair with Oracle, two PostgreSQL databases): the
    // stream and the SQL must agree under each.
    for empty in [EmptyText::IsNull, EmptyText::IsValue] {
        every_bucket_hashes_the_same_streamed_and_in_sql(&sides, &plan, empty).await;
    }
}

/// Every bucket's (row count, hash sum) from the streamed COPY `copy`.
async fn buckets_streamed(
    side: &Side,
    sql: &SideSql,
    copy: &str,
    boundaries: &[String],
) -> std::collections::BTreeMap<i64, (u64, u128)> {
    side.copy_buckets(copy, sql, boundaries, data_validator::stream::RowHash::Md5)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, b)| (k, (b.count, b.sum)))
        .collect()
}

/// Every bucket's (row count, hash sum) as the database's bucket query reports it.
async fn buckets_in_database(
    side: &Side,
    sql: &SideSql,
    range: &KeyRange,
    boundaries: &[String],
) -> std::collections::BTreeMap<i64, (u64, u128)> {
    side.query(&sql.bucket_hashes(range, boundaries))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let v = |i: usize| r[i].clone().unwrap();
            (
                v(0).parse().unwrap(),
                (v(1).parse().unwrap(), v(2).parse().unwrap()),
            )
        })
        .collect()
}

async fn every_bucket_hashes_the_same_streamed_and_in_sql(
    sides: &Sides,
    plan: &data_validator::schema::TablePlan,
    empty: EmptyText,
) {
    let sql = SideSql::new(Dialect::Postgres, plan, Role::Source, empty);
    let side = &sides.source;
    let ids: Vec<String> = (2..=1500).map(|i| i.to_string()).collect();
    for (range, boundaries) in [
        (KeyRange::default(), ids.clone()),
        (KeyRange::default(), Vec::new()),
        (
            KeyRange {
                lo: Some("3".into()),
                hi: Some("700".into()),
            },
            vec!["4".into(), "5".into(), "100".into()],
        ),
    ] {
        let streamed = buckets_streamed(
            side,
            &sql,
            &sql.bucket_copy(&range, &boundaries),
            &boundaries,
        )
        .await;
        let in_database = buckets_in_database(side, &sql, &range, &boundaries).await;
        let differing: Vec<_> = in_database
            .iter()
            .filter(|(k, v)| streamed.get(k) != Some(v))
            .map(|(k, _)| *k)
            .collect();
        assert!(
            differing.is_empty() && streamed.len() == in_database.len(),
            "buckets {differing:?} hash differently when streamed ({} buckets)",
            in_database.len()
        );
        if boundaries.len() > 1000 {
            assert_eq!(streamed.len(), 1500, "one row per bucket");
        }
    }
}

#[tokio::test]
async fn composite_keys_and_text_leading_keys_are_bisected() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides
        .both(
            "CREATE TABLE $S.items (order_id bigint, line_no int, sku char(12), qty int, PRIMARY KEY (order_id, line_no));
             INSERT INTO $S.items SELECT o, l, 'SKU' || o || '-' || l, l FROM generate_series(1, 800) o, generate_series(1, 4) l;
             CREATE TABLE $S.payments (id uuid PRIMARY KEY, amount numeric(12,2));
             INSERT INTO $S.payments SELECT md5('p' || g)::uuid, g FROM generate_series(1, 3000) g;
             ANALYZE $S.items; ANALYZE $S.payments;",
        )
        .await;
    sides
        .target(
            "UPDATE $S.items SET qty = 99 WHERE order_id = 400 AND line_no = 3;
             DELETE FROM $S.items WHERE order_id = 7 AND line_no = 1;
             UPDATE $S.payments SET amount = amount + 1 WHERE id = md5('p1500')::uuid;",
        )
        .await;
    let items = sides.compare("items", &small()).await;
    assert_eq!(
        (
            items.different,
            items.missing_in_target,
            items.extra_in_target
        ),
        (1, 1, 0),
        "{:#?}",
        items.diffs
    );
    assert!(
        items
            .diffs
            .iter()
            .any(|d| d.key == "order_id=400,line_no=3" && d.columns[0].column == "qty"),
        "{:#?}",
        items.diffs
    );
    assert!(items.diffs.iter().any(|d| d.key == "order_id=7,line_no=1"));

    let payments = sides.compare("payments", &small()).await;
    assert_eq!(payments.different, 1, "{:#?}", payments.diffs);
    assert_eq!(payments.mismatched(), 1);
}

#[tokio::test]
async fn tables_without_a_key_compare_as_multisets() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides
        .both(
            "CREATE TABLE $S.audit (actor text, action text, at timestamptz);
             INSERT INTO $S.audit SELECT 'u' || (g % 50), 'login', timestamptz '2026-01-01 00:00:00+00' + (g % 700) * interval '1 s'
               FROM generate_series(1, 2000) g;
             INSERT INTO $S.audit VALUES ('dup', 'twice', '2026-02-02 00:00:00+00'), ('dup', 'twice', '2026-02-02 00:00:00+00');",
        )
        .await;
    let same = sides.compare("audit", &small()).await;
    assert_eq!(same.mismatched(), 0, "{:#?}", same.diffs);

    // One of the two duplicates is lost on the target: a multiset difference.
    sides
        .target("DELETE FROM $S.audit WHERE ctid = (SELECT min(ctid) FROM $S.audit WHERE actor = 'dup')")
        .await;
    let result = sides.compare("audit", &small()).await;
    assert_eq!(result.missing_in_target, 1, "{:#?}", result.diffs);
    assert_eq!(result.diffs.len(), 1);
    assert_eq!(result.diffs[0].copies, Some((2, 1)));
    assert!(
        result.diffs[0].key.contains("twice"),
        "{}",
        result.diffs[0].key
    );
}

#[tokio::test]
async fn names_with_quotes_and_spaces_are_always_quoted() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides
        .both(
            "CREATE TABLE $S.\"odd \"\"table\"\" name\" (\"my id\" int PRIMARY KEY, \"col \"\"x\"\"; drop\" text);
             INSERT INTO $S.\"odd \"\"table\"\" name\" SELECT g, 'v' || g FROM generate_series(1, 300) g;",
        )
        .await;
    sides.target("UPDATE $S.\"odd \"\"table\"\" name\" SET \"col \"\"x\"\"; drop\" = 'changed' WHERE \"my id\" = 42").await;
    let result = sides.compare("odd \"table\" name", &small()).await;
    assert_eq!(result.different, 1, "{:#?}", result.diffs);
    assert_eq!(result.diffs[0].key, "my id=42");
    assert_eq!(result.diffs[0].columns[0].column, "col \"x\"; drop");
}

#[tokio::test]
async fn schema_differences_are_findings_not_crashes() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides
        .source("CREATE TABLE $S.t (id int PRIMARY KEY, a text, b numeric)")
        .await;
    sides
        .target("CREATE TABLE $S.t (id int PRIMARY KEY, a int, c text)")
        .await;
    let table = sides.table("t");
    let s = describe(&sides.source, &table).await.unwrap().unwrap();
    let t = describe(&sides.target, &table).await.unwrap().unwrap();
    let (plan, findings) = compare(&table, &s, &t);
    let text: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    assert!(text.iter().any(|m| m.contains("column a")), "{text:?}");
    assert!(
        text.iter()
            .any(|m| m.contains("column b is missing on the target")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("column c exists on the target only")),
        "{text:?}"
    );
    assert_eq!(plan.columns.len(), 1, "only id can be compared");
    assert!(describe(&sides.source, &sides.table("no_such_table"))
        .await
        .unwrap()
        .is_none());
}

/// Keys that sort differently under the two sides' collations: case, accents,
/// punctuation and digits (ICU en-US ignores punctuation at first and folds case).
const PEOPLE: &str = "CREATE TABLE $S.people (email text COLLATE $C PRIMARY KEY, name text, born date);
    INSERT INTO $S.people SELECT (ARRAY['a','B','_','Z','é','b','A','z','0','-','É','.'])[1 + g % 12]
      || (ARRAY['x','X','-','ß',' '])[1 + (g / 12) % 5] || md5(g::text), 'person ' || g, date '1950-01-01' + g
      FROM generate_series(1, 3000) g;
    ANALYZE $S.people;";

#[tokio::test]
async fn text_lead_buckets_found_in_rust_equal_width_bucket_in_the_c_collation() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    // An ICU table: the server's own order is not the byte order the buckets use.
    sides.source(&PEOPLE.replace("$C", "\"en-US-x-icu\"")).await;
    let table = sides.table("people");
    let described = describe(&sides.source, &table).await.unwrap().unwrap();
    let (plan, _) = compare(&table, &described, &described);
    let sql = SideSql::new(Dialect::Postgres, &plan, Role::Source, EmptyText::IsValue);
    assert!(sql.buckets_text_lead_here());
    let side = &sides.source;
    // Boundaries that are keys themselves (a key equal to a boundary opens the next
    // bucket), keys with accents and punctuation, and values between keys.
    let mut keys: Vec<String> = side
        .query(&data_validator::sql::Query {
            sql: format!(
                "SELECT email FROM {} ORDER BY email COLLATE \"C\"",
                table.quoted()
            ),
            params: Vec::new(),
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    keys.dedup();
    let every_97th: Vec<String> = keys.iter().step_by(97).cloned().collect();
    let between = vec!["-".to_string(), "B".into(), "_zzz".into(), "é".into()];
    for (range, boundaries) in [
        (KeyRange::default(), every_97th),
        (KeyRange::default(), between),
        (
            KeyRange {
                lo: Some("A".into()),
                hi: Some("b".into()),
            },
            vec!["B".into(), "Z".into(), "a".into()],
        ),
    ] {
        let copy = sql.bucket_copy(&range, &boundaries);
        assert!(!copy.contains("width_bucket"), "{copy}");
        let streamed = buckets_streamed(side, &sql, &copy, &boundaries).await;
        let in_database = buckets_in_database(side, &sql, &range, &boundaries).await;
        assert_eq!(streamed, in_database, "{boundaries:?}");
        assert!(streamed.len() > 1, "{boundaries:?}: several buckets");
    }
}

#[tokio::test]
async fn text_keys_compare_exactly_across_collations_and_session_settings() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    // The source sorts in "C" and lives in UTC with day-first dates; the target
    // sorts in ICU en-US, lives in Kolkata and reads month-first dates.
    sides.source(&PEOPLE.replace("$C", "\"C\"")).await;
    sides.target(&PEOPLE.replace("$C", "\"en-US-x-icu\"")).await;
    sides
        .source("SET TimeZone = 'UTC'; SET DateStyle = 'SQL, DMY'")
        .await;
    sides
        .target("SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'SQL, MDY'")
        .await;
    // The truth: 2 missing, 0 extra, 3 different (the name column).
    sides
        .target(
            "DELETE FROM $S.people WHERE name IN ('person 5', 'person 2999');
             UPDATE $S.people SET name = name || '!' WHERE name IN ('person 1', 'person 1500', 'person 2222');",
        )
        .await;
    for hashing in [Hashing::Stream, Hashing::Database] {
        let result = sides
            .compare("people", &Options { hashing, ..small() })
            .await;
        assert_eq!(
            (
                result.missing_in_target,
                result.extra_in_target,
                result.different
            ),
            (2, 0, 3),
            "{hashing:?}: {:#?}",
            result.diffs
        );
        assert!(
            result
                .diffs
                .iter()
                .filter(|d| d.kind == DiffKind::Different)
                .all(|d| d.columns.len() == 1 && d.columns[0].column == "name"),
            "{:#?}",
            result.diffs
        );
        assert_eq!((result.source_rows, result.target_rows), (3000, 2998));
    }

    // Date, timestamp and timestamptz keys: the boundaries cut on the source must
    // mean the same instants on the target whatever its DateStyle and TimeZone.
    sides
        .both(
            "CREATE TABLE $S.days (d date PRIMARY KEY, v int);
             INSERT INTO $S.days SELECT date '2024-01-01' + g, g FROM generate_series(1, 2000) g;
             CREATE TABLE $S.moments (at timestamp PRIMARY KEY, v int);
             INSERT INTO $S.moments SELECT timestamp '2024-01-01' + g * interval '7 hours 3.5 s', g FROM generate_series(1, 2000) g;
             CREATE TABLE $S.ticks (at timestamptz PRIMARY KEY, v int);
             INSERT INTO $S.ticks SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '5 hours 0.25 s', g FROM generate_series(1, 2000) g;
             ANALYZE $S.days; ANALYZE $S.moments; ANALYZE $S.ticks;",
        )
        .await;
    for table in ["days", "moments", "ticks"] {
        let result = sides.compare(table, &small()).await;
        assert_eq!(result.mismatched(), 0, "{table}: {:#?}", result.diffs);
        assert_eq!((result.source_rows, result.target_rows), (2000, 2000));
    }
}

#[tokio::test]
async fn declared_type_changes_are_graded_findings_and_equal_values_still_match() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides
        .source(
            "CREATE TABLE $S.t (id integer PRIMARY KEY, amount numeric(10), code varchar(10), at timestamp);
             INSERT INTO $S.t SELECT g, g * 3, 'c' || g, timestamp '2024-01-01' + g * interval '1 day' FROM generate_series(1, 500) g;
             UPDATE $S.t SET at = 'infinity' WHERE id = 7;",
        )
        .await;
    sides
        .target(
            "CREATE TABLE $S.t (id bigint PRIMARY KEY, amount numeric(12,2), code text, at timestamp);
             INSERT INTO $S.t SELECT g, g * 3, 'c' || g, timestamp '2024-01-01' + g * interval '1 day' FROM generate_series(1, 500) g;
             UPDATE $S.t SET at = NULL WHERE id = 7;",
        )
        .await;
    let table = sides.table("t");
    let s = describe(&sides.source, &table).await.unwrap().unwrap();
    let t = describe(&sides.target, &table).await.unwrap().unwrap();
    let (_, findings) = compare(&table, &s, &t);
    let graded: Vec<(String, Option<data_validator::schema::TypeGrade>)> = findings
        .iter()
        .map(|f| {
            (
                f.message.split(':').next().unwrap_or("").to_string(),
                f.grade,
            )
        })
        .collect();
    use data_validator::schema::TypeGrade::Widening;
    assert_eq!(
        graded,
        vec![
            ("column id".to_string(), Some(Widening)),
            ("column amount".to_string(), Some(Widening)),
            ("column code".to_string(), Some(Widening)),
        ],
        "{findings:#?}"
    );
    // integer vs bigint, numeric(10) vs numeric(12,2): equal values compare equal;
    // 'infinity' is not NULL.
    let result = sides.compare("t", &small()).await;
    assert_eq!(result.different, 1, "{:#?}", result.diffs);
    assert_eq!(result.diffs[0].key, "id=7");
    assert_eq!(result.diffs[0].columns[0].column, "at");
}

#[tokio::test]
async fn a_row_that_keeps_changing_is_in_flight_not_a_mismatch() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides
        .both(
            "CREATE TABLE $S.hot (id int PRIMARY KEY, v bigint NOT NULL);
             INSERT INTO $S.hot SELECT g, g FROM generate_series(1, 2000) g; ANALYZE $S.hot;",
        )
        .await;
    sides.target("UPDATE $S.hot SET v = -1 WHERE id = 7").await;
    // Row 42 changes on the target every few milliseconds, through every re-check.
    let writer = world.admin_db(Node::UsEast1, "dv_test").await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let update = format!("UPDATE {}.hot SET v = v + 1 WHERE id = 42", sides.schema);
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                writer.batch_execute(&update).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let live = data_validator::engine::Live::Delay {
        ms: 150,
        rechecks: 3,
    };
    let result = sides.compare("hot", &Options { live, ..small() }).await;
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    assert_eq!(
        (result.different, result.in_flight),
        (1, 1),
        "{:#?}",
        result.diffs
    );
    assert_eq!(result.mismatched(), 1, "an in-flight row is not a mismatch");
    let kind = |key: &str| result.diffs.iter().find(|d| d.key == key).map(|d| d.kind);
    assert_eq!(kind("id=7"), Some(DiffKind::Different));
    assert_eq!(kind("id=42"), Some(DiffKind::InFlight));
    assert_eq!(result.rechecked, 2);
}

/// Replication held back (the subscription disabled) while the source changes
/// 417 rows, and 7 rows differ on the target for real: the raw comparison sees
/// 424 differences; the live one (replication resuming 1.5 s into it) re-reads
/// what it finds once the slot has passed the source's position and reports
/// exactly the 7.
#[tokio::test]
async fn live_differences_are_rechecked_once_replication_has_caught_up() {
    let world = World::load().expect("the local world is up");
    let source = world.admin_db(Node::Source, "app").await.unwrap();
    let target = world.admin_db(Node::UsEast1, "app").await.unwrap();
    let name = format!("moving_{}", std::process::id());
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS validator_live; DROP TABLE IF EXISTS validator_live.{name};
         CREATE TABLE validator_live.{name} (id bigint PRIMARY KEY, v bigint NOT NULL, note text)"
    );
    source.batch_execute(&ddl).await.unwrap();
    target.batch_execute(&ddl).await.unwrap();
    // The rows exist on the source first and reach the target by the subscription's
    // initial copy (the replication role may read them), then changes by the stream.
    source
        .batch_execute(&format!(
            "INSERT INTO validator_live.{name} SELECT g, g, 'n' || g FROM generate_series(1, 5000) g;
             ANALYZE validator_live.{name};
             GRANT USAGE ON SCHEMA validator_live TO replicator;
             GRANT SELECT ON validator_live.{name} TO replicator"
        ))
        .await
        .unwrap();
    target
        .batch_execute("ALTER SUBSCRIPTION cutover_sub REFRESH PUBLICATION WITH (copy_data = true)")
        .await
        .unwrap();
    // Copied, and the table's synchronisation finished (state r: ready), so changes stream.
    let count = format!(
        "SELECT count(*) FROM validator_live.{name} WHERE EXISTS (SELECT 1 FROM pg_subscription_rel \
         WHERE srrelid = 'validator_live.{name}'::regclass AND srsubstate = 'r')"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while target
        .query_one(&count, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        < 5000
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the initial copy did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    target
        .batch_execute(&format!(
            "UPDATE validator_live.{name} SET note = 'drift' WHERE id IN (11, 222, 1333, 2444, 3555, 4666, 4999)"
        ))
        .await
        .unwrap();
    let (source, target) = (
        Side::Postgres {
            label: "source".into(),
            client: source,
        },
        Side::Postgres {
            label: "target".into(),
            client: target,
        },
    );
    let table = TableRef::new("validator_live", name.clone());
    let s = describe(&source, &table).await.unwrap().unwrap();
    let t = describe(&target, &table).await.unwrap().unwrap();
    let (plan, _) = compare(&table, &s, &t);
    let pair = Pair::new(&source, &target, &plan);
    let client = Sides::client;
    // Both ways to a first read: one sorted merge of the key-ordered streams (the
    // default), and buckets with bisection.
    for merge in [true, false] {
        client(&target)
            .batch_execute("ALTER SUBSCRIPTION cutover_sub DISABLE")
            .await
            .unwrap();
        client(&source)
            .batch_execute(&format!(
                "UPDATE validator_live.{name} SET v = v + 1 WHERE id % 12 = 5"
            ))
            .await
            .unwrap();
        live_run_finds_exactly_the_stable_differences(&pair, &target, merge).await;
    }
    // Dropped on the source first, then on the target once the subscription has applied
    // everything: a change arriving for a table the target no longer has would stop the
    // apply worker (and every later test's replication) in an error loop.
    source_then_target_drop(client(&source), client(&target), &name).await;
}

async fn live_run_finds_exactly_the_stable_differences(
    pair: &Pair<'_>,
    target: &Side,
    merge: bool,
) {
    let whole = KeyRange::default();
    let raw = pair
        .compare_segment(&whole, 5000, &Options { merge, ..small() })
        .await;
    let live = Options {
        live: data_validator::engine::Live::Slot {
            slot: "cutover_sub".into(),
            rechecks: 3,
            wait_ms: 30_000,
        },
        merge,
        ..small()
    };
    // The replication resumes 1.5 s into the live run; both finish before any assertion,
    // so the subscription is enabled again whatever the comparison found.
    let (checked, enabled) = tokio::join!(pair.compare_segment(&whole, 5000, &live), async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let Side::Postgres { client, .. } = target else {
            unreachable!()
        };
        client
            .batch_execute("ALTER SUBSCRIPTION cutover_sub ENABLE")
            .await
    });
    enabled.unwrap();
    let (raw, checked) = (raw.unwrap(), checked.unwrap());
    assert_eq!(
        raw.different, 424,
        "merge {merge}: 417 in flight + 7 real, read raw"
    );
    assert_eq!(
        checked.merged_rows > 0,
        merge,
        "merge {merge}: the first read was a sorted merge"
    );
    assert_eq!(
        (checked.different, checked.in_flight),
        (7, 0),
        "{:#?}",
        checked.diffs
    );
    // The rows a first read still found different were re-read once the slot had
    // passed that read: every one but the 7 was resolved. (Buckets first read after
    // the replication resumed never get that far: they already match.)
    assert!(checked.resolved > 0, "the re-check path resolved nothing");
    assert_eq!(checked.rechecked, checked.resolved + 7);
    println!(
        "live: {} re-checked, {} resolved, {} stable differences",
        checked.rechecked, checked.resolved, checked.different
    );
    assert!(checked
        .diffs
        .iter()
        .all(|d| d.kind == DiffKind::Different && d.columns[0].column == "note"));
}

async fn source_then_target_drop(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    name: &str,
) {
    source
        .batch_execute(&format!("DROP TABLE validator_live.{name}"))
        .await
        .unwrap();
    cutover_rehearsal::replication::wait_for_cdc(source, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    target
        .batch_execute(&format!("DROP TABLE validator_live.{name}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn sampled_boundaries_cut_a_large_text_key_table_exactly() {
    // 120,000 rows: the first pass cuts its buckets from a block sample of the keys
    // (no sort of every key), in the "C" order on both sides.
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    let ddl = "CREATE TABLE $S.big_text (k text COLLATE $C PRIMARY KEY, v int);
        INSERT INTO $S.big_text SELECT md5(g::text) || '-' || g, g FROM generate_series(1, 120000) g;
        ANALYZE $S.big_text;";
    sides.source(&ddl.replace("$C", "\"C\"")).await;
    sides.target(&ddl.replace("$C", "\"en-US-x-icu\"")).await;
    sides
        .target("UPDATE $S.big_text SET v = -v WHERE v IN (7, 60000, 119999); DELETE FROM $S.big_text WHERE v = 4242;")
        .await;
    let result = sides
        .compare(
            "big_text",
            &Options {
                bucket_rows: 1000,
                ..Options::default()
            },
        )
        .await;
    assert_eq!(
        (
            result.different,
            result.missing_in_target,
            result.extra_in_target
        ),
        (3, 1, 0),
        "{:#?}",
        result.diffs
    );
    assert_eq!((result.source_rows, result.target_rows), (120_000, 119_999));
}

#[tokio::test]
async fn massive_drift_is_compared_in_one_key_ordered_pass() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides
        .both(
            "CREATE TABLE $S.wide (id bigint PRIMARY KEY, v text, n numeric(12,2));
             INSERT INTO $S.wide SELECT g, 'value ' || g, g / 4.0 FROM generate_series(1, 20000) g;
             ANALYZE $S.wide;",
        )
        .await;
    // A tenth of the rows differ, some are missing, some extra: every bucket differs.
    sides
        .target(
            "UPDATE $S.wide SET n = n + 1 WHERE id % 10 = 3;
             DELETE FROM $S.wide WHERE id % 400 = 7;
             INSERT INTO $S.wide SELECT g, 'extra', 0 FROM generate_series(30001, 30030) g;",
        )
        .await;
    let options = Options {
        max_diffs: 100,
        ..small()
    };
    let result = sides.compare("wide", &options).await;
    assert_eq!(
        (
            result.different,
            result.missing_in_target,
            result.extra_in_target
        ),
        (2000, 50, 30),
        "exact totals"
    );
    assert_eq!((result.source_rows, result.target_rows), (20000, 19980));
    // Before: each differing bucket was fetched on its own (hundreds of queries).
    assert_eq!(result.merged_rows, 20030, "every row compared by the merge");
    assert!(result.queries <= 4, "{} queries", result.queries);
    // The first 100 differences in key order, with their columns and values.
    assert_eq!(result.diffs.len(), 100);
    let expected: Vec<String> = (1..=20000i64)
        .filter(|id| id % 10 == 3 || id % 400 == 7)
        .take(100)
        .map(|id| format!("id={id}"))
        .collect();
    let keys: Vec<String> = result.diffs.iter().map(|d| d.key.clone()).collect();
    assert_eq!(keys, expected);
    let d = &result.diffs[0];
    assert_eq!((d.kind, d.columns.len()), (DiffKind::Different, 1));
    assert_eq!(d.columns[0].column, "n");
    assert_eq!(
        (
            d.columns[0].source.as_deref(),
            d.columns[0].target.as_deref()
        ),
        (Some("0.75"), Some("1.75"))
    );
    assert_eq!(result.diffs[1].kind, DiffKind::MissingInTarget, "id=7");
}

#[tokio::test]
async fn massive_drift_on_a_text_key_across_collations_is_merged_after_one_bucket_pass() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    // The target's key index is in ICU en-US: reading it in byte order needs a sort,
    // so the bucket pass comes first, and the dense span is merged.
    sides.source(&PEOPLE.replace("$C", "\"C\"")).await;
    sides.target(&PEOPLE.replace("$C", "\"en-US-x-icu\"")).await;
    sides
        .target(
            "UPDATE $S.people SET name = name || '!' WHERE right(name, 1) IN ('3', '7');
             DELETE FROM $S.people WHERE name = 'person 2999';",
        )
        .await;
    let result = sides.compare("people", &small()).await;
    assert_eq!(
        (
            result.different,
            result.missing_in_target,
            result.extra_in_target
        ),
        (600, 1, 0),
        "{:#?}",
        &result.diffs[..3]
    );
    assert!(result.merged_rows > 0, "the dense span was merged");
    assert!(result.queries <= 6, "{} queries", result.queries);
    assert_eq!(result.diffs.len(), 100);
    assert!(result
        .diffs
        .iter()
        .filter(|d| d.kind == DiffKind::Different)
        .all(|d| d.columns.len() == 1 && d.columns[0].column == "name"));
}

/// Keys that sort the same under "C" and ICU en-US: lower-case hex digits, '-' and
/// digits. Each side's rows are stored in its own key order (as a load in key
/// order leaves them), so its key index reads them at about a sequential scan's cost.
const CODES: &str = "CREATE TABLE $S.codes (k text COLLATE $C PRIMARY KEY, v text, n int);
    INSERT INTO $S.codes SELECT md5(g::text) || '-' || g, 'value ' || g, g FROM generate_series(1, 4000) g;
    CLUSTER $S.codes USING codes_pkey;
    ANALYZE $S.codes;";

/// Injected on the target: 3 different (v), 2 missing, 2 extra.
const CODES_DRIFT: &str = "UPDATE $S.codes SET v = v || '!' WHERE n IN (5, 1234, 3999);
    DELETE FROM $S.codes WHERE n IN (17, 2500);
    INSERT INTO $S.codes SELECT md5('extra ' || g) || '-x' || g, 'extra', -g FROM generate_series(1, 2) g;";

fn codes_drift_is_exact(result: &data_validator::engine::SegmentResult) {
    assert_eq!(
        (
            result.different,
            result.missing_in_target,
            result.extra_in_target
        ),
        (3, 2, 2),
        "{:#?}",
        result.diffs
    );
    assert_eq!(result.diffs.len(), 7);
    assert!(result
        .diffs
        .iter()
        .filter(|d| d.kind == DiffKind::Different)
        .all(|d| d.columns.len() == 1 && d.columns[0].column == "v"));
}

/// Each side's rows stored in its own collation's key order (so its key index reads
/// them cheaply, and a merge in that order would be tempting): keys that sort alike in
/// "C" and ICU en-US, keys that do not (case, accents, punctuation), and keys that
/// agree but for one that ICU sorts last ('Z' after 'f') and bytes before every
/// letter; differences injected in each. The comparison must be exact in all three.
#[tokio::test]
async fn text_keys_stored_in_each_sides_collation_order_compare_exactly() {
    let world = World::load().expect("the local world is up");
    let sides = Sides::new(&world).await;
    sides.source(&CODES.replace("$C", "\"C\"")).await;
    sides.target(&CODES.replace("$C", "\"en-US-x-icu\"")).await;
    sides.target(CODES_DRIFT).await;
    let result = sides.compare("codes", &small()).await;
    codes_drift_is_exact(&result);
    assert_eq!((result.source_rows, result.target_rows), (4000, 4000));

    let people = PEOPLE.replace(
        "FROM generate_series(1, 3000) g;",
        "FROM generate_series(1, 3000) g; CLUSTER $S.people USING people_pkey;",
    );
    sides.source(&people.replace("$C", "\"C\"")).await;
    sides.target(&people.replace("$C", "\"en-US-x-icu\"")).await;
    sides
        .target(
            "DELETE FROM $S.people WHERE name IN ('person 5', 'person 2999');
             UPDATE $S.people SET name = name || '!' WHERE name IN ('person 1', 'person 1500', 'person 2222');
             INSERT INTO $S.people VALUES ('b-extra', 'extra', NULL), ('B-extra', 'extra', NULL);",
        )
        .await;
    let result = sides.compare("people", &small()).await;
    assert_eq!(
        (
            result.missing_in_target,
            result.extra_in_target,
            result.different
        ),
        (2, 2, 3),
        "{:#?}",
        result.diffs
    );
    assert_eq!((result.source_rows, result.target_rows), (3000, 3000));

    sides.both("DROP TABLE $S.codes").await;
    sides.source(&CODES.replace("$C", "\"C\"")).await;
    sides.target(&CODES.replace("$C", "\"en-US-x-icu\"")).await;
    sides
        .both("INSERT INTO $S.codes VALUES ('ZZZ-last', 'last', 0); ANALYZE $S.codes;")
        .await;
    sides.target(CODES_DRIFT).await;
    let result = sides.compare("codes", &small()).await;
    codes_drift_is_exact(&result);
    assert_eq!((result.source_rows, result.target_rows), (4001, 4001));
}
