//! Helpers for the failover function's tests and stage: its settings from the
//! world, and putting the failover records and endpoints back.

use cutover_core::state::{keys, LagSample, StateStore};
use failover::config::FailoverConfig;
use failover::failover::state_key;

use crate::world::{Node, World, WorldError};

pub fn config(world: &World, overrides: &[(&str, &str)]) -> Result<FailoverConfig, WorldError> {
    let mut pairs: Vec<(String, String)> = world
        .env_pairs()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in overrides {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    FailoverConfig::from_vars(&cutover_core::config::Vars::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
    .map_err(|e| WorldError::Setup(format!("failover settings: {e}")))
}

async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) -> Result<(), WorldError> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            WorldError::Setup(format!(
                "SSM {name}: {}",
                cutover_core::error::describe_chain(&e)
            ))
        })
}

/// The writer endpoint SSM parameter (tests point it at a dead port to play a lost primary).
pub async fn set_writer_endpoint(world: &World, value: &str) -> Result<(), WorldError> {
    let ssm = world.aws().await?.ssm();
    let suffix = world.get("CUTOVER_SUFFIX")?;
    put(
        &ssm,
        &format!("/migration/db/{suffix}/writer-endpoint"),
        value,
    )
    .await
}

/// No failover record, no lease, us-east-1 the writer again in SSM.
pub async fn reset(world: &World) -> Result<(), WorldError> {
    let aws = world.aws().await?;
    let store = StateStore::new(
        aws.dynamodb(),
        world.get("CUTOVER_STATE_TABLE")?.to_string(),
    );
    store.delete(&state_key()).await?;
    store.delete(&keys::failover_lease()).await?;
    let suffix = world.get("CUTOVER_SUFFIX")?;
    let ssm = aws.ssm();
    put(
        &ssm,
        &format!("/migration/db/{suffix}/writer-endpoint"),
        &format!("localhost:{}", world.port(Node::UsEast1)?),
    )
    .await?;
    put(
        &ssm,
        &format!("/migration/app/{suffix}/active-region"),
        "us-east-1",
    )
    .await
}

/// Writes a fresh latest lag sample for a region (as lag-probe would).
pub async fn put_lag(world: &World, region: &str, heartbeat_ms: f64) -> Result<(), WorldError> {
    let aws = world.aws().await?;
    let store = StateStore::new(
        aws.dynamodb(),
        world.get("CUTOVER_STATE_TABLE")?.to_string(),
    );
    store
        .put_latest(
            &keys::lag_latest(region),
            &LagSample {
                region: region.into(),
                heartbeat_ms: Some(heartbeat_ms),
                heartbeat_is_lower_bound: false,
                engine_ms: None,
                taken_at_ms: cutover_core::state::now_ms(),
            },
        )
        .await?;
    Ok(())
}
