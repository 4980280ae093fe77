//! Use case: poll pending handles — ask Meta how each batch sent went, record every final
//! verdict under `checked/`, and alert once per run on errors, warnings and stuck batches.
//!
//! Order of writes per handle: the verdict goes to `checked/YYYY/MM/DD/<handle>.json` first and
//! only then is `pending/<handle>.json` deleted, so a crash in between leaves the handle pending
//! (checked again next run), never lost.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use graph::{BatchState, BatchStatus, ErrorClass, GraphError, ItemProblem};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::alert::{Alert, AlertBuilder, AlertKind, MAX_SAMPLES, Sample, shorten};
use crate::keys::{self, Layout, PENDING_PREFIX};
use crate::ports::{self, AlertError, ObjectInfo, Payload, StoreError};
use crate::process::Services;
use crate::report::PendingRecord;
use crate::sweep::{SweepLimits, SweepSummary, Sweeper};

/// No new check starts when less than this is left before the deadline: a check and its two
/// writes must fit in what remains, and an unchecked handle simply waits for the next run.
pub const START_MARGIN: Duration = Duration::from_secs(3);
/// Files named one by one in a verdict alert; the rest are summed up in one line.
const MAX_FILES_LISTED: usize = 20;
/// S3 keys listed in an alert; more would only bury the first ones (and bloat the message).
const MAX_KEYS_LISTED: usize = 20;
/// Longest file name quoted in a fact, so many long keys cannot crowd out the samples.
const MAX_FILE_CHARS: usize = 300;

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

impl Verdict {
    fn has_problems(&self) -> bool {
        self.errors_total > 0 || self.warnings_total > 0 || self.state != BatchState::Finished
    }

    fn not_saved(&self) -> bool {
        matches!(self.state, BatchState::Canceled | BatchState::Error)
    }
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

