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
}
