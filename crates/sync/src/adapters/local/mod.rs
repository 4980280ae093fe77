//! Off-AWS adapters: a local folder as the [`ObjectStore`] and the terminal plus a log file as
//! the [`AlertSink`], so the use cases run unchanged on a laptop.
//!
//! Bucket `B`, key `K` is the file `<root>/B/K`; with the local bucket names that is
//! `<root>/landing/data/...` and `<root>/synced/pending/...`. The store behaves like S3 as the
//! use cases see it (see [`LocalStore`] for the few deliberate differences).

use std::fmt::Write as _;
use std::fs;
use std::io::{self, SeekFrom, Write as _};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tempfile::NamedTempFile;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::AsyncSeekExt;

use crate::ports::Alert;
use crate::ports::{
    AlertError, AlertSink, ListPage, ObjectBody, ObjectInfo, ObjectStore, Payload, StoreError,
    StoreErrorKind,
};

/// The local stand-in for the landing bucket (`<root>/landing`).
pub const LANDING_BUCKET: &str = "landing";
/// The local stand-in for the synced-products bucket (`<root>/synced`).
pub const SYNCED_BUCKET: &str = "synced";
/// The alert log's file name, directly under the root (`<root>/alerts.log`).
pub const ALERTS_LOG: &str = "alerts.log";
/// Prefix of the temporary files a write goes through; listings skip them and keys may not use it.
pub const TEMP_PREFIX: &str = ".tmp-";
/// Objects per listing page, as S3's `ListObjectsV2` returns by default.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// S3's limit on key length, kept so that anything stored locally could also be stored in S3.
const MAX_KEY_BYTES: usize = 1024;
/// Times a write re-creates its folder when a concurrent delete removed it (see [`create_temp`]).
const CREATE_ATTEMPTS: usize = 4;

const HEAD: &str = "HeadObject";
const GET: &str = "GetObject";
const PUT: &str = "PutObject";
const COPY: &str = "CopyObject";
const DELETE: &str = "DeleteObject";
const LIST: &str = "ListObjectsV2";

/// An [`ObjectStore`] over a folder: bucket `B`, key `K` is the file `<root>/B/K`.
///
/// Like S3: reading or heading a missing object gives `None`; writes are atomic (a temporary
/// file in the same folder, flushed to disk, then renamed over the target); listings are
/// recursive, in byte-wise key order, paginated, with `/` separators; a ranged read reports
/// the whole object's size, and a read from the end (or past it) is an empty stream, as the
/// S3 adapter answers; copying an object onto itself or from a missing object
/// fails. Keys that could leave the root (`..`, absolute, NUL, backslash) are refused.
///
/// Differences, chosen for a folder a person also uses by hand: a missing bucket folder is an
/// empty bucket and is created by the first write (instead of `NoSuchBucket`); the content type
/// is not stored; the ETag is not an MD5 of the content (see [`LocalStore::etag`]); a key cannot
/// be both an object and a "folder" of other objects (`a` and `a/b`), as files and folders share
/// names.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    page_size: usize,
}

