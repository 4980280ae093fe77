//! Self-healing: no file is left in `data/` without a person being told.
//!
//! The poller's run also looks at the landing folder and the checkpoints under `progress/`:
//! - a file with a run in progress (a live lease, or a follow-up waiting for Meta's rate limit)
//!   is reported as in progress;
//! - a file older than `STALE_FILE_AGE` with no recent activity (its S3 event was lost, its
//!   continuation was never queued, or its last attempt failed) is re-driven through the
//!   continuation queue, at most `MAX_REDRIVES` times, at least `STALE_FILE_AGE` apart;
//! - after that it is moved to `failed/` with its report, and an error alert is published;
//! - a checkpoint whose file is no longer in `data/` is deleted.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::keys::Layout;
use crate::ports::{Continuation, ContinueReason, ObjectInfo, Services, StoreError, list_all};
use crate::process;
use crate::progress::{self, Checkpoint, ProgressState, format_time, parse_time};

/// When a file counts as left behind, and how often it is re-driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepLimits {
    /// Quiet time after which a file in `data/` counts as left behind (`STALE_FILE_AGE`).
    pub stale_file_age: Duration,
    /// Re-drives before giving up (`MAX_REDRIVES`).
    pub max_redrives: u32,
}

impl SweepLimits {
    /// Limits from the configuration.
    pub fn from_config(config: &crate::Config) -> Self {
        SweepLimits {
            stale_file_age: config.stale_file_age,
            max_redrives: config.max_redrives,
        }
    }
}

/// A file whose run is unfinished, as the poller reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInProgress {
    /// The file's key in `data/`.
    pub key: String,
    /// The run.
    pub run_id: String,
    /// `running` or `waiting`.
    pub state: String,
    /// Batches sent so far.
    pub batches_done: u32,
    /// Rows read up to the resume point.
    pub rows_done: u64,
    /// Invocations so far.
    pub invocations: u32,
    /// Re-drives so far.
    pub redrives: u32,
    /// RFC 3339 time of the last checkpoint write.
    pub updated_at: String,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// Files with an unfinished run.
    pub in_progress: Vec<FileInProgress>,
    /// Files re-driven through the continuation queue.
    pub redriven: Vec<String>,
    /// Files given up on and moved to `failed/` (their keys there).
    pub failed: Vec<String>,
    /// Checkpoints deleted because their file is gone.
    pub orphans_removed: u64,
    /// Storage or queue operations that failed; the files concerned are looked at next run.
    pub errors: u64,
}

/// The sweep of files left behind.
pub struct Sweeper {
    services: Services,
    layout: Layout,
    limits: SweepLimits,
}

impl Sweeper {
    /// A sweeper over these adapters.
    pub fn new(services: Services, layout: Layout, limits: SweepLimits) -> Self {
        Sweeper {
            services,
            layout,
            limits,
        }
    }

    /// Looks at every checkpoint and every file in `data/` once.
    pub async fn run(&self) -> Result<SweepSummary, StoreError> {
        let store = self.services.store.as_ref();
        let layout = &self.layout;
        let now = self.services.clock.now();
        // Checkpoints first: one written after this listing belongs to a file listed below.
        let mut by_key: HashMap<String, Checkpoint> = HashMap::new();
        for checkpoint in progress::load_all(store, &layout.synced_bucket).await? {
            if checkpoint.source_bucket != layout.landing_bucket {
                continue;
            }
            match by_key.get(&checkpoint.source_key) {
                Some(newer) if newer.run_id >= checkpoint.run_id => {}
                _ => {
                    by_key.insert(checkpoint.source_key.clone(), checkpoint);
                }
            }
        }
        let files = list_all(store, &layout.landing_bucket, &layout.landing_prefix).await?;
        let mut summary = SweepSummary::default();
        for file in files {
            if layout.landing_relative(&file.key).is_none() {
                continue;
            }
            let checkpoint = by_key.remove(&file.key);
            self.look_at(file, checkpoint, now, &mut summary).await;
        }
        for orphan in by_key.into_values() {
            if orphan.is_held_by_other("", now) {
                continue;
            }
            match progress::remove(store, &layout.synced_bucket, &orphan).await {
                Ok(()) => summary.orphans_removed += 1,
                Err(error) => {
                    warn!(%error, run_id = orphan.run_id, "could not delete a leftover checkpoint");
                    summary.errors += 1;
                }
            }
        }
        info!(
            in_progress = summary.in_progress.len(),
            redriven = summary.redriven.len(),
            failed = summary.failed.len(),
            orphans_removed = summary.orphans_removed,
            errors = summary.errors,
            "sweep of the landing folder finished"
        );
        Ok(summary)
    }

