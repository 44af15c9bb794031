//! JSON logs through `tracing`, with the request id and the command on every span.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; `RUST_LOG` overrides the `info` default.
/// Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}

/// The span every invocation runs in.
pub fn invocation_span(request_id: &str, command: &str) -> tracing::Span {
    tracing::info_span!("invocation", request_id = %request_id, command = %command)
}
