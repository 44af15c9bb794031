//! `make bench` — data-validator against its floors and its peer, side by side in one run.
//!
//! Two PostgreSQL servers of the local world (the source and the us-east-1
//! primary), a database `dv_bench` on each with an orders-like table of
//! `BENCH_ROWS` rows (1,000,000 by default; 7 columns of mixed types), and five
//! cases: identical, 120 scattered differences (100 updates, 10 deletes,
//! 10 inserts on the target), and massive drift (every tenth row updated on the
//! target: exact totals, bounded and ordered stored differences), and the same rows
//! keyed by text with the source in "C" and the target in ICU en-US (four keys, see
//! `TEXT_KEYS`: sorting alike in both collations with the heaps in id order and in
//! key order, and sorting differently); and live: a
//! table replicated by CDC held at ~2 s latency while a writer changes ~500 rows/s
//! (see `live_case`; `BENCH_LIVE_ROWS` runs it at other sizes). For each case:
//! (a) the scan floor: `COPY … TO STDOUT` of both sides at once;
//! (b) the in-database hash floor: one aggregate hash over all rows, both sides at once;
//! (c) reladiff (PyPI) with `-c '%' -j 4`, when it can be installed;
//! (d0) cutover's engine as it was before the sorted merge (buckets and bisection only);
//! (d) cutover's engine, PostgreSQL rows streamed as binary COPY and hashed in Rust (the default):
//!     both sides in key order, compared by one sorted merge;
//! (e) cutover's engine with every hash computed inside the databases.
//! Printed: wall time, ratio to floor (b), rows/s, peak client memory, keys found.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use cutover_rehearsal::world::{Node, World};
use data_validator::engine::{Hashing, Options, Pair};
use data_validator::ident::TableRef;
use data_validator::run::describe;
use data_validator::schema::compare;
use data_validator::side::Side;
use data_validator::sql::KeyRange;
use futures::StreamExt;

const DB: &str = "dv_bench";

fn peak_rss_reset() {
    // Linux: writing 5 resets the peak resident set size of this process.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn client(world: &World, node: Node) -> tokio_postgres::Client {
    world.admin_db(node, DB).await.unwrap()
}

async fn setup(world: &World, rows: i64) {
    for node in [Node::Source, Node::UsEast1] {
        let admin = world.admin(node).await.unwrap();
        if admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DB])
            .await
            .unwrap()
            .is_none()
        {
            admin
                .batch_execute(&format!("CREATE DATABASE {DB}"))
                .await
                .unwrap();
        }
        let c = client(world, node).await;
        let have: Option<i64> = c
            .query_opt("SELECT count(*) FROM bench.orders", &[])
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if have == Some(rows) {
            continue;
        }
        println!("[bench] {node}: loading {rows} rows into {DB}.bench.orders");
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
             CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, status varchar(16) NOT NULL,
               total numeric(12,2), ordered_at timestamptz NOT NULL, note text, express boolean NOT NULL);
             INSERT INTO bench.orders SELECT g, (g * 7919) % 100000, (ARRAY['open','paid','shipped','returned'])[1 + g % 4],
               ((g * 37) % 100000) / 100.0, timestamptz '2025-01-01 00:00:00+00' + g * interval '17 seconds',
               CASE WHEN g % 13 = 0 THEN NULL ELSE 'order note ' || g END, g % 5 = 0
             FROM generate_series(1::bigint, {rows}) g;"
        ))
        .await
        .unwrap();
        // VACUUM refuses to run inside the implicit transaction of a multi-statement batch.
        c.batch_execute("VACUUM ANALYZE bench.orders")
            .await
            .unwrap();
    }
}

/// The 120 differences: (key, what) — applied to the target, and undone after.
fn drift_keys(rows: i64) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let step = rows / 121;
    let updates: Vec<i64> = (1..=100).map(|k| k * step + 3).collect();
    let deletes: Vec<i64> = (101..=110).map(|k| k * step + 5).collect();
    let inserts: Vec<i64> = (1..=10).map(|k| rows + k * 1000).collect();
    (updates, deletes, inserts)
}

