//! The data-validator Lambda: wiring only.

use cutover_core::aws::Aws;
use cutover_core::config::Vars;
use data_validator::handler::{handle, Env, ValidatorConfig};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = ValidatorConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let env = Env { config, aws };
    let env = &env;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = cutover_core::logging::invocation_span(
            &event.context.request_id,
            event
                .payload
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or("scheduled"),
        );
        let _entered = span.enter();
        handle(
            env,
            event.payload,
            cutover_core::lambda::deadline(&event.context),
        )
        .await
    }))
    .await
}
