//! Is the writer gone for everyone, or only for us? The rule, pure: given what
//! every vantage point last recorded of the writer, is its loss agreed?
//!
//! A vantage point is one region: this function's own direct probe (watched
//! over the grace period, see [`crate::detect`]) speaks for its region; every
//! other region speaks through the reachability record its lag-probe keeps
//! (`REACH#<writer>` / `FROM#<vantage>`). Each view is one of:
//!
//! - **unreachable**: failures without a success for at least the grace period;
//! - **unreachable, too briefly**: failing, but for less than the grace period (a
//!   blip, or an in-region restart still within it) — not a vote for a move;
//! - **reachable**: the last attempt took a write, after the failures seen here
//!   began (a success older than them contradicts nothing: that vantage point
//!   has simply not tried since, so it is unknown);
//! - **unknown**: no record, or one older than the maximum age — missing data is
//!   never taken for "reachable", and never for "unreachable" either.
//!
//! The writer is **lost** only when at least `quorum` vantage points see it
//! unreachable for the grace period **and** no vantage point sees it reachable:
//! a writer that answers anyone is not moved by an alarm (a region cut off from
//! it — a partial partition — must not take the writer away from everyone else).

use std::time::Duration;

use cutover_core::reach::{rfc3339_ms, ReachRecord};
use serde::Serialize;

/// The settings of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Vantage points that must see the writer unreachable (`CUTOVER_FAILOVER_QUORUM`).
    pub quorum: usize,
    /// How long each of them must have seen it so (`CUTOVER_FAILOVER_GRACE_MS`).
    pub grace: Duration,
    /// A record older than this is unknown (`CUTOVER_FAILOVER_REACH_MAX_AGE_MS`).
    pub max_age: Duration,
}

