//! Lifecycle hooks: Lambdas that approve a release at three points, with the
//! contract of ECS's native blue/green hooks.
//!
//! - `pre-traffic`: the new colour is scaled up and healthy, no traffic yet
//!   (ECS `POST_SCALE_UP`);
//! - `post-traffic`: every region of the scope at 100 % on the new colour, the
//!   deployment not yet succeeded (ECS `POST_PRODUCTION_TRAFFIC_SHIFT`);
//! - `pre-promote`: an operator asked to promote; nothing moves until it passes.
//!
//! The hook answers `{"hookStatus": "SUCCEEDED" | "FAILED" | "IN_PROGRESS",
//! "callBackDelay": <seconds, default 30>, "hookDetails": {…}}`. IN_PROGRESS is
//! recorded and the hook is invoked again by the first tick after the delay
//! (the shifter never sleeps on it), with the `hookDetails` it returned. FAILED,
//! a function error, an answer that is not the contract, no answer within the
//! invocation bound, or IN_PROGRESS for longer than the wait bound: rollback.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where in a release a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPhase {
    PreTraffic,
    PostTraffic,
    PrePromote,
}

impl HookPhase {
    pub const ALL: [HookPhase; 3] = [
        HookPhase::PreTraffic,
        HookPhase::PostTraffic,
        HookPhase::PrePromote,
    ];

    /// The stage name the hook receives (`lifecycleStage`).
    pub fn stage(self) -> &'static str {
        match self {
            HookPhase::PreTraffic => "PRE_TRAFFIC",
            HookPhase::PostTraffic => "POST_TRAFFIC",
            HookPhase::PrePromote => "PRE_PROMOTE",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HookPhase::PreTraffic => "pre-traffic",
            HookPhase::PostTraffic => "post-traffic",
            HookPhase::PrePromote => "pre-promote",
        }
    }

    /// The setting that names the phase's function.
    pub fn var(self) -> &'static str {
        match self {
            HookPhase::PreTraffic => "CUTOVER_PRE_TRAFFIC_HOOK",
            HookPhase::PostTraffic => "CUTOVER_POST_TRAFFIC_HOOK",
            HookPhase::PrePromote => "CUTOVER_PRE_PROMOTE_HOOK",
        }
    }
}

/// What ECS defaults an IN_PROGRESS hook's delay to.
pub const DEFAULT_CALLBACK_DELAY_SECS: u64 = 30;
const MAX_CALLBACK_DELAY_SECS: u64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStatus {
    Succeeded,
    Failed,
    InProgress,
}

/// A hook's answer, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HookAnswer {
    pub status: HookStatus,
    pub callback_delay_secs: u64,
    /// Passed back to the hook on its next invocation.
    pub details: Option<Value>,
    /// Not in ECS's contract: a hook's own words on why, recorded with the answer.
    pub reason: Option<String>,
}

/// Checks an answer against the contract; the error names what is wrong.
pub fn parse_answer(answer: &Value) -> Result<HookAnswer, String> {
    let Value::Object(map) = answer else {
        return Err(format!(
            "the answer is not a JSON object with a hookStatus: {}",
            short(answer)
        ));
    };
    let status = match map.get("hookStatus") {
        None => {
            return Err(format!(
                "the answer has no hookStatus (SUCCEEDED, FAILED or IN_PROGRESS): {}",
                short(answer)
            ))
        }
        Some(Value::String(s)) => match s.as_str() {
            "SUCCEEDED" => HookStatus::Succeeded,
            "FAILED" => HookStatus::Failed,
            "IN_PROGRESS" => HookStatus::InProgress,
            other => {
                return Err(format!(
                    "hookStatus {other:?} is not SUCCEEDED, FAILED or IN_PROGRESS"
                ))
            }
        },
        Some(other) => {
            return Err(format!(
                "hookStatus must be a string (SUCCEEDED, FAILED or IN_PROGRESS), not {}",
                short(other)
            ))
        }
    };
    let callback_delay_secs = match map.get("callBackDelay") {
        None | Some(Value::Null) => DEFAULT_CALLBACK_DELAY_SECS,
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_CALLBACK_DELAY_SECS => n,
            _ => {
                return Err(format!(
                "callBackDelay must be whole seconds from 0 to {MAX_CALLBACK_DELAY_SECS}, not {}",
                short(v)
            ))
            }
        },
    };
    let details = match map.get("hookDetails") {
        None | Some(Value::Null) => None,
        Some(d @ Value::Object(_)) => Some(d.clone()),
        Some(other) => {
            return Err(format!(
                "hookDetails must be a JSON object, not {}",
                short(other)
            ))
        }
    };
    let reason = map
        .get("reason")
        .and_then(Value::as_str)
        .map(|r| clip(r, 500));
    Ok(HookAnswer {
        status,
        callback_delay_secs,
        details,
        reason,
    })
}

fn short(v: &Value) -> String {
    clip(&v.to_string(), 200)
}

/// At most `max` characters of `text`, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A hook that answered IN_PROGRESS: when to ask again, and since when it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookWait {
    pub phase: HookPhase,
    pub since_ms: u64,
    pub next_at_ms: u64,
    pub invocations: u32,
    /// The `hookDetails` of the last answer, passed back on the next invocation.
    pub details: Option<Value>,
}

