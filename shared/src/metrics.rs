//! CloudWatch metrics, batched within the `PutMetricData` limits.
//!
//! One request carries at most 1,000 metric data points and 1 MB of payload,
//! each point at most 30 dimensions. High-resolution points
//! (`StorageResolution = 1`) are what make one-second lag visible.

use std::time::SystemTime;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use crate::error::{Error, Result};

/// Data points per `PutMetricData` call (the API's limit).
pub const MAX_POINTS_PER_CALL: usize = 1000;
/// Payload per call; kept well under the API's 1 MB for the query encoding's overhead.
pub const MAX_BYTES_PER_CALL: usize = 800 * 1024;
pub const MAX_DIMENSIONS: usize = 30;

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: StandardUnit,
    pub dimensions: Vec<(String, String)>,
    pub timestamp: SystemTime,
    /// `StorageResolution = 1` (per-second) instead of the standard 60.
    pub high_resolution: bool,
}

impl Metric {
    pub fn new(name: impl Into<String>, value: f64, unit: StandardUnit) -> Self {
        Metric {
            name: name.into(),
            value,
            unit,
            dimensions: Vec::new(),
            timestamp: SystemTime::now(),
            high_resolution: false,
        }
    }

    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    pub fn at(mut self, timestamp: SystemTime) -> Self {
        self.timestamp = timestamp;
        self
    }

    pub fn high_resolution(mut self) -> Self {
        self.high_resolution = true;
        self
    }

    /// A generous estimate of the point's size on the wire.
    fn encoded_size(&self) -> usize {
        let dims: usize = self
            .dimensions
            .iter()
            .map(|(k, v)| 80 + k.len() * 3 + v.len() * 3)
            .sum();
        200 + self.name.len() * 3 + dims
    }

    fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.len() > 255 {
            return Err(Error::invalid(format!(
                "metric name {:?} must be 1 to 255 characters",
                self.name
            )));
        }
        if !self.value.is_finite() {
            return Err(Error::invalid(format!(
                "metric {} has the value {}, which CloudWatch does not accept",
                self.name, self.value
            )));
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(Error::invalid(format!(
                "metric {} has {} dimensions; CloudWatch allows {MAX_DIMENSIONS}",
                self.name,
                self.dimensions.len()
            )));
        }
        Ok(())
    }

    fn to_datum(&self) -> Result<MetricDatum> {
        let mut datum = MetricDatum::builder()
            .metric_name(&self.name)
            .value(self.value)
            .unit(self.unit.clone())
            .timestamp(DateTime::from(self.timestamp))
            .storage_resolution(if self.high_resolution { 1 } else { 60 });
        for (name, value) in &self.dimensions {
            datum = datum.dimensions(Dimension::builder().name(name).value(value).build());
        }
        Ok(datum.build())
    }
}

/// Splits points into request-sized batches, keeping their order.
pub fn batches(points: &[Metric]) -> Vec<&[Metric]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, point) in points.iter().enumerate() {
        let size = point.encoded_size();
        let count = i - start;
        if count > 0 && (count == MAX_POINTS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
            out.push(&points[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < points.len() {
        out.push(&points[start..]);
    }
    out
}

#[derive(Clone, Debug)]
pub struct MetricsPublisher {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl MetricsPublisher {
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: impl Into<String>) -> Self {
        MetricsPublisher {
            client,
            namespace: namespace.into(),
        }
    }

    /// Publishes every point, in as few calls as the limits allow; returns the
    /// number of calls made. Invalid points are refused before anything is sent.
    pub async fn publish(&self, points: &[Metric]) -> Result<usize> {
        for point in points {
            point.validate()?;
        }
        let batches = batches(points);
        for batch in &batches {
            let data = batch
                .iter()
                .map(Metric::to_datum)
                .collect::<Result<Vec<_>>>()?;
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map_err(|e| Error::aws("CloudWatch", "PutMetricData", e))?;
        }
        Ok(batches.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: usize) -> Metric {
        Metric::new("ReplicationLagMs", i as f64, StandardUnit::Milliseconds)
            .dimension("Region", "eu-west-1")
            .high_resolution()
    }

    #[test]
    fn small_sets_go_in_one_call() {
        let points: Vec<Metric> = (0..60).map(point).collect();
        let b = batches(&points);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].len(), 60);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn batches_respect_the_point_limit_and_keep_order() {
        let points: Vec<Metric> = (0..2501).map(point).collect();
        let b = batches(&points);
        assert_eq!(
            b.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [1000, 1000, 501]
        );
        let flat: Vec<f64> = b.iter().flat_map(|b| b.iter().map(|m| m.value)).collect();
        assert_eq!(flat, (0..2501).map(|i| i as f64).collect::<Vec<_>>());
    }

    #[test]
    fn batches_respect_the_byte_limit() {
        let fat = |i: usize| {
            let mut m = point(i);
            for d in 0..MAX_DIMENSIONS - 1 {
                m = m.dimension(format!("Dimension{d}"), "v".repeat(250));
            }
            m
        };
        let points: Vec<Metric> = (0..500).map(fat).collect();
        let b = batches(&points);
        assert!(b.len() > 1);
        for batch in &b {
            let bytes: usize = batch.iter().map(Metric::encoded_size).sum();
            assert!(bytes <= MAX_BYTES_PER_CALL);
        }
        assert_eq!(b.iter().map(|b| b.len()).sum::<usize>(), 500);
    }

    #[test]
    fn invalid_points_are_named() {
        let err = Metric::new("Lag", f64::NAN, StandardUnit::Milliseconds)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("Lag"));
        let mut many = point(0);
        for d in 0..MAX_DIMENSIONS {
            many = many.dimension(format!("d{d}"), "v");
        }
        assert!(many
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dimensions"));
    }

    #[test]
    fn high_resolution_sets_storage_resolution_one() {
        let datum = point(3).to_datum().unwrap();
        assert_eq!(datum.storage_resolution(), Some(1));
        let standard = Metric::new("RowsCompared", 1.0, StandardUnit::Count)
            .to_datum()
            .unwrap();
        assert_eq!(standard.storage_resolution(), Some(60));
    }
}
