//! Plans and scopes: what a deployment will do, parsed and checked before
//! anything is touched.
//!
//! - `canary-<pct>-<bake>`: `pct` % of traffic to green, bake, then 100 %.
//! - `linear-<pct>-every-<bake>`: `pct`, `2·pct`, … up to 100 %, baking after each.
//! - `all-at-once`: 100 % at once.
//! - an explicit step list: `[{"weight": 10, "bake": "5m"}, {"weight": 100}]`.
//!
//! Bakes are `<n>s`, `<n>m` or `<n>h`. The scope is `all` (every region
//! together), one region's name, or `region-by-region` (one wave per region,
//! with a bake between regions).

use serde::{Deserialize, Serialize};

/// One step: the green weight to reach, and how long to bake after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub weight: u8,
    pub bake_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

fn err(message: impl Into<String>) -> PlanError {
    PlanError(message.into())
}

/// `30s`, `5m`, `1h` → seconds.
pub fn parse_bake(text: &str) -> Result<u64, PlanError> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(err(format!("bake {text:?} needs a unit: s, m or h"))),
    };
    let n: u64 = number.parse().map_err(|_| {
        err(format!(
            "bake {text:?} is not a duration like 30s, 5m or 1h"
        ))
    })?;
    let secs = n.saturating_mul(scale);
    if secs > 24 * 3600 {
        return Err(err(format!("bake {text:?} is longer than 24h")));
    }
    Ok(secs)
}

fn parse_pct(text: &str, plan: &str) -> Result<u8, PlanError> {
    let pct: u8 = text
        .parse()
        .map_err(|_| err(format!("plan {plan:?}: {text:?} is not a percentage")))?;
    if pct == 0 || pct > 100 {
        return Err(err(format!(
            "plan {plan:?}: the percentage must be 1 to 100, not {pct}"
        )));
    }
    Ok(pct)
}

/// Parses a named plan.
pub fn parse_named(plan: &str) -> Result<Vec<Step>, PlanError> {
    if plan == "all-at-once" {
        return Ok(vec![Step {
            weight: 100,
            bake_secs: 0,
        }]);
    }
    if let Some(rest) = plan.strip_prefix("canary-") {
        let (pct, bake) = rest.split_once('-').ok_or_else(|| {
            err(format!(
                "plan {plan:?}: expected canary-<pct>-<bake>, e.g. canary-10-5m"
            ))
        })?;
        let pct = parse_pct(pct, plan)?;
        let bake_secs = parse_bake(bake).map_err(|e| err(format!("plan {plan:?}: {e}")))?;
        if pct == 100 {
            return Err(err(format!(
                "plan {plan:?}: a canary of 100 % is all-at-once"
            )));
        }
        return Ok(vec![
            Step {
                weight: pct,
                bake_secs,
            },
            Step {
                weight: 100,
                bake_secs: 0,
            },
        ]);
    }
    if let Some(rest) = plan.strip_prefix("linear-") {
        let (pct, bake) = rest.split_once("-every-").ok_or_else(|| {
            err(format!(
                "plan {plan:?}: expected linear-<pct>-every-<bake>, e.g. linear-10-every-1m"
            ))
        })?;
        let pct = parse_pct(pct, plan)?;
        let bake_secs = parse_bake(bake).map_err(|e| err(format!("plan {plan:?}: {e}")))?;
        let mut steps = Vec::new();
        let mut w = 0u16;
        while w < 100 {
            w = (w + u16::from(pct)).min(100);
            steps.push(Step {
                weight: w as u8,
                bake_secs: if w == 100 { 0 } else { bake_secs },
            });
        }
        return Ok(steps);
    }
    Err(err(format!(
        "unknown plan {plan:?}: use canary-<pct>-<bake>, linear-<pct>-every-<bake>, all-at-once, or an explicit step list"
    )))
}

/// An explicit step as an event gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub weight: i64,
    pub bake: Option<String>,
}

/// Checks an explicit step list: weights rising, 1..=100, ending at 100.
pub fn parse_steps(raw: &[RawStep]) -> Result<Vec<Step>, PlanError> {
    if raw.is_empty() {
        return Err(err("the step list is empty"));
    }
    let mut steps = Vec::new();
    let mut last = 0i64;
    for (i, s) in raw.iter().enumerate() {
        if !(1..=100).contains(&s.weight) {
            return Err(err(format!(
                "step {}: weight {} is not 1 to 100 (green's share; blue gets the rest, so the two sum to 100)",
                i + 1,
                s.weight
            )));
        }
        if s.weight <= last {
            return Err(err(format!(
                "step {}: weight {} does not rise above the previous step's {last}",
                i + 1,
                s.weight
            )));
        }
        last = s.weight;
        steps.push(Step {
            weight: s.weight as u8,
            bake_secs: match &s.bake {
                Some(b) => parse_bake(b).map_err(|e| err(format!("step {}: {e}", i + 1)))?,
                None => 0,
            },
        });
    }
    if last != 100 {
        return Err(err(format!(
            "the last step reaches {last} %, not 100 %: end the list with weight 100 (or promote later)"
        )));
    }
    Ok(steps)
}

