//! The drivers behind one trait: `aurora-global` (RDS global database APIs) and
//! `postgres-streaming` (fence, `pg_promote()`, re-point; the local rehearsal).

use serde::Serialize;

use crate::aurora::AuroraGlobal;
use crate::pgstream::PgStreaming;
use crate::FailoverError;

/// What a secondary looks like to the driver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub region: String,
    pub healthy: bool,
    pub note: Option<String>,
    /// WAL received, when the driver can tell.
    pub position: Option<u64>,
}

/// What the driver did, for the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DriverReport {
    pub steps: Vec<String>,
    /// When the target started accepting writes (ms since the epoch), if known.
    pub promoted_at_ms: Option<u64>,
}

#[allow(async_fn_in_trait)]
pub trait Driver {
    fn name(&self) -> &'static str;
    /// The secondaries' health (and received WAL, where known).
    async fn secondaries(&self, primary: &str, regions: &[String]) -> Vec<Health>;
    /// Planned: fence `from`, let `to` catch up, promote `to`, re-point the rest.
    async fn switchover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
    ) -> Result<DriverReport, FailoverError>;
    /// Unplanned: promote `to` (accepting the loss), re-point the rest.
    async fn failover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
    ) -> Result<DriverReport, FailoverError>;
}

/// The configured driver.
pub enum AnyDriver {
    Aurora(AuroraGlobal),
    Postgres(PgStreaming),
}

impl Driver for AnyDriver {
    fn name(&self) -> &'static str {
        match self {
            AnyDriver::Aurora(d) => d.name(),
            AnyDriver::Postgres(d) => d.name(),
        }
    }
    async fn secondaries(&self, primary: &str, regions: &[String]) -> Vec<Health> {
        match self {
            AnyDriver::Aurora(d) => d.secondaries(primary, regions).await,
            AnyDriver::Postgres(d) => d.secondaries(primary, regions).await,
        }
    }
    async fn switchover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
    ) -> Result<DriverReport, FailoverError> {
        match self {
            AnyDriver::Aurora(d) => d.switchover(from, to, regions).await,
            AnyDriver::Postgres(d) => d.switchover(from, to, regions).await,
        }
    }
    async fn failover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
    ) -> Result<DriverReport, FailoverError> {
        match self {
            AnyDriver::Aurora(d) => d.failover(from, to, regions).await,
            AnyDriver::Postgres(d) => d.failover(from, to, regions).await,
        }
    }
}
