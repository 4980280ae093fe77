//! [`AlertSink`] over Amazon SNS.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::alert::Alert;
use crate::ports::{AlertError, AlertSink};

/// Publishes alerts to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    /// Alerts to `topic_arn` through `client`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsAlerts {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, AlertError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|err| AlertError {
            subject: String::new(),
            message: err.to_string(),
        })
}

#[async_trait]
impl AlertSink for SnsAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&alert.subject)
            .message_structure("json")
            .message(alert.sns_message())
            .message_attributes("severity", attribute(alert.severity().as_str())?)
            .message_attributes("kind", attribute(alert.kind.as_str())?)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| AlertError {
                subject: alert.subject.clone(),
                message: DisplayErrorContext(&err).to_string(),
            })
    }
}
