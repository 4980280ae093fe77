//! A streaming reader that checks the header once and then each row as it is read.

use std::io::{self, Read};

use thiserror::Error;

use serde::{Deserialize, Serialize};

use crate::field::{self, FIELD_COUNT, Field, IDENTIFIER_MASK, REQUIRED_MASK};
use crate::mapping::ColumnMapping;
use crate::rules::{self, Problem, ProblemKind, Product};

/// Bounds that keep hostile or broken files from exhausting memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most data rows accepted.
    pub max_rows: u64,
    /// Largest single CSV record (row), in bytes.
    pub max_record_bytes: u64,
    /// Most columns accepted in the header.
    pub max_columns: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_file_bytes: 4 * 1024 * 1024 * 1024,
            max_rows: 10_000_000,
            // Meta's longest fields total ~12,000 characters; 1 MiB leaves room for extra columns.
            max_record_bytes: 1024 * 1024,
            max_columns: 1000,
        }
    }
}

/// Where the reader is in the file: enough to report, and to resume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line on which the next record starts.
    pub line: u64,
    /// Byte offset at which the next record starts.
    pub byte: u64,
    /// Data rows read so far.
    pub rows: u64,
}

/// A problem with the file as a whole: nothing in it can be used.
#[derive(Debug, Error)]
pub enum FileError {
    /// Zero bytes, or only blank lines.
    #[error("the file is empty; export a header line and at least one product")]
    Empty,
    /// A header and nothing else.
    #[error("the file has a header but no products; export at least one product row")]
    NoRows,
    /// Required columns are absent from the header.
    #[error(
        "line 1: missing required column(s) {}; the header has: {}. Add the missing column(s) (names are matched ignoring case and surrounding spaces)",
        .missing.join(", "),
        .found.join(", ")
    )]
    MissingColumns {
        /// Required columns not found.
        missing: Vec<&'static str>,
        /// The header as read (shortened).
        found: Vec<String>,
    },
    /// The same required column twice.
    #[error("line 1: column {name:?} appears twice (columns {first} and {second}); keep only one")]
    DuplicateColumn {
        /// The column name.
        name: &'static str,
        /// 1-based position of the first.
        first: usize,
        /// 1-based position of the second.
        second: usize,
    },
    /// Header bytes are not UTF-8.
    #[error("line 1: the header is not UTF-8; export the file as UTF-8")]
    HeaderNotUtf8,
    /// More columns than any real export has.
    #[error(
        "line 1: the header has {found} columns, more than the {max} accepted; export only the product columns"
    )]
    TooManyColumns {
        /// Columns found.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// One record is larger than the limit: usually an unclosed quote or a binary file.
    #[error(
        "line {line}: a row is larger than {max_bytes} bytes; look for an unclosed quote (\") on or after this line, or a file that is not CSV"
    )]
    RecordTooLarge {
        /// Line on which the record starts.
        line: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// More rows than the limit.
    #[error("the file has more than {max} rows; split the export into smaller files")]
    TooManyRows {
        /// The limit.
        max: u64,
    },
    /// More bytes than the limit.
    #[error("the file is larger than {max_bytes} bytes; split the export into smaller files")]
    FileTooLarge {
        /// The limit.
        max_bytes: u64,
    },
    /// The underlying reader failed.
    #[error("line {line}: could not read the file: {source}")]
    Read {
        /// Line being read when it failed.
        line: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// A stable, machine-readable name for this error.
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Empty => "empty_file",
            FileError::NoRows => "no_rows",
            FileError::MissingColumns { .. } => "missing_columns",
            FileError::DuplicateColumn { .. } => "duplicate_column",
            FileError::HeaderNotUtf8 => "header_not_utf8",
            FileError::TooManyColumns { .. } => "too_many_columns",
            FileError::RecordTooLarge { .. } => "record_too_large",
            FileError::TooManyRows { .. } => "too_many_rows",
            FileError::FileTooLarge { .. } => "file_too_large",
            FileError::Read { .. } => "read_failed",
        }
    }

    /// True when the bytes could not be read at all, as opposed to bytes that break the contract.
    pub fn is_read_failure(&self) -> bool {
        matches!(self, FileError::Read { .. })
    }
}

/// A row that cannot be sent, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// 1-based line on which the record starts.
    pub line: u64,
    /// The product id, when the row has a readable one.
    pub id: Option<String>,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

