//! [`ContinuationQueue`] over Amazon SQS: the queue that feeds sync-on-arrival its follow-ups.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;

use crate::progress::{Continuation, ContinuationQueue, QueueError};

/// Sends continuations to one SQS queue, delayed by up to SQS's 15 minutes.
#[derive(Debug, Clone)]
pub struct SqsContinuations {
    client: Client,
    queue_url: String,
}

impl SqsContinuations {
    /// Continuations to `queue_url` through `client`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsContinuations {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// SQS's longest message delay.
const MAX_DELAY_SECONDS: u64 = 900;

#[async_trait]
impl ContinuationQueue for SqsContinuations {
    async fn schedule(
        &self,
        continuation: &Continuation,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(continuation).map_err(|error| QueueError {
            key: continuation.key.clone(),
            message: error.to_string(),
        })?;
        let seconds = i32::try_from(delay.as_secs().min(MAX_DELAY_SECONDS)).unwrap_or(0);
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| QueueError {
                key: continuation.key.clone(),
                message: format!(
                    "{}; check CONTINUE_QUEUE_URL and that the function may sqs:SendMessage to it",
                    DisplayErrorContext(&error)
                ),
            })
    }
}
