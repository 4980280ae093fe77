//! What every alert says: one pure function per alert kind, turning the facts a use case
//! gathered into the subject, the text and the JSON document. Nothing here reads a store or
//! publishes; the use cases call these and hand the result to the [`AlertSink`].
//!
//! Each "what to do" sentence is written once, here; reports quote the same sentences
//! ([`FIX_THE_FILE`], [`gave_up_what_to_do`]).
//!
//! [`AlertSink`]: crate::ports::AlertSink

use graph::{BatchState, ErrorClass, GraphError};

use super::{Alert, AlertBuilder, AlertKind, Sample, shorten};

/// What to do about a rejected file (also the report's `what_to_do`).
pub const FIX_THE_FILE: &str =
    "Fix the file (see the message) and upload it again to the landing folder.";
/// What to do about rows the CSV rules rejected.
const FIX_THE_ROWS: &str = "Fix the listed rows in the source database; they are sent with the next export that includes them. The report lists every rejected row with its line and reason.";
/// How a file given up on is sent again.
const RESEND_FROM_FAILED: &str =
    "copy the file from failed/ back into data/ (or run catalog-sync replay) to send it again";
/// How a file whose batches Meta did not save is sent again.
const RESEND_FROM_ARCHIVE: &str =
    "send the file again (copy it from archive/ back into data/; updates are safe to repeat)";
/// What to do when the access token is refused while sending.
const REPLACE_THE_TOKEN: &str = "Create a new system-user token with catalog_management permission and store it in the access-token secret; then re-send the file (catalog-sync replay, or copy it into data/ again). Products already accepted are tracked and need nothing.";
/// What to do when the status checks are throttled.
const CHECKS_THROTTLED: &str = "Nothing to do if this happens now and then. If it repeats on every run, lower POLL_CONCURRENCY or poll less often (PollSchedule), and check whether another tool is using the catalog's batch API heavily.";
/// Files named one by one in a verdict alert; the rest are summed up in one line.
const MAX_FILES_LISTED: usize = 20;
/// Keys listed in an alert; more would only bury the first ones (and bloat the message).
pub const MAX_KEYS_LISTED: usize = 20;
/// Longest file name quoted in a fact, so many long keys cannot crowd out the samples.
const MAX_FILE_CHARS: usize = 300;

/// A file archived with rows left out (`rows_rejected`).
#[derive(Debug, Clone)]
pub struct RowsRejected {
    /// The key it had in `data/`.
    pub key: String,
    /// Where it was, for a person.
    pub file: String,
    /// Where it is now.
    pub archived_at: String,
    /// The Meta catalog.
    pub catalog_id: String,
    /// Rows read from the file.
    pub rows_read: u64,
    /// Products Meta accepted.
    pub sent: u64,
    /// Of `sent`, the delete requests (products removed).
    pub deleted: u64,
    /// Rows the CSV rules rejected.
    pub rejected: u64,
    /// Products Meta refused when they were sent.
    pub refused_by_meta: u64,
    /// Earlier rows replaced by a later row with the same id.
    pub superseded: u64,
    /// Where the report is.
    pub report: String,
    /// Rejected rows and refused products, in that order.
    pub samples: Vec<Sample>,
}

/// ` (N of them deletes)` after a count of products sent, or nothing when none was a delete:
/// a removal is said on its own, so nobody reads "sent" as "updated" only.
pub fn of_them_deleted(deleted: u64) -> String {
    if deleted > 0 {
        format!(" ({deleted} of them deletes)")
    } else {
        String::new()
    }
}

