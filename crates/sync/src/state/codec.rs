//! The state's stored form: compact, checked, and read and written as a stream.
//!
//! ```text
//! "catalog-sync state\n" FORMAT_VERSION(u8)
//! catalog id (str)
//! marks: 0 | 1, run id (str), batches done (varint)
//! batch count (varint), then per batch: body key (str), sent at (varint, Unix seconds)
//! entry count (varint), then per entry in id order:
//!     bytes shared with the previous id (varint), the rest of the id (str),
//!     fingerprint (8 bytes, little-endian), batch index | standing | mark (varint)
//! checksum: the first 8 bytes of the SHA-256 of everything before it
//! ```
//! `str` is a varint length and UTF-8 bytes; varints are unsigned LEB128. Sorted ids share
//! most of their bytes with their neighbour, and a batch is named once, so 1,000,000 products
//! take about 16 bytes each. Any damage, a different version or another catalog's state is
//! refused whole ([`DecodeError`]); the caller starts over from an empty state.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::{Packed, ProductState, SentBatch, SnapshotMarks};

/// The first bytes of every state object.
const MAGIC: &[u8] = b"catalog-sync state\n";
/// The version this build reads and writes; another version is treated as no state.
pub const FORMAT_VERSION: u8 = 1;
/// Longest string a state may hold (ids are at most 1 KiB, keys and run ids far less).
const MAX_STRING: u64 = 64 * 1024;

/// Why a stored state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Reading failed.
    #[error("could not read it: {0}")]
    Io(#[from] io::Error),
    /// Not a state object, or one of another format version.
    #[error("{0}")]
    Version(String),
    /// It belongs to another catalog.
    #[error("it is the state of catalog {found}, not {expected}")]
    OtherCatalog {
        /// The catalog it names.
        found: String,
        /// The catalog being synced.
        expected: String,
    },
    /// It is damaged.
    #[error("it is damaged: {0}")]
    Corrupt(String),
}

fn corrupt(message: impl Into<String>) -> DecodeError {
    DecodeError::Corrupt(message.into())
}

/// Writes `state` for `catalog_id` to `out`, entries in id order.
pub(super) fn encode(state: &ProductState, catalog_id: &str, out: impl Write) -> io::Result<()> {
    let mut out = Hashing::new(out);
    out.write_all(MAGIC)?;
    out.write_all(&[FORMAT_VERSION])?;
    write_str(&mut out, catalog_id)?;
    match &state.marks {
        None => out.write_all(&[0])?,
        Some(marks) => {
            out.write_all(&[1])?;
            write_str(&mut out, &marks.run_id)?;
            write_varint(&mut out, u64::from(marks.batches_done))?;
        }
    }
    let order = state.save_order();
    // Only the batches still named by an entry are kept, renumbered in first-use order.
    let mut renumbered: Vec<Option<u32>> = vec![None; state.batches.len()];
    let mut kept: Vec<&SentBatch> = Vec::new();
    for &index in &order {
        let batch = state.packed[index as usize].batch() as usize;
        if let Some(slot @ None) = renumbered.get_mut(batch) {
            *slot = Some(u32::try_from(kept.len()).unwrap_or(u32::MAX));
            if let Some(sent) = state.batches.get(batch) {
                kept.push(sent);
            }
        }
    }
    write_varint(&mut out, kept.len() as u64)?;
    for batch in &kept {
        write_str(&mut out, &batch.key)?;
        write_varint(&mut out, u64::try_from(batch.sent_at).unwrap_or(0))?;
    }
    write_varint(&mut out, order.len() as u64)?;
    let mut previous: &str = "";
    for &index in &order {
        let index = index as usize;
        let id = state.id(index);
        let shared = shared_prefix(previous, id);
        write_varint(&mut out, shared as u64)?;
        write_str(&mut out, id.get(shared..).unwrap_or_default())?;
        out.write_all(&state.fingerprints[index].to_le_bytes())?;
        let packed = state.packed[index];
        let batch = renumbered
            .get(packed.batch() as usize)
            .copied()
            .flatten()
            .unwrap_or(0);
        let packed = Packed::new(batch, packed.standing()).with_seen(packed.seen());
        write_varint(&mut out, u64::from(packed.0))?;
        previous = id;
    }
    let (mut inner, digest) = out.finish();
    inner.write_all(&digest[..8])?;
    inner.flush()
}

