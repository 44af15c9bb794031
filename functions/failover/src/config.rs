//! The failover function's settings, read once at cold start.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CUTOVER_FAILOVER_DRIVER` | `aurora-global` | or `postgres-streaming` (the local rehearsal) |
//! | `CUTOVER_GLOBAL_CLUSTER_ID` | (aurora) | the Aurora global cluster |
//! | `CUTOVER_CLUSTER_ARNS` | (aurora) | `region=arn,…` the member cluster of every region |
//! | `CUTOVER_RPO_BUDGET_MS` | 1000 | the most data an unforced failover may lose |
//! | `CUTOVER_FAILOVER_ALARMS` | (none) | alarms whose ALARM state triggers a failover |
//! | `CUTOVER_LEASE_TTL_MS` | 120000 | the fencing lease's lifetime |
//! | `CUTOVER_COOLDOWN_MS` | 900000 | no new failover this soon after one completed |
//! | `CUTOVER_LAG_MAX_AGE_MS` | 10000 | a lag sample older than this when the writer was first probed does not count (lag-probe runs 55 s windows every minute: a sample may be ~5 s old at a window boundary) |
//! | `CUTOVER_EVENT_BUS` | `default` | where "Cutover Primary Changed" is put |
//! | `CUTOVER_FAILOVER_PROBE_TIMEOUT_MS` | 2000 | how long the primary gets to answer one probe |
//! | `CUTOVER_FAILOVER_GRACE_MS` | 22000 | the writer is lost only if it failed every probe for this long, counted from the first failure this region saw (longer than a 20 s in-region restart) |
//! | `CUTOVER_FAILOVER_PROBE_EVERY_MS` | 2000 | how often the writer is probed during the grace period |
//! | `CUTOVER_FAILOVER_QUORUM` | 2 | vantage points (this function's direct probe is one, each other region's lag-probe record one) that must see the writer unreachable for the grace period before it is declared lost |
//! | `CUTOVER_FAILOVER_REACH_MAX_AGE_MS` | 20000 | a reachability record older than this is unknown (neither reachable nor unreachable); shorter than the grace period, so a success older than the grace is never taken as "reachable now" |
//! | `CUTOVER_RECONCILE_OLD_PRIMARY` | (none) | `host:port` of the old primary as it died, for `reconcile` (the rehearsal: the killed server started alone); unset on Aurora, where the old primary is restored from its snapshot |
//! | `CUTOVER_RECONCILE_SCHEMAS` | `app` | the schemas the reconciliation compares |
//! | `CUTOVER_RECONCILE_KEEP_DAYS` | 30 | how long the manual copy of Aurora's snapshot of the old primary is kept |
//! | `CUTOVER_RECONCILE_RESTORE_WAIT_MS` | 600000 | how long one `reconcile` waits, in all, for the copy and the restored instance before answering `reconcile-in-progress` (its progress saved for the next); under the function's timeout, with time left for the comparison |
//!
//! The function's own vantage point is its own region, `CUTOVER_PRIMARY_REGION`
//! (the infra gives each region's copy its own region there).

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_core::config::{ConfigError, CoreSettings, Vars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    AuroraGlobal,
    PostgresStreaming,
}

#[derive(Debug, Clone)]
pub struct FailoverConfig {
    pub core: CoreSettings,
    pub driver: DriverKind,
    pub global_cluster_id: Option<String>,
    pub cluster_arns: BTreeMap<String, String>,
    pub rpo_budget_ms: f64,
    pub watched_alarms: Vec<String>,
    pub lease_ttl: Duration,
    pub cooldown: Duration,
    pub lag_max_age: Duration,
    pub event_bus: String,
    pub probe_timeout: Duration,
    pub writer_grace: Duration,
    pub probe_every: Duration,
    pub quorum: usize,
    pub reach_max_age: Duration,
    pub reconcile: ReconcileSettings,
}

/// The lost-write reconciliation's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileSettings {
    pub old_primary: Option<String>,
    pub schemas: Vec<String>,
    pub keep_days: u32,
    /// How long one run waits for AWS (the copy, the instance) before it stops, saved.
    pub restore_wait: Duration,
    /// What it creates is named `<prefix>-lost-<fork xid>`: `cutover-<suffix>`.
    pub prefix: String,
}

