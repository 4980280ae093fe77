//! The storage layout: buckets, prefixes and every key catalog-sync writes.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use time::OffsetDateTime;

/// Buckets and landing-zone folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Landing bucket (`LANDING_BUCKET`); the sync function also learns it from each event.
    pub landing_bucket: String,
    /// Bucket for synced payloads, reports, pending and checked handles (`SYNCED_BUCKET`).
    pub synced_bucket: String,
    /// Incoming files (`LANDING_PREFIX`).
    pub landing_prefix: String,
    /// Files whose valid rows were sent (`ARCHIVE_PREFIX`).
    pub archive_prefix: String,
    /// Files that could not be used at all (`REJECTED_PREFIX`).
    pub rejected_prefix: String,
    /// Files that could not be sent after repeated attempts (`FAILED_PREFIX`).
    pub failed_prefix: String,
    /// Full snapshots of the catalog, inside the landing folder (`SNAPSHOT_PREFIX`): products
    /// known from earlier syncs and absent from one are deleted.
    pub snapshot_prefix: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            landing_bucket: "landing".to_owned(),
            synced_bucket: "synced".to_owned(),
            landing_prefix: "data/".to_owned(),
            archive_prefix: "archive/".to_owned(),
            rejected_prefix: "rejected/".to_owned(),
            failed_prefix: "failed/".to_owned(),
            snapshot_prefix: "data/full/".to_owned(),
        }
    }
}

impl Layout {
    /// Prefixes must not nest, or archiving a file could trigger processing it again.
    pub fn check_distinct(&self) -> Result<(), String> {
        if !self
            .snapshot_prefix
            .starts_with(self.landing_prefix.as_str())
        {
            return Err(format!(
                "the snapshot folder {:?} is not inside the landing folder {:?}, so no snapshot would ever be processed; set SNAPSHOT_PREFIX to a folder under {:?}",
                self.snapshot_prefix, self.landing_prefix, self.landing_prefix
            ));
        }
        let prefixes = [
            &self.landing_prefix,
            &self.archive_prefix,
            &self.rejected_prefix,
            &self.failed_prefix,
        ];
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                    return Err(format!(
                        "folders {a:?} and {b:?} overlap; landing, archive, rejected and failed folders must be distinct"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the file at landing `key` is a full snapshot of the catalog.
    pub fn is_snapshot(&self, key: &str) -> bool {
        key.starts_with(self.snapshot_prefix.as_str())
    }

    /// The landing bucket's folders: landing, archive, rejected, failed.
    pub fn landing_prefixes(&self) -> [&str; 4] {
        [
            &self.landing_prefix,
            &self.archive_prefix,
            &self.rejected_prefix,
            &self.failed_prefix,
        ]
    }

    /// The key relative to the landing folder, if `key` is a CSV file in it.
    ///
    /// Only keys under the landing prefix ending in `.csv` (any case) are processed.
    pub fn landing_relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        let relative = key.strip_prefix(self.landing_prefix.as_str())?;
        let is_csv = relative.len() > 4
            && relative
                .get(relative.len() - 4..)
                .is_some_and(|ext| ext.eq_ignore_ascii_case(".csv"));
        is_csv.then_some(relative)
    }

    /// The landing key of a relative path.
    pub fn landing_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.landing_prefix)
    }

    /// Where a processed file is archived.
    pub fn archive_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.archive_prefix)
    }

    /// Where an unusable file is moved.
    pub fn rejected_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.rejected_prefix)
    }

    /// Where a file that could not be sent after repeated attempts is moved.
    pub fn failed_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.failed_prefix)
    }
}

/// The report stored beside a file in `rejected/` or `failed/`.
pub fn report_beside(key: &str) -> String {
    format!("{key}.report.json")
}

