//! Use case: poll pending handles — ask Meta how each batch sent went, record every final
//! verdict under `checked/`, and alert once per run on errors, warnings and stuck batches.
//!
//! Order of writes per handle: the verdict goes to `checked/YYYY/MM/DD/<handle>.json` first and
//! only then is `pending/<handle>.json` deleted, so a crash in between leaves the handle pending
//! (checked again next run), never lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use catalog::RequestLines;
use futures::stream::{self, StreamExt};
use graph::{BatchState, BatchStatus, CallCounts, ErrorClass, GraphError, ItemProblem};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::alert::wording::{self, non_empty, state_name};
use crate::alert::{Alert, MAX_SAMPLES, Sample};
use crate::keys::{self, Layout, PENDING_PREFIX};
use crate::ports::{self, AlertError, ObjectInfo, Payload, Services, StoreError};
use crate::report::PendingRecord;
use crate::sweep::{SweepLimits, SweepSummary, Sweeper};

/// No new check starts when less than this is left before the deadline: a check and its two
/// writes must fit in what remains, and an unchecked handle simply waits for the next run.
pub const START_MARGIN: Duration = Duration::from_secs(3);

/// What polling needs besides the adapters.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Buckets and prefixes (`pending/` and `checked/` live in the synced bucket).
    pub layout: Layout,
    /// When a handle that is still not terminal counts as stuck (`PENDING_MAX_AGE`).
    pub pending_max_age: Duration,
    /// Status checks in flight at once (`POLL_CONCURRENCY`); 0 counts as 1.
    pub concurrency: usize,
    /// The sweep of files left in `data/`; `None` skips it.
    pub sweep: Option<SweepLimits>,
}

impl PollSettings {
    /// Settings from the configuration.
    pub fn from_config(config: &crate::Config) -> Self {
        PollSettings {
            layout: config.layout.clone(),
            pending_max_age: config.pending_max_age,
            concurrency: config.poll_concurrency,
            sweep: (!config.layout.landing_bucket.is_empty())
                .then(|| SweepLimits::from_config(config)),
        }
    }
}

/// What one poll run did; the Lambda returns it and logs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSummary {
    /// Records found under `pending/` at the start of the run.
    pub pending_found: u64,
    /// Handles Meta answered for (terminal or not).
    pub checked: u64,
    /// Batches that ended `finished` (verdict stored, pending record removed).
    pub finished: u64,
    /// Batches that ended `canceled`.
    pub canceled: u64,
    /// Batches that ended `error`.
    pub errored: u64,
    /// Handles Meta reported as not finished yet; they stay pending.
    pub still_pending: u64,
    /// Handles not checked because the invocation's deadline was near; they stay pending.
    pub not_checked_deadline: u64,
    /// Handles not checked because the run stopped early (throttling, token); they stay pending.
    pub not_checked_stopped: u64,
    /// Handles not terminal after `PENDING_MAX_AGE` (alerted once per handle).
    pub stuck: u64,
    /// Item errors Meta reported in the batches that ended this run (total counts, not samples).
    pub item_errors: u64,
    /// Item warnings Meta reported in the batches that ended this run.
    pub item_warnings: u64,
    /// Status checks that failed (after the client's retries); those handles stay pending.
    pub api_errors: u64,
    /// Storage reads or writes that failed; the handles concerned stay pending.
    pub store_errors: u64,
    /// Why the run stopped before checking every handle (`throttled: ...`, `token_invalid: ...`).
    pub stopped_early: Option<String>,
    /// Alerts published.
    pub alerts_sent: u64,
    /// Files in progress, re-driven, or given up on (`None` when the sweep did not run).
    pub sweep: Option<SweepSummary>,
    /// Handles still pending when the run ended (not final yet, not checked, or not removed).
    #[serde(default)]
    pub pending_left: u64,
    /// Age in seconds of the oldest of those, by its `sent_at` (0 when none is left or known).
    #[serde(default)]
    pub oldest_pending_secs: u64,
    /// For each file whose last batch got its verdict in this run: seconds from the file's
    /// landing (as its pending records say; the start of its run for older records) to that
    /// verdict.
    #[serde(default)]
    pub file_verdict_secs: Vec<u64>,
    /// Calls made to Meta in this run (every attempt, retries included), and how many failed
    /// or were throttled.
    #[serde(default)]
    pub graph_calls: CallCounts,
}

