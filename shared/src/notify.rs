//! Notifications to people and machines through SNS.
//!
//! Every message has a subject a person can scan in an inbox, a body that starts
//! with plain text and carries the JSON detail beneath it, and the message
//! attributes `event_type` and `severity` so subscriptions can filter.

use aws_sdk_sns::types::MessageAttributeValue;
use serde::Serialize;

use crate::error::{Error, Result};

/// SNS subjects: ASCII, no line breaks, under 100 characters.
const SUBJECT_MAX: usize = 99;
/// SNS messages: at most 256 KiB; keep a margin for the envelope.
const MESSAGE_MAX: usize = 250 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Notification {
    pub subject: String,
    /// e.g. `validation.mismatch`, `failover.completed`, `traffic.rollback`.
    pub event_type: String,
    pub severity: Severity,
    /// What a person reads first.
    pub text: String,
    /// The machine-readable detail, printed beneath the text.
    pub detail: serde_json::Value,
}

impl Notification {
    /// The subject as SNS accepts it: printable ASCII, one line, < 100 chars.
    pub fn sns_subject(&self) -> String {
        let cleaned: String = self
            .subject
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        let cleaned = cleaned.trim();
        let cleaned = if cleaned.is_empty() {
            "cutover"
        } else {
            cleaned
        };
        if cleaned.len() > SUBJECT_MAX {
            format!("{}...", &cleaned[..SUBJECT_MAX - 3])
        } else {
            cleaned.to_string()
        }
    }

    /// Text first, then the JSON; when too large, the JSON is replaced by a
    /// note saying where the full detail lives rather than cut mid-document.
    pub fn sns_message(&self) -> String {
        let json = serde_json::to_string_pretty(&self.detail).unwrap_or_else(|_| "{}".into());
        let full = format!(
            "{}\n\n--- detail (JSON) ---\n{}\n",
            self.text.trim_end(),
            json
        );
        if full.len() <= MESSAGE_MAX {
            return full;
        }
        let mut text = self.text.trim_end().to_string();
        if text.len() > MESSAGE_MAX - 200 {
            let mut cut = MESSAGE_MAX - 200;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        format!(
            "{text}\n\n--- detail (JSON) omitted: {} bytes exceeds the SNS limit; the full record is in the state table ---\n",
            json.len()
        )
    }
}

#[derive(Clone, Debug)]
pub struct Notifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Notifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Notifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publishes and returns the SNS message id.
    pub async fn publish(&self, notification: &Notification) -> Result<String> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| Error::Internal(e.to_string()))
        };
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notification.sns_subject())
            .message(notification.sns_message())
            .message_attributes("event_type", attribute(&notification.event_type)?)
            .message_attributes("severity", attribute(notification.severity.as_str())?)
            .send()
            .await
            .map_err(|e| Error::aws("SNS", "Publish", e))?;
        tracing::info!(
            event_type = %notification.event_type,
            severity = notification.severity.as_str(),
            message_id = out.message_id().unwrap_or(""),
            "notification published"
        );
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(subject: &str, text: &str, detail: serde_json::Value) -> Notification {
        Notification {
            subject: subject.into(),
            event_type: "validation.mismatch".into(),
            severity: Severity::Warning,
            text: text.into(),
            detail,
        }
    }

    #[test]
    fn subjects_are_one_line_ascii_and_short() {
        let n = note(
            &format!("MISMATCH\nin app.orders — {}", "x".repeat(200)),
            "",
            serde_json::json!({}),
        );
        let subject = n.sns_subject();
        assert!(subject.len() < 100);
        assert!(!subject.contains('\n'));
        assert!(subject.is_ascii());
        assert!(subject.starts_with("MISMATCH in app.orders"));
        assert_eq!(
            note("\n\n", "", serde_json::json!({})).sns_subject(),
            "cutover"
        );
    }

    #[test]
    fn message_has_the_text_first_and_the_json_beneath() {
        let n = note(
            "s",
            "2 rows differ in app.orders",
            serde_json::json!({"mismatched": 2}),
        );
        let message = n.sns_message();
        assert!(message.starts_with("2 rows differ in app.orders"));
        let json_part = message.split("--- detail (JSON) ---\n").nth(1).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(json_part).unwrap();
        assert_eq!(parsed["mismatched"], 2);
    }

    #[test]
    fn oversized_detail_is_omitted_with_a_note_not_cut() {
        let big = serde_json::json!({"rows": "y".repeat(300 * 1024)});
        let message = note("s", "summary", big).sns_message();
        assert!(message.len() <= MESSAGE_MAX);
        assert!(message.starts_with("summary"));
        assert!(message.contains("omitted"));
    }
}
