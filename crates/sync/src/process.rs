//! Use case: process one landed file — validate, transform, send, record, archive.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use catalog::{
    Batch, Batcher, FeedError, FileError, ProductReader, RejectedRow, ResumePoint, RowIssue, Sink,
    Superseded,
};
use graph::{ErrorClass, GraphError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::io::SyncIoBridge;
use tracing::{info, warn};

use crate::alert::{AlertBuilder, AlertKind, Sample};
use crate::keys::{self, Layout};
use crate::ports::{
    AlertSink, CatalogApi, Clock, ObjectInfo, ObjectStore, Payload, StoreError, read_small,
};
use crate::progress::{
    self, Checkpoint, Continuation, ContinuationQueue, ContinueReason, ProgressState, ResumeAt,
};
use crate::report::{
    BatchRecord, Counts, Failure, FileReport, PendingRecord, ReportStatus, RowSpool, SpoolMark,
    SpoolReader,
};

/// The adapters a use case runs on.
#[derive(Clone)]
pub struct Services {
    /// S3 or a local folder.
    pub store: Arc<dyn ObjectStore>,
    /// Meta's Graph API or the emulator.
    pub catalog: Arc<dyn CatalogApi>,
    /// SNS or the console.
    pub alerts: Arc<dyn AlertSink>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Follow-up invocations: SQS on AWS, in-process locally.
    pub continuations: Arc<dyn ContinuationQueue>,
}

/// What processing needs besides the adapters.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Buckets and prefixes.
    pub layout: Layout,
    /// Requests per call and bytes per body.
    pub batch_limits: catalog::BatchLimits,
    /// Where `product_type` goes.
    pub mapping: catalog::ProductTypeMapping,
    /// File, row and record limits.
    pub reader_limits: catalog::ReaderLimits,
    /// Time a batch call needs: with less left before the deadline, the file is checkpointed
    /// and continued by a follow-up invocation.
    pub min_send_window: Duration,
}

/// Default [`Settings::min_send_window`]: a batch call takes a few seconds, more with retries.
pub const DEFAULT_MIN_SEND_WINDOW: Duration = Duration::from_secs(10);

impl Settings {
    /// Settings from the configuration.
    pub fn from_config(config: &crate::Config) -> Self {
        Settings {
            layout: config.layout.clone(),
            batch_limits: config.batch_limits,
            mapping: config.mapping,
            reader_limits: catalog::ReaderLimits::default(),
            min_send_window: DEFAULT_MIN_SEND_WINDOW,
        }
    }
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Not a CSV under the landing prefix.
    Ignored {
        /// The key.
        key: String,
    },
    /// No longer in `data/`: an earlier delivery of the same event handled it.
    AlreadyProcessed {
        /// The key.
        key: String,
    },
    /// Valid rows sent and the file archived.
    Archived {
        /// The key it had in `data/`.
        key: String,
        /// Where the report is.
        report_key: String,
        /// Row counts.
        counts: Counts,
        /// Calls made.
        batches: usize,
    },
    /// The file was unusable and moved to `rejected/`.
    Rejected {
        /// The key it had in `data/`.
        key: String,
        /// Where the report is.
        report_key: String,
        /// Row counts up to the failure.
        counts: Counts,
    },
    /// Not all batches could be sent in this invocation; a checkpoint records how far it got
    /// and a follow-up invocation was requested.
    Deferred {
        /// The file, still in `data/`.
        key: String,
        /// The run, kept by the follow-up.
        run_id: String,
        /// Where the checkpoint is (synced bucket).
        progress_key: String,
        /// Batches sent so far, in all invocations.
        batches_sent: u32,
        /// When the follow-up should start.
        resume_after: Duration,
        /// Why this invocation stopped.
        reason: ContinueReason,
    },
    /// Another invocation is sending this file now; nothing was done.
    Busy {
        /// The file.
        key: String,
        /// The run in progress.
        run_id: String,
    },
}

/// Processing a file failed for good; the file stays in `data/`.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Meta refused or could not be reached after retries.
    #[error("{file}: sending to Meta failed after {batches_sent} batch(es): {error}. {}", .error.what_to_do())]
    SendFailed {
        /// Where the file is (an S3 URL, or a path for a local folder).
        file: String,
        /// Batches accepted before the failure (their handles are pending).
        batches_sent: usize,
        /// Why.
        error: GraphError,
    },
    /// Reading or writing storage failed.
    #[error("{file}: {source}")]
    Store {
        /// Where the file is.
        file: String,
        /// Why.
        source: StoreError,
    },
    /// Internal failure (a worker thread died or a temporary file could not be used).
    #[error("{file}: {message}")]
    Internal {
        /// Where the file is.
        file: String,
        /// Why.
        message: String,
    },
}

impl ProcessError {
    fn store(file: String, source: StoreError) -> Self {
        ProcessError::Store { file, source }
    }

    fn internal(file: String, message: impl Into<String>) -> Self {
        ProcessError::Internal {
            file,
            message: message.into(),
        }
    }
}

fn spool_failure(error: &std::io::Error) -> String {
    format!(
        "could not use a temporary file for rejected rows: {error}; check the function's /tmp space"
    )
}

/// The "process one landed file" use case.
#[derive(Clone)]
pub struct FileProcessor {
    services: Services,
    settings: Settings,
}

/// A batch ready to send, with what is known once it is sent: where reading can resume.
struct ReadyBatch {
    batch: Batch,
    resume: ResumeAt,
    counts: catalog::RowCounts,
    superseded: u64,
    spool: SpoolMark,
}

/// The sink on the parsing thread: rows to the spool, batches to the sender.
struct ParseSink {
    spool: RowSpool,
    /// Superseded rows, including those of earlier invocations.
    superseded: u64,
    /// Counts of earlier invocations.
    base: catalog::RowCounts,
    layout: catalog::HeaderLayout,
    at: ResumePoint,
    batches: mpsc::Sender<ReadyBatch>,
}

