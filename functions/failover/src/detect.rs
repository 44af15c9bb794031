//! Is the writer lost, or only blinking? A writer is declared lost only when
//! every probe over a grace period failed: an in-region restart or a reboot of
//! up to 20 s answers again within the default 22 s and moves nothing across
//! regions. A probe error or a timeout counts as a failure, never as silence.
//!
//! The grace period counts from the first failure seen **in this region**: when
//! this region's lag-probe has already recorded the writer failing (a streak it
//! is still in, its record fresh), that span is credited and the probes here only
//! watch the rest. The alarm that started the run is late by its own evaluation;
//! the outage is not longer for it. Any probe that answers still ends it as a blip.
//!
//! The clock is a trait so the tests run the grace period without waiting for it.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Time as the detector sees it.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Time since the detector started.
    fn elapsed(&self) -> Duration;
    async fn sleep(&self, d: Duration);
}

/// The wall clock.
pub struct RealClock(Instant);

impl RealClock {
    pub fn start() -> Self {
        RealClock(Instant::now())
    }
}

impl Clock for RealClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// What the probes said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The writer answered (at once, or within the grace period).
    pub reachable: bool,
    pub probes: u32,
    pub failures: u32,
    /// How long the writer was watched, in ms.
    pub watched_ms: u64,
    pub last_error: Option<String>,
    /// Failures this region's lag-probe had recorded before the first probe here
    /// (the span of its streak, in ms), counted towards the grace period.
    #[serde(skip_serializing_if = "is_zero")]
    pub credited_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Verdict {
    /// One line for the decision's reasons.
    pub fn describe(&self) -> String {
        match (self.reachable, self.failures) {
            (true, 0) => "it answered the first probe".to_string(),
            (true, n) => format!(
                "it answered again after {n} failed probe(s) over {} ms (a blip, not an outage{})",
                self.watched_ms,
                self.last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ),
            (false, n) => format!(
                "all {n} probes over {} ms failed{}{}",
                self.watched_ms,
                if self.credited_ms > 0 {
                    format!(
                        ", after {} ms of failures this region's lag-probe had recorded",
                        self.credited_ms
                    )
                } else {
                    String::new()
                },
                self.last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Probes the writer until it answers or `grace` has passed since the first
/// failure seen here (`credited` before the first probe), one probe every `every`.
pub async fn watch<F, Fut>(
    mut probe: F,
    clock: &impl Clock,
    grace: Duration,
    credited: Duration,
    every: Duration,
) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let credited = credited.min(grace);
    let credited_ms = credited.as_millis() as u64;
    let grace = grace - credited;
    let mut probes = 0;
    let mut failures = 0;
    let mut last_error = None;
    loop {
        probes += 1;
        let answered = probe().await;
        let watched_ms = clock.elapsed().as_millis() as u64;
        match answered {
            Ok(()) => {
                return Verdict {
                    reachable: true,
                    probes,
                    failures,
                    watched_ms,
                    last_error,
                    credited_ms,
                }
            }
            Err(e) => {
                failures += 1;
                last_error = Some(e);
            }
        }
        let elapsed = clock.elapsed();
        if elapsed >= grace {
            return Verdict {
                reachable: false,
                probes,
                failures,
                watched_ms,
                last_error,
                credited_ms,
            };
        }
        clock.sleep(every.min(grace - elapsed)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock that moves only when slept on, plus what each probe takes.
    struct Manual {
        now: Cell<Duration>,
    }

    impl Manual {
        fn new() -> Self {
            Manual {
                now: Cell::new(Duration::ZERO),
            }
        }
        fn advance(&self, d: Duration) {
            self.now.set(self.now.get() + d);
        }
    }

    impl Clock for Manual {
        fn elapsed(&self) -> Duration {
            self.now.get()
        }
        async fn sleep(&self, d: Duration) {
            self.advance(d);
        }
    }

    const GRACE: Duration = Duration::from_secs(22);
    const EVERY: Duration = Duration::from_secs(2);

    /// A writer that is down from `down_from` to `up_again` (seconds on the clock);
    /// every probe takes `probe_takes`.
    async fn run(clock: &Manual, down: std::ops::Range<u64>, probe_takes: Duration) -> Verdict {
        watch(
            || {
                let at = clock.elapsed();
                clock.advance(probe_takes);
                let down = down.contains(&at.as_secs());
                async move {
                    if down {
                        Err("connection refused".to_string())
                    } else {
                        Ok(())
                    }
                }
            },
            clock,
            GRACE,
            Duration::ZERO,
            EVERY,
        )
        .await
    }

    #[tokio::test]
    async fn a_writer_that_answers_is_reachable_at_once() {
        let clock = Manual::new();
        let v = run(&clock, 100..200, Duration::from_millis(3)).await;
        assert!(v.reachable);
        assert_eq!((v.probes, v.failures), (1, 0));
        assert_eq!(clock.elapsed(), Duration::from_millis(3), "no waiting");
    }

    #[tokio::test]
    async fn a_twenty_second_restart_is_a_blip_not_an_outage() {
        let clock = Manual::new();
        let v = run(&clock, 0..20, Duration::from_millis(3)).await;
        assert!(v.reachable, "{v:?}");
        assert!(v.failures >= 10, "{v:?}");
        assert!(v.describe().contains("a blip"), "{}", v.describe());
        assert!(clock.elapsed() < GRACE);
    }

    #[tokio::test]
    async fn a_writer_silent_for_the_whole_grace_period_is_lost() {
        let clock = Manual::new();
        let v = run(&clock, 0..1000, Duration::from_millis(3)).await;
        assert!(!v.reachable);
        assert_eq!(v.probes, v.failures);
        assert!(clock.elapsed() >= GRACE, "{:?}", clock.elapsed());
        assert!(clock.elapsed() < GRACE + EVERY, "{:?}", clock.elapsed());
        assert!(
            v.describe().contains("connection refused"),
            "{}",
            v.describe()
        );
    }

    #[tokio::test]
    async fn probes_that_hang_until_their_timeout_count_as_failures() {
        // Each probe eats its whole 2 s timeout and errs: still a failure, still
        // declared lost only after the grace period.
        let clock = Manual::new();
        let v = watch(
            || {
                clock.advance(Duration::from_secs(2));
                async { Err("no answer within 2000 ms".to_string()) }
            },
            &clock,
            GRACE,
            Duration::ZERO,
            EVERY,
        )
        .await;
        assert!(!v.reachable);
        assert!(v.watched_ms >= 22_000, "{v:?}");
    }

    /// The writer's region lost: this region's lag-probe has seen it failing for
    /// 15 s when the alarm's run starts; the probes here watch the other 7 s only.
    #[tokio::test]
    async fn a_streak_this_region_already_saw_counts_towards_the_grace_period() {
        let clock = Manual::new();
        let v = watch(
            || {
                clock.advance(Duration::from_millis(3));
                async { Err("connection refused".to_string()) }
            },
            &clock,
            GRACE,
            Duration::from_secs(15),
            EVERY,
        )
        .await;
        assert!(!v.reachable);
        assert_eq!(v.credited_ms, 15_000);
        assert!(
            clock.elapsed() >= Duration::from_secs(7),
            "{:?}",
            clock.elapsed()
        );
        assert!(
            clock.elapsed() < Duration::from_secs(9),
            "{:?}",
            clock.elapsed()
        );
        assert!(
            v.describe().contains("after 15000 ms of failures"),
            "{}",
            v.describe()
        );
    }

    /// A restart that this region's lag-probe saw begin 15 s ago and that ends 5 s
    /// into the probes here is still a blip: the credit never outvotes an answer.
    #[tokio::test]
    async fn an_answer_after_a_credited_streak_is_still_a_blip() {
        let clock = Manual::new();
        let v = watch(
            || {
                let at = clock.elapsed();
                clock.advance(Duration::from_millis(3));
                async move {
                    if at < Duration::from_secs(5) {
                        Err("connection refused".to_string())
                    } else {
                        Ok(())
                    }
                }
            },
            &clock,
            GRACE,
            Duration::from_secs(15),
            EVERY,
        )
        .await;
        assert!(v.reachable, "{v:?}");
        assert!(v.describe().contains("a blip"), "{}", v.describe());
    }
}