/// One data row, checked.
// A row is built and consumed one at a time, never stored in bulk; boxing the product would
// cost an allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Row<'r> {
    /// The row passed every rule.
    Valid {
        /// 1-based line on which the record starts.
        line: u64,
        /// The product, borrowing the reader's record buffer.
        product: Product<'r>,
    },
    /// The row breaks at least one rule.
    Rejected(RejectedRow),
}

/// Which limit a [`Metered`] reader hit.
#[derive(Debug, Clone, Copy)]
enum Tripped {
    File,
    Record,
}

/// Counts bytes handed to the CSV parser so record and file limits hold before memory grows.
///
/// The `csv` crate grows its record buffer without bound; metering the source is the one place
/// a limit can be enforced without forking the parser.
struct Metered<R> {
    inner: R,
    /// Bytes still to hand out before `inner`'s (see [`ProductReader::resume`]).
    lead: &'static [u8],
    consumed: u64,
    record_start: u64,
    max_file_bytes: u64,
    max_record_span: u64,
    tripped: Option<Tripped>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tripped = if self.consumed > self.max_file_bytes {
            Some(Tripped::File)
        } else if self.consumed.saturating_sub(self.record_start) > self.max_record_span {
            Some(Tripped::Record)
        } else {
            None
        };
        if let Some(limit) = tripped {
            self.tripped = Some(limit);
            return Err(io::Error::other("catalog-sync input limit reached"));
        }
        if !self.lead.is_empty() {
            let n = self.lead.len().min(buf.len());
            buf[..n].copy_from_slice(&self.lead[..n]);
            self.lead = &self.lead[n..];
            self.consumed += n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

/// What a resumed parser reads before the rest of the file: one blank record.
const RESUME_LEAD: &[u8] = b" \n";

/// Size of the parser's read buffer; also the slack allowed over the record limit.
const BUFFER_BYTES: usize = 64 * 1024;

/// Where each catalog field sits in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderLayout {
    /// Record index of each field's column, in [`Field::ALL`] order; `None` when absent.
    pub columns: Vec<Option<usize>>,
    /// Number of columns in the header.
    pub width: usize,
    /// Names of columns that are not part of the contract.
    pub extra: Vec<String>,
}

impl HeaderLayout {
    /// Maps a header record to field positions, or says what is wrong with it.
    ///
    /// The file needs a column for each required field and for at least one of brand, gtin
    /// and mpn; other columns may be absent. A file with a `method` column may hold only
    /// deletes, which need no more than `id`, so there a missing required column is named on
    /// each row that needs it rather than rejecting the file.
    pub fn from_header(header: &csv::ByteRecord, max_columns: usize) -> Result<Self, FileError> {
        Self::from_mapped_header(header, max_columns, &ColumnMapping::default())
    }

    /// [`HeaderLayout::from_header`] with a retailer's column mapping: renamed columns are
    /// read as their field, and fields given a fixed value count as present.
    pub fn from_mapped_header(
        header: &csv::ByteRecord,
        max_columns: usize,
        mapping: &ColumnMapping,
    ) -> Result<Self, FileError> {
        if header.len() > max_columns {
            return Err(FileError::TooManyColumns {
                found: header.len(),
                max: max_columns,
            });
        }
        let mut columns: Vec<Option<usize>> = vec![None; FIELD_COUNT];
        let mut extra = Vec::new();
        let mut names = Vec::with_capacity(header.len());
        for (index, raw) in header.iter().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| FileError::HeaderNotUtf8)?;
            // A BOM is stripped by the parser from the first field only; be lenient everywhere.
            let name = name.trim_start_matches('\u{feff}').trim();
            names.push(rules::excerpt(name));
            match mapping.field_of(name) {
                Some(field) => match columns[field.index()] {
                    Some(first) => {
                        return Err(FileError::DuplicateColumn {
                            name: field.name(),
                            first: first + 1,
                            second: index + 1,
                        });
                    }
                    None => columns[field.index()] = Some(index),
                },
                None if name.is_empty() => extra.push(format!("(unnamed column {})", index + 1)),
                None => extra.push(rules::excerpt(name)),
            }
        }
        let layout = HeaderLayout {
            columns,
            width: header.len(),
            extra,
        };
        let present = layout.mask() | fixed_mask(mapping);
        let mut missing = field::names(REQUIRED_MASK & !present);
        if present & IDENTIFIER_MASK == 0 {
            missing.push("brand, gtin or mpn");
        }
        if !missing.is_empty() && present & Field::Method.bit() == 0 {
            names.truncate(40);
            return Err(FileError::MissingColumns {
                missing,
                found: names,
            });
        }
        Ok(layout)
    }

    /// The one warning about ignored columns, naming each once with the nearest field name
    /// when one is close: `extra columns ignored: salePrice (did you mean sale_price?), notes`.
    pub fn extra_columns_warning(&self) -> Option<String> {
        if self.extra.is_empty() {
            return None;
        }
        let named: Vec<String> = self
            .extra
            .iter()
            .map(|name| match Field::nearest(name) {
                Some(near) => format!("{name} (did you mean {near}?)"),
                None => name.clone(),
            })
            .collect();
        Some(format!("extra columns ignored: {}", named.join(", ")))
    }

    /// The fields the file has a column for, as a mask of [`Field::bit`]s.
    pub fn mask(&self) -> u64 {
        Field::ALL
            .into_iter()
            .zip(&self.columns)
            .filter(|(_, column)| column.is_some())
            .fold(0, |mask, (field, _)| mask | field.bit())
    }

    /// Each field read from a column, with its record index, in catalog order; a fixed value
    /// of the mapping takes the place of a column.
    fn present(&self, mapping: &ColumnMapping) -> Vec<(usize, usize)> {
        let fixed = fixed_mask(mapping);
        self.columns
            .iter()
            .enumerate()
            .filter(|(field, _)| fixed & (1 << field) == 0)
            .filter_map(|(field, column)| column.map(|column| (field, column)))
            .collect()
    }
}

