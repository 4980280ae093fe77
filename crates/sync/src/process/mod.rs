//! Use case: process one landed file — validate, transform, send, record, archive.
//!
//! [`FileProcessor::process`] runs the phases in order, each in its own file:
//! - [`claim`]: leases and checkpoints — start, resume, or leave the file to the run that
//!   holds it;
//! - open (here): the download from the checkpoint's byte, and the rejected rows of earlier
//!   invocations; [`parse`] reads and batches it on a blocking thread;
//! - [`send`]: batches out, handles and refusals in, a checkpoint after each;
//! - route (here): what the run's end means — deferred, failed to send, rejected, archived;
//! - [`finish`]: the one finishing path of archived, rejected, failed and given-up files
//!   (report, store, move, forget the checkpoint, alert).

mod changes;
mod claim;
mod finish;
mod parse;
mod send;

use std::time::Duration;

use catalog::FileError;
use graph::GraphError;
use time::OffsetDateTime;
use tokio::time::Instant;

pub use self::changes::HeldDeletes;
pub use self::claim::DEADLINE_MARGIN;
use self::finish::Ending;
pub(crate) use self::finish::give_up;
use self::parse::Parsed;
use self::send::{Sent, Stop};
use crate::keys::Layout;
pub use crate::ports::Services;
use crate::ports::{ObjectBody, ObjectInfo, StoreError, StoreErrorKind};
use crate::progress::{Checkpoint, ContinueReason};
use crate::report::{Counts, RowSpool, SpoolReader};

/// What processing needs besides the adapters.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Buckets and prefixes.
    pub layout: Layout,
    /// Requests per call and bytes per body.
    pub batch_limits: catalog::BatchLimits,
    /// Where `product_type` goes.
    pub mapping: catalog::ProductTypeMapping,
    /// The retailer's columns as Meta's fields, and fixed values, applied to every file.
    pub column_mapping: catalog::ColumnMapping,
    /// File, row and record limits.
    pub reader_limits: catalog::ReaderLimits,
    /// Time a batch call needs: with less left before the deadline, the file is checkpointed
    /// and continued by a follow-up invocation.
    pub min_send_window: Duration,
    /// Change detection and the snapshot delete guard.
    pub changes: crate::config::ChangeSettings,
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
            column_mapping: config.column_mapping.clone(),
            reader_limits: catalog::ReaderLimits::default(),
            min_send_window: DEFAULT_MIN_SEND_WINDOW,
            changes: config.changes,
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
    pub(crate) fn store(file: String, source: StoreError) -> Self {
        ProcessError::Store { file, source }
    }

    pub(crate) fn internal(file: String, message: impl Into<String>) -> Self {
        ProcessError::Internal {
            file,
            message: message.into(),
        }
    }
}

/// The "process one landed file" use case.
#[derive(Clone)]
pub struct FileProcessor {
    services: Services,
    settings: Settings,
}

/// The file a run is processing and when the run started.
pub(crate) struct Run<'a> {
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

/// What every phase works with: the adapters, and where files go. The sweep builds one to
/// give up on a file, with no processing settings.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) services: &'a Services,
    pub(crate) layout: &'a Layout,
}

impl Scope<'_> {
    /// Where a person finds `bucket`/`key` (an S3 URL, or a path for a local folder).
    fn at(&self, bucket: &str, key: &str) -> String {
        self.services.store.location(bucket, key)
    }

    fn now_rfc3339(&self) -> String {
        crate::progress::format_time(self.services.clock.now())
    }

    fn synced(&self) -> &str {
        &self.layout.synced_bucket
    }
}

/// The download and the rejected-row spool of a claimed run.
struct Opened {
    body: ObjectBody,
    spool: RowSpool,
    spool_reader: SpoolReader,
}

/// How a run ended, before it is finished or deferred.
struct Ended {
    checkpoint: Checkpoint,
    parsed: Parsed,
    sent: Sent,
    stop: Option<Stop>,
}

impl FileProcessor {
    /// A processor over these adapters.
    pub fn new(services: Services, settings: Settings) -> Self {
        FileProcessor { services, settings }
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.settings.layout
    }

    /// The calls made to Meta so far through this processor's catalog adapter.
    pub fn graph_calls(&self) -> graph::CallCounts {
        self.services.catalog.call_counts()
    }

