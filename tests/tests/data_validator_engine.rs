//! data-validator's engine against two real PostgreSQL servers of the world
//! (the source and the us-east-1 primary), in a database of its own on each
//! (`dv_test`), one schema per test, so tests never see each other's drift.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use cutover_rehearsal::world::{Node, World};
use data_validator::canonical::Category;
use data_validator::canonical::{classify_postgres, column_expr, Dialect};
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
    // A value written differently but equal must not count: '' vs NULL.
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
    assert_eq!(result.different, 4, "{:#?}", result.diffs);
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
    assert!(
        result.diffs.iter().all(|d| d.key != "id=22"),
        "'' and NULL are the same value"
    );
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
    let sql = SideSql::new(Dialect::Postgres, &plan, Role::Source);
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
        let streamed = side
            .copy_buckets(
                &sql.bucket_copy(&range, &boundaries),
                &sql,
                data_validator::stream::RowHash::Md5,
            )
            .await
            .unwrap();
        let in_database: std::collections::BTreeMap<i64, (u64, u128)> = side
            .query(&sql.bucket_hashes(&range, &boundaries))
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
            .collect();
        let streamed: std::collections::BTreeMap<i64, (u64, u128)> = streamed
            .into_iter()
            .map(|(k, b)| (k, (b.count, b.sum)))
            .collect();
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