impl LocalStore {
    /// A store over the folder `root` (created by the first write if missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore {
            root: root.into(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// The same store with at most `page_size` objects per listing page (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The folder holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the alert log of this root is (`<root>/alerts.log`).
    pub fn alerts_log(&self) -> PathBuf {
        self.root.join(ALERTS_LOG)
    }

    /// The file that holds `key` in `bucket`, or an error if the key is not allowed.
    pub fn object_path(&self, bucket: &str, key: &str) -> Result<PathBuf, StoreError> {
        self.resolve("ResolveKey", bucket, key)
    }

    /// The ETag the store gives a file with this metadata.
    ///
    /// A quoted 64-bit FNV-1a hash of (size, modification time in nanoseconds, and on Unix
    /// inode and device) rather than a hash of the content: it costs one `stat` however large the file, so heads
    /// and listings stay cheap on million-row exports, and it is stable across reads and
    /// processes (FNV is fixed, unlike std's hasher, because checkpoints keep ETags across
    /// runs). Every write through the store renames a new file into place, so the inode (and
    /// mtime) changes with every put or copy even when the content is identical; an in-place
    /// edit by another program changes the mtime and usually the size. The blind spot is an
    /// in-place rewrite of the same size within the file system's timestamp granularity; a
    /// rewrite with identical content gets a new ETag where S3's MD5 would not, which can only
    /// cause a spurious "changed", never a missed change.
    pub fn etag(metadata: &fs::Metadata) -> String {
        let mut hash = Fnv64::new();
        hash.write(&metadata.len().to_le_bytes());
        let modified = metadata.modified().map(unix_nanos).unwrap_or(0);
        hash.write(&modified.to_le_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            hash.write(&metadata.ino().to_le_bytes());
            hash.write(&metadata.dev().to_le_bytes());
        }
        format!("\"{:016x}\"", hash.finish())
    }

    fn bucket_dir(&self, operation: &'static str, bucket: &str) -> Result<PathBuf, StoreError> {
        check_bucket(bucket).map_err(|why| StoreError {
            operation,
            location: format!("{}/{}", self.root.display(), bucket.escape_debug()),
            kind: StoreErrorKind::Other,
            message: format!("invalid bucket name: {why}"),
        })?;
        Ok(self.root.join(bucket))
    }

    fn resolve(
        &self,
        operation: &'static str,
        bucket: &str,
        key: &str,
    ) -> Result<PathBuf, StoreError> {
        let dir = self.bucket_dir(operation, bucket)?;
        check_key(key).map_err(|why| StoreError {
            operation,
            location: format!("{}/{}", dir.display(), key.escape_debug()),
            kind: StoreErrorKind::Other,
            message: format!("invalid key: {why}"),
        })?;
        Ok(dir.join(key))
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.resolve(HEAD, bucket, key)?;
        match tokio::fs::metadata(&path).await {
            Ok(metadata) if metadata.is_file() => Ok(Some(object_info(key.to_owned(), &metadata))),
            // A folder is only a common prefix of other keys, not an object (as in S3).
            Ok(_) => Ok(None),
            Err(err) if is_missing(&err) => Ok(None),
            Err(err) => Err(io_error(HEAD, &path, &err)),
        }
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        from: u64,
        if_match: Option<&str>,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, StoreError> {
        let path = self.resolve(GET, bucket, key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(err) if is_missing(&err) => return Ok(None),
            Err(err) => {
                // Some systems (Windows) refuse to open a folder rather than report it as one.
                if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
                    return Ok(None);
                }
                return Err(io_error(GET, &path, &err));
            }
        };
        // Metadata of the open handle, not of the path: a concurrent put renames a new file
        // over the path while this handle keeps reading the old one, so the ETag checked here
        // describes exactly the bytes served.
        let metadata = file
            .metadata()
            .await
            .map_err(|err| io_error(GET, &path, &err))?;
        if !metadata.is_file() {
            return Ok(None);
        }
        let info = object_info(key.to_owned(), &metadata);
        if let Some(expected) = if_match
            && !etag_matches(expected, info.etag.as_deref())
        {
            return Err(StoreError {
                operation: GET,
                location: path.display().to_string(),
                kind: StoreErrorKind::Changed,
                message: format!(
                    "the object's ETag is {}, not {expected}",
                    info.etag.as_deref().unwrap_or("unknown")
                ),
            });
        }
        // As the S3 adapter: a read from the object's end (or past it, which S3 also answers
        // with InvalidRange there) is an empty stream, and `info.size` stays the whole object's
        // size, so a run resumed after the file's last byte can finish it.
        if from >= metadata.len() && from > 0 {
            return Ok(Some((info, Box::pin(tokio::io::empty()))));
        }
        if from > 0 {
            file.seek(SeekFrom::Start(from))
                .await
                .map_err(|err| io_error(GET, &path, &err))?;
        }
        Ok(Some((info, Box::pin(file))))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        payload: Payload,
        _content_type: &str,
    ) -> Result<(), StoreError> {
        let path = self.resolve(PUT, bucket, key)?;
        let location = path.display().to_string();
        blocking(PUT, location, move || {
            write_atomically(PUT, &path, |out| match payload {
                Payload::Bytes(bytes) => out
                    .write_all(&bytes)
                    .map_err(|err| io_error(PUT, &path, &err)),
                Payload::File(source) => {
                    let cannot_read = |err: io::Error| StoreError {
                        operation: PUT,
                        location: path.display().to_string(),
                        kind: StoreErrorKind::Other,
                        message: format!("cannot read {}: {err}", source.display()),
                    };
                    let mut input = fs::File::open(&source).map_err(cannot_read)?;
                    // Streams through a small buffer (or the kernel's copy), never the whole file.
                    io::copy(&mut input, out)
                        .map(|_| ())
                        .map_err(|err| io_error(PUT, &path, &err))
                }
            })
        })
        .await
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<(), StoreError> {
        let source = self.resolve(COPY, bucket, from)?;
        let target = self.resolve(COPY, bucket, to)?;
        if from == to {
            return Err(StoreError {
                operation: COPY,
                location: source.display().to_string(),
                kind: StoreErrorKind::Other,
                message: "InvalidRequest: an object cannot be copied onto itself".to_owned(),
            });
        }
        let location = source.display().to_string();
        blocking(COPY, location, move || {
            let no_such_key = || StoreError {
                operation: COPY,
                location: source.display().to_string(),
                kind: StoreErrorKind::Other,
                message: "NoSuchKey: the source object does not exist".to_owned(),
            };
            let mut input = match fs::File::open(&source) {
                Ok(file) => file,
                Err(err) if is_missing(&err) || source.is_dir() => return Err(no_such_key()),
                Err(err) => return Err(io_error(COPY, &source, &err)),
            };
            let metadata = input
                .metadata()
                .map_err(|err| io_error(COPY, &source, &err))?;
            if !metadata.is_file() {
                return Err(no_such_key());
            }
            write_atomically(COPY, &target, |out| {
                io::copy(&mut input, out)
                    .map(|_| ())
                    .map_err(|err| io_error(COPY, &target, &err))
            })
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let bucket_dir = self.bucket_dir(DELETE, bucket)?;
        let path = self.resolve(DELETE, bucket, key)?;
        let location = path.display().to_string();
        blocking(DELETE, location, move || {
            match fs::metadata(&path) {
                // A folder is not an object, so there is nothing to delete (as in S3).
                Ok(metadata) if metadata.is_dir() => return Ok(()),
                Ok(_) => {}
                Err(err) if is_missing(&err) => return Ok(()),
                Err(err) => return Err(io_error(DELETE, &path, &err)),
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if is_missing(&err) => return Ok(()),
                Err(err) => return Err(io_error(DELETE, &path, &err)),
            }
            remove_empty_parents(&bucket_dir, &path);
            Ok(())
        })
        .await
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StoreError> {
        let bucket_dir = self.bucket_dir(LIST, bucket)?;
        let prefix = prefix.to_owned();
        let page_size = self.page_size;
        let location = format!("{}/{}", bucket_dir.display(), prefix.escape_debug());
        blocking(LIST, location, move || {
            list_page(
                &bucket_dir,
                &prefix,
                next.as_deref().unwrap_or(""),
                page_size,
            )
        })
        .await
    }

    fn location(&self, bucket: &str, key: &str) -> String {
        self.root.join(bucket).join(key).display().to_string()
    }
}

/// Alerts for local runs: printed to the terminal (stderr) and appended to a log file.
#[derive(Debug, Clone)]
pub struct ConsoleAlerts {
    log_path: PathBuf,
    print: bool,
}

impl ConsoleAlerts {
    /// Alerts appended to `log_path`, and printed to stderr when `print` is true.
    pub fn new(log_path: impl Into<PathBuf>, print: bool) -> Self {
        ConsoleAlerts {
            log_path: log_path.into(),
            print,
        }
    }

    /// Alerts appended to `<root>/alerts.log`, and printed to stderr when `print` is true.
    pub fn in_root(root: impl AsRef<Path>, print: bool) -> Self {
        ConsoleAlerts::new(root.as_ref().join(ALERTS_LOG), print)
    }

    /// The log file alerts are appended to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

#[async_trait]
impl AlertSink for ConsoleAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        if self.print {
            // Best effort: a closed terminal must not lose the alert, which the log still keeps.
            let _ = io::stderr()
                .lock()
                .write_all(terminal_block(alert).as_bytes());
        }
        let entry = log_entry(alert, OffsetDateTime::now_utc());
        let path = self.log_path.clone();
        let failed = |message: String| AlertError {
            subject: alert.subject.clone(),
            message,
        };
        tokio::task::spawn_blocking(move || append(&path, entry.as_bytes()))
            .await
            .map_err(|err| failed(format!("the log task failed: {err}")))?
            .map_err(|err| {
                failed(format!(
                    "cannot append to {}: {err}",
                    self.log_path.display()
                ))
            })
    }
}

/// Appends `entry` with a single write to a file opened in append mode, so that entries of
/// concurrent runs land whole, one after the other, instead of overwriting each other.
fn append(path: &Path, entry: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(entry)
}

/// The alert as printed to the terminal.
fn terminal_block(alert: &Alert) -> String {
    let mut block = format!(
        "\n[alert] {} {}: {}\n",
        alert.severity().as_str(),
        alert.kind.as_str(),
        printable(&alert.subject, false)
    );
    for line in printable(&alert.text, true).lines() {
        let _ = writeln!(block, "    {line}");
    }
    block
}

/// One entry of the alert log: a separator line with time, severity, kind and subject, then
/// the text.
fn log_entry(alert: &Alert, at: OffsetDateTime) -> String {
    let at = at
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string());
    let mut entry = format!(
        "===== {at} | {} | {} | {}\n",
        alert.severity().as_str(),
        alert.kind.as_str(),
        printable(&alert.subject, false)
    );
    entry.push_str(&printable(&alert.text, true));
    if !entry.ends_with('\n') {
        entry.push('\n');
    }
    entry.push('\n');
    entry
}

/// The text with control and bidirectional-override characters escaped: alert text quotes CSV
/// cells and API messages, which must not move the cursor, recolour or reorder a terminal.
fn printable(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let allowed = keep_newlines && (c == '\n' || c == '\t');
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if !allowed && (c.is_control() || bidi) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a bucket name is not a single plain folder name, if it is not.
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    if bucket.is_empty() {
        return Err("the name is empty");
    }
    if bucket.contains(['/', '\\', '\0']) {
        return Err("the name contains `/`, `\\` or NUL");
    }
    if bucket.starts_with('.') {
        return Err("the name starts with `.`");
    }
    let mut components = Path::new(bucket).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(()),
        _ => Err("the name is not a plain folder name"),
    }
}

/// Why a key cannot be stored under the root, if it cannot: it must be a relative path of
/// plain segments, so that `<root>/<bucket>/<key>` stays inside the bucket folder.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("the key is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err("the key is longer than 1024 bytes");
    }
    if key.contains('\0') {
        return Err("the key contains a NUL character");
    }
    // A backslash is a separator on Windows, where `..\..` would climb out of the root.
    if key.contains('\\') {
        return Err("the key contains a backslash (keys use `/` separators)");
    }
    if key.starts_with('/') {
        return Err("the key is an absolute path");
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err("the key has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return Err("the key has a `.` or `..` segment"),
            _ if segment.starts_with(TEMP_PREFIX) => {
                return Err("the key has a segment starting with `.tmp-`, kept for partial writes");
            }
            _ => {}
        }
    }
    // Catches what the checks above cannot name on every system, such as `C:` on Windows.
    if Path::new(key)
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        Ok(())
    } else {
        Err("the key is not a plain relative path")
    }
}

