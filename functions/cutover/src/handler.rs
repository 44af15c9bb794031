//! Events in, results out. Direct invoke only (an operator, the rehearsal or the
//! Step Functions runbook):
//!
//! - `{"command": "status"}`
//! - `{"command": "advance", "until": "switched", "expect": "in-sync", "validation_run": "<run-id>"}`
//!   (`until`, `expect` and `validation_run` optional; without `until`, one step)
//! - `{"command": "rollback", "reason": "…"}`
//! - `{"command": "dry-run", "validation_run": "<run-id>"}`
//!
//! Every event is checked before anything is read or written.

use cutover_core::aws::Aws;
use cutover_core::db::{self, DbAccess, SourceDsn};
use cutover_core::notify::Notifier;
use cutover_core::state::{keys, Leases, Phase, StateStore};
use serde::Deserialize;
use serde_json::Value;

use crate::config::CutoverConfig;
use crate::controller::{Controller, Databases, Outcome};
use crate::CutoverError;

/// Builds everything once per cold start.
pub async fn build(config: CutoverConfig, aws: &Aws) -> Result<Controller, CutoverError> {
    let ssm = aws.ssm();
    let prefix = config.core.db.ssm_prefix.clone();
    // The target as its own role (infra/sql/roles.sql); `user` names the application's
    // role, which the freeze makes read-only (its password is not read).
    let access = DbAccess::load(&config.core.db, &ssm, "cutover").await?;
    let names = [
        format!("{prefix}/user"),
        format!("{prefix}/source-admin-dsn"),
        format!("{prefix}/reverse-conninfo"),
    ];
    let (app_user, source_dsn, reverse_conninfo) = tokio::try_join!(
        db::parameter(&ssm, &names[0]),
        db::secure_string(&ssm, &names[1]),
        db::secure_string(&ssm, &names[2]),
    )?;
    let (source, source_password) = match SourceDsn::parse(source_dsn.expose(), "source")? {
        SourceDsn::Postgres { target, password } => (target, password),
        SourceDsn::Oracle { .. } => {
            return Err(CutoverError::InvalidInput(format!(
                "{prefix}/source-admin-dsn names an Oracle source: this function drives PostgreSQL \
                 sources; for Oracle with DMS the freeze and drain are the SQL and conditions in \
                 functions/cutover/src/oracle.rs (see the cutover README)"
            )))
        }
    };
    let store = StateStore::new(aws.dynamodb(), config.core.state_table.clone());
    Ok(Controller {
        leases: Leases::new(store.clone(), keys::migration_lease()),
        failover_lease: Leases::failover(store.clone()),
        store,
        cloudwatch: aws.cloudwatch(&config.core.primary_region),
        notifier: config
            .core
            .ops_topic_arn
            .as_ref()
            .map(|arn| Notifier::new(aws.sns(), arn.clone())),
        db: Databases {
            tls: access.tls.clone(),
            access,
            app_user,
            source,
            source_password,
            reverse_conninfo,
        },
        ssm,
        config,
        connections: tokio::sync::Mutex::new(None),
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Status,
    Advance {
        until: Option<Phase>,
        expect: Option<Phase>,
        validation_run: Option<String>,
    },
    Rollback {
        reason: String,
    },
    DryRun {
        until: Option<Phase>,
        validation_run: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
enum Raw {
    Status {},
    Advance {
        until: Option<String>,
        expect: Option<String>,
        validation_run: Option<String>,
    },
    Rollback {
        reason: Option<String>,
    },
    DryRun {
        until: Option<String>,
        validation_run: Option<String>,
    },
}

fn phase(field: &str, value: Option<String>) -> Result<Option<Phase>, CutoverError> {
    value
        .map(|v| {
            v.parse::<Phase>()
                .map_err(|e| CutoverError::InvalidInput(format!("{field}: {e}")))
        })
        .transpose()
}

fn run_id(value: Option<String>) -> Result<Option<String>, CutoverError> {
    match value {
        Some(v) if v.trim().is_empty() || v.len() > 128 || v.contains('#') => {
            Err(CutoverError::InvalidInput(format!(
                "validation_run {v:?} is not a run id (1 to 128 characters, no '#')"
            )))
        }
        other => Ok(other),
    }
}

/// Checks an event and turns it into a request; nothing is read or written.
pub fn parse(event: &Value) -> Result<Request, CutoverError> {
    if event.get("command").is_none() {
        return Err(CutoverError::InvalidInput(
            "the event has no \"command\"; expected one of status, advance, rollback, dry-run"
                .into(),
        ));
    }
    let raw: Raw = serde_json::from_value(event.clone()).map_err(|e| {
        CutoverError::InvalidInput(format!(
            "{e} (commands: status, advance {{until, expect, validation_run}}, rollback {{reason}}, dry-run {{until, validation_run}})"
        ))
    })?;
    Ok(match raw {
        Raw::Status {} => Request::Status,
        Raw::Advance {
            until,
            expect,
            validation_run,
        } => Request::Advance {
            until: phase("until", until)?,
            expect: phase("expect", expect)?,
            validation_run: run_id(validation_run)?,
        },
        Raw::Rollback { reason } => {
            let reason = reason.unwrap_or_else(|| "asked by an operator".into());
            if reason.len() > 1000 {
                return Err(CutoverError::InvalidInput(
                    "reason is longer than 1000 characters".into(),
                ));
            }
            Request::Rollback { reason }
        }
        Raw::DryRun {
            until,
            validation_run,
        } => Request::DryRun {
            until: phase("until", until)?,
            validation_run: run_id(validation_run)?,
        },
    })
}

pub async fn handle(
    controller: &Controller,
    event: Value,
    request_id: &str,
) -> Result<Outcome, CutoverError> {
    let request = parse(&event)?;
    let holder = format!("cutover:{request_id}");
    let out = match request {
        Request::Status => controller.status().await?,
        Request::Advance {
            until,
            expect,
            validation_run,
        } => {
            controller
                .advance(&holder, until, expect, validation_run.as_deref())
                .await?
        }
        Request::Rollback { reason } => controller.rollback(&holder, &reason).await?,
        Request::DryRun {
            until,
            validation_run,
        } => controller.dry_run(until, validation_run.as_deref()).await?,
    };
    tracing::info!(result = %out.result, phase = %out.phase, detail = %out.detail, "cutover");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(path: &str) -> Value {
        serde_json::from_str(path).unwrap()
    }

    #[test]
    fn sample_events_parse() {
        assert_eq!(
            parse(&load(include_str!("../../../events/cutover/advance.json"))).unwrap(),
            Request::Advance {
                until: None,
                expect: Some(Phase::Cdc),
                validation_run: Some("run-20261202-0900".into())
            }
        );
        assert!(matches!(
            parse(&load(include_str!(
                "../../../events/cutover/advance-until-switched.json"
            )))
            .unwrap(),
            Request::Advance {
                until: Some(Phase::Switched),
                ..
            }
        ));
        assert!(matches!(
            parse(&load(include_str!("../../../events/cutover/rollback.json"))).unwrap(),
            Request::Rollback { .. }
        ));
        assert_eq!(
            parse(&load(include_str!("../../../events/cutover/status.json"))).unwrap(),
            Request::Status
        );
        assert!(matches!(
            parse(&load(include_str!("../../../events/cutover/dry-run.json"))).unwrap(),
            Request::DryRun { .. }
        ));
    }

    #[test]
    fn invalid_sample_events_name_what_is_wrong() {
        let cases = [
            (
                include_str!("../../../events/cutover/invalid/unknown-phase.json"),
                "until",
            ),
            (
                include_str!("../../../events/cutover/invalid/unknown-command.json"),
                "unknown variant",
            ),
            (
                include_str!("../../../events/cutover/invalid/no-command.json"),
                "no \"command\"",
            ),
            (
                include_str!("../../../events/cutover/invalid/bad-run-id.json"),
                "validation_run",
            ),
            (
                include_str!("../../../events/cutover/invalid/unknown-field.json"),
                "unknown field",
            ),
        ];
        for (event, expected) in cases {
            let err = parse(&load(event)).unwrap_err();
            assert!(matches!(err, CutoverError::InvalidInput(_)));
            assert!(
                err.to_string().contains(expected),
                "{err} should mention {expected}"
            );
        }
    }
}
