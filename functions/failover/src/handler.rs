//! Events in, results out.
//!
//! - EventBridge "CloudWatch Alarm State Change", or the same alarm wrapped in an
//!   SNS notification: a watched alarm going to ALARM triggers a failover; any
//!   other alarm is logged and ignored.
//! - Direct invoke: `{"command": "failover" | "switchover" | "dry-run" | "status" | "sync-endpoints",
//!   "target": "eu-west-1", "force": false}` (`target` and `force` optional).
//! - After an unplanned failover: `{"command": "reconcile"}` names the lost writes and
//!   stores a replay script (its SQL is in the answer); `{"command": "replay-script"}`
//!   shows the stored script again, read-only, for a person to review before applying it;
//!   `{"command": "replay", "dry_run": true, "fork_xid": 7000}` applies it (`dry_run`
//!   required, `fork_xid` optional on both: the reconciliation meant).
//!
//! Every event is checked before anything is read or written.

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_core::aws::Aws;
use cutover_core::db::{self, DbAccess, Endpoint};
use cutover_core::event::{envelope, Envelope};
use cutover_core::notify::Notifier;
use cutover_core::state::{Leases, StateStore};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::aurora::AuroraGlobal;
use crate::config::{DriverKind, FailoverConfig};
use crate::decision::{Origin, Requested};
use crate::driver::AnyDriver;
use crate::failover::{Failover, Trigger};
use crate::pgstream::PgStreaming;
use crate::FailoverError;