/// A poll run that failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// `pending/` could not be listed, so nothing was checked.
    #[error("could not list the pending batch handles: {0}")]
    List(#[source] StoreError),
    /// The run finished but an alert could not be delivered; its content is in the log.
    #[error(
        "{} alert(s) could not be delivered ({}); the run's verdicts are stored under checked/ and the alert text is in the log",
        .failures.len(),
        .failures.first().map(ToString::to_string).unwrap_or_default()
    )]
    AlertsNotDelivered {
        /// What the run did.
        summary: Box<PollSummary>,
        /// Each delivery failure.
        failures: Vec<AlertError>,
    },
}

impl PollError {
    /// The run's summary, when it got that far.
    pub fn summary(&self) -> Option<&PollSummary> {
        match self {
            PollError::List(_) => None,
            PollError::AlertsNotDelivered { summary, .. } => Some(summary),
        }
    }
}

/// What `checked/YYYY/MM/DD/<handle>.json` holds: the pending record, Meta's verdict exactly as
/// sent, and its errors and warnings pointed back at source CSV lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedRecord {
    /// Everything the pending record held.
    #[serde(flatten)]
    pub pending: PendingRecord,
    /// `finished`, `canceled` or `error`.
    pub state: String,
    /// RFC 3339 time of the check that found the final status.
    pub checked_at: String,
    /// Meta's total error count (the lists are samples).
    pub errors_total_count: u64,
    /// Meta's total warning count.
    pub warnings_total_count: u64,
    /// Meta's sample of errors, with source file, CSV line and product id where known.
    pub errors: Vec<Sample>,
    /// Meta's sample of warnings, likewise.
    pub warnings: Vec<Sample>,
    /// The `data[0]` status object exactly as Meta sent it.
    pub verdict: serde_json::Value,
}

/// The "poll pending handles" use case.
#[derive(Clone)]
pub struct Poller {
    services: Services,
    settings: PollSettings,
}

/// Why a handle was not checked this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Deadline,
    Stopped,
}

/// A handle that ended, with its verdict stored.
struct Verdict {
    record: PendingRecord,
    state: BatchState,
    checked_key: String,
    errors_total: u64,
    warnings_total: u64,
    errors: Vec<Sample>,
    warnings: Vec<Sample>,
}

/// A handle left pending after an answer (or a failed check), with what is known of its age.
struct Waiting {
    record: PendingRecord,
    pending_key: String,
    /// Meta's status text, or the error of the failed check.
    last_answer: String,
    stuck: bool,
}

/// What became of one pending record.
enum Outcome {
    /// Terminal; the verdict is stored. `pending_left` when deleting the record failed.
    Ended {
        verdict: Box<Verdict>,
        pending_left: bool,
    },
    /// Meta answered with a non-terminal status.
    Waiting(Box<Waiting>),
    /// The check failed (after retries); `stops` when it stopped the run.
    CheckFailed { waiting: Box<Waiting>, stops: bool },
    /// Not checked.
    Skipped(Skip),
    /// The record vanished between listing and reading (another run took it).
    Gone,
    /// Reading the record or storing the verdict failed; the handle stays pending.
    StoreFailed,
}

/// Stops the run: set by the first throttled or token-invalid answer, seen by every check.
struct StopSignal {
    token: CancellationToken,
    first: Mutex<Option<GraphError>>,
}

impl StopSignal {
    fn new() -> Self {
        StopSignal {
            token: CancellationToken::new(),
            first: Mutex::new(None),
        }
    }

