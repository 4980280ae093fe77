//! A CSV export through the reader, the row rules and the batcher, as the sync function does.
//!
//! The bytes are one export file, read through a column mapping: a fuzzed mapping spec when the
//! input starts with one line `#map <spec>` (its bytes are then not part of the file), else one
//! of a few fixed mappings chosen by the input's length (most often none). It is read twice, with
//! two settings: the defaults with small
//! batches, and tight limits with a tiny byte budget, so limits and batch boundaries are hit
//! with small inputs. The first setting also reads the file a second time as another file of the
//! same stream (every id then repeats across files), and resumes it part-way from a recorded
//! position, as a checkpointed run does; the resumed rows must be the rows read straight through.
//!
//! Invariants, besides "no panic":
//! - a mapping spec either parses or is refused with a message naming its entry;
//! - data rows come with increasing line numbers after the header; rejected rows say why;
//! - valid products keep the contract's canonical values, every field of the catalog within its
//!   kind's rule (lists within their counts, links http(s), stock digits), their price reads
//!   back as itself, a sale price shares its currency and is not above the price, a sale date
//!   range does not end before it starts; a delete carries only its id; a field the mapping
//!   fixes holds its value in every update (none when the value is empty);
//! - each request's data holds only catalog fields, each in the JSON form of its kind (a stock
//!   a number, image lists arrays of strings, videos arrays of `{"url"}`);
//! - every batch is a JSON array of `UPDATE` or `DELETE` requests that matches its row list and
//!   names exactly its `DELETE` requests in `deletes`, holds
//!   `1..=max_items` requests and no id twice (Meta would ignore every copy), and stays within
//!   the byte budget unless it is a single request;
//! - every valid row is sent exactly once unless a later row with its id replaced it in the open
//!   batch; a row whose id was seen before is reported as superseded, and a replacement of an
//!   already-sent row is sent in a later batch;
//! - batches are numbered 1, 2, 3...

use std::collections::{HashMap, HashSet};

use catalog::{
    Batch, BatchLimits, Batcher, ColumnMapping, Field, FileError, HeaderLayout, Kind, Position,
    ProductReader, ProductTypeMapping, Pushed, ReaderLimits, Row, RowRef, parse_price,
};
use serde_json::Value;

/// Bytes added to a body at send time that the batcher keeps room for (`appsecret_proof`).
const FORM_SLACK: usize = 128;

/// Mappings of the kinds retailers write, one chosen by the input's length; the empty ones make
/// the default (no mapping) the most common.
const FIXED_MAPPINGS: [&str; 6] = [
    "",
    "",
    "",
    "sale_price=SalePrice; condition:=new",
    "id=sku; title=name; brand:=Acme; availability:= In Stock ; method=action; gtin=ean",
    "additional_image_link=images; quantity_to_sell_on_facebook=stock; sale_price_effective_date=window; item_group_id=parent; price=cost; sale_price=offer; video=clips",
];

/// The column mapping an input asks for, and the export itself.
fn mapping_of(data: &[u8]) -> (ColumnMapping, &[u8]) {
    if let Some(rest) = data.strip_prefix(b"#map ") {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let spec = String::from_utf8_lossy(&rest[..end]);
        let csv = rest.get(end + 1..).unwrap_or_default();
        return match spec.parse::<ColumnMapping>() {
            Ok(mapping) => {
                check_mapping(&mapping);
                (mapping, csv)
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.starts_with("column mapping entr"),
                    "a refused mapping names its entry: {message}"
                );
                (ColumnMapping::default(), csv)
            }
        };
    }
    let spec = FIXED_MAPPINGS[data.len() % FIXED_MAPPINGS.len()];
    let mapping: ColumnMapping = spec.parse().expect("the fixed mappings are valid");
    (mapping, data)
}

