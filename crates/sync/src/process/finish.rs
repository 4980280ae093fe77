//! The one finishing path of a run, whatever its end: archived, rejected, failed to send, or
//! given up on by the sweep. In order: the report is written (under `reports/`, and beside a
//! file moved to `rejected/` or `failed/`), the file moves to its folder (a file that failed to
//! send stays in `data/`), the checkpoint is forgotten (or released for the next attempt), and
//! the alert of that end is published (its wording is in [`crate::alert::wording`]).

use catalog::{FileError, RowIssue, RowOutcome};
use graph::{ErrorClass, GraphError};
use tracing::{info, warn};

use super::parse::Parsed;
use super::send::Sent;
use super::{Ended, FileOutcome, ProcessError, Run, Scope, counts};
use crate::alert::wording::{self, FIX_THE_FILE};
use crate::alert::{Alert, Sample};
use crate::keys::{self, Layout};
use crate::ports::{ObjectInfo, Services, StoreError, StoreErrorKind};
use crate::progress::{self, Checkpoint};
use crate::report::{Counts, Failure, FileReport, ReportStatus, RowSpool};

/// How a run ends.
pub(crate) enum Ending {
    /// Read to its end and sent: the file moves to `archive/`.
    Archived,
    /// Unusable (the parsed file error says why): the file moves to `rejected/`.
    Rejected,
    /// Meta refused or could not be reached for good: the file stays in `data/`.
    SendFailed(GraphError),
    /// The sweep gave up after repeated attempts: the file moves to `failed/`.
    GaveUp {
        /// Why, for the report and the alert.
        why: String,
    },
}

impl Ending {
    fn status(&self) -> ReportStatus {
        match self {
            Ending::Archived => ReportStatus::Archived,
            Ending::Rejected => ReportStatus::Rejected,
            Ending::SendFailed(_) => ReportStatus::SendFailed,
            Ending::GaveUp { .. } => ReportStatus::Failed,
        }
    }

    /// Where the file goes, relative to the landing prefix; `None` when it stays.
    fn destination(&self, layout: &Layout, relative: &str) -> Option<String> {
        match self {
            Ending::Archived => Some(layout.archive_key(relative)),
            Ending::Rejected => Some(layout.rejected_key(relative)),
            Ending::SendFailed(_) => None,
            Ending::GaveUp { .. } => Some(layout.failed_key(relative)),
        }
    }

    /// What the report and the alert say went wrong, if anything did.
    fn failure(&self, parsed: &Parsed, checkpoint: &Checkpoint) -> Option<Failure> {
        match self {
            Ending::Archived => None,
            Ending::Rejected => {
                let error = parsed.file_error.as_ref();
                Some(Failure {
                    code: error.map_or("rejected", FileError::code).to_owned(),
                    message: error.map_or_else(String::new, ToString::to_string),
                    what_to_do: FIX_THE_FILE.to_owned(),
                })
            }
            Ending::SendFailed(error) => Some(Failure {
                code: format!("{:?}", error.class()).to_lowercase(),
                message: error.to_string(),
                what_to_do: error.what_to_do().to_owned(),
            }),
            Ending::GaveUp { why } => {
                let last = checkpoint.last_failure.as_ref();
                Some(Failure {
                    code: "gave_up".to_owned(),
                    message: match last {
                        Some(last) => format!("{why}; the last attempt failed: {}", last.message),
                        None => why.clone(),
                    },
                    what_to_do: wording::gave_up_what_to_do(
                        last.map(|last| last.what_to_do.as_str()),
                    ),
                })
            }
        }
    }
}

