//! `cutover-core`: what every cutover function needs and nothing function-specific.
//!
//! - [`config`]: typed settings from environment variables, checked at cold start.
//! - [`aws`]: one SDK configuration per cold start, per-region clients.
//! - [`state`]: the DynamoDB migration-state store and the fencing lease.
//! - [`reach`]: what one vantage point saw of the writer (reachability records).
//! - [`notify`]: SNS notifications with `event_type` / `severity` attributes.
//! - [`metrics`]: CloudWatch `PutMetricData`, batched, high resolution when asked.
//! - [`db`]: PostgreSQL over TLS and Oracle, credentials from SSM SecureString.
//! - [`error`]: input vs transient errors, mapped to the Lambda error type.
//! - [`event`]: CloudWatch alarm state changes (EventBridge or SNS), parsed once.
//! - [`logging`]: JSON `tracing` with request id and command.
//! - [`lambda`]: the invocation deadline on the monotonic clock.

pub mod aws;
pub mod config;
pub mod db;
pub mod error;
pub mod event;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod reach;
pub mod state;

pub use error::{Error, ErrorKind, Result};