/// Whether an I/O error means "there is no such object".
fn is_missing(err: &io::Error) -> bool {
    // NotADirectory: a segment of the key is a file (`a.csv/x`), so the key cannot exist.
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn io_error(operation: &'static str, path: &Path, err: &io::Error) -> StoreError {
    // Local permission problems are reported as `Other`: the `AccessDenied` hint is about IAM.
    let message = if err.kind() == io::ErrorKind::PermissionDenied {
        format!("{err}; check the file permissions of the folder")
    } else {
        err.to_string()
    };
    StoreError {
        operation,
        location: path.display().to_string(),
        kind: StoreErrorKind::Other,
        message,
    }
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T, F>(operation: &'static str, location: String, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| {
            Err(StoreError {
                operation,
                location,
                kind: StoreErrorKind::Other,
                message: format!("the file system task failed: {err}"),
            })
        })
}

/// Writes `path` whole or not at all: `fill` writes a temporary file beside it, which is
/// flushed to disk and then renamed over `path`, so a crash leaves the old object or the new
/// one (plus, at worst, a `.tmp-` file that listings ignore), never half a file.
fn write_atomically(
    operation: &'static str,
    path: &Path,
    fill: impl FnOnce(&mut fs::File) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let Some(parent) = path.parent() else {
        return Err(io_error(
            operation,
            path,
            &io::Error::other("the object has no folder"),
        ));
    };
    // Dropping `temp` on any early return removes the temporary file.
    let mut temp = create_temp(operation, parent)?;
    fill(temp.as_file_mut())?;
    temp.as_file()
        .sync_all()
        .map_err(|err| io_error(operation, temp.path(), &err))?;
    temp.persist(path)
        .map_err(|err| io_error(operation, path, &err.error))?;
    sync_dir(parent);
    Ok(())
}

