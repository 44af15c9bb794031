//! What one vantage point saw of the writer: a reachability record per window.
//!
//! Every region's lag-probe writes one [`ReachRecord`] (`REACH#<writer>` /
//! `FROM#<vantage>`, see [`crate::state::keys::reach`]) that says whether its
//! last attempt to reach the writer succeeded, how many attempts in a row have
//! failed since when, and when it last succeeded. The failover function reads
//! the records of the other vantage points and moves the writer only when
//! enough of them agree that it is gone (see the failover crate's `agreement`).
//!
//! [`ReachTracker`] keeps a vantage point's record across attempts and across
//! windows (a streak of failures continues from the stored record when the
//! previous window ended recently enough), and says when the record is due to be
//! written: at every change, at every failure while the writer is unreachable
//! (so the other regions see a fresh streak), and otherwise every `rewrite_every`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One vantage point's view of the writer, as last recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachRecord {
    /// The region whose writer was probed.
    pub writer_region: String,
    /// The region the probe ran in.
    pub vantage: String,
    /// The last attempt reached the writer (it took a write).
    pub reachable: bool,
    /// Attempts in a row that failed (0 when reachable).
    pub consecutive_failures: u32,
    /// The first failure of the current streak (None when reachable).
    pub first_failure_at_ms: Option<u64>,
    /// The last attempt that succeeded, if any is known.
    pub last_success_at_ms: Option<u64>,
    /// When this record was taken (the last attempt), ms since the Unix epoch.
    pub taken_at_ms: u64,
    /// The last failure's error, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl ReachRecord {
    /// How long the current streak of failures has lasted when the record was
    /// taken (0 when reachable).
    pub fn unreachable_for_ms(&self) -> u64 {
        match (self.reachable, self.first_failure_at_ms) {
            (false, Some(first)) => self.taken_at_ms.saturating_sub(first),
            _ => 0,
        }
    }

    /// The record's age at `now_ms`.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.taken_at_ms)
    }
}

/// A vantage point's record, kept up to date attempt by attempt.
#[derive(Debug, Clone)]
pub struct ReachTracker {
    record: ReachRecord,
    observed: bool,
    last_written_ms: Option<u64>,
    rewrite_every_ms: u64,
}

impl ReachTracker {
    /// Starts tracking `writer` from `vantage`. A `previous` record of the same
    /// writer and vantage taken no more than `continuity` before `now_ms` is
    /// continued (its streak of failures goes on); an older one only lends its
    /// last success, because the time in between was not watched.
    pub fn start(
        writer: &str,
        vantage: &str,
        previous: Option<ReachRecord>,
        now_ms: u64,
        continuity: Duration,
        rewrite_every: Duration,
    ) -> Self {
        let same = previous.filter(|p| {
            p.writer_region == writer && p.vantage == vantage && p.taken_at_ms <= now_ms
        });
        let record = match same {
            Some(p) if p.age_ms(now_ms) <= continuity.as_millis() as u64 => p,
            other => ReachRecord {
                writer_region: writer.to_string(),
                vantage: vantage.to_string(),
                reachable: false,
                consecutive_failures: 0,
                first_failure_at_ms: None,
                last_success_at_ms: other.and_then(|p| p.last_success_at_ms),
                taken_at_ms: now_ms,
                last_error: None,
            },
        };
        ReachTracker {
            record,
            observed: false,
            last_written_ms: None,
            rewrite_every_ms: rewrite_every.as_millis() as u64,
        }
    }

    /// The writer answered at `at_ms`; the record if it is due to be written.
    pub fn success(&mut self, at_ms: u64) -> Option<ReachRecord> {
        let changed = !self.observed || !self.record.reachable;
        let r = &mut self.record;
        r.reachable = true;
        r.consecutive_failures = 0;
        r.first_failure_at_ms = None;
        r.last_success_at_ms = Some(at_ms);
        r.taken_at_ms = at_ms;
        r.last_error = None;
        self.due(changed, at_ms)
    }

    /// The writer did not answer at `at_ms` (an error or a timeout); the record
    /// to write (always: a streak of failures is written as it grows).
    pub fn failure(&mut self, at_ms: u64, error: &str) -> Option<ReachRecord> {
        let r = &mut self.record;
        if r.reachable || r.first_failure_at_ms.is_none() {
            r.first_failure_at_ms = Some(at_ms);
            r.consecutive_failures = 0;
        }
        r.reachable = false;
        r.consecutive_failures += 1;
        r.taken_at_ms = at_ms;
        r.last_error = Some(error.to_string());
        self.due(true, at_ms)
    }