/// A function name or ARN as Lambda's Invoke takes it; the region of an ARN.
pub fn check_function(text: &str) -> Result<Option<String>, String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if let Some(rest) = text.strip_prefix("arn:") {
        // arn:<partition>:lambda:<region>:<account>:function:<name>[:qualifier]
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() >= 6
            && parts.len() <= 7
            && parts[1] == "lambda"
            && !parts[2].is_empty()
            && parts[4] == "function"
            && name_ok(parts[5])
        {
            return Ok(Some(parts[2].to_string()));
        }
        return Err(format!(
            "{text:?} is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)"
        ));
    }
    if name_ok(text) {
        Ok(None)
    } else {
        Err(format!(
            "{text:?} is not a function name (letters, digits, '-', '_', up to 64) or ARN"
        ))
    }
}

/// Invokes a hook and returns its answer as JSON; a function error, an Invoke
/// failure, no answer within `timeout`, or an answer that is not JSON is `Err`.
pub async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    payload: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    let call = client
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
        .send();
    let out = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| {
            format!(
                "gave no answer within {} s (CUTOVER_HOOK_TIMEOUT)",
                timeout.as_secs()
            )
        })?
        .map_err(|e| {
            format!(
                "could not be invoked: {}",
                cutover_core::error::describe_chain(&e)
            )
        })?;
    let body = out
        .payload()
        .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
        .unwrap_or_default();
    if let Some(kind) = out.function_error() {
        return Err(format!("failed ({kind}): {}", clip(&body, 300)));
    }
    serde_json::from_str(&body).map_err(|e| {
        format!(
            "answered something that is not JSON ({e}): {:?}",
            clip(&body, 200)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_of_the_contract() {
        let a = parse_answer(&json!({"hookStatus": "SUCCEEDED"})).unwrap();
        assert_eq!(a.status, HookStatus::Succeeded);
        assert_eq!(a.callback_delay_secs, DEFAULT_CALLBACK_DELAY_SECS);
        let a = parse_answer(
            &json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 5, "hookDetails": {"attempt": 2}}),
        )
        .unwrap();
        assert_eq!(a.status, HookStatus::InProgress);
        assert_eq!(a.callback_delay_secs, 5);
        assert_eq!(a.details, Some(json!({"attempt": 2})));
        assert_eq!(
            parse_answer(&json!({"hookStatus": "FAILED"}))
                .unwrap()
                .status,
            HookStatus::Failed
        );
    }

    #[test]
    fn answers_outside_the_contract_say_what_is_wrong() {
        for (answer, needle) in [
            (json!("SUCCEEDED"), "not a JSON object"),
            (json!({"status": "SUCCEEDED"}), "no hookStatus"),
            (json!({"hookStatus": "succeeded"}), "\"succeeded\" is not"),
            (json!({"hookStatus": "DONE"}), "\"DONE\" is not"),
            (json!({"hookStatus": true}), "must be a string"),
            (
                json!({"hookStatus": "IN_PROGRESS", "callBackDelay": -1}),
                "callBackDelay must be whole seconds",
            ),
            (
                json!({"hookStatus": "IN_PROGRESS", "callBackDelay": "30"}),
                "callBackDelay must be whole seconds",
            ),
            (
                json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 1e9}),
                "callBackDelay must be whole seconds",
            ),
            (
                json!({"hookStatus": "SUCCEEDED", "hookDetails": [1]}),
                "hookDetails must be a JSON object",
            ),
        ] {
            let e = parse_answer(&answer).unwrap_err();
            assert!(e.contains(needle), "{answer}: {e}");
        }
    }

    #[test]
    fn the_sample_answers_parse_and_the_invalid_ones_do_not() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/release-hook/answers"
        );
        let read = |path: std::path::PathBuf| -> Value {
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let (mut valid, mut invalid) = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                parse_answer(&read(path.clone())).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                valid += 1;
            }
        }
        for entry in std::fs::read_dir(format!("{dir}/invalid")).unwrap() {
            let path = entry.unwrap().path();
            assert!(parse_answer(&read(path.clone())).is_err(), "{path:?}");
            invalid += 1;
        }
        assert!(
            valid >= 3 && invalid >= 5,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn long_text_is_clipped_on_characters() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("héllo", 5), "héllo");
    }

    #[test]
    fn function_names_and_arns() {
        assert_eq!(check_function("release-hook"), Ok(None));
        assert_eq!(
            check_function("arn:aws:lambda:eu-west-1:123456789012:function:release-hook"),
            Ok(Some("eu-west-1".into()))
        );
        assert_eq!(
            check_function("arn:aws:lambda:eu-west-1:123456789012:function:release-hook:live"),
            Ok(Some("eu-west-1".into()))
        );
        for bad in [
            "",
            "release hook",
            "arn:aws:s3:::bucket",
            "arn:aws:lambda:eu-west-1:1:layer:x",
        ] {
            assert!(check_function(bad).is_err(), "{bad}");
        }
    }
}
