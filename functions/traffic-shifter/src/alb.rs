//! The ALB listener of one region: read it, check it is a blue/green forward,
//! write weights, and re-read until the weights are in effect.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
};
use aws_sdk_elasticloadbalancingv2::Client;
use cutover_core::Error;

use crate::ecs::RegionEcs;
use crate::ShiftError;

/// Where one region's traffic is split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionAlb {
    pub region: String,
    pub listener_arn: String,
    pub blue_tg_arn: String,
    pub green_tg_arn: String,
    /// The colours' ECS services; `None` = weights only.
    pub ecs: Option<RegionEcs>,
}

impl RegionAlb {
    /// The same listener with the groups' roles exchanged (green live, blue new).
    pub fn swapped(&self) -> RegionAlb {
        RegionAlb {
            blue_tg_arn: self.green_tg_arn.clone(),
            green_tg_arn: self.blue_tg_arn.clone(),
            ecs: self.ecs.as_ref().map(RegionEcs::swapped),
            ..self.clone()
        }
    }

    /// The `LoadBalancer` dimension of the ALB's CloudWatch metrics, from the
    /// listener ARN (`…:listener/app/<name>/<lb-id>/<listener-id>` → `app/<name>/<lb-id>`).
    pub fn load_balancer_dimension(&self) -> Option<String> {
        let (_, rest) = self.listener_arn.split_once(":listener/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        (parts.len() == 4).then(|| parts[..3].join("/"))
    }

    /// The `TargetGroup` dimension of the green group (`targetgroup/<name>/<id>`).
    pub fn green_dimension(&self) -> Option<String> {
        self.green_tg_arn
            .split_once(":targetgroup/")
            .map(|(_, rest)| format!("targetgroup/{rest}"))
    }
}

/// Blue and green weights as the listener has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub blue: i32,
    pub green: i32,
}

/// Checks the listener's default actions: exactly one forward to exactly the
/// configured blue and green groups, weights summing to 100.
pub fn check_actions(alb: &RegionAlb, actions: &[Action]) -> Result<Weights, String> {
    let forwards: Vec<&Action> = actions
        .iter()
        .filter(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
        .collect();
    if actions.len() != 1 || forwards.len() != 1 {
        return Err(format!(
            "{}: listener {} has {} default action(s), {} of them forward; expected exactly one weighted forward to blue and green",
            alb.region,
            alb.listener_arn,
            actions.len(),
            forwards.len()
        ));
    }
    let groups = forwards[0]
        .forward_config()
        .map(|c| c.target_groups())
        .unwrap_or_default();
    let weight_of = |arn: &str| {
        groups
            .iter()
            .find(|g| g.target_group_arn() == Some(arn))
            .map(|g| g.weight().unwrap_or(1))
    };
    let (Some(blue), Some(green)) = (weight_of(&alb.blue_tg_arn), weight_of(&alb.green_tg_arn))
    else {
        return Err(format!(
            "{}: listener {} forwards to {:?}, not to exactly the blue group {} and the green group {}",
            alb.region,
            alb.listener_arn,
            groups
                .iter()
                .filter_map(|g| g.target_group_arn())
                .collect::<Vec<_>>(),
            alb.blue_tg_arn,
            alb.green_tg_arn
        ));
    };
    if groups.len() != 2 {
        return Err(format!(
            "{}: listener {} forwards to {} groups; expected exactly blue and green",
            alb.region,
            alb.listener_arn,
            groups.len()
        ));
    }
    if blue + green != 100 {
        return Err(format!(
            "{}: listener {} weights blue {blue} + green {green} = {}, not 100; set them to sum to 100 before shifting",
            alb.region,
            alb.listener_arn,
            blue + green
        ));
    }
    Ok(Weights { blue, green })
}

fn aws<E, R>(
    op: &'static str,
    e: aws_sdk_elasticloadbalancingv2::error::SdkError<E, R>,
) -> ShiftError
where
    E: aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ShiftError::Core(Error::aws("ELBv2", op, e))
}

/// Reads the listener's default actions.
pub async fn read(client: &Client, alb: &RegionAlb) -> Result<Vec<Action>, ShiftError> {
    let out = client
        .describe_listeners()
        .listener_arns(&alb.listener_arn)
        .send()
        .await
        .map_err(|e| aws("DescribeListeners", e))?;
    let listener = out.listeners().first().ok_or_else(|| {
        ShiftError::InvalidInput(format!(
            "{}: listener {} does not exist",
            alb.region, alb.listener_arn
        ))
    })?;
    Ok(listener.default_actions().to_vec())
}

