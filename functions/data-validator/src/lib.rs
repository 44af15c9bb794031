//! data-validator: proves that the source and the target hold the same rows.
//!
//! - [`ident`]: quoting; nothing from an event reaches SQL unquoted.
//! - [`canonical`]: the value encoding both engines compute identically.
//! - [`schema`]: table descriptions and their comparison.
//! - [`sql`]: the queries, per dialect.
//! - [`side`]: a PostgreSQL or Oracle connection running them.
//! - [`stream`]: the same hashes computed in Rust from a binary COPY (PostgreSQL).
//! - [`engine`]: segments, buckets, bisection, row and column differences.
//! - [`run`]: a validation run: planning, checkpoints, resume, results.
//! - [`handler`]: the Lambda's commands and events.

pub mod canonical;
pub mod engine;
pub mod handler;
pub mod ident;
pub mod run;
pub mod schema;
pub mod side;
pub mod sql;
pub mod stream;

#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("query on {side} failed: {message}")]
    Query { side: String, message: String },
    #[error(transparent)]
    Core(#[from] cutover_core::Error),
    #[error("{0}")]
    Internal(String),
}

impl ValidatorError {
    pub fn kind(&self) -> cutover_core::ErrorKind {
        match self {
            ValidatorError::InvalidInput(_) => cutover_core::ErrorKind::InvalidInput,
            ValidatorError::Query { .. } => cutover_core::ErrorKind::Retryable,
            ValidatorError::Core(e) => e.kind(),
            ValidatorError::Internal(_) => cutover_core::ErrorKind::Fatal,
        }
    }
}

impl From<ValidatorError> for lambda_runtime::Diagnostic {
    fn from(err: ValidatorError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().as_str().to_string(),
            error_message: err.to_string(),
        }
    }
}