/// Builds everything once per cold start.
pub async fn build(config: FailoverConfig, aws: &Aws) -> Result<Failover, FailoverError> {
    let ssm = aws.ssm();
    let access = DbAccess::load(&config.core.db, &ssm, "failover").await?;
    let driver = match config.driver {
        DriverKind::AuroraGlobal => AnyDriver::Aurora(AuroraGlobal {
            client: aws_sdk_rds::Client::new(aws.sdk_config()),
            members: config
                .core
                .regions
                .iter()
                .map(|r| {
                    (
                        r.as_str().to_string(),
                        aws_sdk_rds::Client::new(&aws.regional(r)),
                    )
                })
                .collect(),
            global_cluster_id: config.global_cluster_id.clone().unwrap_or_default(),
            clusters: config.cluster_arns.clone(),
            poll_every: Duration::from_secs(5),
            timeout: Duration::from_secs(12 * 60),
        }),
        DriverKind::PostgresStreaming => {
            let prefix = &config.core.db.ssm_prefix;
            let mut endpoints = BTreeMap::new();
            for region in config.region_names() {
                let text =
                    db::parameter(&ssm, &format!("{prefix}/reader-endpoint/{region}")).await?;
                let endpoint: Endpoint = text.parse().map_err(|e| {
                    FailoverError::InvalidInput(format!("reader-endpoint/{region}: {e}"))
                })?;
                endpoints.insert(region, endpoint);
            }
            AnyDriver::Postgres(PgStreaming {
                endpoints,
                database: access.database.clone(),
                // Its own role: infra/sql/roles.sql grants it what promotion needs.
                admin_user: access.user.clone(),
                admin_password: access.password().clone(),
                tls: access.tls.clone(),
                timeout: config.probe_timeout,
                catch_up: Duration::from_secs(30),
            })
        }
    };
    let store = StateStore::new(aws.dynamodb(), config.core.state_table.clone());
    Ok(Failover {
        leases: Leases::failover(store.clone()),
        store,
        ssm,
        regional_ssm: config
            .core
            .regions
            .iter()
            .filter(|r| *r != &config.core.primary_region)
            .map(|r| {
                (
                    r.as_str().to_string(),
                    aws_sdk_ssm::Client::new(&aws.regional(r)),
                )
            })
            .collect(),
        events: aws_sdk_eventbridge::Client::new(aws.sdk_config()),
        notifier: config
            .core
            .ops_topic_arn
            .as_ref()
            .map(|arn| Notifier::new(aws.sns(), arn.clone())),
        access,
        driver,
        drill_stop_before: None,
        config,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Run(Trigger),
    Status,
    /// Every region's copy of the endpoint parameters made equal to this region's.
    SyncEndpoints,
    Reconcile,
    /// The stored replay script, rendered (read-only).
    ShowScript {
        fork_xid: Option<u64>,
    },
    Replay {
        dry_run: bool,
        fork_xid: Option<u64>,
    },
    /// Not for us: an alarm that is not watched, or a watched one leaving ALARM.
    Ignore(String),
}

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
enum Raw {
    Failover {
        target: Option<String>,
        #[serde(default)]
        force: bool,
    },
    Switchover {
        target: Option<String>,
    },
    DryRun {
        target: Option<String>,
        #[serde(default)]
        force: bool,
        #[serde(default)]
        switchover: bool,
    },
    Status {},
    SyncEndpoints {},
    Reconcile {},
    ReplayScript {
        fork_xid: Option<u64>,
    },
    Replay {
        dry_run: bool,
        fork_xid: Option<u64>,
    },
}

fn invalid(m: impl Into<String>) -> FailoverError {
    FailoverError::InvalidInput(m.into())
}

fn alarm(name: &str, state: &str, region: Option<&str>, watched: &[String]) -> Request {
    if !watched.iter().any(|w| w == name) {
        tracing::info!(alarm = %name, "not a watched alarm; ignored");
        return Request::Ignore(format!(
            "alarm {name} is not watched by the failover function; ignored"
        ));
    }
    if state != "ALARM" {
        return Request::Ignore(format!(
            "alarm {name} went to {state}; only ALARM triggers a failover"
        ));
    }
    Request::Run(Trigger {
        requested: Requested::Auto,
        origin: Origin::Alarm,
        target: None,
        force: false,
        dry_run: false,
        describe: format!(
            "alarm {name}{}",
            region.map(|r| format!(" in {r}")).unwrap_or_default()
        ),
    })
}

pub fn parse_event(
    event: &Value,
    regions: &[String],
    watched: &[String],
) -> Result<Request, FailoverError> {
    let Value::Object(map) = event else {
        return Err(invalid("the event must be a JSON object"));
    };
    match envelope(event).map_err(invalid)? {
        Envelope::Alarm(a) => return Ok(alarm(&a.name, &a.state, a.region.as_deref(), watched)),
        Envelope::EventBridge {
            detail_type,
            source,
            ..
        } => {
            return Err(invalid(format!(
                "unsupported EventBridge event (detail-type {detail_type:?}, source {source:?}); accepted: CloudWatch Alarm State Change"
            )))
        }
        Envelope::Direct => {}
    }
    if !map.contains_key("command") {
        return Err(invalid(
            "the event has no \"command\" (one of failover, switchover, dry-run, status, sync-endpoints, reconcile, replay-script, replay)",
        ));
    }
    let raw: Raw = serde_json::from_value(event.clone()).map_err(|e| invalid(e.to_string()))?;
    let check = |t: &Option<String>| -> Result<(), FailoverError> {
        match t {
            Some(t) if !regions.contains(t) => Err(invalid(format!(
                "unknown target region {t:?}; the regions are {}",
                regions.join(", ")
            ))),
            _ => Ok(()),
        }
    };
    Ok(match raw {
        Raw::Failover { target, force } => {
            check(&target)?;
            Request::Run(Trigger {
                requested: Requested::Auto,
                origin: Origin::Person,
                describe: format!("manual failover{}", if force { " (forced)" } else { "" }),
                target,
                force,
                dry_run: false,
            })
        }
        Raw::Switchover { target } => {
            check(&target)?;
            Request::Run(Trigger {
                requested: Requested::Switchover,
                origin: Origin::Person,
                target,
                force: false,
                dry_run: false,
                describe: "manual switchover".into(),
            })
        }
        Raw::DryRun {
            target,
            force,
            switchover,
        } => {
            check(&target)?;
            Request::Run(Trigger {
                requested: if switchover {
                    Requested::Switchover
                } else {
                    Requested::Auto
                },
                origin: Origin::Person,
                target,
                force,
                dry_run: true,
                describe: "dry run".into(),
            })
        }
        Raw::Status {} => Request::Status,
        Raw::SyncEndpoints {} => Request::SyncEndpoints,
        Raw::Reconcile {} => Request::Reconcile,
        Raw::ReplayScript { fork_xid } => Request::ShowScript { fork_xid },
        Raw::Replay { dry_run, fork_xid } => Request::Replay { dry_run, fork_xid },
    })
}

pub async fn handle(f: &Failover, event: Value, holder: &str) -> Result<Value, FailoverError> {
    match parse_event(&event, &f.config.region_names(), &f.config.watched_alarms)? {
        Request::Ignore(why) => Ok(json!({"action": "ignored", "summary": why})),
        Request::Status => f.status().await,
        Request::SyncEndpoints => f.sync_endpoints().await,
        Request::Reconcile => f.reconcile_lost_writes().await,
        Request::ShowScript { fork_xid } => f.show_replay_script(fork_xid).await,
        Request::Replay { dry_run, fork_xid } => f.replay_lost_writes(dry_run, fork_xid).await,
        Request::Run(trigger) => {
            let o = f.run(trigger, holder).await?;
            serde_json::to_value(o).map_err(|e| FailoverError::Internal(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Vec<String> {
        ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .map(String::from)
            .to_vec()
    }
    fn watched() -> Vec<String> {
        vec!["primary-writer-unavailable-local".to_string()]
    }
    fn sample(name: &str) -> Value {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/failover/");
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}{name}")).unwrap()).unwrap()
    }

    #[test]
    fn every_sample_event_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/failover");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                parse_event(&sample(&name), &regions(), &watched())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                n += 1;
            }
        }
        assert!(n >= 7);
        assert!(matches!(
            parse_event(&sample("alarm-eventbridge.json"), &regions(), &watched()).unwrap(),
            Request::Run(Trigger {
                requested: Requested::Auto,
                dry_run: false,
                ..
            })
        ));
        assert!(matches!(
            parse_event(&sample("alarm-not-watched.json"), &regions(), &watched()).unwrap(),
            Request::Ignore(_)
        ));
        assert!(matches!(
            parse_event(&sample("alarm-sns.json"), &regions(), &watched()).unwrap(),
            Request::Run(_)
        ));
        assert_eq!(
            parse_event(&sample("reconcile.json"), &regions(), &watched()).unwrap(),
            Request::Reconcile
        );
        assert_eq!(
            parse_event(&sample("replay-script.json"), &regions(), &watched()).unwrap(),
            Request::ShowScript { fork_xid: None }
        );
        assert_eq!(
            parse_event(&sample("replay-dry-run.json"), &regions(), &watched()).unwrap(),
            Request::Replay {
                dry_run: true,
                fork_xid: None
            }
        );
    }

    #[test]
    fn a_replay_names_its_dry_run_explicitly() {
        let applied = json!({"command": "replay", "dry_run": false, "fork_xid": 7000});
        assert_eq!(
            parse_event(&applied, &regions(), &watched()).unwrap(),
            Request::Replay {
                dry_run: false,
                fork_xid: Some(7000)
            }
        );
        let err = parse_event(&json!({"command": "replay"}), &regions(), &watched()).unwrap_err();
        assert!(err.to_string().contains("dry_run"), "{err}");
    }

    #[test]
    fn a_bad_replay_script_request_is_refused_naming_what_is_wrong() {
        let ok = json!({"command": "replay-script", "fork_xid": 7000});
        assert_eq!(
            parse_event(&ok, &regions(), &watched()).unwrap(),
            Request::ShowScript {
                fork_xid: Some(7000)
            }
        );
        for (event, names) in [
            (
                json!({"command": "replay-script", "dry_run": false}),
                "dry_run",
            ),
            (
                json!({"command": "replay-script", "fork_xid": "7000"}),
                "string",
            ),
            (json!({"command": "replay-script", "fork_xid": -1}), "-1"),
            (json!({"command": "replay_script"}), "replay-script"),
        ] {
            let err = parse_event(&event, &regions(), &watched()).unwrap_err();
            assert!(
                matches!(err, FailoverError::InvalidInput(_)),
                "{event}: {err}"
            );
            assert!(err.to_string().contains(names), "{event}: {err}");
        }
    }

    #[test]
    fn every_invalid_sample_is_refused_with_a_reason() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/failover/invalid");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let err = parse_event(&event, &regions(), &watched()).unwrap_err();
            assert!(
                matches!(err, FailoverError::InvalidInput(_)),
                "{}: {err}",
                path.display()
            );
            let d: lambda_runtime::Diagnostic = err.into();
            assert_eq!(d.error_type, "InvalidInput");
            n += 1;
        }
        assert!(n >= 14);
    }
}