/// `rows_rejected`: the file was sent, but some rows were not.
pub fn rows_rejected(facts: RowsRejected) -> Alert {
    let RowsRejected {
        key,
        file,
        archived_at,
        catalog_id,
        rows_read,
        sent,
        deleted,
        rejected,
        refused_by_meta,
        superseded,
        report,
        samples,
    } = facts;
    let left_out = rejected + refused_by_meta;
    let of_them_deleted = of_them_deleted(deleted);
    let mut builder = AlertBuilder::new(
        AlertKind::RowsRejected,
        format!("{left_out} of {rows_read} rows rejected in {key}"),
    )
    .what_happened(format!(
        "catalog-sync sent {sent} products{of_them_deleted} from {file} to catalog {catalog_id}; {left_out} rows were rejected and not sent."
    ))
    .fact("File", format!("{file} (now {archived_at})"))
    .fact("Rows read", rows_read)
    .fact("Products sent", sent)
    .fact("Of them, products deleted", deleted)
    .fact("Rows rejected by the CSV rules", rejected)
    .fact("Products refused by Meta when sent", refused_by_meta)
    .fact("Duplicates superseded", superseded)
    .key(report)
    .next_steps(FIX_THE_ROWS);
    for sample in samples {
        builder.add_sample(sample);
    }
    builder.build()
}

/// A file that could not be used (`file_rejected`).
#[derive(Debug, Clone)]
pub struct FileRejected {
    /// The key it had in `data/`.
    pub key: String,
    /// Where it was.
    pub file: String,
    /// Where it is now.
    pub rejected_at: String,
    /// The problem's code and message.
    pub code: String,
    /// The problem, for a person.
    pub message: String,
    /// Products and batches sent before the problem was found.
    pub already_sent: Option<(u64, usize)>,
    /// The report beside the file, then the one under `reports/`.
    pub reports: [String; 2],
}

/// `file_rejected`: the file moved to `rejected/`.
pub fn file_rejected(facts: FileRejected) -> Alert {
    let FileRejected {
        key,
        file,
        rejected_at,
        code,
        message,
        already_sent,
        reports: [beside, report],
    } = facts;
    let mut builder = AlertBuilder::new(AlertKind::FileRejected, format!("file rejected: {key}"))
        .what_happened(format!("catalog-sync could not use {file}: {message}"))
        .fact("File", format!("{file} (moved to {rejected_at})"))
        .fact("Problem", code)
        .key(beside)
        .key(report)
        .next_steps(FIX_THE_FILE);
    if let Some((items, batches)) = already_sent {
        builder = builder.fact(
            "Already sent before the problem was found",
            format!("{items} products in {batches} batch(es); they stay in the catalog"),
        );
    }
    builder.build()
}

/// A full snapshot's deletes held back (`deletes_held`).
#[derive(Debug, Clone)]
pub struct DeletesHeld {
    /// The snapshot's key in `data/`.
    pub key: String,
    /// Where the snapshot is now (archived).
    pub file: String,
    /// The archived snapshot's key, for the release command.
    pub archived_key: String,
    /// Products it would have deleted.
    pub count: u64,
    /// Products known before it.
    pub known: u64,
    /// Some of their ids.
    pub examples: Vec<String>,
    /// Why they were held.
    pub reason: String,
    /// The snapshot's report.
    pub report: String,
}

/// `deletes_held`: a full snapshot's updates went out, its deletes did not.
pub fn deletes_held(facts: DeletesHeld) -> Alert {
    let DeletesHeld {
        key,
        file,
        archived_key,
        count,
        known,
        examples,
        reason,
        report,
    } = facts;
    let mut builder = AlertBuilder::new(
        AlertKind::DeletesHeld,
        format!("{count} deletes held: {key}"),
    )
    .what_happened(format!(
        "The full snapshot {key} lacks {count} of the {known} products catalog-sync knows. Its updates were sent, but its deletes were held back: {reason}."
    ))
    .fact("Snapshot", &file)
    .fact("Deletes held", count)
    .fact("Products known", known)
    .key(report)
    .next_steps(format!(
        "If the export is wrong (empty, cut short, or filtered), fix it and land a complete snapshot; nothing was deleted. If these products really are gone, release the deletes: catalog-sync replay --allow-deletes {archived_key} (it lands the snapshot again, deletes allowed). Meta advises marking products out of stock rather than deleting them when they may come back."
    ));
    let total = examples.len() as u64;
    for id in examples {
        builder = builder.sample(Sample {
            file: Some(key.clone()),
            line: None,
            id: Some(id),
            message: "absent from the snapshot; would be deleted".to_owned(),
        });
    }
    builder.samples_total(count.max(total)).build()
}

