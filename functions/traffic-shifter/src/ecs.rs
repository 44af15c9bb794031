//! The two colours' ECS services of one region: how many tasks each runs, and
//! scaling one of them. A colour's task definition is its own family; scaling
//! the new side up also moves it to the latest revision of that family (what
//! the release registered), so the live colour is never redeployed by a release.

use aws_sdk_ecs::Client;
use cutover_core::Error;

use crate::ShiftError;

/// One region's cluster and the two colours' services (names or ARNs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEcs {
    pub cluster: String,
    pub blue_service: String,
    pub green_service: String,
}

impl RegionEcs {
    pub fn swapped(&self) -> RegionEcs {
        RegionEcs {
            cluster: self.cluster.clone(),
            blue_service: self.green_service.clone(),
            green_service: self.blue_service.clone(),
        }
    }
}

/// What ECS reports for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tasks {
    pub desired: i32,
    pub running: i32,
}

fn aws<E, R>(op: &'static str, e: aws_sdk_ecs::error::SdkError<E, R>) -> ShiftError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ShiftError::Core(Error::aws("ECS", op, e))
}

/// The service's desired and running counts, and its task definition.
pub async fn describe(
    client: &Client,
    cluster: &str,
    service: &str,
) -> Result<(Tasks, String), ShiftError> {
    let out = client
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| aws("DescribeServices", e))?;
    let s = out.services().first().ok_or_else(|| {
        ShiftError::InvalidInput(format!(
            "ECS service {service} does not exist in cluster {cluster}"
        ))
    })?;
    Ok((
        Tasks {
            desired: s.desired_count(),
            running: s.running_count(),
        },
        s.task_definition().unwrap_or_default().to_string(),
    ))
}

/// `arn:…:task-definition/<family>:<revision>` → `<family>`.
pub fn family(task_definition: &str) -> &str {
    let name = task_definition
        .rsplit_once("task-definition/")
        .map_or(task_definition, |(_, rest)| rest);
    name.split_once(':').map_or(name, |(family, _)| family)
}

/// Sets the service's task count; with `latest_revision`, also moves it to the
/// newest revision of its own family (the release).
pub async fn scale(
    client: &Client,
    cluster: &str,
    service: &str,
    count: i32,
    latest_revision: bool,
) -> Result<(), ShiftError> {
    let mut update = client
        .update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(count);
    if latest_revision {
        let (_, task_definition) = describe(client, cluster, service).await?;
        if !task_definition.is_empty() {
            update = update.task_definition(family(&task_definition));
        }
    }
    update.send().await.map_err(|e| aws("UpdateService", e))?;
    Ok(())
}

/// The release: registers a new revision of the service's own family, copied
/// from the family's latest revision with `container`'s image replaced, and
/// returns its ARN. Nothing runs it until [`deploy`] moves the service to it.
pub async fn register_release(
    client: &Client,
    cluster: &str,
    service: &str,
    container: &str,
    image: &str,
) -> Result<String, ShiftError> {
    let (_, current) = describe(client, cluster, service).await?;
    if current.is_empty() {
        return Err(ShiftError::InvalidInput(format!(
            "ECS service {service} has no task definition to base the release on"
        )));
    }
    let base = client
        .describe_task_definition()
        .task_definition(family(&current))
        .send()
        .await
        .map_err(|e| aws("DescribeTaskDefinition", e))?
        .task_definition
        .ok_or_else(|| {
            ShiftError::Internal(format!("DescribeTaskDefinition {current}: no definition"))
        })?;
    let mut containers = base.container_definitions.unwrap_or_default();
    let Some(app) = containers
        .iter_mut()
        .find(|c| c.name.as_deref() == Some(container))
    else {
        return Err(ShiftError::InvalidInput(format!(
            "task definition family {} has no container {container:?} (CUTOVER_APP_CONTAINER) to put the image in",
            family(&current)
        )));
    };
    app.image = Some(image.to_string());
    let out = client
        .register_task_definition()
        .family(family(&current))
        .set_container_definitions(Some(containers))
        .set_task_role_arn(base.task_role_arn)
        .set_execution_role_arn(base.execution_role_arn)
        .set_network_mode(base.network_mode)
        .set_volumes(base.volumes)
        .set_placement_constraints(base.placement_constraints)
        .set_requires_compatibilities(base.requires_compatibilities)
        .set_cpu(base.cpu)
        .set_memory(base.memory)
        .set_pid_mode(base.pid_mode)
        .set_ipc_mode(base.ipc_mode)
        .set_proxy_configuration(base.proxy_configuration)
        .set_ephemeral_storage(base.ephemeral_storage)
        .set_runtime_platform(base.runtime_platform)
        .send()
        .await
        .map_err(|e| aws("RegisterTaskDefinition", e))?;
    out.task_definition
        .and_then(|t| t.task_definition_arn)
        .ok_or_else(|| ShiftError::Internal("RegisterTaskDefinition returned no ARN".into()))
}

