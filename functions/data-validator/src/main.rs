#![recursion_limit = "256"]
//! The data-validator Lambda: wiring only.

use cutover_core::aws::Aws;
use cutover_core::config::Vars;
use data_validator::handler::{handle, Env, ValidatorConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = ValidatorConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let env = Env { config, aws };
    cutover_core::lambda::serve("scheduled", |event, invocation| {
        handle(&env, event, invocation.deadline)
    })
    .await
}
