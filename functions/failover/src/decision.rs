//! The decision, pure: given what was observed, what to do and why.
//!
//! - The primary answers and a person asked → a planned **switchover** (RPO 0):
//!   the old primary is fenced and the target catches up before it is promoted.
//! - The primary answers and an alarm asked → **refused** (reported): a writer
//!   that answers is never moved across regions by an alarm; a person decides.
//! - The primary does not answer here, and its loss is not agreed (fewer than the
//!   quorum of vantage points saw it unreachable for the grace period, or one
//!   still reaches it: a partial partition) → **refused**, unless a person forces it.
//! - The primary does not answer (every probe over the grace period failed, and
//!   enough vantage points agree, see [`crate::agreement`]) → a **failover** to the healthy secondary that has received the most WAL (when
//!   positions are known), else the one with the least lag — refused when the
//!   loss it would cause (its lag sample) exceeds the RPO budget or cannot be
//!   stated, unless forced. A lag that is only a lower bound (the heartbeat had
//!   not arrived yet) states no upper limit, so it is refused too unless forced.
//! - No healthy secondary → refused, with an alert.

use serde::Serialize;

use crate::agreement::Agreement;

/// What the trigger asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requested {
    /// An alarm or a manual `failover`: switchover if the primary answers, failover if not.
    Auto,
    /// A manual `switchover`: only with the primary answering.
    Switchover,
}

/// Who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A CloudWatch alarm (EventBridge or SNS).
    Alarm,
    /// A direct invoke: a person's command.
    Person,
}

/// One secondary as observed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub region: String,
    pub healthy: bool,
    /// Why it is not healthy, if it is not.
    pub note: Option<String>,
    /// Latest heartbeat lag from lag-probe, if fresh.
    pub lag_ms: Option<f64>,
    /// The lag is a lower bound: the heartbeat had not arrived when it was taken.
    #[serde(default)]
    pub lag_is_lower_bound: bool,
    /// WAL received (bytes since 0/0), when the driver can tell.
    pub position: Option<u64>,
    /// The region the lag sample was measured from.
    pub lag_vantage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Situation {
    pub current_primary: String,
    pub primary_reachable: bool,
    /// How reachability was established (probes, grace period, last error).
    pub primary_note: Option<String>,
    /// Whether the vantage points agree the primary is lost; consulted only when
    /// it does not answer here (`None` otherwise).
    pub agreement: Option<Agreement>,
    pub candidates: Vec<Candidate>,
    pub requested: Requested,
    pub origin: Origin,
    pub target: Option<String>,
    pub force: bool,
    pub rpo_budget_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    Switchover {
        target: String,
        reasons: Vec<String>,
    },
    Failover {
        target: String,
        /// The data the failover may lose, as the lag samples state it.
        expected_loss_ms: Option<f64>,
        /// `expected_loss_ms` is a lower bound: at least that much may be lost.
        #[serde(default)]
        loss_is_lower_bound: bool,
        reasons: Vec<String>,
    },
    Refuse {
        reasons: Vec<String>,
        /// A person must look: nothing can be done automatically.
        alert: bool,
    },
}

impl Decision {
    pub fn reasons(&self) -> &[String] {
        match self {
            Decision::Switchover { reasons, .. }
            | Decision::Failover { reasons, .. }
            | Decision::Refuse { reasons, .. } => reasons,
        }
    }

    pub fn target(&self) -> Option<&str> {
        match self {
            Decision::Switchover { target, .. } | Decision::Failover { target, .. } => Some(target),
            Decision::Refuse { .. } => None,
        }
    }
}

/// Ranks healthy candidates: most WAL received first when every healthy one
/// reports a position, else least lag (unknown lag last); ties by region name.
fn best<'a>(healthy: &[&'a Candidate]) -> Option<&'a Candidate> {
    let mut sorted = healthy.to_vec();
    if sorted.iter().all(|c| c.position.is_some()) {
        sorted.sort_by(|a, b| b.position.cmp(&a.position).then(a.region.cmp(&b.region)));
    } else {
        sorted.sort_by(|a, b| {
            a.lag_ms
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.lag_ms.unwrap_or(f64::INFINITY))
                .then(a.region.cmp(&b.region))
        });
    }
    sorted.first().copied()
}

