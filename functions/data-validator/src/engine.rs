//! The comparison itself: segments, buckets, bisection and row differences.
//!
//! For a segment (a key range of a table) both sides compute, in one scan each
//! and at the same time, the row count and the hash sum of every bucket of the
//! range. Buckets that agree are done. A bucket that disagrees is split again
//! (`fanout` ways) until it holds at most `leaf_rows` rows, and then its rows
//! are fetched from both sides and compared key by key and column by column.
//! Tables without a primary key are bucketed by row hash and compared as
//! multisets: a row present twice on one side and once on the other is found.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::canonical::EmptyText;
use crate::schema::TablePlan;
use crate::side::{Side, TextRow};
use crate::sql::{KeyRange, Role, SideSql};
use crate::ValidatorError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Rows per segment when a table is planned for fan-out.
    pub segment_rows: u64,
    /// Rows per bucket in the first pass over a segment.
    pub bucket_rows: u64,
    /// Buckets at most this large are compared row by row.
    pub leaf_rows: u64,
    /// Ways a mismatching bucket is split.
    pub fanout: u32,
    /// Row differences kept per segment (the counts stay exact).
    pub max_diffs: usize,
    /// Where a PostgreSQL side's bucket hashes are computed.
    #[serde(default)]
    pub hashing: Hashing,
    /// Validation while replication runs: how a difference is re-checked.
    #[serde(default)]
    pub live: Live,
    /// Two streaming PostgreSQL sides compare by one sorted merge of their
    /// key-ordered streams (off: buckets and bisection only, as before; kept for
    /// the benchmark's side-by-side).
    #[serde(default = "merge_by_default")]
    pub merge: bool,
}

fn merge_by_default() -> bool {
    true
}

/// How differences found while the source still replicates to the target are
/// re-checked. A row read on both sides at slightly different moments can differ
/// only because the change has not arrived yet; such a row is read again once
/// the replication has passed the moment of the first read, and a difference is
/// reported only when it is *stable*: the same on both sides across two reads
/// with the replication caught up in between. A row that keeps changing through
/// every re-check is *in flight*: counted apart, never called a mismatch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Live {
    /// Nothing replicates (or the operator wants the raw comparison).
    #[default]
    Off,
    /// A PostgreSQL source publishing to the target: after a difference is read,
    /// the source's WAL position is taken, and the re-read waits until the
    /// logical slot `slot` has confirmed that position as applied.
    Slot {
        slot: String,
        /// Re-reads before a still-moving row is declared in flight.
        rechecks: u32,
        /// Longest wait for the slot to pass a position (ms).
        wait_ms: u64,
    },
    /// Any pair (DMS CDC): re-read after `ms`, a bound on the replication latency.
    Delay { ms: u64, rechecks: u32 },
}

impl Live {
    fn rechecks(&self) -> u32 {
        match self {
            Live::Off => 0,
            Live::Slot { rechecks, .. } | Live::Delay { rechecks, .. } => *rechecks,
        }
    }
}

impl std::str::FromStr for Live {
    type Err = ();
    /// `off`, `slot:<name>[:<rechecks>]` or `delay:<ms>[:<rechecks>]`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.split(':');
        let mode = parts.next().unwrap_or_default();
        let arg = parts.next();
        let rechecks = match parts.next() {
            Some(n) => n.parse().map_err(|_| ())?,
            None => 3,
        };
        if parts.next().is_some() || rechecks == 0 {
            return Err(());
        }
        match (mode, arg) {
            ("off", None) => Ok(Live::Off),
            ("slot", Some(slot)) if !slot.is_empty() => Ok(Live::Slot {
                slot: slot.to_string(),
                rechecks,
                wait_ms: 60_000,
            }),
            ("delay", Some(ms)) => Ok(Live::Delay {
                ms: ms.parse().map_err(|_| ())?,
                rechecks,
            }),
            _ => Err(()),
        }
    }
}

/// Where bucket hashes are computed. Oracle always hashes in its database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hashing {
    /// Rows streamed from PostgreSQL (binary COPY) and hashed here; Oracle in SQL.
    /// The faster by far (see `make bench`), so the default.
    #[default]
    Stream,
    /// `md5()` and `sum()` inside every database.
    Database,
}

impl std::str::FromStr for Hashing {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "stream" => Ok(Hashing::Stream),
            "database" => Ok(Hashing::Database),
            _ => Err(()),
        }
    }
}

/// Rows a key-ordered comparison compares before it heeds a deadline, so that
/// every invocation moves a run forward.
const MIN_ROWS_BEFORE_CUT: u64 = 4096;

/// A segment compared, or its beginning: the rest starts at `resume_from`.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub result: SegmentResult,
    pub resume_from: Option<String>,
}

/// How a key-ordered merge ended.
enum Merged {
    Done,
    /// Stopped at the deadline; the rest starts at this leading-key value.
    Cut(String),
    /// A side's keys did not arrive in the byte order expected (a type whose order
    /// this program does not follow): the buckets compare instead.
    OutOfOrder(String),
}

/// One side's key-ordered stream, batch by batch, checked to ascend strictly.
struct Cursor {
    rx: tokio::sync::mpsc::Receiver<KeyedBatch>,
    batch: KeyedBatch,
    at: usize,
    last: Vec<u8>,
    started: bool,
    side: &'static str,
}

impl Cursor {
    fn new(rx: tokio::sync::mpsc::Receiver<KeyedBatch>, side: &'static str) -> Self {
        Cursor {
            rx,
            batch: KeyedBatch::default(),
            at: 0,
            last: Vec::new(),
            started: false,
            side,
        }
    }

    /// Whether a row is there (waiting for the next batch if needed); an error
    /// when it does not come after the previous one.
    async fn ready(&mut self) -> Result<bool, String> {
        while self.at >= self.batch.len() {
            match self.rx.recv().await {
                Some(batch) => {
                    self.batch = batch;
                    self.at = 0;
                }
                None => return Ok(false),
            }
        }
        if self.started && self.batch.key(self.at) <= self.last.as_slice() {
            return Err(format!(
                "the {}'s keys did not arrive in ascending byte order",
                self.side
            ));
        }
        Ok(true)
    }

    fn key(&self) -> &[u8] {
        self.batch.key(self.at)
    }

    fn lead(&self) -> &[u8] {
        self.batch.lead(self.at)
    }

    fn hash(&self) -> u64 {
        self.batch.hash(self.at)
    }

    fn advance(&mut self) {
        self.last.clear();
        self.last.extend_from_slice(self.batch.key(self.at));
        self.started = true;
        self.at += 1;
    }
}

