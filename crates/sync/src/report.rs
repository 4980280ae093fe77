//! What is stored about each processed file and each batch sent.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};

use catalog::RowIssue;
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::alert::Sample;
use crate::ports::Payload;

/// Row counts of one file, as stored in reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Data rows read.
    pub rows_read: u64,
    /// Rows that passed every rule.
    pub valid: u64,
    /// Rows that broke a rule.
    pub rejected: u64,
    /// Valid rows replaced by a later row with the same id.
    pub superseded: u64,
    /// Products sent to Meta and taken (a handle came back), deletes included.
    pub sent: u64,
    /// Products Meta refused synchronously (validation_status errors, or no handle).
    pub refused_by_meta: u64,
    /// Valid rows not sent because Meta already holds their product exactly so (change
    /// detection).
    #[serde(default)]
    pub unchanged: u64,
    /// `DELETE` requests Meta took (delete rows, and products a full snapshot no longer
    /// holds); counted in `sent` too.
    #[serde(default)]
    pub deleted: u64,
    /// Deletes of a full snapshot held back for a person to confirm (`deletes_held` alert).
    #[serde(default)]
    pub deletes_held: u64,
}

impl Counts {
    /// Adds another file's counts.
    pub fn add(&mut self, other: Counts) {
        self.rows_read += other.rows_read;
        self.valid += other.valid;
        self.rejected += other.rejected;
        self.superseded += other.superseded;
        self.sent += other.sent;
        self.refused_by_meta += other.refused_by_meta;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.deletes_held += other.deletes_held;
    }

    /// `, 5 unchanged (not sent), 40 deletes held`: the change-detection counts that are not
    /// zero, for the CLI's lines (deletes sent are said with the products sent).
    pub fn changes_text(&self) -> String {
        let mut text = String::new();
        if self.unchanged > 0 {
            text.push_str(&format!(", {} unchanged (not sent)", self.unchanged));
        }
        if self.deletes_held > 0 {
            text.push_str(&format!(", {} deletes held", self.deletes_held));
        }
        text
    }
}

/// The state a file's report records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Valid rows sent; the file is in `archive/`.
    Archived,
    /// The file could not be used; it is in `rejected/`.
    Rejected,
    /// Sending failed; the file is still in `data/`.
    SendFailed,
    /// Not all batches were sent yet; a checkpoint is in `progress/`.
    InProgress,
    /// Given up after repeated attempts; the file is in `failed/`.
    Failed,
}

/// One batch sent (one `items_batch` call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Batch number within the file (1-based).
    pub number: u32,
    /// Part number when Meta asked for a smaller body and the batch was split.
    pub part: Option<usize>,
    /// Where the exact request body is stored.
    pub key: String,
    /// Requests in the call.
    pub items: usize,
    /// The handle(s) Meta returned; empty means nothing was taken.
    pub handles: Vec<String>,
    /// First and last CSV line in the batch.
    pub lines: (u64, u64),
}

/// A failure that concerns the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Stable machine-readable name.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub what_to_do: String,
}

/// The report stored under `reports/` (and beside a rejected file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// The run that processed the file.
    pub run_id: String,
    /// The Meta catalog.
    pub catalog_id: String,
    /// Landing bucket.
    pub bucket: String,
    /// The file's key in `data/`.
    pub source_key: String,
    /// The file's ETag when it was read.
    pub etag: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// What became of it.
    pub status: ReportStatus,
    /// Where the file is now.
    pub file_now_at: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub finished_at: String,
    /// Wall time spent.
    pub duration_ms: u64,
    /// Row counts.
    pub counts: Counts,
    /// Warnings, such as ignored extra columns.
    pub warnings: Vec<String>,
    /// Why the file was rejected, or why sending stopped.
    pub failure: Option<Failure>,
    /// Every batch sent.
    pub batches: Vec<BatchRecord>,
    /// Items Meta refused when the batch was sent (validation_status), with source lines.
    pub refused_items: Vec<Sample>,
    /// Lambda invocations (or local passes) it took; more than one when the file was resumed
    /// from a checkpoint.
    #[serde(default = "one")]
    pub invocations: u32,
}

fn one() -> u32 {
    1
}

/// Rejected and superseded rows, written to a temporary file as they are found so memory does
/// not grow with their number; the first few are also kept for the alert.
///
/// The file holds the rows as the inside of a JSON array (`{..},{..}`), so the report is the
/// file between brackets, and a prefix of it (up to a [`SpoolMark`]) can be stored with a
/// checkpoint and put back at the start of the spool of the invocation that resumes the file.
pub struct RowSpool {
    file: Option<BufWriter<NamedTempFile>>,
    rows: u64,
    samples: Vec<RowIssue>,
}

/// How much of a spool was written at some point: enough to store the rows before a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolMark {
    /// Bytes of the spool file.
    pub bytes: u64,
    /// Rows in those bytes.
    pub rows: u64,
    /// The first rows, for alerts.
    pub samples: Vec<RowIssue>,
}

/// A second, independent handle on a spool's file, for reading parts of it while it grows.
pub struct SpoolReader {
    file: File,
}

