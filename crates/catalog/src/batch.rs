//! Grouping requests into `items_batch` calls under Meta's count and size limits, and resolving
//! duplicate ids so that the last row wins.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use thiserror::Error;

use crate::request::{ProductTypeMapping, push_delete_request, push_request};
use crate::rules::Product;

/// Meta's hard limit of requests in one `items_batch` call.
pub const META_MAX_ITEMS: usize = 5000;
/// Meta's documented limit on the `requests` parameter (30 MB, read as decimal megabytes);
/// no configured budget may exceed it.
pub const META_MAX_BODY_BYTES: usize = 30 * 1000 * 1000;
/// Requests per call unless configured: Meta recommends staying under 3000.
pub const DEFAULT_BATCH_SIZE: usize = 3000;
/// Default byte budget of one form-encoded body, well below Meta's limit: the other form
/// parameters and `appsecret_proof` add bytes, Meta may count the limit on the decoded or the
/// encoded text, and a proxy in between may count differently, so a batch never sits at the
/// edge (docs/meta-graph-api.md).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The form parameters sent before the `requests` value; counted in the byte budget.
const FORM_PREFIX: &str = "item_type=PRODUCT_ITEM&allow_upsert=true&requests=";
/// Room for parameters added at send time (`appsecret_proof` and its separator).
const FORM_SLACK: usize = 128;
/// Form-encoded length of each of `[`, `,` and `]`.
const ENCODED_PUNCTUATION: usize = 3;

/// How many requests, and how many bytes, one call may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    max_items: usize,
    max_body_bytes: usize,
}

/// A batch size outside `1..=5000`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "BATCH_SIZE must be a whole number from 1 to 5000 (Meta's limit per items_batch call; 3000 is recommended), not {0:?}"
)]
pub struct BatchSizeError(pub String);

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_items: DEFAULT_BATCH_SIZE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl BatchLimits {
    /// Limits with `max_items` requests per call and the default byte budget.
    pub fn new(max_items: usize) -> Result<Self, BatchSizeError> {
        if (1..=META_MAX_ITEMS).contains(&max_items) {
            Ok(BatchLimits {
                max_items,
                ..BatchLimits::default()
            })
        } else {
            Err(BatchSizeError(max_items.to_string()))
        }
    }

    /// Parses a `BATCH_SIZE` value.
    pub fn parse(value: &str) -> Result<Self, BatchSizeError> {
        value
            .trim()
            .parse::<usize>()
            .map_err(|_| BatchSizeError(value.to_owned()))
            .and_then(Self::new)
    }

    /// The same limits with another byte budget, capped below Meta's limit.
    pub fn with_max_body_bytes(self, max_body_bytes: usize) -> Self {
        BatchLimits {
            max_body_bytes: max_body_bytes.min(META_MAX_BODY_BYTES),
            ..self
        }
    }

    /// Requests per call.
    pub fn max_items(&self) -> usize {
        self.max_items
    }

    /// Bytes per form-encoded body.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// Identifies a row across the files merged into one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowRef {
    /// Index of the file in the stream (0 for a single file).
    pub source: u32,
    /// 1-based line on which the record starts.
    pub line: u64,
}

impl RowRef {
    /// Packs into one word for the duplicate index: 32 bits of source, 32 of line.
    fn pack(self) -> u64 {
        (u64::from(self.source) << 32) | (self.line & 0xFFFF_FFFF)
    }

    fn unpack(packed: u64) -> RowRef {
        RowRef {
            source: (packed >> 32) as u32,
            line: packed & 0xFFFF_FFFF,
        }
    }
}

/// A complete `items_batch` call, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// 1-based position in the stream.
    pub number: u32,
    /// The `requests` parameter: a JSON array of `{"method":"UPDATE","data":{...}}`.
    pub requests_json: String,
    /// The source row of each request, in order (line 0 for a delete no row asked for: a
    /// product a full snapshot no longer holds).
    pub rows: Vec<RowRef>,
    /// The id and fingerprint of each request, in order: what change detection remembers once
    /// Meta has taken the call. Empty from a batcher without change detection
    /// ([`Batcher::with_known`]), which has no use for them.
    pub items: Vec<BatchItem>,
    /// Positions (in `rows`) of the requests that are deletes, ascending; usually empty.
    pub deletes: Vec<usize>,
}

