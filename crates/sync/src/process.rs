//! Use case: process one landed file — validate, transform, send, record, archive.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use catalog::{
    Batch, Batcher, FeedError, FileError, ProductReader, RejectedRow, RowIssue, Sink, Superseded,
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
use crate::ports::{AlertSink, CatalogApi, Clock, ObjectInfo, ObjectStore, Payload, StoreError};
use crate::report::{
    BatchRecord, Counts, Failure, FileReport, PendingRecord, ReportStatus, RowSpool,
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
}

impl Settings {
    /// Settings from the configuration.
    pub fn from_config(config: &crate::Config) -> Self {
        Settings {
            layout: config.layout.clone(),
            batch_limits: config.batch_limits,
            mapping: config.mapping,
            reader_limits: catalog::ReaderLimits::default(),
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
}

/// Processing a file failed for good; the file stays in `data/`.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Meta refused or could not be reached after retries.
    #[error("s3://{bucket}/{key}: sending to Meta failed after {batches_sent} batch(es): {error}. {}", .error.what_to_do())]
    SendFailed {
        /// Landing bucket.
        bucket: String,
        /// The file.
        key: String,
        /// Batches accepted before the failure (their handles are pending).
        batches_sent: usize,
        /// Why.
        error: GraphError,
    },
    /// Reading or writing storage failed.
    #[error("s3://{bucket}/{key}: {source}")]
    Store {
        /// Landing bucket.
        bucket: String,
        /// The file.
        key: String,
        /// Why.
        source: StoreError,
    },
    /// Internal failure (a worker thread died or a request could not be serialised).
    #[error("s3://{bucket}/{key}: {message}")]
    Internal {
        /// Landing bucket.
        bucket: String,
        /// The file.
        key: String,
        /// Why.
        message: String,
    },
}

/// The "process one landed file" use case.
#[derive(Clone)]
pub struct FileProcessor {
    services: Services,
    settings: Settings,
}

/// The sink on the parsing thread: rows to the spool, batches to the sender.
struct ParseSink {
    spool: RowSpool,
    superseded: u64,
    batches: mpsc::Sender<Batch>,
}

/// Why the parsing thread stopped early.
#[derive(Debug, thiserror::Error)]
enum ParseSinkError {
    #[error("the sender stopped")]
    SenderStopped,
    #[error("could not spool rejected rows to a temporary file: {0}")]
    Spool(#[from] std::io::Error),
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
        self.batches
            .blocking_send(batch)
            .map_err(|_| ParseSinkError::SenderStopped)
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

/// Progress of the sending side.
#[derive(Default)]
struct Sent {
    batches: Vec<BatchRecord>,
    items: u64,
    refused: u64,
    refused_samples: Vec<Sample>,
    error: Option<GraphError>,
    store_error: Option<StoreError>,
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

    /// Processes `key` in `bucket` before `deadline`.
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
        let store_error = |source| ProcessError::Store {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let Some(info) = self
            .services
            .store
            .head(bucket, key)
            .await
            .map_err(store_error)?
        else {
            info!(
                key,
                "already processed: the file is no longer in the landing folder"
            );
            return Ok(FileOutcome::AlreadyProcessed {
                key: key.to_owned(),
            });
        };
        let started = self.services.clock.now();
        let run_id = keys::new_run_id(started);
        let timer = StdInstant::now();
        let run = |info: ObjectInfo| Run {
            bucket,
            key,
            relative,
            info,
            run_id: run_id.clone(),
            started,
            timer,
        };
        info!(key, run_id, size = info.size, "processing");

        if info.size > self.settings.reader_limits.max_file_bytes {
            let error = FileError::FileTooLarge {
                max_bytes: self.settings.reader_limits.max_file_bytes,
            };
            let parsed = Parsed {
                counts: catalog::RowCounts::default(),
                superseded: 0,
                warnings: Vec::new(),
                spool: RowSpool::new(),
                file_error: Some(error),
                internal_error: None,
            };
            return self
                .finish_rejected(&run(info), parsed, Sent::default())
                .await;
        }

        let Some((info, body)) = self
            .services
            .store
            .get(bucket, key, 0, info.etag.as_deref())
            .await
            .map_err(store_error)?
        else {
            return Ok(FileOutcome::AlreadyProcessed {
                key: key.to_owned(),
            });
        };

        // Parsing runs on a blocking thread fed by the download; batches come back through a
        // channel of one, so the next batch is built while the current one is being sent.
        let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(1);
        let limits = self.settings.reader_limits;
        let mut batcher = Batcher::new(self.settings.batch_limits, self.settings.mapping);
        let bridge = SyncIoBridge::new(body);
        let parser = tokio::task::spawn_blocking(move || {
            let mut sink = ParseSink {
                spool: RowSpool::new(),
                superseded: 0,
                batches: batch_tx,
            };
            let source = BufReader::with_capacity(256 * 1024, bridge);
            let mut parsed = Parsed {
                counts: catalog::RowCounts::default(),
                superseded: 0,
                warnings: Vec::new(),
                spool: RowSpool::new(),
                file_error: None,
                internal_error: None,
            };
            match ProductReader::with_limits(source, limits) {
                Err(error) => parsed.file_error = Some(error),
                Ok(mut reader) => {
                    if !reader.extra_columns().is_empty() {
                        parsed.warnings.push(format!(
                            "extra columns ignored: {}",
                            reader.extra_columns().join(", ")
                        ));
                    }
                    match catalog::feed(&mut reader, 0, &mut batcher, &mut sink) {
                        Ok(counts) => {
                            parsed.counts = counts;
                            if let Some(batch) = batcher.finish() {
                                // A stopped sender has its own error to report.
                                let _ = sink.batches.blocking_send(batch);
                            }
                        }
                        Err(FeedError::File(error)) => {
                            parsed.counts.rows_read = reader.position().rows;
                            parsed.file_error = Some(error);
                        }
                        Err(FeedError::Sink(ParseSinkError::SenderStopped)) => {
                            parsed.counts.rows_read = reader.position().rows;
                        }
                        Err(error) => parsed.internal_error = Some(error.to_string()),
                    }
                }
            }
            parsed.superseded = sink.superseded;
            parsed.spool = sink.spool;
            parsed
        });

        let this_run = run(info);
        let mut sent = Sent::default();
        while let Some(batch) = batch_rx.recv().await {
            if let Err(stop) = self.send_one(&batch, &this_run, deadline, &mut sent).await {
                match stop {
                    Stop::Graph(error) => sent.error = Some(error),
                    Stop::Store(error) => sent.store_error = Some(error),
                }
                break;
            }
        }
        drop(batch_rx);
        let parsed = parser.await.map_err(|error| ProcessError::Internal {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: format!("the parsing thread failed: {error}"),
        })?;
        if let Some(message) = parsed.internal_error.clone() {
            return Err(ProcessError::Internal {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                message,
            });
        }
        if let Some(error) = sent.store_error.take() {
            return Err(store_error(error));
        }
        if sent.error.is_some() {
            return self.finish_send_failed(&this_run, parsed, sent).await;
        }
        if parsed.file_error.is_some() {
            return self.finish_rejected(&this_run, parsed, sent).await;
        }
        self.finish_archived(&this_run, parsed, sent).await
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
            for status in &chunk.response.validation_status {
                for problem in &status.errors {
                    sent.refused += 1;
                    sent.refused_samples.push(Sample {
                        file: Some(key.to_owned()),
                        line: line_of(&chunk.requests_json, &lines, &status.retailer_id),
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
            timer,
            ..
        } = run;
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
            finished_at: self.now_rfc3339(),
            duration_ms: u64::try_from(timer.elapsed().as_millis()).unwrap_or(u64::MAX),
            counts: counts(parsed, sent),
            warnings: parsed.warnings.clone(),
            failure,
            batches: sent.batches.clone(),
            refused_items: sent
                .refused_samples
                .iter()
                .take(crate::alert::MAX_SAMPLES * 50)
                .cloned()
                .collect(),
        }
    }

    /// Stores the report under `reports/` (and optionally a copy beside the file).
    async fn store_report(
        &self,
        report: &FileReport,
        spool: RowSpool,
        beside: Option<(&str, String)>,
    ) -> Result<String, StoreError> {
        let report_key = keys::report_key(
            OffsetDateTime::parse(&report.started_at, &Rfc3339)
                .unwrap_or_else(|_| self.services.clock.now()),
            &report.run_id,
        );
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
            format!("s3://{bucket}/{archive_key}"),
            None,
        );
        let samples: Vec<RowIssue> = parsed.spool.samples().to_vec();
        let store_error = |source| ProcessError::Store {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let report_key = self
            .store_report(&report, parsed.spool, None)
            .await
            .map_err(store_error)?;
        self.move_object(bucket, key, &archive_key)
            .await
            .map_err(store_error)?;
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
                "catalog-sync sent {} products from s3://{bucket}/{key} to catalog {}; {} rows were rejected and not sent.",
                counts.sent,
                report.catalog_id,
                counts.rejected + counts.refused_by_meta
            ))
            .fact("File", format!("s3://{bucket}/{key} (now s3://{bucket}/{archive_key})"))
            .fact("Rows read", counts.rows_read)
            .fact("Products sent", counts.sent)
            .fact("Rows rejected by the CSV rules", counts.rejected)
            .fact("Products refused by Meta when sent", counts.refused_by_meta)
            .fact("Duplicates superseded", counts.superseded)
            .key(format!("s3://{synced}/{report_key}"))
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
            format!("s3://{bucket}/{rejected_key}"),
            Some(failure.clone()),
        );
        let store_error = |source| ProcessError::Store {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source,
        };
        let beside = keys::report_beside(&rejected_key);
        let report_key = self
            .store_report(&report, parsed.spool, Some((bucket, beside.clone())))
            .await
            .map_err(store_error)?;
        self.move_object(bucket, key, &rejected_key)
            .await
            .map_err(store_error)?;
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
                    "catalog-sync could not use s3://{bucket}/{key}: {}",
                    failure.message
                ))
                .fact(
                    "File",
                    format!("s3://{bucket}/{key} (moved to s3://{bucket}/{rejected_key})"),
                )
                .fact("Problem", &failure.code)
                .key(format!("s3://{bucket}/{beside}"))
                .key(format!("s3://{synced}/{report_key}"))
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

