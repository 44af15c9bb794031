//! The AWS event shapes more than one function accepts: a CloudWatch alarm's
//! state change, delivered by EventBridge or wrapped in an SNS notification.
//! Parsed once here so traffic-shifter and failover agree on what an alarm is.

use serde_json::Value;

/// The string at a path of object keys, if every step exists and the end is a string.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = value;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

/// A CloudWatch alarm that changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    pub name: String,
    /// `ALARM`, `OK` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// The alarm's region (EventBridge `region`, or the SNS message's `AlarmArn`).
    pub region: Option<String>,
    /// The delivery's id (EventBridge `id` or SNS `MessageId`), for idempotency.
    pub id: Option<String>,
}

/// What an event is, as far as the shared shapes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// An alarm state change (EventBridge or SNS).
    Alarm(AlarmChange),
    /// Another EventBridge event: its `detail-type`, `source` and `id`.
    EventBridge {
        detail_type: String,
        source: String,
        id: Option<String>,
    },
    /// Neither: a direct invocation, for the function to parse.
    Direct,
}

/// Classifies an event. An SNS record list or an EventBridge alarm event that
/// lacks a field it must have is an error naming that field.
pub fn envelope(event: &Value) -> Result<Envelope, String> {
    let Value::Object(map) = event else {
        return Ok(Envelope::Direct);
    };
    if let Some(records) = map.get("Records") {
        let record = records
            .as_array()
            .and_then(|r| r.first())
            .ok_or("Records is empty")?;
        let message = str_at(record, &["Sns", "Message"])
            .ok_or("the record is not an SNS notification (no Sns.Message)")?;
        let alarm: Value = serde_json::from_str(message)
            .map_err(|e| format!("the SNS message is not a CloudWatch alarm JSON: {e}"))?;
        let name = str_at(&alarm, &["AlarmName"])
            .ok_or("the SNS message has no AlarmName: not a CloudWatch alarm")?;
        let state =
            str_at(&alarm, &["NewStateValue"]).ok_or("the SNS alarm has no NewStateValue")?;
        let region = str_at(&alarm, &["AlarmArn"])
            .and_then(|arn| arn.split(':').nth(3))
            .filter(|r| !r.is_empty());
        return Ok(Envelope::Alarm(AlarmChange {
            name: name.into(),
            state: state.into(),
            region: region.map(str::to_string),
            id: str_at(record, &["Sns", "MessageId"]).map(str::to_string),
        }));
    }
    if map.contains_key("detail-type") || map.contains_key("source") {
        let detail_type = str_at(event, &["detail-type"]).unwrap_or_default();
        let source = str_at(event, &["source"]).unwrap_or_default();
        let id = str_at(event, &["id"]).map(str::to_string);
        if (detail_type, source) == ("CloudWatch Alarm State Change", "aws.cloudwatch") {
            let name = str_at(event, &["detail", "alarmName"])
                .ok_or("the alarm event has no detail.alarmName")?;
            let state = str_at(event, &["detail", "state", "value"])
                .ok_or("the alarm event has no detail.state.value")?;
            return Ok(Envelope::Alarm(AlarmChange {
                name: name.into(),
                state: state.into(),
                region: str_at(event, &["region"]).map(str::to_string),
                id,
            }));
        }
        return Ok(Envelope::EventBridge {
            detail_type: detail_type.into(),
            source: source.into(),
            id,
        });
    }
    Ok(Envelope::Direct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eventbridge_and_sns_alarms_read_the_same() {
        let eb = json!({"id": "e-1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "region": "eu-west-1", "detail": {"alarmName": "app-5xx-local", "state": {"value": "ALARM"}}});
        let message = json!({"AlarmName": "app-5xx-local", "NewStateValue": "ALARM",
            "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:app-5xx-local"});
        let sns =
            json!({"Records": [{"Sns": {"MessageId": "m-1", "Message": message.to_string()}}]});
        let (Envelope::Alarm(a), Envelope::Alarm(b)) =
            (envelope(&eb).unwrap(), envelope(&sns).unwrap())
        else {
            panic!("both are alarms");
        };
        assert_eq!(
            (a.name.as_str(), a.state.as_str()),
            ("app-5xx-local", "ALARM")
        );
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        assert_eq!(b.region, a.region);
        assert_eq!(
            (a.id.as_deref(), b.id.as_deref()),
            (Some("e-1"), Some("m-1"))
        );
    }

    #[test]
    fn malformed_envelopes_name_what_is_missing() {
        let no_state = json!({"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "detail": {"alarmName": "x"}});
        assert!(envelope(&no_state)
            .unwrap_err()
            .contains("detail.state.value"));
        assert!(envelope(&json!({"Records": []}))
            .unwrap_err()
            .contains("empty"));
        let not_json = json!({"Records": [{"Sns": {"Message": "hello"}}]});
        assert!(envelope(&not_json)
            .unwrap_err()
            .contains("not a CloudWatch alarm JSON"));
        let schedule = json!({"detail-type": "Scheduled Event", "source": "aws.events", "id": "s"});
        assert_eq!(
            envelope(&schedule).unwrap(),
            Envelope::EventBridge {
                detail_type: "Scheduled Event".into(),
                source: "aws.events".into(),
                id: Some("s".into())
            }
        );
        assert_eq!(
            envelope(&json!({"command": "status"})).unwrap(),
            Envelope::Direct
        );
        assert_eq!(envelope(&json!([1])).unwrap(), Envelope::Direct);
    }
}