        let mut verdicts = Vec::new();
        let mut stuck_new = Vec::new();
        for outcome in outcomes {
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
                let stops = matches!(
                    error.class(),
                    ErrorClass::Throttled | ErrorClass::TokenInvalid
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
        let problems: Vec<&Verdict> = verdicts.iter().filter(|v| v.has_problems()).collect();
        if problems.is_empty() {
            return None;
        }
        let errors: u64 = problems.iter().map(|v| v.errors_total).sum();
        let warnings: u64 = problems.iter().map(|v| v.warnings_total).sum();
        let canceled = problems
            .iter()
            .filter(|v| v.state == BatchState::Canceled)
            .count();
        let failed = problems
            .iter()
            .filter(|v| v.state == BatchState::Error)
            .count();
        let any_error = errors > 0 || canceled > 0 || failed > 0;
        let catalog = self.services.catalog.catalog_id();
        let batches = problems.len();

        let (kind, headline) = if any_error {
            let mut headline =
                format!("{errors} item error(s), {warnings} warning(s) in {batches} batch(es)");
            if canceled > 0 {
                headline.push_str(&format!(", {canceled} canceled"));
            }
            if failed > 0 {
                headline.push_str(&format!(", {failed} failed"));
            }
            (AlertKind::BatchErrors, headline)
        } else {
            (
                AlertKind::BatchWarnings,
                format!("{warnings} item warning(s) in {batches} batch(es)"),
            )
        };
        let mut what = format!(
            "Meta finished {} batch(es) sent to catalog {catalog}; {batches} of them reported problems.",
            verdicts.len()
        );
        if errors > 0 {
            what.push_str(&format!(
                " {errors} product(s) had errors and were not saved in the catalog."
            ));
        }
        if warnings > 0 {
            what.push_str(&format!(
                " {warnings} warning(s) concern products that were saved but should be improved."
            ));
        }
        if canceled + failed > 0 {
            what.push_str(&format!(
                " {} batch(es) ended canceled or in error: none of their products were saved.",
                canceled + failed
            ));
        }

        let mut builder = AlertBuilder::new(kind, headline)
            .what_happened(what)
            .fact("Catalog", catalog)
            .fact("Batches checked this run", summary.checked)
            .fact("Batches with problems", batches)
            .fact("Item errors (products not saved)", errors)
            .fact("Warnings (products saved)", warnings);
        if canceled > 0 {
            builder = builder.fact("Batches canceled (nothing saved)", canceled);
        }
        if failed > 0 {
            builder = builder.fact("Batches failed (nothing saved)", failed);
        }

        // Per source file: errors / warnings / batches.
        let mut files: BTreeMap<String, FileTally> = BTreeMap::new();
        for verdict in &problems {
            let tally = files.entry(self.file_label(&verdict.record)).or_default();
            tally.batches += 1;
            tally.errors += verdict.errors_total;
            tally.warnings += verdict.warnings_total;
            if verdict.not_saved() {
                tally.not_saved += 1;
            }
        }
        let file_count = files.len();
        for (file, tally) in files.iter().take(MAX_FILES_LISTED) {
            let mut value = format!(
                "{} error(s), {} warning(s) in {} batch(es)",
                tally.errors, tally.warnings, tally.batches
            );
            if tally.not_saved > 0 {
                value.push_str(&format!(
                    "; {} batch(es) canceled or failed",
                    tally.not_saved
                ));
            }
            builder = builder.fact(format!("File {}", shorten(file, MAX_FILE_CHARS)), value);
        }
        if file_count > MAX_FILES_LISTED {
            builder = builder.fact(
                "Other files",
                format!(
                    "{} more; see the full verdicts",
                    file_count - MAX_FILES_LISTED
                ),
            );
        }

        // Samples: errors first, then whole batches not saved, then warnings.
        for verdict in &problems {
            for sample in &verdict.errors {
                builder.add_sample(sample.clone());
            }
        }
        for verdict in problems.iter().filter(|v| v.not_saved()) {
            builder.add_sample(Sample {
                file: non_empty(&verdict.record.source_key),
                line: verdict.record.lines.first().copied(),
                id: None,
                message: format!(
                    "batch {} ({} products) ended {}: none of its products were saved",
                    verdict.record.handle,
                    verdict.record.item_count,
                    state_name(verdict.state)
                ),
            });
        }
        for verdict in &problems {
            for sample in &verdict.warnings {
                builder.add_sample(sample.clone());
            }
        }

        for verdict in problems.iter().take(MAX_KEYS_LISTED) {
            builder = builder.key(self.synced_url(&verdict.checked_key));
        }
        if problems.len() > MAX_KEYS_LISTED {
            let now = self.services.clock.now();
            builder = builder.key(format!(
                "... and {} more under {}",
                problems.len() - MAX_KEYS_LISTED,
                self.synced_url(&format!("checked/{}/", keys::date_path(now)))
            ));
        }
        let mut next = String::new();
        if errors > 0 {
            next.push_str("Fix the products named (file, CSV line, id) in the source database; they are sent again with the next export that includes them. ");
        }
        if canceled + failed > 0 {
            next.push_str("For canceled or failed batches, send the file again (copy it from archive/ back into data/): updates are safe to repeat. ");
        }
        if warnings > 0 {
            next.push_str("Warnings do not block products but can limit how they show; improve the data when convenient. ");
        }
        next.push_str("Each verdict file lists Meta's samples with their source lines.");
        Some(builder.next_steps(next).build())
    }

    /// One `batch_stuck` alert for the handles that became stuck since the last alert.
    fn stuck_alert(&self, stuck: &[Waiting]) -> Alert {
        let max_age = format_age(self.settings.pending_max_age);
        let catalog = self.services.catalog.catalog_id();
        let mut builder = AlertBuilder::new(
            AlertKind::BatchStuck,
            format!("{} batch(es) not finished after {max_age}", stuck.len()),
        )
        .what_happened(format!(
            "Meta has not given a final status for {} batch(es) sent to catalog {catalog} more than {max_age} ago (PENDING_MAX_AGE). They stay pending and are checked on every run; this alert is sent once per batch.",
            stuck.len()
        ))
        .fact("Catalog", catalog)
        .fact("Stuck batches", stuck.len());
        for waiting in stuck {
            let record = &waiting.record;
            builder.add_sample(Sample {
                file: non_empty(&record.source_key),
                line: record.lines.first().copied(),
                id: None,
                message: format!(
                    "batch {} ({} products) sent {}; last answer: {}",
                    record.handle,
                    record.item_count,
                    if record.sent_at.is_empty() {
                        "at an unknown time"
                    } else {
                        &record.sent_at
                    },
                    shorten(&waiting.last_answer, 200)
                ),
            });
        }
        for waiting in stuck.iter().take(MAX_KEYS_LISTED) {
            builder = builder.key(self.synced_url(&waiting.pending_key));
        }
        if stuck.len() > MAX_KEYS_LISTED {
            builder = builder.key(format!(
                "... and {} more under {}",
                stuck.len() - MAX_KEYS_LISTED,
                self.synced_url(PENDING_PREFIX)
            ));
        }
        builder
            .next_steps("Look the batches up in Meta Commerce Manager (catalog > data sources). If one never finishes, send its file again (copy it from archive/ back into data/; updates are safe to repeat) and delete its pending record to stop tracking it.")
            .build()
    }

    /// `token_invalid` or (throttling) `send_failed`: the run stopped before checking everything.
    fn stop_alert(&self, reason: &GraphError, summary: &PollSummary) -> Alert {
        let catalog = self.services.catalog.catalog_id();
        let left = summary
            .pending_found
            .saturating_sub(summary.finished + summary.canceled + summary.errored);
        let synced_pending = self.synced_url(PENDING_PREFIX);
        let builder = if reason.class() == ErrorClass::TokenInvalid {
            AlertBuilder::new(
                AlertKind::TokenInvalid,
                format!("Meta access token refused; {left} batch check(s) waiting"),
            )
            .what_happened(format!(
                "catalog-sync could not check batch statuses in catalog {catalog}: {reason}. No batch can be checked (or sent) until the token is replaced."
            ))
            .next_steps(format!(
                "{} Pending batches are kept and checked on the first run after that; nothing needs to be sent again.",
                reason.what_to_do()
            ))
        } else {
            AlertBuilder::new(
                AlertKind::SendFailed,
                format!("Meta rate limit; {left} batch check(s) resume next run"),
            )
            .what_happened(format!(
                "Meta rate-limited the batch status checks for catalog {catalog}: {reason}. catalog-sync stopped checking for this run; the remaining batches stay pending and checks resume on the next scheduled run."
            ))
            .next_steps("Nothing to do if this happens now and then. If it repeats on every run, lower POLL_CONCURRENCY or poll less often (PollSchedule), and check whether another tool is using the catalog's batch API heavily.")
        };
        builder
            .fact("Catalog", catalog)
            .fact(
                "Pending batches at the start of the run",
                summary.pending_found,
            )
            .fact(
                "Batches that ended before the stop",
                summary.finished + summary.canceled + summary.errored,
            )
            .fact("Batches still pending", left)
            .key(synced_pending)
            .build()
    }
}

/// Counts per source file in a verdict alert.
#[derive(Debug, Default)]
struct FileTally {
    batches: u64,
    errors: u64,
    warnings: u64,
    not_saved: u64,
}

/// Points Meta's problems at source CSV lines: the 0-based request index through
/// `PendingRecord::lines`, or, when Meta gives only an id, the id's position in the stored
/// batch body (read at most once per handle, and only when needed).
struct LineResolver<'a> {
    poller: &'a Poller,
    record: &'a PendingRecord,
    ids: Option<Vec<Option<String>>>,
}

