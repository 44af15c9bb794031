#![recursion_limit = "256"]
//! The traffic-shifter Lambda: wiring only.

use cutover_core::aws::Aws;
use cutover_core::config::Vars;
use traffic_shifter::config::ShifterConfig;
use traffic_shifter::handler::handle;
use traffic_shifter::shifter::Shifter;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = ShifterConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let shifter = Shifter::new(config, &aws);
    cutover_core::lambda::serve("event", |event, invocation| {
        handle(&shifter, event, invocation.deadline)
    })
    .await
}
