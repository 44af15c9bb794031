//! Helpers for the traffic-shifter's tests, stage and benchmark: the shifter
//! built from the world's settings, the listeners' weights as ELBv2 reports
//! them, and a reset to 100 % blue with no deployment.

use std::collections::BTreeMap;

use cutover_core::state::keys;
use traffic_shifter::alb;
use traffic_shifter::config::ShifterConfig;
use traffic_shifter::shifter::Shifter;

use crate::world::{World, WorldError};

pub async fn shifter(world: &World) -> Result<Shifter, WorldError> {
    let config = ShifterConfig::from_vars(&world.vars())
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

/// Every listener to 100 % blue, the deployment record gone, the watched alarms OK.
pub async fn reset(world: &World, shifter: &Shifter) -> Result<(), WorldError> {
    let aws = world.aws().await?;
    for a in &shifter.config.albs {
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
