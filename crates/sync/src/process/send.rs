//! Sending a file's batches: each batch goes to Meta, its body is stored under `synced/`, a
//! `pending/` record is written per handle, products Meta refused at once are counted with
//! their CSV lines, and the checkpoint moves past the batch.

use std::collections::HashSet;
use std::time::Duration;

use catalog::{Batch, RequestLines};
use graph::{ErrorClass, GraphError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

use super::changes::Changes;
use super::parse::{self, ReadyBatch};
use super::{Ended, FileProcessor, Opened, ProcessError, Run};
use crate::alert::Sample;
use crate::keys;
use crate::ports::{Payload, StoreError, StoreErrorKind};
use crate::progress::{self, Checkpoint, ContinueReason};
use crate::report::{BatchRecord, Counts, PendingRecord, SpoolReader};
use crate::state::SentBatch;

/// Refused products kept for the report (all are counted).
const MAX_REFUSED_SAMPLES: usize = crate::alert::MAX_SAMPLES * 50;

/// Progress of the sending side, including batches of earlier invocations.
#[derive(Default)]
pub(crate) struct Sent {
    pub(super) batches: Vec<BatchRecord>,
    pub(super) items: u64,
    pub(super) refused: u64,
    pub(super) refused_samples: Vec<Sample>,
    /// `DELETE` requests Meta took.
    pub(super) deleted: u64,
}

impl Sent {
    pub(super) fn from_checkpoint(checkpoint: &Checkpoint) -> Self {
        Sent {
            batches: checkpoint.batches.clone(),
            items: checkpoint.items_sent,
            refused: checkpoint.refused,
            refused_samples: checkpoint.refused_samples.clone(),
            deleted: checkpoint.counts.deleted,
        }
    }
}

/// Why sending stopped.
pub(super) enum Stop {
    /// Meta refused, for good.
    Graph(GraphError),
    /// Storage failed.
    Store(StoreError),
    /// Continue in a follow-up invocation after a wait.
    Defer(ContinueReason, Duration),
}

impl FileProcessor {
    /// Sends the file's batches as the parsing thread makes them, checkpointing after each,
    /// until the file ends, the time is up, or a send or a store fails.
    pub(super) async fn send_all(
        &self,
        run: &Run<'_>,
        mut checkpoint: Checkpoint,
        opened: Opened,
        deadline: Option<Instant>,
        changes: &Changes,
    ) -> Result<Ended, ProcessError> {
        let Opened {
            body,
            spool,
            mut spool_reader,
        } = opened;
        // Parsing runs on a blocking thread fed by the download; batches come back through a
        // channel of one, so the next batch is built while the current one is being sent.
        let (batch_tx, mut batch_rx) = mpsc::channel::<ReadyBatch>(1);
        let parser =
            parse::spawn_parser(&self.settings, body, spool, &checkpoint, changes, batch_tx);

        let mut sent = Sent::from_checkpoint(&checkpoint);
        let mut stop = None;
        while let Some(ready) = batch_rx.recv().await {
            if self.time_is_up(deadline) {
                stop = Some(Stop::Defer(ContinueReason::Deadline, Duration::ZERO));
                break;
            }
            if let Err(error) = self
                .send_one(&ready.batch, run, deadline, &mut sent, changes)
                .await
            {
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
                self.scope().at(run.bucket, run.key),
                format!("the parsing thread failed: {error}"),
            )
        })?;
        Ok(Ended {
            checkpoint,
            parsed,
            sent,
            stop,
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
                    kind: StoreErrorKind::Other,
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
            unchanged: ready.counts.unchanged,
            deleted: sent.deleted,
            deletes_held: 0,
        };
        checkpoint.batches = sent.batches.clone();
        checkpoint.items_sent = sent.items;
        checkpoint.refused = sent.refused;
        checkpoint.refused_samples = sent.refused_samples.clone();
        self.renew_lease(checkpoint, deadline);
        progress::save(self.services.store.as_ref(), synced, checkpoint).await
    }

    /// Sends one batch and records what was sent: the body under `synced/`, then one
    /// `pending/` record per handle.
    async fn send_one(
        &self,
        batch: &Batch,
        run: &Run<'_>,
        deadline: Option<Instant>,
        sent: &mut Sent,
        changes: &Changes,
    ) -> Result<(), Stop> {
        let &Run {
            bucket,
            key,
            ref run_id,
            started,
            ..
        } = run;
        // Calls Meta accepted before a failure are recorded like any other (their handles are
        // polled); the failure then stops the file, and the retry sends the whole batch again.
        let (chunks, failure) = match self
            .services
            .catalog
            .send_batch(&batch.requests_json, deadline)
            .await
        {
            Ok(chunks) => (chunks, None),
            Err(partial) => (partial.accepted, Some(partial.error)),
        };
        let synced = &self.settings.layout.synced_bucket;
        // Accepted chunks before a failure mean the batch was split, even if only one got through.
        let split = chunks.len() > 1 || (failure.is_some() && !chunks.is_empty());
        let mut offset = 0;
        for (index, chunk) in chunks.into_iter().enumerate() {
            let positions = offset..offset + chunk.item_count;
            let rows = batch.rows.get(positions.clone()).unwrap_or_default();
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
            let now = self.services.clock.now();
            let sent_at = crate::progress::format_time(now);
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
                    landed_at: run.info.last_modified.map(crate::progress::format_time),
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
            // Every product of the call counts as sent once; those Meta refused while taking the
            // call count as refused once each, however many errors Meta gave them.
            sent.items += chunk.item_count as u64;
            let refused = refusals(&chunk.response, chunk.item_count);
            sent.refused += refused.count;
            {
                // Products Meta refused at once are remembered as refused: sent again next time.
                let took_none = chunk.response.handles.is_empty();
                let refused_ids: HashSet<&str> = refused.ids().collect();
                let sent_batch = SentBatch {
                    key: batch_key.clone(),
                    sent_at: now.unix_timestamp(),
                };
                changes.record(
                    batch,
                    positions.clone(),
                    |id| took_none || refused_ids.contains(id),
                    &sent_batch,
                );
            }
            let request_lines = (!refused.samples.is_empty())
                .then(|| RequestLines::new(chunk.requests_json.as_bytes(), lines.clone()));
            sent.deleted += deletes_taken(
                batch,
                positions,
                &chunk.response,
                &refused,
                request_lines.as_ref(),
            );
            for (id, message) in refused.samples {
                if sent.refused_samples.len() >= MAX_REFUSED_SAMPLES {
                    break;
                }
                let line = match &id {
                    Some(id) => request_lines
                        .as_ref()
                        .and_then(|by_id| by_id.line_of_id(id)),
                    None => lines.first().copied(),
                };
                sent.refused_samples.push(Sample {
                    file: Some(key.to_owned()),
                    line,
                    id,
                    message,
                });
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
        match failure {
            Some(error) => Err(Stop::Graph(error)),
            None => Ok(()),
        }
    }
}

/// Delete requests among `positions` of `batch` (one call) that Meta took: none when the call
/// took nothing, else all but those Meta named as refused.
fn deletes_taken(
    batch: &Batch,
    positions: std::ops::Range<usize>,
    response: &graph::ItemsBatchResponse,
    refused: &Refusals,
    request_lines: Option<&RequestLines>,
) -> u64 {
    let deletes = batch.deletes_in(positions.clone());
    if deletes == 0 || response.handles.is_empty() {
        return 0;
    }
    let refused_deletes = refused
        .ids()
        .filter_map(|id| request_lines.and_then(|lines| lines.index_of_id(id)))
        .filter(|index| batch.is_delete_at(positions.start + index))
        .count() as u64;
    deletes.saturating_sub(refused_deletes)
}

/// What Meta refused of one call it answered: how many products, and for each refused product
/// that Meta named, its id and reasons (or, for products it did not name, one line for all).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Refusals {
    /// Products not applied, each counted once.
    pub(crate) count: u64,
    /// `(retailer id, reasons)`; `None` stands for the products of a call Meta took nothing of.
    pub(crate) samples: Vec<(Option<String>, String)>,
}

impl Refusals {
    /// The ids of the products Meta named as refused.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.samples.iter().filter_map(|(id, _)| id.as_deref())
    }
}

/// Reads an `items_batch` answer: products named in `validation_status` with errors were refused
/// at once (counted once each, however many errors they have); an answer without a handle took
/// nothing, so every product of the call is refused, the unnamed ones in one line.
pub(crate) fn refusals(response: &graph::ItemsBatchResponse, item_count: usize) -> Refusals {
    let mut named: Vec<(String, Vec<&str>)> = Vec::new();
    for status in &response.validation_status {
        if status.errors.is_empty() {
            continue;
        }
        let reasons = status.errors.iter().map(|e| e.message.as_str());
        match named.iter_mut().find(|(id, _)| *id == status.retailer_id) {
            Some((_, known)) => known.extend(reasons),
            None => named.push((status.retailer_id.clone(), reasons.collect())),
        }
    }
    let named_count = named.len().min(item_count);
    let mut out = Refusals {
        count: if response.handles.is_empty() {
            item_count as u64
        } else {
            named_count as u64
        },
        samples: named
            .into_iter()
            .map(|(id, reasons)| (Some(id), reasons.join("; ")))
            .collect(),
    };
    let unnamed = item_count - named_count;
    if response.handles.is_empty() && unnamed > 0 {
        out.samples.push((
            None,
            format!(
                "Meta took none of the {item_count} products in this call (no handle returned); {unnamed} of them without a reason"
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph::{ItemsBatchResponse, Message, ValidationStatus};

    fn status(id: &str, errors: &[&str]) -> ValidationStatus {
        ValidationStatus {
            retailer_id: id.to_owned(),
            errors: errors
                .iter()
                .map(|m| Message {
                    message: (*m).to_owned(),
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_product_with_several_errors_is_refused_once() {
        let response = ItemsBatchResponse {
            handles: vec!["h".into()],
            validation_status: vec![
                status("a", &["bad price", "bad link"]),
                status("b", &[]),
                status("a", &["again"]),
            ],
        };
        let r = refusals(&response, 3);
        assert_eq!(r.count, 1);
        assert_eq!(
            r.samples,
            [(
                Some("a".to_owned()),
                "bad price; bad link; again".to_owned()
            )]
        );
    }

    #[test]
    fn no_handle_means_every_product_is_refused_once() {
        // Refusals named by Meta and a missing handle together used to count twice.
        let response = ItemsBatchResponse {
            handles: Vec::new(),
            validation_status: vec![status("a", &["duplicate"]), status("b", &["duplicate"])],
        };
        let r = refusals(&response, 5);
        assert_eq!(r.count, 5);
        assert_eq!(r.samples.len(), 3);
        assert_eq!(r.samples[2].0, None);
        assert!(
            r.samples[2].1.contains("3 of them without a reason"),
            "{}",
            r.samples[2].1
        );

        let all_named = refusals(&response, 2);
        assert_eq!((all_named.count, all_named.samples.len()), (2, 2));
    }

    #[test]
    fn a_clean_answer_refuses_nothing() {
        let response = ItemsBatchResponse {
            handles: vec!["h".into()],
            validation_status: Vec::new(),
        };
        assert_eq!(refusals(&response, 3), Refusals::default());
    }
}