/// The change-detection state could not be used (`state_reset`).
pub fn state_reset(state_at: &str, why: &str, file: &str) -> Alert {
    AlertBuilder::new(AlertKind::StateReset, "change detection started over")
        .what_happened(format!(
            "The record of what Meta holds ({state_at}) could not be used: {why}. catalog-sync started a new one while processing {file}, so every product is sent once more and no snapshot deletes anything until products are known again."
        ))
        .fact("State", state_at)
        .fact("Why", why)
        .next_steps("Nothing to do: sending again is harmless. If it happens again, check what else writes to the synced bucket's state/ folder.")
        .build()
}

/// A file that could not be sent this time (`token_invalid` or `send_failed`).
#[derive(Debug, Clone)]
pub struct SendFailed {
    /// The key in `data/`.
    pub key: String,
    /// Where it is, for a person.
    pub file: String,
    /// The Meta catalog.
    pub catalog_id: String,
    /// Meta refused the token (rather than failing otherwise).
    pub token_refused: bool,
    /// What went wrong.
    pub message: String,
    /// What the Graph client advises for this class of error.
    pub what_to_do: String,
    /// Batches accepted before the failure.
    pub batches: usize,
    /// Products accepted before the failure.
    pub items: u64,
    /// Where the report is, when it could be stored.
    pub report: Option<String>,
}

/// `token_invalid` or `send_failed`: the file stays in the landing folder.
pub fn send_failed(facts: SendFailed) -> Alert {
    let SendFailed {
        key,
        file,
        catalog_id,
        token_refused,
        message,
        what_to_do,
        batches,
        items,
        report,
    } = facts;
    let (kind, headline, next) = if token_refused {
        (
            AlertKind::TokenInvalid,
            format!("Meta access token refused; {key} not synced"),
            REPLACE_THE_TOKEN.to_owned(),
        )
    } else {
        (
            AlertKind::SendFailed,
            format!("sending {key} to Meta failed"),
            format!(
                "{what_to_do} The file stays in the landing folder; Lambda retries it, and you can re-send it with catalog-sync replay."
            ),
        )
    };
    let mut builder = AlertBuilder::new(kind, headline)
        .what_happened(format!(
            "catalog-sync could not send {file} to catalog {catalog_id}: {message}"
        ))
        .fact("File", format!("{file} (left in place)"))
        .fact("Batches accepted before the failure", batches)
        .fact("Products accepted before the failure", items)
        .next_steps(next);
    if let Some(report) = report {
        builder = builder.key(report);
    }
    builder.build()
}

/// The "what to do" of a file given up on, after the last attempt's own advice if known
/// (also the report's `what_to_do`).
pub fn gave_up_what_to_do(last_attempt: Option<&str>) -> String {
    match last_attempt {
        None => format!(
            "Look at the sync-on-arrival function's log for this file; then {RESEND_FROM_FAILED}."
        ),
        Some(last) => {
            format!("{last} Then {RESEND_FROM_FAILED}; batches already sent need nothing.")
        }
    }
}

/// A file given up on by the sweep (`send_failed`).
#[derive(Debug, Clone)]
pub struct GaveUp {
    /// The key it had in `data/`.
    pub key: String,
    /// The failed prefix, for the subject.
    pub failed_prefix: String,
    /// Where it was.
    pub file: String,
    /// Where it is now.
    pub failed_at: String,
    /// Why it was given up on.
    pub message: String,
    /// What to do ([`gave_up_what_to_do`]).
    pub what_to_do: String,
    /// Invocations that worked on it.
    pub attempts: u32,
    /// Re-drives by the poller.
    pub redrives: u32,
    /// Batches accepted before giving up.
    pub batches: usize,
    /// Products accepted before giving up.
    pub items: u64,
    /// The report beside the file, then the one under `reports/`.
    pub reports: [String; 2],
}