    /// The record as it stands, once anything was observed.
    pub fn current(&self) -> Option<ReachRecord> {
        self.observed.then(|| self.record.clone())
    }

    fn due(&mut self, changed: bool, at_ms: u64) -> Option<ReachRecord> {
        self.observed = true;
        let stale = self
            .last_written_ms
            .is_none_or(|w| at_ms.saturating_sub(w) >= self.rewrite_every_ms);
        (changed || stale).then(|| {
            self.last_written_ms = Some(at_ms);
            self.record.clone()
        })
    }
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds, for reasons and logs.
pub fn rfc3339_ms(ms: u64) -> String {
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&f).unwrap_or_else(|_| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONT: Duration = Duration::from_secs(30);
    const EVERY: Duration = Duration::from_secs(10);

    fn tracker(previous: Option<ReachRecord>, now: u64) -> ReachTracker {
        ReachTracker::start("us-east-1", "eu-west-1", previous, now, CONT, EVERY)
    }

    #[test]
    fn a_streak_of_failures_counts_from_its_first_failure() {
        let mut t = tracker(None, 1_000);
        assert!(t.current().is_none(), "nothing observed yet");
        let r = t.success(1_000).unwrap();
        assert!(r.reachable);
        assert_eq!(r.last_success_at_ms, Some(1_000));
        let r = t.failure(2_000, "connection refused").unwrap();
        assert_eq!(
            (r.reachable, r.consecutive_failures, r.first_failure_at_ms),
            (false, 1, Some(2_000))
        );
        let r = t.failure(5_000, "timeout").unwrap();
        assert_eq!(r.consecutive_failures, 2);
        assert_eq!(r.first_failure_at_ms, Some(2_000));
        assert_eq!(r.unreachable_for_ms(), 3_000);
        assert_eq!(r.last_success_at_ms, Some(1_000));
        assert_eq!(r.last_error.as_deref(), Some("timeout"));
        let r = t.success(6_000).unwrap();
        assert!(r.reachable && r.first_failure_at_ms.is_none() && r.consecutive_failures == 0);
        assert_eq!(r.unreachable_for_ms(), 0);
    }

    #[test]
    fn successes_are_written_on_change_and_then_every_rewrite_period() {
        let mut t = tracker(None, 0);
        assert!(t.success(0).is_some(), "the first observation");
        assert!(t.success(1_000).is_none());
        assert!(t.success(9_999).is_none());
        assert!(t.success(10_000).is_some(), "rewritten to stay fresh");
        assert!(t.failure(11_000, "x").is_some(), "a change");
        assert!(t.failure(12_000, "x").is_some(), "every failure");
        assert!(t.success(13_000).is_some(), "back");
        assert_eq!(t.current().unwrap().last_success_at_ms, Some(13_000));
    }

    #[test]
    fn a_recent_record_continues_its_streak_across_windows() {
        let mut first = tracker(None, 0);
        first.failure(0, "refused");
        let left = first.failure(20_000, "refused").unwrap();
        let mut next = tracker(Some(left), 25_000);
        let r = next.failure(26_000, "refused").unwrap();
        assert_eq!(r.first_failure_at_ms, Some(0));
        assert_eq!(r.consecutive_failures, 3);
        assert_eq!(r.unreachable_for_ms(), 26_000);
    }

    #[test]
    fn an_old_record_breaks_the_streak_but_keeps_the_last_success() {
        let mut first = tracker(None, 0);
        first.success(0);
        let left = first.failure(1_000, "refused").unwrap();
        let mut next = tracker(Some(left), 100_000);
        let r = next.failure(100_000, "refused").unwrap();
        assert_eq!(
            r.first_failure_at_ms,
            Some(100_000),
            "not watched in between"
        );
        assert_eq!(r.consecutive_failures, 1);
        assert_eq!(r.last_success_at_ms, Some(0));
    }

    #[test]
    fn another_writers_record_is_not_continued() {
        let mut other = ReachTracker::start("eu-west-1", "eu-west-1", None, 0, CONT, EVERY);
        let left = other.failure(0, "refused").unwrap();
        let mut t = tracker(Some(left), 1_000);
        let r = t.failure(1_000, "refused").unwrap();
        assert_eq!(r.first_failure_at_ms, Some(1_000));
        assert_eq!(r.writer_region, "us-east-1");
        assert_eq!(r.vantage, "eu-west-1");
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(rfc3339_ms(1_795_568_047_438), "2026-11-25T00:54:07.438Z");
    }
}