impl<'a> LineResolver<'a> {
    fn new(poller: &'a Poller, record: &'a PendingRecord) -> Self {
        LineResolver {
            poller,
            record,
            ids: None,
        }
    }

    async fn sample(&mut self, problem: &ItemProblem) -> Sample {
        let by_index = problem
            .line
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.record.lines.get(index).copied());
        // Copied out so the lines stay readable while `request_ids` borrows `self` mutably.
        let record: &'a PendingRecord = self.record;
        let line = match (by_index, &problem.id) {
            (Some(line), _) => Some(line),
            (None, Some(id)) if problem.line.is_none() => {
                let ids = self.request_ids().await;
                request_index_of(ids, id).and_then(|index| record.lines.get(index).copied())
            }
            _ => None,
        };
        Sample {
            file: non_empty(&record.source_key),
            line,
            id: problem.id.clone(),
            message: problem.message.clone(),
        }
    }

    async fn request_ids(&mut self) -> &[Option<String>] {
        if self.ids.is_none() {
            self.ids = Some(self.load_ids().await);
        }
        self.ids.as_deref().unwrap_or_default()
    }

    async fn load_ids(&self) -> Vec<Option<String>> {
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
            Ok(Some(bytes)) => request_ids(&bytes),
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

/// The stored body: `{"requests": [...]}` as written by the sender, or a bare array.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredBody {
    Wrapped { requests: Vec<StoredRequest> },
    Bare(Vec<StoredRequest>),
}

