//! The drivers behind one trait: `aurora-global` (RDS global database APIs) and
//! `postgres-streaming` (fence, `pg_promote()`, re-point; the local rehearsal).
//!
//! Every driver step is safe to repeat: a driver first reads the world (who
//! writes now, is a move in flight) and skips what is done, and it asks the
//! [`Fence`] before every side effect, so a holder whose lease was taken over
//! stops before it changes anything.

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
    /// It did not answer within the probe timeout (slow, not known to be down):
    /// worth asking again before the decision goes without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

/// What the driver did, for the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DriverReport {
    pub steps: Vec<String>,
    /// When the target started accepting writes (ms since the epoch), if this run saw it happen.
    pub promoted_at_ms: Option<u64>,
}

/// The side effects of a move, in order; the lease is checked before each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// postgres-streaming: make the old primary read-only.
    Fence,
    /// aurora-global: `SwitchoverGlobalCluster` / `FailoverGlobalCluster`.
    Move,
    /// Waiting for the move to finish (the lease is renewed at every poll).
    Wait,
    /// postgres-streaming: `pg_promote()` the target.
    Promote,
    /// postgres-streaming: point the other standbys at the new primary.
    Repoint,
    /// SSM `writer-endpoint` ← the target's writer endpoint.
    Endpoint,
    /// SSM `active-region` ← the target region.
    ActiveRegion,
    /// `FAILOVER` / `STATE` completed.
    Record,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Step::Fence => "fence",
            Step::Move => "move",
            Step::Wait => "wait",
            Step::Promote => "promote",
            Step::Repoint => "repoint",
            Step::Endpoint => "endpoint",
            Step::ActiveRegion => "active-region",
            Step::Record => "record",
        };
        f.write_str(name)
    }
}

/// The proof that this invocation may still act: the failover lease at its epoch.
#[allow(async_fn_in_trait)]
pub trait Fence {
    /// Before a side effect: fails unless the lease is still ours at our epoch
    /// (and extends it).
    async fn check(&self, next: Step) -> Result<(), FailoverError>;
    /// While waiting: extends the lease once a good part of it has passed; fails
    /// if it was lost.
    async fn keep_alive(&self) -> Result<(), FailoverError>;
}

#[allow(async_fn_in_trait)]
pub trait Driver {
    fn name(&self) -> &'static str;
    /// The secondaries' health (and received WAL, where known).
    async fn secondaries(&self, primary: &str, regions: &[String]) -> Vec<Health>;
    /// Planned: fence `from`, let `to` catch up, promote `to`, re-point the rest.
    /// Skips what the world shows done.
    async fn switchover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError>;
    /// Unplanned: promote `to` (accepting the loss), re-point the rest.
    /// Skips what the world shows done.
    async fn failover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError>;
    /// The endpoint (`host:port`) that takes writes in `region` once it is the
    /// primary: what SSM `writer-endpoint` is set to after a move.
    async fn writer_endpoint(&self, region: &str) -> Result<String, FailoverError>;
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
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError> {
        match self {
            AnyDriver::Aurora(d) => d.switchover(from, to, regions, fence).await,
            AnyDriver::Postgres(d) => d.switchover(from, to, regions, fence).await,
        }
    }
    async fn failover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError> {
        match self {
            AnyDriver::Aurora(d) => d.failover(from, to, regions, fence).await,
            AnyDriver::Postgres(d) => d.failover(from, to, regions, fence).await,
        }
    }
    async fn writer_endpoint(&self, region: &str) -> Result<String, FailoverError> {
        match self {
            AnyDriver::Aurora(d) => d.writer_endpoint(region).await,
            AnyDriver::Postgres(d) => d.writer_endpoint(region).await,
        }
    }
}

/// A fence for driver tests: records every check and loses the lease at a chosen step.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Mutex;

    use super::{Fence, Step};
    use crate::FailoverError;

    #[derive(Default)]
    pub(crate) struct Recording {
        pub checks: Mutex<Vec<Step>>,
        pub lose_at: Option<Step>,
    }

    impl Recording {
        pub(crate) fn losing_at(step: Step) -> Self {
            Recording {
                lose_at: Some(step),
                ..Default::default()
            }
        }
        pub(crate) fn checks(&self) -> Vec<Step> {
            self.checks.lock().map(|c| c.clone()).unwrap_or_default()
        }
    }

    impl Fence for Recording {
        async fn check(&self, next: Step) -> Result<(), FailoverError> {
            if let Ok(mut c) = self.checks.lock() {
                c.push(next);
            }
            if self.lose_at == Some(next) {
                return Err(FailoverError::Core(cutover_core::Error::Fenced(format!(
                    "the lease was taken over before {next}"
                ))));
            }
            Ok(())
        }
        async fn keep_alive(&self) -> Result<(), FailoverError> {
            Ok(())
        }
    }
}
