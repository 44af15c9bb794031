//! From polls to lag samples, and when to poll next. Pure logic on the probe's
//! monotonic clock; the I/O around it lives in [`crate::probe`].
//!
//! A heartbeat `n` is acknowledged by the primary at `acked`. A reader is polled
//! for the highest sequence number it shows. The heartbeat became visible on the
//! reader somewhere between the last poll that did not show it and the first
//! poll that did; each poll is placed at the midpoint of its send and receive
//! times. The sample is the middle of that interval, and its *resolution* is the
//! interval's width, so every figure says how exact it is.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One acknowledged heartbeat write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heartbeat {
    pub seq: i64,
    /// When the commit's acknowledgement reached the probe (monotonic).
    pub acked: Instant,
    /// The same moment on the wall clock, for timestamps in metrics and reports.
    pub acked_wall_ms: u64,
}

/// One completed poll of a reader.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    pub sent: Instant,
    pub received: Instant,
    /// The highest heartbeat sequence number the reader showed (0: none yet).
    pub seen: i64,
}

impl Observation {
    pub fn mid(&self) -> Instant {
        self.sent + (self.received - self.sent) / 2
    }
}

/// A heartbeat measured on one reader.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub seq: i64,
    pub acked_wall_ms: u64,
    /// Lag in milliseconds: the middle of the interval in which it became visible.
    pub lag_ms: f64,
    /// Width of that interval in milliseconds (the sample is exact to ± half of it).
    pub resolution_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Matches observations of one reader to the heartbeats still waiting to be seen.
#[derive(Debug, Default)]
pub struct Resolver {
    pending: VecDeque<Heartbeat>,
    /// Midpoint of the last completed poll, and what it showed.
    last: Option<(Instant, i64)>,
}

impl Resolver {
    pub fn push(&mut self, heartbeat: Heartbeat) {
        self.pending.push_back(heartbeat);
    }

    /// The oldest heartbeat not yet seen.
    pub fn front(&self) -> Option<&Heartbeat> {
        self.pending.front()
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes a completed poll (polls complete in the order they were sent) and
    /// returns the heartbeats it proves visible.
    pub fn observe(&mut self, obs: Observation) -> Vec<Measured> {
        let mid = obs.mid();
        let mut out = Vec::new();
        while let Some(hb) = self.pending.front().copied() {
            if hb.seq > obs.seen {
                break;
            }
            self.pending.pop_front();
            // Not visible at the previous poll (it showed less than this seq), visible now.
            let lower = match self.last {
                Some((prev_mid, prev_seen)) if prev_seen < hb.seq && prev_mid > hb.acked => {
                    prev_mid
                }
                _ => hb.acked,
            };
            let upper = mid.max(hb.acked);
            let lower = lower.min(upper);
            let lo = ms(lower - hb.acked);
            let hi = ms(upper - hb.acked);
            out.push(Measured {
                seq: hb.seq,
                acked_wall_ms: hb.acked_wall_ms,
                lag_ms: (lo + hi) / 2.0,
                resolution_ms: hi - lo,
            });
        }
        self.last = Some((mid, obs.seen));
        out
    }

    /// Gives up on every pending heartbeat (the reader is unreachable, or the
    /// window is over); returns them with how long each has been waiting.
    pub fn abandon(&mut self, now: Instant) -> Vec<(Heartbeat, f64)> {
        self.last = None;
        self.pending
            .drain(..)
            .map(|hb| (hb, ms(now.saturating_duration_since(hb.acked))))
            .collect()
    }
}

/// How densely to poll: sparse while a heartbeat cannot be visible yet, dense
/// around the moment it is expected, and never coarser than `max_step`.
#[derive(Debug, Clone, Copy)]
pub struct PollPlan {
    /// Densest polling, right when a heartbeat is expected.
    pub min_step: Duration,
    /// Coarsest polling once a heartbeat is overdue; bounds the resolution.
    pub max_step: Duration,
}

impl Default for PollPlan {
    fn default() -> Self {
        PollPlan {
            min_step: Duration::from_millis(2),
            max_step: Duration::from_millis(8),
        }
    }
}

impl PollPlan {
    /// Margin before the expected visibility at which dense polling starts.
    pub fn guard(expected_ms: f64) -> Duration {
        Duration::from_secs_f64((expected_ms * 0.10).max(20.0) / 1000.0)
    }

