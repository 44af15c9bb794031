//! What every function's `main.rs` needs from the Lambda runtime: the
//! invocation loop with its logging span, and the deadline.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

/// What a handler learns about its invocation besides the event.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// See [`deadline`].
    pub deadline: Option<Instant>,
}

/// The Lambda loop every function runs: each invocation is logged in a span
/// with its request id and command (`fallback` when the event has no
/// `command`, i.e. a schedule or an alarm), and its result or error goes back
/// to the runtime (errors as their `errorType`).
pub async fn serve<H, Fut, R, E>(fallback: &str, handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value, Invocation) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: serde::Serialize,
    E: Into<Diagnostic>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let command = event
            .payload
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or(fallback);
        let span = crate::logging::invocation_span(&event.context.request_id, command);
        let invocation = Invocation {
            request_id: event.context.request_id.clone(),
            deadline: deadline(&event.context),
        };
        let result = handler(event.payload, invocation).instrument(span).await;
        match result {
            Ok(out) => serde_json::to_value(out).map_err(|e| Diagnostic {
                error_type: "Internal".into(),
                error_message: format!("the result could not be written as JSON: {e}"),
            }),
            Err(e) => Err(e.into()),
        }
    }))
    .await
}

/// The invocation's deadline (wall clock, from the context) on this process's
/// monotonic clock; `None` when it has already passed.
pub fn deadline(context: &lambda_runtime::Context) -> Option<Instant> {
    deadline_from(context.deadline, SystemTime::now())
}

fn deadline_from(deadline_ms: u64, now: SystemTime) -> Option<Instant> {
    let now_ms = now.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    let left = deadline_ms.checked_sub(now_ms)?;
    Some(Instant::now() + Duration::from_millis(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_deadline_maps_to_the_monotonic_clock_and_a_past_one_to_none() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_000);
        let d = deadline_from(1_060_000, now).unwrap();
        let left = d.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(60) && left > Duration::from_secs(59),
            "{left:?}"
        );
        assert!(deadline_from(999_999, now).is_none());
    }
}
