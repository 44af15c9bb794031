#![recursion_limit = "256"]
//! The lag-probe Lambda: wiring only.

use cutover_core::aws::Aws;
use cutover_core::config::Vars;
use lag_probe::config::ProbeConfig;
use lag_probe::handler::{handle, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = ProbeConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let env = Env::new(config, aws);
    cutover_core::lambda::serve("scheduled", |event, invocation| {
        handle(&env, event, invocation.deadline)
    })
    .await
}