/// A new temporary file in `dir`, creating the folder (and its parents) first.
fn create_temp(operation: &'static str, dir: &Path) -> Result<NamedTempFile, StoreError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // Objects get the usual permissions (0666 less the umask), not tempfile's private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let mut attempt = 1;
    loop {
        fs::create_dir_all(dir).map_err(|err| StoreError {
            operation,
            location: dir.display().to_string(),
            kind: StoreErrorKind::Other,
            message: format!("cannot create the folder: {err}"),
        })?;
        match builder.tempfile_in(dir) {
            Ok(temp) => return Ok(temp),
            // A concurrent delete removes folders it leaves empty, possibly this one between
            // its creation and the temporary file's; create it again.
            Err(err) if err.kind() == io::ErrorKind::NotFound && attempt < CREATE_ATTEMPTS => {
                attempt += 1;
            }
            Err(err) => return Err(io_error(operation, dir, &err)),
        }
    }
}

/// Flushes a folder's entries, so a completed rename survives a power cut.
fn sync_dir(dir: &Path) {
    // Best effort: the object is already complete and in place, and some file systems refuse
    // to sync folders; failing the put for that would only cause a pointless retry.
    #[cfg(unix)]
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Removes the folders between `path` and `bucket_dir` that are now empty, as S3 has no
/// folders: a person browsing the landing folder sees no leftovers of archived files.
fn remove_empty_parents(bucket_dir: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(current) = dir {
        if current == bucket_dir || !current.starts_with(bucket_dir) {
            break;
        }
        // Fails, and stops the climb, as soon as a folder still holds something.
        if fs::remove_dir(current).is_err() {
            break;
        }
        dir = current.parent();
    }
}

fn object_info(key: String, metadata: &fs::Metadata) -> ObjectInfo {
    ObjectInfo {
        key,
        size: metadata.len(),
        etag: Some(LocalStore::etag(metadata)),
        last_modified: metadata
            .modified()
            .ok()
            .and_then(|at| OffsetDateTime::from_unix_timestamp_nanos(unix_nanos(at)).ok()),
    }
}

/// Nanoseconds since the Unix epoch (negative before it).
fn unix_nanos(at: SystemTime) -> i128 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos())
            .map(|nanos| -nanos)
            .unwrap_or(i128::MIN),
    }
}