/// Mismatching buckets examined at once (queries are pipelined on each connection).
const CONCURRENT_BUCKETS: usize = 16;

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_rows: 2_000_000,
            bucket_rows: 1_000,
            leaf_rows: 256,
            fanout: 16,
            max_diffs: 100,
            hashing: Hashing::Stream,
            live: Live::Off,
            merge: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// On the source, not on the target.
    MissingInTarget,
    /// On the target, not on the source.
    ExtraInTarget,
    /// The same key with different values.
    Different,
    /// Different at every re-check, and changing between them: replication was
    /// still moving this row. Not a mismatch; counted in `in_flight`.
    InFlight,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDiff {
    pub column: String,
    pub source: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowDiff {
    /// The key as `col=value,...` (multisets: the row hash).
    pub key: String,
    pub kind: DiffKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
    /// Multisets: how many times the row is on each side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    pub source_rows: u64,
    pub target_rows: u64,
    pub missing_in_target: u64,
    pub extra_in_target: u64,
    pub different: u64,
    /// The first `max_diffs` differences in key order.
    pub diffs: Vec<RowDiff>,
    pub queries: u32,
    pub buckets_split: u32,
    /// Rows compared by one sorted merge of both sides' key-ordered streams
    /// (instead of buckets and bisection).
    #[serde(default)]
    pub merged_rows: u64,
    /// Live validation: rows read again after the replication caught up…
    #[serde(default)]
    pub rechecked: u64,
    /// …of which equal on the second look (the change had not arrived yet)…
    #[serde(default)]
    pub resolved: u64,
    /// …and still moving after every re-check (not counted as mismatches).
    #[serde(default)]
    pub in_flight: u64,
    /// Live validation: differing rows of the leaf ranges, waiting for their re-check.
    #[serde(skip)]
    pending: Vec<(Reread, Vec<Found>)>,
    /// Live validation after a sorted merge: each differing row's lead value and
    /// the row hashes the merge saw (source, target), waiting for their re-check.
    #[serde(skip)]
    merged_pending: Vec<(Vec<u8>, Versions)>,
}

/// The row hashes of a row's two versions (source, target; `None` where absent).
type Versions = (Option<u64>, Option<u64>);

/// What a live re-check reads again: a key range, or the rows of some lead values.
#[derive(Debug, Clone, PartialEq)]
enum Reread {
    Range(KeyRange),
    Leads(Vec<String>),
}

/// A live re-check with at most this many rows still moving reads them again
/// while it waits for the replication, every `POLL_MS` milliseconds.
const POLLED_ROWS: usize = 64;
const POLL_MS: u64 = 100;

/// Lead values read again per query by a live re-check after a sorted merge.
const LEADS_PER_REREAD: usize = 5_000;

/// Differing rows a live sorted merge holds for their re-check; beyond it the
/// segment compares by buckets (whose re-check reads ranges), so memory stays bounded.
const LIVE_MAX_PENDING: usize = 200_000;

impl SegmentResult {
    pub fn mismatched(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.different
    }

    /// Adds the result of the next part of the same segment: rows and findings,
    /// keeping the first `keep` differences in key order.
    pub fn add(&mut self, other: SegmentResult, keep: usize) {
        self.source_rows += other.source_rows;
        self.target_rows += other.target_rows;
        self.absorb(other, keep);
        self.diffs.sort_by(|a, b| key_order(&a.key, &b.key));
        self.diffs.truncate(keep);
    }

    /// Adds a sub-range's findings (not its row totals, which the top level counts).
    fn absorb(&mut self, other: SegmentResult, keep: usize) {
        self.missing_in_target += other.missing_in_target;
        self.extra_in_target += other.extra_in_target;
        self.different += other.different;
        self.rechecked += other.rechecked;
        self.resolved += other.resolved;
        self.in_flight += other.in_flight;
        self.pending.extend(other.pending);
        self.merged_pending.extend(other.merged_pending);
        self.queries += other.queries;
        self.buckets_split += other.buckets_split;
        self.merged_rows += other.merged_rows;
        self.diffs.extend(other.diffs);
        if self.diffs.len() > keep {
            self.diffs.sort_by(|a, b| key_order(&a.key, &b.key));
            self.diffs.truncate(keep);
        }
    }
}

use crate::stream::{Bucket, KeyedBatch, KeyedParser, RowHash};

fn parse_u64(value: &Option<String>, what: &str) -> Result<u64, ValidatorError> {
    value
        .as_deref()
        .unwrap_or("0")
        .parse()
        .map_err(|_| ValidatorError::Internal(format!("{what} is not a count: {value:?}")))
}

fn parse_u128(value: &Option<String>) -> Result<u128, ValidatorError> {
    value
        .as_deref()
        .unwrap_or("0")
        .parse()
        .map_err(|_| ValidatorError::Internal(format!("hash sum is not a number: {value:?}")))
}

fn buckets(rows: &[TextRow]) -> Result<BTreeMap<i64, Bucket>, ValidatorError> {
    let mut out = BTreeMap::new();
    for row in rows {
        let index: i64 = row[0]
            .as_deref()
            .unwrap_or("-1")
            .parse()
            .map_err(|_| ValidatorError::Internal(format!("bucket index {:?}", row[0])))?;
        out.insert(
            index,
            Bucket {
                count: parse_u64(&row[1], "bucket count")?,
                sum: parse_u128(&row[2])?,
            },
        );
    }
    Ok(out)
}

/// Both sides and their SQL for one table.
pub struct Pair<'a> {
    pub source: &'a Side,
    pub target: &'a Side,
    pub plan: &'a TablePlan,
    source_sql: SideSql,
    target_sql: SideSql,
}

/// The row hash a pair uses when it streams: MD5 when the other side hashes in
/// SQL (Oracle, or `hashing = database`), the cheaper SipHash when both stream.
fn stream_hash(source: &Side, target: &Side, hashing: Hashing) -> RowHash {
    let streams = |side: &Side| matches!(side, Side::Postgres { .. }) && hashing == Hashing::Stream;
    if streams(source) && streams(target) {
        RowHash::Sip
    } else {
        RowHash::Md5
    }
}

impl<'a> Pair<'a> {
    pub fn new(source: &'a Side, target: &'a Side, plan: &'a TablePlan) -> Self {
        let empty = EmptyText::for_pair(source.dialect(), target.dialect());
        Pair {
            source,
            target,
            plan,
            source_sql: SideSql::new(source.dialect(), plan, Role::Source, empty),
            target_sql: SideSql::new(target.dialect(), plan, Role::Target, empty),
        }
    }

    /// Count and hash sum per bucket of a range on one side: streamed from
    /// PostgreSQL (unless `hashing` says otherwise), in SQL on Oracle.
    async fn bucket_sums(
        &self,
        side: &Side,
        sql: &SideSql,
        range: &KeyRange,
        boundaries: &[String],
        hashing: Hashing,
    ) -> Result<BTreeMap<i64, Bucket>, ValidatorError> {
        match (side, hashing) {
            (Side::Postgres { .. }, Hashing::Stream) => {
                let hash = stream_hash(self.source, self.target, hashing);
                side.copy_buckets(&sql.bucket_copy(range, boundaries), sql, boundaries, hash)
                    .await
            }
            _ => buckets(&side.query(&sql.bucket_hashes(range, boundaries)).await?),
        }
    }