/// One request of a batch as change detection remembers it (whether it is a delete is in
/// [`Batch::deletes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The retailer id.
    pub id: String,
    /// [`fingerprint`] of the request exactly as sent.
    pub fingerprint: u64,
}

/// A stable 64-bit fingerprint of one request's JSON: the first 8 bytes of its SHA-256.
///
/// Stored between runs, so it must not change with a library version or a process's random
/// seed (which rules out `std`'s and foldhash's hashers); requests are written in the field
/// table's order, so equal products give equal text.
pub fn fingerprint(request_json: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(request_json.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// What change detection knows of the products Meta holds; [`Batcher::with_known`] consults it
/// so that a product whose request is unchanged is not sent again. `sync` keeps it between runs.
pub trait KnownProducts: Send {
    /// A rejected row named product `id`: a full snapshot still holds it.
    fn saw(&mut self, id: &str);
    /// A valid row names product `id`, so a full snapshot still holds it: whether its last
    /// request as sent had this fingerprint and needs no resend. One call a row, so that the
    /// implementation looks the product up once.
    fn unchanged(&mut self, id: &str, fingerprint: u64) -> bool;
}

impl Batch {
    /// Number of requests.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the batch holds no request.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Delete requests among the requests at `positions` (a part of the batch sent on its own).
    pub fn deletes_in(&self, positions: std::ops::Range<usize>) -> u64 {
        let first = self.deletes.partition_point(|&at| at < positions.start);
        let end = self.deletes.partition_point(|&at| at < positions.end);
        end.saturating_sub(first) as u64
    }

    /// True when the request at `position` is a delete.
    pub fn is_delete_at(&self, position: usize) -> bool {
        self.deletes.binary_search(&position).is_ok()
    }

    /// The whole call as one JSON document, the form in which catalog-sync stores what it sent:
    /// `{"item_type":"PRODUCT_ITEM","allow_upsert":true,"requests":[...]}`.
    pub fn body_json(&self) -> String {
        format!(
            "{{\"item_type\":\"PRODUCT_ITEM\",\"allow_upsert\":true,\"requests\":{}}}",
            self.requests_json
        )
    }

    /// Length of the form-encoded body this batch is sent as (without `appsecret_proof`).
    pub fn form_body_len(&self) -> usize {
        FORM_PREFIX.len() + form_encoded_len(self.requests_json.as_bytes())
    }
}

/// An earlier row replaced by a later row with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    /// The row that is not sent (or, if its batch had already gone, is overridden).
    pub earlier: RowRef,
    /// The row that wins.
    pub by: RowRef,
    /// The shared id.
    pub id: String,
    /// Whether the earlier row was already in a completed batch; the later row then
    /// follows it in a later batch and overrides it.
    pub already_batched: bool,
}

/// What happened when a product was added.
#[derive(Debug, Default)]
pub struct Pushed {
    /// The earlier row with the same id, if any.
    pub superseded: Option<Superseded>,
    /// A batch that became full and is ready to send.
    pub batch: Option<Batch>,
    /// The product's request equals the one Meta last took: it was not added.
    pub unchanged: bool,
}

/// A request could not be serialised.
///
/// Requests are written to memory, which cannot fail, so this is never returned today; it
/// stays so that callers matching on it keep compiling.
#[derive(Debug, Error)]
#[error("could not serialise the request for product {id:?}: {source}")]
pub struct SerializeError {
    id: String,
    #[source]
    source: serde_json::Error,
}

/// One request in the open batch.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    end: usize,
    encoded: usize,
    row: RowRef,
    fingerprint: u64,
    delete: bool,
    live: bool,
}

/// Builds batches from valid products, in input order, one batch in memory at a time.
///
/// Meta ignores *every* copy of an id repeated within one call, so duplicates are resolved
/// here: the later row replaces an earlier one still in the open batch; if the earlier one
/// already left in a completed batch, the later row goes in a later batch and overrides it.
/// Duplicate detection keeps a 64-bit keyed hash and the row of each distinct id (16 bytes a
/// slot, 20 to 25 bytes an id), never the row itself.
pub struct Batcher {
    limits: BatchLimits,
    mapping: ProductTypeMapping,
    hasher: foldhash::quality::RandomState,
    seen: IdIndex,
    /// The open batch as it will be sent: `[`, then the requests separated by `,`.
    open_json: String,
    open_slots: Vec<Slot>,
    open_index: HashMap<u64, usize, PassThrough>,
    open_live: usize,
    open_encoded: usize,
    scratch: String,
    next_number: u32,
    /// The open batch's ids, concatenated; each slot's `id` range points into it.
    open_ids: String,
    open_id_ends: Vec<usize>,
    known: Option<Box<dyn KnownProducts>>,
}