pub fn decide(s: &Situation) -> Decision {
    let mut reasons = Vec::new();
    reasons.push(format!(
        "primary {} is {}{}",
        s.current_primary,
        if s.primary_reachable {
            "reachable"
        } else {
            "NOT reachable"
        },
        s.primary_note
            .as_ref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default()
    ));
    for c in &s.candidates {
        reasons.push(format!(
            "{}: {}{}{}",
            c.region,
            if c.healthy { "healthy" } else { "not healthy" },
            c.note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            match (c.lag_ms, c.position) {
                (Some(l), Some(p)) => format!(
                    ", lag {} ms{}, WAL received {p}",
                    lag_text(l, c.lag_is_lower_bound),
                    sampled_from(c)
                ),
                (Some(l), None) => format!(
                    ", lag {} ms{}",
                    lag_text(l, c.lag_is_lower_bound),
                    sampled_from(c)
                ),
                (None, Some(p)) => format!(", no fresh lag sample, WAL received {p}"),
                (None, None) => ", no fresh lag sample".to_string(),
            }
        ));
    }
    if s.primary_reachable && s.origin == Origin::Alarm {
        reasons.push(format!(
            "refused: the writer {} answers, and an alarm never moves a writer that answers \
             (a blip or an in-region restart looks the same to an alarm); \
             a person can move it with the switchover command",
            s.current_primary
        ));
        return Decision::Refuse {
            reasons,
            alert: true,
        };
    }
    if !s.primary_reachable && s.requested == Requested::Auto {
        match &s.agreement {
            Some(a) if a.lost => reasons.push(a.summary.clone()),
            other => {
                let why = other.as_ref().map_or_else(
                    || "the other vantage points were not consulted".to_string(),
                    |a| a.summary.clone(),
                );
                if s.force && s.origin == Origin::Person {
                    reasons.push(format!("FORCED without agreement: {why}"));
                } else {
                    reasons.push(format!(
                        "refused: {why}; the writer {} is declared lost only when {} vantage points \
                         see it unreachable for the grace period and none reaches it (a person can force a failover)",
                        s.current_primary,
                        other.as_ref().map_or(2, |a| a.quorum)
                    ));
                    return Decision::Refuse {
                        reasons,
                        alert: true,
                    };
                }
            }
        }
    }
    let healthy: Vec<&Candidate> = s
        .candidates
        .iter()
        .filter(|c| c.healthy && c.region != s.current_primary)
        .collect();
    let chosen = match &s.target {
        Some(t) => match healthy.iter().find(|c| &c.region == t) {
            Some(c) => {
                reasons.push(format!("target {t} was named by the operator"));
                Some(*c)
            }
            None => {
                reasons.push(format!("the named target {t} is not a healthy secondary"));
                return Decision::Refuse {
                    reasons,
                    alert: true,
                };
            }
        },
        None => best(&healthy),
    };
    let Some(target) = chosen else {
        reasons.push("no healthy secondary to promote".into());
        return Decision::Refuse {
            reasons,
            alert: true,
        };
    };
    if s.target.is_none() {
        reasons.push(format!("{} is the best candidate", target.region));
    }
    if s.primary_reachable {
        reasons.push(
            "planned switchover: fence the primary, let the target catch up, promote (RPO 0)"
                .into(),
        );
        return Decision::Switchover {
            target: target.region.clone(),
            reasons,
        };
    }
    if s.requested == Requested::Switchover {
        reasons.push("a switchover needs the primary; it does not answer (use failover)".into());
        return Decision::Refuse {
            reasons,
            alert: true,
        };
    }
    let budget = s.rpo_budget_ms;
    match (target.lag_ms, target.lag_is_lower_bound) {
        (Some(loss), false) if loss <= budget => {
            reasons.push(format!(
                "failover: up to {loss:.0} ms of acknowledged writes may be lost (budget {budget:.0} ms)"
            ));
        }
        (Some(loss), lower) if s.force => {
            reasons.push(format!(
                "FORCED failover: {} ms of writes may be lost, {}",
                lag_text(loss, lower),
                if lower {
                    "a lower bound with no upper limit".to_string()
                } else {
                    format!("over the budget of {budget:.0} ms")
                }
            ));
        }
        (Some(loss), false) => {
            reasons.push(format!(
                "refused: the expected loss of {loss:.0} ms exceeds the RPO budget of {budget:.0} ms (force to override)"
            ));
            return Decision::Refuse {
                reasons,
                alert: true,
            };
        }
        (Some(loss), true) => {
            reasons.push(format!(
                "refused: the loss is at least {loss:.0} ms (the last heartbeat had not arrived), so it has no upper bound to hold against the RPO budget of {budget:.0} ms (force to override)"
            ));
            return Decision::Refuse {
                reasons,
                alert: true,
            };
        }
        (None, _) if s.force => reasons
            .push("FORCED failover: the data loss cannot be stated (no fresh lag sample)".into()),
        (None, _) => {
            reasons.push("refused: no fresh lag sample for the target, so the data loss cannot be stated (force to override)".into());
            return Decision::Refuse {
                reasons,
                alert: true,
            };
        }
    }
    Decision::Failover {
        target: target.region.clone(),
        expected_loss_ms: target.lag_ms,
        loss_is_lower_bound: target.lag_is_lower_bound,
        reasons,
    }
}

