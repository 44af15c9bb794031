//! The traffic-shifter Lambda: wiring only.

use cutover_core::aws::Aws;
use cutover_core::config::Vars;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use traffic_shifter::config::ShifterConfig;
use traffic_shifter::handler::handle;
use traffic_shifter::shifter::Shifter;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = ShifterConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let shifter = Shifter::new(config, &aws);
    let shifter = &shifter;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = cutover_core::logging::invocation_span(
            &event.context.request_id,
            event
                .payload
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or("event"),
        );
        let _entered = span.enter();
        handle(
            shifter,
            event.payload,
            cutover_core::lambda::deadline(&event.context),
        )
        .await
    }))
    .await
}