/// Why the parsing thread stopped early.
#[derive(Debug, thiserror::Error)]
enum ParseSinkError {
    #[error("the sender stopped")]
    SenderStopped,
    #[error("could not spool rejected rows to a temporary file: {0}")]
    Spool(#[from] std::io::Error),
}

impl ParseSink {
    fn counts(&self) -> catalog::RowCounts {
        let mut counts = self.base;
        counts.add(self.at.counts);
        counts
    }
}

impl Sink for ParseSink {
    type Error = ParseSinkError;

    fn rejected(&mut self, _source: u32, row: RejectedRow) -> Result<(), ParseSinkError> {
        Ok(self.spool.push(&RowIssue::from(&row))?)
    }

    fn superseded(&mut self, superseded: Superseded) -> Result<(), ParseSinkError> {
        self.superseded += 1;
        Ok(self.spool.push(&RowIssue::from(&superseded))?)
    }

    fn batch(&mut self, batch: Batch) -> Result<(), ParseSinkError> {
        let ready = ReadyBatch {
            batch,
            resume: ResumeAt::new(self.at.position, &self.layout),
            counts: self.counts(),
            superseded: self.superseded,
            spool: self.spool.mark()?,
        };
        self.batches
            .blocking_send(ready)
            .map_err(|_| ParseSinkError::SenderStopped)
    }

    fn next_row_at(&mut self, point: ResumePoint) {
        self.at = point;
    }
}

/// What the parsing thread hands back.
struct Parsed {
    counts: catalog::RowCounts,
    superseded: u64,
    warnings: Vec<String>,
    spool: RowSpool,
    file_error: Option<FileError>,
    internal_error: Option<String>,
}

impl Parsed {
    fn nothing(spool: RowSpool, checkpoint: &Checkpoint) -> Self {
        Parsed {
            counts: catalog::RowCounts {
                rows_read: checkpoint.counts.rows_read,
                valid: checkpoint.counts.valid,
                rejected: checkpoint.counts.rejected,
                ..catalog::RowCounts::default()
            },
            superseded: checkpoint.counts.superseded,
            warnings: checkpoint.warnings.clone(),
            spool,
            file_error: None,
            internal_error: None,
        }
    }
}

/// Progress of the sending side, including batches of earlier invocations.
#[derive(Default)]
struct Sent {
    batches: Vec<BatchRecord>,
    items: u64,
    refused: u64,
    refused_samples: Vec<Sample>,
}

impl Sent {
    fn from_checkpoint(checkpoint: &Checkpoint) -> Self {
        Sent {
            batches: checkpoint.batches.clone(),
            items: checkpoint.items_sent,
            refused: checkpoint.refused,
            refused_samples: checkpoint.refused_samples.clone(),
        }
    }
}

/// Refused products kept for the report (all are counted).
const MAX_REFUSED_SAMPLES: usize = crate::alert::MAX_SAMPLES * 50;
/// SQS's longest delay; a longer wait is re-queued by the follow-up.
const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);
/// How long a running checkpoint is protected when there is no invocation deadline.
const LOCAL_LEASE: Duration = Duration::from_secs(5 * 60);

impl FileProcessor {
    /// A processor over these adapters.
    pub fn new(services: Services, settings: Settings) -> Self {
        FileProcessor { services, settings }
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.settings.layout
    }

