//! Which lag sample speaks for a region. Every region's lag-probe keeps its own
//! sample of every other region (`LAG#<region>` / `FROM#<vantage>`); they differ
//! by where they were measured from. The heartbeat is timed on the probe's
//! clock from the moment the writer's acknowledgement arrives, and the poll
//! that first shows it is placed at the middle of its round trip (the reader's
//! distance cancels out), so a probe beside the writer measures the lag itself,
//! while a probe elsewhere hears the acknowledgement its one-way distance from
//! the writer late and reads that much less than the lag.
//!
//! So: the fresh sample taken from the writer's own region; without one, the
//! largest fresh sample of any vantage (the least underestimated).
//! A sample counts only when taken no more than the maximum age before the
//! reference moment (the first probe of the writer).

use std::time::Duration;

use cutover_core::state::LagSample;

/// The sample chosen for a region.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub ms: f64,
    /// The heartbeat had not arrived yet: at least `ms`.
    pub lower_bound: bool,
    /// The region the sample was measured from.
    pub vantage: String,
}

/// Chooses among `(vantage, sample)` pairs of one region.
pub fn pick(
    samples: &[(String, LagSample)],
    writer: &str,
    reference_ms: u64,
    max_age: Duration,
) -> Option<Reading> {
    let fresh: Vec<Reading> = samples
        .iter()
        .filter(|(_, s)| reference_ms.saturating_sub(s.taken_at_ms) <= max_age.as_millis() as u64)
        .filter_map(|(vantage, s)| {
            s.heartbeat_ms.map(|ms| Reading {
                ms,
                lower_bound: s.heartbeat_is_lower_bound,
                vantage: vantage.clone(),
            })
        })
        .collect();
    if let Some(beside_writer) = fresh.iter().find(|r| r.vantage == writer) {
        return Some(beside_writer.clone());
    }
    fresh.into_iter().max_by(|a, b| {
        a.ms.total_cmp(&b.ms)
            .then(b.lower_bound.cmp(&a.lower_bound))
            .then(b.vantage.cmp(&a.vantage))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: Duration = Duration::from_secs(10);

    fn sample(vantage: &str, ms: Option<f64>, taken_at_ms: u64) -> (String, LagSample) {
        (
            vantage.to_string(),
            LagSample {
                region: "eu-west-1".into(),
                heartbeat_ms: ms,
                heartbeat_is_lower_bound: false,
                engine_ms: None,
                taken_at_ms,
            },
        )
    }

    #[test]
    fn the_sample_taken_beside_the_writer_speaks_for_the_region() {
        let samples = [
            sample("ap-southeast-1", Some(140.0), 100_000),
            sample("us-east-1", Some(78.0), 100_000),
            sample("eu-west-1", Some(3.0), 100_000),
        ];
        let r = pick(&samples, "us-east-1", 101_000, AGE).unwrap();
        assert_eq!((r.ms, r.vantage.as_str()), (78.0, "us-east-1"));
    }

    #[test]
    fn without_it_the_largest_fresh_sample_is_used() {
        let samples = [
            sample("us-east-1", Some(78.0), 50_000),
            sample("ap-southeast-1", Some(140.0), 100_000),
            sample("eu-west-1", Some(3.0), 100_000),
        ];
        let r = pick(&samples, "us-east-1", 101_000, AGE).unwrap();
        assert_eq!((r.ms, r.vantage.as_str()), (140.0, "ap-southeast-1"));
    }

    #[test]
    fn stale_or_empty_samples_give_nothing() {
        let samples = [
            sample("us-east-1", Some(78.0), 50_000),
            sample("ap-southeast-1", None, 100_000),
        ];
        assert_eq!(pick(&samples, "us-east-1", 101_000, AGE), None);
    }

    #[test]
    fn a_lower_bound_stays_a_lower_bound() {
        let mut s = sample("us-east-1", Some(3500.0), 100_000);
        s.1.heartbeat_is_lower_bound = true;
        let r = pick(&[s], "us-east-1", 100_500, AGE).unwrap();
        assert!(r.lower_bound);
    }
}