    fn trigger(&self, error: &GraphError) {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error.clone());
        }
        self.token.cancel();
    }

    fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    fn reason(&self) -> Option<GraphError> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Poller {
    /// A poller over these adapters.
    pub fn new(services: Services, settings: PollSettings) -> Self {
        Poller { services, settings }
    }

    /// The settings in use.
    pub fn settings(&self) -> &PollSettings {
        &self.settings
    }

    /// Checks every pending handle (oldest first) before `deadline`, records final verdicts,
    /// and publishes at most one alert per kind.
    pub async fn run(&self, deadline: Option<Instant>) -> Result<PollSummary, PollError> {
        let calls_before = self.services.catalog.call_counts();
        let synced = &self.settings.layout.synced_bucket;
        let mut objects: Vec<ObjectInfo> =
            ports::list_all(self.services.store.as_ref(), synced, PENDING_PREFIX)
                .await
                .map_err(PollError::List)?
                .into_iter()
                .filter(|object| handle_of_key(&object.key).is_some())
                .collect();
        // Oldest first, so when the deadline cuts a run short the same handles are not always
        // the ones left for later.
        objects.sort_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)));
        let mut summary = PollSummary {
            pending_found: objects.len() as u64,
            ..PollSummary::default()
        };
        info!(pending = objects.len(), "polling pending batch handles");

        let stop = StopSignal::new();
        let outcomes: Vec<Outcome> = stream::iter(objects)
            .map(|object| self.poll_one(object, deadline, &stop))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;

        let now = self.services.clock.now();
        let mut backlog = Backlog::default();
        let mut verdicts = Vec::new();
        let mut stuck_new = Vec::new();
        for outcome in outcomes {
            backlog.note(&outcome, now);
            match outcome {
                Outcome::Ended {
                    verdict,
                    pending_left,
                } => {
                    summary.checked += 1;
                    match verdict.state {
                        BatchState::Finished => summary.finished += 1,
                        BatchState::Canceled => summary.canceled += 1,
                        BatchState::Error => summary.errored += 1,
                        BatchState::InProgress => {}
                    }
                    summary.item_errors += verdict.errors_total;
                    summary.item_warnings += verdict.warnings_total;
                    if pending_left {
                        summary.store_errors += 1;
                    }
                    verdicts.push(*verdict);
                }
                Outcome::Waiting(waiting) => {
                    summary.checked += 1;
                    summary.still_pending += 1;
                    self.note_stuck(*waiting, &mut summary, &mut stuck_new);
                }
                Outcome::CheckFailed { waiting, stops } => {
                    summary.api_errors += 1;
                    if stops {
                        summary.not_checked_stopped += 1;
                    } else {
                        self.note_stuck(*waiting, &mut summary, &mut stuck_new);
                    }
                }
                Outcome::Skipped(Skip::Deadline) => summary.not_checked_deadline += 1,
                Outcome::Skipped(Skip::Stopped) => summary.not_checked_stopped += 1,
                Outcome::Gone => {}
                Outcome::StoreFailed => summary.store_errors += 1,
            }
        }
        // Buffered completion order is arbitrary; alerts read better (and test better) sorted.
        verdicts.sort_by(|a, b| {
            (&a.record.source_key, &a.record.batch_key, &a.record.handle).cmp(&(
                &b.record.source_key,
                &b.record.batch_key,
                &b.record.handle,
            ))
        });
        stuck_new.sort_by(|a: &Waiting, b: &Waiting| {
            (&a.record.sent_at, &a.record.handle).cmp(&(&b.record.sent_at, &b.record.handle))
        });
        summary.pending_left = backlog.left;
        summary.oldest_pending_secs = backlog.oldest.map_or(0, |sent| age(now, sent).as_secs());
        summary.file_verdict_secs = self.files_completed(&verdicts, &backlog, now).await;

        let mut failures = Vec::new();
        if let Some(reason) = stop.reason() {
            summary.stopped_early = Some(format!("{}: {reason}", reason.class()));
            let alert = self.stop_alert(&reason, &summary);
            self.publish(alert, &mut summary, &mut failures).await;
        }
        if let Some(alert) = self.verdict_alert(&verdicts, &summary) {
            self.publish(alert, &mut summary, &mut failures).await;
        }
        if !stuck_new.is_empty() {
            let alert = self.stuck_alert(&stuck_new);
            if self.publish(alert, &mut summary, &mut failures).await {
                self.mark_stuck_alerted(stuck_new).await;
            }
        }

        if let Some(limits) = self.settings.sweep {
            let sweeper = Sweeper::new(self.services.clone(), self.settings.layout.clone(), limits);
            match until(deadline, sweeper.run()).await {
                Some(Ok(sweep)) => summary.sweep = Some(sweep),
                Some(Err(error)) => {
                    warn!(%error, "the sweep of the landing folder failed; it runs again next time");
                    summary.store_errors += 1;
                }
                None => warn!("the sweep of the landing folder was cut short by the deadline"),
            }
        }
        summary.graph_calls = self.services.catalog.call_counts().since(calls_before);
        info!(
            pending_found = summary.pending_found,
            checked = summary.checked,
            finished = summary.finished,
            canceled = summary.canceled,
            errored = summary.errored,
            still_pending = summary.still_pending,
            not_checked_deadline = summary.not_checked_deadline,
            not_checked_stopped = summary.not_checked_stopped,
            stuck = summary.stuck,
            item_errors = summary.item_errors,
            item_warnings = summary.item_warnings,
            api_errors = summary.api_errors,
            store_errors = summary.store_errors,
            stopped_early = summary.stopped_early.as_deref().unwrap_or(""),
            alerts_sent = summary.alerts_sent,
            graph_calls = summary.graph_calls.calls,
            graph_calls_throttled = summary.graph_calls.throttled,
            "poll finished"
        );
        if failures.is_empty() {
            Ok(summary)
        } else {
            Err(PollError::AlertsNotDelivered {
                summary: Box::new(summary),
                failures,
            })
        }
    }

    /// Seconds from each completed file's landing to now, for the files whose last pending
    /// batch ended in this run and whose sending is over (no checkpoint under `progress/`).
    /// A file landed when its pending records say; records written before they said so fall
    /// back on the start of the file's run (the time in its run id, moments after it landed).
    /// A run that left records unread cannot tell which files are complete, so it says nothing.
    async fn files_completed(
        &self,
        verdicts: &[Verdict],
        backlog: &Backlog,
        now: OffsetDateTime,
    ) -> Vec<u64> {
        if backlog.unread {
            return Vec::new();
        }
        // Per completed run, the earliest landing time its records name, if any.
        let mut runs: BTreeMap<&str, Option<OffsetDateTime>> = BTreeMap::new();
        for verdict in verdicts {
            let run = verdict.record.run_id.as_str();
            if backlog.runs_left.contains(run) {
                continue;
            }
            let landed = verdict
                .record
                .landed_at
                .as_deref()
                .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
            let earliest = runs.entry(run).or_default();
            *earliest = match (*earliest, landed) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let mut seconds = Vec::new();
        for (run, landed) in runs {
            let Some(started) = landed.or_else(|| keys::run_started_at(run)) else {
                continue;
            };
            let synced = &self.settings.layout.synced_bucket;
            match self
                .services
                .store
                .head(synced, &keys::progress_key(run))
                .await
            {
                Ok(None) => seconds.push(age(now, started).as_secs()),
                Ok(Some(_)) => {} // more batches of this file are still to be sent
                Err(error) => warn!(run, %error, "could not tell whether a file is complete"),
            }
        }
        seconds
    }

    fn note_stuck(
        &self,
        waiting: Waiting,
        summary: &mut PollSummary,
        stuck_new: &mut Vec<Waiting>,
    ) {
        if waiting.stuck {
            summary.stuck += 1;
            if !waiting.record.stuck_alerted {
                stuck_new.push(waiting);
            }
        }
    }

    /// Reads, checks and (when terminal) records one pending handle.
    async fn poll_one(
        &self,
        object: ObjectInfo,
        deadline: Option<Instant>,
        stop: &StopSignal,
    ) -> Outcome {
        if stop.is_stopped() {
            return Outcome::Skipped(Skip::Stopped);
        }
        if deadline.is_some_and(|deadline| Instant::now() + START_MARGIN >= deadline) {
            return Outcome::Skipped(Skip::Deadline);
        }
        let record = match self.read_record(&object).await {
            Ok(Some(record)) => record,
            Ok(None) => return Outcome::Gone,
            Err(error) => {
                warn!(key = object.key, %error, "could not read a pending record; it stays pending");
                return Outcome::StoreFailed;
            }
        };
        let check = self.services.catalog.check_status(&record.handle, deadline);
        let result = tokio::select! {
            // A stop cancels checks in flight too: a throttled or refused token answers the
            // same for every handle, and a throttle retry could otherwise sleep for minutes.
            biased;
            () = stop.token.cancelled() => return Outcome::Skipped(Skip::Stopped),
            result = until(deadline, check) => result,
        };
        let now = self.services.clock.now();
        let status = match result {
            None => return Outcome::Skipped(Skip::Deadline),
            Some(Ok(status)) => status,
            Some(Err(error)) => {
                // These answer every handle the same way until a person (or time) fixes them.
                let stops = matches!(
                    error.class(),
                    ErrorClass::Throttled
                        | ErrorClass::TokenInvalid
                        | ErrorClass::Permission
                        | ErrorClass::VersionUnavailable
                );
                if stops {
                    warn!(handle = record.handle, class = %error.class(), %error, "status check refused; stopping this run");
                    stop.trigger(&error);
                } else {
                    warn!(handle = record.handle, class = %error.class(), %error, "status check failed; the handle stays pending");
                }
                let waiting = self.waiting(record, &object, error.to_string(), now);
                return Outcome::CheckFailed {
                    waiting: Box::new(waiting),
                    stops,
                };
            }
        };
        if !status.is_terminal() {
            info!(
                handle = record.handle,
                status = status.status,
                "batch not finished yet"
            );
            let waiting = self.waiting(record, &object, status.status.clone(), now);
            return Outcome::Waiting(Box::new(waiting));
        }
        self.record_verdict(record, &object.key, status, now).await
    }

    /// Reads a pending record; an unreadable one is checked by the handle in its key, so a
    /// damaged record cannot hide a batch.
    async fn read_record(&self, object: &ObjectInfo) -> Result<Option<PendingRecord>, StoreError> {
        let synced = &self.settings.layout.synced_bucket;
        let Some(bytes) =
            ports::read_small(self.services.store.as_ref(), synced, &object.key).await?
        else {
            return Ok(None);
        };
        match serde_json::from_slice::<PendingRecord>(&bytes) {
            Ok(record) if !record.handle.trim().is_empty() => Ok(Some(record)),
            parsed => {
                let why = parsed
                    .err()
                    .map_or_else(|| "empty handle".to_owned(), |e| e.to_string());
                let handle = handle_of_key(&object.key).unwrap_or_default();
                error!(
                    key = object.key,
                    handle,
                    problem = why,
                    "pending record unreadable; checking the handle named by its key"
                );
                Ok(Some(PendingRecord {
                    catalog_id: self.services.catalog.catalog_id().to_owned(),
                    handle,
                    source_bucket: String::new(),
                    source_key: String::new(),
                    run_id: String::new(),
                    batch_key: String::new(),
                    report_key: String::new(),
                    item_count: 0,
                    sent_at: object
                        .last_modified
                        .and_then(|at| at.format(&Rfc3339).ok())
                        .unwrap_or_default(),
                    lines: Vec::new(),
                    stuck_alerted: false,
                    landed_at: None,
                }))
            }
        }
    }

    fn waiting(
        &self,
        record: PendingRecord,
        object: &ObjectInfo,
        last_answer: String,
        now: OffsetDateTime,
    ) -> Waiting {
        let sent = OffsetDateTime::parse(&record.sent_at, &Rfc3339)
            .ok()
            .or(object.last_modified);
        let stuck = sent.is_some_and(|sent| age(now, sent) > self.settings.pending_max_age);
        Waiting {
            record,
            pending_key: object.key.clone(),
            last_answer,
            stuck,
        }
    }

    /// Stores the verdict under `checked/`, then removes the pending record.
    async fn record_verdict(
        &self,
        record: PendingRecord,
        pending_key: &str,
        status: BatchStatus,
        now: OffsetDateTime,
    ) -> Outcome {
        let synced = &self.settings.layout.synced_bucket;
        let state = status.state();
        let mut resolver = LineResolver::new(self, &record);
        let mut errors = Vec::with_capacity(status.errors.len());
        for problem in &status.errors {
            errors.push(resolver.sample(problem).await);
        }
        let mut warnings = Vec::with_capacity(status.warnings.len());
        for problem in &status.warnings {
            warnings.push(resolver.sample(problem).await);
        }
        let note = verdict_note(&record, state, &status, &mut resolver).await;
        drop(resolver);
        let checked = CheckedRecord {
            pending: record,
            state: state_name(state).to_owned(),
            checked_at: now.format(&Rfc3339).unwrap_or_default(),
            errors_total_count: status.errors_total_count,
            warnings_total_count: status.warnings_total_count,
            errors,
            warnings,
            verdict: status.raw,
        };
        // The sync function folds this note into its record of what Meta holds, so that the
        // products Meta refused are sent again; it is written first, like the verdict, so a
        // crash leaves the handle pending rather than the note missing.
        let notes = crate::state::StateStore::new(
            self.services.store.as_ref(),
            synced,
            &checked.pending.catalog_id,
        );
        if let Err(error) = notes.leave_verdict(&checked.pending.handle, &note).await {
            warn!(handle = checked.pending.handle, %error, "could not store a verdict note; the handle stays pending");
            return Outcome::StoreFailed;
        }
        let checked_key = keys::checked_key(now, &checked.pending.handle);
        let body = match serde_json::to_vec_pretty(&checked) {
            Ok(body) => body,
            Err(error) => {
                error!(handle = checked.pending.handle, %error, "could not serialise a verdict; the handle stays pending");
                return Outcome::StoreFailed;
            }
        };
        if let Err(error) = self
            .services
            .store
            .put(
                synced,
                &checked_key,
                Payload::from(body),
                "application/json",
            )
            .await
        {
            warn!(handle = checked.pending.handle, %error, "could not store a verdict; the handle stays pending");
            return Outcome::StoreFailed;
        }
        let pending_left = match self.services.store.delete(synced, pending_key).await {
            Ok(()) => false,
            Err(error) => {
                // The verdict is safe under checked/; the handle is checked (and reported) again.
                warn!(handle = checked.pending.handle, %error, "verdict stored but the pending record could not be deleted");
                true
            }
        };
        info!(
            handle = checked.pending.handle,
            state = checked.state,
            source_key = checked.pending.source_key,
            errors = checked.errors_total_count,
            warnings = checked.warnings_total_count,
            checked_key,
            "batch verdict recorded"
        );
        let CheckedRecord {
            pending,
            mut errors,
            mut warnings,
            errors_total_count,
            warnings_total_count,
            ..
        } = checked;
        // The alert shows at most MAX_SAMPLES in all; keeping no more per batch bounds memory
        // when a large backlog of batches ends in one run. The full lists are under checked/.
        errors.truncate(MAX_SAMPLES);
        warnings.truncate(MAX_SAMPLES);
        Outcome::Ended {
            verdict: Box::new(Verdict {
                record: pending,
                state,
                checked_key,
                errors_total: errors_total_count,
                warnings_total: warnings_total_count,
                errors,
                warnings,
            }),
            pending_left,
        }
    }

    /// Publishes `alert`; true when delivered. A failure is logged with the alert's text.
    async fn publish(
        &self,
        alert: Alert,
        summary: &mut PollSummary,
        failures: &mut Vec<AlertError>,
    ) -> bool {
        match self.services.alerts.publish(&alert).await {
            Ok(()) => {
                summary.alerts_sent += 1;
                info!(
                    kind = alert.kind.as_str(),
                    subject = alert.subject,
                    "alert published"
                );
                true
            }
            Err(failure) => {
                error!(kind = alert.kind.as_str(), subject = alert.subject, error = %failure, "alert not delivered\n{}", alert.text);
                failures.push(failure);
                false
            }
        }
    }

    /// Rewrites the records of newly stuck handles with `stuck_alerted`, so the alert is once.
    async fn mark_stuck_alerted(&self, stuck: Vec<Waiting>) {
        let synced = &self.settings.layout.synced_bucket;
        let store = &self.services.store;
        stream::iter(stuck)
            .for_each_concurrent(self.settings.concurrency.max(1), |waiting| async move {
                let mut record = waiting.record;
                record.stuck_alerted = true;
                let result = match serde_json::to_vec(&record) {
                    Ok(json) => {
                        store
                            .put(synced, &waiting.pending_key, Payload::from(json), "application/json")
                            .await
                    }
                    Err(error) => {
                        warn!(handle = record.handle, %error, "could not serialise a pending record");
                        Ok(())
                    }
                };
                if let Err(error) = result {
                    // Worst case the next run alerts this handle again: noisy, not lost.
                    warn!(handle = record.handle, %error, "could not mark a stuck handle as alerted");
                }
            })
            .await;
    }

    fn file_label(&self, record: &PendingRecord) -> String {
        match (record.source_bucket.as_str(), record.source_key.as_str()) {
            (_, "") => "(unknown file: pending record was unreadable)".to_owned(),
            ("", key) => key.to_owned(),
            (bucket, key) => self.services.store.location(bucket, key),
        }
    }

    fn synced_url(&self, key: &str) -> String {
        self.services
            .store
            .location(&self.settings.layout.synced_bucket, key)
    }

    /// `batch_errors` or `batch_warnings` for the verdicts of this run, or `None` when every
    /// batch finished clean.
    fn verdict_alert(&self, verdicts: &[Verdict], summary: &PollSummary) -> Option<Alert> {
        let now = self.services.clock.now();
        wording::batch_verdicts(&wording::Verdicts {
            catalog_id: self.services.catalog.catalog_id().to_owned(),
            checked: summary.checked,
            ended: verdicts
                .iter()
                .map(|verdict| wording::EndedBatch {
                    file_label: self.file_label(&verdict.record),
                    source_key: verdict.record.source_key.clone(),
                    handle: verdict.record.handle.clone(),
                    item_count: verdict.record.item_count,
                    first_line: verdict.record.lines.first().copied(),
                    state: verdict.state,
                    errors_total: verdict.errors_total,
                    warnings_total: verdict.warnings_total,
                    errors: verdict.errors.clone(),
                    warnings: verdict.warnings.clone(),
                    verdict_at: self.synced_url(&verdict.checked_key),
                })
                .collect(),
            verdicts_under: self.synced_url(&format!("checked/{}/", keys::date_path(now))),
        })
    }

    /// One `batch_stuck` alert for the handles that became stuck since the last alert.
    fn stuck_alert(&self, stuck: &[Waiting]) -> Alert {
        wording::batch_stuck(&wording::Stuck {
            catalog_id: self.services.catalog.catalog_id().to_owned(),
            max_age: format_age(self.settings.pending_max_age),
            batches: stuck
                .iter()
                .map(|waiting| wording::StuckBatch {
                    source_key: waiting.record.source_key.clone(),
                    first_line: waiting.record.lines.first().copied(),
                    handle: waiting.record.handle.clone(),
                    item_count: waiting.record.item_count,
                    sent_at: waiting.record.sent_at.clone(),
                    last_answer: waiting.last_answer.clone(),
                    pending_at: self.synced_url(&waiting.pending_key),
                })
                .collect(),
            pending_under: self.synced_url(PENDING_PREFIX),
        })
    }

    /// `token_invalid` or (throttling) `send_failed`: the run stopped before checking everything.
    fn stop_alert(&self, reason: &GraphError, summary: &PollSummary) -> Alert {
        wording::poll_stopped(&wording::PollStopped {
            catalog_id: self.services.catalog.catalog_id().to_owned(),
            reason,
            pending_found: summary.pending_found,
            ended: summary.finished + summary.canceled + summary.errored,
            pending_under: self.synced_url(PENDING_PREFIX),
        })
    }
}