    /// Processes `key` in `bucket` before `deadline`, resuming an unfinished run of it:
    /// claim, open, send, then route the result to its end.
    pub async fn process(
        &self,
        bucket: &str,
        key: &str,
        deadline: Option<Instant>,
    ) -> Result<FileOutcome, ProcessError> {
        let (run, checkpoint) = match self.claim(bucket, key, deadline).await? {
            claim::Claim::Settled(outcome) => return Ok(outcome),
            claim::Claim::Run(run, checkpoint) => (run, *checkpoint),
        };
        let loaded = match self.load_changes(&run, &checkpoint).await {
            Ok(loaded) => loaded,
            Err(error) => {
                self.scope().release(checkpoint).await;
                return Err(error);
            }
        };
        let (opened, checkpoint) = match self.open(&run, checkpoint).await? {
            Ok(opened) => opened,
            Err(outcome) => return Ok(outcome),
        };
        let mut ended = self
            .send_all(&run, checkpoint, opened, deadline, &loaded.changes)
            .await?;
        self.save_changes(&loaded, &mut ended).await;
        let held = ended.parsed.held_deletes.clone();
        let outcome = self.route(&run, ended).await?;
        self.end_snapshot(&run, &loaded.changes, held, &outcome)
            .await;
        Ok(outcome)
    }

    /// After a finished run: a `deletes_held` alert for deletes held back, or, when a
    /// released snapshot was archived, the release is used up.
    async fn end_snapshot(
        &self,
        run: &Run<'_>,
        changes: &changes::Changes,
        held: Option<HeldDeletes>,
        outcome: &FileOutcome,
    ) {
        let (report_key, archived) = match outcome {
            FileOutcome::Archived { report_key, .. } => (report_key, true),
            FileOutcome::Rejected { report_key, .. } => (report_key, false),
            _ => return,
        };
        match held {
            Some(held) => {
                self.alert_deletes_held(run, held, report_key, archived)
                    .await;
            }
            None if archived => changes.forget_release(run.key).await,
            None => {}
        }
    }

    /// Loads the catalog's state for the run (a state that cannot be used is started over,
    /// with a warning alert; one that cannot be read fails the run, which is retried).
    async fn load_changes(
        &self,
        run: &Run<'_>,
        checkpoint: &Checkpoint,
    ) -> Result<changes::Loaded, ProcessError> {
        let scope = self.scope();
        let loaded = changes::Changes::load(
            &self.services,
            scope.synced(),
            self.settings.changes,
            run,
            checkpoint,
            self.settings.layout.is_snapshot(run.key),
        )
        .await
        .map_err(|error| ProcessError::store(scope.at(run.bucket, run.key), error))?;
        if let Some(why) = &loaded.unusable {
            let state_at = loaded.changes.store().location();
            let alert =
                crate::alert::wording::state_reset(&state_at, why, &scope.at(run.bucket, run.key));
            scope.publish(alert).await;
        }
        Ok(loaded)
    }

    /// Saves the state at the end of the invocation; a run that goes on later keeps its
    /// snapshot marks. A failed save is a warning in the report: those products go again.
    async fn save_changes(&self, loaded: &changes::Loaded, ended: &mut Ended) {
        // A run that is not finished by `route` (deferred, failed, or a broken download) is
        // continued from its checkpoint, with its marks.
        let goes_on = ended.stop.is_some()
            || ended.parsed.internal_error.is_some()
            || ended.parsed.read_broke();
        let deferred_at = goes_on.then_some(ended.checkpoint.batches_done);
        if let Err(error) = loaded.changes.save(&loaded.folded, deferred_at).await {
            ended.parsed.warnings.push(format!(
                "the record of what Meta holds could not be saved ({error}); the products of this file are sent again next time"
            ));
        }
        if let Some(why) = &loaded.unusable {
            ended.parsed.warnings.push(format!(
                "the record of what Meta holds could not be used ({why}) and was started over: every product was sent"
            ));
        }
        if let Some(held) = &ended.parsed.held_deletes {
            ended
                .parsed
                .warnings
                .push(format!("{} deletes held back: {}", held.count, held.reason));
        }
    }

