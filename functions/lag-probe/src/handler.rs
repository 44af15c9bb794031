//! Events in, results out.
//!
//! - EventBridge scheduled event → one probing window with the configured settings.
//! - `{"command": "probe", "window_ms": 10000, "cadence_ms": 1000, "timeline": true}`
//!   → one window with these overrides (all optional).
//! - `{"command": "status"}` → the latest sample per region from DynamoDB (this
//!   vantage's, and every vantage's under `from`), and every vantage point's
//!   reachability record of the writer.
//!
//! Events are checked before anything is connected or written.

use std::time::{Duration, Instant};

use cutover_core::aws::Aws;
use cutover_core::db::DbAccess;
use cutover_core::metrics::MetricsPublisher;
use cutover_core::reach::ReachRecord;
use cutover_core::state::{keys, LagSample, StateStore};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::config::ProbeConfig;
use crate::poll::PollPlan;
use crate::probe::{self, Endpoints, ProbeSettings, Sinks};
use crate::LagError;

pub struct Env {
    pub config: ProbeConfig,
    pub aws: Aws,
    access: OnceCell<DbAccess>,
}

impl Env {
    pub fn new(config: ProbeConfig, aws: Aws) -> Self {
        Env {
            config,
            aws,
            access: OnceCell::new(),
        }
    }

    /// Credentials and TLS, read from SSM once per cold start.
    async fn access(&self) -> Result<&DbAccess, LagError> {
        self.access
            .get_or_try_init(|| async {
                DbAccess::load(&self.config.core.db, &self.aws.ssm(), "lag-probe").await
            })
            .await
            .map_err(LagError::from)
    }