/// The handles a run leaves pending, for the metrics: how many, the oldest, and their runs.
#[derive(Debug, Default)]
struct Backlog {
    left: u64,
    oldest: Option<OffsetDateTime>,
    runs_left: BTreeSet<String>,
    /// Some records were not read (deadline, stop, storage failure): their runs are unknown.
    unread: bool,
}

impl Backlog {
    fn note(&mut self, outcome: &Outcome, now: OffsetDateTime) {
        let record = match outcome {
            Outcome::Ended {
                verdict,
                pending_left: true,
            } => &verdict.record,
            Outcome::Waiting(waiting) | Outcome::CheckFailed { waiting, .. } => &waiting.record,
            Outcome::Skipped(_) | Outcome::StoreFailed => {
                self.left += 1;
                self.unread = true;
                return;
            }
            Outcome::Ended { .. } | Outcome::Gone => return,
        };
        self.left += 1;
        self.runs_left.insert(record.run_id.clone());
        if let Ok(sent) = OffsetDateTime::parse(&record.sent_at, &Rfc3339) {
            let sent = sent.min(now);
            self.oldest = Some(self.oldest.map_or(sent, |oldest| oldest.min(sent)));
        }
    }
}

/// Points Meta's problems at source CSV lines through [`RequestLines`]: the 0-based request
/// index through `PendingRecord::lines`, or, when Meta gives only an id, the id's position in
/// the stored batch body (read at most once per handle, and only when needed).
struct LineResolver<'a> {
    poller: &'a Poller,
    record: &'a PendingRecord,
    by_index: RequestLines,
    by_id: Option<RequestLines>,
}