/// `send_failed`: the sweep gave up on a file and moved it to `failed/`.
pub fn gave_up(facts: GaveUp) -> Alert {
    let GaveUp {
        key,
        failed_prefix,
        file,
        failed_at,
        message,
        what_to_do,
        attempts,
        redrives,
        batches,
        items,
        reports: [beside, report],
    } = facts;
    AlertBuilder::new(
        AlertKind::SendFailed,
        format!("gave up on {key}; moved to {failed_prefix}"),
    )
    .what_happened(format!(
        "catalog-sync could not finish {file}: {message}. It was moved to {failed_at} so it no longer waits unseen in the landing folder."
    ))
    .fact("File", failed_at)
    .fact("Attempts", attempts)
    .fact("Re-drives by the poller", redrives)
    .fact("Batches accepted before giving up", batches)
    .fact("Products accepted before giving up", items)
    .key(beside)
    .key(report)
    .next_steps(what_to_do)
    .build()
}

/// One batch that ended, as a verdict alert tells it.
#[derive(Debug, Clone)]
pub struct EndedBatch {
    /// The source file, for a person (or a note that it is unknown).
    pub file_label: String,
    /// The source key in `data/`, empty when unknown.
    pub source_key: String,
    /// The handle.
    pub handle: String,
    /// Products in the batch.
    pub item_count: usize,
    /// The CSV line of its first product.
    pub first_line: Option<u64>,
    /// How it ended.
    pub state: BatchState,
    /// Item errors in all (products not saved).
    pub errors_total: u64,
    /// Warnings in all (products saved).
    pub warnings_total: u64,
    /// Some of the errors, with lines.
    pub errors: Vec<Sample>,
    /// Some of the warnings, with lines.
    pub warnings: Vec<Sample>,
    /// Where its verdict is stored.
    pub verdict_at: String,
}

impl EndedBatch {
    /// Whether the batch needs a person's attention.
    pub fn has_problems(&self) -> bool {
        self.errors_total > 0 || self.warnings_total > 0 || self.state != BatchState::Finished
    }

    /// Whether it ended canceled or in error, so that only part of it may have been saved.
    fn not_saved(&self) -> bool {
        matches!(self.state, BatchState::Canceled | BatchState::Error)
    }
}

/// The batches that ended in one poll.
#[derive(Debug, Clone)]
pub struct Verdicts {
    /// The Meta catalog.
    pub catalog_id: String,
    /// Batches checked in the run.
    pub checked: u64,
    /// Every batch that ended in the run, clean or not.
    pub ended: Vec<EndedBatch>,
    /// Where the verdicts not listed one by one are.
    pub verdicts_under: String,
}

