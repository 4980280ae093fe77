//! Driving a file through the reader and the batcher, handing every outcome to a sink.

use std::io::Read;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::{Batch, Batcher, RowRef, SerializeError, Superseded};
use crate::reader::{FileError, Position, ProductReader, RejectedRow, Row};

/// Receives what a file turns into, as it is read.
pub trait Sink {
    /// The sink's own failure (for example, a batch could not be sent or written).
    type Error: std::error::Error + Send + Sync + 'static;

    /// A row that breaks the contract, from file `source`.
    fn rejected(&mut self, source: u32, row: RejectedRow) -> Result<(), Self::Error>;
    /// An earlier row replaced by a later one with the same id.
    fn superseded(&mut self, superseded: Superseded) -> Result<(), Self::Error>;
    /// A completed batch.
    fn batch(&mut self, batch: Batch) -> Result<(), Self::Error>;

    /// Called before each row is read, with where it starts and the counts so far.
    ///
    /// A batch handed to [`Sink::batch`] while a row is being processed holds every valid row
    /// before that row's start that was neither superseded nor sent earlier, so once the batch
    /// is sent, reading can resume at the latest point given here. Ignored by default.
    fn next_row_at(&mut self, _point: ResumePoint) {}
}

/// A place in a file from which reading can resume, with the row counts up to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// Where the next record starts, and the rows read before it.
    pub position: Position,
    /// Counts of the rows before `position` read by this call of [`feed`].
    pub counts: RowCounts,
}

/// Row counts of one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Data rows read (the header is not counted).
    pub rows_read: u64,
    /// Rows that passed every rule (including rows later superseded).
    pub valid: u64,
    /// Rows that broke at least one rule.
    pub rejected: u64,
    /// Valid rows that ask for their product to be deleted (counted in `valid` too).
    #[serde(default)]
    pub deletes: u64,
    /// Valid rows not sent because Meta already holds their product exactly so (change
    /// detection; counted in `valid` too).
    #[serde(default)]
    pub unchanged: u64,
}

impl RowCounts {
    /// Adds another file's counts.
    pub fn add(&mut self, other: RowCounts) {
        self.rows_read += other.rows_read;
        self.valid += other.valid;
        self.rejected += other.rejected;
        self.deletes += other.deletes;
        self.unchanged += other.unchanged;
    }
}

/// Why feeding a file stopped.
#[derive(Debug, Error)]
pub enum FeedError<E: std::error::Error + 'static> {
    /// The file itself is unusable.
    #[error(transparent)]
    File(#[from] FileError),
    /// A request could not be serialised.
    #[error(transparent)]
    Serialize(#[from] SerializeError),
    /// The sink failed.
    #[error(transparent)]
    Sink(E),
}

/// Reads every remaining row of `reader` (file number `source`), sending rejected rows,
/// superseded rows and full batches to `sink` as they occur.
///
/// The last, partly filled batch stays in `batcher` so that several files can share batches;
/// call [`Batcher::finish`] after the last file.
pub fn feed<R: Read, S: Sink>(
    reader: &mut ProductReader<R>,
    source: u32,
    batcher: &mut Batcher,
    sink: &mut S,
) -> Result<RowCounts, FeedError<S::Error>> {
    let mut counts = RowCounts::default();
    loop {
        sink.next_row_at(ResumePoint {
            position: reader.position(),
            counts,
        });
        let Some(row) = reader.next_row()? else {
            break;
        };
        counts.rows_read += 1;
        match row {
            Row::Valid { line, product } => {
                counts.valid += 1;
                counts.deletes += u64::from(product.is_delete());
                let pushed = batcher.push(&product, RowRef { source, line })?;
                counts.unchanged += u64::from(pushed.unchanged);
                if let Some(superseded) = pushed.superseded {
                    sink.superseded(superseded).map_err(FeedError::Sink)?;
                }
                if let Some(batch) = pushed.batch {
                    sink.batch(batch).map_err(FeedError::Sink)?;
                }
            }
            Row::Rejected(rejected) => {
                counts.rejected += 1;
                if let Some(id) = rejected.id.as_deref() {
                    batcher.saw(id);
                }
                sink.rejected(source, rejected).map_err(FeedError::Sink)?;
            }
        }
    }
    Ok(counts)
}
