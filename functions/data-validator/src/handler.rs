//! Events in, results out: the Lambda's commands.
//!
//! Direct invoke: `{"command": "validate" | "plan" | "validate-segment" | "merge" | "status", ...}`;
//! an EventBridge scheduled event validates every configured table in a new run.
//! Every event is parsed and checked before anything is connected or written,
//! so a bad one is an `InvalidInput` error that changes nothing.

use std::sync::Arc;
use std::time::Instant;

use cutover_core::aws::Aws;
use cutover_core::config::{ConfigError, CoreSettings, Vars};
use cutover_core::db::{self, DbAccess, SourceDsn};
use cutover_core::metrics::MetricsPublisher;
use cutover_core::notify::Notifier;
use cutover_core::state::{now_ms, StateStore};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::Options;
use crate::ident::TableRef;
use crate::run::{self, list_tables, RunSummary, SegmentRef, Validator};
use crate::side::{Side, ORACLE_SESSION_SETUP};
use crate::ValidatorError;

/// The function's settings, read once at cold start.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub core: CoreSettings,
    /// Tables to validate when an event names none; `None` = every table of `schemas`.
    pub tables: Option<Vec<TableRef>>,
    pub schemas: Vec<String>,
    pub topic_arn: Option<String>,
    pub options: Options,
}

