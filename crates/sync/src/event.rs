//! Handling what sync-on-arrival is invoked with: S3 notifications of landed files, and
//! continuation messages (SQS) for files that need another invocation. Every record is
//! processed on its own. The summary of what was done ([`EventSummary`]) is also how the CLI
//! tallies the files it processes, so both count the same way.

#[cfg(feature = "aws")]
use aws_lambda_events::event::s3::S3Event;
#[cfg(feature = "aws")]
use aws_lambda_events::event::sqs::SqsEvent;
use graph::CallCounts;
use serde::Serialize;
#[cfg(feature = "aws")]
use tokio::time::Instant;
#[cfg(feature = "aws")]
use tracing::{error, info, warn};

#[cfg(feature = "aws")]
use crate::keys::decode_event_key;
#[cfg(feature = "aws")]
use crate::process::FileProcessor;
use crate::process::{FileOutcome, ProcessError};
#[cfg(feature = "aws")]
use crate::progress::Continuation;
use crate::report::Counts;

/// What one invocation did, for the function's response and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventSummary {
    /// Files sent and archived.
    pub archived: Vec<String>,
    /// Files moved to `rejected/`.
    pub rejected: Vec<String>,
    /// Records ignored (not a CSV under the landing prefix, or already processed).
    pub ignored: Vec<String>,
    /// Files that failed (still in `data/`).
    pub failed: Vec<String>,
    /// Files checkpointed for a follow-up invocation (still in `data/`).
    pub deferred: Vec<String>,
    /// Files another invocation is sending now.
    pub busy: Vec<String>,
    /// Row counts over all files.
    pub counts: Counts,
    /// Batches sent.
    pub batches: usize,
    /// Calls made to Meta (every attempt, retries included), and how many failed or were
    /// throttled: what the sender's retries hide from the counts above.
    pub graph_calls: CallCounts,
}

/// At least one file of the event failed for good; the others were still handled.
#[derive(Debug, thiserror::Error)]
#[error("{} of the event's files failed: {}", .errors.len(), .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "))]
pub struct EventError {
    /// Each failure.
    pub errors: Vec<ProcessError>,
    /// What was done.
    pub summary: EventSummary,
}

/// The invocation payload was neither an S3 notification nor a continuation message.
#[derive(Debug, thiserror::Error)]
#[error(
    "unrecognised event: {0}; sync-on-arrival takes S3 ObjectCreated notifications and continuation messages from its SQS queue"
)]
pub struct UnknownEvent(pub String);

/// One invocation's payload, recognised.
#[cfg(feature = "aws")]
#[derive(Debug)]
pub enum Invocation {
    /// S3 notifications of landed files.
    S3(S3Event),
    /// Continuations from the follow-up queue (one per message).
    Continue(Vec<Continuation>),
}

#[cfg(feature = "aws")]
impl Invocation {
    /// Recognises a payload by its records' `eventSource` (`aws:s3` or `aws:sqs`).
    pub fn from_json(payload: serde_json::Value) -> Result<Invocation, UnknownEvent> {
        let source = payload
            .get("Records")
            .and_then(|records| records.get(0))
            .and_then(|record| record.get("eventSource"))
            .and_then(|source| source.as_str())
            .unwrap_or("aws:s3")
            .to_owned();
        if source == "aws:sqs" {
            let event: SqsEvent = serde_json::from_value(payload).map_err(|error| {
                UnknownEvent(format!("an SQS event that does not parse: {error}"))
            })?;
            let mut continuations = Vec::new();
            for message in event.records {
                let body = message.body.unwrap_or_default();
                match serde_json::from_str::<Continuation>(&body) {
                    Ok(continuation) => continuations.push(continuation),
                    Err(error) => warn!(
                        message_id = message.message_id.as_deref(),
                        %error,
                        "ignored: an SQS message that is not a catalog-sync continuation"
                    ),
                }
            }
            return Ok(Invocation::Continue(continuations));
        }
        serde_json::from_value(payload)
            .map(Invocation::S3)
            .map_err(|error| UnknownEvent(format!("an S3 event that does not parse: {error}")))
    }
}

