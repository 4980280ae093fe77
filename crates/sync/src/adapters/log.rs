//! Adapters for a function with no topic or queue configured: alerts and continuations go to
//! the log, where a person (or the poller's sweep) still finds them.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::Alert;
use crate::ports::{AlertError, AlertSink, Continuation, ContinuationQueue, QueueError};

/// Alerts written to the log only, for runs with no topic configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAlerts;

#[async_trait]
impl AlertSink for LogAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        tracing::warn!(
            kind = alert.kind.as_str(),
            severity = alert.severity().as_str(),
            subject = alert.subject,
            "alert (no topic configured)\n{}",
            alert.text
        );
        Ok(())
    }
}

/// No queue configured: continuations are only logged, and the poller's sweep re-drives the
/// file once it is older than its threshold.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueue;

#[async_trait]
impl ContinuationQueue for NoQueue {
    async fn schedule(
        &self,
        continuation: &Continuation,
        delay: Duration,
    ) -> Result<(), QueueError> {
        tracing::warn!(
            key = continuation.key,
            reason = continuation.reason.as_str(),
            delay_s = delay.as_secs(),
            "no continuation queue configured (CONTINUE_QUEUE_URL); the poller's sweep will re-drive the file"
        );
        Ok(())
    }
}
