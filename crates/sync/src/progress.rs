//! Checkpoints of files too large (or too throttled) for one invocation, and the queue of
//! follow-up invocations that continue them.
//!
//! While a file is being sent, `progress/<run-id>.json` in the synced bucket records how far it
//! got: the source key and ETag, the batches done, the byte and line to resume reading from,
//! the counts so far, and the rejected rows found so far (stored beside it in parts, since
//! they can be many). It is rewritten after every batch, so a crash costs at most the batch in
//! flight, which Meta treats as a harmless upsert. A follow-up invocation resumes from it; a
//! changed ETag means the file was replaced, and the new version starts over.

use catalog::{HeaderLayout, Position};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use crate::adapters::log::NoQueue;
use crate::alert::Sample;
use crate::keys::{self, PROGRESS_PREFIX};
pub use crate::ports::{Continuation, ContinuationQueue, ContinueReason, QueueError};
use crate::ports::{ObjectStore, Payload, StoreError, StoreErrorKind, list_all, read_small};
use crate::report::{BatchRecord, Counts, Failure, SpoolMark};

/// What a checkpoint says the file is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProgressState {
    /// An invocation is sending it now (until `lease_until`).
    Running,
    /// Waiting for a follow-up invocation (after `resume_not_before`).
    Waiting,
}

/// Where reading resumes: the position after the last row of the last batch sent, and the
/// header, which a resumed read does not see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResumeAt {
    /// 1-based line of the next record.
    pub line: u64,
    /// Byte offset of the next record.
    pub byte: u64,
    /// Data rows before it.
    pub rows: u64,
    /// Column of each catalog field, in catalog order (`null` when the file has none).
    pub columns: Vec<Option<usize>>,
    /// Columns in the header.
    pub width: usize,
    /// Extra columns (ignored).
    pub extra: Vec<String>,
}

impl ResumeAt {
    /// The resume point of `position` in a file with header `layout`.
    pub fn new(position: Position, layout: &HeaderLayout) -> Self {
        ResumeAt {
            line: position.line,
            byte: position.byte,
            rows: position.rows,
            columns: layout.columns.clone(),
            width: layout.width,
            extra: layout.extra.clone(),
        }
    }

    /// The reader position to resume from.
    pub fn position(&self) -> Position {
        Position {
            line: self.line,
            byte: self.byte,
            rows: self.rows,
        }
    }

    /// The header layout to resume with.
    pub fn layout(&self) -> HeaderLayout {
        HeaderLayout {
            columns: self.columns.clone(),
            width: self.width,
            extra: self.extra.clone(),
        }
    }
}

/// `progress/<run-id>.json`: how far a file got, enough for another invocation to go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// The run, kept across invocations (batch and report keys use it).
    pub run_id: String,
    /// RFC 3339 time the run started.
    pub started_at: String,
    /// The Meta catalog.
    pub catalog_id: String,
    /// Landing bucket.
    pub source_bucket: String,
    /// The file's key in `data/`.
    pub source_key: String,
    /// The ETag of the version being sent; another ETag means the file was replaced.
    pub etag: Option<String>,
    /// The file's size.
    pub size: u64,
    /// Running or waiting.
    pub state: ProgressState,
    /// Which invocation holds it while running (random per invocation).
    pub holder: String,
    /// RFC 3339 time after which a running checkpoint counts as abandoned (a crash).
    pub lease_until: String,
    /// RFC 3339 time before which a follow-up should not start (a throttle wait).
    pub resume_not_before: Option<String>,
    /// Invocations that worked on the file so far.
    pub invocations: u32,
    /// Invocations that ended in a send failure.
    pub failed_attempts: u32,
    /// Times the poller's sweep re-drove the file.
    #[serde(default)]
    pub redrives: u32,
    /// Batches sent (and recorded) so far; the next is `batches_done + 1`.
    pub batches_done: u32,
    /// Where to resume reading; `None` until the first batch is sent.
    pub resume_at: Option<ResumeAt>,
    /// Counts of the rows before `resume_at`, and of products sent.
    pub counts: Counts,
    /// Warnings about the file (extra columns).
    pub warnings: Vec<String>,
    /// Every batch sent so far.
    pub batches: Vec<BatchRecord>,
    /// Products sent so far (including those Meta refused).
    pub items_sent: u64,
    /// Products Meta refused when sent.
    pub refused: u64,
    /// Examples of refused products, for the report and alert.
    pub refused_samples: Vec<Sample>,
    /// How much of the rejected-row spool is stored in `spool_parts`.
    pub spool: SpoolMark,
    /// Keys of the stored spool parts, in order.
    pub spool_parts: Vec<String>,
    /// Why the last invocation stopped, when it was a failure.
    pub last_failure: Option<Failure>,
    /// RFC 3339 time of the last write.
    pub updated_at: String,
}