impl Batcher {
    /// A batcher with these limits and field mapping.
    pub fn new(limits: BatchLimits, mapping: ProductTypeMapping) -> Self {
        Batcher {
            limits,
            mapping,
            hasher: foldhash::quality::RandomState::default(),
            seen: IdIndex::default(),
            open_json: String::new(),
            open_slots: Vec::new(),
            open_index: HashMap::default(),
            open_live: 0,
            open_encoded: 0,
            scratch: String::new(),
            next_number: 1,
            open_ids: String::new(),
            open_id_ends: Vec::new(),
            known: None,
        }
    }

    /// Skips products whose request equals what `known` says Meta last took.
    pub fn with_known(mut self, known: Box<dyn KnownProducts>) -> Self {
        self.known = Some(known);
        self
    }

    /// Tells change detection that a rejected row named product `id`.
    pub fn saw(&mut self, id: &str) {
        if let Some(known) = self.known.as_mut() {
            known.saw(id);
        }
    }

    /// Continues numbering after batches sent by an earlier run of the same file.
    pub fn starting_at(mut self, next_number: u32) -> Self {
        self.next_number = next_number.max(1);
        self
    }

    /// The number the next completed batch will get.
    pub fn next_number(&self) -> u32 {
        self.next_number
    }

    /// Distinct ids seen so far.
    pub fn distinct_ids(&self) -> usize {
        self.seen.len()
    }

    /// Adds a valid product from `row`.
    pub fn push(&mut self, product: &Product<'_>, row: RowRef) -> Result<Pushed, SerializeError> {
        self.scratch.clear();
        push_request(product, self.mapping, &mut self.scratch);
        self.push_request_text(product.id, product.is_delete(), row)
    }

    /// Adds a `DELETE` request for `id`, for a product no row asked to delete (one a full
    /// snapshot no longer holds); it is never skipped as unchanged.
    pub fn push_delete(&mut self, id: &str) -> Pushed {
        self.scratch.clear();
        push_delete_request(id, &mut self.scratch);
        let row = RowRef { source: 0, line: 0 };
        let key = self.hasher.hash_one(id);
        self.seen.insert(key, row.pack());
        let fingerprint = self.fingerprint_of_scratch();
        let mut pushed = Pushed::default();
        self.append(key, id, fingerprint, true, row, &mut pushed);
        pushed
    }

    /// Adds the request in `scratch` for product `id` from `row`.
    fn push_request_text(
        &mut self,
        id: &str,
        delete: bool,
        row: RowRef,
    ) -> Result<Pushed, SerializeError> {
        let key = self.hasher.hash_one(id);
        let mut pushed = Pushed::default();
        let fingerprint = self.fingerprint_of_scratch();

        let earlier = self.seen.insert(key, row.pack());
        // A repeated id is never skipped: its earlier row may have gone out already, and the
        // last row must win.
        if earlier.is_none()
            && let Some(known) = self.known.as_mut()
            && known.unchanged(id, fingerprint)
        {
            pushed.unchanged = true;
            return Ok(pushed);
        }
        if let Some(earlier) = earlier {
            let earlier = RowRef::unpack(earlier);
            let in_open_batch = self.open_index.remove(&key);
            if let Some(slot) = in_open_batch.and_then(|index| self.open_slots.get_mut(index)) {
                slot.live = false;
                self.open_live -= 1;
                self.open_encoded -= slot.encoded;
            }
            pushed.superseded = Some(Superseded {
                earlier,
                by: row,
                id: id.to_owned(),
                already_batched: in_open_batch.is_none(),
            });
        }
        self.append(key, id, fingerprint, delete, row, &mut pushed);
        Ok(pushed)
    }