async fn apply_drift(target: &tokio_postgres::Client, rows: i64) {
    let (updates, deletes, inserts) = drift_keys(rows);
    target
        .execute(
            "UPDATE bench.orders SET total = total + 0.01 WHERE id = ANY($1)",
            &[&updates],
        )
        .await
        .unwrap();
    target
        .execute("DELETE FROM bench.orders WHERE id = ANY($1)", &[&deletes])
        .await
        .unwrap();
    target
        .execute(
            "INSERT INTO bench.orders SELECT g, 1, 'open', 1.00, now(), NULL, false FROM unnest($1::bigint[]) g",
            &[&inserts],
        )
        .await
        .unwrap();
}

async fn undo_drift(source: &tokio_postgres::Client, target: &tokio_postgres::Client, rows: i64) {
    let (updates, deletes, inserts) = drift_keys(rows);
    target
        .execute("DELETE FROM bench.orders WHERE id = ANY($1)", &[&inserts])
        .await
        .unwrap();
    let mut restore: Vec<i64> = updates.clone();
    restore.extend(&deletes);
    target
        .execute("DELETE FROM bench.orders WHERE id = ANY($1)", &[&restore])
        .await
        .unwrap();
    let rows = source
        .query(
            "SELECT row_to_json(o)::text FROM bench.orders o WHERE id = ANY($1)",
            &[&restore],
        )
        .await
        .unwrap();
    for row in rows {
        let json: String = row.get(0);
        target
            .execute("INSERT INTO bench.orders SELECT * FROM json_populate_record(NULL::bench.orders, $1::text::json)", &[&json])
            .await
            .unwrap();
    }
}

async fn copy_out(c: &tokio_postgres::Client) -> u64 {
    copy_table(c, "bench.orders").await
}

async fn copy_table(c: &tokio_postgres::Client, table: &str) -> u64 {
    let stream = c
        .copy_out(&format!("COPY {table} TO STDOUT"))
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.unwrap().len() as u64;
    }
    bytes
}

async fn hash_all(c: &tokio_postgres::Client) -> String {
    hash_table(c, "bench.orders").await
}

