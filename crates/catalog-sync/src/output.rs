//! How `validate` and `transform` report: readable text or one streamed JSON document.

use std::io::{self, Write};

use catalog::{ColumnMapping, RowCounts, RowIssue};
use serde::Serialize;

/// What became of one input file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    /// The path as given.
    pub file: String,
    /// `ok`, `rows_rejected`, `rejected` or `unreadable`.
    pub status: FileStatus,
    /// Row counts.
    #[serde(flatten)]
    pub counts: RowCounts,
    /// Valid rows replaced by a later row with the same id.
    pub superseded: u64,
    /// Warnings, such as ignored extra columns.
    pub warnings: Vec<String>,
    /// Why the file was rejected or could not be read.
    pub error: Option<FileFailure>,
}

/// A file-level failure, for people and programs.
#[derive(Debug, Clone, Serialize)]
pub struct FileFailure {
    /// Stable machine-readable name.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The state of a file after checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Every row valid.
    Ok,
    /// Some rows rejected.
    RowsRejected,
    /// The file as a whole is unusable.
    Rejected,
    /// The file could not be read.
    Unreadable,
}

/// A batch file written by `transform`.
#[derive(Debug, Clone, Serialize)]
pub struct BatchFile {
    /// Path of the file.
    pub path: String,
    /// Requests in the batch.
    pub items: usize,
    /// Size of the form-encoded body that would be sent.
    pub body_bytes: usize,
}

/// Receives results as they happen.
pub trait Report {
    /// A row that is not sent.
    fn issue(&mut self, file: &str, issue: &RowIssue) -> io::Result<()>;
    /// A batch file was written.
    fn batch(&mut self, batch: BatchFile) -> io::Result<()>;
    /// Every file is done.
    fn finish(&mut self, files: &[FileOutcome]) -> io::Result<()>;
}

/// The column mapping in effect, one line per entry (none for an empty mapping):
/// `column mapping: column "SalePrice" is read as sale_price`,
/// `column mapping: condition is "new" in every row`.
pub fn mapping_lines(mapping: &ColumnMapping) -> Vec<String> {
    let renames = mapping
        .renames()
        .iter()
        .map(|(column, field)| format!("column mapping: column {column:?} is read as {field}"));
    let fixed = mapping
        .fixed()
        .iter()
        .map(|(field, value)| format!("column mapping: {field} is {value:?} in every row"));
    renames.chain(fixed).collect()
}

/// Lines a person reads: `file:line: id X: reason`, then a summary per file.
pub struct TextReport<W: Write> {
    out: W,
    batches: Vec<BatchFile>,
}

impl<W: Write> TextReport<W> {
    /// Writes to `out`, starting with the column mapping in effect.
    pub fn new(mut out: W, mapping: &ColumnMapping) -> io::Result<Self> {
        for line in mapping_lines(mapping) {
            writeln!(out, "{line}")?;
        }
        Ok(TextReport {
            out,
            batches: Vec::new(),
        })
    }
}

impl<W: Write> Report for TextReport<W> {
    fn issue(&mut self, file: &str, issue: &RowIssue) -> io::Result<()> {
        let id = issue
            .id
            .as_deref()
            .map_or_else(String::new, |id| format!(" id {id}:"));
        let verdict = match issue.outcome {
            catalog::RowOutcome::Rejected => "rejected",
            catalog::RowOutcome::Superseded => "superseded",
        };
        let reasons: Vec<&str> = issue.problems.iter().map(|p| p.message.as_str()).collect();
        writeln!(
            self.out,
            "{file}:{}:{id} {verdict}: {}",
            issue.line,
            reasons.join("; ")
        )
    }

    fn batch(&mut self, batch: BatchFile) -> io::Result<()> {
        self.batches.push(batch);
        Ok(())
    }

    fn finish(&mut self, files: &[FileOutcome]) -> io::Result<()> {
        let mut totals = RowCounts::default();
        let mut superseded = 0;
        for outcome in files {
            totals.add(outcome.counts);
            superseded += outcome.superseded;
            match (&outcome.status, &outcome.error) {
                (FileStatus::Unreadable, Some(error)) => {
                    writeln!(self.out, "{}: cannot read: {}", outcome.file, error.message)?
                }
                (FileStatus::Rejected, Some(error)) => writeln!(
                    self.out,
                    "{}: file rejected: {}{}",
                    outcome.file,
                    error.message,
                    if outcome.counts.rows_read > 0 {
                        format!(" (after {} rows)", outcome.counts.rows_read)
                    } else {
                        String::new()
                    }
                )?,
                _ => writeln!(
                    self.out,
                    "{}: {}",
                    outcome.file,
                    counts_line(&outcome.counts, outcome.superseded, outcome.warnings.len())
                )?,
            }
            for warning in &outcome.warnings {
                writeln!(self.out, "{}: warning: {warning}", outcome.file)?;
            }
        }
        for batch in &self.batches {
            writeln!(
                self.out,
                "wrote {} ({} requests, {} bytes form-encoded)",
                batch.path, batch.items, batch.body_bytes
            )?;
        }
        if files.len() > 1 {
            let rejected_files = files
                .iter()
                .filter(|f| f.status == FileStatus::Rejected)
                .count();
            let unreadable = files
                .iter()
                .filter(|f| f.status == FileStatus::Unreadable)
                .count();
            writeln!(
                self.out,
                "{} files: {}, {rejected_files} file(s) rejected, {unreadable} unreadable",
                files.len(),
                counts_line(&totals, superseded, 0)
            )?;
        }
        self.out.flush()
    }
}