/// " (sampled from us-east-1)", or nothing when the vantage is not known.
fn sampled_from(c: &Candidate) -> String {
    c.lag_vantage
        .as_ref()
        .map(|v| format!(" (sampled from {v})"))
        .unwrap_or_default()
}

/// "75" or "at least 75": a lower bound is never written as if it were the lag.
pub fn lag_text(ms: f64, lower_bound: bool) -> String {
    if lower_bound {
        format!("at least {ms:.0}")
    } else {
        format!("{ms:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(region: &str, healthy: bool, lag: Option<f64>, pos: Option<u64>) -> Candidate {
        Candidate {
            region: region.into(),
            healthy,
            note: None,
            lag_ms: lag,
            lag_is_lower_bound: false,
            position: pos,
            lag_vantage: None,
        }
    }

    /// What the vantage points say when the primary does not answer here:
    /// agreed lost (the common case of these tests), or not.
    fn agreement(lost: bool) -> Agreement {
        Agreement {
            lost,
            quorum: 2,
            vantages: vec![],
            summary: if lost {
                "the writer us-east-1 is lost: unreachable from 2 vantage points".into()
            } else {
                "partial partition: unreachable from eu-west-1 only; reachable from ap-southeast-1 at 2027-01-15T07:59:57.000Z".into()
            },
        }
    }

    fn situation(reachable: bool, candidates: Vec<Candidate>) -> Situation {
        Situation {
            current_primary: "us-east-1".into(),
            primary_reachable: reachable,
            primary_note: None,
            agreement: (!reachable).then(|| agreement(true)),
            candidates,
            requested: Requested::Auto,
            origin: Origin::Alarm,
            target: None,
            force: false,
            rpo_budget_ms: 1000.0,
        }
    }

    #[test]
    fn a_reachable_primary_is_switched_over_only_on_a_persons_command() {
        let mut s = situation(
            true,
            vec![
                cand("eu-west-1", true, Some(75.0), None),
                cand("ap-southeast-1", true, Some(220.0), None),
            ],
        );
        let d = decide(&s);
        assert!(matches!(d, Decision::Refuse { alert: true, .. }), "{d:?}");
        assert!(
            d.reasons()
                .last()
                .unwrap()
                .contains("never moves a writer that answers"),
            "{d:?}"
        );
        s.origin = Origin::Person;
        let d = decide(&s);
        assert!(
            matches!(&d, Decision::Switchover { target, .. } if target == "eu-west-1"),
            "{d:?}"
        );
    }

    #[test]
    fn a_lost_primary_fails_over_to_the_least_lag_within_budget() {
        let d = decide(&situation(
            false,
            vec![
                cand("eu-west-1", true, Some(75.0), None),
                cand("ap-southeast-1", true, Some(220.0), None),
            ],
        ));
        assert_eq!(
            d,
            Decision::Failover {
                target: "eu-west-1".into(),
                expected_loss_ms: Some(75.0),
                loss_is_lower_bound: false,
                reasons: d.reasons().to_vec()
            }
        );
        assert!(d.reasons().iter().any(|r| r.contains("up to 75 ms")));
    }

    #[test]
    fn received_wal_outranks_lag_when_every_candidate_reports_it() {
        let d = decide(&situation(
            false,
            vec![
                cand("eu-west-1", true, Some(75.0), Some(1000)),
                cand("ap-southeast-1", true, Some(220.0), Some(2000)),
            ],
        ));
        assert_eq!(d.target(), Some("ap-southeast-1"));
    }

    #[test]
    fn unhealthy_candidates_are_skipped_and_none_left_is_an_alert() {
        let d = decide(&situation(
            false,
            vec![
                cand("eu-west-1", false, Some(75.0), None),
                cand("ap-southeast-1", true, Some(220.0), None),
            ],
        ));
        assert_eq!(d.target(), Some("ap-southeast-1"));
        let d = decide(&situation(
            false,
            vec![cand("eu-west-1", false, None, None)],
        ));
        assert!(matches!(d, Decision::Refuse { alert: true, .. }));
        assert!(d
            .reasons()
            .iter()
            .any(|r| r.contains("no healthy secondary")));
    }

    #[test]
    fn over_budget_or_unknown_loss_is_refused_unless_forced() {
        let mut s = situation(false, vec![cand("eu-west-1", true, Some(2500.0), None)]);
        let d = decide(&s);
        assert!(matches!(d, Decision::Refuse { .. }));
        assert!(d
            .reasons()
            .iter()
            .any(|r| r.contains("exceeds the RPO budget")));
        s.force = true;
        assert_eq!(decide(&s).target(), Some("eu-west-1"));
        let mut s = situation(false, vec![cand("eu-west-1", true, None, None)]);
        assert!(matches!(decide(&s), Decision::Refuse { .. }));
        s.force = true;
        assert!(matches!(
            decide(&s),
            Decision::Failover {
                expected_loss_ms: None,
                ..
            }
        ));
    }

    #[test]
    fn a_named_target_must_be_a_healthy_secondary() {
        let mut s = situation(
            true,
            vec![
                cand("eu-west-1", true, Some(75.0), None),
                cand("ap-southeast-1", false, None, None),
            ],
        );
        s.origin = Origin::Person;
        s.target = Some("ap-southeast-1".into());
        assert!(matches!(decide(&s), Decision::Refuse { .. }));
        s.target = Some("eu-west-1".into());
        assert_eq!(decide(&s).target(), Some("eu-west-1"));
    }

    #[test]
    fn a_switchover_request_needs_the_primary() {
        let mut s = situation(false, vec![cand("eu-west-1", true, Some(75.0), None)]);
        s.requested = Requested::Switchover;
        let d = decide(&s);
        assert!(matches!(d, Decision::Refuse { .. }));
        assert!(d.reasons().iter().any(|r| r.contains("use failover")));
    }

    #[test]
    fn a_lower_bound_is_stated_as_one_and_refused_unless_forced() {
        let mut c = cand("eu-west-1", true, Some(300.0), None);
        c.lag_is_lower_bound = true;
        let mut s = situation(false, vec![c]);
        let d = decide(&s);
        assert!(matches!(d, Decision::Refuse { .. }), "{d:?}");
        let text = d.reasons().join("\n");
        assert!(text.contains("lag at least 300 ms"), "{text}");
        assert!(text.contains("the loss is at least 300 ms"), "{text}");
        assert!(!text.contains("up to 300"), "{text}");
        s.force = true;
        let d = decide(&s);
        assert!(
            matches!(
                d,
                Decision::Failover {
                    loss_is_lower_bound: true,
                    expected_loss_ms: Some(l),
                    ..
                } if l == 300.0
            ),
            "{d:?}"
        );
        assert!(d
            .reasons()
            .join("\n")
            .contains("at least 300 ms of writes may be lost"));
    }

    #[test]
    fn a_writer_lost_only_from_here_is_not_moved_unless_a_person_forces_it() {
        let mut s = situation(false, vec![cand("eu-west-1", true, Some(75.0), None)]);
        s.agreement = Some(agreement(false));
        let d = decide(&s);
        assert!(matches!(d, Decision::Refuse { alert: true, .. }), "{d:?}");
        let last = d.reasons().last().unwrap();
        assert!(
            last.starts_with("refused: partial partition: unreachable from eu-west-1 only; reachable from ap-southeast-1"),
            "{last}"
        );
        // A person's plain failover is refused the same way.
        s.origin = Origin::Person;
        assert!(matches!(decide(&s), Decision::Refuse { .. }));
        // Forced by a person: moved, and said so.
        s.force = true;
        let d = decide(&s);
        assert_eq!(d.target(), Some("eu-west-1"), "{d:?}");
        assert!(d
            .reasons()
            .iter()
            .any(|r| r.starts_with("FORCED without agreement: partial partition")));
        // Not consulted at all counts as no agreement.
        s.force = false;
        s.agreement = None;
        let d = decide(&s);
        assert!(d.reasons().join("\n").contains("not consulted"), "{d:?}");
    }

    #[test]
    fn an_agreed_loss_is_in_the_reasons() {
        let d = decide(&situation(
            false,
            vec![cand("eu-west-1", true, Some(75.0), None)],
        ));
        assert!(d
            .reasons()
            .iter()
            .any(|r| r.contains("lost: unreachable from 2 vantage points")));
    }

    #[test]
    fn the_probe_story_is_in_the_reasons() {
        let mut s = situation(false, vec![cand("eu-west-1", true, Some(75.0), None)]);
        s.primary_note = Some("all 16 probes over 30000 ms failed".into());
        let d = decide(&s);
        assert!(
            d.reasons()[0].contains("NOT reachable: all 16 probes"),
            "{d:?}"
        );
    }
}
