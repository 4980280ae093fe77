//! Change detection: what Meta holds of one catalog, as catalog-sync last sent it.
//!
//! One entry per product: its id, the fingerprint of its last request as sent, the batch it
//! went in (and so when), and its standing (sent and waiting for Meta's verdict, confirmed,
//! refused, or being deleted). The sync function is its only writer: it loads the state
//! before a file, skips products whose request is unchanged, records what Meta took, folds in
//! the verdicts the poller left under `state/<catalog>/verdicts/`, and saves it after the file.
//!
//! Memory is what bounds a large catalog, so entries are columns rather than structs (16 bytes
//! an entry plus the id's bytes; 1,000,000 products of 12-byte ids take 28 to 30 MB), sorted by id
//! and found by binary search instead of through a hash table. Products first sent in this
//! run are appended unsorted and merged in when the state is saved.

mod codec;
mod storage;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

pub use self::codec::{DecodeError, FORMAT_VERSION};
pub use self::storage::{LoadedState, StateStore, VerdictNote};

/// Default `RESEND_AFTER`: a product unchanged this long is sent anyway, so that an edit made
/// by hand in Commerce Manager is corrected within a week.
pub const DEFAULT_RESEND_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default `MAX_DELETE_FRACTION`: a snapshot may delete at most this share of the known
/// products before its deletes are held for a person to confirm.
pub const DEFAULT_MAX_DELETE_FRACTION: f64 = 0.10;

/// Where a product stands with Meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Meta took the call; its verdict is not known yet.
    Sent,
    /// Meta's verdict came back without an error for this product.
    Confirmed,
    /// Meta refused the product (at once or in its verdict): it is sent again next time.
    Refused,
    /// A `DELETE` went out; the product is forgotten once Meta confirms.
    Deleting,
    /// Deleted and confirmed: dropped when the state is saved.
    Forgotten,
}

impl Standing {
    const ALL: [Standing; 5] = [
        Standing::Sent,
        Standing::Confirmed,
        Standing::Refused,
        Standing::Deleting,
        Standing::Forgotten,
    ];

    fn code(self) -> u32 {
        match self {
            Standing::Sent => 0,
            Standing::Confirmed => 1,
            Standing::Refused => 2,
            Standing::Deleting => 3,
            Standing::Forgotten => 4,
        }
    }

    fn from_code(code: u32) -> Option<Standing> {
        Standing::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The word used in reports and on the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Standing::Sent => "waiting for Meta's verdict",
            Standing::Confirmed => "confirmed by Meta",
            Standing::Refused => "refused by Meta (sent again next time)",
            Standing::Deleting => "delete sent, waiting for Meta's verdict",
            Standing::Forgotten => "deleted",
        }
    }
}

/// An entry's batch index, standing and snapshot mark, packed in one `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed(u32);

const BATCH_BITS: u32 = 27;
const BATCH_MASK: u32 = (1 << BATCH_BITS) - 1;
const STANDING_SHIFT: u32 = BATCH_BITS;
const STANDING_MASK: u32 = 0b1111 << STANDING_SHIFT;
const SEEN_BIT: u32 = 1 << 31;
/// The most batches one state can name (the table is compacted on every save).
pub const MAX_BATCHES: usize = BATCH_MASK as usize;

impl Packed {
    fn new(batch: u32, standing: Standing) -> Packed {
        Packed((batch & BATCH_MASK) | (standing.code() << STANDING_SHIFT))
    }

    fn batch(self) -> u32 {
        self.0 & BATCH_MASK
    }

    fn standing(self) -> Standing {
        self.known_standing().unwrap_or(Standing::Refused)
    }

    /// The standing, or `None` for a code no version wrote (a damaged state).
    fn known_standing(self) -> Option<Standing> {
        Standing::from_code((self.0 & STANDING_MASK) >> STANDING_SHIFT)
    }

    fn seen(self) -> bool {
        self.0 & SEEN_BIT != 0
    }

    fn with_standing(self, standing: Standing) -> Packed {
        Packed((self.0 & !STANDING_MASK) | (standing.code() << STANDING_SHIFT))
    }

    fn with_seen(self, seen: bool) -> Packed {
        if seen {
            Packed(self.0 | SEEN_BIT)
        } else {
            Packed(self.0 & !SEEN_BIT)
        }
    }
}

/// One `items_batch` call (or part of one) that products were last sent in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentBatch {
    /// Where its body is stored in the synced bucket (`synced/.../batch-NNNN.json`).
    pub key: String,
    /// When it was sent, in seconds since the Unix epoch.
    pub sent_at: i64,
}