/// Gives up on a file left in `data/` after repeated attempts: it moves to `failed/` with its
/// report (everything its checkpoint knows), the checkpoint goes, and an error alert says what
/// happened and how to re-send it. Returns the key in `failed/`.
pub(crate) async fn give_up(
    services: &Services,
    layout: &Layout,
    checkpoint: Checkpoint,
    info: ObjectInfo,
    why: &str,
) -> Result<String, ProcessError> {
    let scope = Scope { services, layout };
    let bucket = checkpoint.source_bucket.clone();
    let key = checkpoint.source_key.clone();
    let relative = layout.landing_relative(&key).unwrap_or(&key);
    let failed_key = layout.failed_key(relative);
    let run = Run {
        bucket: &bucket,
        key: &key,
        relative,
        info,
        run_id: checkpoint.run_id.clone(),
        started: progress::parse_time(&checkpoint.started_at)
            .unwrap_or_else(|| services.clock.now()),
        invocations: checkpoint.invocations,
        restarted_from: None,
    };
    let mut spool = RowSpool::new();
    scope.restore_spool(&mut spool, &checkpoint).await?;
    let ended = Ended {
        parsed: Parsed::nothing(spool, &checkpoint),
        sent: Sent::from_checkpoint(&checkpoint),
        checkpoint,
        stop: None,
    };
    let why = why.to_owned();
    scope
        .finish_run(&run, ended, Ending::GaveUp { why })
        .await?;
    Ok(failed_key)
}

/// What a finished run left: its report, its counts and its batches.
struct Finished {
    report_key: String,
    counts: Counts,
    batches: usize,
}

