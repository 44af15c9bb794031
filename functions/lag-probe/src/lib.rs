#![recursion_limit = "256"]
//! lag-probe: replication lag per region at one-second resolution, on one clock.
//!
//! - [`poll`]: polls → samples with their resolution; when to poll next (pure).
//! - [`probe`]: one window: heartbeat writer, one watcher per secondary, collector.
//! - [`engine`]: what Aurora or PostgreSQL itself reports.
//! - [`stats`]: p50 / p99 / max.
//! - [`config`], [`handler`]: settings and the Lambda's events.

pub mod config;
pub mod engine;
pub mod handler;
pub mod poll;
pub mod probe;
pub mod stats;

#[derive(Debug, thiserror::Error)]
pub enum LagError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The heartbeat table is missing and this user may not create it.
    #[error("{0}")]
    HeartbeatTable(String),
    #[error(transparent)]
    Core(#[from] cutover_core::Error),
    #[error("{0}")]
    Internal(String),
}

impl LagError {
    pub fn kind(&self) -> cutover_core::ErrorKind {
        match self {
            LagError::InvalidInput(_) => cutover_core::ErrorKind::InvalidInput,
            LagError::HeartbeatTable(_) | LagError::Internal(_) => cutover_core::ErrorKind::Fatal,
            LagError::Core(e) => e.kind(),
        }
    }
}

impl From<LagError> for lambda_runtime::Diagnostic {
    fn from(err: LagError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().as_str().to_string(),
            error_message: err.to_string(),
        }
    }
}