/// Which snapshot run the entries' marks belong to, and how far that run had sent when the
/// state was saved; a follow-up invocation of the same run may trust the marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMarks {
    /// The run reading the snapshot.
    pub run_id: String,
    /// Batches of the run sent when the marks were saved.
    pub batches_done: u32,
}

/// One product as the state remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductEntry {
    /// The retailer id.
    pub id: String,
    /// Fingerprint of the last request sent, as 16 hex digits.
    pub fingerprint: String,
    /// Where it stands.
    pub standing: Standing,
    /// The batch it was last sent in.
    pub batch: Option<SentBatch>,
}

/// How many products the state remembers, by standing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateSummary {
    /// Products remembered (every standing but deleted).
    pub remembered: u64,
    /// Sent, waiting for Meta's verdict.
    pub waiting_for_verdict: u64,
    /// Confirmed by Meta.
    pub confirmed: u64,
    /// Refused by Meta, to be sent again.
    pub refused: u64,
    /// Deletes sent and not yet confirmed.
    pub deleting: u64,
    /// Unchanged for longer than `RESEND_AFTER`: sent again on their next appearance.
    pub due_for_resend: u64,
}

/// What Meta said of one batch, as the poller left it for the sync function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchVerdict {
    /// The batch's body key (identifies the batch in the state).
    pub batch_key: String,
    /// Whether Meta applied the batch (`finished`); a canceled or failed batch applied nothing
    /// this state can rely on.
    pub finished: bool,
    /// Products Meta refused in it.
    pub refused_ids: Vec<String>,
    /// Whether `refused_ids` names every refused product; when Meta gave only a sample, every
    /// product of the batch is treated as refused and sent again.
    pub complete: bool,
}

/// The remembered products of one catalog.
#[derive(Debug, Default, Clone)]
pub struct ProductState {
    ids: String,
    id_ends: Vec<u32>,
    fingerprints: Vec<u64>,
    packed: Vec<Packed>,
    /// Entries `[0, sorted)` are sorted by id; later ones were added in this run.
    sorted: usize,
    batches: Vec<SentBatch>,
    batch_index: HashMap<String, u32>,
    marks: Option<SnapshotMarks>,
}

/// An id longer than this is not remembered (Meta's own limit is 100 characters).
const MAX_ID_BYTES: usize = 1024;

impl ProductState {
    /// An empty state.
    pub fn new() -> Self {
        ProductState::default()
    }

    /// Entries, including those forgotten in this run.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Bytes the entries take in memory (ids, columns and batch table), for benchmarks.
    pub fn memory_bytes(&self) -> usize {
        self.ids.capacity()
            + self.id_ends.capacity() * 4
            + self.fingerprints.capacity() * 8
            + self.packed.capacity() * 4
            + self
                .batches
                .iter()
                .map(|b| b.key.capacity() + std::mem::size_of::<SentBatch>())
                .sum::<usize>()
    }

    fn id(&self, index: usize) -> &str {
        let start = match index {
            0 => 0,
            _ => self.id_ends[index - 1] as usize,
        };
        let end = self.id_ends[index] as usize;
        // Ends are recorded after whole ids, so they are character boundaries.
        self.ids.get(start..end).unwrap_or_default()
    }