    /// Publishes `deletes_held` for a snapshot archived with its deletes held back.
    async fn alert_deletes_held(
        &self,
        run: &Run<'_>,
        held: HeldDeletes,
        report_key: &str,
        archived: bool,
    ) {
        let scope = self.scope();
        let layout = &self.settings.layout;
        let archived_key = if archived {
            layout.archive_key(run.relative)
        } else {
            layout.rejected_key(run.relative)
        };
        let alert = crate::alert::wording::deletes_held(crate::alert::wording::DeletesHeld {
            key: run.key.to_owned(),
            file: scope.at(run.bucket, &archived_key),
            archived_key,
            count: held.count,
            known: held.known,
            examples: held.examples,
            reason: held.reason,
            report: scope.at(scope.synced(), report_key),
        });
        scope.publish(alert).await;
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            services: &self.services,
            layout: &self.settings.layout,
        }
    }

    /// Opens the claimed file where its checkpoint left off, with the rejected rows earlier
    /// invocations found; a file over the size limit is rejected without reading it, and a
    /// file gone since the claim needs nothing more.
    async fn open(
        &self,
        run: &Run<'_>,
        checkpoint: Checkpoint,
    ) -> Result<Result<(Opened, Checkpoint), FileOutcome>, ProcessError> {
        let scope = self.scope();
        let (bucket, key) = (run.bucket, run.key);
        let (mut spool, spool_reader) = RowSpool::on_disk().map_err(|error| {
            ProcessError::internal(scope.at(bucket, key), parse::spool_failure(&error))
        })?;
        let max_bytes = self.settings.reader_limits.max_file_bytes;
        if run.info.size > max_bytes {
            let mut parsed = Parsed::nothing(spool, &checkpoint);
            parsed.file_error = Some(FileError::FileTooLarge { max_bytes });
            let ended = Ended {
                checkpoint,
                parsed,
                sent: Sent::default(),
                stop: None,
            };
            return scope.finish(run, ended, Ending::Rejected).await.map(Err);
        }
        let from = checkpoint.resume_at.as_ref().map_or(0, |at| at.byte);
        let opened = match scope.restore_spool(&mut spool, &checkpoint).await {
            Ok(()) => self
                .services
                .store
                .get(bucket, key, from, run.info.etag.as_deref())
                .await
                .map_err(|source| ProcessError::store(scope.at(bucket, key), source)),
            Err(error) => Err(error),
        };
        match opened {
            Ok(Some((_, body))) => Ok(Ok((
                Opened {
                    body,
                    spool,
                    spool_reader,
                },
                checkpoint,
            ))),
            Ok(None) => {
                scope.forget(&checkpoint).await;
                Ok(Err(FileOutcome::AlreadyProcessed {
                    key: key.to_owned(),
                }))
            }
            Err(error) => {
                scope.release(checkpoint).await;
                Err(error)
            }
        }
    }

    /// Routes the end of the sending phase: a deferral is checkpointed for a follow-up, a
    /// failure to send or a broken download leaves the file for the next attempt, an
    /// unusable file is rejected, and a file read to its end is archived.
    async fn route(&self, run: &Run<'_>, ended: Ended) -> Result<FileOutcome, ProcessError> {
        let scope = self.scope();
        let (bucket, key) = (run.bucket, run.key);
        if let Some(message) = ended.parsed.internal_error.clone() {
            scope.release(ended.checkpoint).await;
            return Err(ProcessError::internal(scope.at(bucket, key), message));
        }
        let read_broke = ended.parsed.read_broke();
        match ended.stop {
            Some(Stop::Store(error)) => {
                scope.release(ended.checkpoint).await;
                Err(ProcessError::store(scope.at(bucket, key), error))
            }
            Some(Stop::Defer(reason, wait)) => {
                self.defer(run, ended.checkpoint, reason, wait).await
            }
            Some(Stop::Graph(error)) => {
                let ended = Ended {
                    stop: None,
                    ..ended
                };
                scope.finish(run, ended, Ending::SendFailed(error)).await
            }
            // The download broke, not the file: the next attempt resumes after the last batch.
            None if read_broke => {
                scope.release(ended.checkpoint).await;
                let message = ended
                    .parsed
                    .file_error
                    .map(|error| error.to_string())
                    .unwrap_or_default();
                Err(ProcessError::store(
                    scope.at(bucket, key),
                    StoreError {
                        operation: "GetObject",
                        location: scope.at(bucket, key),
                        kind: StoreErrorKind::Other,
                        message: format!(
                            "{message}; the file stays in the landing folder and the next attempt resumes from its checkpoint"
                        ),
                    },
                ))
            }
            None if ended.parsed.file_error.is_some() => {
                scope.finish(run, ended, Ending::Rejected).await
            }
            None => scope.finish(run, ended, Ending::Archived).await,
        }
    }
}

/// Row and product counts of a run, from the reading and the sending side.
fn counts(parsed: &Parsed, sent: &Sent) -> Counts {
    Counts {
        rows_read: parsed.counts.rows_read,
        valid: parsed.counts.valid,
        rejected: parsed.counts.rejected,
        superseded: parsed.superseded,
        sent: sent.items.saturating_sub(sent.refused.min(sent.items)),
        refused_by_meta: sent.refused,
        unchanged: parsed.counts.unchanged,
        deleted: sent.deleted,
        deletes_held: parsed.held_deletes.as_ref().map_or(0, |held| held.count),
    }
}