/// Sets the service's task count and moves it to exactly `task_definition`.
pub async fn deploy(
    client: &Client,
    cluster: &str,
    service: &str,
    count: i32,
    task_definition: &str,
) -> Result<(), ShiftError> {
    client
        .update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(count)
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| aws("UpdateService", e))?;
    Ok(())
}

/// Application Auto Scaling's id of an ECS service: `service/<cluster name>/<service name>`.
pub fn scaling_resource_id(cluster: &str, service: &str) -> String {
    let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    format!("service/{}/{}", last(cluster), last(service))
}

fn scaling_error<E, R>(
    op: &'static str,
    e: aws_sdk_applicationautoscaling::error::SdkError<E, R>,
) -> ShiftError
where
    E: aws_sdk_applicationautoscaling::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ShiftError::Core(Error::aws("Application Auto Scaling", op, e))
}

/// Moves the service's autoscaling floor (min capacity) to `min`, when the
/// service has a scalable target; `Ok(None)` when it has none (nothing to move),
/// else the floor it had.
pub async fn set_floor(
    client: &aws_sdk_applicationautoscaling::Client,
    cluster: &str,
    service: &str,
    min: i32,
) -> Result<Option<i32>, ShiftError> {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    let id = scaling_resource_id(cluster, service);
    let out = client
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(&id)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .map_err(|e| scaling_error("DescribeScalableTargets", e))?;
    let Some(target) = out.scalable_targets().first() else {
        return Ok(None);
    };
    let before = target.min_capacity();
    if before != min {
        client
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&id)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .min_capacity(min)
            .max_capacity(target.max_capacity().max(min))
            .send()
            .await
            .map_err(|e| scaling_error("RegisterScalableTarget", e))?;
    }
    Ok(Some(before))
}

/// A container image reference as a release names it: `[registry/]repository[:tag][@digest]`.
pub fn check_image(image: &str) -> Result<(), String> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && !image.starts_with(['/', ':', '@', '.', '-'])
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | ':' | '@' | '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "image {image:?} is not an image reference like 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.4.2 or app@sha256:…"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_comes_from_the_task_definition_arn() {
        assert_eq!(
            family("arn:aws:ecs:eu-west-1:1:task-definition/app-green-euw1-dev:7"),
            "app-green-euw1-dev"
        );
        assert_eq!(family("app-blue:3"), "app-blue");
        assert_eq!(family("app-blue"), "app-blue");
    }

    #[test]
    fn the_scaling_id_is_made_of_names() {
        assert_eq!(
            scaling_resource_id("arn:aws:ecs:eu-west-1:1:cluster/ecs-euw1", "app-green"),
            "service/ecs-euw1/app-green"
        );
        assert_eq!(scaling_resource_id("c", "s"), "service/c/s");
    }

    #[test]
    fn image_references() {
        for good in [
            "public.ecr.aws/nginx/nginx:release-2",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.4.2",
            "app@sha256:0123abcd",
        ] {
            assert_eq!(check_image(good), Ok(()), "{good}");
        }
        for bad in ["", "app latest", ":tag", "app;rm", &"a".repeat(256)] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }
}