/// `(field index, value)` of each fixed value of a mapping.
fn fixed_values(mapping: &ColumnMapping) -> Vec<(usize, String)> {
    mapping
        .fixed()
        .iter()
        .map(|(field, value)| (field.index(), value.clone()))
        .collect()
}

/// The fields a mapping gives a fixed value.
fn fixed_mask(mapping: &ColumnMapping) -> u64 {
    mapping
        .fixed()
        .iter()
        .fold(0, |mask, (field, _)| mask | field.bit())
}

/// Reads a product CSV row by row: memory depends on the longest row, never on the file.
pub struct ProductReader<R: Read> {
    csv: csv::Reader<Metered<R>>,
    layout: HeaderLayout,
    /// `(field index, record index)` of each column of the contract, in catalog order.
    present: Vec<(usize, usize)>,
    /// The fields the file has a column or a fixed value for.
    mask: u64,
    /// `(field index, value)` of each field with a fixed value from the column mapping.
    fixed: Vec<(usize, String)>,
    limits: ReaderLimits,
    /// The last record read; `None` only while a record is being read.
    record: Option<Record>,
    /// Added to the parser's own positions when reading resumes part-way through a file.
    base: Position,
    rows: u64,
    finished: bool,
}

impl<R: Read> ProductReader<R> {
    /// Reads and checks the header with default limits.
    pub fn new(reader: R) -> Result<Self, FileError> {
        Self::with_limits(reader, ReaderLimits::default())
    }

    /// Reads and checks the header.
    pub fn with_limits(reader: R, limits: ReaderLimits) -> Result<Self, FileError> {
        Self::with_mapping(reader, limits, &ColumnMapping::default())
    }

    /// Reads and checks the header, reading columns through a retailer's column mapping.
    pub fn with_mapping(
        reader: R,
        limits: ReaderLimits,
        mapping: &ColumnMapping,
    ) -> Result<Self, FileError> {
        let mut csv = Self::parser(reader, limits, b"");
        let mut header = csv::ByteRecord::new();
        if !read_record(&mut csv, &mut header, &limits, 1)? {
            return Err(FileError::Empty);
        }
        let layout = HeaderLayout::from_mapped_header(&header, limits.max_columns, mapping)?;
        Ok(ProductReader {
            csv,
            present: layout.present(mapping),
            mask: layout.mask() | fixed_mask(mapping),
            fixed: fixed_values(mapping),
            layout,
            limits,
            record: None,
            base: Position::default(),
            rows: 0,
            finished: false,
        })
    }

    /// Continues a file part-way through: `reader` starts at `at.byte` of the original file.
    pub fn resume(
        reader: R,
        layout: HeaderLayout,
        at: Position,
        limits: ReaderLimits,
    ) -> ProductReader<R> {
        Self::resume_with_mapping(reader, layout, at, limits, &ColumnMapping::default())
    }

