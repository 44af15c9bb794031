//! The one error type of `cutover-core`, and how it reaches Lambda.
//!
//! Every error knows which side of the line it is on: *input* (the event or the
//! configuration is wrong; retrying cannot help, so it must not be retried) or
//! *transient* (a network blip, a throttle, a lost race; the caller may retry).
//! The Lambda error type (`errorType` in the response) carries that kind, so that
//! retry policies and dead-letter queues do the right thing.

use crate::config::ConfigError;

/// The kinds the Lambda error type distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The event or a setting is wrong; never retried.
    InvalidInput,
    /// Someone else moved the state first; re-read and decide again.
    Conflict,
    /// A newer lease holder exists; this invocation must stop changing things.
    Fenced,
    /// A passing fault (network, throttling, a server restarting); safe to retry.
    Retryable,
    /// Something that needs a person (a missing client library, a broken invariant).
    Fatal,
}

impl ErrorKind {
    /// The name Lambda reports as `errorType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Fenced => "Fenced",
            ErrorKind::Retryable => "Retryable",
            ErrorKind::Fatal => "Fatal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A conditional write lost: the item is not at the version we read.
    #[error("conflict on {pk}/{sk}: {detail}")]
    Conflict {
        pk: String,
        sk: String,
        detail: String,
    },

    /// The lease is held by someone else (or this holder's epoch is stale).
    #[error("fenced: {0}")]
    Fenced(String),

    #[error("{service} {operation} failed: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        message: String,
        retryable: bool,
    },

    #[error("database {target}: {message}")]
    Database {
        target: String,
        message: String,
        retryable: bool,
    },

    /// The Oracle client library is not installed; the message says what to install.
    #[error("{0}")]
    OracleClientMissing(String),

    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput(_) | Error::Config(_) => ErrorKind::InvalidInput,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Fenced(_) => ErrorKind::Fenced,
            Error::Aws { retryable, .. } | Error::Database { retryable, .. } => {
                if *retryable {
                    ErrorKind::Retryable
                } else {
                    ErrorKind::Fatal
                }
            }
            Error::OracleClientMissing(_) | Error::Internal(_) => ErrorKind::Fatal,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Retryable | ErrorKind::Conflict)
    }

    /// Wraps an AWS SDK error, keeping the service's own code and message and
    /// deciding retryability from the SDK's classification.
    pub fn aws<E, R>(
        service: &'static str,
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let retryable = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
            SdkError::ResponseError(_) => true,
            SdkError::ServiceError(e) => matches!(
                e.err().code(),
                Some(
                    "ThrottlingException"
                        | "Throttling"
                        | "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "TooManyRequestsException"
                )
            ),
            _ => false,
        };
        let message = match err.as_service_error() {
            Some(e) => format!(
                "{}: {}",
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or("no message")
            ),
            None => describe_chain(&err),
        };
        Error::Aws {
            service,
            operation,
            message,
            retryable,
        }
    }
}

/// The error and its sources on one line, for errors whose `Display` is terse.
pub fn describe_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().as_str().to_string(),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_are_never_retried() {
        let err = Error::invalid("unknown command \"frobnicate\"");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!err.is_retryable());
        let diagnostic: lambda_runtime::Diagnostic = err.into();
        assert_eq!(diagnostic.error_type, "InvalidInput");
        assert!(diagnostic.error_message.contains("frobnicate"));
    }

    #[test]
    fn transient_database_errors_are_retryable() {
        let err = Error::Database {
            target: "us-east-1".into(),
            message: "connection reset".into(),
            retryable: true,
        };
        assert_eq!(err.kind(), ErrorKind::Retryable);
        let diagnostic: lambda_runtime::Diagnostic = err.into();
        assert_eq!(diagnostic.error_type, "Retryable");
    }

    #[test]
    fn conflicts_and_fencing_have_their_own_kinds() {
        let conflict = Error::Conflict {
            pk: "MIGRATION".into(),
            sk: "PHASE".into(),
            detail: "expected version 3".into(),
        };
        assert_eq!(conflict.kind(), ErrorKind::Conflict);
        assert!(conflict.is_retryable());
        assert_eq!(
            Error::Fenced("epoch 2 < 3".into()).kind(),
            ErrorKind::Fenced
        );
        assert!(!Error::Fenced("x".into()).is_retryable());
    }
}