/// Only the retailer id of each request is kept: bodies can be megabytes.
#[derive(Deserialize)]
struct StoredRequest {
    #[serde(default)]
    data: Option<StoredData>,
}

#[derive(Deserialize)]
struct StoredData {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// The retailer id of each request of a stored batch body, in request order.
fn request_ids(body: &[u8]) -> Vec<Option<String>> {
    let requests = match serde_json::from_slice::<StoredBody>(body) {
        Ok(StoredBody::Wrapped { requests } | StoredBody::Bare(requests)) => requests,
        Err(error) => {
            warn!(%error, "stored batch body is not the expected JSON");
            return Vec::new();
        }
    };
    requests
        .into_iter()
        .map(|request| {
            request
                .data
                .and_then(|data| data.id)
                .and_then(|id| match id {
                    serde_json::Value::String(text) => Some(text),
                    serde_json::Value::Number(number) => Some(number.to_string()),
                    _ => None,
                })
        })
        .collect()
}

/// Index of the request carrying `id`; the last one, as Meta keeps the last of duplicates.
fn request_index_of(ids: &[Option<String>], id: &str) -> Option<usize> {
    ids.iter()
        .rposition(|candidate| candidate.as_deref() == Some(id))
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

fn state_name(state: BatchState) -> &'static str {
    match state {
        BatchState::Finished => "finished",
        BatchState::Canceled => "canceled",
        BatchState::Error => "error",
        BatchState::InProgress => "in progress",
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
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
    fn request_ids_read_wrapped_and_bare_bodies() {
        let wrapped = br#"{"item_type":"PRODUCT_ITEM","allow_upsert":true,"requests":[
            {"method":"UPDATE","data":{"id":"a","title":"x"}},
            {"method":"UPDATE","data":{"id":105}},
            {"method":"UPDATE","data":{}},
            {"method":"UPDATE","data":{"id":"a"}}]}"#;
        let ids = request_ids(wrapped);
        assert_eq!(
            ids,
            [Some("a".into()), Some("105".into()), None, Some("a".into())]
        );
        assert_eq!(request_index_of(&ids, "a"), Some(3));
        assert_eq!(request_index_of(&ids, "105"), Some(1));
        assert_eq!(request_index_of(&ids, "zz"), None);
        let bare = br#"[{"data":{"id":"b"}}]"#;
        assert_eq!(request_ids(bare), [Some("b".into())]);
        assert!(request_ids(b"not json").is_empty());
        assert!(request_ids(b"{\"requests\": 5}").is_empty());
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