impl ValidatorConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let core = CoreSettings::from_vars(vars)?;
        let tables = match vars.list(
            "CUTOVER_VALIDATION_TABLES",
            "comma-separated schema.table names",
        )? {
            None => None,
            Some(items) => Some(
                items
                    .iter()
                    .map(|t| {
                        TableRef::parse(t).map_err(|_| ConfigError::Malformed {
                            var: "CUTOVER_VALIDATION_TABLES".into(),
                            value: items.join(","),
                            form: "comma-separated schema.table names".into(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let schemas = vars
            .list("CUTOVER_VALIDATION_SCHEMAS", "comma-separated schema names")?
            .unwrap_or_else(|| vec!["app".to_string()]);
        let defaults = Options::default();
        let count = "a positive whole number";
        let options = Options {
            segment_rows: vars.parse_or(
                "CUTOVER_VALIDATION_SEGMENT_ROWS",
                defaults.segment_rows,
                count,
            )?,
            bucket_rows: vars.parse_or(
                "CUTOVER_VALIDATION_BUCKET_ROWS",
                defaults.bucket_rows,
                count,
            )?,
            leaf_rows: vars.parse_or("CUTOVER_VALIDATION_LEAF_ROWS", defaults.leaf_rows, count)?,
            fanout: defaults.fanout,
            max_diffs: vars.parse_or("CUTOVER_VALIDATION_MAX_DIFFS", defaults.max_diffs, count)?,
            hashing: vars.parse_or(
                "CUTOVER_VALIDATION_HASHING",
                defaults.hashing,
                "stream or database",
            )?,
            live: vars.parse_or(
                "CUTOVER_VALIDATION_LIVE",
                defaults.live.clone(),
                "off, slot:<logical slot on the source>[:<rechecks>] or delay:<ms>[:<rechecks>]",
            )?,
            merge: defaults.merge,
        };
        for (var, value) in [
            ("CUTOVER_VALIDATION_SEGMENT_ROWS", options.segment_rows),
            ("CUTOVER_VALIDATION_BUCKET_ROWS", options.bucket_rows),
            ("CUTOVER_VALIDATION_LEAF_ROWS", options.leaf_rows),
        ] {
            if value == 0 {
                return Err(ConfigError::Malformed {
                    var: var.into(),
                    value: "0".into(),
                    form: count.into(),
                });
            }
        }
        Ok(ValidatorConfig {
            core,
            tables,
            schemas,
            topic_arn: vars.optional("CUTOVER_VALIDATION_TOPIC_ARN"),
            options,
        })
    }
}

/// What lives for the whole container: settings and clients.
pub struct Env {
    pub config: ValidatorConfig,
    pub aws: Aws,
}

/// A command, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Validate {
        run_id: Option<String>,
        tables: Option<Vec<TableRef>>,
    },
    Plan {
        run_id: Option<String>,
        tables: Option<Vec<TableRef>>,
    },
    ValidateSegment {
        run_id: String,
        table: TableRef,
        segment: u32,
    },
    Merge {
        run_id: String,
        failure: Option<String>,
    },
    Status {
        run_id: String,
    },
}

/// A Step Functions error as a Catch passes it on (`{"Error": …, "Cause": …}`).
#[derive(Deserialize)]
#[serde(expecting = "failure as a Step Functions Catch passes it on: {\"Error\": …, \"Cause\": …}")]
struct CaughtError {
    #[serde(rename = "Error")]
    error: String,
    #[serde(rename = "Cause", default)]
    cause: Option<String>,
}

/// The longest failure text kept on a run (a Lambda's error cause can be long).
const MAX_FAILURE: usize = 1000;

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
enum RawCommand {
    Validate {
        run_id: Option<String>,
        tables: Option<Vec<String>>,
    },
    Plan {
        run_id: Option<String>,
        tables: Option<Vec<String>>,
    },
    ValidateSegment {
        run_id: String,
        table: String,
        segment: u32,
    },
    Merge {
        run_id: String,
        failure: Option<CaughtError>,
    },
    Status {
        run_id: String,
    },
}

fn check_run_id(run_id: &str) -> Result<String, ValidatorError> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 64
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(run_id.to_string())
    } else {
        Err(ValidatorError::InvalidInput(format!(
            "run_id {run_id:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn check_tables(tables: Option<Vec<String>>) -> Result<Option<Vec<TableRef>>, ValidatorError> {
    match tables {
        None => Ok(None),
        Some(list) if list.is_empty() => Err(ValidatorError::InvalidInput(
            "tables is empty: name at least one schema.table, or leave tables out for all".into(),
        )),
        Some(list) => list
            .iter()
            .map(|t| {
                TableRef::parse(t).map_err(|e| ValidatorError::InvalidInput(format!("tables: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

/// Turns an event into a command; scheduled events become `validate` of everything.
pub fn parse_event(event: &Value) -> Result<Command, ValidatorError> {
    if !event.is_object() {
        return Err(ValidatorError::InvalidInput(format!(
            "the event must be a JSON object, not {}",
            match event {
                Value::Null => "null",
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        )));
    }
    if event.get("detail-type").is_some() || event.get("source").is_some() {
        let scheduled = event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
            && event.get("source").and_then(Value::as_str) == Some("aws.events");
        return if scheduled {
            Ok(Command::Validate {
                run_id: None,
                tables: None,
            })
        } else {
            Err(ValidatorError::InvalidInput(format!(
                "unsupported EventBridge event (detail-type {:?}, source {:?}); only the scheduled event is accepted",
                event.get("detail-type"),
                event.get("source")
            )))
        };
    }
    if event.get("command").is_none() {
        return Err(ValidatorError::InvalidInput(
            "the event has no \"command\" (one of validate, plan, validate-segment, merge, status)"
                .into(),
        ));
    }
    let raw: RawCommand = serde_json::from_value(event.clone())
        .map_err(|e| ValidatorError::InvalidInput(e.to_string()))?;
    Ok(match raw {
        RawCommand::Validate { run_id, tables } => Command::Validate {
            run_id: run_id.as_deref().map(check_run_id).transpose()?,
            tables: check_tables(tables)?,
        },
        RawCommand::Plan { run_id, tables } => Command::Plan {
            run_id: run_id.as_deref().map(check_run_id).transpose()?,
            tables: check_tables(tables)?,
        },
        RawCommand::ValidateSegment {
            run_id,
            table,
            segment,
        } => Command::ValidateSegment {
            run_id: check_run_id(&run_id)?,
            table: TableRef::parse(&table)
                .map_err(|e| ValidatorError::InvalidInput(format!("table: {e}")))?,
            segment,
        },
        RawCommand::Merge { run_id, failure } => Command::Merge {
            run_id: check_run_id(&run_id)?,
            failure: failure.map(|f| {
                let text = match f.cause {
                    Some(cause) if !cause.is_empty() => format!("{}: {cause}", f.error),
                    _ => f.error,
                };
                text.chars().take(MAX_FAILURE).collect()
            }),
        },
        RawCommand::Status { run_id } => Command::Status {
            run_id: check_run_id(&run_id)?,
        },
    })
}

/// A new run id: sortable by time, and unique even for runs started in the
/// same millisecond (in one process or many): 32 random bits from the
/// standard library's per-process random hasher keys, and a counter.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = now_ms();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u64(ms as u64);
    h.write_u32(std::process::id());
    format!("run-{ms}-{:08x}", h.finish() & 0xffff_ffff)
}

impl Env {
    /// Connects to both sides and builds the validator.
    pub async fn validator(&self) -> Result<Validator, ValidatorError> {
        let ssm = self.aws.ssm();
        let access = DbAccess::load(&self.config.core.db, &ssm, "data-validator").await?;
        let dsn_name = format!("{}/source-dsn", self.config.core.db.ssm_prefix);
        let dsn = db::secure_string(&ssm, &dsn_name).await?;
        let source = match SourceDsn::parse(dsn.expose(), &dsn_name)? {
            SourceDsn::Postgres { target, password } => {
                Side::postgres(
                    "source",
                    db::connect(&target, &password, &access.tls, access.connect_timeout).await?,
                )
                .await?
            }
            SourceDsn::Oracle { target, password } => {
                let connection = tokio::task::spawn_blocking(
                    move || -> Result<oracle::Connection, cutover_core::Error> {
                        let connection = db::connect_oracle(&target, &password)?;
                        connection.execute(ORACLE_SESSION_SETUP, &[]).map_err(|e| {
                            cutover_core::Error::Database {
                                target: "oracle source".into(),
                                message: e.to_string(),
                                retryable: false,
                            }
                        })?;
                        Ok(connection)
                    },
                )
                .await
                .map_err(|e| ValidatorError::Internal(e.to_string()))??;
                Side::Oracle {
                    label: "source".into(),
                    connection: Arc::new(connection),
                }
            }
        };
        let writer = access.writer_endpoint(&ssm).await?;
        let target = Side::postgres(
            "target",
            access.connect(&access.target("target", writer)).await?,
        )
        .await?;
        Ok(Validator {
            source,
            target,
            store: StateStore::new(self.aws.dynamodb(), &self.config.core.state_table),
            notifier: self
                .config
                .topic_arn
                .as_ref()
                .map(|arn| Notifier::new(self.aws.sns(), arn)),
            metrics: Some(MetricsPublisher::new(
                self.aws.cloudwatch(&self.config.core.primary_region),
                &self.config.core.metrics_namespace,
            )),
            options: self.config.options.clone(),
        })
    }

    async fn tables(
        &self,
        validator: &Validator,
        named: Option<Vec<TableRef>>,
    ) -> Result<Vec<TableRef>, ValidatorError> {
        match named.or_else(|| self.config.tables.clone()) {
            Some(tables) => Ok(tables),
            None => list_tables(&validator.source, &self.config.schemas).await,
        }
    }
}

fn summary_json(run: &RunSummary) -> Value {
    json!({
        "run_id": run.run_id,
        "verdict": run.verdict,
        "report": run::render(run),
        "tables": run.tables.iter().map(|t| json!({
            "table": format!("{}.{}", t.table.schema, t.table.table),
            "verdict": t.verdict,
            "source_rows": t.source_rows,
            "target_rows": t.target_rows,
            "missing_in_target": t.missing_in_target,
            "extra_in_target": t.extra_in_target,
            "different": t.different,
            "segments": t.segments,
            "segments_done": t.segments_done,
            "first_keys": t.first_keys,
            "findings": t.findings,
            "errors": t.errors,
        })).collect::<Vec<_>>(),
    })
}

/// Runs one command. `deadline` is when the Lambda will be stopped.
pub async fn handle(
    env: &Env,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Value, ValidatorError> {
    let command = parse_event(&event)?;
    let validator = env.validator().await?;
    match command {
        Command::Validate { run_id, tables } => {
            let run_id = run_id.unwrap_or_else(new_run_id);
            let tables = env.tables(&validator, tables).await?;
            let outcome = validator.validate(&run_id, &tables, deadline).await?;
            let mut out = summary_json(&outcome.summary);
            out["segments_validated_now"] = json!(outcome.segments_validated_now);
            if let Some(resume) = outcome.resume {
                out["resume"] = resume;
            }
            Ok(out)
        }
        Command::Plan { run_id, tables } => {
            let run_id = run_id.unwrap_or_else(new_run_id);
            let tables = env.tables(&validator, tables).await?;
            validator.plan(&run_id, &tables).await?;
            let segments: Vec<SegmentRef> = validator
                .segments(&run_id)
                .await?
                .into_iter()
                .map(|(c, _)| SegmentRef {
                    run_id: run_id.clone(),
                    table: c.table.to_string(),
                    segment: c.index,
                })
                .collect();
            Ok(json!({"run_id": run_id, "segments": segments}))
        }
        Command::ValidateSegment {
            run_id,
            table,
            segment,
        } => {
            let (run, _) = validator.load_run(&run_id).await?.ok_or_else(|| {
                ValidatorError::InvalidInput(format!(
                    "there is no validation run {run_id:?}; plan it first"
                ))
            })?;
            let (checkpoint, version) = validator
                .segments(&run_id)
                .await?
                .into_iter()
                .find(|(c, _)| c.table == table && c.index == segment)
                .ok_or_else(|| {
                    ValidatorError::InvalidInput(format!(
                        "run {run_id} has no segment {segment} of {table}"
                    ))
                })?;
            let done = validator
                .validate_segment(&run, &checkpoint, version, deadline)
                .await?;
            Ok(serde_json::to_value(&done).map_err(|e| ValidatorError::Internal(e.to_string()))?)
        }
        Command::Merge { run_id, failure } => Ok(summary_json(&match failure {
            Some(failure) => validator.merge_failed(&run_id, &failure).await?,
            None => validator.merge(&run_id).await?,
        })),
        Command::Status { run_id } => {
            let (run, _) = validator.load_run(&run_id).await?.ok_or_else(|| {
                ValidatorError::InvalidInput(format!("there is no validation run {run_id:?}"))
            })?;
            Ok(summary_json(&validator.summarise(&run).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_started_in_the_same_millisecond_differ() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| check_run_id(id).is_ok()));
    }

    fn parse(text: &str) -> Result<Command, ValidatorError> {
        parse_event(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn every_sample_event_parses() {
        for (name, text) in [
            (
                "validate",
                include_str!("../../../events/data-validator/validate.json"),
            ),
            (
                "validate-tables",
                include_str!("../../../events/data-validator/validate-tables.json"),
            ),
            (
                "resume",
                include_str!("../../../events/data-validator/validate-resume.json"),
            ),
            (
                "plan",
                include_str!("../../../events/data-validator/plan.json"),
            ),
            (
                "segment",
                include_str!("../../../events/data-validator/validate-segment.json"),
            ),
            (
                "merge",
                include_str!("../../../events/data-validator/merge.json"),
            ),
            (
                "merge-failed",
                include_str!("../../../events/data-validator/merge-failed.json"),
            ),
            (
                "status",
                include_str!("../../../events/data-validator/status.json"),
            ),
            (
                "scheduled",
                include_str!("../../../events/data-validator/scheduled.json"),
            ),
        ] {
            assert!(parse(text).is_ok(), "{name}: {:?}", parse(text));
        }
        assert_eq!(
            parse(include_str!(
                "../../../events/data-validator/scheduled.json"
            ))
            .unwrap(),
            Command::Validate {
                run_id: None,
                tables: None
            }
        );
    }

    #[test]
    fn every_invalid_sample_is_refused_with_a_reason() {
        for (text, expected) in [
            (
                include_str!("../../../events/data-validator/invalid/unknown-command.json"),
                "unknown variant",
            ),
            (
                include_str!("../../../events/data-validator/invalid/no-command.json"),
                "no \"command\"",
            ),
            (
                include_str!("../../../events/data-validator/invalid/bad-table-name.json"),
                "not a table name",
            ),
            (
                include_str!("../../../events/data-validator/invalid/bad-run-id.json"),
                "run_id",
            ),
            (
                include_str!("../../../events/data-validator/invalid/segment-missing-run.json"),
                "run_id",
            ),
            (
                include_str!("../../../events/data-validator/invalid/unknown-field.json"),
                "unknown field",
            ),
            (
                include_str!("../../../events/data-validator/invalid/empty-tables.json"),
                "tables is empty",
            ),
            (
                include_str!("../../../events/data-validator/invalid/other-eventbridge-event.json"),
                "unsupported EventBridge event",
            ),
            (
                include_str!("../../../events/data-validator/invalid/not-an-object.json"),
                "JSON object",
            ),
            (
                include_str!(
                    "../../../events/data-validator/invalid/merge-failure-not-an-error.json"
                ),
                "failure",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, ValidatorError::InvalidInput(_)), "{err}");
            assert!(
                err.to_string().contains(expected),
                "{err} should mention {expected}"
            );
            let diagnostic: lambda_runtime::Diagnostic = err.into();
            assert_eq!(diagnostic.error_type, "InvalidInput");
        }
    }

    #[test]
    fn a_caught_error_becomes_the_runs_failure_bounded() {
        let cmd = parse(include_str!(
            "../../../events/data-validator/merge-failed.json"
        ))
        .unwrap();
        let Command::Merge { failure, .. } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(
            failure.as_deref(),
            Some("Lambda.ServiceException: segment 3 of app.orders: the invocation failed after 3 attempts")
        );
        let long = serde_json::json!({"command": "merge", "run_id": "r1",
            "failure": {"Error": "States.Timeout", "Cause": "x".repeat(5000)}});
        let Command::Merge { failure, .. } = parse(&long.to_string()).unwrap() else {
            panic!()
        };
        assert_eq!(failure.unwrap().chars().count(), MAX_FAILURE);
        let bare = serde_json::json!({"command": "merge", "run_id": "r1", "failure": {"Error": "States.Timeout"}});
        assert!(matches!(parse(&bare.to_string()).unwrap(),
            Command::Merge { failure: Some(f), .. } if f == "States.Timeout"));
    }

    #[test]
    fn config_defaults_and_errors_name_the_variable() {
        let config =
            ValidatorConfig::from_vars(&Vars::from_pairs([("CUTOVER_SUFFIX", "dev")])).unwrap();
        assert_eq!(config.schemas, vec!["app"]);
        assert!(config.tables.is_none());
        let err = ValidatorConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_VALIDATION_BUCKET_ROWS", "0"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CUTOVER_VALIDATION_BUCKET_ROWS"));
        let err = ValidatorConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_VALIDATION_TABLES", "app.orders,orders"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CUTOVER_VALIDATION_TABLES"));
        assert_eq!(config.options.live, crate::engine::Live::Off);
    }

    #[test]
    fn live_validation_is_configured_by_mode_and_refused_when_malformed() {
        use crate::engine::Live;
        let live = |value: &str| {
            ValidatorConfig::from_vars(&Vars::from_pairs([
                ("CUTOVER_SUFFIX", "dev"),
                ("CUTOVER_VALIDATION_LIVE", value),
            ]))
            .map(|c| c.options.live)
        };
        assert_eq!(
            live("slot:cutover_sub").unwrap(),
            Live::Slot {
                slot: "cutover_sub".into(),
                rechecks: 3,
                wait_ms: 60_000
            }
        );
        assert_eq!(
            live("delay:2500:5").unwrap(),
            Live::Delay {
                ms: 2500,
                rechecks: 5
            }
        );
        assert_eq!(live("off").unwrap(), Live::Off);
        for bad in [
            "on",
            "slot",
            "slot:",
            "delay:soon",
            "delay:100:0",
            "slot:s:3:x",
        ] {
            let err = live(bad).unwrap_err().to_string();
            assert!(
                err.contains("CUTOVER_VALIDATION_LIVE") && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }
}