    /// When dense polling for `heartbeat` starts, given the lag expected from
    /// recent samples (none: start at once).
    pub fn first_poll(&self, heartbeat: &Heartbeat, expected_ms: Option<f64>) -> Instant {
        match expected_ms {
            Some(e) => {
                let wait =
                    Duration::from_secs_f64(e.max(0.0) / 1000.0).saturating_sub(Self::guard(e));
                heartbeat.acked + wait
            }
            None => heartbeat.acked,
        }
    }

    /// When to poll next after a poll launched at `now`, for a heartbeat acked at
    /// `acked` whose dense polling starts at `dense_from`. Before that, a few
    /// sparse polls (at most 8 per heartbeat) still bound the sample if the lag
    /// dropped below the expectation; from then on, [`PollPlan::step`].
    pub fn next_after(&self, now: Instant, acked: Instant, dense_from: Instant) -> Instant {
        if now < dense_from {
            let sparse = (dense_from.saturating_duration_since(acked) / 8).max(self.max_step);
            (now + sparse).min(dense_from)
        } else {
            now + self.step(now - dense_from)
        }
    }

    /// The first poll for a heartbeat whose dense polling starts at `dense_from`.
    pub fn first_after_ack(&self, acked: Instant, dense_from: Instant) -> Instant {
        if dense_from <= acked {
            acked
        } else {
            self.next_after(acked, acked, dense_from)
        }
    }

    /// The gap after a poll, `dense_for` after dense polling started: it widens
    /// from `min_step` to `max_step` as the heartbeat becomes overdue, so a
    /// stalled reader is polled at most every `max_step`.
    pub fn step(&self, dense_for: Duration) -> Duration {
        (dense_for / 8).clamp(self.min_step, self.max_step)
    }
}

/// The lag to expect next on one reader: the smaller of the last sample and the
/// median of the last few, so polling follows a drop at once and a spike only
/// when it lasts.
#[derive(Debug, Default)]
pub struct Expectation {
    recent: VecDeque<f64>,
}

impl Expectation {
    const KEEP: usize = 5;

    pub fn record(&mut self, lag_ms: f64) {
        if self.recent.len() == Self::KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(lag_ms);
    }

    pub fn forget(&mut self) {
        self.recent.clear();
    }