    /// [`ProductReader::resume`] with the column mapping the file was started with (its
    /// renames are in `layout`; its fixed values are taken from `mapping`).
    pub fn resume_with_mapping(
        reader: R,
        layout: HeaderLayout,
        at: Position,
        limits: ReaderLimits,
        mapping: &ColumnMapping,
    ) -> ProductReader<R> {
        // The parser drops a byte-order mark at the start of its input, so a row that begins
        // with one would lose it when reading resumes there, and read differently than
        // straight through (found by fuzzing). A blank record handed out first, and skipped
        // like any blank line, keeps such a row as it is; the base accounts for its bytes and
        // line, so positions and line numbers stay those of the file.
        ProductReader {
            csv: Self::parser(reader, limits, RESUME_LEAD),
            present: layout.present(mapping),
            mask: layout.mask() | fixed_mask(mapping),
            fixed: fixed_values(mapping),
            layout,
            limits,
            record: None,
            base: Position {
                line: at.line.saturating_sub(2),
                byte: at.byte.saturating_sub(RESUME_LEAD.len() as u64),
                rows: at.rows,
            },
            rows: at.rows,
            finished: false,
        }
    }

    fn parser(reader: R, limits: ReaderLimits, lead: &'static [u8]) -> csv::Reader<Metered<R>> {
        let metered = Metered {
            inner: reader,
            lead,
            consumed: 0,
            record_start: 0,
            max_file_bytes: limits.max_file_bytes,
            max_record_span: limits.max_record_bytes + BUFFER_BYTES as u64,
            tripped: None,
        };
        csv::ReaderBuilder::new()
            .has_headers(false)
            // With the default CRLF terminator the parser stops between '\r' and '\n' and
            // reports the next record one line early; ending records at '\n' alone keeps line
            // numbers exact, and the stray '\r' is trimmed with other surrounding whitespace.
            .terminator(csv::Terminator::Any(b'\n'))
            .flexible(true)
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(metered)
    }

    /// The header's layout: field positions and extra columns.
    pub fn layout(&self) -> &HeaderLayout {
        &self.layout
    }

    /// Columns that are not part of the contract and are ignored.
    pub fn extra_columns(&self) -> &[String] {
        &self.layout.extra
    }

    /// Where the next record starts (line, byte in the whole file) and rows read so far.
    pub fn position(&self) -> Position {
        let here = self.csv.position();
        Position {
            line: self.base.line + here.line(),
            byte: self.base.byte + here.byte(),
            rows: self.rows,
        }
    }

    /// Bytes read from the source so far.
    pub fn bytes_read(&self) -> u64 {
        self.base.byte + self.csv.get_ref().consumed
    }

    /// The next row, checked; `None` at the end of the file.
    ///
    /// A file with a header and no rows ends in [`FileError::NoRows`]. After an error, the file
    /// should be treated as unusable.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, FileError> {
        if self.finished {
            return Ok(None);
        }
        let start = self.position();
        self.csv.get_mut().record_start = start.byte - self.base.byte;
        // The buffer is reused from row to row, so reading allocates only for a longer record.
        let mut bytes = self
            .record
            .take()
            .map_or_else(csv::ByteRecord::new, Record::into_bytes);
        let read = read_record(&mut self.csv, &mut bytes, &self.limits, start.line);
        let record = self.record.insert(Record::from_bytes(bytes));
        if !read? {
            self.finished = true;
            return if self.rows == 0 {
                Err(FileError::NoRows)
            } else {
                Ok(None)
            };
        }
        if self.rows >= self.limits.max_rows {
            return Err(FileError::TooManyRows {
                max: self.limits.max_rows,
            });
        }
        self.rows += 1;
        let line = record
            .position()
            .map_or(start.line, |p| self.base.line + p.line());
        Ok(Some(check_record(
            record,
            &self.present,
            &self.fixed,
            self.mask,
            self.layout.width,
            line,
        )))
    }
}

/// One record, as text when all of it is UTF-8 and as bytes otherwise.
///
/// `csv` checks a whole record in one pass (a single `is_ascii` for ASCII text) and then
/// hands out its fields as `&str` without checking again; checking each required field with
/// `str::from_utf8` was a tenth of the transform once the rest was fast. A record that is not
/// all UTF-8 keeps its bytes, and its fields are checked one by one to say which is at fault.
enum Record {
    Bytes(csv::ByteRecord),
    Text(csv::StringRecord),
}

