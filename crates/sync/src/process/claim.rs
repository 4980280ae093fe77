//! Claiming a file: leases and checkpoints. A run starts, resumes from its checkpoint, starts
//! over when the file was replaced, waits out Meta's rate limit, or leaves the file to the
//! invocation that holds its lease. Also the checkpoint's other moves: released for the next
//! attempt, deferred to a follow-up invocation, or forgotten when the run is over.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{FileOutcome, FileProcessor, ProcessError, Run, Scope, parse};
use crate::ports::{Continuation, ObjectInfo, read_small};
use crate::progress::{self, Checkpoint, ContinueReason, ProgressState};
use crate::report::RowSpool;

/// Time kept back from a Lambda deadline to write reports and checkpoints after the last call;
/// a running checkpoint's lease covers it, so no other invocation takes the file meanwhile.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);
/// SQS's longest delay; a longer wait is re-queued by the follow-up.
const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);
/// How long a running checkpoint is protected when there is no invocation deadline.
const LOCAL_LEASE: Duration = Duration::from_secs(5 * 60);
/// A follow-up that comes this close to the end of Meta's wait goes ahead.
const EARLY_FOLLOW_UP_TOLERANCE: Duration = Duration::from_secs(5);

/// What claiming a file decided.
pub(super) enum Claim<'a> {
    /// Nothing to send now: not a landing CSV, already processed, busy, or still waiting.
    Settled(FileOutcome),
    /// This invocation holds the run.
    Run(Run<'a>, Box<Checkpoint>),
}

impl FileProcessor {
    /// Takes the lease on `key`'s run (a new one, or the checkpointed one), or says why not.
    pub(super) async fn claim<'a>(
        &self,
        bucket: &'a str,
        key: &'a str,
        deadline: Option<Instant>,
    ) -> Result<Claim<'a>, ProcessError> {
        let scope = self.scope();
        let layout = &self.settings.layout;
        let Some(relative) = layout.landing_relative(key) else {
            info!(
                key,
                "ignored: not a .csv file under {}", layout.landing_prefix
            );
            return Ok(Claim::Settled(FileOutcome::Ignored {
                key: key.to_owned(),
            }));
        };
        let store_error = |source| ProcessError::store(scope.at(bucket, key), source);
        let store = self.services.store.as_ref();
        let synced = scope.synced();
        let Some(info) = store.head(bucket, key).await.map_err(store_error)? else {
            info!(
                key,
                "already processed: the file is no longer in the landing folder"
            );
            return Ok(Claim::Settled(FileOutcome::AlreadyProcessed {
                key: key.to_owned(),
            }));
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
                return Ok(Claim::Settled(FileOutcome::Busy {
                    key: key.to_owned(),
                    run_id: checkpoint.run_id,
                }));
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
                    .filter(|wait| *wait > EARLY_FOLLOW_UP_TOLERANCE)
                {
                    return self.requeue(checkpoint, wait).await.map(Claim::Settled);
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
            info,
            run_id: checkpoint.run_id.clone(),
            started,
            invocations: checkpoint.invocations,
            restarted_from: restarted_from.map(|old| (old.run_id, old.batches_done)),
        };
        info!(
            key,
            run_id = run.run_id,
            size = run.info.size,
            invocation = checkpoint.invocations,
            batches_done = checkpoint.batches_done,
            "processing"
        );
        Ok(Claim::Run(run, Box::new(checkpoint)))
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

    /// Extends the lease to the end of this invocation (its deadline and the margin kept
    /// back from it), or by [`LOCAL_LEASE`] without a deadline.
    pub(super) fn renew_lease(&self, checkpoint: &mut Checkpoint, deadline: Option<Instant>) {
        let now = self.services.clock.now();
        let left = deadline.map_or(LOCAL_LEASE, |deadline| {
            deadline.saturating_duration_since(Instant::now()) + DEADLINE_MARGIN
        });
        checkpoint.lease_until = progress::format_time(now + left);
        checkpoint.updated_at = progress::format_time(now);
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
        self.scope()
            .schedule(&checkpoint, ContinueReason::Throttled, wait)
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

    /// Checkpoints the run as waiting and asks for a follow-up invocation after `wait`.
    pub(super) async fn defer(
        &self,
        run: &Run<'_>,
        mut checkpoint: Checkpoint,
        reason: ContinueReason,
        wait: Duration,
    ) -> Result<FileOutcome, ProcessError> {
        let scope = self.scope();
        let now = self.services.clock.now();
        checkpoint.state = ProgressState::Waiting;
        checkpoint.holder.clear();
        checkpoint.resume_not_before = (!wait.is_zero()).then(|| progress::format_time(now + wait));
        checkpoint.updated_at = progress::format_time(now);
        progress::save(self.services.store.as_ref(), scope.synced(), &checkpoint)
            .await
            .map_err(|error| ProcessError::store(scope.at(run.bucket, run.key), error))?;
        scope.schedule(&checkpoint, reason, wait).await;
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
}

impl Scope<'_> {
    /// Lets another invocation take the file at once (this one stops without finishing it).
    pub(super) async fn release(&self, mut checkpoint: Checkpoint) {
        checkpoint.state = ProgressState::Waiting;
        checkpoint.holder.clear();
        checkpoint.updated_at = self.now_rfc3339();
        if let Err(error) =
            progress::save(self.services.store.as_ref(), self.synced(), &checkpoint).await
        {
            warn!(%error, run_id = checkpoint.run_id, "could not release the checkpoint; it is free again once its lease runs out");
        }
    }

    /// The run is over: its checkpoint goes (a leftover is harmless and swept later).
    pub(super) async fn forget(&self, checkpoint: &Checkpoint) {
        if let Err(error) =
            progress::remove(self.services.store.as_ref(), self.synced(), checkpoint).await
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

    /// Puts back the rejected rows an earlier invocation of the run stored with its checkpoint.
    pub(super) async fn restore_spool(
        &self,
        spool: &mut RowSpool,
        checkpoint: &Checkpoint,
    ) -> Result<(), ProcessError> {
        let file = self.at(&checkpoint.source_bucket, &checkpoint.source_key);
        for part in &checkpoint.spool_parts {
            let bytes = read_small(self.services.store.as_ref(), self.synced(), part)
                .await
                .map_err(|error| ProcessError::store(file.clone(), error))?
                .unwrap_or_default();
            spool.write_stored(&bytes).map_err(|error| {
                ProcessError::internal(file.clone(), parse::spool_failure(&error))
            })?;
        }
        spool.restored(&checkpoint.spool);
        Ok(())
    }
}