impl Scope<'_> {
    /// Finishes a run that this invocation processed: archived or rejected, or (for a failed
    /// send) the error to return.
    pub(super) async fn finish(
        &self,
        run: &Run<'_>,
        ended: Ended,
        ending: Ending,
    ) -> Result<FileOutcome, ProcessError> {
        let archived = matches!(ending, Ending::Archived);
        let key = run.key.to_owned();
        let Finished {
            report_key,
            counts,
            batches,
        } = self.finish_run(run, ended, ending).await?;
        Ok(if archived {
            FileOutcome::Archived {
                key,
                report_key,
                counts,
                batches,
            }
        } else {
            FileOutcome::Rejected {
                key,
                report_key,
                counts,
            }
        })
    }

    /// The finishing path: report, store, move, forget (or release) the checkpoint, alert.
    async fn finish_run(
        &self,
        run: &Run<'_>,
        ended: Ended,
        ending: Ending,
    ) -> Result<Finished, ProcessError> {
        let Ended {
            mut checkpoint,
            parsed,
            sent,
            ..
        } = ended;
        let (bucket, key) = (run.bucket, run.key);
        let file = self.at(bucket, key);
        let store_error = |source| ProcessError::store(file.clone(), source);
        let destination = ending.destination(self.layout, run.relative);
        let failure = ending.failure(&parsed, &checkpoint);
        let now_at = self.at(bucket, destination.as_deref().unwrap_or(key));
        let report = self.report(
            run,
            &parsed,
            &sent,
            ending.status(),
            now_at.clone(),
            failure.clone(),
        );
        // A file moved aside carries its report beside it, for whoever finds it there.
        let beside = match ending {
            Ending::Rejected | Ending::GaveUp { .. } => {
                destination.as_deref().map(keys::report_beside)
            }
            Ending::Archived | Ending::SendFailed(_) => None,
        };
        let samples: Vec<RowIssue> = parsed.spool.samples().to_vec();
        let stored = self
            .store_report(
                run,
                &report,
                parsed.spool,
                beside.clone().map(|b| (bucket, b)),
            )
            .await;
        let report_key = match (&ending, stored) {
            (_, Ok(report_key)) => Some(report_key),
            // The report is worth having, but the send failure is the error to return.
            (Ending::SendFailed(_), Err(store)) => {
                warn!(key, %store, "could not store the report of a failed send");
                None
            }
            (_, Err(store)) => {
                return Err(self
                    .unfinished(&ending, checkpoint, store_error(store))
                    .await);
            }
        };
        if let Some(destination) = &destination
            && let Err(store) = self.move_object(bucket, key, destination).await
        {
            return Err(self
                .unfinished(&ending, checkpoint, store_error(store))
                .await);
        }
        let facts = Facts {
            run,
            file,
            now_at,
            report: &report,
            report_at: report_key.as_deref().map(|k| self.at(self.synced(), k)),
            beside_at: beside.as_deref().map(|k| self.at(bucket, k)),
            sent: &sent,
            failure: failure.as_ref(),
        };
        match &ending {
            Ending::SendFailed(_) => {
                // The next attempt (Lambda's retry, the sweep, or a replay) resumes after the
                // batches already sent instead of sending them again.
                checkpoint.failed_attempts += 1;
                checkpoint.last_failure = failure.clone();
            }
            _ => self.forget(&checkpoint).await,
        }
        let alert = match &ending {
            Ending::Archived => facts.archived(&samples),
            Ending::Rejected => Some(facts.rejected()),
            Ending::SendFailed(error) => Some(facts.send_failed(error)),
            Ending::GaveUp { .. } => Some(facts.gave_up(&checkpoint, self.layout)),
        };
        let outcome = match ending {
            Ending::SendFailed(error) => {
                warn!(key, run_id = run.run_id, class = ?error.class(), batches_sent = sent.batches.len(), "sending failed: {error}");
                self.release(checkpoint).await;
                Err(ProcessError::SendFailed {
                    file: self.at(bucket, key),
                    batches_sent: sent.batches.len(),
                    error,
                })
            }
            Ending::Archived | Ending::Rejected | Ending::GaveUp { .. } => Ok(Finished {
                report_key: report_key.unwrap_or_default(),
                counts: report.counts,
                batches: sent.batches.len(),
            }),
        };
        if let Some(alert) = alert {
            self.publish(alert).await;
        }
        outcome
    }

    /// A finish that failed leaves the run to the next attempt at once, instead of after the
    /// lease; the file stays in `data/` with its checkpoint, and the next run finishes it.
    async fn unfinished(
        &self,
        ending: &Ending,
        checkpoint: Checkpoint,
        error: ProcessError,
    ) -> ProcessError {
        // The sweep's checkpoint of a file given up on holds no lease to release.
        if matches!(ending, Ending::Archived | Ending::Rejected) {
            self.release(checkpoint).await;
        }
        error
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
        let now = self.services.clock.now();
        let mut warnings = parsed.warnings.clone();
        if let Some((earlier_run, batches)) = &run.restarted_from {
            warnings.push(format!(
                "the file was replaced while run {earlier_run} was sending it; that run's {batches} batch(es) of the earlier version stay in the catalog, and this run started over with the new version"
            ));
        }
        FileReport {
            run_id: run.run_id.clone(),
            catalog_id: self.services.catalog.catalog_id().to_owned(),
            bucket: run.bucket.to_owned(),
            source_key: run.key.to_owned(),
            etag: run.info.etag.clone(),
            size: run.info.size,
            status,
            file_now_at,
            started_at: progress::format_time(run.started),
            finished_at: progress::format_time(now),
            duration_ms: u64::try_from((now - run.started).whole_milliseconds()).unwrap_or(0),
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
                    kind: StoreErrorKind::Other,
                    message: error.to_string(),
                })?;
        self.services
            .store
            .put(
                self.synced(),
                &report_key,
                payload.clone(),
                "application/json",
            )
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

    pub(super) async fn publish(&self, alert: Alert) {
        if let Err(error) = self.services.alerts.publish(&alert).await {
            // The result is recorded either way; an undelivered alert must at least be in the log.
            warn!(kind = alert.kind.as_str(), subject = alert.subject, %error, "alert not delivered");
        }
    }
}