impl<'a> LineResolver<'a> {
    fn new(poller: &'a Poller, record: &'a PendingRecord) -> Self {
        LineResolver {
            poller,
            record,
            by_index: RequestLines::new(&[], record.lines.clone()),
            by_id: None,
        }
    }

    async fn sample(&mut self, problem: &ItemProblem) -> Sample {
        let line = match (problem.line, problem.id.as_deref()) {
            (Some(index), _) => self.by_index.line_of_index(index),
            (None, Some(id)) => self.with_ids().await.line_of_id(id),
            (None, None) => None,
        };
        Sample {
            file: non_empty(&self.record.source_key),
            line,
            id: problem.id.clone(),
            message: problem.message.clone(),
        }
    }

    async fn with_ids(&mut self) -> &RequestLines {
        if self.by_id.is_none() {
            let body = self.load_body().await;
            self.by_id = Some(RequestLines::new(&body, self.record.lines.clone()));
        }
        self.by_id.as_ref().unwrap_or(&self.by_index)
    }

    async fn load_body(&self) -> Vec<u8> {
        if self.record.batch_key.is_empty() {
            return Vec::new();
        }
        let synced = &self.poller.settings.layout.synced_bucket;
        match ports::read_small(
            self.poller.services.store.as_ref(),
            synced,
            &self.record.batch_key,
        )
        .await
        {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                warn!(
                    batch_key = self.record.batch_key,
                    "stored batch body not found; lines of id-only problems unknown"
                );
                Vec::new()
            }
            Err(error) => {
                warn!(batch_key = self.record.batch_key, %error, "could not read the stored batch body; lines of id-only problems unknown");
                Vec::new()
            }
        }
    }
}