/// Whether an `If-Match` value accepts the current ETag (quotes optional, `*` for any).
fn etag_matches(expected: &str, actual: Option<&str>) -> bool {
    let expected = expected.trim();
    if expected == "*" {
        return true;
    }
    actual.is_some_and(|actual| expected.trim_matches('"') == actual.trim_matches('"'))
}

/// 64-bit FNV-1a: tiny, and fixed forever, unlike `std`'s default hasher.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One page of keys under `prefix` after `start_after`, at most `limit` of them.
fn list_page(
    bucket_dir: &Path,
    prefix: &str,
    start_after: &str,
    limit: usize,
) -> Result<ListPage, StoreError> {
    // Start in the deepest folder the prefix names, so listing `pending/` does not walk
    // `synced/`. Any other prefix walks the whole bucket and filters, which is still correct.
    let (start_dir, start_key) = match prefix.rfind('/') {
        Some(end) if check_key(&prefix[..end]).is_ok() => {
            (bucket_dir.join(&prefix[..end]), prefix[..=end].to_owned())
        }
        _ => (bucket_dir.to_path_buf(), String::new()),
    };
    let real = match fs::canonicalize(&start_dir) {
        Ok(real) if real.is_dir() => real,
        // A missing bucket folder is an empty bucket; a prefix naming a file has no children.
        Ok(_) => return Ok(ListPage::default()),
        Err(err) if is_missing(&err) => return Ok(ListPage::default()),
        Err(err) => return Err(io_error(LIST, &start_dir, &err)),
    };
    let mut walk = Walk {
        prefix,
        start_after,
        limit,
        objects: Vec::new(),
        truncated: false,
        chain: vec![real],
    };
    walk.folder(&start_dir, &start_key)?;
    let next = if walk.truncated {
        walk.objects.last().map(|object| object.key.clone())
    } else {
        None
    };
    Ok(ListPage {
        objects: walk.objects,
        next,
    })
}