impl Checkpoint {
    /// The checkpoint of a new run of `bucket`/`key` (the version with `etag`), starting `now`.
    pub fn fresh(
        now: OffsetDateTime,
        catalog_id: &str,
        bucket: &str,
        key: &str,
        etag: Option<String>,
        size: u64,
    ) -> Self {
        Checkpoint {
            run_id: keys::new_run_id(now),
            started_at: format_time(now),
            catalog_id: catalog_id.to_owned(),
            source_bucket: bucket.to_owned(),
            source_key: key.to_owned(),
            etag,
            size,
            state: ProgressState::Waiting,
            holder: String::new(),
            lease_until: String::new(),
            resume_not_before: None,
            invocations: 0,
            failed_attempts: 0,
            redrives: 0,
            batches_done: 0,
            resume_at: None,
            counts: Counts::default(),
            warnings: Vec::new(),
            batches: Vec::new(),
            items_sent: 0,
            refused: 0,
            refused_samples: Vec::new(),
            spool: SpoolMark::default(),
            spool_parts: Vec::new(),
            last_failure: None,
            updated_at: format_time(now),
        }
    }

    /// True when another invocation holds the file and its lease has not run out.
    pub fn is_held_by_other(&self, holder: &str, now: OffsetDateTime) -> bool {
        self.state == ProgressState::Running
            && self.holder != holder
            && parse_time(&self.lease_until).is_some_and(|until| until > now)
    }

    /// When a follow-up may start, if the checkpoint asks to wait.
    pub fn not_before(&self) -> Option<OffsetDateTime> {
        self.resume_not_before.as_deref().and_then(parse_time)
    }

    /// The key of spool part `number` of this run.
    pub fn spool_part_key(&self, number: usize) -> String {
        format!("{PROGRESS_PREFIX}{}/rows-{number:04}.part", self.run_id)
    }

    /// The checkpoint's own key.
    pub fn key(&self) -> String {
        keys::progress_key(&self.run_id)
    }
}

/// RFC 3339 text as a time.
pub(crate) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// A time as RFC 3339 text.
pub(crate) fn format_time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// True for `progress/<run-id>.json` (not the spool parts below `progress/<run-id>/`).
pub(crate) fn is_checkpoint_key(key: &str) -> bool {
    key.strip_prefix(PROGRESS_PREFIX)
        .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/'))
}

/// Reads one checkpoint; a missing one is `None`, an unreadable one an error naming its key.
pub(crate) async fn load(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let Some(bytes) = read_small(store, bucket, key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| StoreError {
            operation: "ReadCheckpoint",
            location: format!("{bucket}/{key}"),
            kind: StoreErrorKind::Other,
            message: format!(
                "not a catalog-sync checkpoint ({error}); delete it to start the file over"
            ),
        })
}

