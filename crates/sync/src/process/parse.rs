//! Reading a landed file on a blocking thread: rows are validated and batched as they stream
//! in, rejected rows go to the spool, and each batch comes back through a channel with the
//! point where reading resumes once it is sent.

use std::io::BufReader;

use catalog::{
    Batch, Batcher, FeedError, FileError, ProductReader, RejectedRow, ResumePoint, RowIssue, Sink,
    Superseded,
};
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

use super::Settings;
use super::changes::{Changes, HeldDeletes};
use crate::ports::ObjectBody;
use crate::progress::{Checkpoint, ResumeAt};
use crate::report::{RowSpool, SpoolMark};

/// The message of a spool that cannot be used.
pub(super) fn spool_failure(error: &std::io::Error) -> String {
    format!(
        "could not use a temporary file for rejected rows: {error}; check the function's /tmp space"
    )
}

/// A batch ready to send, with what is known once it is sent: where reading can resume.
pub(super) struct ReadyBatch {
    pub(super) batch: Batch,
    pub(super) resume: ResumeAt,
    pub(super) counts: catalog::RowCounts,
    pub(super) superseded: u64,
    pub(super) spool: SpoolMark,
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
pub(crate) struct Parsed {
    pub(super) counts: catalog::RowCounts,
    pub(super) superseded: u64,
    pub(super) warnings: Vec<String>,
    pub(super) spool: RowSpool,
    pub(super) file_error: Option<FileError>,
    pub(super) internal_error: Option<String>,
    /// A full snapshot's deletes, held back.
    pub(super) held_deletes: Option<HeldDeletes>,
}

impl Parsed {
    /// The download broke part-way (not the file): the next attempt resumes after the last
    /// batch.
    pub(super) fn read_broke(&self) -> bool {
        self.file_error
            .as_ref()
            .is_some_and(FileError::is_read_failure)
    }

    /// What a run knows before reading on: the counts and warnings of its checkpoint.
    pub(super) fn nothing(spool: RowSpool, checkpoint: &Checkpoint) -> Self {
        Parsed {
            counts: catalog::RowCounts {
                rows_read: checkpoint.counts.rows_read,
                valid: checkpoint.counts.valid,
                rejected: checkpoint.counts.rejected,
                unchanged: checkpoint.counts.unchanged,
                ..catalog::RowCounts::default()
            },
            superseded: checkpoint.counts.superseded,
            warnings: checkpoint.warnings.clone(),
            spool,
            file_error: None,
            internal_error: None,
            held_deletes: None,
        }
    }
}

/// Starts the parsing thread at the checkpoint's position.
pub(super) fn spawn_parser(
    settings: &Settings,
    body: ObjectBody,
    spool: RowSpool,
    checkpoint: &Checkpoint,
    changes: &Changes,
    batches: mpsc::Sender<ReadyBatch>,
) -> tokio::task::JoinHandle<Parsed> {
    let limits = settings.reader_limits;
    let mut batcher = Batcher::new(settings.batch_limits, settings.mapping)
        .starting_at(checkpoint.batches_done + 1)
        .with_known(changes.known());
    let changes = changes.clone();
    let resume_at = checkpoint.resume_at.clone();
    let column_mapping = settings.column_mapping.clone();
    let mut parsed = Parsed::nothing(RowSpool::new(), checkpoint);
    let base = parsed.counts;
    let bridge = SyncIoBridge::new(body);
    tokio::task::spawn_blocking(move || {
        let source = BufReader::with_capacity(256 * 1024, bridge);
        // A resumed file keeps the renames its checkpoint's layout was read with.
        let opened = match &resume_at {
            Some(at) => Ok(ProductReader::resume_with_mapping(
                source,
                at.layout(),
                at.position(),
                limits,
                &column_mapping,
            )),
            None => ProductReader::with_mapping(source, limits, &column_mapping),
        };
        let mut reader = match opened {
            Ok(reader) => reader,
            Err(error) => {
                parsed.spool = spool;
                hold_deletes_of_empty_snapshot(&changes, &error, &mut parsed);
                parsed.file_error = Some(error);
                return parsed;
            }
        };
        if resume_at.is_none()
            && let Some(warning) = reader.layout().extra_columns_warning()
        {
            parsed.warnings.push(warning);
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
                if let Err(error) =
                    queue_snapshot_deletes(&changes, &mut batcher, &mut sink, &mut parsed)
                {
                    if !matches!(error, ParseSinkError::SenderStopped) {
                        parsed.internal_error = Some(error.to_string());
                    }
                    parsed.superseded = sink.superseded;
                    parsed.spool = sink.spool;
                    return parsed;
                }
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
                hold_deletes_of_empty_snapshot(&changes, &error, &mut parsed);
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

/// At the end of a full snapshot read to its end: a `DELETE` for each product it no longer
/// holds, batched after its rows, unless the delete guard holds them back.
fn queue_snapshot_deletes(
    changes: &Changes,
    batcher: &mut Batcher,
    sink: &mut ParseSink,
    parsed: &mut Parsed,
) -> Result<(), ParseSinkError> {
    if !changes.is_snapshot() {
        return Ok(());
    }
    match changes.snapshot_deletes(parsed.counts.rows_read) {
        Ok(ids) => {
            for id in ids {
                if let Some(batch) = batcher.push_delete(&id).batch {
                    sink.batch(batch)?;
                }
            }
        }
        Err(held) => parsed.held_deletes = Some(held),
    }
    Ok(())
}

/// An empty or header-only snapshot is rejected as a file, and would have deleted every
/// known product: that is said too (`deletes_held`), as it is most often an export gone wrong.
fn hold_deletes_of_empty_snapshot(changes: &Changes, error: &FileError, parsed: &mut Parsed) {
    if changes.is_snapshot() && matches!(error, FileError::Empty | FileError::NoRows) {
        parsed.held_deletes = changes.snapshot_deletes(0).err();
    }
}
