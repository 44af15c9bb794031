//! The shifter's settings, read once at cold start.
//!
//! | variable | meaning |
//! |---|---|
//! | `CUTOVER_SERVICE` | the service shifted (default `app`) |
//! | `CUTOVER_LISTENER_ARNS` | `region=arn,…` the ALB listener of every region |
//! | `CUTOVER_BLUE_TG_ARNS` / `CUTOVER_GREEN_TG_ARNS` | `region=arn,…` the blue and green target groups |
//! | `CUTOVER_WATCHED_ALARMS` | alarm names (in every region) that gate steps and trigger rollback |
//! | `CUTOVER_MIN_HEALTHY_GREEN` | healthy green targets needed per region (default 1) |
//! | `CUTOVER_LATENCY_GATE_MS` | the new group's p99 TargetResponseTime limit (default 200, the application's target; `off` = no gate) |
//! | `CUTOVER_ERROR_RATE_GATE_PCT` | the new group's 5XX share of its requests (default 5; `off` = no gate) |
//! | `CUTOVER_ECS_CLUSTERS` | `region=cluster,…`; with `CUTOVER_BLUE_SERVICES` / `CUTOVER_GREEN_SERVICES` (`region=service,…`) the shifter scales the colours; unset = weights only |
//! | `CUTOVER_APP_CONTAINER` | the container whose image a `start` with `image` replaces (default `app`) |
//! | `CUTOVER_SCALE_DOWN_BAKE` | how long the side without traffic keeps its tasks after a deployment ends (default `10m`) |
//! | `CUTOVER_PRE_TRAFFIC_HOOK` / `CUTOVER_POST_TRAFFIC_HOOK` / `CUTOVER_PRE_PROMOTE_HOOK` | a Lambda (name or ARN) that approves the release at that point (ECS hook contract, [`crate::lifecycle`]); unset = no hook |
//! | `CUTOVER_HOOK_DETAILS` | a JSON object passed to every hook as `hookDetails` (e.g. the smoke check's URL) |
//! | `CUTOVER_HOOK_TIMEOUT` | one invocation's bound; no answer within it = FAILED (default `30s`) |
//! | `CUTOVER_HOOK_MAX_WAIT` | how long a hook may answer IN_PROGRESS before it counts as FAILED (default `1h`) |

use std::collections::BTreeMap;

use cutover_core::config::{ConfigError, CoreSettings, Vars};

use crate::alb::RegionAlb;
use crate::ecs::RegionEcs;
use crate::gates::GateSettings;
use crate::lifecycle::{self, HookPhase};

/// The lifecycle hooks of a release.
#[derive(Debug, Clone, Default)]
pub struct HookSettings {
    /// The function (name or ARN) of each configured phase.
    pub functions: BTreeMap<HookPhase, String>,
    /// Passed to every hook as `hookDetails` (until an IN_PROGRESS answer returns its own).
    pub details: Option<serde_json::Value>,
    pub timeout_secs: u64,
    pub max_wait_secs: u64,
}

#[derive(Debug, Clone)]
pub struct ShifterConfig {
    pub core: CoreSettings,
    pub service: String,
    /// Every region of the deployment, in the configured order, with its ALB.
    pub albs: Vec<RegionAlb>,
    pub gates: GateSettings,
    /// How long the side without traffic keeps its tasks after a deployment ends.
    pub scale_down_bake_secs: u64,
    pub hooks: HookSettings,
    /// The container whose image a release replaces.
    pub app_container: String,
}

fn duration(vars: &Vars, var: &str, default: u64) -> Result<u64, ConfigError> {
    match vars.optional(var) {
        None => Ok(default),
        Some(b) => crate::plan::parse_bake(&b).map_err(|e| ConfigError::Malformed {
            var: var.into(),
            value: b.clone(),
            form: e.0,
        }),
    }
}