    /// The fingerprint of the request in `scratch`; only change detection needs it, so a
    /// batcher without it (`transform`, `bench`) does not pay for the hash.
    fn fingerprint_of_scratch(&self) -> u64 {
        if self.known.is_some() {
            fingerprint(&self.scratch)
        } else {
            0
        }
    }

    /// Puts the request in `scratch` in the open batch, first completing the open batch if the
    /// request would not fit.
    fn append(
        &mut self,
        key: u64,
        id: &str,
        fingerprint: u64,
        delete: bool,
        row: RowRef,
        pushed: &mut Pushed,
    ) {
        let encoded = form_encoded_len(self.scratch.as_bytes()) + ENCODED_PUNCTUATION;

        if self.open_live > 0
            && (self.open_live + 1 > self.limits.max_items
                || self.body_len_with(encoded) > self.limits.max_body_bytes)
        {
            pushed.batch = self.take_batch();
        }

        self.open_json
            .push(if self.open_slots.is_empty() { '[' } else { ',' });
        let start = self.open_json.len();
        self.open_json.push_str(&self.scratch);
        self.open_index.insert(key, self.open_slots.len());
        self.open_slots.push(Slot {
            start,
            end: self.open_json.len(),
            encoded,
            row,
            fingerprint,
            delete,
            live: true,
        });
        if self.known.is_some() {
            self.open_ids.push_str(id);
        }
        self.open_id_ends.push(self.open_ids.len());
        self.open_live += 1;
        self.open_encoded += encoded;
    }

    /// The last, partly filled batch, if it holds anything.
    pub fn finish(&mut self) -> Option<Batch> {
        self.take_batch()
    }

    /// Form-encoded body length if a request of `encoded` bytes were added to the open batch.
    fn body_len_with(&self, encoded: usize) -> usize {
        FORM_PREFIX.len() + FORM_SLACK + ENCODED_PUNCTUATION + self.open_encoded + encoded
    }

    fn take_batch(&mut self) -> Option<Batch> {
        if self.open_live == 0 {
            self.clear_open();
            return None;
        }
        let mut rows = Vec::with_capacity(self.open_live);
        let mut deletes = Vec::new();
        for slot in self.open_slots.iter().filter(|slot| slot.live) {
            if slot.delete {
                deletes.push(rows.len());
            }
            rows.push(slot.row);
        }
        let mut items = Vec::with_capacity(if self.known.is_some() { rows.len() } else { 0 });
        let mut id_start = 0;
        for (slot, &id_end) in self.open_slots.iter().zip(&self.open_id_ends) {
            if slot.live && self.known.is_some() {
                items.push(BatchItem {
                    // Ends were recorded after whole ids, so they are character boundaries.
                    id: self
                        .open_ids
                        .get(id_start..id_end)
                        .unwrap_or_default()
                        .to_owned(),
                    fingerprint: slot.fingerprint,
                });
            }
            id_start = id_end;
        }
        let mut requests_json = String::with_capacity(self.open_json.len() + 1);
        if rows.len() == self.open_slots.len() {
            // Nothing was superseded: the open text is the batch, copied in one piece.
            requests_json.push_str(&self.open_json);
        } else {
            for slot in self.open_slots.iter().filter(|slot| slot.live) {
                requests_json.push(if requests_json.is_empty() { '[' } else { ',' });
                // Slots hold whole requests, so their bounds are character boundaries.
                requests_json
                    .push_str(self.open_json.get(slot.start..slot.end).unwrap_or_default());
            }
        }
        requests_json.push(']');
        let batch = Batch {
            number: self.next_number,
            requests_json,
            rows,
            items,
            deletes,
        };
        self.next_number += 1;
        self.clear_open();
        Some(batch)
    }

    fn clear_open(&mut self) {
        self.open_json.clear();
        self.open_slots.clear();
        self.open_index.clear();
        self.open_live = 0;
        self.open_encoded = 0;
        self.open_ids.clear();
        self.open_id_ends.clear();
    }
}