/// `batch_errors` (any error, cancel or failure) or `batch_warnings` (only warnings) for the
/// batches that ended in one poll, or `None` when every one finished clean.
pub fn batch_verdicts(facts: &Verdicts) -> Option<Alert> {
    let problems: Vec<&EndedBatch> = facts.ended.iter().filter(|b| b.has_problems()).collect();
    if problems.is_empty() {
        return None;
    }
    let errors: u64 = problems.iter().map(|b| b.errors_total).sum();
    let warnings: u64 = problems.iter().map(|b| b.warnings_total).sum();
    let canceled = problems
        .iter()
        .filter(|b| b.state == BatchState::Canceled)
        .count();
    let failed = problems
        .iter()
        .filter(|b| b.state == BatchState::Error)
        .count();
    let any_error = errors > 0 || canceled > 0 || failed > 0;
    let catalog = facts.catalog_id.as_str();
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
        facts.ended.len()
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
            " {} batch(es) ended canceled or in error: Meta may have applied part of them, so some of their products may be in the catalog and others not.",
            canceled + failed
        ));
    }

    let mut builder = AlertBuilder::new(kind, headline)
        .what_happened(what)
        .fact("Catalog", catalog)
        .fact("Batches checked this run", facts.checked)
        .fact("Batches with problems", batches)
        .fact("Item errors (products not saved)", errors)
        .fact("Warnings (products saved)", warnings);
    if canceled > 0 {
        builder = builder.fact("Batches canceled (may be partly applied)", canceled);
    }
    if failed > 0 {
        builder = builder.fact("Batches failed (may be partly applied)", failed);
    }

    // Per source file: errors / warnings / batches.
    let mut files: std::collections::BTreeMap<&str, FileTally> = Default::default();
    for batch in &problems {
        let tally = files.entry(batch.file_label.as_str()).or_default();
        tally.batches += 1;
        tally.errors += batch.errors_total;
        tally.warnings += batch.warnings_total;
        if batch.not_saved() {
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
    for batch in &problems {
        for sample in &batch.errors {
            builder.add_sample(sample.clone());
        }
    }
    for batch in problems.iter().filter(|b| b.not_saved()) {
        builder.add_sample(Sample {
            file: non_empty(&batch.source_key),
            line: batch.first_line,
            id: None,
            message: format!(
                "batch {} ({} products) ended {}: it may have been partly applied; send its file again",
                batch.handle,
                batch.item_count,
                state_name(batch.state)
            ),
        });
    }
    for batch in &problems {
        for sample in &batch.warnings {
            builder.add_sample(sample.clone());
        }
    }

    for batch in problems.iter().take(MAX_KEYS_LISTED) {
        builder = builder.key(batch.verdict_at.clone());
    }
    if problems.len() > MAX_KEYS_LISTED {
        builder = builder.key(format!(
            "... and {} more under {}",
            problems.len() - MAX_KEYS_LISTED,
            facts.verdicts_under
        ));
    }
    let mut next = String::new();
    if errors > 0 {
        next.push_str("Fix the products named (file, CSV line, id) in the source database; they are sent again with the next export that includes them. ");
    }
    if canceled + failed > 0 {
        next.push_str(&format!(
            "For canceled or failed batches, {RESEND_FROM_ARCHIVE}. "
        ));
    }
    if warnings > 0 {
        next.push_str("Warnings do not block products but can limit how they show; improve the data when convenient. ");
    }
    next.push_str("Each verdict file lists Meta's samples with their source lines.");
    Some(builder.next_steps(next).build())
}

/// Counts per source file in a verdict alert.
#[derive(Debug, Default)]
struct FileTally {
    batches: u64,
    errors: u64,
    warnings: u64,
    not_saved: u64,
}

/// A batch still without a final status after `PENDING_MAX_AGE`.
#[derive(Debug, Clone)]
pub struct StuckBatch {
    /// The source key in `data/`, empty when unknown.
    pub source_key: String,
    /// The CSV line of its first product.
    pub first_line: Option<u64>,
    /// The handle.
    pub handle: String,
    /// Products in the batch.
    pub item_count: usize,
    /// RFC 3339 time it was sent, empty when unknown.
    pub sent_at: String,
    /// Meta's last answer, or the error of the last check.
    pub last_answer: String,
    /// Where its pending record is.
    pub pending_at: String,
}

/// The batches that became stuck since the last alert.
#[derive(Debug, Clone)]
pub struct Stuck {
    /// The Meta catalog.
    pub catalog_id: String,
    /// `PENDING_MAX_AGE`, as a person writes it (`24h`).
    pub max_age: String,
    /// The batches.
    pub batches: Vec<StuckBatch>,
    /// Where the pending records not listed one by one are.
    pub pending_under: String,
}

/// `batch_stuck`: batches without a final status after `PENDING_MAX_AGE`, alerted once each.
pub fn batch_stuck(facts: &Stuck) -> Alert {
    let Stuck {
        catalog_id,
        max_age,
        batches,
        pending_under,
    } = facts;
    let mut builder = AlertBuilder::new(
        AlertKind::BatchStuck,
        format!("{} batch(es) not finished after {max_age}", batches.len()),
    )
    .what_happened(format!(
        "Meta has not given a final status for {} batch(es) sent to catalog {catalog_id} more than {max_age} ago (PENDING_MAX_AGE). They stay pending and are checked on every run; this alert is sent once per batch.",
        batches.len()
    ))
    .fact("Catalog", catalog_id)
    .fact("Stuck batches", batches.len());
    for batch in batches {
        builder.add_sample(Sample {
            file: non_empty(&batch.source_key),
            line: batch.first_line,
            id: None,
            message: format!(
                "batch {} ({} products) sent {}; last answer: {}",
                batch.handle,
                batch.item_count,
                if batch.sent_at.is_empty() {
                    "at an unknown time"
                } else {
                    &batch.sent_at
                },
                shorten(&batch.last_answer, 200)
            ),
        });
    }
    for batch in batches.iter().take(MAX_KEYS_LISTED) {
        builder = builder.key(batch.pending_at.clone());
    }
    if batches.len() > MAX_KEYS_LISTED {
        builder = builder.key(format!(
            "... and {} more under {pending_under}",
            batches.len() - MAX_KEYS_LISTED
        ));
    }
    builder
        .next_steps(format!("Look the batches up in Meta Commerce Manager (catalog > data sources). If one never finishes, {RESEND_FROM_ARCHIVE} and delete its pending record to stop tracking it."))
        .build()
}

/// A poll that Meta stopped before every batch was checked.
#[derive(Debug, Clone)]
pub struct PollStopped<'a> {
    /// The Meta catalog.
    pub catalog_id: String,
    /// Why Meta stopped it (token refused, throttled, version retired, permission lost).
    pub reason: &'a GraphError,
    /// Pending batches at the start of the run.
    pub pending_found: u64,
    /// Batches that ended before the stop.
    pub ended: u64,
    /// Where the pending records are.
    pub pending_under: String,
}

