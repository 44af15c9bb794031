//! Events in, results out.
//!
//! - direct invoke: `{"command": "start", "plan": "canary-10-5m", "scope": "all"}` (or
//!   `"steps": [{"weight": 10, "bake": "5m"}, {"weight": 100}]`, `"scope": "eu-west-1"` or
//!   `"region-by-region"`, `"region_bake": "10m"`, `"on_gate_failure": "hold" | "rollback"`,
//!   `"image": "<registry>/app:1.4.2"`: a new revision of the idle colour's family with that image),
//!   `tick`, `pause`, `resume`, `promote`, `abort` (`"reason"`), `status`, `reconcile`; each may carry
//!   `"service"` (must be the configured one) and `"request_id"` (a redelivery is a no-op).
//! - EventBridge Scheduled Event → `tick` (the event id is the request id).
//! - EventBridge "CloudWatch Alarm State Change" and SNS-wrapped alarm notifications →
//!   roll back when a watched alarm goes to ALARM.
//!
//! Every event is checked before anything is read or written.

use std::time::Instant;

use cutover_core::event::{envelope, AlarmChange, Envelope};
use serde::Deserialize;
use serde_json::Value;

use crate::deployment::{OnGateFailure, Status};
use crate::plan::{parse_bake, parse_named, parse_steps, RawStep, Scope};
use crate::shifter::{Outcome, Shifter, StartSpec};
use crate::ShiftError;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Start(StartSpec),
    Tick,
    Pause,
    Resume,
    Promote,
    Abort {
        reason: String,
    },
    Status,
    Reconcile,
    Alarm {
        name: String,
        state: String,
        region: Option<String>,
    },
}

/// A command with what identifies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command: Command,
    pub service: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
enum Raw {
    Start {
        plan: Option<String>,
        steps: Option<Vec<RawStep>>,
        scope: Option<String>,
        region_bake: Option<String>,
        on_gate_failure: Option<OnGateFailure>,
        image: Option<String>,
        service: Option<String>,
        request_id: Option<String>,
    },
    Tick {
        service: Option<String>,
        request_id: Option<String>,
    },
    Pause {
        service: Option<String>,
        request_id: Option<String>,
    },
    Resume {
        service: Option<String>,
        request_id: Option<String>,
    },
    Promote {
        service: Option<String>,
        request_id: Option<String>,
    },
    Abort {
        service: Option<String>,
        request_id: Option<String>,
        reason: Option<String>,
    },
    Status {
        service: Option<String>,
    },
    Reconcile {
        service: Option<String>,
        request_id: Option<String>,
    },
}

fn invalid(message: impl Into<String>) -> ShiftError {
    ShiftError::InvalidInput(message.into())
}

fn check_request_id(id: Option<String>) -> Result<Option<String>, ShiftError> {
    match id {
        Some(id) if id.is_empty() || id.len() > 128 => Err(invalid(format!(
            "request_id must be 1 to 128 characters, not {} characters",
            id.len()
        ))),
        other => Ok(other),
    }
}

/// Turns an event into a request. `regions` are the configured region names.
pub fn parse_event(event: &Value, regions: &[String]) -> Result<Request, ShiftError> {
    let Value::Object(map) = event else {
        return Err(invalid(format!(
            "the event must be a JSON object, not {}",
            match event {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Null => "null",
                _ => "a scalar",
            }
        )));
    };
    match envelope(event).map_err(invalid)? {
        Envelope::Alarm(AlarmChange {
            name,
            state,
            region,
            id,
        }) => {
            return Ok(Request {
                command: Command::Alarm {
                    name,
                    state,
                    region,
                },
                service: None,
                request_id: id,
            })
        }
        Envelope::EventBridge {
            detail_type,
            source,
            id,
        } => {
            return match (detail_type.as_str(), source.as_str()) {
                ("Scheduled Event", "aws.events") => Ok(Request {
                    command: Command::Tick,
                    service: None,
                    request_id: id,
                }),
                _ => Err(invalid(format!(
                    "unsupported EventBridge event (detail-type {detail_type:?}, source {source:?}); accepted: Scheduled Event, CloudWatch Alarm State Change"
                ))),
            }
        }
        Envelope::Direct => {}
    }
    if !map.contains_key("command") {
        return Err(invalid(
            "the event has no \"command\" (one of start, tick, pause, resume, promote, abort, status, reconcile)",
        ));
    }
    let raw: Raw = serde_json::from_value(event.clone()).map_err(|e| invalid(e.to_string()))?;
    let (command, service, request_id) = match raw {
        Raw::Start {
            plan,
            steps,
            scope,
            region_bake,
            on_gate_failure,
            image,
            service,
            request_id,
        } => {
            if let Some(image) = &image {
                crate::ecs::check_image(image).map_err(invalid)?;
            }
            let (plan, steps) = match (plan, steps) {
                (Some(p), None) => {
                    let steps = parse_named(&p).map_err(|e| invalid(e.0))?;
                    (p, steps)
                }
                (None, Some(s)) => ("explicit".to_string(), parse_steps(&s).map_err(|e| invalid(e.0))?),
                (Some(_), Some(_)) => return Err(invalid("give either plan or steps, not both")),
                (None, None) => {
                    return Err(invalid(
                        "start needs a plan (canary-<pct>-<bake>, linear-<pct>-every-<bake>, all-at-once) or steps",
                    ))
                }
            };
            let scope = Scope::parse(scope.as_deref().unwrap_or("all"), regions)
                .map_err(|e| invalid(e.0))?;
            let region_bake_secs = match region_bake {
                None => 0,
                Some(b) => parse_bake(&b).map_err(|e| invalid(format!("region_bake: {}", e.0)))?,
            };
            (
                Command::Start(StartSpec {
                    plan,
                    steps,
                    scope,
                    region_bake_secs,
                    on_gate_failure: on_gate_failure.unwrap_or_default(),
                    image,
                }),
                service,
                request_id,
            )
        }
        Raw::Tick {
            service,
            request_id,
        } => (Command::Tick, service, request_id),
        Raw::Pause {
            service,
            request_id,
        } => (Command::Pause, service, request_id),
        Raw::Resume {
            service,
            request_id,
        } => (Command::Resume, service, request_id),
        Raw::Promote {
            service,
            request_id,
        } => (Command::Promote, service, request_id),
        Raw::Abort {
            service,
            request_id,
            reason,
        } => (
            Command::Abort {
                reason: reason.unwrap_or_else(|| "aborted by an operator".into()),
            },
            service,
            request_id,
        ),
        Raw::Status { service } => (Command::Status, service, None),
        Raw::Reconcile {
            service,
            request_id,
        } => (Command::Reconcile, service, request_id),
    };
    Ok(Request {
        command,
        service,
        request_id: check_request_id(request_id)?,
    })
}

