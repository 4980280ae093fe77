//! `validate` and `transform`: run files through the catalog contract and report.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use catalog::{
    Batch, BatchLimits, Batcher, ColumnMapping, FeedError, ProductReader, ProductTypeMapping,
    ReaderLimits, RejectedRow, RowCounts, RowIssue, Sink, Superseded,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{
    BatchFile, FileFailure, FileOutcome, FileStatus, JsonReport, Report, TextReport,
};
use crate::{EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE};

/// Where completed batches go.
pub enum BatchOutput<'a> {
    /// Nowhere: `validate` builds batches only to resolve duplicates.
    Discard,
    /// Files in a folder (`transform`).
    Dir(&'a Path),
}

/// Files smaller than this finish before a progress bar would be worth drawing.
const PROGRESS_MIN_BYTES: u64 = 8 * 1024 * 1024;

/// `catalog-sync validate`.
pub fn validate(
    files: &[PathBuf],
    mapping: ProductTypeMapping,
    columns: &ColumnMapping,
    json: bool,
) -> anyhow::Result<u8> {
    let batcher = Batcher::new(BatchLimits::default(), mapping);
    run(files, batcher, columns, BatchOutput::Discard, json)
}

/// `catalog-sync transform`.
pub fn transform(
    files: &[PathBuf],
    batch_size: usize,
    mapping: ProductTypeMapping,
    columns: &ColumnMapping,
    out: &Path,
    json: bool,
) -> anyhow::Result<u8> {
    prepare_out_dir(out)?;
    let limits = BatchLimits::new(batch_size)?;
    run(
        files,
        Batcher::new(limits, mapping),
        columns,
        BatchOutput::Dir(out),
        json,
    )
}

/// Creates `out`, refusing one that already holds batch files so two runs never mix.
fn prepare_out_dir(out: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create --out folder {}", out.display()))?;
    let entries =
        fs::read_dir(out).with_context(|| format!("cannot list --out folder {}", out.display()))?;
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("batch-") && name.ends_with(".json") {
            bail!(
                "--out folder {} already holds {name} from an earlier run; choose another folder or delete its batch-*.json files",
                out.display()
            );
        }
    }
    Ok(())
}

/// Checks `files` in order, reading their columns through `columns`, streaming issues to the
/// report (which first shows the mapping) and batches to `out`.
pub fn run(
    files: &[PathBuf],
    batcher: Batcher,
    columns: &ColumnMapping,
    out: BatchOutput<'_>,
    json: bool,
) -> anyhow::Result<u8> {
    let stdout = BufWriter::new(io::stdout().lock());
    let mut report: Box<dyn Report> = if json {
        Box::new(JsonReport::new(stdout, columns)?)
    } else {
        Box::new(TextReport::new(stdout, columns)?)
    };
    let names: Vec<String> = files.iter().map(|path| display_name(path)).collect();
    let mut sink = CliSink {
        names: &names,
        report: report.as_mut(),
        superseded: vec![0; files.len()],
        out,
    };
    let mut batcher = batcher;
    let mut outcomes = Vec::with_capacity(files.len());
    for (index, path) in files.iter().enumerate() {
        let source = u32::try_from(index).context("too many files")?;
        outcomes.push(run_file(
            path,
            &names[index],
            source,
            columns,
            &mut batcher,
            &mut sink,
        )?);
    }
    if let Some(batch) = batcher.finish() {
        sink.batch(batch)?;
    }
    for (outcome, superseded) in outcomes.iter_mut().zip(&sink.superseded) {
        outcome.superseded = *superseded;
    }
    report.finish(&outcomes)?;
    Ok(exit_code(&outcomes))
}