/// Length of `bytes` once `application/x-www-form-urlencoded`: unreserved bytes and space
/// stay one byte, every other byte becomes `%XX`.
pub fn form_encoded_len(bytes: &[u8]) -> usize {
    // Runs over every byte of every request. Counting a block at a time into a `u8` (at most
    // 64 per block, so it cannot overflow) lets the compiler test 16 bytes per vector
    // instruction, where a byte-by-byte sum cost several instructions a byte. The short last
    // block is padded with a byte that is not reserved, so that it takes the same path.
    const BLOCK: usize = 64;
    let count = |block: &[u8; BLOCK]| {
        let reserved = block
            .iter()
            .fold(0u8, |n, &b| n + u8::from(is_form_reserved(b)));
        usize::from(reserved)
    };
    let (blocks, remainder) = bytes.as_chunks::<BLOCK>();
    let mut last = [b'a'; BLOCK];
    last[..remainder.len()].copy_from_slice(remainder);
    let reserved: usize = blocks.iter().chain([&last]).map(count).sum();
    bytes.len() + 2 * reserved
}

/// Whether form encoding turns `byte` into `%XX`.
fn is_form_reserved(byte: u8) -> bool {
    !(byte.is_ascii_alphanumeric() || matches!(byte, b'*' | b'-' | b'.' | b'_' | b' '))
}

/// Distinct ids seen so far (as keyed 64-bit hashes) and the row each was last seen on.
///
/// Split into shards so that growing the index reallocates one small table at a time (a
/// single table growing from a million slots would hold both copies at once).
struct IdIndex {
    shards: Vec<IdShard>,
    len: usize,
}

/// Number of shards; a power of two so the shard is a mask of the hash.
const ID_INDEX_SHARDS: usize = 256;

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex {
            shards: (0..ID_INDEX_SHARDS).map(|_| IdShard::default()).collect(),
            len: 0,
        }
    }
}

impl IdIndex {
    /// Records `row` for `key`, returning the row recorded before, if any.
    fn insert(&mut self, key: u64, row: u64) -> Option<u64> {
        let shard = (key >> 56) as usize % ID_INDEX_SHARDS;
        let previous = self.shards[shard].insert(key, row);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// One shard: an open-addressing table with linear probing over two parallel arrays.
///
/// Written here rather than taken from `hashbrown`/`std` because the index is most of the
/// memory a large file needs, and those tables only grow by doubling: at a million ids each
/// shard had just doubled, to 35 MB (17 bytes a slot at 44% load). Growing by a quarter at up
/// to 80% load keeps 16 bytes a slot at 64-80% load, 20-25 bytes an id, whatever the count.
#[derive(Default)]
struct IdShard {
    /// Keys with the lowest bit set, so that 0 can mark an empty slot.
    keys: Vec<u64>,
    rows: Vec<u64>,
    len: usize,
}

/// Most slots in use before a shard grows, as a fraction (numerator / denominator).
const ID_SHARD_MAX_LOAD: (usize, usize) = (4, 5);

impl IdShard {
    fn insert(&mut self, key: u64, row: u64) -> Option<u64> {
        // Setting bit 0 merges ids whose 64-bit hashes differ only there: with a million
        // ids the chance of any such pair is about 1 in 10^7, and it is a keyed hash.
        let key = key | 1;
        if (self.len + 1) * ID_SHARD_MAX_LOAD.1 > self.keys.len() * ID_SHARD_MAX_LOAD.0 {
            self.grow();
        }
        let slot = self.find(key);
        if self.keys[slot] == key {
            return Some(std::mem::replace(&mut self.rows[slot], row));
        }
        self.keys[slot] = key;
        self.rows[slot] = row;
        self.len += 1;
        None
    }

    /// The slot holding `key`, or the empty slot where it belongs. The table always has an
    /// empty slot, so the probe ends.
    fn find(&self, key: u64) -> usize {
        let capacity = self.keys.len();
        // The top 8 bits chose the shard; map the rest onto 0..capacity (multiply-shift).
        let mut slot = (((key << 8) as u128 * capacity as u128) >> 64) as usize;
        loop {
            let here = self.keys[slot];
            if here == key || here == 0 {
                return slot;
            }
            slot += 1;
            if slot == capacity {
                slot = 0;
            }
        }
    }

    fn grow(&mut self) {
        let capacity = (self.keys.len() + self.keys.len() / 4).max(16);
        let keys = std::mem::replace(&mut self.keys, vec![0; capacity]);
        let rows = std::mem::replace(&mut self.rows, vec![0; capacity]);
        for (key, row) in keys.into_iter().zip(rows) {
            if key != 0 {
                let slot = self.find(key);
                self.keys[slot] = key;
                self.rows[slot] = row;
            }
        }
    }
}

/// A hasher for keys that are already uniformly distributed 64-bit hashes.
///
/// Re-hashing a keyed 64-bit hash buys nothing; no crate in the dependency tree offers a
/// pass-through hasher, and it is a dozen lines.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

/// The state of [`PassThrough`].
#[derive(Debug, Clone, Copy, Default)]
struct PassThroughHasher(u64);

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The CSV line of each request of a batch sent to Meta, by request index and by product id,
/// so that Meta's per-item answers (which name an index, an id, or both) point back at the
/// source. Built from the `requests` array (or a stored body `{"requests": [...]}`) and the
/// lines in request order: the sender uses it on the answer to a call, the poller on a stored
/// body and its pending record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLines {
    /// The product id of each request; numbers are kept in their JSON text form.
    ids: Vec<Option<String>>,
    /// The CSV line of each request.
    lines: Vec<u64>,
}

/// A stored body, wrapped as catalog-sync stores it or a bare `requests` array.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum RequestsDocument {
    Wrapped { requests: Vec<IdOnlyRequest> },
    Bare(Vec<IdOnlyRequest>),
}

