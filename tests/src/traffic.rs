//! Helpers for the traffic-shifter's tests, stage and benchmark: the shifter
//! built from the world's settings, the listeners' weights as ELBv2 reports
//! them, the colours' ECS task counts, and a reset to 100 % blue with no
//! deployment, blue at its seeded 2 tasks and green at 0.

use std::collections::BTreeMap;

use cutover_core::state::keys;
use traffic_shifter::config::ShifterConfig;
use traffic_shifter::shifter::Shifter;
use traffic_shifter::{alb, ecs};

use crate::world::{World, WorldError};

pub async fn shifter(world: &World) -> Result<Shifter, WorldError> {
    shifter_with(world, &[]).await
}

/// The shifter with settings of its own on top of the world's (e.g. lifecycle hooks).
pub async fn shifter_with(world: &World, extra: &[(&str, &str)]) -> Result<Shifter, WorldError> {
    let mut pairs: Vec<(&str, &str)> = world
        .env_pairs()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.extend_from_slice(extra);
    let config = ShifterConfig::from_vars(&cutover_core::config::Vars::from_pairs(pairs))
        .map_err(|e| WorldError::Setup(format!("traffic-shifter settings: {e}")))?;
    Ok(Shifter::new(config, &world.aws().await?))
}

/// Green's share per region, read from the listeners.
pub async fn green_weights(
    world: &World,
    shifter: &Shifter,
) -> Result<BTreeMap<String, i32>, WorldError> {
    let aws = world.aws().await?;
    let mut out = BTreeMap::new();
    for a in &shifter.config.albs {
        let region = a.region.parse().map_err(|e: String| WorldError::Setup(e))?;
        let w = alb::current(&aws.elbv2(&region), a)
            .await
            .map_err(|e| WorldError::Setup(e.to_string()))?;
        out.insert(a.region.clone(), w.green);
    }
    Ok(out)
}

/// The tasks blue runs in the seeded world (tests/env/seed_aws.py).
pub const BLUE_TASKS: i32 = 2;

fn ecs_client(
    aws: &cutover_core::aws::Aws,
    region: &str,
) -> Result<aws_sdk_ecs::Client, WorldError> {
    let region = region.parse().map_err(|e: String| WorldError::Setup(e))?;
    Ok(aws_sdk_ecs::Client::new(&aws.regional(&region)))
}

/// Desired task count per region of (blue, green), as ECS reports them.
pub async fn tasks(
    world: &World,
    shifter: &Shifter,
) -> Result<BTreeMap<String, (i32, i32)>, WorldError> {
    let aws = world.aws().await?;
    let mut out = BTreeMap::new();
    for a in &shifter.config.albs {
        let Some(e) = &a.ecs else { continue };
        let client = ecs_client(&aws, &a.region)?;
        let count = |service: &str| {
            let client = client.clone();
            let (cluster, service) = (e.cluster.clone(), service.to_string());
            async move {
                ecs::describe(&client, &cluster, &service)
                    .await
                    .map(|(t, _)| t.desired)
                    .map_err(|e| WorldError::Setup(e.to_string()))
            }
        };
        let blue = count(&e.blue_service).await?;
        let green = count(&e.green_service).await?;
        out.insert(a.region.clone(), (blue, green));
    }
    Ok(out)
}

/// Every listener to 100 % blue, the deployment record gone, the watched alarms OK,
/// blue at [`BLUE_TASKS`] tasks and green at 0.
pub async fn reset(world: &World, shifter: &Shifter) -> Result<(), WorldError> {
    let aws = world.aws().await?;
    for a in &shifter.config.albs {
        if let Some(e) = &a.ecs {
            let client = ecs_client(&aws, &a.region)?;
            for (service, count) in [(&e.blue_service, BLUE_TASKS), (&e.green_service, 0)] {
                ecs::scale(&client, &e.cluster, service, count, false)
                    .await
                    .map_err(|e| WorldError::Setup(e.to_string()))?;
            }
        }
        let region = a.region.parse().map_err(|e: String| WorldError::Setup(e))?;
        alb::set_green(&aws.elbv2(&region), a, 0)
            .await
            .map_err(|e| WorldError::Setup(e.to_string()))?;
        let cw = aws.cloudwatch(&region);
        for alarm in &shifter.config.gates.watched_alarms {
            set_alarm(&cw, alarm, "OK").await?;
        }
    }
    shifter
        .store
        .delete(&keys::deployment_current(&shifter.config.service))
        .await?;
    Ok(())
}

pub async fn set_alarm(
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
    state: &str,
) -> Result<(), WorldError> {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state.into())
        .state_reason("set by the rehearsal")
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            WorldError::Setup(format!(
                "SetAlarmState {name}: {}",
                cutover_core::error::describe_chain(&e)
            ))
        })
}