fn counts_line(counts: &RowCounts, superseded: u64, warnings: usize) -> String {
    let mut line = format!(
        "{} rows read, {} valid, {} rejected, {} superseded",
        counts.rows_read, counts.valid, counts.rejected, superseded
    );
    if counts.deletes > 0 {
        // Deletes are valid rows too; said on their own so a removal is never a surprise.
        line.push_str(&format!(", {} of the valid to delete", counts.deletes));
    }
    if warnings > 0 {
        line.push_str(&format!(", {warnings} warning(s)"));
    }
    line
}

/// One JSON document, streamed: `{"rows":[...],"batches":[...],"files":[...],"totals":{...}}`.
///
/// Rows are written as they are found so memory does not grow with the number of rejected
/// rows; the small per-file and per-batch summaries follow at the end.
pub struct JsonReport<W: Write> {
    out: W,
    rows_written: u64,
    batches: Vec<BatchFile>,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    file: &'a str,
    #[serde(flatten)]
    issue: &'a RowIssue,
}

#[derive(Serialize)]
struct Totals {
    #[serde(flatten)]
    counts: RowCounts,
    superseded: u64,
    files: usize,
    files_rejected: usize,
    files_unreadable: usize,
    ok: bool,
}

/// The column mapping as `--json` shows it.
#[derive(Serialize)]
struct JsonMapping<'a> {
    renames: Vec<JsonRename<'a>>,
    fixed: Vec<JsonFixed<'a>>,
}

#[derive(Serialize)]
struct JsonRename<'a> {
    column: &'a str,
    field: &'static str,
}

#[derive(Serialize)]
struct JsonFixed<'a> {
    field: &'static str,
    value: &'a str,
}

impl<W: Write> JsonReport<W> {
    /// Writes to `out`; a column mapping in effect comes first, as `"column_mapping"`.
    pub fn new(mut out: W, mapping: &ColumnMapping) -> io::Result<Self> {
        out.write_all(b"{")?;
        if !mapping.is_empty() {
            let shown = JsonMapping {
                renames: mapping
                    .renames()
                    .iter()
                    .map(|(column, field)| JsonRename {
                        column,
                        field: field.name(),
                    })
                    .collect(),
                fixed: mapping
                    .fixed()
                    .iter()
                    .map(|(field, value)| JsonFixed {
                        field: field.name(),
                        value,
                    })
                    .collect(),
            };
            out.write_all(b"\"column_mapping\":")?;
            serde_json::to_writer(&mut out, &shown).map_err(io::Error::other)?;
            out.write_all(b",")?;
        }
        out.write_all(b"\"rows\":[")?;
        Ok(JsonReport {
            out,
            rows_written: 0,
            batches: Vec::new(),
        })
    }
}

impl<W: Write> Report for JsonReport<W> {
    fn issue(&mut self, file: &str, issue: &RowIssue) -> io::Result<()> {
        if self.rows_written > 0 {
            self.out.write_all(b",")?;
        }
        self.rows_written += 1;
        serde_json::to_writer(&mut self.out, &JsonRow { file, issue }).map_err(io::Error::other)
    }

    fn batch(&mut self, batch: BatchFile) -> io::Result<()> {
        self.batches.push(batch);
        Ok(())
    }

    fn finish(&mut self, files: &[FileOutcome]) -> io::Result<()> {
        let mut counts = RowCounts::default();
        for outcome in files {
            counts.add(outcome.counts);
        }
        let count = |status| files.iter().filter(|f| f.status == status).count();
        let totals = Totals {
            counts,
            superseded: files.iter().map(|f| f.superseded).sum(),
            files: files.len(),
            files_rejected: count(FileStatus::Rejected),
            files_unreadable: count(FileStatus::Unreadable),
            ok: files.iter().all(|f| f.status == FileStatus::Ok),
        };
        self.out.write_all(b"],\"batches\":")?;
        serde_json::to_writer(&mut self.out, &self.batches).map_err(io::Error::other)?;
        self.out.write_all(b",\"files\":")?;
        serde_json::to_writer(&mut self.out, files).map_err(io::Error::other)?;
        self.out.write_all(b",\"totals\":")?;
        serde_json::to_writer(&mut self.out, &totals).map_err(io::Error::other)?;
        self.out.write_all(b"}\n")?;
        self.out.flush()
    }
}