    /// Processes `key` in `bucket` before `deadline`, resuming an unfinished run of it.
    pub async fn process(
        &self,
        bucket: &str,
        key: &str,
        deadline: Option<Instant>,
    ) -> Result<FileOutcome, ProcessError> {
        let layout = &self.settings.layout;
        let Some(relative) = layout.landing_relative(key) else {
            info!(
                key,
                "ignored: not a .csv file under {}", layout.landing_prefix
            );
            return Ok(FileOutcome::Ignored {
                key: key.to_owned(),
            });
        };
        let store_error = |source| ProcessError::store(self.at(bucket, key), source);
        let store = self.services.store.as_ref();
        let synced = layout.synced_bucket.as_str();
        let Some(info) = store.head(bucket, key).await.map_err(store_error)? else {
            info!(
                key,
                "already processed: the file is no longer in the landing folder"
            );
            return Ok(FileOutcome::AlreadyProcessed {
                key: key.to_owned(),
            });
        };
        let now = self.services.clock.now();
        let holder = format!("{:016x}", rand::random::<u64>());
        let existing = progress::find_for_source(store, synced, bucket, key)
            .await
            .map_err(store_error)?;
        let mut restarted_from = None;
        let mut checkpoint = match existing {
            Some(checkpoint) if checkpoint.is_held_by_other(&holder, now) => {
                info!(
                    key,
                    run_id = checkpoint.run_id,
                    "busy: another invocation is sending this file"
                );
                return Ok(FileOutcome::Busy {
                    key: key.to_owned(),
                    run_id: checkpoint.run_id,
                });
            }
            Some(checkpoint) if checkpoint.etag != info.etag => {
                warn!(
                    key,
                    run_id = checkpoint.run_id,
                    batches_done = checkpoint.batches_done,
                    "the file was replaced since its run started; starting over with the new version"
                );
                if let Err(error) = progress::remove(store, synced, &checkpoint).await {
                    warn!(%error, "could not delete the replaced version's checkpoint");
                }
                restarted_from = Some(checkpoint);
                self.new_checkpoint(bucket, key, &info, now)
            }
            Some(checkpoint) => {
                if let Some(wait) = checkpoint
                    .not_before()
                    .map(|at| at - now)
                    .filter(|wait| wait.is_positive())
                    .and_then(|wait| Duration::try_from(wait).ok())
                    .filter(|wait| *wait > Duration::from_secs(5))
                {
                    return self.requeue(checkpoint, wait).await;
                }
                checkpoint
            }
            None => self.new_checkpoint(bucket, key, &info, now),
        };
        checkpoint.state = ProgressState::Running;
        checkpoint.holder = holder;
        checkpoint.invocations += 1;
        checkpoint.resume_not_before = None;
        self.renew_lease(&mut checkpoint, deadline);
        progress::save(store, synced, &checkpoint)
            .await
            .map_err(store_error)?;

        let started = progress::parse_time(&checkpoint.started_at).unwrap_or(now);
        let run = Run {
            bucket,
            key,
            relative,
            info: info.clone(),
            run_id: checkpoint.run_id.clone(),
            started,
            invocations: checkpoint.invocations,
            restarted_from: restarted_from.map(|old| (old.run_id, old.batches_done)),
        };
        info!(
            key,
            run_id = run.run_id,
            size = info.size,
            invocation = checkpoint.invocations,
            batches_done = checkpoint.batches_done,
            "processing"
        );

        let (mut spool, mut spool_reader) = RowSpool::on_disk()
            .map_err(|error| ProcessError::internal(self.at(bucket, key), spool_failure(&error)))?;
        if info.size > self.settings.reader_limits.max_file_bytes {
            let mut parsed = Parsed::nothing(spool, &checkpoint);
            parsed.file_error = Some(FileError::FileTooLarge {
                max_bytes: self.settings.reader_limits.max_file_bytes,
            });
            let result = self
                .finish_rejected(&run, parsed, Sent::default(), &checkpoint)
                .await;
            return self.released_on_error(result, checkpoint).await;
        }
        let from = checkpoint.resume_at.as_ref().map_or(0, |at| at.byte);
        let opened = match self.restore_spool(&mut spool, &checkpoint).await {
            Ok(()) => store
                .get(bucket, key, from, info.etag.as_deref())
                .await
                .map_err(store_error),
            Err(error) => Err(error),
        };
        let body = match opened {
            Ok(Some((_, body))) => body,
            Ok(None) => {
                self.forget(&checkpoint).await;
                return Ok(FileOutcome::AlreadyProcessed {
                    key: key.to_owned(),
                });
            }
            Err(error) => {
                self.release(checkpoint).await;
                return Err(error);
            }
        };

        // Parsing runs on a blocking thread fed by the download; batches come back through a
        // channel of one, so the next batch is built while the current one is being sent.
        let (batch_tx, mut batch_rx) = mpsc::channel::<ReadyBatch>(1);
        let parser = self.spawn_parser(body, spool, &checkpoint, batch_tx);

        let mut sent = Sent::from_checkpoint(&checkpoint);
        let mut stop = None;
        while let Some(ready) = batch_rx.recv().await {
            if self.time_is_up(deadline) {
                stop = Some(Stop::Defer(ContinueReason::Deadline, Duration::ZERO));
                break;
            }
            if let Err(error) = self.send_one(&ready.batch, &run, deadline, &mut sent).await {
                stop = Some(match error {
                    Stop::Graph(error) => self.stop_for(error, deadline),
                    other => other,
                });
                break;
            }
            if let Err(error) = self
                .record_progress(&mut checkpoint, &ready, &sent, &mut spool_reader, deadline)
                .await
            {
                stop = Some(Stop::Store(error));
                break;
            }
        }
        drop(batch_rx);
        let parsed = parser.await.map_err(|error| {
            ProcessError::internal(
                self.at(bucket, key),
                format!("the parsing thread failed: {error}"),
            )
        })?;
        if let Some(message) = parsed.internal_error.clone() {
            self.release(checkpoint).await;
            return Err(ProcessError::internal(self.at(bucket, key), message));
        }
        match stop {
            Some(Stop::Store(error)) => {
                self.release(checkpoint).await;
                Err(store_error(error))
            }
            Some(Stop::Defer(reason, wait)) => {
                self.finish_deferred(&run, checkpoint, reason, wait).await
            }
            Some(Stop::Graph(error)) => {
                self.finish_send_failed(&run, parsed, sent, error, checkpoint)
                    .await
            }
            // The download broke, not the file: the next attempt resumes after the last batch.
            None if parsed
                .file_error
                .as_ref()
                .is_some_and(FileError::is_read_failure) =>
            {
                self.release(checkpoint).await;
                let message = parsed
                    .file_error
                    .map(|error| error.to_string())
                    .unwrap_or_default();
                Err(store_error(StoreError {
                    operation: "GetObject",
                    location: self.at(bucket, key),
                    kind: crate::ports::StoreErrorKind::Other,
                    message: format!(
                        "{message}; the file stays in the landing folder and the next attempt resumes from its checkpoint"
                    ),
                }))
            }
            None if parsed.file_error.is_some() => {
                let result = self.finish_rejected(&run, parsed, sent, &checkpoint).await;
                self.released_on_error(result, checkpoint).await
            }
            None => {
                let result = self.finish_archived(&run, parsed, sent, &checkpoint).await;
                self.released_on_error(result, checkpoint).await
            }
        }
    }

    /// A failed finish leaves the run to the next attempt at once, instead of after the lease.
    async fn released_on_error(
        &self,
        result: Result<FileOutcome, ProcessError>,
        checkpoint: Checkpoint,
    ) -> Result<FileOutcome, ProcessError> {
        if result.is_err() {
            self.release(checkpoint).await;
        }
        result
    }

    /// Puts back the rejected rows an earlier invocation of the run stored with its checkpoint.
    async fn restore_spool(
        &self,
        spool: &mut RowSpool,
        checkpoint: &Checkpoint,
    ) -> Result<(), ProcessError> {
        let bucket = &checkpoint.source_bucket;
        let key = &checkpoint.source_key;
        let synced = &self.settings.layout.synced_bucket;
        for part in &checkpoint.spool_parts {
            let bytes = read_small(self.services.store.as_ref(), synced, part)
                .await
                .map_err(|error| ProcessError::store(self.at(bucket, key), error))?
                .unwrap_or_default();
            spool.write_stored(&bytes).map_err(|error| {
                ProcessError::internal(self.at(bucket, key), spool_failure(&error))
            })?;
        }
        spool.restored(&checkpoint.spool);
        Ok(())
    }

    fn new_checkpoint(
        &self,
        bucket: &str,
        key: &str,
        info: &ObjectInfo,
        now: OffsetDateTime,
    ) -> Checkpoint {
        Checkpoint::fresh(
            now,
            self.services.catalog.catalog_id(),
            bucket,
            key,
            info.etag.clone(),
            info.size,
        )
    }