impl Record {
    fn from_bytes(bytes: csv::ByteRecord) -> Record {
        match csv::StringRecord::from_byte_record(bytes) {
            Ok(text) => Record::Text(text),
            Err(error) => Record::Bytes(error.into_byte_record()),
        }
    }

    fn into_bytes(self) -> csv::ByteRecord {
        match self {
            Record::Bytes(bytes) => bytes,
            Record::Text(text) => text.into_byte_record(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Record::Bytes(bytes) => bytes.len(),
            Record::Text(text) => text.len(),
        }
    }

    fn position(&self) -> Option<&csv::Position> {
        match self {
            Record::Bytes(bytes) => bytes.position(),
            Record::Text(text) => text.position(),
        }
    }

    /// Field `index` as text: `None` past the last field, `Err` when it is not UTF-8.
    fn field(&self, index: usize) -> Option<Result<&str, std::str::Utf8Error>> {
        match self {
            Record::Bytes(bytes) => bytes.get(index).map(std::str::from_utf8),
            Record::Text(text) => text.get(index).map(Ok),
        }
    }
}

/// Reads the next record that is not a blank line, turning parser and limit failures into
/// [`FileError`]s.
fn read_record<R: Read>(
    csv: &mut csv::Reader<Metered<R>>,
    record: &mut csv::ByteRecord,
    limits: &ReaderLimits,
    line: u64,
) -> Result<bool, FileError> {
    loop {
        match read_any_record(csv, record, limits, line)? {
            true if is_blank(record) => continue,
            more => return Ok(more),
        }
    }
}

/// A line holding nothing but whitespace, such as the `\r` of an empty CRLF line.
fn is_blank(record: &csv::ByteRecord) -> bool {
    record.len() == 1 && record.as_slice().iter().all(u8::is_ascii_whitespace)
}

fn read_any_record<R: Read>(
    csv: &mut csv::Reader<Metered<R>>,
    record: &mut csv::ByteRecord,
    limits: &ReaderLimits,
    line: u64,
) -> Result<bool, FileError> {
    match csv.read_byte_record(record) {
        Ok(more) => Ok(more),
        Err(error) => Err(match csv.get_ref().tripped {
            Some(Tripped::File) => FileError::FileTooLarge {
                max_bytes: limits.max_file_bytes,
            },
            Some(Tripped::Record) => FileError::RecordTooLarge {
                line,
                max_bytes: limits.max_record_bytes,
            },
            None => match error.into_kind() {
                csv::ErrorKind::Io(source) => FileError::Read { line, source },
                other => FileError::Read {
                    line,
                    source: io::Error::other(format!("{other:?}")),
                },
            },
        }),
    }
}

/// Applies the row rules to one record.
fn check_record<'r>(
    record: &'r Record,
    present: &[(usize, usize)],
    fixed: &'r [(usize, String)],
    mask: u64,
    width: usize,
    line: u64,
) -> Row<'r> {
    let readable_id = || {
        let column = present
            .iter()
            .find(|(field, _)| *field == Field::Id.index())
            .map(|(_, column)| *column)?;
        record
            .field(column)
            .and_then(Result::ok)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(rules::excerpt)
    };
    if record.len() != width {
        return Row::Rejected(RejectedRow {
            line,
            id: readable_id(),
            problems: vec![Problem {
                field: None,
                kind: ProblemKind::FieldCount {
                    expected: width,
                    found: record.len(),
                },
            }],
        });
    }
    let mut values = [""; FIELD_COUNT];
    let mut problems = Vec::new();
    for &(field, column) in present {
        match record.field(column).unwrap_or(Ok("")) {
            Ok(text) => values[field] = text,
            Err(_) => problems.push(Problem {
                field: Some(Field::ALL[field]),
                kind: ProblemKind::NotUtf8,
            }),
        }
    }
    if !problems.is_empty() {
        return Row::Rejected(RejectedRow {
            line,
            id: readable_id(),
            problems,
        });
    }
    for (field, value) in fixed {
        values[*field] = value;
    }
    match rules::validate(&values, mask) {
        Ok(product) => Row::Valid { line, product },
        Err(problems) => Row::Rejected(RejectedRow {
            line,
            id: readable_id(),
            problems,
        }),
    }
}