/// What the sync function needs of a verdict: which products of the batch Meta refused, by
/// id (an error that names only a request index is resolved through the stored body), and
/// whether that list is whole (Meta may give only a sample of its errors, without the full
/// `ids_of_invalid_requests`; an error naming no product makes the list partial too, and every
/// product of the batch is then sent again).
async fn verdict_note(
    record: &PendingRecord,
    state: BatchState,
    status: &BatchStatus,
    resolver: &mut LineResolver<'_>,
) -> crate::state::VerdictNote {
    let errors = &status.errors;
    // Meta's `ids_of_invalid_requests` names every invalid product, where `errors` may be a
    // sample of them.
    let mut refused_ids = status.ids_of_invalid_requests.clone();
    let mut complete = status.errors_total_count <= errors.len() as u64
        || !status.ids_of_invalid_requests.is_empty();
    for problem in errors {
        match (&problem.id, problem.line) {
            (Some(id), _) => refused_ids.push(id.clone()),
            (None, Some(index)) => match resolver.with_ids().await.id_of_index(index) {
                Some(id) => refused_ids.push(id.to_owned()),
                None => complete = false,
            },
            (None, None) => complete = false,
        }
    }
    refused_ids.sort();
    refused_ids.dedup();
    crate::state::VerdictNote {
        batch_key: record.batch_key.clone(),
        state: state_name(state).to_owned(),
        refused_ids,
        complete,
    }
}