    /// Starts the parsing thread at the checkpoint's position.
    fn spawn_parser(
        &self,
        body: crate::ports::ObjectBody,
        spool: RowSpool,
        checkpoint: &Checkpoint,
        batches: mpsc::Sender<ReadyBatch>,
    ) -> tokio::task::JoinHandle<Parsed> {
        let limits = self.settings.reader_limits;
        let mut batcher = Batcher::new(self.settings.batch_limits, self.settings.mapping)
            .starting_at(checkpoint.batches_done + 1);
        let resume_at = checkpoint.resume_at.clone();
        let mut parsed = Parsed::nothing(RowSpool::new(), checkpoint);
        let base = parsed.counts;
        let bridge = SyncIoBridge::new(body);
        tokio::task::spawn_blocking(move || {
            let source = BufReader::with_capacity(256 * 1024, bridge);
            let opened = match &resume_at {
                Some(at) => Ok(ProductReader::resume(
                    source,
                    at.layout(),
                    at.position(),
                    limits,
                )),
                None => ProductReader::with_limits(source, limits),
            };
            let mut reader = match opened {
                Ok(reader) => reader,
                Err(error) => {
                    parsed.spool = spool;
                    parsed.file_error = Some(error);
                    return parsed;
                }
            };
            if resume_at.is_none() && !reader.extra_columns().is_empty() {
                parsed.warnings.push(format!(
                    "extra columns ignored: {}",
                    reader.extra_columns().join(", ")
                ));
            }
            let mut sink = ParseSink {
                spool,
                superseded: parsed.superseded,
                base,
                layout: reader.layout().clone(),
                at: ResumePoint::default(),
                batches,
            };
            match catalog::feed(&mut reader, 0, &mut batcher, &mut sink) {
                Ok(counts) => {
                    sink.next_row_at(ResumePoint {
                        position: reader.position(),
                        counts,
                    });
                    parsed.counts = sink.counts();
                    if let Some(batch) = batcher.finish() {
                        match sink.batch(batch) {
                            // A stopped sender has its own reason to report.
                            Ok(()) | Err(ParseSinkError::SenderStopped) => {}
                            Err(error) => parsed.internal_error = Some(error.to_string()),
                        }
                    }
                }
                Err(FeedError::File(error)) => {
                    parsed.counts = sink.counts();
                    parsed.counts.rows_read = reader.position().rows;
                    parsed.file_error = Some(error);
                }
                Err(FeedError::Sink(ParseSinkError::SenderStopped)) => {
                    parsed.counts = sink.counts();
                }
                Err(error) => parsed.internal_error = Some(error.to_string()),
            }
            parsed.superseded = sink.superseded;
            parsed.spool = sink.spool;
            parsed
        })
    }