    async fn look_at(
        &self,
        file: ObjectInfo,
        checkpoint: Option<Checkpoint>,
        now: OffsetDateTime,
        summary: &mut SweepSummary,
    ) {
        // A checkpoint of another version of the file is no record of this one.
        let checkpoint = checkpoint.filter(|checkpoint| checkpoint.etag == file.etag);
        if let Some(checkpoint) = &checkpoint {
            summary.in_progress.push(in_progress(checkpoint));
            let waiting_for_meta = checkpoint.not_before().is_some_and(|at| at > now);
            if checkpoint.is_held_by_other("", now) || waiting_for_meta {
                return;
            }
        }
        let last_activity = checkpoint
            .as_ref()
            .and_then(|checkpoint| parse_time(&checkpoint.updated_at))
            .into_iter()
            .chain(file.last_modified)
            .max();
        let quiet_for = last_activity.map_or(Duration::MAX, |at| {
            Duration::try_from(now - at).unwrap_or(Duration::ZERO)
        });
        if quiet_for < self.limits.stale_file_age {
            return;
        }
        let mut checkpoint = checkpoint.unwrap_or_else(|| self.first_record(&file, now));
        if checkpoint.redrives >= self.limits.max_redrives {
            let why = format!(
                "still in the landing folder after {} re-drive(s) by the poller and {} attempt(s)",
                checkpoint.redrives, checkpoint.invocations
            );
            match process::give_up(&self.services, &self.layout, checkpoint, file, &why).await {
                Ok(failed_key) => summary.failed.push(failed_key),
                Err(error) => {
                    warn!(%error, "could not move a file that was given up on to failed/");
                    summary.errors += 1;
                }
            }
            return;
        }
        checkpoint.redrives += 1;
        checkpoint.state = ProgressState::Waiting;
        checkpoint.updated_at = format_time(now);
        let synced = &self.layout.synced_bucket;
        if let Err(error) = progress::save(self.services.store.as_ref(), synced, &checkpoint).await
        {
            warn!(%error, key = file.key, "could not record a re-drive; trying next run");
            summary.errors += 1;
            return;
        }
        let continuation = Continuation {
            bucket: checkpoint.source_bucket.clone(),
            key: checkpoint.source_key.clone(),
            run_id: Some(checkpoint.run_id.clone()),
            reason: ContinueReason::Redrive,
        };
        match self
            .services
            .continuations
            .schedule(&continuation, Duration::ZERO)
            .await
        {
            Ok(()) => {
                info!(
                    key = file.key,
                    redrive = checkpoint.redrives,
                    max = self.limits.max_redrives,
                    "re-driven: the file was left in the landing folder"
                );
                summary.redriven.push(file.key);
            }
            Err(error) => {
                warn!(%error, "re-drive not queued; trying next run");
                summary.errors += 1;
            }
        }
    }

    /// The record of a file that never got a checkpoint (its event was lost, or every attempt
    /// failed before the first write): it counts the re-drives.
    fn first_record(&self, file: &ObjectInfo, now: OffsetDateTime) -> Checkpoint {
        Checkpoint::fresh(
            now,
            self.services.catalog.catalog_id(),
            &self.layout.landing_bucket,
            &file.key,
            file.etag.clone(),
            file.size,
        )
    }
}

fn in_progress(checkpoint: &Checkpoint) -> FileInProgress {
    FileInProgress {
        key: checkpoint.source_key.clone(),
        run_id: checkpoint.run_id.clone(),
        state: match checkpoint.state {
            ProgressState::Running => "running",
            ProgressState::Waiting => "waiting",
        }
        .to_owned(),
        batches_done: checkpoint.batches_done,
        rows_done: checkpoint.resume_at.as_ref().map_or(0, |at| at.rows),
        invocations: checkpoint.invocations,
        redrives: checkpoint.redrives,
        updated_at: checkpoint.updated_at.clone(),
    }
}