/// The handle named by a `pending/<handle>.json` key, percent-decoded as `pending_key` encoded it.
fn handle_of_key(key: &str) -> Option<String> {
    let encoded = key.strip_prefix(PENDING_PREFIX)?.strip_suffix(".json")?;
    if encoded.is_empty() || encoded.contains('/') {
        return None;
    }
    percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|handle| handle.into_owned())
}

/// Runs `future` until `deadline`; `None` when the deadline came first.
async fn until<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// How long ago `then` was, zero if in the future (clock skew).
fn age(now: OffsetDateTime, then: OffsetDateTime) -> Duration {
    let elapsed = now - then;
    if elapsed.is_negative() {
        Duration::ZERO
    } else {
        elapsed.unsigned_abs()
    }
}

/// `24h`, `90m`, `45s`: the way `PENDING_MAX_AGE` is written.
fn format_age(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_come_back_from_pending_keys() {
        for handle in ["AbC/12+=", "plain", "with space", "per%cent"] {
            assert_eq!(
                handle_of_key(&keys::pending_key(handle)).as_deref(),
                Some(handle)
            );
        }
        assert_eq!(handle_of_key("pending/"), None);
        assert_eq!(handle_of_key("pending/.json"), None);
        assert_eq!(handle_of_key("pending/a.txt"), None);
        assert_eq!(handle_of_key("pending/sub/a.json"), None);
        assert_eq!(handle_of_key("checked/a.json"), None);
    }

    #[test]
    fn ages_and_their_wording() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10);
        assert_eq!(
            age(now, now - time::Duration::hours(25)),
            Duration::from_secs(25 * 3600)
        );
        assert_eq!(age(now, now + time::Duration::hours(1)), Duration::ZERO);
        assert_eq!(format_age(Duration::from_secs(86_400)), "24h");
        assert_eq!(format_age(Duration::from_secs(5400)), "90m");
        assert_eq!(format_age(Duration::from_secs(61)), "61s");
        assert_eq!(format_age(Duration::from_secs(30)), "30s");
    }
}
