//! traffic-shifter: blue/green by ALB listener weights, stepwise, in three regions.
//!
//! - [`plan`]: named plans, explicit steps, scopes (pure).
//! - [`deployment`]: the state and how it moves (pure).
//! - [`alb`]: read, check, write and verify a region's listener.
//! - [`ecs`]: the colours' services: task counts, scaling.
//! - [`gates`]: alarms, the new group's health, 5XX rate and p99 latency.
//! - [`lifecycle`]: pre-/post-traffic and pre-promote hooks (the ECS hook contract).
//! - [`shifter`]: the commands against AWS and the state table.
//! - [`config`], [`handler`]: settings and events.

pub mod alb;
pub mod config;
pub mod deployment;
pub mod ecs;
pub mod gates;
pub mod handler;
#[cfg(any(test, feature = "test-hooks"))]
pub mod hooks;
pub mod lifecycle;
pub mod plan;
pub mod shifter;

#[derive(Debug, thiserror::Error)]
pub enum ShiftError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The listener did not show the written weights within the bounded re-reads.
    #[error("weights not in effect: {0}")]
    NotInEffect(String),
    #[error(transparent)]
    Core(#[from] cutover_core::Error),
    #[error("{0}")]
    Internal(String),
}

impl ShiftError {
    pub fn kind(&self) -> cutover_core::ErrorKind {
        match self {
            ShiftError::InvalidInput(_) => cutover_core::ErrorKind::InvalidInput,
            ShiftError::NotInEffect(_) => cutover_core::ErrorKind::Retryable,
            ShiftError::Core(e) => e.kind(),
            ShiftError::Internal(_) => cutover_core::ErrorKind::Fatal,
        }
    }
}

impl From<ShiftError> for lambda_runtime::Diagnostic {
    fn from(err: ShiftError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().as_str().to_string(),
            error_message: err.to_string(),
        }
    }
}