/// `token_invalid` (the token was refused) or `send_failed` (throttled, a retired API version, a
/// lost permission): the poll stopped
/// before checking everything.
pub fn poll_stopped(facts: &PollStopped<'_>) -> Alert {
    let PollStopped {
        catalog_id: catalog,
        reason,
        pending_found,
        ended,
        pending_under,
    } = facts;
    let left = pending_found.saturating_sub(*ended);
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
    } else if reason.class() != ErrorClass::Throttled {
        // A retired API version or a lost permission: every check would fail the same way.
        AlertBuilder::new(
            AlertKind::SendFailed,
            format!("Meta refused the batch checks; {left} batch check(s) waiting"),
        )
        .what_happened(format!(
            "catalog-sync could not check batch statuses in catalog {catalog}: {reason}. No batch can be checked (or sent) until this is fixed."
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
        .next_steps(CHECKS_THROTTLED)
    };
    builder
        .fact("Catalog", catalog)
        .fact("Pending batches at the start of the run", pending_found)
        .fact("Batches that ended before the stop", ended)
        .fact("Batches still pending", left)
        .key(pending_under.clone())
        .build()
}

/// The name of a batch state in alerts and verdict files.
pub fn state_name(state: BatchState) -> &'static str {
    match state {
        BatchState::Finished => "finished",
        BatchState::Canceled => "canceled",
        BatchState::Error => "error",
        BatchState::InProgress => "in progress",
    }
}

