//! The cutover Lambda: wiring only.

use cutover::config::CutoverConfig;
use cutover::handler::{build, handle};
use cutover_core::aws::Aws;
use cutover_core::config::Vars;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    let config = CutoverConfig::from_vars(&Vars::from_env())?;
    let aws = Aws::load(&config.core.primary_region).await;
    let controller = build(config, &aws).await?;
    // The request id names the lease holder, so a retried delivery is recognised.
    cutover_core::lambda::serve("status", |event, invocation| {
        let controller = &controller;
        async move { handle(controller, event, &invocation.request_id).await }
    })
    .await
}