fn hook_settings(vars: &Vars) -> Result<HookSettings, ConfigError> {
    let mut functions = BTreeMap::new();
    for phase in HookPhase::ALL {
        if let Some(f) = vars.optional(phase.var()) {
            let f = f.trim().to_string();
            let region = lifecycle::check_function(&f).map_err(|e| ConfigError::Malformed {
                var: phase.var().into(),
                value: f.clone(),
                form: e,
            })?;
            if let Some(r) = region {
                r.parse::<cutover_core::config::Region>()
                    .map_err(|e| ConfigError::Malformed {
                        var: phase.var().into(),
                        value: f.clone(),
                        form: format!("an ARN with a valid region: {e}"),
                    })?;
            }
            functions.insert(phase, f);
        }
    }
    let details = match vars.optional("CUTOVER_HOOK_DETAILS") {
        None => None,
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v @ serde_json::Value::Object(_)) => Some(v),
            _ => {
                return Err(ConfigError::Malformed {
                    var: "CUTOVER_HOOK_DETAILS".into(),
                    value: text,
                    form: "a JSON object, e.g. {\"url\": \"http://green.internal/health\"}".into(),
                })
            }
        },
    };
    let timeout_secs = duration(vars, "CUTOVER_HOOK_TIMEOUT", 30)?;
    if timeout_secs == 0 {
        return Err(ConfigError::Malformed {
            var: "CUTOVER_HOOK_TIMEOUT".into(),
            value: "0s".into(),
            form: "a duration of at least 1s".into(),
        });
    }
    Ok(HookSettings {
        functions,
        details,
        timeout_secs,
        max_wait_secs: duration(vars, "CUTOVER_HOOK_MAX_WAIT", 3600)?,
    })
}

/// `region=value,…` (names or ARNs), optional.
fn region_names(vars: &Vars, var: &str) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    let form = "region=<name or ARN>,… for every region".to_string();
    let Some(items) = vars.list(var, &form)? else {
        return Ok(None);
    };
    let mut map = BTreeMap::new();
    for item in &items {
        match item.split_once('=') {
            Some((region, value)) if !value.trim().is_empty() => {
                map.insert(region.trim().to_string(), value.trim().to_string());
            }
            _ => {
                return Err(ConfigError::Malformed {
                    var: var.into(),
                    value: item.clone(),
                    form,
                })
            }
        }
    }
    Ok(Some(map))
}

/// A gate limit: a default, a number, or `off`.
fn limit(vars: &Vars, var: &str, default: f64, form: &str) -> Result<Option<f64>, ConfigError> {
    match vars.optional(var).as_deref() {
        None => Ok(Some(default)),
        Some("off") => Ok(None),
        Some(_) => Ok(Some(vars.parse_required::<f64>(var, form)?)),
    }
}

fn region_map(vars: &Vars, var: &str, kind: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let form = format!(
        "region=<{kind} ARN>,… for every region, e.g. us-east-1=arn:aws:elasticloadbalancing:…"
    );
    let items = vars.list(var, &form)?.ok_or_else(|| ConfigError::Missing {
        var: var.into(),
        form: form.clone(),
    })?;
    let mut map = BTreeMap::new();
    for item in &items {
        let Some((region, arn)) = item.split_once('=') else {
            return Err(ConfigError::Malformed {
                var: var.into(),
                value: item.clone(),
                form,
            });
        };
        if !arn.starts_with("arn:") || !arn.contains(":elasticloadbalancing:") {
            return Err(ConfigError::Malformed {
                var: var.into(),
                value: item.clone(),
                form,
            });
        }
        map.insert(region.trim().to_string(), arn.trim().to_string());
    }
    Ok(map)
}