/// A parsed mapping gives each field once, never a fixed id or method.
fn check_mapping(mapping: &ColumnMapping) {
    let mut given = HashSet::new();
    for (column, field) in mapping.renames() {
        assert!(!column.trim().is_empty());
        assert!(given.insert(*field), "{field} given twice");
        assert_eq!(mapping.field_of(column), Some(*field));
    }
    for (field, _) in mapping.fixed() {
        assert!(given.insert(*field), "{field} given twice");
        assert!(![Field::Id, Field::Method].contains(field), "{field} fixed");
    }
    assert_eq!(mapping.is_empty(), given.is_empty());
    let _ = mapping.to_string();
}

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let (columns, data) = mapping_of(data);
    let wide = Setup {
        limits: ReaderLimits::default(),
        batch: BatchLimits::new(3).expect("3 is a valid batch size"),
        mapping: ProductTypeMapping::Both,
        columns: columns.clone(),
    };
    let tight = Setup {
        limits: ReaderLimits {
            max_file_bytes: 2048,
            max_rows: 4,
            max_record_bytes: 256,
            max_columns: 12,
        },
        batch: BatchLimits::new(5000)
            .expect("5000 is a valid batch size")
            .with_max_body_bytes(1200),
        mapping: ProductTypeMapping::GoogleProductCategory,
        columns,
    };

    let mut stream = Stream::new(&wide);
    if let Some(first) = stream.read_file(data, 0) {
        if first.rows.len() >= 2 {
            // Resume after a row chosen by the input, as a checkpoint would.
            let at = data.len() % (first.rows.len() - 1) + 1;
            check_resume(data, &wide, &first, at);
        }
        // The same export again as a second file of the stream: every id repeats.
        stream.read_file(data, 1);
    }
    stream.finish();

    let mut stream = Stream::new(&tight);
    stream.read_file(data, 0);
    stream.finish();
}

struct Setup {
    limits: ReaderLimits,
    batch: BatchLimits,
    mapping: ProductTypeMapping,
    columns: ColumnMapping,
}

/// What one data row became, enough to compare two reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Valid { line: u64, product: String },
    Rejected { line: u64, id: Option<String> },
}

/// A file read to its end without a file-level error.
struct FileRead {
    layout: HeaderLayout,
    /// Where the reader was before each row.
    positions: Vec<Position>,
    rows: Vec<Seen>,
}

/// One stream of files into one batcher, with the bookkeeping the invariants need.
struct Stream<'s> {
    setup: &'s Setup,
    batcher: Batcher,
    next_batch: u32,
    valid: u64,
    batched: u64,
    replaced_in_open_batch: u64,
    /// Ids of every valid row so far.
    ids: HashSet<String>,
    /// The batch each sent row went out in.
    batch_of: HashMap<RowRef, u32>,
    /// The valid rows of each id, in order.
    rows_of: HashMap<String, Vec<RowRef>>,
}

impl<'s> Stream<'s> {
    fn new(setup: &'s Setup) -> Self {
        Stream {
            setup,
            batcher: Batcher::new(setup.batch, setup.mapping),
            next_batch: 1,
            valid: 0,
            batched: 0,
            replaced_in_open_batch: 0,
            ids: HashSet::new(),
            batch_of: HashMap::new(),
            rows_of: HashMap::new(),
        }
    }