fn exit_code(outcomes: &[FileOutcome]) -> u8 {
    if outcomes.iter().any(|o| o.status == FileStatus::Unreadable) {
        EXIT_UNUSABLE
    } else if outcomes.iter().all(|o| o.status == FileStatus::Ok) {
        EXIT_OK
    } else {
        EXIT_REJECTED
    }
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Checks one file, streaming its issues to the report.
fn run_file(
    path: &Path,
    name: &str,
    source: u32,
    columns: &ColumnMapping,
    batcher: &mut Batcher,
    sink: &mut CliSink<'_>,
) -> anyhow::Result<FileOutcome> {
    let mut outcome = FileOutcome {
        file: name.to_owned(),
        status: FileStatus::Ok,
        counts: RowCounts::default(),
        superseded: 0,
        warnings: Vec::new(),
        error: None,
    };
    let input = match open(path) {
        Ok(input) => input,
        Err(error) => {
            outcome.status = FileStatus::Unreadable;
            outcome.error = Some(FileFailure {
                code: "unreadable".to_owned(),
                message: error.to_string(),
            });
            return Ok(outcome);
        }
    };
    let mut reader = match ProductReader::with_mapping(input, ReaderLimits::default(), columns) {
        Ok(reader) => reader,
        Err(error) => {
            outcome.status = file_status(&error);
            outcome.error = Some(failure(&error));
            return Ok(outcome);
        }
    };
    if let Some(warning) = reader.layout().extra_columns_warning() {
        outcome.warnings.push(warning);
    }
    // Counts live in the reader's position, so they survive a failure part-way.
    let result = catalog::feed(&mut reader, source, batcher, sink);
    let rows = reader.position().rows;
    match result {
        Ok(counts) => {
            outcome.counts = counts;
            if counts.rejected > 0 {
                outcome.status = FileStatus::RowsRejected;
            }
        }
        Err(FeedError::File(error)) => {
            outcome.counts.rows_read = rows;
            outcome.status = file_status(&error);
            outcome.error = Some(failure(&error));
        }
        Err(FeedError::Serialize(error)) => return Err(error.into()),
        Err(FeedError::Sink(error)) => return Err(error.into()),
    }
    Ok(outcome)
}

fn file_status(error: &catalog::FileError) -> FileStatus {
    if error.is_read_failure() {
        FileStatus::Unreadable
    } else {
        FileStatus::Rejected
    }
}

fn failure(error: &catalog::FileError) -> FileFailure {
    FileFailure {
        code: error.code().to_owned(),
        message: error.to_string(),
    }
}

/// Opens a file (or standard input for `-`), with a progress bar on a terminal for big files.
fn open(path: &Path) -> io::Result<Box<dyn Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len >= PROGRESS_MIN_BYTES && io::stderr().is_terminal() {
        let bar = ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(path.display().to_string());
        return Ok(Box::new(bar.wrap_read(file)));
    }
    Ok(Box::new(io::BufReader::with_capacity(256 * 1024, file)))
}

/// Streams rejected and superseded rows to the report and batches to the out folder.
struct CliSink<'a> {
    names: &'a [String],
    report: &'a mut dyn Report,
    superseded: Vec<u64>,
    out: BatchOutput<'a>,
}

impl Sink for CliSink<'_> {
    type Error = io::Error;

    fn rejected(&mut self, source: u32, row: RejectedRow) -> io::Result<()> {
        let name = self.names.get(source as usize).map_or("?", String::as_str);
        self.report.issue(name, &RowIssue::from(&row))
    }

    fn superseded(&mut self, superseded: Superseded) -> io::Result<()> {
        let source = superseded.earlier.source as usize;
        if let Some(count) = self.superseded.get_mut(source) {
            *count += 1;
        }
        let name = self.names.get(source).map_or("?", String::as_str);
        self.report.issue(name, &RowIssue::from(&superseded))
    }

    fn batch(&mut self, batch: Batch) -> io::Result<()> {
        let out = match &self.out {
            BatchOutput::Discard => return Ok(()),
            BatchOutput::Dir(out) => out,
        };
        let path = out.join(format!("batch-{:04}.json", batch.number));
        fs::write(&path, batch.body_json()).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot write {}: {error}", path.display()),
            )
        })?;
        self.report.batch(BatchFile {
            path: path.display().to_string(),
            items: batch.len(),
            body_bytes: batch.form_body_len(),
        })
    }
}