/// Reads and checks the listener; a listener that is not a blue/green forward is input error.
pub async fn current(client: &Client, alb: &RegionAlb) -> Result<Weights, ShiftError> {
    let actions = read(client, alb).await?;
    check_actions(alb, &actions).map_err(ShiftError::InvalidInput)
}

/// Writes green's share and re-reads until it is in effect (bounded); returns
/// how many reads it took.
pub async fn set_green(client: &Client, alb: &RegionAlb, green: u8) -> Result<u32, ShiftError> {
    let green = i32::from(green);
    let actions = read(client, alb).await?;
    // Keep the listener's stickiness settings; only the weights change.
    let stickiness = actions
        .first()
        .and_then(|a| a.forward_config())
        .and_then(|c| c.target_group_stickiness_config())
        .cloned();
    let forward = ForwardActionConfig::builder()
        .target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(&alb.blue_tg_arn)
                .weight(100 - green)
                .build(),
        )
        .target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(&alb.green_tg_arn)
                .weight(green)
                .build(),
        )
        .set_target_group_stickiness_config(stickiness)
        .build();
    let action = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(forward)
        .build();
    client
        .modify_listener()
        .listener_arn(&alb.listener_arn)
        .default_actions(action)
        .send()
        .await
        .map_err(|e| aws("ModifyListener", e))?;
    verify(client, alb, green).await
}

/// Re-reads the listener until green has `green` (and blue the rest).
pub async fn verify(client: &Client, alb: &RegionAlb, green: i32) -> Result<u32, ShiftError> {
    const READS: u32 = 10;
    let mut last = None;
    for attempt in 1..=READS {
        let actions = read(client, alb).await?;
        match check_actions(alb, &actions) {
            Ok(w) if w.green == green && w.blue == 100 - green => return Ok(attempt),
            Ok(w) => last = Some(format!("blue {} / green {}", w.blue, w.green)),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
    }
    Err(ShiftError::NotInEffect(format!(
        "{}: listener {} still shows {} after {READS} reads; expected blue {} / green {green}",
        alb.region,
        alb.listener_arn,
        last.unwrap_or_default(),
        100 - green
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alb() -> RegionAlb {
        RegionAlb {
            region: "eu-west-1".into(),
            listener_arn: "arn:aws:elasticloadbalancing:eu-west-1:1:listener/app/alb-dev/abc/def"
                .into(),
            blue_tg_arn: "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/tg-blue-dev/111"
                .into(),
            green_tg_arn: "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/tg-green-dev/222"
                .into(),
            ecs: None,
        }
    }

    fn forward(groups: &[(&str, i32)]) -> Action {
        let mut config = ForwardActionConfig::builder();
        for (arn, w) in groups {
            config = config.target_groups(
                TargetGroupTuple::builder()
                    .target_group_arn(*arn)
                    .weight(*w)
                    .build(),
            );
        }
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(config.build())
            .build()
    }

    #[test]
    fn dimensions_come_from_the_arns() {
        let a = alb();
        assert_eq!(
            a.load_balancer_dimension().as_deref(),
            Some("app/alb-dev/abc")
        );
        assert_eq!(
            a.green_dimension().as_deref(),
            Some("targetgroup/tg-green-dev/222")
        );
    }

    #[test]
    fn a_blue_green_forward_is_accepted() {
        let a = alb();
        let w = check_actions(
            &a,
            &[forward(&[(&a.blue_tg_arn, 90), (&a.green_tg_arn, 10)])],
        )
        .unwrap();
        assert_eq!(
            w,
            Weights {
                blue: 90,
                green: 10
            }
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let a = alb();
        let other = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/tg-other/333";
        for (actions, needle) in [
            (vec![], "0 default action(s)"),
            (
                vec![forward(&[(&a.blue_tg_arn, 100)])],
                "not to exactly the blue group",
            ),
            (
                vec![forward(&[
                    (&a.blue_tg_arn, 50),
                    (&a.green_tg_arn, 25),
                    (other, 25),
                ])],
                "forwards to 3 groups",
            ),
            (
                vec![forward(&[(&a.blue_tg_arn, 60), (&a.green_tg_arn, 60)])],
                "= 120, not 100",
            ),
            (
                vec![
                    forward(&[(&a.blue_tg_arn, 100), (&a.green_tg_arn, 0)]),
                    forward(&[(&a.blue_tg_arn, 100), (&a.green_tg_arn, 0)]),
                ],
                "2 default action(s)",
            ),
        ] {
            let e = check_actions(&a, &actions).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