impl ShifterConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let core = CoreSettings::from_vars(vars)?;
        let service = vars
            .optional("CUTOVER_SERVICE")
            .unwrap_or_else(|| "app".into());
        if service.is_empty()
            || !service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::Malformed {
                var: "CUTOVER_SERVICE".into(),
                value: service,
                form: "letters, digits, '-' or '_'".into(),
            });
        }
        let listeners = region_map(vars, "CUTOVER_LISTENER_ARNS", "listener")?;
        let blues = region_map(vars, "CUTOVER_BLUE_TG_ARNS", "blue target group")?;
        let greens = region_map(vars, "CUTOVER_GREEN_TG_ARNS", "green target group")?;
        let clusters = region_names(vars, "CUTOVER_ECS_CLUSTERS")?;
        let blue_services = region_names(vars, "CUTOVER_BLUE_SERVICES")?;
        let green_services = region_names(vars, "CUTOVER_GREEN_SERVICES")?;
        let mut albs = Vec::new();
        for region in &core.regions {
            let r = region.as_str();
            let pick = |map: &BTreeMap<String, String>, var: &str| {
                map.get(r).cloned().ok_or_else(|| ConfigError::Malformed {
                    var: var.into(),
                    value: map.keys().cloned().collect::<Vec<_>>().join(","),
                    form: format!("an entry for every region, including {r}"),
                })
            };
            let ecs =
                match (&clusters, &blue_services, &green_services) {
                    (None, None, None) => None,
                    (Some(c), Some(b), Some(g)) => Some(RegionEcs {
                        cluster: pick(c, "CUTOVER_ECS_CLUSTERS")?,
                        blue_service: pick(b, "CUTOVER_BLUE_SERVICES")?,
                        green_service: pick(g, "CUTOVER_GREEN_SERVICES")?,
                    }),
                    _ => return Err(ConfigError::Missing {
                        var: "CUTOVER_ECS_CLUSTERS, CUTOVER_BLUE_SERVICES, CUTOVER_GREEN_SERVICES"
                            .into(),
                        form: "all three together (or none: weights only)".into(),
                    }),
                };
            albs.push(RegionAlb {
                region: r.to_string(),
                listener_arn: pick(&listeners, "CUTOVER_LISTENER_ARNS")?,
                blue_tg_arn: pick(&blues, "CUTOVER_BLUE_TG_ARNS")?,
                green_tg_arn: pick(&greens, "CUTOVER_GREEN_TG_ARNS")?,
                ecs,
            });
        }
        let watched_alarms = vars
            .list(
                "CUTOVER_WATCHED_ALARMS",
                "comma-separated CloudWatch alarm names",
            )?
            .unwrap_or_default();
        let min_healthy_green = vars.parse_or(
            "CUTOVER_MIN_HEALTHY_GREEN",
            1usize,
            "a whole number of targets",
        )?;
        let latency_p99_ms = limit(
            vars,
            "CUTOVER_LATENCY_GATE_MS",
            200.0,
            "milliseconds, e.g. 200, or off",
        )?;
        let error_rate_pct = limit(
            vars,
            "CUTOVER_ERROR_RATE_GATE_PCT",
            5.0,
            "a percentage, e.g. 5, or off",
        )?;
        let scale_down_bake_secs = duration(vars, "CUTOVER_SCALE_DOWN_BAKE", 600)?;
        let hooks = hook_settings(vars)?;
        Ok(ShifterConfig {
            core,
            service,
            albs,
            gates: GateSettings {
                watched_alarms,
                min_healthy_green,
                latency_p99_ms,
                error_rate_pct,
            },
            scale_down_bake_secs,
            hooks,
            app_container: vars
                .optional("CUTOVER_APP_CONTAINER")
                .unwrap_or_else(|| "app".into()),
        })
    }

    pub fn alb(&self, region: &str) -> Option<&RegionAlb> {
        self.albs.iter().find(|a| a.region == region)
    }

    pub fn region_names(&self) -> Vec<String> {
        self.albs.iter().map(|a| a.region.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arns(kind: &str) -> String {
        ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .iter()
            .map(|r| format!("{r}=arn:aws:elasticloadbalancing:{r}:1:{kind}/x/{r}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn every_region_gets_its_alb() {
        let (l, b, g) = (
            arns("listener/app"),
            arns("targetgroup/blue"),
            arns("targetgroup/green"),
        );
        let c = ShifterConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_LISTENER_ARNS", l.as_str()),
            ("CUTOVER_BLUE_TG_ARNS", b.as_str()),
            ("CUTOVER_GREEN_TG_ARNS", g.as_str()),
            ("CUTOVER_WATCHED_ALARMS", "app-5xx-dev,app-p99-latency-dev"),
        ]))
        .unwrap();
        assert_eq!(c.albs.len(), 3);
        assert_eq!(c.albs[1].region, "eu-west-1");
        assert!(c.albs[1].listener_arn.ends_with("/eu-west-1"));
        assert_eq!(c.gates.watched_alarms.len(), 2);
        assert_eq!(
            c.gates.latency_p99_ms,
            Some(200.0),
            "the application's target by default"
        );
        assert_eq!(c.gates.error_rate_pct, Some(5.0));
        assert_eq!(c.scale_down_bake_secs, 600);
        assert!(
            c.albs.iter().all(|a| a.ecs.is_none()),
            "weights only without ECS settings"
        );
        assert!(c.hooks.functions.is_empty(), "no hooks unless configured");
        assert_eq!((c.hooks.timeout_secs, c.hooks.max_wait_secs), (30, 3600));
    }

    #[test]
    fn hooks_are_read_and_bad_ones_name_the_variable() {
        let (l, b, g) = (
            arns("listener/app"),
            arns("targetgroup/blue"),
            arns("targetgroup/green"),
        );
        let base = vec![
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_LISTENER_ARNS", l.as_str()),
            ("CUTOVER_BLUE_TG_ARNS", b.as_str()),
            ("CUTOVER_GREEN_TG_ARNS", g.as_str()),
        ];
        let mut ok = base.clone();
        ok.extend([
            ("CUTOVER_PRE_TRAFFIC_HOOK", "release-hook"),
            (
                "CUTOVER_POST_TRAFFIC_HOOK",
                "arn:aws:lambda:us-east-1:123456789012:function:release-hook",
            ),
            ("CUTOVER_HOOK_DETAILS", r#"{"url": "http://x/health"}"#),
            ("CUTOVER_HOOK_TIMEOUT", "10s"),
            ("CUTOVER_HOOK_MAX_WAIT", "15m"),
        ]);
        let c = ShifterConfig::from_vars(&Vars::from_pairs(ok)).unwrap();
        assert_eq!(c.hooks.functions.len(), 2);
        assert_eq!(c.hooks.functions[&HookPhase::PreTraffic], "release-hook");
        assert_eq!((c.hooks.timeout_secs, c.hooks.max_wait_secs), (10, 900));
        for (var, value) in [
            ("CUTOVER_PRE_PROMOTE_HOOK", "arn:aws:s3:::bucket"),
            ("CUTOVER_PRE_TRAFFIC_HOOK", "a hook"),
            ("CUTOVER_HOOK_DETAILS", "[1, 2]"),
            ("CUTOVER_HOOK_TIMEOUT", "0s"),
            ("CUTOVER_HOOK_MAX_WAIT", "forever"),
        ] {
            let mut bad = base.clone();
            bad.push((var, value));
            let e = ShifterConfig::from_vars(&Vars::from_pairs(bad)).unwrap_err();
            assert!(e.to_string().contains(var), "{var}: {e}");
        }
    }

    #[test]
    fn missing_or_malformed_arns_name_the_variable() {
        let l = arns("listener/app");
        let two = "us-east-1=arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x,eu-west-1=arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/y";
        for (pairs, var) in [
            (
                vec![("CUTOVER_LISTENER_ARNS", l.as_str())],
                "CUTOVER_BLUE_TG_ARNS",
            ),
            (
                vec![
                    ("CUTOVER_LISTENER_ARNS", "us-east-1:arn"),
                    ("CUTOVER_BLUE_TG_ARNS", two),
                    ("CUTOVER_GREEN_TG_ARNS", two),
                ],
                "CUTOVER_LISTENER_ARNS",
            ),
            (
                vec![
                    ("CUTOVER_LISTENER_ARNS", l.as_str()),
                    ("CUTOVER_BLUE_TG_ARNS", two),
                    ("CUTOVER_GREEN_TG_ARNS", two),
                ],
                "CUTOVER_BLUE_TG_ARNS",
            ),
        ] {
            let mut all = vec![("CUTOVER_SUFFIX", "dev")];
            all.extend(pairs);
            let e = ShifterConfig::from_vars(&Vars::from_pairs(all)).unwrap_err();
            assert!(e.to_string().contains(var), "{var}: {e}");
        }
    }
}