    /// The endpoints as SSM says now, read at every window: the writer moves on
    /// failover. The region that writes is `<app prefix>/active-region` (the
    /// failover function rewrites it with `writer-endpoint`), not the static
    /// `CUTOVER_PRIMARY_REGION`; every other configured region — the old primary
    /// too, once it is back — is measured as a secondary. A window that cannot
    /// read who writes fails rather than measuring the wrong writer.
    pub async fn endpoints(&self, access: &DbAccess) -> Result<Endpoints, LagError> {
        let ssm = self.aws.ssm();
        let core = &self.config.core;
        let name = format!("{}/active-region", core.db.app_ssm_prefix);
        let active = cutover_core::db::parameter(&ssm, &name).await?;
        let active = active.trim().to_string();
        if !core.regions.iter().any(|r| r.as_str() == active) {
            return Err(LagError::Internal(format!(
                "{name} names {active:?}, which is not one of CUTOVER_REGIONS ({})",
                core.regions
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let primary = access.target(active.as_str(), access.writer_endpoint(&ssm).await?);
        let mut readers = Vec::new();
        for region in core.regions.iter().filter(|r| r.as_str() != active) {
            let endpoint = access.reader_endpoint(&ssm, region.as_str()).await?;
            readers.push((
                region.as_str().to_string(),
                access.target(region.as_str(), endpoint),
            ));
        }
        Ok(Endpoints {
            primary_region: active,
            primary,
            readers,
        })
    }

    pub fn settings(&self, window: Duration, cadence: Duration) -> ProbeSettings {
        let c = &self.config;
        ProbeSettings {
            window,
            cadence,
            poll_timeout: c.poll_timeout,
            heartbeat_table: c.heartbeat_table.clone(),
            probe_id: c.probe_id.clone(),
            engine: c.engine,
            disagreement_ms: c.disagreement_ms,
            flush_every: c.flush_every,
            plan: PollPlan::default(),
            settle: Duration::from_secs(3),
        }
    }

    pub fn sinks(&self) -> Sinks {
        Sinks {
            metrics: Some(MetricsPublisher::new(
                self.aws.cloudwatch(&self.config.core.primary_region),
                self.config.core.metrics_namespace.clone(),
            )),
            state: Some(self.store()),
            vantage: Some(self.config.vantage().to_string()),
        }
    }

    fn store(&self) -> StateStore {
        StateStore::new(self.aws.dynamodb(), self.config.core.state_table.clone())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Probe {
        window: Option<Duration>,
        cadence: Option<Duration>,
        timeline: bool,
    },
    Status,
}

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
enum RawCommand {
    Probe {
        window_ms: Option<u64>,
        cadence_ms: Option<u64>,
        #[serde(default)]
        timeline: bool,
    },
    Status {},
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Object(_) => "an object",
    }
}

pub fn parse_event(event: &Value) -> Result<Command, LagError> {
    if !event.is_object() {
        return Err(LagError::InvalidInput(format!(
            "the event must be a JSON object, not {}",
            kind_of(event)
        )));
    }
    if event.get("detail-type").is_some() || event.get("source").is_some() {
        let scheduled = event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
            && event.get("source").and_then(Value::as_str) == Some("aws.events");
        return if scheduled {
            Ok(Command::Probe {
                window: None,
                cadence: None,
                timeline: false,
            })
        } else {
            Err(LagError::InvalidInput(format!(
                "unsupported EventBridge event (detail-type {}, source {}); only the scheduled event is accepted",
                event.get("detail-type").unwrap_or(&Value::Null),
                event.get("source").unwrap_or(&Value::Null)
            )))
        };
    }
    if event.get("command").is_none() {
        return Err(LagError::InvalidInput(
            "the event has no \"command\" (one of probe, status)".into(),
        ));
    }
    let raw: RawCommand =
        serde_json::from_value(event.clone()).map_err(|e| LagError::InvalidInput(e.to_string()))?;
    Ok(match raw {
        RawCommand::Probe {
            window_ms,
            cadence_ms,
            timeline,
        } => {
            if let Some(w) = window_ms {
                if !(100..=840_000).contains(&w) {
                    return Err(LagError::InvalidInput(format!(
                        "window_ms {w} is out of range: 100 to 840000 (14 minutes)"
                    )));
                }
            }
            if let Some(c) = cadence_ms {
                if !(100..=60_000).contains(&c) {
                    return Err(LagError::InvalidInput(format!(
                        "cadence_ms {c} is out of range: 100 to 60000"
                    )));
                }
            }
            if let (Some(w), Some(c)) = (window_ms, cadence_ms) {
                if c > w {
                    return Err(LagError::InvalidInput(format!(
                        "cadence_ms {c} is longer than window_ms {w}: no heartbeat would be written"
                    )));
                }
            }
            Command::Probe {
                window: window_ms.map(Duration::from_millis),
                cadence: cadence_ms.map(Duration::from_millis),
                timeline,
            }
        }
        RawCommand::Status {} => Command::Status,
    })
}

pub async fn handle(env: &Env, event: Value, deadline: Option<Instant>) -> Result<Value, LagError> {
    match parse_event(&event)? {
        Command::Probe {
            window,
            cadence,
            timeline,
        } => {
            let access = env.access().await?;
            let endpoints = env.endpoints(access).await?;
            let settings = env.settings(
                window.unwrap_or(env.config.window),
                cadence.unwrap_or(env.config.cadence),
            );
            let report = probe::run(
                access,
                &endpoints,
                &settings,
                &env.sinks(),
                deadline,
                timeline,
            )
            .await?;
            tracing::info!(
                regions = %serde_json::to_string(&report.regions).unwrap_or_default(),
                "lag window done"
            );
            serde_json::to_value(&report).map_err(|e| LagError::Internal(e.to_string()))
        }
        Command::Status => {
            let store = env.store();
            let vantage = env.config.vantage();
            let mut regions = Vec::new();
            for region in env.config.core.secondaries() {
                let every = keys::lag_from_every_vantage(region.as_str());
                let mut from = serde_json::Map::new();
                for (key, v) in store
                    .query_prefix::<LagSample>(&every.pk, &every.sk)
                    .await?
                {
                    if let Some(other) = keys::vantage_of(&key) {
                        from.insert(other.to_string(), json!(v.value));
                    }
                }
                regions.push(json!({
                    "region": region.as_str(),
                    "latest": from.get(vantage).cloned(),
                    "from": from,
                }));
            }
            // Who writes, and what every vantage point last saw of it.
            let active = cutover_core::db::parameter(
                &env.aws.ssm(),
                &format!("{}/active-region", env.config.core.db.app_ssm_prefix),
            )
            .await
            .ok();
            let mut reach = Vec::new();
            if let Some(writer) = &active {
                let every = keys::reach_from_every_vantage(writer);
                for (_, v) in store
                    .query_prefix::<ReachRecord>(&every.pk, &every.sk)
                    .await?
                {
                    reach.push(v.value);
                }
            }
            Ok(
                json!({"vantage": vantage, "regions": regions, "writer": active, "writer_reachability": reach}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &str) -> Value {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/lag-probe/");
        let text = std::fs::read_to_string(format!("{dir}{path}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_sample_event_parses() {
        assert_eq!(
            parse_event(&sample("scheduled.json")).unwrap(),
            Command::Probe {
                window: None,
                cadence: None,
                timeline: false
            }
        );
        assert_eq!(
            parse_event(&sample("probe.json")).unwrap(),
            Command::Probe {
                window: Some(Duration::from_secs(10)),
                cadence: Some(Duration::from_secs(1)),
                timeline: true
            }
        );
        assert_eq!(
            parse_event(&sample("status.json")).unwrap(),
            Command::Status
        );
    }

    #[test]
    fn every_invalid_sample_is_refused_with_a_reason() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/lag-probe/invalid"
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let event: Value = serde_json::from_str(&text).unwrap();
            let err = parse_event(&event).unwrap_err();
            assert!(
                matches!(err, LagError::InvalidInput(_)),
                "{}: {err}",
                path.display()
            );
            let diagnostic: lambda_runtime::Diagnostic = err.into();
            assert_eq!(diagnostic.error_type, "InvalidInput");
            seen += 1;
        }
        assert!(seen >= 6, "only {seen} invalid samples");
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_event(&json!({"command": "probe", "window_ms": 10})).unwrap_err();
        assert!(err.to_string().contains("window_ms"), "{err}");
        let err = parse_event(&json!({"command": "probe", "cadence": 10})).unwrap_err();
        assert!(err.to_string().contains("cadence"), "{err}");
    }
}