    /// Reads one file into the batcher; `None` when the file as a whole was refused.
    fn read_file(&mut self, data: &[u8], source: u32) -> Option<FileRead> {
        let mut reader =
            match ProductReader::with_mapping(data, self.setup.limits, &self.setup.columns) {
                Ok(reader) => reader,
                Err(error) => {
                    describe(&error);
                    return None;
                }
            };
        let layout = reader.layout().clone();
        assert_eq!(layout.columns.len(), catalog::FIELD_COUNT);
        let mapped = layout.columns.iter().flatten().count();
        assert!(mapped >= 1, "a usable file has at least an id column");
        assert!(layout.width >= mapped && layout.width <= self.setup.limits.max_columns);
        // Renamed columns are fields, never extra columns.
        for extra in &layout.extra {
            assert!(
                self.setup.columns.field_of(extra).is_none(),
                "{extra:?} is a field yet listed as extra"
            );
        }
        let _ = layout.extra_columns_warning();
        let mut positions = Vec::new();
        let mut rows = Vec::new();
        let mut last_line = 1;
        loop {
            let before = reader.position();
            positions.push(before);
            let row = match reader.next_row() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(error) => {
                    describe(&error);
                    return None;
                }
            };
            let seen = match row {
                Row::Valid { line, product } => {
                    assert!(line > last_line, "line {line} after line {last_line}");
                    last_line = line;
                    check_product(&product, &self.setup.columns);
                    let seen = Seen::Valid {
                        line,
                        product: format!("{product:?}"),
                    };
                    let id = product.id.to_owned();
                    let row = RowRef { source, line };
                    let pushed = self
                        .batcher
                        .push(&product, row)
                        .expect("a valid product always serialises");
                    self.pushed(pushed, &id, row);
                    seen
                }
                Row::Rejected(rejected) => {
                    assert!(rejected.line > last_line, "rejected line went backwards");
                    last_line = rejected.line;
                    assert!(!rejected.problems.is_empty(), "a rejected row says why");
                    for problem in &rejected.problems {
                        assert!(!problem.to_string().is_empty());
                        assert!(!problem.kind.code().is_empty());
                    }
                    Seen::Rejected {
                        line: rejected.line,
                        id: rejected.id,
                    }
                }
            };
            rows.push(seen);
            let after = reader.position();
            // The line stays when the last record ends the file without a line break.
            assert!(after.byte > before.byte && after.line >= before.line);
            assert_eq!(after.rows, before.rows + 1);
            assert!(reader.bytes_read() <= data.len() as u64);
        }
        positions.pop();
        Some(FileRead {
            layout,
            positions,
            rows,
        })
    }

    fn pushed(&mut self, pushed: Pushed, id: &str, row: RowRef) {
        self.valid += 1;
        let seen_before = !self.ids.insert(id.to_owned());
        self.rows_of.entry(id.to_owned()).or_default().push(row);
        match &pushed.superseded {
            Some(superseded) => {
                assert!(seen_before, "superseded reported for a new id {id:?}");
                assert_eq!(superseded.id, id);
                assert_eq!(superseded.by, row);
                assert!(superseded.earlier < row);
                if superseded.already_batched {
                    assert!(self.batch_of.contains_key(&superseded.earlier));
                } else {
                    assert!(!self.batch_of.contains_key(&superseded.earlier));
                    self.replaced_in_open_batch += 1;
                }
            }
            None => assert!(!seen_before, "id {id:?} repeated without being superseded"),
        }
        if let Some(batch) = pushed.batch {
            self.batch(batch);
        }
    }

    fn batch(&mut self, batch: Batch) {
        assert_eq!(
            batch.number, self.next_batch,
            "batches are numbered in order"
        );
        self.next_batch += 1;
        assert!(!batch.is_empty(), "a batch is never empty");
        assert!(batch.len() <= self.setup.batch.max_items());
        if batch.len() > 1 {
            assert!(
                batch.form_body_len() + FORM_SLACK <= self.setup.batch.max_body_bytes(),
                "batch {} of {} requests is {} bytes, over the budget of {}",
                batch.number,
                batch.len(),
                batch.form_body_len(),
                self.setup.batch.max_body_bytes()
            );
        }
        let requests: Vec<Value> =
            serde_json::from_str(&batch.requests_json).expect("requests are a JSON array");
        assert_eq!(requests.len(), batch.len());
        let mut ids = HashSet::new();
        let mut deletes = Vec::new();
        for (position, request) in requests.iter().enumerate() {
            match request["method"].as_str() {
                Some("UPDATE") => check_request_data(&request["data"]),
                Some("DELETE") => {
                    deletes.push(position);
                    assert_eq!(
                        request["data"].as_object().map(|data| data.len()),
                        Some(1),
                        "a DELETE sends only the id"
                    );
                }
                other => panic!("unexpected method {other:?}"),
            }
            let id = request["data"]["id"]
                .as_str()
                .expect("every request has a string id");
            assert!(ids.insert(id.to_owned()), "id {id:?} twice in one batch");
        }
        assert_eq!(
            batch.deletes, deletes,
            "the batch names its DELETE requests"
        );
        assert_eq!(batch.deletes_in(0..batch.len()), deletes.len() as u64);
        if let Some(split) = batch.len().checked_div(2) {
            assert_eq!(
                batch.deletes_in(0..split) + batch.deletes_in(split..batch.len()),
                deletes.len() as u64,
                "the deletes of a split batch add up"
            );
        }
        let body: Value = serde_json::from_str(&batch.body_json()).expect("the body is JSON");
        assert_eq!(body["requests"].as_array().map(Vec::len), Some(batch.len()));
        for pair in batch.rows.windows(2) {
            assert!(pair[0] < pair[1], "rows keep their input order");
        }
        for row in &batch.rows {
            assert!(
                self.batch_of.insert(*row, batch.number).is_none(),
                "row sent twice"
            );
        }
        self.batched += batch.len() as u64;
    }

    fn finish(mut self) {
        if let Some(batch) = self.batcher.finish() {
            self.batch(batch);
        }
        assert!(
            self.batcher.finish().is_none(),
            "finish leaves nothing behind"
        );
        assert_eq!(
            self.batched,
            self.valid - self.replaced_in_open_batch,
            "every valid row is sent once unless replaced before its batch left"
        );
        for (id, rows) in &self.rows_of {
            let last = rows.last().expect("an id has a row");
            assert!(
                self.batch_of.contains_key(last),
                "the last row of id {id:?} was not sent"
            );
            let batches: Vec<u32> = rows
                .iter()
                .filter_map(|r| self.batch_of.get(r).copied())
                .collect();
            assert!(
                batches.windows(2).all(|pair| pair[0] < pair[1]),
                "rows of id {id:?} sent out of order: batches {batches:?}"
            );
        }
        assert_eq!(self.batcher.distinct_ids(), self.ids.len());
    }
}