/// `text`, or `None` when empty.
pub(crate) fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(line: u64) -> Sample {
        Sample {
            file: Some("data/a.csv".to_owned()),
            line: Some(line),
            id: Some(format!("SKU-{line}")),
            message: "price: not a number".to_owned(),
        }
    }

    fn ended(state: BatchState, errors: u64, warnings: u64) -> EndedBatch {
        EndedBatch {
            file_label: "s3://landing/data/a.csv".to_owned(),
            source_key: "data/a.csv".to_owned(),
            handle: format!("h-{errors}-{warnings}"),
            item_count: 5,
            first_line: Some(2),
            state,
            errors_total: errors,
            warnings_total: warnings,
            errors: (0..errors).map(|n| sample(n + 2)).collect(),
            warnings: Vec::new(),
            verdict_at: "s3://synced/checked/2026/12/01/h.json".to_owned(),
        }
    }

    #[test]
    fn rows_rejected_counts_rows_left_out_and_says_what_to_do() {
        let alert = rows_rejected(RowsRejected {
            key: "data/a.csv".to_owned(),
            file: "s3://landing/data/a.csv".to_owned(),
            archived_at: "s3://landing/archive/a.csv".to_owned(),
            catalog_id: "123".to_owned(),
            rows_read: 10,
            sent: 7,
            deleted: 2,
            rejected: 2,
            refused_by_meta: 1,
            superseded: 1,
            report: "s3://synced/reports/r.json".to_owned(),
            samples: vec![sample(3)],
        });
        assert_eq!(alert.kind, AlertKind::RowsRejected);
        assert_eq!(
            alert.subject,
            "catalog-sync: 3 of 10 rows rejected in data/a.csv"
        );
        assert!(alert.text.contains("(now s3://landing/archive/a.csv)"));
        assert!(
            alert
                .text
                .contains("sent 7 products (2 of them deletes) from"),
            "{}",
            alert.text
        );
        assert!(
            alert.text.contains("Of them, products deleted: 2"),
            "{}",
            alert.text
        );
        assert!(alert.text.contains(&format!("What to do: {FIX_THE_ROWS}")));
        assert_eq!(alert.document["kind"], "rows_rejected");
        assert_eq!(alert.document["severity"], "warning");
        assert_eq!(alert.document["samples"][0]["line"], 3);
    }

    #[test]
    fn file_rejected_names_both_reports_and_what_was_already_sent() {
        let alert = file_rejected(FileRejected {
            key: "data/a.csv".to_owned(),
            file: "/r/landing/data/a.csv".to_owned(),
            rejected_at: "/r/landing/rejected/a.csv".to_owned(),
            code: "missing_columns".to_owned(),
            message: "line 1: column price is missing".to_owned(),
            already_sent: Some((40, 2)),
            reports: ["beside".to_owned(), "report".to_owned()],
        });
        assert_eq!(alert.kind, AlertKind::FileRejected);
        assert_eq!(alert.subject, "catalog-sync: file rejected: data/a.csv");
        assert_eq!(
            alert.document["keys"],
            serde_json::json!(["beside", "report"])
        );
        assert!(alert.text.contains("40 products in 2 batch(es)"));
        assert_eq!(alert.document["next_steps"], FIX_THE_FILE);
    }

    #[test]
    fn a_refused_token_is_token_invalid_and_other_failures_are_send_failed() {
        let facts = SendFailed {
            key: "data/a.csv".to_owned(),
            file: "s3://l/data/a.csv".to_owned(),
            catalog_id: "1".to_owned(),
            token_refused: true,
            message: "token expired".to_owned(),
            what_to_do: "Check the network.".to_owned(),
            batches: 1,
            items: 3000,
            report: None,
        };
        let token = send_failed(facts.clone());
        assert_eq!(token.kind, AlertKind::TokenInvalid);
        assert!(token.text.contains(REPLACE_THE_TOKEN));
        assert!(token.document["keys"].as_array().is_some_and(Vec::is_empty));
        let other = send_failed(SendFailed {
            token_refused: false,
            report: Some("r".to_owned()),
            ..facts
        });
        assert_eq!(other.kind, AlertKind::SendFailed);
        assert!(
            other
                .text
                .contains("Check the network. The file stays in the landing folder")
        );
        assert!(other.text.contains("(left in place)"));
    }

    #[test]
    fn giving_up_says_how_to_send_the_file_again() {
        assert!(gave_up_what_to_do(None).contains(RESEND_FROM_FAILED));
        let after = gave_up_what_to_do(Some("Replace the token."));
        assert!(after.starts_with("Replace the token. Then copy the file from failed/"));
        let alert = gave_up(GaveUp {
            key: "data/a.csv".to_owned(),
            failed_prefix: "failed/".to_owned(),
            file: "s3://l/data/a.csv".to_owned(),
            failed_at: "s3://l/failed/a.csv".to_owned(),
            message: "still there".to_owned(),
            what_to_do: after.clone(),
            attempts: 4,
            redrives: 3,
            batches: 0,
            items: 0,
            reports: ["b".to_owned(), "r".to_owned()],
        });
        assert_eq!(alert.kind, AlertKind::SendFailed);
        assert_eq!(
            alert.subject,
            "catalog-sync: gave up on data/a.csv; moved to failed/"
        );
        assert_eq!(alert.document["next_steps"], after);
    }

    #[test]
    fn clean_batches_give_no_verdict_alert() {
        let facts = Verdicts {
            catalog_id: "1".to_owned(),
            checked: 2,
            ended: vec![ended(BatchState::Finished, 0, 0)],
            verdicts_under: "checked/".to_owned(),
        };
        assert!(batch_verdicts(&facts).is_none());
    }

    #[test]
    fn warnings_alone_are_batch_warnings_and_any_error_is_batch_errors() {
        let warnings = Verdicts {
            catalog_id: "1".to_owned(),
            checked: 1,
            ended: vec![ended(BatchState::Finished, 0, 2)],
            verdicts_under: "checked/".to_owned(),
        };
        let alert = batch_verdicts(&warnings).expect("an alert");
        assert_eq!(alert.kind, AlertKind::BatchWarnings);
        assert_eq!(
            alert.subject,
            "catalog-sync: 2 item warning(s) in 1 batch(es)"
        );
        let errors = Verdicts {
            ended: vec![
                ended(BatchState::Finished, 3, 1),
                ended(BatchState::Canceled, 0, 0),
            ],
            ..warnings
        };
        let alert = batch_verdicts(&errors).expect("an alert");
        assert_eq!(alert.kind, AlertKind::BatchErrors);
        assert_eq!(
            alert.subject,
            "catalog-sync: 3 item error(s), 1 warning(s) in 2 batch(es), 1 canceled"
        );
        assert!(alert.text.contains(RESEND_FROM_ARCHIVE));
        // Meta may have applied part of a canceled or failed batch (issue 15).
        assert!(alert.text.contains("may have been partly applied"));
        assert!(
            alert
                .text
                .contains("some of their products may be in the catalog")
        );
        assert_eq!(alert.document["samples"][0]["line"], 2);
    }

    #[test]
    fn checks_stopped_by_a_retired_version_say_to_change_it() {
        let reason = graph::GraphError::VersionUnavailable {
            code: 2635,
            message: "deprecated version".to_owned(),
        };
        let alert = poll_stopped(&PollStopped {
            catalog_id: "1".to_owned(),
            reason: &reason,
            pending_found: 3,
            ended: 0,
            pending_under: "s3://synced/pending/".to_owned(),
        });
        assert_eq!(alert.kind, AlertKind::SendFailed);
        assert!(alert.text.contains("GRAPH_API_VERSION"), "{}", alert.text);
        assert!(!alert.text.contains(CHECKS_THROTTLED));
    }

    #[test]
    fn stuck_batches_are_listed_with_their_last_answer() {
        let alert = batch_stuck(&Stuck {
            catalog_id: "1".to_owned(),
            max_age: "24h".to_owned(),
            batches: vec![StuckBatch {
                source_key: "data/a.csv".to_owned(),
                first_line: Some(2),
                handle: "h1".to_owned(),
                item_count: 9,
                sent_at: String::new(),
                last_answer: "in_progress".to_owned(),
                pending_at: "s3://synced/pending/h1.json".to_owned(),
            }],
            pending_under: "s3://synced/pending/".to_owned(),
        });
        assert_eq!(alert.kind, AlertKind::BatchStuck);
        assert_eq!(
            alert.subject,
            "catalog-sync: 1 batch(es) not finished after 24h"
        );
        assert!(
            alert
                .text
                .contains("sent at an unknown time; last answer: in_progress")
        );
        assert!(alert.text.contains(RESEND_FROM_ARCHIVE));
    }
}