/// `YYYY/MM/DD` of a UTC time.
pub fn date_path(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}/{:02}/{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

/// `synced/YYYY/MM/DD/<run-id>/batch-NNNN.json`, with `-P` for the parts of a split batch.
pub fn synced_batch_key(
    at: OffsetDateTime,
    run_id: &str,
    number: u32,
    part: Option<usize>,
) -> String {
    let part = part.map_or_else(String::new, |part| format!("-{part}"));
    format!(
        "synced/{}/{run_id}/batch-{number:04}{part}.json",
        date_path(at)
    )
}

/// `reports/YYYY/MM/DD/<run-id>.json`.
pub fn report_key(at: OffsetDateTime, run_id: &str) -> String {
    format!("reports/{}/{run_id}.json", date_path(at))
}

/// Prefix of pending handle records.
pub const PENDING_PREFIX: &str = "pending/";
/// Prefix of checkpoints of files processed over several invocations.
pub const PROGRESS_PREFIX: &str = "progress/";
/// Prefix of the batches' final verdicts.
pub const CHECKED_PREFIX: &str = "checked/";
/// Every folder of the synced bucket: sent payloads, reports, pending and checked handles,
/// checkpoints.
pub const SYNCED_PREFIXES: [&str; 6] = [
    "synced/",
    "reports/",
    PENDING_PREFIX,
    CHECKED_PREFIX,
    PROGRESS_PREFIX,
    STATE_PREFIX,
];

/// Prefix of change detection's state, one folder per catalog.
pub const STATE_PREFIX: &str = "state/";

/// `state/<catalog>/products.state`: what Meta holds of the catalog, as last sent.
pub fn state_key(catalog_id: &str) -> String {
    format!(
        "{STATE_PREFIX}{}/products.state",
        utf8_percent_encode(catalog_id, KEY_UNSAFE)
    )
}

/// `state/<catalog>/verdicts/`: the poller's verdicts, folded in by the next sync.
pub fn verdicts_prefix(catalog_id: &str) -> String {
    format!(
        "{STATE_PREFIX}{}/verdicts/",
        utf8_percent_encode(catalog_id, KEY_UNSAFE)
    )
}

/// `state/<catalog>/verdicts/<handle>.json`.
pub fn verdict_key(catalog_id: &str, handle: &str) -> String {
    format!(
        "{}{}.json",
        verdicts_prefix(catalog_id),
        utf8_percent_encode(handle, KEY_UNSAFE)
    )
}

/// `state/<catalog>/release/<landing key>.json`: a person allowed the held deletes of the
/// snapshot landing at that key (`catalog-sync replay --allow-deletes`).
pub fn release_key(catalog_id: &str, landing_key: &str) -> String {
    format!(
        "{STATE_PREFIX}{}/release/{}.json",
        utf8_percent_encode(catalog_id, KEY_UNSAFE),
        utf8_percent_encode(landing_key, KEY_UNSAFE)
    )
}

/// Characters escaped when a handle becomes part of a key: Meta's handles are opaque.
const KEY_UNSAFE: &AsciiSet = &CONTROLS
    .add(b'/')
    .add(b'%')
    .add(b' ')
    .add(b'\\')
    .add(b'?')
    .add(b'#');

/// `pending/<handle>.json`.
pub fn pending_key(handle: &str) -> String {
    format!(
        "{PENDING_PREFIX}{}.json",
        utf8_percent_encode(handle, KEY_UNSAFE)
    )
}

/// `checked/YYYY/MM/DD/<handle>.json`.
pub fn checked_key(at: OffsetDateTime, handle: &str) -> String {
    format!(
        "checked/{}/{}.json",
        date_path(at),
        utf8_percent_encode(handle, KEY_UNSAFE)
    )
}

/// `progress/<run-id>.json`.
pub fn progress_key(run_id: &str) -> String {
    format!("{PROGRESS_PREFIX}{run_id}.json")
}

/// A run id: the UTC start time and 8 random hex digits, e.g. `20261122T034512Z-1a2b3c4d`.
///
/// Sortable by time, unique without coordination, and readable in an S3 console.
pub fn new_run_id(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:08x}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        rand::random::<u32>()
    )
}

