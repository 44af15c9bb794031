//! The comparison itself: segments, buckets, bisection and row differences.
//!
//! For a segment (a key range of a table) both sides compute, in one scan each
//! and at the same time, the row count and the hash sum of every bucket of the
//! range. Buckets that agree are done. A bucket that disagrees is split again
//! (`fanout` ways) until it holds at most `leaf_rows` rows, and then its rows
//! are fetched from both sides and compared key by key and column by column.
//! Tables without a primary key are bucketed by row hash and compared as
//! multisets: a row present twice on one side and once on the other is found.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::schema::TablePlan;
use crate::side::{Side, TextRow};
use crate::sql::{KeyRange, Role, SideSql};
use crate::ValidatorError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl SegmentResult {
    pub fn mismatched(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.different
    }

    /// Adds a sub-range's findings (not its row totals, which the top level counts).
    fn absorb(&mut self, other: SegmentResult, keep: usize) {
        self.missing_in_target += other.missing_in_target;
        self.extra_in_target += other.extra_in_target;
        self.different += other.different;
        self.queries += other.queries;
        self.buckets_split += other.buckets_split;
        self.diffs.extend(other.diffs);
        if self.diffs.len() > keep {
            self.diffs.sort_by(|a, b| a.key.cmp(&b.key));
            self.diffs.truncate(keep);
        }
    }
}

use crate::stream::{Bucket, RowHash};

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
        Pair {
            source,
            target,
            plan,
            source_sql: SideSql::new(source.dialect(), plan, Role::Source),
            target_sql: SideSql::new(target.dialect(), plan, Role::Target),
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
                side.copy_buckets(&sql.bucket_copy(range, boundaries), sql, hash)
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
        let boundaries = self.boundaries(&KeyRange::default(), wanted as u32).await?;
        Ok(ranges_between(&KeyRange::default(), &boundaries))
    }

    /// Boundaries splitting `range` into about `parts` parts: arithmetic for an
    /// integer leading key, quantiles of the source's keys otherwise.
    async fn boundaries(
        &self,
        range: &KeyRange,
        parts: u32,
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
            let rows = self
                .source
                .query(&self.source_sql.sample_boundaries(range, parts))
                .await?;
            let mut out: Vec<String> = rows
                .into_iter()
                .skip(1)
                .filter_map(|r| r[0].clone())
                .collect();
            out.dedup();
            Ok(out)
        }
    }

    /// Compares one segment.
    pub async fn compare_segment(
        &self,
        range: &KeyRange,
        expected_rows: u64,
        options: &Options,
    ) -> Result<SegmentResult, ValidatorError> {
        let mut result = SegmentResult::default();
        if self.plan.is_multiset() {
            self.compare_multiset(expected_rows, options, &mut result)
                .await?;
        } else {
            let parts = expected_rows
                .div_ceil(options.bucket_rows.max(1))
                .clamp(1, 100_000) as u32;
            self.compare_range(range, parts, options, &mut result, true)
                .await?;
        }
        result.diffs.sort_by(|a, b| a.key.cmp(&b.key));
        result.diffs.truncate(options.max_diffs);
        Ok(result)
    }

    async fn compare_range(
        &self,
        range: &KeyRange,
        parts: u32,
        options: &Options,
        result: &mut SegmentResult,
        top: bool,
    ) -> Result<(), ValidatorError> {
        let boundaries = self.boundaries(range, parts).await?;
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
            let leaf =
                a.count.max(b.count) <= options.leaf_rows || boundaries.is_empty() || sub == *range;
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
        let (s, t) = self
            .both(self.source_sql.rows(range), self.target_sql.rows(range))
            .await;
        result.queries += 2;
        let n = self.plan.columns.len();
        let index = |rows: Vec<TextRow>| -> HashMap<String, TextRow> {
            rows.into_iter()
                .map(|r| (r[0].clone().unwrap_or_default(), r))
                .collect()
        };
        let (s, t) = (index(s?), index(t?));
        let keep = |result: &SegmentResult| result.diffs.len() < options.max_diffs * 4;
        for (key, srow) in &s {
            let shown = srow[1].clone().unwrap_or_default();
            match t.get(key) {
                None => {
                    result.missing_in_target += 1;
                    if keep(result) {
                        result.diffs.push(RowDiff {
                            key: self.key_label(&shown),
                            kind: DiffKind::MissingInTarget,
                            columns: Vec::new(),
                            copies: None,
                        });
                    }
                }
                Some(trow) => {
                    let columns: Vec<ColumnDiff> = (0..n)
                        .filter(|i| srow[2 + i] != trow[2 + i])
                        .map(|i| ColumnDiff {
                            column: self.plan.columns[i].source.clone(),
                            source: srow[2 + n + i].clone(),
                            target: trow[2 + n + i].clone(),
                        })
                        .collect();
                    if !columns.is_empty() {
                        result.different += 1;
                        if keep(result) {
                            result.diffs.push(RowDiff {
                                key: self.key_label(&shown),
                                kind: DiffKind::Different,
                                columns,
                                copies: None,
                            });
                        }
                    }
                }
            }
        }
        for (key, trow) in &t {
            if !s.contains_key(key) {
                result.extra_in_target += 1;
                if keep(result) {
                    result.diffs.push(RowDiff {
                        key: self.key_label(&trow[1].clone().unwrap_or_default()),
                        kind: DiffKind::ExtraInTarget,
                        columns: Vec::new(),
                        copies: None,
                    });
                }
            }
        }
        Ok(())
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