/// Reads the file again from the position before row `at`, as a checkpointed run resumes.
fn check_resume(data: &[u8], setup: &Setup, straight: &FileRead, at: usize) {
    let position = straight.positions[at];
    let start = usize::try_from(position.byte).expect("a position within the input");
    let mut reader = ProductReader::resume_with_mapping(
        &data[start..],
        straight.layout.clone(),
        position,
        setup.limits,
        &setup.columns,
    );
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row().expect("the rest read straight through") {
        rows.push(match row {
            Row::Valid { line, product } => Seen::Valid {
                line,
                product: format!("{product:?}"),
            },
            Row::Rejected(rejected) => Seen::Rejected {
                line: rejected.line,
                id: rejected.id,
            },
        });
    }
    assert_eq!(
        rows,
        straight.rows[at..],
        "resuming at row {at} ({position:?}) reads other rows"
    );
    assert_eq!(
        reader.position().rows,
        straight.rows.len() as u64,
        "rows counted across the resume"
    );
}

fn check_product(product: &catalog::Product<'_>, columns: &ColumnMapping) {
    assert_eq!(product.id, product.id.trim(), "the id is trimmed");
    assert!(!product.id.is_empty());
    assert!(product.id.chars().count() <= 100);
    if product.is_delete() {
        assert_eq!(
            product.fields().map(|(field, _)| field).collect::<Vec<_>>(),
            [Field::Id],
            "a delete carries only its id"
        );
        return;
    }
    for field in [
        Field::Title,
        Field::Description,
        Field::Link,
        Field::ImageLink,
        Field::Availability,
        Field::Condition,
        Field::Price,
    ] {
        assert!(product.get(field).is_some(), "{field} is required");
    }
    assert!(
        [Field::Brand, Field::Gtin, Field::Mpn]
            .into_iter()
            .any(|field| product.get(field).is_some()),
        "one identifier is required"
    );
    for (field, value) in product.fields() {
        assert!(!value.is_empty(), "{field} is present only with a value");
        assert_eq!(value, value.trim(), "{field} is trimmed");
        if let Some(max) = field.max_chars() {
            assert!(value.chars().count() <= max, "{field} is within its limit");
        }
        match field.kind() {
            Kind::OneOf(allowed) => assert!(allowed.contains(&value), "{field} {value:?}"),
            Kind::Url => check_link(value),
            Kind::UrlList { max_items } | Kind::VideoList { max_items } => {
                let urls: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|url| !url.is_empty())
                    .collect();
                assert!(urls.len() <= max_items, "{field} has at most {max_items}");
                urls.into_iter().for_each(check_link);
            }
            Kind::Count => assert!(value.bytes().all(|b| b.is_ascii_digit()), "{value:?}"),
            _ => {}
        }
    }
    for (field, value) in columns.fixed() {
        let value = value.trim();
        match product.get(*field) {
            Some(held) if field.kind() == Kind::Price => {
                assert_eq!(
                    parse_price(value).map(|p| p.to_string()),
                    parse_price(held).map(|p| p.to_string())
                );
            }
            Some(held) if matches!(field.kind(), Kind::OneOf(_)) => {
                assert!(
                    held.eq_ignore_ascii_case(value),
                    "fixed {field} {value:?} held as {held:?}"
                );
            }
            Some(held) => assert_eq!(held, value, "fixed {field}"),
            None => assert!(value.is_empty(), "fixed {field} {value:?} missing"),
        }
    }
    if let Some(window) = product.get(Field::SalePriceEffectiveDate) {
        check_date_range(window);
    }
    let price = product.price().expect("an update has a price");
    if let Some(sale) = product.sale_price() {
        assert!(
            decimal_le(sale.amount(), price.amount()),
            "sale price {sale} above price {price}"
        );
    }
    let price = price.to_string();
    assert_eq!(
        parse_price(&price).map(|p| p.to_string()),
        Ok(price.clone()),
        "a normalised price reads back as itself"
    );
    if let Some(sale) = product.sale_price() {
        assert_eq!(
            sale.currency(),
            product.price().expect("price").currency(),
            "a sale price shares the price's currency"
        );
    }
}

