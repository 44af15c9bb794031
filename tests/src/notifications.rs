//! What was published to SNS, read back from the SQS queues subscribed to the
//! ops and validation topics (raw SNS envelopes).

use serde_json::{json, Value};

use crate::world::{World, WorldError};

/// Every message waiting in both capture queues, oldest first; they are deleted once read.
pub async fn drain(world: &World) -> Result<Vec<Value>, WorldError> {
    let aws = world.aws().await?;
    let sqs = aws_sdk_sqs::Client::new(aws.sdk_config());
    let mut out = Vec::new();
    for (topic, var) in [
        ("ops", "CUTOVER_OPS_QUEUE_URL"),
        ("validation", "CUTOVER_VALIDATION_QUEUE_URL"),
    ] {
        let url = world.get(var)?.to_string();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .send()
                .await
                .map_err(|e| {
                    WorldError::Setup(format!(
                        "SQS ReceiveMessage: {}",
                        cutover_core::error::describe_chain(&e)
                    ))
                })?;
            let messages = got.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or(Value::Null);
                let attr = |name: &str| {
                    envelope["MessageAttributes"][name]["Value"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                };
                out.push(json!({
                    "topic": topic,
                    "timestamp": envelope["Timestamp"],
                    "subject": envelope["Subject"],
                    "event_type": attr("event_type"),
                    "severity": attr("severity"),
                    "message": envelope["Message"],
                }));
                if let Some(handle) = m.receipt_handle() {
                    let _ = sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
    }
    out.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    Ok(out)
}
