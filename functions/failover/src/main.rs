//! The failover Lambda: wiring only.

use cutover_core::aws::Aws;
use cutover_core::config::Vars;
use failover::config::FailoverConfig;
use failover::handler::{build, handle};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = FailoverConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let failover = build(config, &aws).await?;
    let failover = &failover;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = cutover_core::logging::invocation_span(
            &event.context.request_id,
            event
                .payload
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or("alarm"),
        );
        let _entered = span.enter();
        handle(failover, event.payload, &event.context.request_id).await
    }))
    .await
}