    /// The entry of `id` among the loaded (sorted) entries.
    fn find_sorted(&self, id: &str) -> Option<usize> {
        let (mut low, mut high) = (0, self.sorted);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.id(mid).cmp(id) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The entry of `id`, wherever it is (a linear search of the entries added in this run).
    fn find(&self, id: &str) -> Option<usize> {
        self.find_sorted(id).or_else(|| {
            (self.sorted..self.len())
                .rev()
                .find(|&index| self.id(index) == id)
        })
    }

    /// Appends an entry; entries must come in id order while loading.
    fn push_entry(&mut self, id: &str, fingerprint: u64, packed: Packed) {
        self.ids.push_str(id);
        self.id_ends
            .push(u32::try_from(self.ids.len()).unwrap_or(u32::MAX));
        self.fingerprints.push(fingerprint);
        self.packed.push(packed);
    }

    fn batch_number(&mut self, batch: &SentBatch) -> u32 {
        if let Some(&index) = self.batch_index.get(&batch.key) {
            return index;
        }
        let index = u32::try_from(self.batches.len()).unwrap_or(BATCH_MASK);
        self.batches.push(batch.clone());
        self.batch_index.insert(batch.key.clone(), index);
        index
    }

    fn batch_of(&self, packed: Packed) -> Option<&SentBatch> {
        self.batches.get(packed.batch() as usize)
    }

    /// Whether product `id`'s last request as sent had `fingerprint`, Meta did not refuse it,
    /// and it was sent less than `resend_after` before `now` (seconds since the epoch).
    pub fn is_unchanged(
        &self,
        id: &str,
        fingerprint: u64,
        now: i64,
        resend_after: Duration,
    ) -> bool {
        self.find_sorted(id)
            .is_some_and(|index| self.unchanged_at(index, fingerprint, now, resend_after))
    }

    /// [`ProductState::is_unchanged`] for a row of the file being read, with one lookup: with
    /// `mark`, the product is also marked as held by the snapshot being read.
    pub fn check_row(
        &mut self,
        id: &str,
        fingerprint: u64,
        now: i64,
        resend_after: Duration,
        mark: bool,
    ) -> bool {
        let Some(index) = self.find_sorted(id) else {
            return false;
        };
        if mark {
            self.packed[index] = self.packed[index].with_seen(true);
        }
        self.unchanged_at(index, fingerprint, now, resend_after)
    }

    fn unchanged_at(
        &self,
        index: usize,
        fingerprint: u64,
        now: i64,
        resend_after: Duration,
    ) -> bool {
        let packed = self.packed[index];
        let fresh = self.batch_of(packed).is_some_and(|batch| {
            let age = now.saturating_sub(batch.sent_at);
            u64::try_from(age).is_ok_and(|age| age < resend_after.as_secs())
        });
        self.fingerprints[index] == fingerprint
            && fresh
            && matches!(
                packed.standing(),
                Standing::Sent | Standing::Confirmed | Standing::Deleting
            )
    }

    /// Marks `id` as held by the snapshot being read.
    pub fn mark_seen(&mut self, id: &str) {
        if let Some(index) = self.find_sorted(id) {
            self.packed[index] = self.packed[index].with_seen(true);
        }
    }

    /// Starts the marks of a snapshot run: every entry unmarked.
    pub fn start_marks(&mut self, run_id: &str) {
        for packed in &mut self.packed {
            *packed = packed.with_seen(false);
        }
        self.marks = Some(SnapshotMarks {
            run_id: run_id.to_owned(),
            batches_done: 0,
        });
    }

    /// Whether the marks were saved by `run_id` after exactly `batches_done` batches, so a
    /// follow-up invocation can go on with them.
    pub fn marks_hold_for(&self, run_id: &str, batches_done: u32) -> bool {
        self.marks
            .as_ref()
            .is_some_and(|m| m.run_id == run_id && m.batches_done == batches_done)
    }

    /// Records how far the snapshot run had sent when the marks are saved.
    pub fn set_marks_progress(&mut self, batches_done: u32) {
        if let Some(marks) = self.marks.as_mut() {
            marks.batches_done = batches_done;
        }
    }

    /// Forgets the marks (a snapshot run ended).
    pub fn clear_marks(&mut self) {
        self.marks = None;
    }

    /// The snapshot run the marks belong to.
    pub fn marks(&self) -> Option<&SnapshotMarks> {
        self.marks.as_ref()
    }

    /// Products a full snapshot no longer holds: remembered, not marked, not already being
    /// deleted, in id order.
    pub fn absent(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.sorted).filter_map(move |index| {
            let packed = self.packed[index];
            let gone = matches!(packed.standing(), Standing::Deleting | Standing::Forgotten);
            (!packed.seen() && !gone).then(|| self.id(index))
        })
    }

    /// Products remembered as held by Meta (not deleted), the base of the delete guard.
    pub fn known(&self) -> u64 {
        self.packed
            .iter()
            .filter(|p| !matches!(p.standing(), Standing::Deleting | Standing::Forgotten))
            .count() as u64
    }