/// A depth-first walk that visits keys in S3's byte-wise order and stops after one page.
struct Walk<'a> {
    prefix: &'a str,
    start_after: &'a str,
    limit: usize,
    objects: Vec<ObjectInfo>,
    /// Whether a key beyond the page exists.
    truncated: bool,
    /// Real paths of the folders being walked, to not follow a symbolic link into a loop.
    chain: Vec<PathBuf>,
}

struct Entry {
    /// The name as it sorts among keys: folders contribute `name/...`.
    sort_key: String,
    name: String,
    is_folder: bool,
    is_link: bool,
}

impl Walk<'_> {
    /// Walks `folder`, whose keys start with `key_prefix`; returns true once the page is full.
    fn folder(&mut self, folder: &Path, key_prefix: &str) -> Result<bool, StoreError> {
        for entry in read_entries(folder)? {
            let key = format!("{key_prefix}{}", entry.sort_key);
            let path = folder.join(&entry.name);
            if entry.is_folder {
                // Every key in the folder starts with `key`, so the whole folder can be skipped
                // when that cannot match the prefix, or when all of it sorts before the start.
                let relevant = key.starts_with(self.prefix) || self.prefix.starts_with(&key);
                let passed = key.as_str() < self.start_after && !self.start_after.starts_with(&key);
                if !relevant || passed {
                    continue;
                }
                let real = if entry.is_link {
                    match fs::canonicalize(&path) {
                        Ok(real) if !self.chain.contains(&real) => real,
                        _ => continue,
                    }
                } else {
                    match self.chain.last() {
                        Some(parent) => parent.join(&entry.name),
                        None => path.clone(),
                    }
                };
                self.chain.push(real);
                let full = self.folder(&path, &key);
                self.chain.pop();
                if full? {
                    return Ok(true);
                }
            } else {
                if !key.starts_with(self.prefix) || key.as_str() <= self.start_after {
                    continue;
                }
                if self.objects.len() >= self.limit {
                    self.truncated = true;
                    return Ok(true);
                }
                match fs::metadata(&path) {
                    Ok(metadata) => self.objects.push(object_info(key, &metadata)),
                    // Deleted since the folder was read: no longer an object.
                    Err(err) if is_missing(&err) => {}
                    Err(err) => return Err(io_error(LIST, &path, &err)),
                }
            }
        }
        Ok(false)
    }
}