    /// Runs a query on each side at the same time.
    async fn both(
        &self,
        source: crate::sql::Query,
        target: crate::sql::Query,
    ) -> (
        Result<Vec<TextRow>, ValidatorError>,
        Result<Vec<TextRow>, ValidatorError>,
    ) {
        tokio::join!(self.source.query(&source), self.target.query(&target))
    }

    /// Splits a table into key ranges of about `segment_rows` rows each, from the source.
    pub async fn plan_segments(
        &self,
        estimated_rows: u64,
        options: &Options,
    ) -> Result<Vec<KeyRange>, ValidatorError> {
        let wanted = estimated_rows.div_ceil(options.segment_rows.max(1));
        if self.plan.is_multiset() || wanted <= 1 {
            return Ok(vec![KeyRange::default()]);
        }
        let boundaries = self
            .boundaries(&KeyRange::default(), wanted as u32, estimated_rows)
            .await?;
        Ok(ranges_between(&KeyRange::default(), &boundaries))
    }

    /// Boundaries splitting `range` (about `rows` rows) into about `parts` parts:
    /// arithmetic for an integer leading key, quantiles of the source's keys
    /// otherwise — of a sample of them when the range is large, since exact
    /// quantiles sort every key of the range (measured: a 1M-row text key took
    /// 2.25x the hash floor where an integer key takes 0.42x).
    async fn boundaries(
        &self,
        range: &KeyRange,
        parts: u32,
        rows: u64,
    ) -> Result<Vec<String>, ValidatorError> {
        if parts <= 1 {
            return Ok(Vec::new());
        }
        if self.plan.integer_lead {
            let rows = self
                .source
                .query(&self.source_sql.lead_bounds(range))
                .await?;
            let (Some(lo), Some(hi)) = (
                rows.first()
                    .and_then(|r| r[0].as_deref())
                    .and_then(|v| v.parse::<i128>().ok()),
                rows.first()
                    .and_then(|r| r[1].as_deref())
                    .and_then(|v| v.parse::<i128>().ok()),
            ) else {
                return Ok(Vec::new());
            };
            let span = hi - lo + 1;
            let parts = i128::from(parts).min(span);
            if parts <= 1 {
                return Ok(Vec::new());
            }
            let width = (span + parts - 1) / parts;
            Ok((1..parts)
                .map(|k| lo + k * width)
                .filter(|b| *b <= hi)
                .map(|b| b.to_string())
                .collect())
        } else {
            let quantiles = |sample: Option<f64>| async move {
                let found = self
                    .source
                    .query(&self.source_sql.sample_boundaries(range, parts, sample))
                    .await?;
                let mut out: Vec<String> = found
                    .into_iter()
                    .skip(1)
                    .filter_map(|r| r[0].clone())
                    .collect();
                out.dedup();
                Ok::<_, ValidatorError>(out)
            };
            if let Some(percent) = sample_percent(parts, rows) {
                let sampled = quantiles(Some(percent)).await?;
                // A sample too small for the parts wanted (few pages, clustered keys):
                // the exact quantiles instead. Any boundaries are correct; these only balance.
                if sampled.len() as u64 * 4 >= u64::from(parts) {
                    return Ok(sampled);
                }
            }
            quantiles(None).await
        }
    }

    /// Compares one segment.
    pub async fn compare_segment(
        &self,
        range: &KeyRange,
        expected_rows: u64,
        options: &Options,
    ) -> Result<SegmentResult, ValidatorError> {
        Ok(self
            .compare_segment_until(range, expected_rows, options, None)
            .await?
            .result)
    }

    /// Compares one segment, or its beginning when `deadline` comes first: a
    /// key-ordered comparison checks the deadline while it streams and stops at a
    /// leading-key value, returned as `resume_from` (the rest of the segment is
    /// `[resume_from, hi)`; what was compared is in `result`). It always compares
    /// some rows first, so a run whose every invocation is too short still advances.
    pub async fn compare_segment_until(
        &self,
        range: &KeyRange,
        expected_rows: u64,
        options: &Options,
        deadline: Option<Instant>,
    ) -> Result<Progress, ValidatorError> {
        let mut result = SegmentResult::default();
        if self.merges(options) && self.ordered_without_sort(range).await? {
            let (merged, position) = self
                .merge_range_live(range, options, &mut result, deadline)
                .await?;
            if !matches!(merged, Merged::OutOfOrder(_)) && !result.merged_pending.is_empty() {
                self.recheck_merged(options, &mut result, position).await?;
            }
            match merged {
                Merged::Done => {
                    self.finish_diffs(&mut result, options);
                    return Ok(Progress {
                        result,
                        resume_from: None,
                    });
                }
                Merged::Cut(resume_from) => {
                    self.finish_diffs(&mut result, options);
                    return Ok(Progress {
                        result,
                        resume_from: Some(resume_from),
                    });
                }
                Merged::OutOfOrder(why) => {
                    eprintln!(
                        "[validate] {}: {why}; comparing by buckets",
                        self.plan.table
                    );
                    result = SegmentResult::default();
                }
            }
        }
        if self.plan.is_multiset() {
            self.compare_multiset(expected_rows, options, &mut result)
                .await?;
        } else {
            let parts = expected_rows
                .div_ceil(options.bucket_rows.max(1))
                .clamp(1, 100_000) as u32;
            self.compare_range(range, parts, options, &mut result, true)
                .await?;
            if !result.pending.is_empty() {
                self.recheck(options, &mut result).await?;
            }
        }
        self.finish_diffs(&mut result, options);
        Ok(Progress {
            result,
            resume_from: None,
        })
    }

    fn finish_diffs(&self, result: &mut SegmentResult, options: &Options) {
        result.diffs.sort_by(|a, b| key_order(&a.key, &b.key));
        result.diffs.truncate(options.max_diffs);
    }

    /// Whether both sides stream their rows and can send them in key order.
    fn merges(&self, options: &Options) -> bool {
        let streams = |side: &Side| matches!(side, Side::Postgres { .. });
        options.merge
            && streams(self.source)
            && streams(self.target)
            && options.hashing == Hashing::Stream
            && !self.plan.is_multiset()
            && self.source_sql.keyed.is_some()
            && self.target_sql.keyed.is_some()
    }