async fn hash_table(c: &tokio_postgres::Client, table: &str) -> String {
    c.query_one(
        &format!("SELECT sum(('x' || substr(md5(o::text), 1, 15))::bit(60)::bigint)::text FROM {table} o"),
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

struct Line {
    name: &'static str,
    wall: Duration,
    peak_mb: Option<f64>,
    found: Option<(usize, bool)>,
}

fn reladiff(world: &World, rows: i64) -> Option<(Duration, f64, BTreeSet<i64>)> {
    let venv = world.root().join(".venv/bin");
    if !venv.join("reladiff").exists() {
        println!("[bench] installing reladiff[postgresql] into .venv");
        let ok = Command::new(venv.join("pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "reladiff[postgresql]",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            println!("[bench] reladiff could not be installed; its column is left out");
            return None;
        }
    }
    let password = world.admin_password().unwrap();
    let url = |node: Node| {
        format!(
            "postgresql://{}:{}@localhost:{}/{DB}?sslmode=verify-full&sslrootcert={}",
            world
                .get("CUTOVER_REHEARSAL_ADMIN_USER")
                .unwrap_or("rehearsal_admin"),
            password.expose(),
            world.port(node).unwrap(),
            world.ca_file().unwrap().display()
        )
    };
    // A wrapper reports the child's peak memory (ru_maxrss, KiB on Linux).
    let wrapper = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n\
        sys.stdout.write(r.stdout)\n\
        sys.stderr.write(r.stderr[-2000:])\n\
        print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(r.returncode)";
    let started = Instant::now();
    let out = Command::new(venv.join("python"))
        .args(["-c", wrapper])
        .arg(venv.join("reladiff"))
        .args([
            &url(Node::Source),
            "bench.orders",
            &url(Node::UsEast1),
            "bench.orders",
            "-k",
            "id",
            "-c",
            "%",
            "-j",
            "4",
        ])
        .output()
        .ok()?;
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("PEAK_KB") {
        println!(
            "[bench] reladiff failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let mut keys = BTreeSet::new();
    let mut peak = 0.0;
    for line in text.lines() {
        if let Some(kb) = line.strip_prefix("PEAK_KB ") {
            peak = kb.trim().parse::<f64>().unwrap_or(0.0) / 1024.0;
        } else if line.starts_with('+') || line.starts_with('-') {
            // "- ('17', ...)" — the first value is the key.
            if let Some(k) = line
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .and_then(|s| s.parse::<i64>().ok())
            {
                keys.insert(k);
            }
        }
    }
    let _ = rows;
    Some((wall, peak, keys))
}

async fn cutover(
    world: &World,
    hashing: Hashing,
    merge: bool,
) -> (Duration, f64, BTreeSet<i64>, u64) {
    let (wall, peak, result) = cutover_on(world, hashing, "orders", merge).await;
    let keys = result
        .diffs
        .iter()
        .filter_map(|d| {
            d.key
                .strip_prefix("id=")
                .and_then(|k| k.parse::<i64>().ok())
        })
        .collect();
    (wall, peak, keys, result.source_rows)
}

/// `merge`: false runs the engine as it was before the sorted merge (buckets and
/// bisection only), for the side-by-side.
async fn cutover_on(
    world: &World,
    hashing: Hashing,
    name: &str,
    merge: bool,
) -> (Duration, f64, data_validator::engine::SegmentResult) {
    let source = Side::Postgres {
        label: "source".into(),
        client: client(world, Node::Source).await,
    };
    let target = Side::Postgres {
        label: "target".into(),
        client: client(world, Node::UsEast1).await,
    };
    let table = TableRef::new("bench", name);
    peak_rss_reset();
    let started = Instant::now();
    let (s, t) = tokio::join!(describe(&source, &table), describe(&target, &table));
    let (plan, _) = compare(&table, &s.unwrap().unwrap(), &t.unwrap().unwrap());
    let pair = Pair::new(&source, &target, &plan);
    let estimate: i64 = match &source {
        Side::Postgres { client, .. } => client
            .query_one(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = ('bench.' || $1)::regclass",
                &[&name],
            )
            .await
            .unwrap()
            .get(0),
        Side::Oracle { .. } => unreachable!(),
    };
    let result = pair
        .compare_segment(
            &KeyRange::default(),
            estimate.max(1) as u64,
            &Options {
                max_diffs: 1000,
                hashing,
                merge,
                ..Options::default()
            },
        )
        .await
        .unwrap();
    println!(
        "[bench] bench.{name} ({hashing:?}, merge {merge}): {} queries, {} rows merged, {} buckets split",
        result.queries, result.merged_rows, result.buckets_split
    );
    (started.elapsed(), peak_rss_mb(), result)
}

/// The two floors of a table, both sides at once: (a) a `COPY` of every row, (b) one
/// aggregate hash in each database.
async fn floors(s: &tokio_postgres::Client, t: &tokio_postgres::Client, table: &str) -> Vec<Line> {
    let started = Instant::now();
    tokio::join!(copy_table(s, table), copy_table(t, table));
    let copy = started.elapsed();
    let started = Instant::now();
    tokio::join!(hash_table(s, table), hash_table(t, table));
    vec![
        Line {
            name: "(a) COPY both sides (scan floor)",
            wall: copy,
            peak_mb: None,
            found: None,
        },
        Line {
            name: "(b) one aggregate hash (hash floor)",
            wall: started.elapsed(),
            peak_mb: None,
            found: None,
        },
    ]
}

/// The text keys of the collation case: (table, what it shows, key expression over
/// `bench.orders`, whether each side stores its rows in its own key order — as a
/// load in key order leaves them — or in `bench.orders`' id order, which is random
/// in the key). The source is in "C", the target in ICU en-US.
type TextKey = (&'static str, &'static str, &'static str, bool);
const TEXT_KEYS: [TextKey; 3] = [
    // Lower-case hex, '-' and digits sort the same under "C" and ICU.
    (
        "by_text",
        "orders agree, heaps in id order",
        "md5(id::text) || '-' || id",
        false,
    ),
    (
        "by_text_sorted",
        "orders agree, heaps in key order",
        "md5(id::text) || '-' || id",
        true,
    ),
    // Every other key in upper case: ICU puts 'a' before 'B', bytes put 'B' before 'a'.
    (
        "by_text_mixed",
        "orders disagree (mixed case), heaps in key order",
        "CASE WHEN id % 2 = 0 THEN upper(md5(id::text)) ELSE md5(id::text) END || '-' || id",
        true,
    ),
];

/// A text key, the source in the "C" collation and the target in ICU en-US (the
/// same rows as `bench.orders`, keyed by `key`): where the key sorts the same in
/// both, the ratio to the floors should be that of the integer key.
async fn collation_case(
    world: &World,
    rows: i64,
    (table, _, key, in_key_order): TextKey,
) -> Vec<Line> {
    let (s, t) = (
        client(world, Node::Source).await,
        client(world, Node::UsEast1).await,
    );
    for (c, collation) in [(&s, "C"), (&t, "en-US-x-icu")] {
        println!("[bench] bench.{table}: {rows} rows, key in the {collation} collation");
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS bench.{table};
             CREATE TABLE bench.{table} (k text COLLATE \"{collation}\" PRIMARY KEY, customer_id int NOT NULL,
               status varchar(16) NOT NULL, total numeric(12,2), ordered_at timestamptz NOT NULL, note text, express boolean NOT NULL);
             INSERT INTO bench.{table} SELECT {key}, customer_id, status, total, ordered_at, note, express
             FROM bench.orders {order}",
            order = if in_key_order {
                format!("ORDER BY ({key}) COLLATE \"{collation}\"")
            } else {
                String::new()
            }
        ))
        .await
        .unwrap();
        c.batch_execute(&format!("VACUUM ANALYZE bench.{table}"))
            .await
            .unwrap();
    }
    let name = format!("bench.{table}");
    let mut lines = floors(&s, &t, &name).await;
    assert_eq!(
        hash_table(&s, &name).await,
        hash_table(&t, &name).await,
        "the same rows on both sides"
    );
    for (name, merge) in [
        ("(d0) cutover before (buckets, bisection)", false),
        ("(d) cutover (rows streamed, default)", true),
    ] {
        let (wall, peak, result) = cutover_on(world, Hashing::Stream, table, merge).await;
        assert_eq!(result.source_rows as i64, rows, "every source row compared");
        lines.push(Line {
            name,
            wall,
            peak_mb: Some(peak),
            found: Some((result.mismatched() as usize, result.mismatched() == 0)),
        });
    }
    for c in [&s, &t] {
        c.batch_execute(&format!("DROP TABLE bench.{table}"))
            .await
            .unwrap();
    }
    lines
}

/// A tiny xorshift: random keys for the live writer without another dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

type Measured = (Duration, f64, data_validator::engine::SegmentResult);

/// One comparison of the live table, with its own connections.
async fn live_run(
    world: &World,
    rows: i64,
    live: data_validator::engine::Live,
    merge: bool,
) -> Measured {
    let source = Side::Postgres {
        label: "source".into(),
        client: world.admin_db(Node::Source, "app").await.unwrap(),
    };
    let target = Side::Postgres {
        label: "target".into(),
        client: world.admin_db(Node::UsEast1, "app").await.unwrap(),
    };
    let table = TableRef::new("validator_bench", "orders");
    peak_rss_reset();
    let started = Instant::now();
    let (s, t) = tokio::join!(describe(&source, &table), describe(&target, &table));
    let (plan, _) = compare(&table, &s.unwrap().unwrap(), &t.unwrap().unwrap());
    let result = Pair::new(&source, &target, &plan)
        .compare_segment(
            &KeyRange::default(),
            rows as u64,
            &Options {
                max_diffs: 1000,
                live,
                merge,
                ..Options::default()
            },
        )
        .await
        .unwrap();
    (started.elapsed(), peak_rss_mb(), result)
}

fn live_line(name: &'static str, expected: &BTreeSet<i64>, measured: Measured) -> Line {
    let (wall, peak, r) = measured;
    let keys: BTreeSet<i64> = r
        .diffs
        .iter()
        .filter(|d| d.kind == data_validator::engine::DiffKind::Different)
        .filter_map(|d| d.key.strip_prefix("id=").and_then(|k| k.parse().ok()))
        .collect();
    let false_positives = r
        .different
        .saturating_sub(keys.intersection(expected).count() as u64);
    println!(
        "[bench] live {name}: {} different ({false_positives} false), {} re-checked, {} resolved, {} in flight",
        r.different, r.rechecked, r.resolved, r.in_flight
    );
    Line {
        name,
        wall,
        peak_mb: Some(peak),
        found: Some((
            r.different as usize,
            &keys == expected && r.different == 120,
        )),
    }
}

/// Live: `rows` rows replicated from the source to the us-east-1 primary by the
/// world's logical replication, its stream held ~2 s by a delay-proxy (a DMS-like
/// CDC latency), 120 differences injected on the target only, and a writer
/// updating random rows on the source at ~500 rows/s. Four runs: the live
/// re-check on quiet tables, the comparison without re-checks under the writer,
/// the live re-check under the writer as it was before the sorted merge served it
/// (buckets, bisection, re-reads by range), and the live re-check under the writer.
async fn live_case(world: &World, rows: i64) -> Vec<Line> {
    let source = world.admin_db(Node::Source, "app").await.unwrap();
    let target = world.admin_db(Node::UsEast1, "app").await.unwrap();
    let ddl =
        "CREATE SCHEMA IF NOT EXISTS validator_bench; DROP TABLE IF EXISTS validator_bench.orders;
         CREATE TABLE validator_bench.orders (id bigint PRIMARY KEY, v bigint NOT NULL, note text)";
    target.batch_execute(ddl).await.unwrap();
    source.batch_execute(ddl).await.unwrap();
    target
        .batch_execute(
            "ALTER SUBSCRIPTION cutover_sub REFRESH PUBLICATION WITH (copy_data = false)",
        )
        .await
        .unwrap();

    // The CDC stream through a delay-proxy: 2 s, as DMS CDC latency often is.
    let source_port = world.port(Node::Source).unwrap();
    // Inside the world's reserved port range (world.sh), so no client socket holds it.
    let proxy_port = source_port + 19;
    let delay_file = world.root().join(".rehearsal/net/cdc-bench.delay");
    std::fs::create_dir_all(delay_file.parent().unwrap()).unwrap();
    std::fs::write(&delay_file, "2000").unwrap();
    let mut proxy = Command::new(world.root().join("target/debug/delay-proxy"))
        .args([
            proxy_port.to_string(),
            source_port.to_string(),
            delay_file.display().to_string(),
        ])
        .spawn()
        .expect("delay-proxy (built by the world)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let original: String = target
        .query_one(
            "SELECT subconninfo FROM pg_subscription WHERE subname = 'cutover_sub'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let delayed = original.replace(
        &format!("port={source_port}"),
        &format!("port={proxy_port}"),
    );
    assert_ne!(
        delayed, original,
        "the subscription names the source's port"
    );
    let set_conninfo = |c: &str| {
        format!(
            "ALTER SUBSCRIPTION cutover_sub CONNECTION '{}'",
            c.replace('\'', "''")
        )
    };
    target.batch_execute(&set_conninfo(&delayed)).await.unwrap();

    println!("[bench] live: loading {rows} rows on the source; they reach the target through the 2 s CDC stream");
    let batch = 200_000;
    for start in (1..=rows).step_by(batch as usize) {
        let end = (start + batch - 1).min(rows);
        source
            .batch_execute(&format!(
                "INSERT INTO validator_bench.orders SELECT g, g, 'order ' || g FROM generate_series({start}::bigint, {end}) g"
            ))
            .await
            .unwrap();
    }
    source
        .batch_execute("ANALYZE validator_bench.orders")
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let have: i64 = target
            .query_one("SELECT count(*) FROM validator_bench.orders", &[])
            .await
            .unwrap()
            .get(0);
        if have >= rows {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the rows did not replicate"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    target
        .batch_execute("ANALYZE validator_bench.orders")
        .await
        .unwrap();
    let drift: Vec<i64> = (1..=120).map(|k| k * (rows / 121) + 7).collect();
    target
        .execute(
            "UPDATE validator_bench.orders SET note = 'drift' WHERE id = ANY($1)",
            &[&drift],
        )
        .await
        .unwrap();
    let expected: BTreeSet<i64> = drift.iter().copied().collect();
    let slot = data_validator::engine::Live::Slot {
        slot: "cutover_sub".into(),
        rechecks: 3,
        wait_ms: 60_000,
    };

    let mut lines = floors(&source, &target, "validator_bench.orders").await;
    lines.push(live_line(
        "(d) live re-check, quiet tables",
        &expected,
        live_run(world, rows, slot.clone(), true).await,
    ));

    // The writer: ~500 random rows a second on the source, never the drifted ones.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer_client = world.admin_db(Node::Source, "app").await.unwrap();
    let writer = tokio::spawn({
        let stop = stop.clone();
        let drift = drift.clone();
        async move {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64;
            let mut written = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ids: Vec<i64> = (0..10)
                    .map(|_| 1 + (next_random(&mut seed) % rows as u64) as i64)
                    .filter(|id| !drift.contains(id))
                    .collect();
                writer_client
                    .execute(
                        "UPDATE validator_bench.orders SET v = v + 1 WHERE id = ANY($1)",
                        &[&ids],
                    )
                    .await
                    .unwrap();
                written += ids.len() as u64;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            written
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    lines.push(live_line(
        "(f) no re-check (before), under writes",
        &expected,
        live_run(world, rows, data_validator::engine::Live::Off, true).await,
    ));
    lines.push(live_line(
        "(g0) live re-check before (buckets)",
        &expected,
        live_run(world, rows, slot.clone(), false).await,
    ));
    lines.push(live_line(
        "(g) live re-check, under writes",
        &expected,
        live_run(world, rows, slot, true).await,
    ));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    println!("[bench] live: the writer updated {written} rows on the source during the runs");

    // Dropped on the source, then on the target once everything is applied: a change
    // arriving for a table the target no longer has would stop the apply worker.
    source
        .batch_execute("DROP TABLE validator_bench.orders")
        .await
        .unwrap();
    cutover_rehearsal::replication::wait_for_cdc(&source, Duration::from_secs(120))
        .await
        .unwrap();
    target
        .batch_execute("DROP TABLE validator_bench.orders")
        .await
        .unwrap();
    target
        .batch_execute(&set_conninfo(&original))
        .await
        .unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    lines
}

/// Massive drift: every tenth row differs on the target. Exact totals, the stored
/// differences bounded by `max_diffs` and in key order, beside the two floors.
async fn massive_case(world: &World, rows: i64) -> Vec<Line> {
    let (s, t) = (
        client(world, Node::Source).await,
        client(world, Node::UsEast1).await,
    );
    let mut lines = floors(&s, &t, "bench.orders").await;
    for (name, merge) in [
        ("(d0) cutover before (buckets, bisection)", false),
        ("(d) cutover (rows streamed, default)", true),
    ] {
        let (wall, peak, result) = cutover_on(world, Hashing::Stream, "orders", merge).await;
        let ids: Vec<i64> = result
            .diffs
            .iter()
            .filter_map(|d| d.key.strip_prefix("id=").and_then(|k| k.parse().ok()))
            .collect();
        let in_order = ids.windows(2).all(|w| w[0] < w[1]) && ids.len() == result.diffs.len();
        let exact = result.different == (rows / 10) as u64
            && result.missing_in_target == 0
            && result.extra_in_target == 0
            && result.diffs.len() <= 1000
            && in_order;
        println!(
            "[bench] massive drift {name}: {} different rows counted, {} kept (max_diffs 1000), in key order: {in_order}, {} queries",
            result.different,
            result.diffs.len(),
            result.queries
        );
        lines.push(Line {
            name,
            wall,
            peak_mb: Some(peak),
            found: Some((result.different as usize, exact)),
        });
    }
    lines
}

async fn case(world: &World, rows: i64, drift: bool) -> Vec<Line> {
    let (s, t) = (
        client(world, Node::Source).await,
        client(world, Node::UsEast1).await,
    );
    let expected: BTreeSet<i64> = if drift {
        let (u, d, i) = drift_keys(rows);
        u.into_iter().chain(d).chain(i).collect()
    } else {
        BTreeSet::new()
    };
    let mut lines = Vec::new();

    let started = Instant::now();
    let (a, b) = tokio::join!(copy_out(&s), copy_out(&t));
    lines.push(Line {
        name: "(a) COPY both sides (scan floor)",
        wall: started.elapsed(),
        peak_mb: None,
        found: None,
    });
    let _ = (a, b);

    let started = Instant::now();
    let (a, b) = tokio::join!(hash_all(&s), hash_all(&t));
    lines.push(Line {
        name: "(b) one aggregate hash (hash floor)",
        wall: started.elapsed(),
        peak_mb: None,
        found: None,
    });
    assert_eq!(
        a == b,
        !drift,
        "the floor's hashes agree exactly when nothing differs"
    );

    match reladiff(world, rows) {
        Some((wall, peak, keys)) => lines.push(Line {
            name: "(c) reladiff -c '%' -j 4",
            wall,
            peak_mb: Some(peak),
            found: Some((keys.len(), keys == expected)),
        }),
        None => println!("[bench] reladiff: not measured"),
    }

    for (name, hashing, merge) in [
        (
            "(d0) cutover before (buckets, bisection)",
            Hashing::Stream,
            false,
        ),
        (
            "(d) cutover (rows streamed, default)",
            Hashing::Stream,
            true,
        ),
        (
            "(e) cutover (hashes in the database)",
            Hashing::Database,
            true,
        ),
    ] {
        let (wall, peak, keys, compared) = cutover(world, hashing, merge).await;
        assert_eq!(compared as i64, rows, "cutover compared every source row");
        lines.push(Line {
            name,
            wall,
            peak_mb: Some(peak),
            found: Some((keys.len(), keys == expected)),
        });
    }
    lines
}

fn print(title: &str, rows: i64, lines: &[Line]) {
    let floor = lines
        .iter()
        .find(|l| l.name.starts_with("(b)"))
        .map(|l| l.wall.as_secs_f64())
        .unwrap_or(1.0);
    println!("\n{title} ({rows} rows per side)");
    println!(
        "{:<40} {:>9} {:>10} {:>12} {:>10} {:>14}",
        "method", "wall s", "x floor(b)", "rows/s", "peak MB", "keys found"
    );
    for l in lines {
        let secs = l.wall.as_secs_f64();
        println!(
            "{:<40} {:>9.2} {:>10.2} {:>12.0} {:>10} {:>14}",
            l.name,
            secs,
            secs / floor,
            rows as f64 / secs,
            l.peak_mb.map_or("-".into(), |m| format!("{m:.0}")),
            l.found.map_or("-".into(), |(n, exact)| format!(
                "{n}{}",
                if exact { " (exact)" } else { " (WRONG)" }
            )),
        );
    }
    if let (Some(c), Some(r)) = (
        lines.iter().find(|l| l.name.starts_with("(d)")),
        lines.iter().find(|l| l.name.starts_with("(c)")),
    ) {
        println!(
            "cutover is {:.1}x faster than reladiff",
            r.wall.as_secs_f64() / c.wall.as_secs_f64()
        );
    }
    if let (Some(before), Some(d)) = (
        lines.iter().find(|l| l.name.starts_with("(d0)")),
        lines.iter().find(|l| l.name.starts_with("(d)")),
    ) {
        let scan = lines
            .iter()
            .find(|l| l.name.starts_with("(a)"))
            .map_or(1.0, |l| l.wall.as_secs_f64());
        println!(
            "cutover: {:.2}x the scan floor (a) now, {:.2}x before",
            d.wall.as_secs_f64() / scan,
            before.wall.as_secs_f64() / scan
        );
    }
    if let (Some(d), Some(e)) = (
        lines.iter().find(|l| l.name.starts_with("(d)")),
        lines.iter().find(|l| l.name.starts_with("(e)")),
    ) {
        println!(
            "streaming the rows is {:.1}x faster than hashing in the database",
            e.wall.as_secs_f64() / d.wall.as_secs_f64()
        );
    }
}

fn main() {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let world = World::load().expect("the local world is up (make bench brings it up)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // BENCH_CASES=identical,scattered,massive,collation,live runs some of the cases (default: all).
    let cases = std::env::var("BENCH_CASES").unwrap_or_default();
    let wanted = |name: &str| cases.is_empty() || cases.split(',').any(|c| c.trim() == name);
    runtime.block_on(async {
        setup(&world, rows).await;
        if wanted("identical") {
            println!("[bench] case 1/5: identical");
            let identical = case(&world, rows, false).await;
            print("identical", rows, &identical);
        }
        if wanted("scattered") {
            scattered(&world, rows).await;
        }
        if wanted("massive") {
            massive(&world, rows).await;
        }
        if wanted("collation") {
            for text_key in TEXT_KEYS {
                println!(
                    "\n[bench] case 4/5: a text key, the source in C, the target in ICU en-US: {}",
                    text_key.1
                );
                let collation = collation_case(&world, rows, text_key).await;
                print(
                    &format!(
                        "text key across collations, {} (identical rows, bench.{})",
                        text_key.1, text_key.0
                    ),
                    rows,
                    &collation,
                );
            }
        }
        if wanted("live") {
            // BENCH_LIVE_ROWS=1000000,5000000 runs the live case at each size (default:
            // BENCH_ROWS): the wait for the replication is a fixed cost, so its share
            // falls as the table grows.
            let sizes: Vec<i64> = std::env::var("BENCH_LIVE_ROWS")
                .ok()
                .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![rows]);
            for size in sizes {
                println!("\n[bench] case 5/5: live, CDC at ~2 s latency, a writer at ~500 rows/s, 120 differences ({size} rows)");
                let live = live_case(&world, size).await;
                print("live validation while CDC runs", size, &live);
                if let (Some(quiet), Some(busy), Some(before)) = (
                    live.iter().find(|l| l.name.starts_with("(d)")),
                    live.iter().find(|l| l.name.starts_with("(g)")),
                    live.iter().find(|l| l.name.starts_with("(g0)")),
                ) {
                    println!(
                        "live under writes takes {:.2}x the quiet run ({:.2}x before the merge served it)",
                        busy.wall.as_secs_f64() / quiet.wall.as_secs_f64(),
                        before.wall.as_secs_f64() / quiet.wall.as_secs_f64()
                    );
                }
            }
        }
    });
}

async fn scattered(world: &World, rows: i64) {
    {
        println!(
            "\n[bench] case 2/5: 120 scattered differences (100 updates, 10 deletes, 10 inserts)"
        );
        let (s, t) = (
            client(world, Node::Source).await,
            client(world, Node::UsEast1).await,
        );
        apply_drift(&t, rows).await;
        let drifted = case(world, rows, true).await;
        undo_drift(&s, &t, rows).await;
        print("120 scattered differences", rows, &drifted);
    }
}

async fn massive(world: &World, rows: i64) {
    let t = client(world, Node::UsEast1).await;
    {
        println!(
            "\n[bench] case 3/5: massive drift, every tenth row differs ({} rows)",
            rows / 10
        );
        t.batch_execute("UPDATE bench.orders SET total = total + 0.01 WHERE id % 10 = 3")
            .await
            .unwrap();
        let massive = massive_case(world, rows).await;
        t.batch_execute("UPDATE bench.orders SET total = total - 0.01 WHERE id % 10 = 3")
            .await
            .unwrap();
        t.batch_execute("VACUUM ANALYZE bench.orders")
            .await
            .unwrap();
        print("massive drift (10 % of rows differ)", rows, &massive);
    }
}