impl FailoverConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let core = CoreSettings::from_vars(vars)?;
        let driver = match vars.optional("CUTOVER_FAILOVER_DRIVER").as_deref() {
            None | Some("aurora-global") => DriverKind::AuroraGlobal,
            Some("postgres-streaming") => DriverKind::PostgresStreaming,
            Some(other) => {
                return Err(ConfigError::Malformed {
                    var: "CUTOVER_FAILOVER_DRIVER".into(),
                    value: other.into(),
                    form: "aurora-global or postgres-streaming".into(),
                })
            }
        };
        let mut cluster_arns = BTreeMap::new();
        let global_cluster_id = vars.optional("CUTOVER_GLOBAL_CLUSTER_ID");
        if driver == DriverKind::AuroraGlobal {
            let form = "region=<DB cluster ARN>,… for every region";
            let items =
                vars.list("CUTOVER_CLUSTER_ARNS", form)?
                    .ok_or_else(|| ConfigError::Missing {
                        var: "CUTOVER_CLUSTER_ARNS".into(),
                        form: form.into(),
                    })?;
            for item in items {
                match item.split_once('=') {
                    Some((r, arn)) if arn.starts_with("arn:") && arn.contains(":rds:") => {
                        cluster_arns.insert(r.to_string(), arn.to_string());
                    }
                    _ => {
                        return Err(ConfigError::Malformed {
                            var: "CUTOVER_CLUSTER_ARNS".into(),
                            value: item,
                            form: form.into(),
                        })
                    }
                }
            }
            for r in &core.regions {
                if !cluster_arns.contains_key(r.as_str()) {
                    return Err(ConfigError::Malformed {
                        var: "CUTOVER_CLUSTER_ARNS".into(),
                        value: cluster_arns.keys().cloned().collect::<Vec<_>>().join(","),
                        form: format!("an entry for every region, including {r}"),
                    });
                }
            }
            if global_cluster_id.is_none() {
                return Err(ConfigError::Missing {
                    var: "CUTOVER_GLOBAL_CLUSTER_ID".into(),
                    form: "the Aurora global cluster identifier".into(),
                });
            }
        }
        let quorum: usize = vars.parse_or(
            "CUTOVER_FAILOVER_QUORUM",
            2,
            "a number of vantage points, from 1 to the number of regions",
        )?;
        if quorum == 0 || quorum > core.regions.len() {
            return Err(ConfigError::Malformed {
                var: "CUTOVER_FAILOVER_QUORUM".into(),
                value: quorum.to_string(),
                form: format!(
                    "a number of vantage points from 1 to {} (the regions)",
                    core.regions.len()
                ),
            });
        }
        let reconcile = ReconcileSettings {
            old_primary: vars.optional("CUTOVER_RECONCILE_OLD_PRIMARY"),
            schemas: vars
                .list("CUTOVER_RECONCILE_SCHEMAS", "comma-separated schema names")?
                .unwrap_or_else(|| vec!["app".into()]),
            keep_days: vars.parse_or("CUTOVER_RECONCILE_KEEP_DAYS", 30, "a number of days")?,
            restore_wait: vars.millis_or(
                "CUTOVER_RECONCILE_RESTORE_WAIT_MS",
                Duration::from_secs(10 * 60),
            )?,
            prefix: format!("cutover-{}", core.suffix),
        };
        Ok(FailoverConfig {
            reconcile,
            quorum,
            reach_max_age: vars
                .millis_or("CUTOVER_FAILOVER_REACH_MAX_AGE_MS", Duration::from_secs(20))?,
            driver,
            global_cluster_id,
            cluster_arns,
            rpo_budget_ms: vars.parse_or(
                "CUTOVER_RPO_BUDGET_MS",
                1000.0,
                "milliseconds, e.g. 1000",
            )?,
            watched_alarms: vars
                .list(
                    "CUTOVER_FAILOVER_ALARMS",
                    "comma-separated CloudWatch alarm names",
                )?
                .unwrap_or_default(),
            lease_ttl: vars.millis_or("CUTOVER_LEASE_TTL_MS", Duration::from_secs(120))?,
            cooldown: vars.millis_or("CUTOVER_COOLDOWN_MS", Duration::from_secs(900))?,
            lag_max_age: vars.millis_or("CUTOVER_LAG_MAX_AGE_MS", Duration::from_secs(10))?,
            event_bus: vars
                .optional("CUTOVER_EVENT_BUS")
                .unwrap_or_else(|| "default".into()),
            probe_timeout: vars
                .millis_or("CUTOVER_FAILOVER_PROBE_TIMEOUT_MS", Duration::from_secs(2))?,
            writer_grace: vars.millis_or("CUTOVER_FAILOVER_GRACE_MS", Duration::from_secs(22))?,
            probe_every: vars
                .millis_or("CUTOVER_FAILOVER_PROBE_EVERY_MS", Duration::from_secs(2))?,
            core,
        })
    }

    /// The region this function probes the writer from: its own.
    pub fn vantage(&self) -> &str {
        self.core.primary_region.as_str()
    }

    pub fn region_names(&self) -> Vec<String> {
        self.core
            .regions
            .iter()
            .map(|r| r.as_str().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aurora_needs_its_cluster_and_every_region() {
        let e =
            FailoverConfig::from_vars(&Vars::from_pairs([("CUTOVER_SUFFIX", "dev")])).unwrap_err();
        assert!(e.to_string().contains("CUTOVER_CLUSTER_ARNS"), "{e}");
        let e = FailoverConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            (
                "CUTOVER_CLUSTER_ARNS",
                "us-east-1=arn:aws:rds:us-east-1:1:cluster:a",
            ),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("including eu-west-1"), "{e}");
        let c = FailoverConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_GLOBAL_CLUSTER_ID", "g"),
            (
                "CUTOVER_CLUSTER_ARNS",
                "us-east-1=arn:aws:rds:us-east-1:1:cluster:a,eu-west-1=arn:aws:rds:eu-west-1:1:cluster:b,ap-southeast-1=arn:aws:rds:ap-southeast-1:1:cluster:c",
            ),
        ]))
        .unwrap();
        assert_eq!(c.cluster_arns.len(), 3);
        assert_eq!(c.rpo_budget_ms, 1000.0);
        assert!(
            c.writer_grace > Duration::from_secs(20),
            "an in-region restart of up to 20 s must not move the writer"
        );
        assert_eq!(c.lag_max_age, Duration::from_secs(10));
        assert_eq!(c.quorum, 2, "two vantage points must agree by default");
        assert!(c.reach_max_age < c.writer_grace);
        assert_eq!(c.vantage(), "us-east-1");
    }

    #[test]
    fn a_quorum_is_between_one_and_the_number_of_regions() {
        for bad in ["0", "4", "two"] {
            let e = FailoverConfig::from_vars(&Vars::from_pairs([
                ("CUTOVER_SUFFIX", "dev"),
                ("CUTOVER_FAILOVER_DRIVER", "postgres-streaming"),
                ("CUTOVER_FAILOVER_QUORUM", bad),
            ]))
            .unwrap_err();
            assert!(
                e.to_string().contains("CUTOVER_FAILOVER_QUORUM"),
                "{bad}: {e}"
            );
        }
        let c = FailoverConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_FAILOVER_DRIVER", "postgres-streaming"),
            ("CUTOVER_FAILOVER_QUORUM", "3"),
            ("CUTOVER_PRIMARY_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(c.quorum, 3);
        assert_eq!(c.vantage(), "eu-west-1");
    }

    #[test]
    fn postgres_streaming_needs_no_cluster() {
        let c = FailoverConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_FAILOVER_DRIVER", "postgres-streaming"),
            ("CUTOVER_FAILOVER_ALARMS", "primary-writer-unavailable-dev"),
        ]))
        .unwrap();
        assert_eq!(c.driver, DriverKind::PostgresStreaming);
        assert_eq!(c.watched_alarms, vec!["primary-writer-unavailable-dev"]);
        let e = FailoverConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_FAILOVER_DRIVER", "mysql"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("CUTOVER_FAILOVER_DRIVER"));
    }
}