impl SpoolReader {
    /// Bytes `from..to` of the spool, in memory when small, else in a temporary file that lives
    /// as long as the returned path.
    pub fn part(
        &mut self,
        from: u64,
        to: u64,
    ) -> io::Result<(Payload, Option<tempfile::TempPath>)> {
        self.file.seek(io::SeekFrom::Start(from))?;
        let mut part = (&mut self.file).take(to.saturating_sub(from));
        if to.saturating_sub(from) < 4 * 1024 * 1024 {
            let mut bytes = Vec::new();
            part.read_to_end(&mut bytes)?;
            return Ok((Payload::from(bytes), None));
        }
        let (file, path) = NamedTempFile::new()?.into_parts();
        let mut out = BufWriter::new(file);
        io::copy(&mut part, &mut out)?;
        out.flush()?;
        Ok((Payload::File(path.to_path_buf()), Some(path)))
    }
}

impl Default for RowSpool {
    fn default() -> Self {
        Self::new()
    }
}

impl RowSpool {
    /// An empty spool; the temporary file is created on the first row.
    pub fn new() -> Self {
        RowSpool {
            file: None,
            rows: 0,
            samples: Vec::new(),
        }
    }

    /// An empty spool whose file exists now, with a reader for its parts.
    pub fn on_disk() -> io::Result<(RowSpool, SpoolReader)> {
        let file = NamedTempFile::new()?;
        let reader = SpoolReader {
            file: file.reopen()?,
        };
        let spool = RowSpool {
            file: Some(BufWriter::new(file)),
            rows: 0,
            samples: Vec::new(),
        };
        Ok((spool, reader))
    }

    /// Appends part of a spool an earlier invocation stored; call before any
    /// [`RowSpool::push`], then [`RowSpool::restored`].
    pub fn write_stored(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file_mut()?.write_all(bytes)
    }

    /// Takes the row count and samples of the stored parts written with
    /// [`RowSpool::write_stored`].
    pub fn restored(&mut self, mark: &SpoolMark) {
        self.rows = mark.rows;
        self.samples = mark.samples.clone();
    }

    fn file_mut(&mut self) -> io::Result<&mut BufWriter<NamedTempFile>> {
        if self.file.is_none() {
            self.file = Some(BufWriter::new(NamedTempFile::new()?));
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the spool file is gone"))
    }

    /// Adds a row.
    pub fn push(&mut self, issue: &RowIssue) -> io::Result<()> {
        if self.samples.len() < crate::alert::MAX_SAMPLES {
            self.samples.push(issue.clone());
        }
        let first = self.rows == 0;
        let file = self.file_mut()?;
        if !first {
            file.write_all(b",")?;
        }
        serde_json::to_writer(&mut *file, issue).map_err(io::Error::other)?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes, and says how much is written, so a [`SpoolReader`] can read it.
    pub fn mark(&mut self) -> io::Result<SpoolMark> {
        let bytes = match &mut self.file {
            None => 0,
            Some(file) => {
                file.flush()?;
                file.get_mut().stream_position()?
            }
        };
        Ok(SpoolMark {
            bytes,
            rows: self.rows,
            samples: self.samples.clone(),
        })
    }

    /// Rows spooled.
    pub fn len(&self) -> u64 {
        self.rows
    }

    /// True when no row was spooled.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The first rows, for alerts.
    pub fn samples(&self) -> &[RowIssue] {
        &self.samples
    }

    /// The report as one JSON document: `report`'s fields plus `"rows": [...every row...]`.
    ///
    /// Small reports stay in memory; large ones are assembled in a temporary file.
    pub fn into_report_payload(
        self,
        report: &FileReport,
    ) -> io::Result<(Payload, Option<tempfile::TempPath>)> {
        let head = serde_json::to_vec(report).map_err(io::Error::other)?;
        // `head` is an object: drop its closing brace and append the rows array.
        let head = &head[..head.len().saturating_sub(1)];
        let mut spool = match self.file {
            None => {
                let mut bytes = head.to_vec();
                bytes.extend_from_slice(b",\"rows\":[]}");
                return Ok((Payload::from(bytes), None));
            }
            Some(file) => file.into_inner().map_err(|error| error.into_error())?,
        };
        let spooled = spool.stream_position()?;
        spool.rewind()?;
        if spooled < 4 * 1024 * 1024 {
            let mut bytes = head.to_vec();
            bytes.extend_from_slice(b",\"rows\":[");
            spool.read_to_end(&mut bytes)?;
            bytes.extend_from_slice(b"]}");
            return Ok((Payload::from(bytes), None));
        }
        let (file, path) = NamedTempFile::new()?.into_parts();
        let mut out = BufWriter::new(file);
        out.write_all(head)?;
        out.write_all(b",\"rows\":[")?;
        io::copy(&mut spool, &mut out)?;
        out.write_all(b"]}")?;
        out.flush()?;
        Ok((Payload::File(path.to_path_buf()), Some(path)))
    }
}

/// What `pending/<handle>.json` holds: enough to check the handle and explain its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// The Meta catalog.
    pub catalog_id: String,
    /// Meta's batch handle.
    pub handle: String,
    /// Landing bucket of the source file.
    pub source_bucket: String,
    /// The source file's key in `data/` when it was read.
    pub source_key: String,
    /// The run that sent it.
    pub run_id: String,
    /// Where the request body is stored.
    pub batch_key: String,
    /// Where the file's report is stored.
    pub report_key: String,
    /// Requests in the call.
    pub item_count: usize,
    /// RFC 3339 time of sending.
    pub sent_at: String,
    /// CSV line of each request, in request order, to point errors back at the source.
    pub lines: Vec<u64>,
    /// Whether a stuck alert was already sent for this handle.
    #[serde(default)]
    pub stuck_alerted: bool,
    /// RFC 3339 time the source file landed (its last modification when the run claimed it),
    /// for the landing-to-verdict metric; absent in records written before it was kept.
    #[serde(default)]
    pub landed_at: Option<String>,
}