/// Handles one invocation. S3 notifications fail the invocation when a file fails, so Lambda
/// retries it; continuations never do, since their failures are recorded in the file's
/// checkpoint, alerted, and retried a bounded number of times by the poller's sweep.
#[cfg(feature = "aws")]
pub async fn handle_invocation(
    processor: &FileProcessor,
    invocation: &Invocation,
    deadline: Option<Instant>,
) -> Result<EventSummary, EventError> {
    let before = processor.graph_calls();
    let mut result = handle_records(processor, invocation, deadline).await;
    let calls = processor.graph_calls().since(before);
    match &mut result {
        Ok(summary) => summary.graph_calls = calls,
        Err(error) => error.summary.graph_calls = calls,
    }
    result
}

#[cfg(feature = "aws")]
async fn handle_records(
    processor: &FileProcessor,
    invocation: &Invocation,
    deadline: Option<Instant>,
) -> Result<EventSummary, EventError> {
    match invocation {
        Invocation::S3(event) => handle_s3_event(processor, event, deadline).await,
        Invocation::Continue(continuations) => {
            let mut summary = EventSummary::default();
            for continuation in continuations {
                info!(
                    key = continuation.key,
                    run_id = continuation.run_id.as_deref(),
                    reason = continuation.reason.as_str(),
                    "continuing"
                );
                let result = processor
                    .process(&continuation.bucket, &continuation.key, deadline)
                    .await;
                if let Err(failure) = summary.record(continuation.key.clone(), result) {
                    error!(key = continuation.key, error = %failure, "file failed");
                }
            }
            Ok(summary)
        }
    }
}

/// Processes every record of an S3 event; records fail independently.
#[cfg(feature = "aws")]
pub async fn handle_s3_event(
    processor: &FileProcessor,
    event: &S3Event,
    deadline: Option<Instant>,
) -> Result<EventSummary, EventError> {
    let mut summary = EventSummary::default();
    let mut errors = Vec::new();
    for record in &event.records {
        let (Some(bucket), Some(raw_key)) = (
            record.s3.bucket.name.as_deref(),
            record.s3.object.key.as_deref(),
        ) else {
            warn!("event record without a bucket or key; ignored");
            continue;
        };
        let key = match decode_event_key(raw_key) {
            Ok(key) => key,
            Err(error) => {
                warn!(%error, "ignored");
                summary.ignored.push(raw_key.to_owned());
                continue;
            }
        };
        if record
            .event_name
            .as_deref()
            .is_some_and(|name| !name.starts_with("ObjectCreated"))
        {
            info!(
                key,
                event = record.event_name.as_deref(),
                "ignored: not an ObjectCreated event"
            );
            summary.ignored.push(key);
            continue;
        }
        let result = processor.process(bucket, &key, deadline).await;
        if let Err(failure) = summary.record(key.clone(), result) {
            error!(key, error = %failure, "file failed");
            errors.push(failure);
        }
    }
    if errors.is_empty() {
        Ok(summary)
    } else {
        Err(EventError { errors, summary })
    }
}

impl EventSummary {
    /// Adds one file's outcome to the summary, handing back a failure.
    pub fn record(
        &mut self,
        key: String,
        result: Result<FileOutcome, ProcessError>,
    ) -> Result<(), ProcessError> {
        match result {
            Ok(FileOutcome::Archived {
                key,
                counts,
                batches,
                ..
            }) => {
                add(&mut self.counts, counts);
                self.batches += batches;
                self.archived.push(key);
            }
            Ok(FileOutcome::Rejected { key, counts, .. }) => {
                add(&mut self.counts, counts);
                self.rejected.push(key);
            }
            Ok(FileOutcome::Ignored { key } | FileOutcome::AlreadyProcessed { key }) => {
                self.ignored.push(key)
            }
            Ok(FileOutcome::Deferred { key, .. }) => self.deferred.push(key),
            Ok(FileOutcome::Busy { key, .. }) => self.busy.push(key),
            Err(failure) => {
                self.failed.push(key);
                return Err(failure);
            }
        }
        Ok(())
    }
}

fn add(total: &mut Counts, counts: Counts) {
    total.add(counts);
}