/// What a finished run's alert is made of.
struct Facts<'a> {
    run: &'a Run<'a>,
    /// Where the file was.
    file: String,
    /// Where the file is now.
    now_at: String,
    report: &'a FileReport,
    report_at: Option<String>,
    beside_at: Option<String>,
    sent: &'a Sent,
    failure: Option<&'a Failure>,
}

impl Facts<'_> {
    fn key(&self) -> String {
        self.run.key.to_owned()
    }

    fn reports(&self) -> [String; 2] {
        [
            self.beside_at.clone().unwrap_or_default(),
            self.report_at.clone().unwrap_or_default(),
        ]
    }

    fn failure_text(&self) -> (String, String) {
        self.failure
            .map(|f| (f.code.clone(), f.message.clone()))
            .unwrap_or_default()
    }

    /// `rows_rejected` when rows were left out; an archived file with none needs no alert.
    fn archived(&self, samples: &[RowIssue]) -> Option<Alert> {
        let counts = self.report.counts;
        info!(
            key = self.run.key,
            run_id = self.run.run_id,
            rows_read = counts.rows_read,
            sent = counts.sent,
            deleted = counts.deleted,
            rejected = counts.rejected,
            superseded = counts.superseded,
            batches = self.sent.batches.len(),
            "archived"
        );
        if counts.rejected == 0 && counts.refused_by_meta == 0 {
            return None;
        }
        let rejected_rows = samples
            .iter()
            .filter(|issue| issue.outcome == RowOutcome::Rejected)
            .map(|issue| sample_of(self.run.key, issue));
        Some(wording::rows_rejected(wording::RowsRejected {
            key: self.key(),
            file: self.file.clone(),
            archived_at: self.now_at.clone(),
            catalog_id: self.report.catalog_id.clone(),
            rows_read: counts.rows_read,
            sent: counts.sent,
            deleted: counts.deleted,
            rejected: counts.rejected,
            refused_by_meta: counts.refused_by_meta,
            superseded: counts.superseded,
            report: self.report_at.clone().unwrap_or_default(),
            samples: rejected_rows
                .chain(self.sent.refused_samples.iter().cloned())
                .collect(),
        }))
    }

    fn rejected(&self) -> Alert {
        let (code, message) = self.failure_text();
        warn!(
            key = self.run.key,
            run_id = self.run.run_id,
            code,
            "file rejected: {message}"
        );
        wording::file_rejected(wording::FileRejected {
            key: self.key(),
            file: self.file.clone(),
            rejected_at: self.now_at.clone(),
            code,
            message,
            already_sent: (!self.sent.batches.is_empty())
                .then_some((self.sent.items, self.sent.batches.len())),
            reports: self.reports(),
        })
    }

    fn send_failed(&self, error: &GraphError) -> Alert {
        let (_, message) = self.failure_text();
        wording::send_failed(wording::SendFailed {
            key: self.key(),
            file: self.file.clone(),
            catalog_id: self.report.catalog_id.clone(),
            token_refused: error.class() == ErrorClass::TokenInvalid,
            message,
            what_to_do: error.what_to_do().to_owned(),
            batches: self.sent.batches.len(),
            items: self.sent.items,
            report: self.report_at.clone(),
        })
    }

    fn gave_up(&self, checkpoint: &Checkpoint, layout: &Layout) -> Alert {
        let (_, message) = self.failure_text();
        warn!(
            key = self.run.key,
            run_id = self.run.run_id,
            failed_at = self.now_at,
            "gave up: {message}"
        );
        wording::gave_up(wording::GaveUp {
            key: self.key(),
            failed_prefix: layout.failed_prefix.clone(),
            file: self.file.clone(),
            failed_at: self.now_at.clone(),
            message,
            what_to_do: self
                .failure
                .map(|f| f.what_to_do.clone())
                .unwrap_or_default(),
            attempts: checkpoint.invocations,
            redrives: checkpoint.redrives,
            batches: self.sent.batches.len(),
            items: self.sent.items,
            reports: self.reports(),
        })
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