/// Only the product id of each request is read: bodies can be megabytes.
#[derive(serde::Deserialize)]
struct IdOnlyRequest {
    #[serde(default)]
    data: Option<IdOnlyData>,
}

#[derive(serde::Deserialize)]
struct IdOnlyData {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

impl RequestLines {
    /// The lines of the requests in `requests_json`; a document that is not a requests array
    /// (or a body holding one) maps by index only.
    pub fn new(requests_json: &[u8], lines: Vec<u64>) -> Self {
        let ids = match serde_json::from_slice::<RequestsDocument>(requests_json) {
            Ok(RequestsDocument::Wrapped { requests } | RequestsDocument::Bare(requests)) => {
                requests
                    .into_iter()
                    .map(|request| match request.data.and_then(|data| data.id) {
                        Some(serde_json::Value::String(text)) => Some(text),
                        Some(serde_json::Value::Number(number)) => Some(number.to_string()),
                        _ => None,
                    })
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        RequestLines { ids, lines }
    }

    /// The line of the request at 0-based `index`.
    pub fn line_of_index(&self, index: u64) -> Option<u64> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.lines.get(index).copied())
    }

    /// The product id of the request at 0-based `index`.
    pub fn id_of_index(&self, index: u64) -> Option<&str> {
        let index = usize::try_from(index).ok()?;
        self.ids.get(index)?.as_deref()
    }

    /// The line of the request carrying product `id`: the last one, as Meta keeps the last of
    /// duplicated ids in a batch.
    pub fn line_of_id(&self, id: &str) -> Option<u64> {
        self.index_of_id(id)
            .and_then(|index| self.lines.get(index).copied())
    }

    /// The 0-based index of the request carrying product `id`: the last one, as for
    /// [`RequestLines::line_of_id`].
    pub fn index_of_id(&self, id: &str) -> Option<usize> {
        self.ids
            .iter()
            .rposition(|candidate| candidate.as_deref() == Some(id))
    }

    /// The line of an item Meta answered about: by its index when given, else by its id.
    pub fn line_of(&self, index: Option<u64>, id: Option<&str>) -> Option<u64> {
        match index {
            Some(index) => self.line_of_index(index),
            None => id.and_then(|id| self.line_of_id(id)),
        }
    }