    pub fn expected_ms(&self) -> Option<f64> {
        let last = *self.recent.back()?;
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        Some(last.min(sorted[sorted.len() / 2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn hb(base: Instant, seq: i64, ms: u64) -> Heartbeat {
        Heartbeat {
            seq,
            acked: at(base, ms),
            acked_wall_ms: 1_000_000 + ms,
        }
    }

    fn obs(base: Instant, sent: u64, received: u64, seen: i64) -> Observation {
        Observation {
            sent: at(base, sent),
            received: at(base, received),
            seen,
        }
    }

    #[test]
    fn a_sample_is_the_middle_of_the_last_miss_and_the_first_hit() {
        let t = Instant::now();
        let mut r = Resolver::default();
        r.push(hb(t, 1, 0));
        assert!(r.observe(obs(t, 70, 72, 0)).is_empty()); // mid 71: not yet
        assert!(r.observe(obs(t, 74, 76, 0)).is_empty()); // mid 75: not yet
        let got = r.observe(obs(t, 78, 80, 1)); // mid 79: visible
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].seq, 1);
        assert!((got[0].lag_ms - 77.0).abs() < 1e-9, "{got:?}");
        assert!((got[0].resolution_ms - 4.0).abs() < 1e-9);
        assert!(r.is_idle());
    }

    #[test]
    fn a_hit_without_a_miss_after_the_ack_is_bounded_by_the_ack() {
        let t = Instant::now();
        let mut r = Resolver::default();
        r.push(hb(t, 5, 100));
        // The previous poll was before the ack: it proves nothing about seq 5.
        r.observe(obs(t, 90, 92, 4));
        let got = r.observe(obs(t, 130, 130, 5));
        assert!((got[0].lag_ms - 15.0).abs() < 1e-9, "{got:?}");
        assert!((got[0].resolution_ms - 30.0).abs() < 1e-9);
    }

    #[test]
    fn visible_before_the_ack_arrived_is_zero_lag() {
        let t = Instant::now();
        let mut r = Resolver::default();
        r.push(hb(t, 2, 50));
        let got = r.observe(obs(t, 40, 44, 2));
        assert_eq!(got[0].lag_ms, 0.0);
        assert_eq!(got[0].resolution_ms, 0.0);
    }

    #[test]
    fn one_hit_can_settle_several_heartbeats_in_order() {
        let t = Instant::now();
        let mut r = Resolver::default();
        for (seq, ack) in [(1, 0), (2, 1000), (3, 2000)] {
            r.push(hb(t, seq, ack));
        }
        r.observe(obs(t, 2100, 2100, 0));
        let got = r.observe(obs(t, 2110, 2110, 2));
        assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!((got[0].lag_ms - 2105.0).abs() < 1e-9);
        assert!((got[1].lag_ms - 1105.0).abs() < 1e-9);
        assert_eq!(r.front().map(|h| h.seq), Some(3));
        let left = r.abandon(at(t, 2500));
        assert_eq!(left.len(), 1);
        assert!((left[0].1 - 500.0).abs() < 1e-9);
        assert!(r.is_idle());
    }

    #[test]
    fn dense_polling_starts_a_guard_before_the_expected_lag() {
        let t = Instant::now();
        let plan = PollPlan::default();
        let h = hb(t, 1, 0);
        assert_eq!(plan.first_poll(&h, None), h.acked);
        // 75 ms expected: guard 20 ms.
        assert_eq!(plan.first_poll(&h, Some(75.0)), at(t, 55));
        // 2 s expected: guard 10 % = 200 ms.
        assert_eq!(plan.first_poll(&h, Some(2000.0)), at(t, 1800));
        // Tiny lag: no negative wait.
        assert_eq!(plan.first_poll(&h, Some(3.0)), h.acked);
    }

    #[test]
    fn sparse_polls_before_the_dense_phase_bound_an_overshoot() {
        let t = Instant::now();
        let plan = PollPlan::default();
        let dense = at(t, 1800);
        // 1800 ms of waiting: sparse polls every 225 ms, the last one exactly at the dense start.
        assert_eq!(plan.first_after_ack(t, dense), at(t, 225));
        assert_eq!(plan.next_after(at(t, 1700), t, dense), dense);
        // A short wait is still polled at least every max_step.
        assert_eq!(plan.first_after_ack(t, at(t, 40)), at(t, 8));
        // No wait: at once; dense phase: the widening step.
        assert_eq!(plan.first_after_ack(t, t), t);
        assert_eq!(plan.next_after(at(t, 1800), t, dense), at(t, 1802));
    }

    #[test]
    fn the_step_widens_but_never_beyond_the_resolution_bound() {
        let plan = PollPlan::default();
        assert_eq!(plan.step(Duration::ZERO), Duration::from_millis(2));
        assert_eq!(
            plan.step(Duration::from_millis(40)),
            Duration::from_millis(5)
        );
        assert_eq!(plan.step(Duration::from_secs(3)), Duration::from_millis(8));
    }

    #[test]
    fn the_expectation_follows_drops_at_once_and_spikes_only_when_they_last() {
        let mut e = Expectation::default();
        assert_eq!(e.expected_ms(), None);
        for v in [250.0, 251.0, 249.0] {
            e.record(v);
        }
        assert_eq!(e.expected_ms(), Some(249.0));
        e.record(3000.0); // a spike: median holds
        assert_eq!(e.expected_ms(), Some(251.0));
        e.record(10.0); // a drop: followed at once
        assert_eq!(e.expected_ms(), Some(10.0));
        e.forget();
        assert_eq!(e.expected_ms(), None);
    }
}
