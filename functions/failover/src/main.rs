#![recursion_limit = "256"]
//! The failover Lambda: wiring only.

use cutover_core::aws::Aws;
use cutover_core::config::Vars;
use failover::config::FailoverConfig;
use failover::handler::{build, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = FailoverConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let failover = build(config, &aws).await?;
    // The request id names the lease holder, so a retried delivery is recognised.
    cutover_core::lambda::serve("alarm", |event, invocation| {
        let failover = &failover;
        async move { handle(failover, event, &invocation.request_id).await }
    })
    .await
}