/// When the run named `run_id` started: the time [`new_run_id`] put in it, or `None` for an id
/// it did not make.
pub fn run_started_at(run_id: &str) -> Option<OffsetDateTime> {
    let stamp = run_id.get(..16)?;
    let digits = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<u16>().ok();
    if stamp.as_bytes().get(8) != Some(&b'T') || !stamp.ends_with('Z') {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::from(digits(0..4)?),
        month,
        u8::try_from(digits(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(digits(9..11)?).ok()?,
        u8::try_from(digits(11..13)?).ok()?,
        u8::try_from(digits(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(clock).assume_utc())
}

/// An S3 event key that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object key {raw:?} in the S3 event is not valid percent-encoded UTF-8")]
pub struct KeyDecodeError {
    /// The key as it came in the event.
    pub raw: String,
}

/// Decodes an object key as S3 writes it in event notifications: `+` is a space, then
/// percent escapes (so `%2B` is a plus and `%2F` a slash).
pub fn decode_event_key(raw: &str) -> Result<String, KeyDecodeError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| KeyDecodeError {
            raw: raw.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn event_keys_decode_plus_and_percent_escapes() {
        assert_eq!(
            decode_event_key("data/summer+sale.csv").unwrap(),
            "data/summer sale.csv"
        );
        assert_eq!(decode_event_key("data/a%2Bb.csv").unwrap(), "data/a+b.csv");
        assert_eq!(decode_event_key("data/x%2Fy.csv").unwrap(), "data/x/y.csv");
        assert_eq!(
            decode_event_key("data/caf%C3%A9.csv").unwrap(),
            "data/café.csv"
        );
        assert!(decode_event_key("data/%FF.csv").is_err());
    }

    #[test]
    fn only_csv_files_under_the_landing_prefix_are_processed() {
        let layout = Layout::default();
        assert_eq!(layout.landing_relative("data/a.csv"), Some("a.csv"));
        assert_eq!(layout.landing_relative("data/sub/B.CSV"), Some("sub/B.CSV"));
        for key in [
            "archive/a.csv",
            "data/a.csv.tmp",
            "data/.csv",
            "data/a.txt",
            "a.csv",
            "data/",
        ] {
            assert_eq!(layout.landing_relative(key), None, "{key}");
        }
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let at = datetime!(2026-03-07 23:59:59 UTC);
        assert_eq!(
            synced_batch_key(at, "r1", 7, None),
            "synced/2026/03/07/r1/batch-0007.json"
        );
        assert_eq!(
            synced_batch_key(at, "r1", 7, Some(2)),
            "synced/2026/03/07/r1/batch-0007-2.json"
        );
        assert_eq!(report_key(at, "r1"), "reports/2026/03/07/r1.json");
        assert_eq!(pending_key("AbC/12+="), "pending/AbC%2F12+=.json");
        assert_eq!(checked_key(at, "h"), "checked/2026/03/07/h.json");
        assert_eq!(progress_key("r1"), "progress/r1.json");
        assert_eq!(
            report_beside("rejected/a.csv"),
            "rejected/a.csv.report.json"
        );
        let layout = Layout::default();
        assert_eq!(layout.archive_key("sub/a.csv"), "archive/sub/a.csv");
        // Dates are UTC even when the clock reports another offset.
        let local = datetime!(2026-03-08 01:30 +02:00);
        assert_eq!(date_path(local), "2026/03/07");
    }

    #[test]
    fn run_ids_are_sortable_and_unique() {
        let at = datetime!(2026-11-22 03:45:12 UTC);
        let a = new_run_id(at);
        assert!(a.starts_with("20261122T034512Z-"), "{a}");
        assert_eq!(a.len(), "20261122T034512Z-".len() + 8);
        assert_ne!(a, new_run_id(at));
        assert_eq!(run_started_at(&a), Some(at));
        for other in [
            "run-1",
            "",
            "2026112203451Z-1a2b3c4d",
            "20261322T034512Z-1a2b3c4d",
            "20261122X034512Z",
        ] {
            assert_eq!(run_started_at(other), None, "{other}");
        }
    }

    #[test]
    fn overlapping_prefixes_are_refused() {
        let layout = Layout {
            archive_prefix: "data/archive/".to_owned(),
            ..Layout::default()
        };
        assert!(layout.check_distinct().is_err());
        assert!(Layout::default().check_distinct().is_ok());
    }
}
