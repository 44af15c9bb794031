//! One AWS configuration per cold start, and the per-region clients built from it.
//!
//! `aws_config` already honours `AWS_ENDPOINT_URL` (and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`), which is how the very same binary talks to
//! moto in the local rehearsal and to AWS in production: there is no local
//! branch in the code, only configuration.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_types::region::Region as SdkRegion;

use crate::config::Region;

/// The loaded SDK configuration; cheap to clone, built once per container.
#[derive(Clone, Debug)]
pub struct Aws {
    sdk: SdkConfig,
}

impl Aws {
    /// Loads credentials, retry and endpoint settings once; `home` is the region
    /// used for the state table, notifications and parameters.
    pub async fn load(home: &Region) -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(SdkRegion::new(home.as_str().to_string()))
            .load()
            .await;
        Aws { sdk }
    }

    /// Wraps an already-built configuration (tests with `aws-smithy-mocks`).
    pub fn from_sdk_config(sdk: SdkConfig) -> Self {
        Aws { sdk }
    }

    /// The configuration of the home region.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk
    }

    /// The same configuration pointed at another region; build any client from it
    /// with `aws_sdk_x::Client::new(&aws.regional(&region))`.
    pub fn regional(&self, region: &Region) -> SdkConfig {
        self.sdk
            .to_builder()
            .region(SdkRegion::new(region.as_str().to_string()))
            .build()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk)
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk)
    }

    pub fn cloudwatch(&self, region: &Region) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.regional(region))
    }

    pub fn elbv2(&self, region: &Region) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.regional(region))
    }

    /// The home region's name.
    pub fn home_region(&self) -> Option<&str> {
        self.sdk.region().map(|r| r.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_configs_keep_everything_but_the_region() {
        let sdk = SdkConfig::builder()
            .region(SdkRegion::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:55000")
            .behavior_version(BehaviorVersion::latest())
            .build();
        let aws = Aws::from_sdk_config(sdk);
        let eu = aws.regional(&"eu-west-1".parse().unwrap());
        assert_eq!(eu.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(eu.endpoint_url(), Some("http://127.0.0.1:55000"));
        assert_eq!(aws.home_region(), Some("us-east-1"));
    }
}