/// Which regions move, and in what waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    All,
    Region(String),
    RegionByRegion,
}

impl Scope {
    pub fn parse(text: &str, known: &[String]) -> Result<Self, PlanError> {
        match text {
            "all" => Ok(Scope::All),
            "region-by-region" => Ok(Scope::RegionByRegion),
            region if known.iter().any(|k| k == region) => Ok(Scope::Region(region.to_string())),
            other => Err(err(format!(
                "unknown scope or region {other:?}: use all, region-by-region, or one of {}",
                known.join(", ")
            ))),
        }
    }

    /// The waves: regions shifted together, in order.
    pub fn waves(&self, regions: &[String]) -> Vec<Vec<String>> {
        match self {
            Scope::All => vec![regions.to_vec()],
            Scope::Region(r) => vec![vec![r.clone()]],
            Scope::RegionByRegion => regions.iter().map(|r| vec![r.clone()]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(steps: &[Step]) -> Vec<u8> {
        steps.iter().map(|s| s.weight).collect()
    }

    #[test]
    fn named_plans() {
        let c = parse_named("canary-10-5m").unwrap();
        assert_eq!(weights(&c), vec![10, 100]);
        assert_eq!(c[0].bake_secs, 300);
        let l = parse_named("linear-30-every-90s").unwrap();
        assert_eq!(weights(&l), vec![30, 60, 90, 100]);
        assert!(l[..3].iter().all(|s| s.bake_secs == 90));
        assert_eq!(l[3].bake_secs, 0);
        assert_eq!(
            weights(&parse_named("linear-10-every-0s").unwrap()).len(),
            10
        );
        assert_eq!(weights(&parse_named("all-at-once").unwrap()), vec![100]);
    }

    #[test]
    fn malformed_plans_say_what_is_wrong() {
        for (plan, needle) in [
            ("canary-0-5m", "1 to 100"),
            ("canary-150-5m", "1 to 100"),
            ("canary-10", "canary-<pct>-<bake>"),
            ("canary-10-5", "needs a unit"),
            ("canary-10-5d", "needs a unit"),
            ("canary-10-xm", "not a duration"),
            ("canary-100-1m", "all-at-once"),
            ("linear-10-1m", "linear-<pct>-every-<bake>"),
            ("linear-10-every-48h", "longer than 24h"),
            ("blue-green", "unknown plan"),
        ] {
            let e = parse_named(plan).unwrap_err();
            assert!(e.0.contains(needle), "{plan}: {e}");
        }
    }

    #[test]
    fn explicit_steps_must_rise_to_100() {
        let raw = |v: &[(i64, Option<&str>)]| -> Vec<RawStep> {
            v.iter()
                .map(|(w, b)| RawStep {
                    weight: *w,
                    bake: b.map(str::to_string),
                })
                .collect()
        };
        let ok = parse_steps(&raw(&[(5, Some("1m")), (50, Some("30s")), (100, None)])).unwrap();
        assert_eq!(weights(&ok), vec![5, 50, 100]);
        assert_eq!(ok[1].bake_secs, 30);
        for (steps, needle) in [
            (raw(&[]), "empty"),
            (raw(&[(50, None), (40, None), (100, None)]), "does not rise"),
            (raw(&[(50, None), (120, None)]), "sum to 100"),
            (raw(&[(-5, None), (100, None)]), "not 1 to 100"),
            (raw(&[(10, None), (60, None)]), "not 100 %"),
            (raw(&[(10, Some("soon")), (100, None)]), "step 1"),
        ] {
            let e = parse_steps(&steps).unwrap_err();
            assert!(e.0.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn scopes_and_waves() {
        let regions: Vec<String> = ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            Scope::parse("all", &regions).unwrap().waves(&regions).len(),
            1
        );
        assert_eq!(
            Scope::parse("region-by-region", &regions)
                .unwrap()
                .waves(&regions),
            vec![
                vec!["us-east-1".to_string()],
                vec!["eu-west-1".to_string()],
                vec!["ap-southeast-1".to_string()]
            ]
        );
        assert_eq!(
            Scope::parse("eu-west-1", &regions).unwrap().waves(&regions),
            vec![vec!["eu-west-1".to_string()]]
        );
        assert!(Scope::parse("mars-north-1", &regions)
            .unwrap_err()
            .0
            .contains("unknown scope or region"));
    }
}