/// Every checkpoint in the synced bucket; unreadable ones are skipped with a warning.
pub(crate) async fn load_all(
    store: &dyn ObjectStore,
    synced_bucket: &str,
) -> Result<Vec<Checkpoint>, StoreError> {
    let mut checkpoints = Vec::new();
    for object in list_all(store, synced_bucket, PROGRESS_PREFIX).await? {
        if !is_checkpoint_key(&object.key) {
            continue;
        }
        match load(store, synced_bucket, &object.key).await {
            Ok(Some(checkpoint)) => checkpoints.push(checkpoint),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "checkpoint skipped"),
        }
    }
    Ok(checkpoints)
}

/// The checkpoint of `bucket`/`key`, if a run of it is unfinished. With several (a crash
/// between writing a new one and deleting an old one), the newest run wins.
pub(crate) async fn find_for_source(
    store: &dyn ObjectStore,
    synced_bucket: &str,
    bucket: &str,
    key: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let mut found: Option<Checkpoint> = None;
    for checkpoint in load_all(store, synced_bucket).await? {
        if checkpoint.source_bucket == bucket
            && checkpoint.source_key == key
            && found
                .as_ref()
                .is_none_or(|newest| checkpoint.run_id > newest.run_id)
        {
            found = Some(checkpoint);
        }
    }
    Ok(found)
}

/// Writes a checkpoint whole.
pub(crate) async fn save(
    store: &dyn ObjectStore,
    synced_bucket: &str,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(checkpoint).map_err(|error| StoreError {
        operation: "WriteCheckpoint",
        location: format!("{synced_bucket}/{}", checkpoint.key()),
        kind: StoreErrorKind::Other,
        message: error.to_string(),
    })?;
    store
        .put(
            synced_bucket,
            &checkpoint.key(),
            Payload::from(json),
            "application/json",
        )
        .await
}

/// Deletes a checkpoint and its spool parts (the run is over).
pub(crate) async fn remove(
    store: &dyn ObjectStore,
    synced_bucket: &str,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    for part in &checkpoint.spool_parts {
        store.delete(synced_bucket, part).await?;
    }
    store.delete(synced_bucket, &checkpoint.key()).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_top_level_json_objects_are_checkpoints() {
        assert!(is_checkpoint_key("progress/20261122T000000Z-1a2b3c4d.json"));
        assert!(!is_checkpoint_key(
            "progress/20261122T000000Z-1a2b3c4d/rows-0001.part"
        ));
        assert!(!is_checkpoint_key("progress/x/y.json"));
        assert!(!is_checkpoint_key("pending/x.json"));
    }

    #[test]
    fn a_lease_protects_a_running_checkpoint_until_it_expires() {
        let now = OffsetDateTime::now_utc();
        let mut checkpoint = sample_checkpoint();
        checkpoint.state = ProgressState::Running;
        checkpoint.holder = "a".to_owned();
        checkpoint.lease_until = format_time(now + Duration::from_secs(60));
        assert!(checkpoint.is_held_by_other("b", now));
        assert!(!checkpoint.is_held_by_other("a", now));
        assert!(!checkpoint.is_held_by_other("b", now + Duration::from_secs(61)));
        checkpoint.state = ProgressState::Waiting;
        assert!(!checkpoint.is_held_by_other("b", now));
    }

    #[test]
    fn resume_at_round_trips_the_position_and_layout() {
        let layout = HeaderLayout {
            columns: (0..catalog::FIELD_COUNT).map(Some).collect(),
            width: 11,
            extra: vec!["color".to_owned()],
        };
        let position = Position {
            line: 3001,
            byte: 1_000_000,
            rows: 3000,
        };
        let at = ResumeAt::new(position, &layout);
        assert_eq!(at.position(), position);
        assert_eq!(at.layout(), layout);
    }

    fn sample_checkpoint() -> Checkpoint {
        Checkpoint::fresh(
            OffsetDateTime::now_utc(),
            "1",
            "landing",
            "data/a.csv",
            Some("\"e\"".to_owned()),
            1,
        )
    }
}