    async fn finish_send_failed(
        &self,
        run: &Run<'_>,
        parsed: Parsed,
        mut sent: Sent,
    ) -> Result<FileOutcome, ProcessError> {
        let &Run {
            bucket,
            key,
            ref run_id,
            ..
        } = run;
        let Some(error) = sent.error.take() else {
            return Err(ProcessError::Internal {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                message: "send failure without an error".to_owned(),
            });
        };
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
            format!("s3://{bucket}/{key}"),
            Some(failure.clone()),
        );
        // The report is worth having, but the send failure is the error to return.
        let report_key = match self.store_report(&report, parsed.spool, None).await {
            Ok(report_key) => Some(report_key),
            Err(store) => {
                warn!(key, %store, "could not store the report of a failed send");
                None
            }
        };
        warn!(key, run_id, class = ?error.class(), batches_sent = sent.batches.len(), "sending failed: {error}");
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
            .what_happened(format!("catalog-sync could not send s3://{bucket}/{key} to catalog {}: {}", report.catalog_id, failure.message))
            .fact("File", format!("s3://{bucket}/{key} (left in place)"))
            .fact("Batches accepted before the failure", sent.batches.len())
            .fact("Products accepted before the failure", sent.items)
            .next_steps(if token {
                "Create a new system-user token with catalog_management permission and store it in the access-token secret; then re-send the file (catalog-sync replay, or copy it into data/ again). Products already accepted are tracked and need nothing."
                    .to_owned()
            } else {
                format!("{} The file stays in the landing folder; Lambda retries it, and you can re-send it with catalog-sync replay.", failure.what_to_do)
            });
        if let Some(report_key) = &report_key {
            builder = builder.key(format!("s3://{synced}/{report_key}"));
        }
        self.publish(builder.build()).await;
        Err(ProcessError::SendFailed {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
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
    timer: StdInstant,
}

/// Why sending stopped.
enum Stop {
    Graph(GraphError),
    Store(StoreError),
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

/// The CSV line of `retailer_id` in a batch, found through the request bodies' order.
fn line_of(requests_json: &str, lines: &[u64], retailer_id: &str) -> Option<u64> {
    let requests: Vec<serde_json::Value> = serde_json::from_str(requests_json).ok()?;
    let index = requests
        .iter()
        .rposition(|request| request["data"]["id"].as_str() == Some(retailer_id))?;
    lines.get(index).copied()
}