    /// True when too little time is left to send another batch.
    fn time_is_up(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|deadline| Instant::now() + self.settings.min_send_window >= deadline)
    }

    /// What a send failure means for the run: wait and continue later, or stop.
    fn stop_for(&self, error: GraphError, deadline: Option<Instant>) -> Stop {
        match error.class() {
            ErrorClass::Throttled => Stop::Defer(
                ContinueReason::Throttled,
                error.retry_after().unwrap_or(Duration::from_secs(60)),
            ),
            // Retries were cut short by the deadline, not exhausted: the next invocation goes on.
            ErrorClass::Transient | ErrorClass::InvalidResponse if self.time_is_up(deadline) => {
                Stop::Defer(ContinueReason::Unavailable, Duration::from_secs(60))
            }
            _ => Stop::Graph(error),
        }
    }

    fn renew_lease(&self, checkpoint: &mut Checkpoint, deadline: Option<Instant>) {
        let now = self.services.clock.now();
        let left = deadline.map_or(LOCAL_LEASE, |deadline| {
            deadline.saturating_duration_since(Instant::now()) + crate::wiring::DEADLINE_MARGIN
        });
        checkpoint.lease_until = progress::format_time(now + left);
        checkpoint.updated_at = progress::format_time(now);
    }

    /// Records a sent batch in the checkpoint: the new resume point, counts, and the rejected
    /// rows found before it.
    async fn record_progress(
        &self,
        checkpoint: &mut Checkpoint,
        ready: &ReadyBatch,
        sent: &Sent,
        spool_reader: &mut SpoolReader,
        deadline: Option<Instant>,
    ) -> Result<(), StoreError> {
        let synced = &self.settings.layout.synced_bucket;
        if ready.spool.bytes > checkpoint.spool.bytes {
            let part_key = checkpoint.spool_part_key(checkpoint.spool_parts.len() + 1);
            let (payload, _keep_alive) = spool_reader
                .part(checkpoint.spool.bytes, ready.spool.bytes)
                .map_err(|error| StoreError {
                    operation: "ReadSpool",
                    location: part_key.clone(),
                    kind: crate::ports::StoreErrorKind::Other,
                    message: error.to_string(),
                })?;
            self.services
                .store
                .put(synced, &part_key, payload, "application/json")
                .await?;
            checkpoint.spool_parts.push(part_key);
        }
        checkpoint.spool = ready.spool.clone();
        checkpoint.batches_done = ready.batch.number;
        checkpoint.resume_at = Some(ready.resume.clone());
        checkpoint.counts = Counts {
            rows_read: ready.counts.rows_read,
            valid: ready.counts.valid,
            rejected: ready.counts.rejected,
            superseded: ready.superseded,
            sent: sent.items,
            refused_by_meta: sent.refused,
        };
        checkpoint.batches = sent.batches.clone();
        checkpoint.items_sent = sent.items;
        checkpoint.refused = sent.refused;
        checkpoint.refused_samples = sent.refused_samples.clone();
        self.renew_lease(checkpoint, deadline);
        progress::save(self.services.store.as_ref(), synced, checkpoint).await
    }

    /// Lets another invocation take the file at once (this one stops without finishing it).
    async fn release(&self, mut checkpoint: Checkpoint) {
        checkpoint.state = ProgressState::Waiting;
        checkpoint.holder.clear();
        checkpoint.updated_at = self.now_rfc3339();
        let synced = &self.settings.layout.synced_bucket;
        if let Err(error) = progress::save(self.services.store.as_ref(), synced, &checkpoint).await
        {
            warn!(%error, run_id = checkpoint.run_id, "could not release the checkpoint; it is free again once its lease runs out");
        }
    }

    /// The run is over: its checkpoint goes (a leftover is harmless and swept later).
    async fn forget(&self, checkpoint: &Checkpoint) {
        let synced = &self.settings.layout.synced_bucket;
        if let Err(error) = progress::remove(self.services.store.as_ref(), synced, checkpoint).await
        {
            warn!(%error, run_id = checkpoint.run_id, "could not delete the finished run's checkpoint");
        }
    }

    /// Asks for a follow-up invocation; a queue failure is logged, and the sweep re-drives.
    async fn schedule(&self, checkpoint: &Checkpoint, reason: ContinueReason, wait: Duration) {
        let continuation = Continuation {
            bucket: checkpoint.source_bucket.clone(),
            key: checkpoint.source_key.clone(),
            run_id: Some(checkpoint.run_id.clone()),
            reason,
        };
        if let Err(error) = self
            .services
            .continuations
            .schedule(&continuation, wait.min(MAX_QUEUE_DELAY))
            .await
        {
            warn!(%error, key = checkpoint.source_key, "continuation not queued; the poller's sweep will re-drive the file");
        }
    }

    /// A follow-up came before the wait Meta asked for was over: queue it again for the rest.
    async fn requeue(
        &self,
        checkpoint: Checkpoint,
        wait: Duration,
    ) -> Result<FileOutcome, ProcessError> {
        info!(
            key = checkpoint.source_key,
            run_id = checkpoint.run_id,
            wait_s = wait.as_secs(),
            "still waiting for Meta's rate limit; continuation queued again"
        );
        self.schedule(&checkpoint, ContinueReason::Throttled, wait)
            .await;
        Ok(FileOutcome::Deferred {
            key: checkpoint.source_key.clone(),
            progress_key: checkpoint.key(),
            run_id: checkpoint.run_id,
            batches_sent: checkpoint.batches_done,
            resume_after: wait,
            reason: ContinueReason::Throttled,
        })
    }

    async fn finish_deferred(
        &self,
        run: &Run<'_>,
        mut checkpoint: Checkpoint,
        reason: ContinueReason,
        wait: Duration,
    ) -> Result<FileOutcome, ProcessError> {
        let now = self.services.clock.now();
        checkpoint.state = ProgressState::Waiting;
        checkpoint.holder.clear();
        checkpoint.resume_not_before = (!wait.is_zero()).then(|| progress::format_time(now + wait));
        checkpoint.updated_at = progress::format_time(now);
        let synced = &self.settings.layout.synced_bucket;
        progress::save(self.services.store.as_ref(), synced, &checkpoint)
            .await
            .map_err(|error| ProcessError::store(self.at(run.bucket, run.key), error))?;
        self.schedule(&checkpoint, reason, wait).await;
        info!(
            key = run.key,
            run_id = run.run_id,
            reason = reason.as_str(),
            batches_done = checkpoint.batches_done,
            resume_after_s = wait.as_secs(),
            "checkpointed; a follow-up invocation continues the file"
        );
        Ok(FileOutcome::Deferred {
            key: run.key.to_owned(),
            progress_key: checkpoint.key(),
            run_id: checkpoint.run_id,
            batches_sent: checkpoint.batches_done,
            resume_after: wait,
            reason,
        })
    }

    /// Sends one batch and records what was sent: the body under `synced/`, then one
    /// `pending/` record per handle.
    async fn send_one(
        &self,
        batch: &Batch,
        run: &Run<'_>,
        deadline: Option<Instant>,
        sent: &mut Sent,
    ) -> Result<(), Stop> {
        let &Run {
            bucket,
            key,
            ref run_id,
            started,
            ..
        } = run;
        let chunks = self
            .services
            .catalog
            .send_batch(&batch.requests_json, deadline)
            .await
            .map_err(Stop::Graph)?;
        let synced = &self.settings.layout.synced_bucket;
        let split = chunks.len() > 1;
        let mut offset = 0;
        for (index, chunk) in chunks.into_iter().enumerate() {
            let rows = batch
                .rows
                .get(offset..offset + chunk.item_count)
                .unwrap_or_default();
            offset += chunk.item_count;
            let lines: Vec<u64> = rows.iter().map(|row| row.line).collect();
            let part = split.then_some(index + 1);
            let batch_key = keys::synced_batch_key(started, run_id, batch.number, part);
            let body = format!(
                "{{\"item_type\":\"PRODUCT_ITEM\",\"allow_upsert\":true,\"requests\":{}}}",
                chunk.requests_json
            );
            self.services
                .store
                .put(synced, &batch_key, Payload::from(body), "application/json")
                .await
                .map_err(Stop::Store)?;
            let sent_at = self.now_rfc3339();
            for handle in &chunk.response.handles {
                let record = PendingRecord {
                    catalog_id: self.services.catalog.catalog_id().to_owned(),
                    handle: handle.clone(),
                    source_bucket: bucket.to_owned(),
                    source_key: key.to_owned(),
                    run_id: run_id.to_owned(),
                    batch_key: batch_key.clone(),
                    report_key: keys::report_key(started, run_id),
                    item_count: chunk.item_count,
                    sent_at: sent_at.clone(),
                    lines: lines.clone(),
                    stuck_alerted: false,
                };
                let json = serde_json::to_vec(&record).unwrap_or_default();
                self.services
                    .store
                    .put(
                        synced,
                        &keys::pending_key(handle),
                        Payload::from(json),
                        "application/json",
                    )
                    .await
                    .map_err(Stop::Store)?;
            }
            if chunk.response.handles.is_empty() {
                sent.refused += chunk.item_count as u64;
                sent.refused_samples
                    .truncate(MAX_REFUSED_SAMPLES.saturating_sub(1));
                sent.refused_samples.push(Sample {
                    file: Some(key.to_owned()),
                    line: lines.first().copied(),
                    id: None,
                    message: format!(
                        "Meta took none of the {} products in this batch (no handle returned)",
                        chunk.item_count
                    ),
                });
            } else {
                sent.items += chunk.item_count as u64;
            }
            let ids = if chunk.response.validation_status.is_empty() {
                Vec::new()
            } else {
                request_ids(&chunk.requests_json)
            };
            for status in &chunk.response.validation_status {
                for problem in &status.errors {
                    sent.refused += 1;
                    if sent.refused_samples.len() >= MAX_REFUSED_SAMPLES {
                        continue;
                    }
                    sent.refused_samples.push(Sample {
                        file: Some(key.to_owned()),
                        line: line_of(&ids, &lines, &status.retailer_id),
                        id: Some(status.retailer_id.clone()),
                        message: problem.message.clone(),
                    });
                }
            }
            info!(key, run_id, batch = batch.number, part, items = chunk.item_count, handles = ?chunk.response.handles, "batch sent");
            sent.batches.push(BatchRecord {
                number: batch.number,
                part,
                key: batch_key,
                items: chunk.item_count,
                handles: chunk.response.handles.clone(),
                lines: (
                    lines.first().copied().unwrap_or(0),
                    lines.last().copied().unwrap_or(0),
                ),
            });
        }
        Ok(())
    }

    /// Where a person finds `bucket`/`key` (an S3 URL, or a path for a local folder).
    fn at(&self, bucket: &str, key: &str) -> String {
        self.services.store.location(bucket, key)
    }

    fn now_rfc3339(&self) -> String {
        self.services
            .clock
            .now()
            .format(&Rfc3339)
            .unwrap_or_default()
    }

    fn report(
        &self,
        run: &Run<'_>,
        parsed: &Parsed,
        sent: &Sent,
        status: ReportStatus,
        file_now_at: String,
        failure: Option<Failure>,
    ) -> FileReport {
        let &Run {
            bucket,
            key,
            ref info,
            ref run_id,
            started,
            ..
        } = run;
        let now = self.services.clock.now();
        let mut warnings = parsed.warnings.clone();
        if let Some((earlier_run, batches)) = &run.restarted_from {
            warnings.push(format!(
                "the file was replaced while run {earlier_run} was sending it; that run's {batches} batch(es) of the earlier version stay in the catalog, and this run started over with the new version"
            ));
        }
        FileReport {
            run_id: run_id.to_owned(),
            catalog_id: self.services.catalog.catalog_id().to_owned(),
            bucket: bucket.to_owned(),
            source_key: key.to_owned(),
            etag: info.etag.clone(),
            size: info.size,
            status,
            file_now_at,
            started_at: started.format(&Rfc3339).unwrap_or_default(),
            finished_at: progress::format_time(now),
            duration_ms: u64::try_from((now - started).whole_milliseconds()).unwrap_or(0),
            counts: counts(parsed, sent),
            warnings,
            failure,
            batches: sent.batches.clone(),
            refused_items: sent.refused_samples.clone(),
            invocations: run.invocations,
        }
    }

    /// Stores the report under `reports/` (and optionally a copy beside the file).
    async fn store_report(
        &self,
        run: &Run<'_>,
        report: &FileReport,
        spool: RowSpool,
        beside: Option<(&str, String)>,
    ) -> Result<String, StoreError> {
        let report_key = keys::report_key(run.started, &run.run_id);
        let (payload, _keep_alive) =
            spool
                .into_report_payload(report)
                .map_err(|error| StoreError {
                    operation: "WriteReport",
                    location: report_key.clone(),
                    kind: crate::ports::StoreErrorKind::Other,
                    message: error.to_string(),
                })?;
        let synced = &self.settings.layout.synced_bucket;
        self.services
            .store
            .put(synced, &report_key, payload.clone(), "application/json")
            .await?;
        if let Some((bucket, key)) = beside {
            self.services
                .store
                .put(bucket, &key, payload, "application/json")
                .await?;
        }
        Ok(report_key)
    }

    /// Moves `from` to `to` within `bucket`: copy, then delete, so a crash leaves a copy, never none.
    async fn move_object(&self, bucket: &str, from: &str, to: &str) -> Result<(), StoreError> {
        self.services.store.copy(bucket, from, to).await?;
        self.services.store.delete(bucket, from).await
    }

    async fn publish(&self, alert: crate::alert::Alert) {
        if let Err(error) = self.services.alerts.publish(&alert).await {
            // The result is recorded either way; an undelivered alert must at least be in the log.
            warn!(kind = alert.kind.as_str(), subject = alert.subject, %error, "alert not delivered");
        }
    }

    async fn finish_archived(
        &self,
        run: &Run<'_>,
        parsed: Parsed,
        sent: Sent,
        checkpoint: &Checkpoint,
    ) -> Result<FileOutcome, ProcessError> {
        let &Run {
            bucket,
            key,
            relative,
            ref run_id,
            ..
        } = run;
        let archive_key = self.settings.layout.archive_key(relative);
        let report = self.report(
            run,
            &parsed,
            &sent,
            ReportStatus::Archived,
            self.at(bucket, &archive_key),
            None,
        );
        let samples: Vec<RowIssue> = parsed.spool.samples().to_vec();
        let store_error = |source| ProcessError::store(self.at(bucket, key), source);
        let report_key = self
            .store_report(run, &report, parsed.spool, None)
            .await
            .map_err(store_error)?;
        self.move_object(bucket, key, &archive_key)
            .await
            .map_err(store_error)?;
        self.forget(checkpoint).await;
        let counts = report.counts;
        info!(
            key,
            run_id,
            rows_read = counts.rows_read,
            sent = counts.sent,
            rejected = counts.rejected,
            superseded = counts.superseded,
            batches = sent.batches.len(),
            "archived"
        );
        if counts.rejected > 0 || counts.refused_by_meta > 0 {
            let synced = &self.settings.layout.synced_bucket;
            let mut builder = AlertBuilder::new(
                AlertKind::RowsRejected,
                format!("{} of {} rows rejected in {key}", counts.rejected + counts.refused_by_meta, counts.rows_read),
            )
            .what_happened(format!(
                "catalog-sync sent {} products from {} to catalog {}; {} rows were rejected and not sent.",
                counts.sent,
                self.at(bucket, key),
                report.catalog_id,
                counts.rejected + counts.refused_by_meta
            ))
            .fact("File", format!("{} (now {})", self.at(bucket, key), self.at(bucket, &archive_key)))
            .fact("Rows read", counts.rows_read)
            .fact("Products sent", counts.sent)
            .fact("Rows rejected by the CSV rules", counts.rejected)
            .fact("Products refused by Meta when sent", counts.refused_by_meta)
            .fact("Duplicates superseded", counts.superseded)
            .key(self.at(synced, &report_key))
            .next_steps("Fix the listed rows in the source database; they are sent with the next export that includes them. The report lists every rejected row with its line and reason.");
            for issue in samples
                .iter()
                .filter(|i| i.outcome == catalog::RowOutcome::Rejected)
            {
                builder.add_sample(sample_of(key, issue));
            }
            for sample in &sent.refused_samples {
                builder.add_sample(sample.clone());
            }
            self.publish(builder.build()).await;
        }
        Ok(FileOutcome::Archived {
            key: key.to_owned(),
            report_key,
            counts,
            batches: sent.batches.len(),
        })
    }

    async fn finish_rejected(
        &self,
        run: &Run<'_>,
        parsed: Parsed,
        sent: Sent,
        checkpoint: &Checkpoint,
    ) -> Result<FileOutcome, ProcessError> {
        let &Run {
            bucket,
            key,
            relative,
            ref run_id,
            ..
        } = run;
        let rejected_key = self.settings.layout.rejected_key(relative);
        let error = parsed.file_error.as_ref();
        let failure = Failure {
            code: error.map_or("rejected", FileError::code).to_owned(),
            message: error.map_or_else(String::new, ToString::to_string),
            what_to_do: "Fix the file (see the message) and upload it again to the landing folder."
                .to_owned(),
        };
        let report = self.report(
            run,
            &parsed,
            &sent,
            ReportStatus::Rejected,
            self.at(bucket, &rejected_key),
            Some(failure.clone()),
        );
        let store_error = |source| ProcessError::store(self.at(bucket, key), source);
        let beside = keys::report_beside(&rejected_key);
        let report_key = self
            .store_report(run, &report, parsed.spool, Some((bucket, beside.clone())))
            .await
            .map_err(store_error)?;
        self.move_object(bucket, key, &rejected_key)
            .await
            .map_err(store_error)?;
        self.forget(checkpoint).await;
        warn!(
            key,
            run_id,
            code = failure.code,
            "file rejected: {}",
            failure.message
        );
        let synced = &self.settings.layout.synced_bucket;
        let mut builder =
            AlertBuilder::new(AlertKind::FileRejected, format!("file rejected: {key}"))
                .what_happened(format!(
                    "catalog-sync could not use {}: {}",
                    self.at(bucket, key),
                    failure.message
                ))
                .fact(
                    "File",
                    format!(
                        "{} (moved to {})",
                        self.at(bucket, key),
                        self.at(bucket, &rejected_key)
                    ),
                )
                .fact("Problem", &failure.code)
                .key(self.at(bucket, &beside))
                .key(self.at(synced, &report_key))
                .next_steps(failure.what_to_do.clone());
        if !sent.batches.is_empty() {
            builder = builder.fact(
                "Already sent before the problem was found",
                format!(
                    "{} products in {} batch(es); they stay in the catalog",
                    sent.items,
                    sent.batches.len()
                ),
            );
        }
        self.publish(builder.build()).await;
        Ok(FileOutcome::Rejected {
            key: key.to_owned(),
            report_key,
            counts: report.counts,
        })
    }

    /// Gives up on a file left in `data/` after repeated attempts: it moves to `failed/` with
    /// its report (everything its checkpoint knows), the checkpoint goes, and an error alert
    /// says what happened and how to re-send it. Returns the key in `failed/`.
    pub async fn give_up(
        &self,
        checkpoint: Checkpoint,
        info: ObjectInfo,
        why: &str,
    ) -> Result<String, ProcessError> {
        let bucket = checkpoint.source_bucket.as_str();
        let key = checkpoint.source_key.as_str();
        let store_error = |source| ProcessError::store(self.at(bucket, key), source);
        let layout = &self.settings.layout;
        let relative = layout.landing_relative(key).unwrap_or(key);
        let failed_key = layout.failed_key(relative);
        let run = Run {
            bucket,
            key,
            relative,
            info,
            run_id: checkpoint.run_id.clone(),
            started: progress::parse_time(&checkpoint.started_at)
                .unwrap_or_else(|| self.services.clock.now()),
            invocations: checkpoint.invocations,
            restarted_from: None,
        };
        let mut spool = RowSpool::new();
        let synced = layout.synced_bucket.as_str();
        self.restore_spool(&mut spool, &checkpoint).await?;
        let parsed = Parsed::nothing(spool, &checkpoint);
        let sent = Sent::from_checkpoint(&checkpoint);
        let last = checkpoint.last_failure.clone();
        let failure = Failure {
            code: "gave_up".to_owned(),
            message: match &last {
                Some(last) => format!("{why}; the last attempt failed: {}", last.message),
                None => why.to_owned(),
            },
            what_to_do: last.as_ref().map_or_else(
                || "Look at the sync-on-arrival function's log for this file; then copy the file from failed/ back into data/ (or run catalog-sync replay) to send it again.".to_owned(),
                |last| format!("{} Then copy the file from failed/ back into data/ (or run catalog-sync replay) to send it again; batches already sent need nothing.", last.what_to_do),
            ),
        };
        let report = self.report(
            &run,
            &parsed,
            &sent,
            ReportStatus::Failed,
            self.at(bucket, &failed_key),
            Some(failure.clone()),
        );
        let beside = keys::report_beside(&failed_key);
        let report_key = self
            .store_report(&run, &report, parsed.spool, Some((bucket, beside.clone())))
            .await
            .map_err(store_error)?;
        self.move_object(bucket, key, &failed_key)
            .await
            .map_err(store_error)?;
        self.forget(&checkpoint).await;
        warn!(
            key,
            run_id = run.run_id,
            failed_key,
            "gave up: {}",
            failure.message
        );
        let alert = AlertBuilder::new(
            AlertKind::SendFailed,
            format!("gave up on {key}; moved to {}", layout.failed_prefix),
        )
        .what_happened(format!(
            "catalog-sync could not finish {}: {}. It was moved to {} so it no longer waits unseen in the landing folder.",
            self.at(bucket, key),
            failure.message,
            self.at(bucket, &failed_key)
        ))
        .fact("File", self.at(bucket, &failed_key))
        .fact("Attempts", checkpoint.invocations)
        .fact("Re-drives by the poller", checkpoint.redrives)
        .fact("Batches accepted before giving up", sent.batches.len())
        .fact("Products accepted before giving up", sent.items)
        .key(self.at(bucket, &beside))
        .key(self.at(synced, &report_key))
        .next_steps(failure.what_to_do.clone())
        .build();
        self.publish(alert).await;
        Ok(failed_key)
    }

    async fn finish_send_failed(
        &self,
        run: &Run<'_>,
        parsed: Parsed,
        sent: Sent,
        error: GraphError,
        mut checkpoint: Checkpoint,
    ) -> Result<FileOutcome, ProcessError> {
        let &Run {
            bucket,
            key,
            ref run_id,
            ..
        } = run;
        let token = error.class() == ErrorClass::TokenInvalid;
        let failure = Failure {
            code: format!("{:?}", error.class()).to_lowercase(),
            message: error.to_string(),
            what_to_do: error.what_to_do().to_owned(),
        };
        let report = self.report(
            run,
            &parsed,
            &sent,
            ReportStatus::SendFailed,
            self.at(bucket, key),
            Some(failure.clone()),
        );
        // The report is worth having, but the send failure is the error to return.
        let report_key = match self.store_report(run, &report, parsed.spool, None).await {
            Ok(report_key) => Some(report_key),
            Err(store) => {
                warn!(key, %store, "could not store the report of a failed send");
                None
            }
        };
        warn!(key, run_id, class = ?error.class(), batches_sent = sent.batches.len(), "sending failed: {error}");
        // The next attempt (Lambda's retry, the sweep, or a replay) resumes after the batches
        // already sent instead of sending them again.
        checkpoint.failed_attempts += 1;
        checkpoint.last_failure = Some(failure.clone());
        self.release(checkpoint).await;
        let synced = &self.settings.layout.synced_bucket;
        let (kind, headline) = if token {
            (
                AlertKind::TokenInvalid,
                format!("Meta access token refused; {key} not synced"),
            )
        } else {
            (
                AlertKind::SendFailed,
                format!("sending {key} to Meta failed"),
            )
        };
        let mut builder = AlertBuilder::new(kind, headline)
            .what_happened(format!("catalog-sync could not send {} to catalog {}: {}", self.at(bucket, key), report.catalog_id, failure.message))
            .fact("File", format!("{} (left in place)", self.at(bucket, key)))
            .fact("Batches accepted before the failure", sent.batches.len())
            .fact("Products accepted before the failure", sent.items)
            .next_steps(if token {
                "Create a new system-user token with catalog_management permission and store it in the access-token secret; then re-send the file (catalog-sync replay, or copy it into data/ again). Products already accepted are tracked and need nothing."
                    .to_owned()
            } else {
                format!("{} The file stays in the landing folder; Lambda retries it, and you can re-send it with catalog-sync replay.", failure.what_to_do)
            });
        if let Some(report_key) = &report_key {
            builder = builder.key(self.at(synced, report_key));
        }
        self.publish(builder.build()).await;
        Err(ProcessError::SendFailed {
            file: self.at(bucket, key),
            batches_sent: sent.batches.len(),
            error,
        })
    }
}