/// Reads a state written by [`encode`] for `catalog_id`.
pub(super) fn decode(input: impl Read, catalog_id: &str) -> Result<ProductState, DecodeError> {
    let mut input = Hashing::new(input);
    let mut magic = [0u8; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|_| {
        DecodeError::Version("it is not a catalog-sync state (too short)".to_owned())
    })?;
    if magic != MAGIC {
        return Err(DecodeError::Version(
            "it is not a catalog-sync state".to_owned(),
        ));
    }
    let version = read_u8(&mut input)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(format!(
            "it is of format version {version}; this version of catalog-sync reads version {FORMAT_VERSION}"
        )));
    }
    let found = read_str(&mut input)?;
    if found != catalog_id {
        return Err(DecodeError::OtherCatalog {
            found,
            expected: catalog_id.to_owned(),
        });
    }
    let mut state = ProductState::new();
    state.marks = match read_u8(&mut input)? {
        0 => None,
        1 => Some(SnapshotMarks {
            run_id: read_str(&mut input)?,
            batches_done: u32::try_from(read_varint(&mut input)?)
                .map_err(|_| corrupt("a batch count is out of range"))?,
        }),
        other => return Err(corrupt(format!("unknown marks flag {other}"))),
    };
    let batches = read_varint(&mut input)?;
    if batches > super::MAX_BATCHES as u64 {
        return Err(corrupt(format!(
            "{batches} batches is more than a state holds"
        )));
    }
    for _ in 0..batches {
        let key = read_str(&mut input)?;
        let sent_at = i64::try_from(read_varint(&mut input)?)
            .map_err(|_| corrupt("a batch time is out of range"))?;
        state.batch_number(&SentBatch { key, sent_at });
    }
    let entries = read_varint(&mut input)?;
    let mut previous: Vec<u8> = Vec::new();
    let mut id: Vec<u8> = Vec::new();
    for _ in 0..entries {
        let shared = usize::try_from(read_varint(&mut input)?).unwrap_or(usize::MAX);
        if shared > previous.len() {
            return Err(corrupt("an id shares more bytes than its neighbour has"));
        }
        id.clear();
        id.extend_from_slice(&previous[..shared]);
        read_bytes_into(&mut input, &mut id)?;
        let text = std::str::from_utf8(&id).map_err(|_| corrupt("an id is not UTF-8"))?;
        if !previous.is_empty() && id <= previous {
            return Err(corrupt("ids are not in order"));
        }
        let mut fingerprint = [0u8; 8];
        input.read_exact(&mut fingerprint)?;
        let packed = u32::try_from(read_varint(&mut input)?)
            .map(Packed)
            .map_err(|_| corrupt("an entry's flags are out of range"))?;
        if u64::from(packed.batch()) >= batches {
            return Err(corrupt("an entry names a batch the state does not hold"));
        }
        if packed.known_standing().is_none() {
            return Err(corrupt("an entry has an unknown standing"));
        }
        state.push_entry(text, u64::from_le_bytes(fingerprint), packed);
        std::mem::swap(&mut previous, &mut id);
    }
    state.sorted = state.len();
    let (mut inner, digest) = input.finish();
    let mut checksum = [0u8; 8];
    inner
        .read_exact(&mut checksum)
        .map_err(|_| corrupt("it ends early (no checksum)"))?;
    if checksum != digest[..8] {
        return Err(corrupt("its checksum does not match"));
    }
    if inner.read(&mut [0u8; 1])? != 0 {
        return Err(corrupt("bytes follow its checksum"));
    }
    Ok(state)
}

fn shared_prefix(a: &str, b: &str) -> usize {
    let mut shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    // Split ids on character boundaries, so that each stored rest is UTF-8.
    while !b.is_char_boundary(shared) {
        shared -= 1;
    }
    shared
}

/// Unsigned LEB128: a dozen lines, so written here rather than taken from a crate.
fn write_varint(out: &mut impl Write, mut value: u64) -> io::Result<()> {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            return out.write_all(&[byte]);
        }
        out.write_all(&[byte | 0x80])?;
    }
}

fn read_varint(input: &mut impl Read) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = read_u8(input)?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("a number is too long"))
}

fn read_u8(input: &mut impl Read) -> Result<u8, DecodeError> {
    let mut byte = [0u8; 1];
    input
        .read_exact(&mut byte)
        .map_err(|_| corrupt("it ends early"))?;
    Ok(byte[0])
}

fn write_str(out: &mut impl Write, text: &str) -> io::Result<()> {
    write_varint(out, text.len() as u64)?;
    out.write_all(text.as_bytes())
}

fn read_bytes_into(input: &mut impl Read, into: &mut Vec<u8>) -> Result<(), DecodeError> {
    let len = read_varint(input)?;
    if len > MAX_STRING {
        return Err(corrupt(format!(
            "a {len}-byte string is longer than a state holds"
        )));
    }
    let read = input.take(len).read_to_end(into)?;
    if read as u64 != len {
        return Err(corrupt("it ends early"));
    }
    Ok(())
}

fn read_str(input: &mut impl Read) -> Result<String, DecodeError> {
    let mut bytes = Vec::new();
    read_bytes_into(input, &mut bytes)?;
    String::from_utf8(bytes).map_err(|_| corrupt("a name is not UTF-8"))
}

/// A reader or writer that hashes what passes through it, for the checksum.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (T, [u8; 32]) {
        (self.inner, self.hasher.finalize().into())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(into)?;
        self.hasher.update(&into[..read]);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = Vec::new();
            write_varint(&mut bytes, value).expect("writes to memory");
            assert_eq!(read_varint(&mut bytes.as_slice()).expect("reads"), value);
        }
        let endless = [0xffu8; 11];
        assert!(read_varint(&mut endless.as_slice()).is_err());
    }

    #[test]
    fn shared_prefixes_stop_at_character_boundaries() {
        assert_eq!(shared_prefix("abc", "abd"), 2);
        // "é" and "è" share their first byte.
        assert_eq!(shared_prefix("xé", "xè"), 1);
        assert_eq!(shared_prefix("", "a"), 0);
    }
}
