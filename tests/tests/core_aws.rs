//! cutover-core's SNS, CloudWatch and SSM adapters against moto.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_cloudwatch::types::StandardUnit;
use cutover_core::db;
use cutover_core::metrics::{Metric, MetricsPublisher};
use cutover_core::notify::{Notification, Notifier, Severity};
use cutover_rehearsal::world::World;

async fn world_and_aws() -> (World, cutover_core::aws::Aws) {
    let world = World::load().expect("the local world is up");
    let aws = world.aws().await.expect("moto endpoint");
    (world, aws)
}

#[tokio::test]
async fn published_notification_arrives_with_its_attributes() {
    let (world, aws) = world_and_aws().await;
    let topic = world.get("CUTOVER_OPS_TOPIC_ARN").unwrap().to_string();
    let queue = world.get("CUTOVER_OPS_QUEUE_URL").unwrap().to_string();
    let marker = format!("marker-{}", std::process::id());
    let notifier = Notifier::new(aws.sns(), topic);
    let id = notifier
        .publish(&Notification {
            subject: "MISMATCH: app.orders".into(),
            event_type: "validation.mismatch".into(),
            severity: Severity::Warning,
            text: format!("2 rows differ ({marker})"),
            detail: serde_json::json!({"table": "app.orders", "mismatched": 2}),
        })
        .await
        .unwrap();
    assert!(!id.is_empty());

    let sqs = aws_sdk_sqs::Client::new(aws.sdk_config());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            let envelope: serde_json::Value =
                serde_json::from_str(message.body().unwrap_or("{}")).unwrap();
            if !envelope["Message"].as_str().unwrap_or("").contains(&marker) {
                continue;
            }
            assert_eq!(envelope["Subject"], "MISMATCH: app.orders");
            assert_eq!(
                envelope["MessageAttributes"]["event_type"]["Value"],
                "validation.mismatch"
            );
            assert_eq!(
                envelope["MessageAttributes"]["severity"]["Value"],
                "warning"
            );
            assert!(envelope["Message"]
                .as_str()
                .unwrap()
                .contains("\"mismatched\": 2"));
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "notification never reached the queue"
        );
    }
}

#[tokio::test]
async fn metrics_are_batched_and_stored_at_high_resolution() {
    let (world, aws) = world_and_aws().await;
    let region: cutover_core::config::Region = "eu-west-1".parse().unwrap();
    let namespace = format!("CutoverTest{}", std::process::id());
    let publisher = MetricsPublisher::new(aws.cloudwatch(&region), &namespace);
    let now = std::time::SystemTime::now();
    let points: Vec<Metric> = (0..1205)
        .map(|i| {
            Metric::new(
                "ReplicationLagMs",
                (i % 50) as f64,
                StandardUnit::Milliseconds,
            )
            .dimension("Region", "eu-west-1")
            .dimension("Source", "heartbeat")
            .at(now - Duration::from_millis(i as u64 * 10))
            .high_resolution()
        })
        .collect();
    let calls = publisher.publish(&points).await.unwrap();
    assert_eq!(calls, 2, "1205 points need two PutMetricData calls");

    let cw = aws.cloudwatch(&region);
    let listed = cw
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await
        .unwrap();
    assert!(!listed.metrics().is_empty());
    assert!(listed
        .metrics()
        .iter()
        .all(|m| m.metric_name() == Some("ReplicationLagMs")));
    // Every point arrived: the sample count over the window is exactly what was sent.
    let dimension = |name: &str, value: &str| {
        aws_sdk_cloudwatch::types::Dimension::builder()
            .name(name)
            .value(value)
            .build()
    };
    let stats = cw
        .get_metric_statistics()
        .namespace(&namespace)
        .metric_name("ReplicationLagMs")
        .dimensions(dimension("Region", "eu-west-1"))
        .dimensions(dimension("Source", "heartbeat"))
        .start_time((now - Duration::from_secs(120)).into())
        .end_time((now + Duration::from_secs(120)).into())
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::SampleCount)
        .send()
        .await
        .unwrap();
    let samples: f64 = stats
        .datapoints()
        .iter()
        .filter_map(|d| d.sample_count())
        .sum();
    assert_eq!(samples, 1205.0);
    drop(world);
}

#[tokio::test]
async fn invalid_metrics_are_refused_before_anything_is_sent() {
    let (_world, aws) = world_and_aws().await;
    let region: cutover_core::config::Region = "us-east-1".parse().unwrap();
    let namespace = format!("CutoverInvalid{}", std::process::id());
    let publisher = MetricsPublisher::new(aws.cloudwatch(&region), &namespace);
    let points = vec![
        Metric::new("Good", 1.0, StandardUnit::Count),
        Metric::new("Bad", f64::INFINITY, StandardUnit::Count),
    ];
    let err = publisher.publish(&points).await.unwrap_err();
    assert_eq!(err.kind(), cutover_core::ErrorKind::InvalidInput);
    let listed = aws
        .cloudwatch(&region)
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await
        .unwrap();
    assert!(listed.metrics().is_empty(), "nothing was published");
}

#[tokio::test]
async fn secrets_must_be_secure_strings() {
    let (world, aws) = world_and_aws().await;
    let ssm = aws.ssm();
    let settings = world.core_settings().unwrap();
    let password = db::secure_string(&ssm, &format!("{}/password", settings.db.ssm_prefix))
        .await
        .unwrap();
    assert!(!password.expose().is_empty());

    let plain = format!("/cutover-test/{}/plain-secret", std::process::id());
    ssm.put_parameter()
        .name(&plain)
        .value("not-so-secret")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let err = db::secure_string(&ssm, &plain).await.unwrap_err();
    assert!(err.to_string().contains("must be a SecureString"), "{err}");
    assert!(!err.to_string().contains("not-so-secret"));

    let err = db::secure_string(&ssm, "/cutover-test/does-not-exist")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