/// What one vantage point says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "seen", rename_all = "kebab-case")]
pub enum View {
    Unreachable {
        for_ms: u64,
        failures: u32,
        last_error: Option<String>,
    },
    UnreachableTooBriefly {
        for_ms: u64,
    },
    Reachable {
        at_ms: u64,
    },
    Unknown {
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantageView {
    pub vantage: String,
    /// "direct probe" (this function) or "lag-probe record".
    pub source: String,
    /// The record's age at the decision, when there is a record.
    pub age_ms: Option<u64>,
    pub view: View,
}

/// The verdict over every vantage point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub lost: bool,
    pub quorum: usize,
    pub vantages: Vec<VantageView>,
    /// One sentence: why lost, or why not.
    pub summary: String,
}

impl Agreement {
    fn names(&self, pick: impl Fn(&View) -> bool) -> Vec<&VantageView> {
        self.vantages.iter().filter(|v| pick(&v.view)).collect()
    }
}

/// `failing_since_ms`: when the failures seen by this function's own probe began.
fn classify(record: &ReachRecord, now_ms: u64, failing_since_ms: u64, rules: &Rules) -> View {
    let age = record.age_ms(now_ms);
    if age > rules.max_age.as_millis() as u64 {
        return View::Unknown {
            why: format!(
                "its last record is {} s old (older than {} s)",
                age / 1000,
                rules.max_age.as_secs()
            ),
        };
    }
    if record.reachable {
        let at_ms = record.last_success_at_ms.unwrap_or(record.taken_at_ms);
        if at_ms < failing_since_ms {
            return View::Unknown {
                why: format!(
                    "it last reached the writer at {}, before the failures seen here began",
                    rfc3339_ms(at_ms)
                ),
            };
        }
        return View::Reachable { at_ms };
    }
    let for_ms = record.unreachable_for_ms();
    if for_ms >= rules.grace.as_millis() as u64 {
        View::Unreachable {
            for_ms,
            failures: record.consecutive_failures,
            last_error: record.last_error.clone(),
        }
    } else {
        View::UnreachableTooBriefly { for_ms }
    }
}

fn describe(v: &VantageView, rules: &Rules) -> String {
    let age = v
        .age_ms
        .map(|a| format!(", record {:.1} s old", a as f64 / 1000.0))
        .unwrap_or_default();
    match &v.view {
        View::Unreachable {
            for_ms,
            failures,
            last_error,
        } => format!(
            "{} ({}: {failures} failures over {for_ms} ms{age}{})",
            v.vantage,
            v.source,
            last_error
                .as_ref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        ),
        View::UnreachableTooBriefly { for_ms } => format!(
            "{} ({}: unreachable for only {for_ms} ms, under the grace period of {} ms{age})",
            v.vantage,
            v.source,
            rules.grace.as_millis()
        ),
        View::Reachable { at_ms } => format!(
            "{} at {} ({}{age})",
            v.vantage,
            rfc3339_ms(*at_ms),
            v.source
        ),
        View::Unknown { why } => format!("{} ({why})", v.vantage),
    }
}

fn list(views: &[&VantageView], rules: &Rules) -> String {
    views
        .iter()
        .map(|v| describe(v, rules))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rule. `own` is this function's direct probe (it replaces any stored
/// record of its own region); `records` are the stored records of the writer;
/// `regions` every region, so that one without any record is named as unknown.
pub fn agree(
    own: &ReachRecord,
    records: &[ReachRecord],
    regions: &[String],
    now_ms: u64,
    rules: &Rules,
) -> Agreement {
    let since = own.first_failure_at_ms.unwrap_or(own.taken_at_ms);
    let mut vantages = vec![VantageView {
        vantage: own.vantage.clone(),
        source: "direct probe".into(),
        age_ms: None,
        view: classify(own, now_ms, since, rules),
    }];
    for region in regions.iter().filter(|r| **r != own.vantage) {
        let record = records
            .iter()
            .filter(|r| &r.vantage == region && r.writer_region == own.writer_region)
            .max_by_key(|r| r.taken_at_ms);
        vantages.push(match record {
            Some(r) => VantageView {
                vantage: region.clone(),
                source: "lag-probe record".into(),
                age_ms: Some(r.age_ms(now_ms)),
                view: classify(r, now_ms, since, rules),
            },
            None => VantageView {
                vantage: region.clone(),
                source: "lag-probe record".into(),
                age_ms: None,
                view: View::Unknown {
                    why: "no record".into(),
                },
            },
        });
    }
    let mut a = Agreement {
        lost: false,
        quorum: rules.quorum,
        vantages,
        summary: String::new(),
    };
    let unreachable = a.names(|v| matches!(v, View::Unreachable { .. }));
    let reachable = a.names(|v| matches!(v, View::Reachable { .. }));
    let brief = a.names(|v| matches!(v, View::UnreachableTooBriefly { .. }));
    let unknown = a.names(|v| matches!(v, View::Unknown { .. }));
    let lost = unreachable.len() >= rules.quorum && reachable.is_empty();
    let mut parts = Vec::new();
    let from = |views: &[&VantageView]| {
        if views.is_empty() {
            "no vantage point".to_string()
        } else {
            list(views, rules)
        }
    };
    if lost {
        parts.push(format!(
            "the writer {} is lost: unreachable for at least the grace period ({} ms) from {} of the {} vantage points needed: {}",
            own.writer_region,
            rules.grace.as_millis(),
            unreachable.len(),
            rules.quorum,
            from(&unreachable)
        ));
    } else if !reachable.is_empty() {
        parts.push(format!(
            "partial partition: unreachable from {} only; reachable from {}",
            from(&unreachable),
            list(&reachable, rules)
        ));
    } else {
        parts.push(format!(
            "no agreement: unreachable for the grace period from {} ({} of the {} vantage points needed)",
            from(&unreachable),
            unreachable.len(),
            rules.quorum
        ));
    }
    if !brief.is_empty() {
        parts.push(format!(
            "failing, but not for long: {}",
            list(&brief, rules)
        ));
    }
    if !unknown.is_empty() {
        parts.push(format!(
            "unknown (counted neither way): {}",
            list(&unknown, rules)
        ));
    }
    let summary = parts.join("; ");
    a.lost = lost;
    a.summary = summary;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const GRACE: Duration = Duration::from_secs(30);

    fn rules() -> Rules {
        Rules {
            quorum: 2,
            grace: GRACE,
            max_age: Duration::from_secs(20),
        }
    }

    fn regions() -> Vec<String> {
        ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .map(String::from)
            .to_vec()
    }

    /// A vantage that has failed since `since_s` seconds before the record was
    /// taken, the record taken `age_s` seconds before now.
    fn down(vantage: &str, since_s: u64, age_s: u64) -> ReachRecord {
        let taken = NOW - age_s * 1000;
        ReachRecord {
            writer_region: "us-east-1".into(),
            vantage: vantage.into(),
            reachable: false,
            consecutive_failures: (since_s as u32 / 2).max(1),
            first_failure_at_ms: Some(taken - since_s * 1000),
            last_success_at_ms: Some(taken - since_s * 1000 - 1000),
            taken_at_ms: taken,
            last_error: Some("connection refused".into()),
        }
    }

    fn up(vantage: &str, age_s: u64) -> ReachRecord {
        let taken = NOW - age_s * 1000;
        ReachRecord {
            writer_region: "us-east-1".into(),
            vantage: vantage.into(),
            reachable: true,
            consecutive_failures: 0,
            first_failure_at_ms: None,
            last_success_at_ms: Some(taken),
            taken_at_ms: taken,
            last_error: None,
        }
    }

    /// This function's direct probe in eu-west-1: every probe over `for_s` failed.
    fn own(for_s: u64) -> ReachRecord {
        down("eu-west-1", for_s, 0)
    }

    #[test]
    fn two_vantage_points_down_for_the_grace_period_agree_the_writer_is_lost() {
        let a = agree(
            &own(30),
            &[down("ap-southeast-1", 45, 2)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(a.lost, "{}", a.summary);
        assert!(
            a.summary.contains("eu-west-1 (direct probe")
                && a.summary.contains("ap-southeast-1 (lag-probe record"),
            "{}",
            a.summary
        );
        assert!(a.summary.contains("us-east-1 (no record)"), "{}", a.summary);
    }

    #[test]
    fn one_vantage_point_alone_never_moves_the_writer() {
        // The others say nothing (no record, or a stale one): not enough.
        let a = agree(&own(60), &[], &regions(), NOW, &rules());
        assert!(!a.lost);
        assert!(
            a.summary
                .starts_with("no agreement: unreachable for the grace period from eu-west-1"),
            "{}",
            a.summary
        );
        // A quorum of one is what a single vantage point was before.
        let one = Rules {
            quorum: 1,
            ..rules()
        };
        assert!(agree(&own(60), &[], &regions(), NOW, &one).lost);
    }

    #[test]
    fn a_partial_partition_is_refused_and_names_who_still_reaches_the_writer() {
        let a = agree(
            &own(60),
            &[up("ap-southeast-1", 3), down("us-east-1", 60, 1)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(!a.lost, "a writer that answers anyone is not lost");
        assert!(
            a.summary
                .starts_with("partial partition: unreachable from eu-west-1 (direct probe"),
            "{}",
            a.summary
        );
        assert!(
            a.summary
                .contains("only; reachable from ap-southeast-1 at 2027-01-15T07:59:57.000Z"),
            "{}",
            a.summary
        );
    }

    #[test]
    fn a_blip_shorter_than_the_grace_period_is_not_a_vote() {
        // ap-southeast-1 has been failing for 10 s only: a restart in progress.
        let a = agree(
            &own(30),
            &[down("ap-southeast-1", 10, 1), down("us-east-1", 5, 1)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(!a.lost, "{}", a.summary);
        assert!(
            a.summary.contains("unreachable for only 10000 ms"),
            "{}",
            a.summary
        );
        // Our own probe, too: failing for less than the grace is no vote.
        let a = agree(
            &own(20),
            &[down("ap-southeast-1", 60, 1)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(!a.lost, "{}", a.summary);
    }

    #[test]
    fn stale_records_count_as_unknown_not_as_reachable_or_unreachable() {
        // A record of a long outage, but 60 s old: nobody knows what that region sees now.
        let a = agree(
            &own(30),
            &[down("ap-southeast-1", 300, 60)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(!a.lost, "{}", a.summary);
        assert!(
            a.summary
                .contains("ap-southeast-1 (its last record is 60 s old"),
            "{}",
            a.summary
        );
        // A stale "reachable" does not veto either: with a second fresh vote it is lost.
        let a = agree(
            &own(30),
            &[up("ap-southeast-1", 60), down("us-east-1", 40, 1)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(a.lost, "{}", a.summary);
        assert!(a.summary.contains("unknown (counted neither way)"));
    }

    #[test]
    fn a_success_older_than_our_failures_contradicts_nothing() {
        // A short grace (3 s): eu-west-1's record says it reached the writer 6 s
        // ago, before our probes began failing 3 s ago. It has not tried since.
        let short = Rules {
            grace: Duration::from_secs(3),
            ..rules()
        };
        let mut us = own(3);
        us.vantage = "us-east-1".into();
        let a = agree(
            &us,
            &[up("eu-west-1", 6), down("ap-southeast-1", 5, 0)],
            &regions(),
            NOW,
            &short,
        );
        assert!(a.lost, "{}", a.summary);
        assert!(
            a.summary.contains("before the failures seen here began"),
            "{}",
            a.summary
        );
        // Reached after our failures began: a partial partition.
        let a = agree(
            &us,
            &[up("eu-west-1", 1), down("ap-southeast-1", 5, 0)],
            &regions(),
            NOW,
            &short,
        );
        assert!(
            !a.lost && a.summary.starts_with("partial partition"),
            "{}",
            a.summary
        );
    }

    #[test]
    fn a_stored_record_of_our_own_region_is_replaced_by_the_direct_probe() {
        // The lag-probe beside us said "reachable" 5 s ago; our probe now says otherwise.
        let a = agree(
            &own(30),
            &[up("eu-west-1", 5), down("ap-southeast-1", 40, 1)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(a.lost, "{}", a.summary);
        assert_eq!(a.vantages.len(), 3);
    }

    #[test]
    fn a_twenty_second_restart_seen_from_everywhere_is_not_a_loss() {
        // With the default grace (30 s), a restart of 20 s plus a probe's 2 s timeout
        // and a 1 s cadence is under it from every vantage point.
        let a = agree(
            &own(23),
            &[down("ap-southeast-1", 23, 0), down("us-east-1", 23, 1)],
            &regions(),
            NOW,
            &rules(),
        );
        assert!(!a.lost, "{}", a.summary);
    }

    /// The rule stated independently, checked over many random worlds: lost
    /// exactly when at least `quorum` fresh vantage points saw failures for the
    /// grace period and no fresh one reached the writer after ours began failing.
    #[test]
    fn the_rule_holds_over_random_records() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut lost, mut kept) = (0, 0);
        for _ in 0..20_000 {
            let quorum = 1 + next(3) as usize;
            let r = Rules {
                quorum,
                grace: Duration::from_secs(30),
                max_age: Duration::from_secs(20),
            };
            let mut us = own(next(61));
            us.first_failure_at_ms = us.first_failure_at_ms.map(|f| f - next(1000));
            let since = us.first_failure_at_ms.unwrap_or(NOW);
            let mut records = Vec::new();
            for v in ["us-east-1", "ap-southeast-1"] {
                match next(4) {
                    0 => {}
                    1 => records.push(up(v, next(60))),
                    _ => records.push(down(v, next(61), next(30))),
                }
            }
            let fresh = |x: &ReachRecord| NOW - x.taken_at_ms <= 20_000;
            let votes = usize::from(us.unreachable_for_ms() >= 30_000)
                + records
                    .iter()
                    .filter(|x| fresh(x) && !x.reachable && x.unreachable_for_ms() >= 30_000)
                    .count();
            let veto = records.iter().any(|x| {
                fresh(x) && x.reachable && x.last_success_at_ms.is_some_and(|t| t >= since)
            });
            let a = agree(&us, &records, &regions(), NOW, &r);
            assert_eq!(
                a.lost,
                votes >= quorum && !veto,
                "quorum {quorum}, own {us:?}, records {records:?}: {}",
                a.summary
            );
            if a.lost {
                lost += 1;
            } else {
                kept += 1;
            }
        }
        assert!(
            lost > 1000 && kept > 1000,
            "both outcomes exercised: {lost} / {kept}"
        );
    }

    #[test]
    fn records_of_another_writer_do_not_count() {
        let mut old = down("ap-southeast-1", 60, 1);
        old.writer_region = "eu-west-1".into();
        let a = agree(&own(30), &[old], &regions(), NOW, &rules());
        assert!(!a.lost, "{}", a.summary);
    }
}