pub async fn handle(
    shifter: &Shifter,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Outcome, ShiftError> {
    let request = parse_event(&event, &shifter.config.region_names())?;
    shifter.check_service(request.service.as_deref())?;
    let id = request.request_id.as_deref();
    match request.command {
        Command::Start(spec) => shifter.start(spec, id, deadline).await,
        Command::Tick => shifter.tick(id, deadline).await,
        Command::Pause => shifter.set_paused(true, id).await,
        Command::Resume => shifter.set_paused(false, id).await,
        Command::Promote => shifter.promote(id).await,
        Command::Abort { reason } => shifter.roll_back(Status::Aborted, reason, id).await,
        Command::Status => shifter.status().await,
        Command::Reconcile => shifter.reconcile().await,
        Command::Alarm {
            name,
            state,
            region,
        } => shifter.alarm(&name, &state, region.as_deref(), id).await,
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

    fn sample(path: &str) -> Value {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/traffic-shifter/");
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}{path}")).unwrap()).unwrap()
    }

    #[test]
    fn every_sample_event_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/traffic-shifter");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                parse_event(&sample(&name), &regions()).unwrap_or_else(|e| panic!("{name}: {e}"));
                n += 1;
            }
        }
        assert!(n >= 10, "{n} samples");
        match parse_event(&sample("alarm-eventbridge.json"), &regions())
            .unwrap()
            .command
        {
            Command::Alarm {
                name,
                state,
                region,
            } => {
                assert_eq!((name.as_str(), state.as_str()), ("app-5xx-local", "ALARM"));
                assert_eq!(region.as_deref(), Some("eu-west-1"));
            }
            other => panic!("{other:?}"),
        }
        match parse_event(&sample("alarm-sns.json"), &regions()).unwrap() {
            Request {
                command: Command::Alarm { name, region, .. },
                request_id,
                ..
            } => {
                assert_eq!(name, "app-p99-latency-local");
                assert_eq!(region.as_deref(), Some("ap-southeast-1"));
                assert!(request_id.is_some());
            }
            other => panic!("{other:?}"),
        }
        let r = parse_event(&sample("start-explicit.json"), &regions()).unwrap();
        let Command::Start(spec) = r.command else {
            panic!()
        };
        assert_eq!(spec.plan, "explicit");
        assert_eq!(spec.image, None);
        let Command::Start(with_image) = parse_event(&sample("start-with-image.json"), &regions())
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(
            with_image.image.as_deref(),
            Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.4.2")
        );
        assert_eq!(spec.scope, Scope::RegionByRegion);
        assert_eq!(spec.region_bake_secs, 300);
    }

    #[test]
    fn every_invalid_sample_is_refused_with_a_reason() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/traffic-shifter/invalid"
        );
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let err = parse_event(&event, &regions()).unwrap_err();
            assert!(
                matches!(err, ShiftError::InvalidInput(_)),
                "{}: {err}",
                path.display()
            );
            let d: lambda_runtime::Diagnostic = err.into();
            assert_eq!(d.error_type, "InvalidInput");
            n += 1;
        }
        assert!(n >= 8, "{n} invalid samples");
    }
}