/// Both ends of a sale window that read as ISO 8601 times with offsets: the end is not before
/// the start. (Other forms, such as dates, are left to the product's rule.)
fn check_date_range(window: &str) {
    let (start, end) = window.split_once('/').expect("a range has two ends");
    assert!(
        !start.trim().is_empty() && !end.trim().is_empty(),
        "{window:?}"
    );
    let format = time::format_description::well_known::Iso8601::DEFAULT;
    if let (Ok(start), Ok(end)) = (
        time::OffsetDateTime::parse(start.trim(), &format),
        time::OffsetDateTime::parse(end.trim(), &format),
    ) {
        assert!(end >= start, "sale window {window:?} ends before it starts");
    }
}

/// `a <= b` for two decimal amounts (digits, at most one `.`), whatever their length.
fn decimal_le(a: &str, b: &str) -> bool {
    let split = |amount: &str| -> (String, String) {
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        let whole = whole.trim_start_matches('0').to_owned();
        let fraction = fraction.trim_end_matches('0').to_owned();
        (whole, fraction)
    };
    let (a_whole, a_fraction) = split(a);
    let (b_whole, b_fraction) = split(b);
    match a_whole
        .len()
        .cmp(&b_whole.len())
        .then(a_whole.cmp(&b_whole))
    {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => {
            let width = a_fraction.len().max(b_fraction.len());
            format!("{a_fraction:0<width$}") <= format!("{b_fraction:0<width$}")
        }
    }
}

/// An `UPDATE`'s data: catalog fields only, each in the JSON form of its kind.
fn check_request_data(data: &Value) {
    let data = data.as_object().expect("an UPDATE carries a data object");
    for (name, value) in data {
        let field = Field::from_header(name).unwrap_or_else(|| panic!("{name} is no field"));
        match field.kind() {
            Kind::Count => assert!(value.is_u64(), "{name} is a number: {value}"),
            Kind::UrlList { .. } => assert!(
                value
                    .as_array()
                    .is_some_and(|urls| !urls.is_empty() && urls.iter().all(Value::is_string)),
                "{name} is an array of URLs: {value}"
            ),
            Kind::VideoList { .. } => assert!(
                value.as_array().is_some_and(|videos| !videos.is_empty()
                    && videos.iter().all(|video| video["url"].is_string())),
                "{name} is an array of {{\"url\"}}: {value}"
            ),
            Kind::Method => panic!("method is never sent"),
            _ => assert!(
                value.as_str().is_some_and(|text| !text.is_empty()),
                "{name} is a string: {value}"
            ),
        }
    }
}

/// A link is sent as written, so it must be an http(s) URL as written: no control characters
/// the URL parser would drop, and the scheme first.
fn check_link(link: &str) {
    assert!(
        !link.bytes().any(|b| b.is_ascii_control()),
        "link {link:?} holds control characters"
    );
    let lower = link.to_ascii_lowercase();
    assert!(
        lower.starts_with("http:") || lower.starts_with("https:"),
        "link {link:?} is not http(s)"
    );
}

fn describe(error: &FileError) {
    assert!(!error.to_string().is_empty());
    assert!(!error.code().is_empty());
}
