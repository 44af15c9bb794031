//! What every function's `main.rs` needs from the Lambda context.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