    /// Whether both sides read a range in key order without sorting it (an index
    /// in that order serves): then one key-ordered pass costs what the bucket pass
    /// costs, and finds every difference in it.
    async fn ordered_without_sort(&self, range: &KeyRange) -> Result<bool, ValidatorError> {
        let explain = |sql: &SideSql| crate::sql::Query {
            sql: format!("EXPLAIN {}", sql.keyed_select(range).unwrap_or_default()),
            params: Vec::new(),
        };
        let (s, t) = self
            .both(explain(&self.source_sql), explain(&self.target_sql))
            .await;
        let sorts = |rows: Vec<TextRow>| {
            rows.iter()
                .any(|r| r[0].as_deref().is_some_and(|l| l.contains("Sort  (cost")))
        };
        Ok(!sorts(s?) && !sorts(t?))
    }

    /// [`Self::merge_range`], live: with a slot to wait on, the source's stream is
    /// read in a repeatable-read transaction whose first statement takes the WAL
    /// position, so the position is at or past every commit the stream can see
    /// and the re-check's wait for the replication overlaps the scan (a position
    /// taken after the scan would wait a whole replication latency more).
    /// Returns how the merge ended and that position.
    async fn merge_range_live(
        &self,
        range: &KeyRange,
        options: &Options,
        result: &mut SegmentResult,
        deadline: Option<Instant>,
    ) -> Result<(Merged, Option<String>), ValidatorError> {
        let query = |sql: &str| crate::sql::Query {
            sql: sql.into(),
            params: Vec::new(),
        };
        let position = if matches!(options.live, Live::Slot { .. }) {
            self.source
                .query(&query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                .await?;
            match self.source_position().await {
                Ok(p) => Some(p),
                Err(e) => {
                    let _ = self.source.query(&query("ROLLBACK")).await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let merged = self.merge_range(range, options, result, deadline).await;
        if position.is_some() {
            let ended = self.source.query(&query("COMMIT")).await;
            let merged = merged?;
            ended?;
            return Ok((merged, position));
        }
        Ok((merged?, None))
    }

    /// One sorted merge of both sides' key-ordered streams over `range`: every
    /// row compared by key and hash as the rows arrive, never more than a few
    /// batches in memory. Counts are exact; the first `max_diffs` differences in
    /// key order are read again (by their leading key) for their columns and values.
    async fn merge_range(
        &self,
        range: &KeyRange,
        options: &Options,
        result: &mut SegmentResult,
        deadline: Option<Instant>,
    ) -> Result<Merged, ValidatorError> {
        let hash = stream_hash(self.source, self.target, options.hashing);
        let (Some(source_scan), Some(target_scan)) =
            (&self.source_sql.keyed, &self.target_sql.keyed)
        else {
            return Ok(Merged::OutOfOrder("no key order".into()));
        };
        let parser = |sql: &SideSql, scan: &crate::sql::KeyedScan| {
            KeyedParser::new(
                scan.orders.clone(),
                scan.lead_text.is_some(),
                sql.wires.iter().map(|(w, _)| *w).collect(),
                hash,
            )
        };
        let copy = |sql: &SideSql| sql.keyed_copy(range).unwrap_or_default();
        let (stx, srx) = tokio::sync::mpsc::channel(4);
        let (ttx, trx) = tokio::sync::mpsc::channel(4);
        let (s_copy, t_copy) = (copy(&self.source_sql), copy(&self.target_sql));
        let (s_task, t_task) = tokio::join!(
            self.source
                .copy_keyed(&s_copy, parser(&self.source_sql, source_scan), stx),
            self.target
                .copy_keyed(&t_copy, parser(&self.target_sql, target_scan), ttx),
        );
        let (s_task, t_task) = (s_task?, t_task?);
        result.queries += 2;
        let mut s = Cursor::new(srx, "source");
        let mut t = Cursor::new(trx, "target");
        let keep = options.max_diffs;
        let live = options.live.rechecks() > 0;
        let mut kept = 0usize;
        let mut kept_leads: Vec<Vec<u8>> = Vec::new();
        let mut compared = 0u64;
        let mut cut_lead: Option<Vec<u8>> = None;
        let outcome = loop {
            let (a, b) = match (s.ready().await, t.ready().await) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(why), _) | (_, Err(why)) => break Merged::OutOfOrder(why),
            };
            let next = match (a, b) {
                (false, false) => break Merged::Done,
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                (true, true) => s.key().cmp(t.key()),
            };
            let lead = if next == std::cmp::Ordering::Greater {
                t.lead()
            } else {
                s.lead()
            };
            if let Some(cut) = &cut_lead {
                if lead != cut.as_slice() {
                    break Merged::Cut(self.lead_text(lead)?);
                }
            } else if compared >= MIN_ROWS_BEFORE_CUT
                && compared % 1024 == 0
                && deadline.is_some_and(|d| Instant::now() >= d)
            {
                // Stop where the leading key changes: everything before it is compared.
                cut_lead = Some(lead.to_vec());
            }
            if live {
                // Counted only once the re-check has judged them.
                let versions = match next {
                    std::cmp::Ordering::Less => Some((Some(s.hash()), None)),
                    std::cmp::Ordering::Greater => Some((None, Some(t.hash()))),
                    std::cmp::Ordering::Equal if s.hash() != t.hash() => {
                        Some((Some(s.hash()), Some(t.hash())))
                    }
                    std::cmp::Ordering::Equal => None,
                };
                if let Some(versions) = versions {
                    if result.merged_pending.len() >= LIVE_MAX_PENDING {
                        break Merged::OutOfOrder(format!(
                            "more than {LIVE_MAX_PENDING} differences to re-check live"
                        ));
                    }
                    result.merged_pending.push((lead.to_vec(), versions));
                }
            }
            let kind = match next {
                _ if live => None,
                std::cmp::Ordering::Less => {
                    result.missing_in_target += 1;
                    Some(DiffKind::MissingInTarget)
                }
                std::cmp::Ordering::Greater => {
                    result.extra_in_target += 1;
                    Some(DiffKind::ExtraInTarget)
                }
                std::cmp::Ordering::Equal if s.hash() != t.hash() => {
                    result.different += 1;
                    Some(DiffKind::Different)
                }
                std::cmp::Ordering::Equal => None,
            };
            if kind.is_some() && kept < keep {
                kept += 1;
                if kept_leads.last().map(Vec::as_slice) != Some(lead) {
                    kept_leads.push(lead.to_vec());
                }
            }
            if next != std::cmp::Ordering::Greater {
                s.advance();
                result.source_rows += 1;
            }
            if next != std::cmp::Ordering::Less {
                t.advance();
                result.target_rows += 1;
            }
            compared += 1;
        };
        result.merged_rows += compared;
        // Stopping early closes the channels; the reading tasks then end too.
        drop((s, t));
        let (s_read, t_read) = tokio::join!(s_task, t_task);
        let joined = |r: Result<Result<u64, ValidatorError>, tokio::task::JoinError>| {
            r.map_err(|e| ValidatorError::Internal(format!("reading task: {e}")))?
        };
        let (s_read, t_read) = (joined(s_read), joined(t_read));
        if matches!(outcome, Merged::Done) {
            s_read?;
            t_read?;
        }
        if !kept_leads.is_empty() && !matches!(outcome, Merged::OutOfOrder(_)) {
            let leads = kept_leads
                .iter()
                .map(|l| self.lead_text(l))
                .collect::<Result<Vec<_>, _>>()?;
            let (sr, tr) = self
                .both(
                    self.source_sql.rows_with_leads(&leads),
                    self.target_sql.rows_with_leads(&leads),
                )
                .await;
            result.queries += 2;
            let found = differences(self.plan, sr?, tr?, hash, |shown| self.key_label(shown));
            result.diffs.extend(found.into_iter().map(|f| f.diff));
        }
        Ok(outcome)
    }

    /// The boundary text of a lead value as a key-ordered stream sent it.
    fn lead_text(&self, raw: &[u8]) -> Result<String, ValidatorError> {
        let scan = self
            .source_sql
            .keyed
            .as_ref()
            .ok_or_else(|| ValidatorError::Internal("no key order".into()))?;
        if scan.lead_text.is_some() {
            String::from_utf8(raw.to_vec())
                .map_err(|_| ValidatorError::Internal("a lead key that is not UTF-8".into()))
        } else {
            scan.orders[0].lead_text(raw)
        }
    }

    async fn compare_range(
        &self,
        range: &KeyRange,
        parts: u32,
        options: &Options,
        result: &mut SegmentResult,
        top: bool,
    ) -> Result<(), ValidatorError> {
        // The first pass cuts a whole segment; bisection cuts one bucket at a time.
        let rows = if top {
            u64::from(parts) * options.bucket_rows
        } else {
            0
        };
        let boundaries = self.boundaries(range, parts, rows).await?;
        let (s, t) = tokio::join!(
            self.bucket_sums(
                self.source,
                &self.source_sql,
                range,
                &boundaries,
                options.hashing
            ),
            self.bucket_sums(
                self.target,
                &self.target_sql,
                range,
                &boundaries,
                options.hashing
            ),
        );
        result.queries += 2;
        let (s, t) = (s?, t?);
        if top {
            result.source_rows += s.values().map(|b| b.count).sum::<u64>();
            result.target_rows += t.values().map(|b| b.count).sum::<u64>();
        }
        let sub_ranges = ranges_between(range, &boundaries);
        let mut indices: Vec<i64> = s.keys().chain(t.keys()).copied().collect();
        indices.sort_unstable();
        indices.dedup();
        // Dense drift (a tenth of the first pass's buckets or more differ): each bucket
        // holds several differences, and bisecting it costs 2 + 2 × fanout round trips
        // to fetch what one fetch of the whole bucket brings. Fetch buckets of up to
        // twice the bucket size at once then (measured: `make bench`, massive drift).
        let differing = indices
            .iter()
            .filter(|i| {
                s.get(i).copied().unwrap_or_default() != t.get(i).copied().unwrap_or_default()
            })
            .count();
        let dense = top && indices.len() >= 10 && differing * 10 >= indices.len();
        let leaf_rows = if dense {
            options.leaf_rows.max(options.bucket_rows * 2)
        } else {
            options.leaf_rows
        };
        if dense && self.merges(options) && options.live == Live::Off {
            // Many buckets differ: one sorted merge over the span that holds them costs
            // one more scan, where fetching bucket by bucket costs a round trip each.
            let differs = |i: &&i64| {
                s.get(i).copied().unwrap_or_default() != t.get(i).copied().unwrap_or_default()
            };
            let first = indices.iter().find(differs).copied().unwrap_or_default();
            let last = indices
                .iter()
                .rev()
                .find(differs)
                .copied()
                .unwrap_or_default();
            let span = KeyRange {
                lo: sub_ranges
                    .get(first as usize)
                    .map_or(range.lo.clone(), |r| r.lo.clone()),
                hi: sub_ranges
                    .get(last as usize)
                    .map_or(range.hi.clone(), |r| r.hi.clone()),
            };
            let mut part = SegmentResult::default();
            if let Merged::Done = self.merge_range(&span, options, &mut part, None).await? {
                // The rows were counted by the bucket pass.
                result.absorb(part, options.max_diffs);
                return Ok(());
            }
        }
        let mut work = Vec::new();
        for index in indices {
            let (a, b) = (
                s.get(&index).copied().unwrap_or_default(),
                t.get(&index).copied().unwrap_or_default(),
            );
            if a == b {
                continue;
            }
            let sub = sub_ranges.get(index as usize).cloned().ok_or_else(|| {
                ValidatorError::Internal(format!(
                    "bucket {index} outside {} boundaries",
                    boundaries.len()
                ))
            })?;
            // A bucket that could not be split further (one key value) is compared row by row.
            let leaf = a.count.max(b.count) <= leaf_rows || boundaries.is_empty() || sub == *range;
            work.push((sub, leaf));
        }
        // The mismatching buckets are independent: examine several at once.
        let keep = options.max_diffs * 4;
        let mut found = futures::stream::iter(work.into_iter().map(|(sub, leaf)| async move {
            let mut part = SegmentResult::default();
            if leaf {
                self.compare_rows(&sub, options, &mut part).await?;
            } else {
                part.buckets_split += 1;
                Box::pin(self.compare_range(&sub, options.fanout, options, &mut part, false))
                    .await?;
            }
            Ok::<_, ValidatorError>(part)
        }))
        .buffer_unordered(CONCURRENT_BUCKETS);
        while let Some(part) = found.next().await {
            result.absorb(part?, keep);
        }
        Ok(())
    }

    async fn compare_rows(
        &self,
        range: &KeyRange,
        options: &Options,
        result: &mut SegmentResult,
    ) -> Result<(), ValidatorError> {
        let range = Reread::Range(range.clone());
        let found = self.read_differences(&range, options, result).await?;
        if options.live.rechecks() > 0 && !found.is_empty() {
            // Judged after the whole segment's first pass, with one wait for the
            // replication instead of one per range.
            result.pending.push((range, found));
        } else {
            record(result, found, options.max_diffs * 4);
        }
        Ok(())
    }

    /// Reads a range (or the rows of some lead values) on both sides and returns
    /// its differing rows, each with the row hashes of its two versions.
    async fn read_differences(
        &self,
        what: &Reread,
        options: &Options,
        result: &mut SegmentResult,
    ) -> Result<Vec<Found>, ValidatorError> {
        let (s, t) = match what {
            Reread::Range(range) => {
                self.both(self.source_sql.rows(range), self.target_sql.rows(range))
                    .await
            }
            Reread::Leads(leads) => {
                self.both(
                    self.source_sql.rows_with_leads(leads),
                    self.target_sql.rows_with_leads(leads),
                )
                .await
            }
        };
        result.queries += 2;
        let hash = stream_hash(self.source, self.target, options.hashing);
        Ok(differences(self.plan, s?, t?, hash, |shown| {
            self.key_label(shown)
        }))
    }

    /// Live validation after a sorted merge: once the replication has passed
    /// `position` (taken when the merge's source stream began), reads the rows of
    /// every differing lead again. A row equal now is resolved; a row whose two
    /// versions are those the merge saw, with the replication caught up in
    /// between, is a stable difference (the merge's row hashes and these are the
    /// same function of the same canonical text); any other goes on to the
    /// re-checks by [`Self::recheck_rounds`].
    async fn recheck_merged(
        &self,
        options: &Options,
        result: &mut SegmentResult,
        position: Option<String>,
    ) -> Result<(), ValidatorError> {
        let merged = std::mem::take(&mut result.merged_pending);
        result.rechecked += merged.len() as u64;
        let seen: HashSet<Versions> = merged.iter().map(|(_, v)| *v).collect();
        let mut leads = Vec::new();
        for (lead, _) in &merged {
            if leads.last() != Some(lead) {
                leads.push(lead.clone());
            }
        }
        let leads = leads
            .iter()
            .map(|l| self.lead_text(l))
            .collect::<Result<Vec<_>, _>>()?;
        let caught_up = self.wait_for_replication(&options.live, position).await?;
        // Owned chunks: a closure over borrowed ones makes the future not `Send` for
        // every lifetime, and the run spawns it.
        let chunks: Vec<Reread> = leads
            .chunks(LEADS_PER_REREAD)
            .map(|chunk| Reread::Leads(chunk.to_vec()))
            .collect();
        let mut reads = futures::stream::iter(chunks.into_iter().map(|what| async move {
            let mut counted = SegmentResult::default();
            let found = self.read_differences(&what, options, &mut counted).await?;
            Ok::<_, ValidatorError>((what, found, counted.queries))
        }))
        .buffer_unordered(4);
        let (mut settled, mut next, mut differing) = (Vec::new(), Vec::new(), 0usize);
        while let Some(read) = reads.next().await {
            let (what, found, queries) = read?;
            result.queries += queries;
            differing += found.len();
            let (stable, moving): (Vec<Found>, Vec<Found>) = found
                .into_iter()
                .partition(|f| caught_up && seen.contains(&f.versions));
            settled.extend(stable);
            if !moving.is_empty() {
                next.push((what, moving));
            }
        }
        result.resolved += (merged.len() as u64).saturating_sub(differing as u64);
        let rounds = options.live.rechecks().saturating_sub(1);
        self.recheck_rounds(options, result, next, settled, rounds)
            .await
    }

    /// Live validation: once the replication has passed the end of the previous
    /// pass, reads the ranges holding differing rows again (several at once), until
    /// each row is resolved (equal now), stable (the same two versions as before,
    /// with the replication caught up in between: a real difference) or still
    /// moving after the last re-check (in flight).
    async fn recheck(
        &self,
        options: &Options,
        result: &mut SegmentResult,
    ) -> Result<(), ValidatorError> {
        let pending = std::mem::take(&mut result.pending);
        result.rechecked += pending.iter().map(|(_, f)| f.len() as u64).sum::<u64>();
        self.recheck_rounds(
            options,
            result,
            pending,
            Vec::new(),
            options.live.rechecks(),
        )
        .await
    }

    /// Up to `rounds` re-reads of the `pending` rows, each once the replication
    /// has passed the end of the previous read; then records `settled` and what
    /// is still moving (in flight).
    async fn recheck_rounds(
        &self,
        options: &Options,
        result: &mut SegmentResult,
        mut pending: Vec<(Reread, Vec<Found>)>,
        mut settled: Vec<Found>,
        rounds: u32,
    ) -> Result<(), ValidatorError> {
        for _ in 0..rounds {
            if pending.is_empty() {
                break;
            }
            // Taken after the previous read: at or past every commit it could see.
            let position = match options.live {
                Live::Slot { .. } => Some(self.source_position().await?),
                _ => None,
            };
            let rows: usize = pending.iter().map(|(_, f)| f.len()).sum();
            if rows <= POLLED_ROWS {
                pending = self
                    .resolve_while_waiting(options, result, pending, position.as_deref())
                    .await?;
                if pending.is_empty() {
                    break;
                }
            }
            let caught_up = self.wait_for_replication(&options.live, position).await?;
            let mut reread =
                futures::stream::iter(pending.into_iter().map(|(range, before)| async move {
                    let mut counted = SegmentResult::default();
                    let again = self.read_differences(&range, options, &mut counted).await?;
                    Ok::<_, ValidatorError>((range, before, again, counted.queries))
                }))
                .buffer_unordered(CONCURRENT_BUCKETS);
            let mut next = Vec::new();
            while let Some(read) = reread.next().await {
                let (range, before, again, queries) = read?;
                result.queries += queries;
                let again: HashMap<String, Found> =
                    again.into_iter().map(|f| (f.diff.key.clone(), f)).collect();
                let mut moving = Vec::new();
                for b in before {
                    match again.get(&b.diff.key) {
                        None => result.resolved += 1,
                        Some(now) if caught_up && now.versions == b.versions => {
                            settled.push(now.clone())
                        }
                        Some(now) => moving.push(now.clone()),
                    }
                }
                if !moving.is_empty() {
                    next.push((range, moving));
                }
            }
            pending = next;
        }
        for (_, moving) in pending {
            settled.extend(moving.into_iter().map(|mut f| {
                f.diff.kind = DiffKind::InFlight;
                f
            }));
        }
        record(result, settled, options.max_diffs * 4);
        Ok(())
    }

    /// While the slot has not passed `position`, reads the few `pending` rows again
    /// every [`POLL_MS`]: a row equal now is resolved at once (its change has
    /// arrived), and when every row is, the re-check needs no more waiting. A row
    /// still different keeps its versions from before `position`, for the verdict
    /// once the replication has passed it.
    async fn resolve_while_waiting(
        &self,
        options: &Options,
        result: &mut SegmentResult,
        mut pending: Vec<(Reread, Vec<Found>)>,
        position: Option<&str>,
    ) -> Result<Vec<(Reread, Vec<Found>)>, ValidatorError> {
        let (Live::Slot { slot, wait_ms, .. }, Some(position)) = (&options.live, position) else {
            return Ok(pending);
        };
        let deadline = Instant::now() + std::time::Duration::from_millis(*wait_ms);
        while !pending.is_empty()
            && Instant::now() < deadline
            && !self.slot_applied(slot, position).await?
        {
            tokio::time::sleep(std::time::Duration::from_millis(POLL_MS)).await;
            let mut still = Vec::new();
            for (what, before) in pending {
                let again = self.read_differences(&what, options, result).await?;
                let differing: HashSet<&str> = again.iter().map(|f| f.diff.key.as_str()).collect();
                let (kept, resolved): (Vec<Found>, Vec<Found>) = before
                    .into_iter()
                    .partition(|b| differing.contains(b.diff.key.as_str()));
                result.resolved += resolved.len() as u64;
                if !kept.is_empty() {
                    still.push((what, kept));
                }
            }
            pending = still;
        }
        Ok(pending)
    }

    /// Whether the logical slot `slot` has confirmed `position` as applied.
    async fn slot_applied(&self, slot: &str, position: &str) -> Result<bool, ValidatorError> {
        let rows = self
            .source
            .query(&crate::sql::Query {
                sql: "SELECT (confirmed_flush_lsn >= ($1::text)::pg_lsn)::text \
                      FROM pg_replication_slots WHERE slot_name = $2"
                    .into(),
                params: vec![position.to_string(), slot.to_string()],
            })
            .await?;
        match rows.first().and_then(|r| r[0].as_deref()) {
            Some(v) => Ok(v == "true"),
            None => Err(ValidatorError::InvalidInput(format!(
                "live validation: there is no replication slot {slot:?} on the source"
            ))),
        }
    }

    /// The source's WAL insert position: at or past the commit record of every
    /// transaction a snapshot taken before it can see (also with asynchronous
    /// commit, whose records may not be written yet).
    async fn source_position(&self) -> Result<String, ValidatorError> {
        self.source
            .query(&crate::sql::Query {
                sql: "SELECT pg_current_wal_insert_lsn()::text".into(),
                params: Vec::new(),
            })
            .await?
            .first()
            .and_then(|r| r[0].clone())
            .ok_or_else(|| ValidatorError::Internal("no WAL position on the source".into()))
    }

    /// Waits until the target has applied what the source had committed at
    /// `position` (when this is called, without one); `false` when it did not
    /// within the configured wait.
    async fn wait_for_replication(
        &self,
        live: &Live,
        position: Option<String>,
    ) -> Result<bool, ValidatorError> {
        match live {
            Live::Off => Ok(true),
            Live::Delay { ms, .. } => {
                tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
                Ok(true)
            }
            Live::Slot { slot, wait_ms, .. } => {
                let position = match position {
                    Some(p) => p,
                    None => self.source_position().await?,
                };
                let deadline =
                    std::time::Instant::now() + std::time::Duration::from_millis(*wait_ms);
                loop {
                    if self.slot_applied(slot, &position).await? {
                        return Ok(true);
                    }
                    if std::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// `order_id=7,line_no=2` from the key's display values.
    fn key_label(&self, shown: &str) -> String {
        let names: Vec<&str> = self
            .plan
            .key
            .iter()
            .map(|i| self.plan.columns[*i].source.as_str())
            .collect();
        if names.len() == 1 {
            return format!("{}={shown}", names[0]);
        }
        let values: Vec<&str> = shown.splitn(names.len(), ',').collect();
        if values.len() != names.len() {
            return shown.to_string();
        }
        names
            .iter()
            .zip(values)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn compare_multiset(
        &self,
        expected_rows: u64,
        options: &Options,
        result: &mut SegmentResult,
    ) -> Result<(), ValidatorError> {
        let modulus = expected_rows.div_ceil(options.bucket_rows.max(1)).max(1);
        let (s, t) = self
            .both(
                self.source_sql.multiset_hashes(modulus),
                self.target_sql.multiset_hashes(modulus),
            )
            .await;
        result.queries += 2;
        let (s, t) = (buckets(&s?)?, buckets(&t?)?);
        result.source_rows = s.values().map(|b| b.count).sum();
        result.target_rows = t.values().map(|b| b.count).sum();
        let mut differing: Vec<u64> = s
            .keys()
            .chain(t.keys())
            .filter(|k| {
                let (a, b) = (
                    s.get(k).copied().unwrap_or_default(),
                    t.get(k).copied().unwrap_or_default(),
                );
                a.count != b.count || a.sum != b.sum
            })
            .map(|k| *k as u64)
            .collect();
        differing.sort_unstable();
        differing.dedup();
        if differing.is_empty() {
            return Ok(());
        }
        let (s, t) = self
            .both(
                self.source_sql.multiset_rows(modulus, &differing),
                self.target_sql.multiset_rows(modulus, &differing),
            )
            .await;
        result.queries += 2;
        let index = |rows: Vec<TextRow>| -> Result<HashMap<String, (u64, String)>, ValidatorError> {
            rows.into_iter()
                .map(|r| {
                    Ok((
                        r[0].clone().unwrap_or_default(),
                        (
                            parse_u64(&r[1], "row copies")?,
                            r[2].clone().unwrap_or_default(),
                        ),
                    ))
                })
                .collect()
        };
        let (s, t) = (index(s?)?, index(t?)?);
        let mut hashes: Vec<&String> = s.keys().chain(t.keys()).collect();
        hashes.sort();
        hashes.dedup();
        for hash in hashes {
            let (a, b) = (s.get(hash), t.get(hash));
            let (na, nb) = (a.map_or(0, |x| x.0), b.map_or(0, |x| x.0));
            if na == nb {
                continue;
            }
            let shown = a.or(b).map(|x| x.1.clone()).unwrap_or_default();
            let kind = if na > nb {
                result.missing_in_target += na - nb;
                DiffKind::MissingInTarget
            } else {
                result.extra_in_target += nb - na;
                DiffKind::ExtraInTarget
            };
            if result.diffs.len() < options.max_diffs * 4 {
                result.diffs.push(RowDiff {
                    key: format!("row {shown}"),
                    kind,
                    columns: Vec::new(),
                    copies: Some((na, nb)),
                });
            }
        }
        Ok(())
    }
}

/// Orders key labels (`order_id=7,line_no=2`) as the keys sort: column by
/// column, numbers as numbers (`id=9` before `id=10`), anything else by its
/// bytes (the "C" order the ranges are cut in).
pub fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn number(v: &str) -> Option<f64> {
        let digits = v.strip_prefix('-').unwrap_or(v);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (plain(int) && plain(frac))
            .then(|| v.parse().ok())
            .flatten()
    }
    let value =
        |part: &'_ str| -> String { part.split_once('=').map_or(part, |(_, v)| v).to_string() };
    let (mut x, mut y) = (a.split(','), b.split(','));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(p), Some(q)) => {
                let (v, w) = (value(p), value(q));
                let order = match (number(&v), number(&w)) {
                    (Some(m), Some(n)) => m.total_cmp(&n).then_with(|| v.cmp(&w)),
                    _ => v.as_bytes().cmp(w.as_bytes()),
                };
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// The share of a range's rows (percent) to sample for boundaries: about 32 keys
/// per part and at least 10,000, for ranges of 100,000 rows or more; `None` for
/// smaller ones, whose exact quantiles are cheap.
fn sample_percent(parts: u32, rows: u64) -> Option<f64> {
    if rows < 100_000 {
        return None;
    }
    let wanted = (32 * u64::from(parts)).max(10_000);
    let percent = 100.0 * wanted as f64 / rows as f64;
    (percent < 50.0).then_some(percent.max(0.001))
}

/// Counts differences by kind and keeps the first `keep` of them.
fn record(result: &mut SegmentResult, found: Vec<Found>, keep: usize) {
    for f in found {
        match f.diff.kind {
            DiffKind::MissingInTarget => result.missing_in_target += 1,
            DiffKind::ExtraInTarget => result.extra_in_target += 1,
            DiffKind::Different => result.different += 1,
            DiffKind::InFlight => result.in_flight += 1,
        }
        if result.diffs.len() < keep {
            result.diffs.push(f.diff);
        }
    }
}

/// A differing row and the fingerprints of its two versions (source, target;
/// `None` where the row is absent), which tell a stable difference from a moving one.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    diff: RowDiff,
    versions: Versions,
}

/// The differing rows of two reads of the same range, keyed by canonical key.
/// Rows are `[key, key display, canonical…, display…]` as [`SideSql::rows`] returns them.
fn differences(
    plan: &TablePlan,
    source: Vec<TextRow>,
    target: Vec<TextRow>,
    hash: crate::stream::RowHash,
    label: impl Fn(&str) -> String,
) -> Vec<Found> {
    let n = plan.columns.len();
    let index = |rows: Vec<TextRow>| -> HashMap<String, TextRow> {
        rows.into_iter()
            .map(|r| (r[0].clone().unwrap_or_default(), r))
            .collect()
    };
    // The row hash of the canonical row text, as a stream of the same side hashes
    // it: a live re-check compares it with the hashes a sorted merge saw.
    let fingerprint = |row: &TextRow| {
        let mut text = Vec::new();
        for (i, value) in row[2..2 + n].iter().enumerate() {
            if i > 0 {
                text.push(b'|');
            }
            text.extend_from_slice(value.as_deref().unwrap_or("").as_bytes());
        }
        hash.of(&text)
    };
    let (s, t) = (index(source), index(target));
    let shown = |row: &TextRow| label(&row[1].clone().unwrap_or_default());
    let mut out = Vec::new();
    for (key, srow) in &s {
        let diff = match t.get(key) {
            None => RowDiff {
                key: shown(srow),
                kind: DiffKind::MissingInTarget,
                columns: Vec::new(),
                copies: None,
            },
            Some(trow) => {
                let columns: Vec<ColumnDiff> = (0..n)
                    .filter(|i| srow[2 + i] != trow[2 + i])
                    .map(|i| ColumnDiff {
                        column: plan.columns[i].source.clone(),
                        source: srow[2 + n + i].clone(),
                        target: trow[2 + n + i].clone(),
                    })
                    .collect();
                if columns.is_empty() {
                    continue;
                }
                RowDiff {
                    key: shown(srow),
                    kind: DiffKind::Different,
                    columns,
                    copies: None,
                }
            }
        };
        let versions = (Some(fingerprint(srow)), t.get(key).map(fingerprint));
        out.push(Found { diff, versions });
    }
    for (key, trow) in &t {
        if !s.contains_key(key) {
            out.push(Found {
                diff: RowDiff {
                    key: shown(trow),
                    kind: DiffKind::ExtraInTarget,
                    columns: Vec::new(),
                    copies: None,
                },
                versions: (None, Some(fingerprint(trow))),
            });
        }
    }
    out
}

/// The sub-ranges that `boundaries` cut `range` into (one more than boundaries).
pub fn ranges_between(range: &KeyRange, boundaries: &[String]) -> Vec<KeyRange> {
    let mut out = Vec::with_capacity(boundaries.len() + 1);
    let mut lo = range.lo.clone();
    for b in boundaries {
        out.push(KeyRange {
            lo: lo.clone(),
            hi: Some(b.clone()),
        });
        lo = Some(b.clone());
    }
    out.push(KeyRange {
        lo,
        hi: range.hi.clone(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_cut_a_range_into_adjacent_parts() {
        let range = KeyRange {
            lo: Some("0".into()),
            hi: None,
        };
        let parts = ranges_between(&range, &["10".into(), "20".into()]);
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[0],
            KeyRange {
                lo: Some("0".into()),
                hi: Some("10".into())
            }
        );
        assert_eq!(
            parts[1],
            KeyRange {
                lo: Some("10".into()),
                hi: Some("20".into())
            }
        );
        assert_eq!(
            parts[2],
            KeyRange {
                lo: Some("20".into()),
                hi: None
            }
        );
        assert_eq!(ranges_between(&range, &[]), vec![range.clone()]);
    }

    #[test]
    fn differences_are_kept_in_key_order_not_text_order() {
        let mut keys = vec!["id=100000", "id=6", "id=-3", "id=10.5", "id=10"];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(keys, vec!["id=-3", "id=6", "id=10", "id=10.5", "id=100000"]);
        let mut composite = vec![
            "order_id=10,line_no=2",
            "order_id=9,line_no=11",
            "order_id=9,line_no=2",
        ];
        composite.sort_by(|a, b| key_order(a, b));
        assert_eq!(
            composite,
            vec![
                "order_id=9,line_no=2",
                "order_id=9,line_no=11",
                "order_id=10,line_no=2"
            ]
        );
        let mut text = vec!["email=b", "email=B", "email=a"];
        text.sort_by(|a, b| key_order(a, b));
        assert_eq!(
            text,
            vec!["email=B", "email=a", "email=b"],
            "byte order, as the ranges"
        );
    }

    #[test]
    fn large_ranges_sample_their_boundaries() {
        assert_eq!(sample_percent(30, 3_000), None, "small: exact quantiles");
        let p = sample_percent(1_000, 1_000_000).unwrap();
        assert!((p - 3.2).abs() < 1e-9, "{p}");
        let p = sample_percent(5, 10_000_000).unwrap();
        assert!((p - 0.1).abs() < 1e-9, "at least 10,000 keys: {p}");
        assert_eq!(sample_percent(2_000, 100_000), None, "half or more: exact");
    }

    #[test]
    fn bucket_rows_parse_and_reject_garbage() {
        let rows = vec![vec![
            Some("3".into()),
            Some("10".into()),
            Some("123456789012345678901234".into()),
        ]];
        let b = buckets(&rows).unwrap();
        assert_eq!(b[&3].count, 10);
        assert_eq!(b[&3].sum, 123456789012345678901234);
        assert!(buckets(&[vec![Some("x".into()), None, None]]).is_err());
    }
}
