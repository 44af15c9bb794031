//! Percentiles of a region's samples.

use serde::Serialize;

/// Nearest-rank percentile of `values` (need not be sorted); `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50 / p99 / max of a set of lag samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Summary {
    pub samples: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Summary {
    pub fn of(values: &[f64]) -> Self {
        Summary {
            samples: values.len(),
            p50_ms: percentile(values, 50.0).map(round2),
            p99_ms: percentile(values, 99.0).map(round2),
            max_ms: values.iter().copied().reduce(f64::max).map(round2),
        }
    }
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_of_nothing_is_empty() {
        let s = Summary::of(&[]);
        assert_eq!(s.samples, 0);
        assert_eq!(s.p50_ms, None);
        let s = Summary::of(&[1.234, 5.678, 3.0]);
        assert_eq!(s.p50_ms, Some(3.0));
        assert_eq!(s.max_ms, Some(5.68));
    }
}
