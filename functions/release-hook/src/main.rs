//! The release-hook Lambda: wiring only.

use release_hook::check;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cutover_core::logging::init();
    cutover_core::lambda::serve("hook", |event, _| check(event)).await
}