/// The file a run is processing and when the run started.
struct Run<'a> {
    bucket: &'a str,
    key: &'a str,
    relative: &'a str,
    info: ObjectInfo,
    run_id: String,
    started: OffsetDateTime,
    /// Invocations so far, this one included.
    invocations: u32,
    /// The run of an earlier version of the file, and its batches, when the file was replaced.
    restarted_from: Option<(String, u32)>,
}

/// Why sending stopped.
enum Stop {
    /// Meta refused, for good.
    Graph(GraphError),
    /// Storage failed.
    Store(StoreError),
    /// Continue in a follow-up invocation after a wait.
    Defer(ContinueReason, Duration),
}

fn counts(parsed: &Parsed, sent: &Sent) -> Counts {
    Counts {
        rows_read: parsed.counts.rows_read,
        valid: parsed.counts.valid,
        rejected: parsed.counts.rejected,
        superseded: parsed.superseded,
        sent: sent.items.saturating_sub(sent.refused.min(sent.items)),
        refused_by_meta: sent.refused,
    }
}

fn sample_of(key: &str, issue: &RowIssue) -> Sample {
    Sample {
        file: Some(key.to_owned()),
        line: Some(issue.line),
        id: issue.id.clone(),
        message: issue
            .problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The ids of a batch's requests, in order, to point Meta's per-item errors at CSV lines.
fn request_ids(requests_json: &str) -> Vec<Option<String>> {
    serde_json::from_str::<Vec<serde_json::Value>>(requests_json)
        .map(|requests| {
            requests
                .iter()
                .map(|request| request["data"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The CSV line of `retailer_id`, given the batch's request ids and lines in the same order.
fn line_of(ids: &[Option<String>], lines: &[u64], retailer_id: &str) -> Option<u64> {
    let index = ids
        .iter()
        .rposition(|id| id.as_deref() == Some(retailer_id))?;
    lines.get(index).copied()
}