    /// True when the document named no ids (so only indexes map to lines).
    pub fn has_ids(&self) -> bool {
        !self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_index_finds_every_key_again_across_growth() {
        let mut index = IdIndex::default();
        let mut reference = std::collections::HashMap::new();
        let hasher = foldhash::quality::RandomState::default();
        for n in 0..200_000u64 {
            // Every third key repeats an earlier one.
            let id = if n % 3 == 2 { n / 3 } else { n };
            let key = hasher.hash_one(id);
            assert_eq!(index.insert(key, n), reference.insert(key | 1, n), "{n}");
        }
        assert_eq!(index.len(), reference.len());
        for shard in &index.shards {
            assert!(
                shard.len * 5 <= shard.keys.len() * 4,
                "load stays under 80%"
            );
        }
    }

    #[test]
    fn the_id_index_handles_clustered_and_extreme_keys() {
        let mut index = IdIndex::default();
        // One shard only (same top byte), consecutive and extreme low bits.
        let keys: Vec<u64> = (0..5_000u64)
            .map(|n| 0xAB00_0000_0000_0000 | n)
            .chain([0, 1, u64::MAX, u64::MAX - 1])
            .collect();
        for (n, key) in keys.iter().enumerate() {
            index.insert(*key, n as u64);
        }
        // Keys differing only in bit 0 count as one.
        let distinct: std::collections::HashSet<u64> = keys.iter().map(|k| k | 1).collect();
        assert_eq!(index.len(), distinct.len());
        for key in &keys {
            assert!(index.insert(*key, 7).is_some(), "{key:#x} is found again");
        }
    }

    #[test]
    fn form_encoded_length_matches_a_real_encoder_at_every_length() {
        // Every byte value, so that each length ends on a different mix of classes.
        let bytes: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        for start in [0, 1, 31, 64, 97] {
            for end in start..bytes.len() {
                let slice = &bytes[start..end];
                let encoded: String = url::form_urlencoded::byte_serialize(slice).collect();
                assert_eq!(form_encoded_len(slice), encoded.len(), "{start}..{end}");
            }
        }
    }

    #[test]
    fn request_lines_map_indexes_and_string_or_number_ids_to_lines() {
        let requests = br#"[{"method":"UPDATE","data":{"id":"SKU-1"}},{"method":"UPDATE","data":{"id":42}},{"method":"UPDATE","data":{"id":"SKU-1"}},{"method":"UPDATE"}]"#;
        let lines = RequestLines::new(requests, vec![2, 3, 7, 9]);
        assert_eq!(lines.line_of_index(1), Some(3));
        assert_eq!(lines.line_of_index(4), None);
        assert_eq!(
            lines.line_of_id("42"),
            Some(3),
            "a number id matches its text"
        );
        assert_eq!(
            lines.line_of_id("SKU-1"),
            Some(7),
            "the last of duplicated ids"
        );
        assert_eq!(lines.line_of_id("SKU-9"), None);
        assert_eq!(
            lines.line_of(Some(0), Some("42")),
            Some(2),
            "the index wins"
        );
        assert_eq!(lines.line_of(None, Some("42")), Some(3));
        let wrapped =
            br#"{"item_type":"PRODUCT_ITEM","allow_upsert":true,"requests":[{"data":{"id":"a"}}]}"#;
        assert_eq!(RequestLines::new(wrapped, vec![5]).line_of_id("a"), Some(5));
        let unreadable = RequestLines::new(b"not json", vec![5]);
        assert!(!unreadable.has_ids());
        assert_eq!(unreadable.line_of(Some(0), None), Some(5));
    }

    /// Moved from sync's poller, which read stored bodies with its own copy of this mapping.
    #[test]
    fn request_lines_read_wrapped_and_bare_bodies() {
        let wrapped = br#"{"item_type":"PRODUCT_ITEM","allow_upsert":true,"requests":[
            {"method":"UPDATE","data":{"id":"a","title":"x"}},
            {"method":"UPDATE","data":{"id":105}},
            {"method":"UPDATE","data":{}},
            {"method":"UPDATE","data":{"id":"a"}}]}"#;
        // Each request's line is its index, so the lines found are the request indexes.
        let indexes = RequestLines::new(wrapped, vec![0, 1, 2, 3]);
        assert_eq!(
            indexes.ids,
            [Some("a".into()), Some("105".into()), None, Some("a".into())]
        );
        assert_eq!(indexes.line_of_id("a"), Some(3));
        assert_eq!(indexes.line_of_id("105"), Some(1));
        assert_eq!(indexes.line_of_id("zz"), None);
        let bare = br#"[{"data":{"id":"b"}}]"#;
        assert_eq!(RequestLines::new(bare, vec![0]).ids, [Some("b".into())]);
        assert!(!RequestLines::new(b"not json", vec![]).has_ids());
        assert!(!RequestLines::new(b"{\"requests\": 5}", vec![]).has_ids());
    }
}