    /// Records that Meta took `fingerprint` for `id` in `batch` (or, with `refused`, refused
    /// it at once: it is remembered as refused and sent again next time).
    pub fn record_sent(
        &mut self,
        id: &str,
        fingerprint: u64,
        delete: bool,
        refused: bool,
        batch: &SentBatch,
    ) {
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return;
        }
        let number = self.batch_number(batch);
        let standing = match (refused, delete) {
            (true, _) => Standing::Refused,
            (false, true) => Standing::Deleting,
            (false, false) => Standing::Sent,
        };
        // A product new in this run is appended; if it is sent twice in the run (a repeated
        // id), the save keeps its later entry.
        match self.find_sorted(id) {
            Some(index) => {
                self.fingerprints[index] = fingerprint;
                let seen = self.packed[index].seen();
                self.packed[index] = Packed::new(number, standing).with_seen(seen);
            }
            None => self.push_entry(
                id,
                fingerprint,
                Packed::new(number, standing).with_seen(true),
            ),
        }
    }

    /// Applies the poller's verdicts: products Meta refused are sent again next time, deletes
    /// Meta confirmed are forgotten, the rest are confirmed. A verdict only touches products
    /// whose last send was that batch, so an old verdict folded twice changes nothing.
    pub fn fold_verdicts(&mut self, verdicts: &[BatchVerdict]) -> usize {
        // Per batch: whether it applied nothing reliable, and the ids Meta refused in it.
        let mut by_batch: HashMap<u32, (bool, HashSet<&str>)> = HashMap::new();
        for verdict in verdicts {
            if let Some(&index) = self.batch_index.get(&verdict.batch_key) {
                let refused = verdict.refused_ids.iter().map(String::as_str).collect();
                by_batch.insert(index, (!verdict.finished || !verdict.complete, refused));
            }
        }
        if by_batch.is_empty() {
            return 0;
        }
        let mut changed = 0;
        for index in 0..self.len() {
            let packed = self.packed[index];
            let Some((all_refused, refused_ids)) = by_batch.get(&packed.batch()) else {
                continue;
            };
            let refused = *all_refused || refused_ids.contains(self.id(index));
            let standing = match (packed.standing(), refused) {
                (Standing::Forgotten, _) => Standing::Forgotten,
                // A delete that did not apply leaves the product on Meta: the next snapshot
                // that lacks it deletes it again.
                (Standing::Deleting, true) => Standing::Refused,
                (Standing::Deleting, false) => Standing::Forgotten,
                (Standing::Refused, _) | (_, true) => Standing::Refused,
                (_, false) => Standing::Confirmed,
            };
            if standing != packed.standing() {
                self.packed[index] = packed.with_standing(standing);
                changed += 1;
            }
        }
        changed
    }

    /// How many products stand where, at `now` (seconds since the epoch).
    pub fn summary(&self, now: i64, resend_after: Duration) -> StateSummary {
        let mut summary = StateSummary::default();
        for index in 0..self.len() {
            let packed = self.packed[index];
            match packed.standing() {
                Standing::Forgotten => continue,
                Standing::Sent => summary.waiting_for_verdict += 1,
                Standing::Confirmed => summary.confirmed += 1,
                Standing::Refused => summary.refused += 1,
                Standing::Deleting => summary.deleting += 1,
            }
            summary.remembered += 1;
            let due = self.batch_of(packed).is_none_or(|batch| {
                let age = now.saturating_sub(batch.sent_at);
                u64::try_from(age).is_ok_and(|age| age >= resend_after.as_secs())
            });
            if due && matches!(packed.standing(), Standing::Sent | Standing::Confirmed) {
                summary.due_for_resend += 1;
            }
        }
        summary
    }

    /// What the state remembers of `id`.
    pub fn entry(&self, id: &str) -> Option<ProductEntry> {
        let index = self.find(id)?;
        let packed = self.packed[index];
        Some(ProductEntry {
            id: id.to_owned(),
            fingerprint: format!("{:016x}", self.fingerprints[index]),
            standing: packed.standing(),
            batch: self.batch_of(packed).cloned(),
        })
    }

    /// The order in which entries are saved: by id, the later of two entries with one id (a
    /// product sent twice in one run) kept, forgotten entries left out.
    fn save_order(&self) -> Vec<u32> {
        let mut added: Vec<u32> = (self.sorted..self.len())
            .filter_map(|index| u32::try_from(index).ok())
            .collect();
        // Stable, so among equal ids the later entry stays last.
        added.sort_by(|&a, &b| self.id(a as usize).cmp(self.id(b as usize)));
        let mut kept_added: Vec<u32> = Vec::with_capacity(added.len());
        for index in added {
            if let Some(last) = kept_added.last_mut()
                && self.id(*last as usize) == self.id(index as usize)
            {
                *last = index;
                continue;
            }
            kept_added.push(index);
        }
        let mut order = Vec::with_capacity(self.sorted + kept_added.len());
        let (mut a, mut b) = (0usize, 0usize);
        while a < self.sorted || b < kept_added.len() {
            let take_loaded = match (a < self.sorted, kept_added.get(b)) {
                (true, Some(&added)) => self.id(a) <= self.id(added as usize),
                (true, None) => true,
                (false, _) => false,
            };
            let index = if take_loaded {
                a += 1;
                a - 1
            } else {
                b += 1;
                kept_added[b - 1] as usize
            };
            if self.packed[index].standing() != Standing::Forgotten {
                order.push(u32::try_from(index).unwrap_or(u32::MAX));
            }
        }
        order
    }
}

#[cfg(test)]
mod tests;
