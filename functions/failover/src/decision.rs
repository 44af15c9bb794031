//! The decision, pure: given what was observed, what to do and why.
//!
//! - The primary answers → a planned **switchover** (RPO 0): the old primary is
//!   fenced and the target catches up before it is promoted.
//! - The primary does not answer → a **failover** to the healthy secondary that
//!   has received the most WAL (when positions are known), else the one with the
//!   least lag — refused when the loss it would cause (its latest lag sample)
//!   exceeds the RPO budget or cannot be stated, unless forced.
//! - No healthy secondary → refused, with an alert.

use serde::Serialize;

/// What the trigger asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Requested {
    /// An alarm or a manual `failover`: switchover if the primary answers, failover if not.
    Auto,
    /// A manual `switchover`: only with the primary answering.
    Switchover,
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
    /// WAL received (bytes since 0/0), when the driver can tell.
    pub position: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Situation {
    pub current_primary: String,
    pub primary_reachable: bool,
    pub candidates: Vec<Candidate>,
    pub requested: Requested,
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
        "primary {} is {}",
        s.current_primary,
        if s.primary_reachable {
            "reachable"
        } else {
            "NOT reachable"
        }
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
                (Some(l), Some(p)) => format!(", lag {l:.0} ms, WAL received {p}"),
                (Some(l), None) => format!(", lag {l:.0} ms"),
                (None, Some(p)) => format!(", no fresh lag sample, WAL received {p}"),
                (None, None) => ", no fresh lag sample".to_string(),
            }
        ));
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
    match target.lag_ms {
        Some(loss) if loss <= s.rpo_budget_ms => {
            reasons.push(format!(
                "failover: up to {loss:.0} ms of acknowledged writes may be lost (budget {:.0} ms)",
                s.rpo_budget_ms
            ));
        }
        Some(loss) if s.force => {
            reasons.push(format!(
                "FORCED failover: up to {loss:.0} ms of writes may be lost, over the budget of {:.0} ms",
                s.rpo_budget_ms
            ));
        }
        Some(loss) => {
            reasons.push(format!(
                "refused: the expected loss of {loss:.0} ms exceeds the RPO budget of {:.0} ms (force to override)",
                s.rpo_budget_ms
            ));
            return Decision::Refuse {
                reasons,
                alert: true,
            };
        }
        None if s.force => reasons
            .push("FORCED failover: the data loss cannot be stated (no fresh lag sample)".into()),
        None => {
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
        reasons,
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
            position: pos,
        }
    }

    fn situation(reachable: bool, candidates: Vec<Candidate>) -> Situation {
        Situation {
            current_primary: "us-east-1".into(),
            primary_reachable: reachable,
            candidates,
            requested: Requested::Auto,
            target: None,
            force: false,
            rpo_budget_ms: 1000.0,
        }
    }

    #[test]
    fn a_reachable_primary_means_a_switchover_to_the_best_candidate() {
        let d = decide(&situation(
            true,
            vec![
                cand("eu-west-1", true, Some(75.0), None),
                cand("ap-southeast-1", true, Some(220.0), None),
            ],
        ));
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
}
