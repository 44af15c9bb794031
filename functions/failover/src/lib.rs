//! failover: alarm-triggered regional failover, fenced so it happens exactly once.
//!
//! - [`decision`]: what to do and why (pure); [`detect`]: is the writer lost or blinking
//!   from here; [`agreement`]: do enough vantage points agree that it is lost (pure);
//!   [`lag`]: which vantage's lag sample speaks for a region (pure).
//! - [`driver`]: the trait; [`aurora`] (RDS global database APIs) and
//!   [`pgstream`] (plain PostgreSQL streaming replication, the local rehearsal).
//! - [`failover`]: observe → decide → lease → move → endpoints → record, notify, announce.
//! - [`reconcile`]: after a failover with loss, the lost rows named and a guarded replay.
//! - [`config`], [`handler`]: settings and events.

pub mod agreement;
pub mod aurora;
pub mod config;
pub mod decision;
pub mod detect;
pub mod driver;
pub mod failover;
pub mod handler;
pub mod lag;
pub mod lost_writes;
pub mod old_primary;
pub mod pgstream;
pub mod reconcile;

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database move failed; STATE stays in progress for the next holder.
    #[error("driver: {0}")]
    Driver(String),
    #[error(transparent)]
    Core(#[from] cutover_core::Error),
    #[error("{0}")]
    Internal(String),
}

impl FailoverError {
    pub fn kind(&self) -> cutover_core::ErrorKind {
        match self {
            FailoverError::InvalidInput(_) => cutover_core::ErrorKind::InvalidInput,
            FailoverError::Driver(_) => cutover_core::ErrorKind::Retryable,
            FailoverError::Core(e) => e.kind(),
            FailoverError::Internal(_) => cutover_core::ErrorKind::Fatal,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), cutover_core::ErrorKind::Retryable)
    }
}

impl From<FailoverError> for lambda_runtime::Diagnostic {
    fn from(err: FailoverError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().as_str().to_string(),
            error_message: err.to_string(),
        }
    }
}