/// The entries of `folder` that can be objects or hold objects, in key order.
fn read_entries(folder: &Path) -> Result<Vec<Entry>, StoreError> {
    let reader = match fs::read_dir(folder) {
        Ok(reader) => reader,
        Err(err) if is_missing(&err) => return Ok(Vec::new()),
        Err(err) => return Err(io_error(LIST, folder, &err)),
    };
    let mut entries = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|err| io_error(LIST, folder, &err))?;
        // A name that is not UTF-8, or holds a backslash, cannot be named by a valid key, and
        // temporary files are writes in progress: none of them is an object.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) || name.contains('\\') {
            continue;
        }
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(err) if is_missing(&err) => continue,
            Err(err) => return Err(io_error(LIST, &entry.path(), &err)),
        };
        let (is_folder, is_link) = if file_type.is_symlink() {
            // Links are followed, so a landing folder can point at an export folder elsewhere;
            // a dangling link is no object.
            match fs::metadata(entry.path()) {
                Ok(target) if target.is_dir() => (true, true),
                Ok(target) if target.is_file() => (false, true),
                _ => continue,
            }
        } else if file_type.is_dir() {
            (true, false)
        } else if file_type.is_file() {
            (false, false)
        } else {
            continue;
        };
        let sort_key = if is_folder {
            format!("{name}/")
        } else {
            name.clone()
        };
        entries.push(Entry {
            sort_key,
            name,
            is_folder,
            is_link,
        });
    }
    // Sorting `name/` for folders puts each folder's keys exactly where S3's byte-wise order
    // puts them among its siblings (`a-b` < `a/x` < `a0`), since no name holds a `/`.
    entries.sort_unstable_by(|a, b| a.sort_key.cmp(&b.sort_key));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_leave_the_bucket_are_refused() {
        for key in [
            "",
            "../x",
            "a/../../x",
            "a/..",
            "..",
            "/etc/passwd",
            "a//b",
            "a/",
            "./a",
            "a\0b",
            "a\\..\\b",
            "a/.tmp-123",
        ] {
            assert!(check_key(key).is_err(), "{key:?} should be refused");
        }
        assert!(check_key(&"k".repeat(1025)).is_err());
        for key in [
            "data/a.csv",
            "a",
            "pending/h.json",
            "données/été.csv",
            "a..b/c",
            ".hidden",
        ] {
            assert!(check_key(key).is_ok(), "{key:?} should be accepted");
        }
    }

    #[test]
    fn bucket_names_are_single_plain_folders() {
        for bucket in ["", ".", "..", "a/b", "a\\b", ".tmp-x", "/abs", "a\0"] {
            assert!(
                check_bucket(bucket).is_err(),
                "{bucket:?} should be refused"
            );
        }
        assert!(check_bucket(LANDING_BUCKET).is_ok());
        assert!(check_bucket(SYNCED_BUCKET).is_ok());
    }

    #[test]
    fn if_match_ignores_quotes_and_accepts_a_star() {
        assert!(etag_matches("\"abc\"", Some("\"abc\"")));
        assert!(etag_matches("abc", Some("\"abc\"")));
        assert!(etag_matches("*", Some("\"abc\"")));
        assert!(!etag_matches("\"abd\"", Some("\"abc\"")));
        assert!(!etag_matches("\"abc\"", None));
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        let mut empty = Fnv64::new();
        empty.write(b"");
        assert_eq!(empty.finish(), 0xcbf2_9ce4_8422_2325);
        let mut a = Fnv64::new();
        a.write(b"a");
        assert_eq!(a.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn terminal_and_log_text_cannot_carry_escape_sequences() {
        assert_eq!(printable("a\u{1b}[2Jb", true), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\ny", true), "x\ny");
        assert_eq!(printable("x\ny", false), "x\\u{a}y");
        assert_eq!(printable("r\u{202e}l", false), "r\\u{202e}l");
    }

    #[test]
    fn times_before_the_epoch_are_negative() {
        let before = UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(unix_nanos(before), -5);
        assert_eq!(
            unix_nanos(UNIX_EPOCH + std::time::Duration::from_secs(1)),
            1_000_000_000
        );
    }
}

/// The continuation queue of a local folder: a file that needs another pass stays in the
/// landing folder with its checkpoint, and the next pass of `catalog-sync run` resumes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RescanQueue;

#[async_trait::async_trait]
impl crate::ports::ContinuationQueue for RescanQueue {
    async fn schedule(
        &self,
        continuation: &crate::ports::Continuation,
        delay: std::time::Duration,
    ) -> Result<(), crate::ports::QueueError> {
        tracing::info!(
            key = continuation.key,
            reason = continuation.reason.as_str(),
            "the file stays in the landing folder; the next pass of `catalog-sync run` after {} resumes it from its checkpoint",
            humantime::format_duration(delay)
        );
        Ok(())
    }
}
