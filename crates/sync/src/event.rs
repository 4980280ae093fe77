//! Handling an S3 event: every record, each file processed on its own.

use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::keys::decode_event_key;
use crate::process::{FileOutcome, FileProcessor, ProcessError};
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
    /// Row counts over all files.
    pub counts: Counts,
    /// Batches sent.
    pub batches: usize,
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

/// Processes every record of an S3 event; records fail independently.
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
        match processor.process(bucket, &key, deadline).await {
            Ok(FileOutcome::Archived {
                key,
                counts,
                batches,
                ..
            }) => {
                add(&mut summary.counts, counts);
                summary.batches += batches;
                summary.archived.push(key);
            }
            Ok(FileOutcome::Rejected { key, counts, .. }) => {
                add(&mut summary.counts, counts);
                summary.rejected.push(key);
            }
            Ok(FileOutcome::Ignored { key } | FileOutcome::AlreadyProcessed { key }) => {
                summary.ignored.push(key)
            }
            Err(failure) => {
                error!(key, error = %failure, "file failed");
                summary.failed.push(key);
                errors.push(failure);
            }
        }
    }
    if errors.is_empty() {
        Ok(summary)
    } else {
        Err(EventError { errors, summary })
    }
}

fn add(total: &mut Counts, counts: Counts) {
    total.rows_read += counts.rows_read;
    total.valid += counts.valid;
    total.rejected += counts.rejected;
    total.superseded += counts.superseded;
    total.sent += counts.sent;
    total.refused_by_meta += counts.refused_by_meta;
}
