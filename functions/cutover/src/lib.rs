//! cutover: the migration's phase controller.
//!
//! - [`machine`]: which transitions exist and what each must prove (pure).
//! - [`gates`]: the evidence a gate reads (validation runs, replication) and its verdict.
//! - [`postgres`]: freeze, drain, sequences and reverse replication on PostgreSQL
//!   (the local source, and Aurora as the target).
//! - [`oracle`]: the same steps for an Oracle source with DMS, as SQL and conditions.
//! - [`controller`]: status / advance / rollback / dry-run, under the lease, audited.
//! - [`config`], [`handler`]: settings and events.

pub mod config;
pub mod controller;
pub mod gates;
pub mod handler;
pub mod machine;
pub mod oracle;
pub mod postgres;

#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A database step failed; the phase did not move and the step can be run again.
    #[error("{0}")]
    Step(String),
    #[error(transparent)]
    Core(#[from] cutover_core::Error),
}

impl CutoverError {
    pub fn kind(&self) -> cutover_core::ErrorKind {
        match self {
            CutoverError::InvalidInput(_) => cutover_core::ErrorKind::InvalidInput,
            CutoverError::Step(_) => cutover_core::ErrorKind::Retryable,
            CutoverError::Core(e) => e.kind(),
        }
    }
}

impl From<CutoverError> for lambda_runtime::Diagnostic {
    fn from(err: CutoverError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().as_str().to_string(),
            error_message: err.to_string(),
        }
    }
}

/// A database error with the step it belongs to.
pub(crate) fn step_error(step: &str, e: tokio_postgres::Error) -> CutoverError {
    CutoverError::Step(format!(
        "{step}: {}",
        cutover_core::error::describe_chain(&e)
    ))
}
