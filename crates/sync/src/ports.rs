//! Every port the use cases are written against, so that S3, SNS, SQS, Secrets Manager and
//! Meta can be swapped for a local folder, the console and the emulator, or for fakes in unit
//! tests: [`ObjectStore`], [`CatalogApi`], [`TokenProvider`], [`AlertSink`], [`Clock`] and
//! [`ContinuationQueue`], bundled for a use case as [`Services`].

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use graph::{
    AccessToken, BatchStatus, CallCounts, CatalogInfo, GraphError, PartialSend, SentChunk,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::io::AsyncRead;
use tokio::time::Instant;

/// A streamed object body.
pub type ObjectBody = Pin<Box<dyn AsyncRead + Send>>;

/// What a store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag (changes when the object is replaced).
    pub etag: Option<String>,
    /// When it was last written.
    pub last_modified: Option<OffsetDateTime>,
}

/// A body to store.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A local file, streamed (used for reports that may be large).
    File(PathBuf),
}

impl From<String> for Payload {
    fn from(text: String) -> Self {
        Payload::Bytes(Bytes::from(text))
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload::Bytes(Bytes::from(bytes))
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects on this page.
    pub objects: Vec<ObjectInfo>,
    /// Token for the next page, if any.
    pub next: Option<String>,
}

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {location} failed: {message}{}", hint_suffix(*.kind))]
pub struct StoreError {
    /// `GetObject`, `PutObject`, ...
    pub operation: &'static str,
    /// `s3://bucket/key` or a local path.
    pub location: String,
    /// What went wrong, broadly.
    pub kind: StoreErrorKind,
    /// The underlying message.
    pub message: String,
}

/// Broad classes of storage failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Credentials or policy refuse the operation.
    AccessDenied,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The object changed while being read (ETag mismatch).
    Changed,
    /// Anything else (network, throttling, disk).
    Other,
}

fn hint_suffix(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::AccessDenied => {
            "; check the function's IAM policy allows this action on this bucket and prefix"
        }
        StoreErrorKind::NoSuchBucket => "; check the bucket name in the configuration",
        StoreErrorKind::Changed => "; the file was replaced while it was being read",
        StoreErrorKind::Other => "",
    }
}

/// An object store holding the landing and synced buckets.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object's metadata, or `None` if it does not exist.
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// Streams the object from byte `from` (an empty stream when `from` is at or past its
    /// end), or `None` if it does not exist; the [`ObjectInfo`] describes the whole object
    /// (its `size` is never the length of the range). With `if_match`, fails with [`StoreErrorKind::Changed`] if
    /// the object's ETag differs.
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        from: u64,
        if_match: Option<&str>,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, StoreError>;
    /// Writes an object whole (readers never see half of it).
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        payload: Payload,
        content_type: &str,
    ) -> Result<(), StoreError>;
    /// Copies an object within a bucket.
    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<(), StoreError>;
    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError>;
    /// One page of the objects under `prefix`, in key order.
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StoreError>;
    /// Where a person finds the object, for reports, alerts and messages.
    fn location(&self, bucket: &str, key: &str) -> String {
        format!("s3://{bucket}/{key}")
    }
}

/// Reads a whole, small object (records and reports), or `None` if it does not exist.
pub async fn read_small(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    use tokio::io::AsyncReadExt;
    let Some((info, mut body)) = store.get(bucket, key, 0, None).await? else {
        return Ok(None);
    };
    let mut bytes = Vec::with_capacity(
        usize::try_from(info.size)
            .unwrap_or(0)
            .min(16 * 1024 * 1024),
    );
    body.read_to_end(&mut bytes)
        .await
        .map_err(|error| StoreError {
            operation: "GetObject",
            location: format!("{bucket}/{key}"),
            kind: StoreErrorKind::Other,
            message: error.to_string(),
        })?;
    Ok(Some(bytes))
}

/// Lists every object under `prefix`, following pages.
pub async fn list_all(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ObjectInfo>, StoreError> {
    let mut objects = Vec::new();
    let mut next = None;
    loop {
        let page = store.list(bucket, prefix, next).await?;
        objects.extend(page.objects);
        match page.next {
            Some(token) => next = Some(token),
            None => return Ok(objects),
        }
    }
}

/// Meta's catalog, as the use cases need it.
#[async_trait]
pub trait CatalogApi: Send + Sync {
    /// The catalog id, for records and messages.
    fn catalog_id(&self) -> &str;
    /// Sends one batch (retrying, splitting an over-large one) before `deadline`; a failure
    /// keeps the calls Meta accepted before it.
    async fn send_batch(
        &self,
        requests_json: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<SentChunk>, PartialSend>;
    /// Asks how a batch went (retrying) before `deadline`.
    async fn check_status(
        &self,
        handle: &str,
        deadline: Option<Instant>,
    ) -> Result<BatchStatus, GraphError>;
    /// Proves the token and catalog.
    async fn preflight(&self) -> Result<CatalogInfo, GraphError>;
    /// Every call made to Meta so far (each attempt, retries included) and how many failed or
    /// were throttled; a use case reads it before and after its work, for its metrics.
    fn call_counts(&self) -> CallCounts;
}

/// What an alert is about; subscribers filter on it (SNS message attribute `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A whole file could not be used.
    FileRejected,
    /// Some rows of a file were rejected.
    RowsRejected,
    /// A file could not be sent after retries.
    SendFailed,
    /// Meta refused the access token.
    TokenInvalid,
    /// Meta reported item errors in finished batches.
    BatchErrors,
    /// Meta reported only warnings.
    BatchWarnings,
    /// A batch has not finished within `PENDING_MAX_AGE`.
    BatchStuck,
    /// A full snapshot's deletes were held back (too many, or an empty snapshot).
    DeletesHeld,
    /// The change-detection state could not be used and was started over.
    StateReset,
}

impl AlertKind {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::FileRejected => "file_rejected",
            AlertKind::RowsRejected => "rows_rejected",
            AlertKind::SendFailed => "send_failed",
            AlertKind::TokenInvalid => "token_invalid",
            AlertKind::BatchErrors => "batch_errors",
            AlertKind::BatchWarnings => "batch_warnings",
            AlertKind::BatchStuck => "batch_stuck",
            AlertKind::DeletesHeld => "deletes_held",
            AlertKind::StateReset => "state_reset",
        }
    }

    /// How serious this kind is (SNS message attribute `severity`).
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::RowsRejected | AlertKind::BatchWarnings | AlertKind::StateReset => {
                Severity::Warning
            }
            _ => Severity::Error,
        }
    }
}

/// How urgently a person should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Something was not synced.
    Error,
    /// Synced, but worth a look.
    Warning,
}

impl Severity {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// An alert ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// `catalog-sync: ...`, at most 100 ASCII characters.
    pub subject: String,
    /// Plain text for email.
    pub text: String,
    /// The same facts as a JSON document for programs.
    pub document: serde_json::Value,
}

impl Alert {
    /// Severity, from the kind.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }

    /// The SNS `Message` for `MessageStructure: json`: the text for email and SMS-like
    /// protocols, the JSON document (as a string) for SQS, HTTP(S) and Lambda subscribers.
    pub fn sns_message(&self) -> String {
        let document = self.document.to_string();
        json!({
            "default": self.text,
            "email": self.text,
            "email-json": document,
            "sqs": document,
            "http": document,
            "https": document,
            "lambda": document,
        })
        .to_string()
    }
}

/// A failed alert delivery.
#[derive(Debug, thiserror::Error)]
#[error("could not deliver alert {subject:?}: {message}")]
pub struct AlertError {
    /// The alert's subject.
    pub subject: String,
    /// Why.
    pub message: String,
}

/// Where alerts go: SNS on AWS, the terminal and a log file locally.
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Delivers one alert.
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError>;
}

/// The current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The token could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Where the access token comes from (Secrets Manager on AWS, a variable locally).
#[async_trait]
pub trait TokenProvider: Send + Sync {
    /// The current token.
    async fn token(&self) -> Result<AccessToken, TokenError>;
}

/// Why a file should be processed again by a later invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContinueReason {
    /// The invocation's time ran out with batches left.
    Deadline,
    /// Meta asked to wait longer than the invocation had left.
    Throttled,
    /// Meta could not be reached for now.
    Unavailable,
    /// The poller's sweep found the file left in `data/`.
    Redrive,
}

impl ContinueReason {
    /// A stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContinueReason::Deadline => "deadline",
            ContinueReason::Throttled => "throttled",
            ContinueReason::Unavailable => "unavailable",
            ContinueReason::Redrive => "redrive",
        }
    }
}

/// A request to process a landed file (again) in a later invocation: the body of a message on
/// the continuation queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    /// Landing bucket.
    pub bucket: String,
    /// The file's key in `data/`.
    pub key: String,
    /// The run to continue, when there is one.
    pub run_id: Option<String>,
    /// Why.
    pub reason: ContinueReason,
}

/// The continuation could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("could not queue the continuation of {key}: {message}")]
pub struct QueueError {
    /// The file.
    pub key: String,
    /// Why.
    pub message: String,
}

/// Where follow-up invocations are requested: an SQS queue feeding sync-on-arrival on AWS, a
/// rescan of the landing folder for local runs.
#[async_trait]
pub trait ContinuationQueue: Send + Sync {
    /// Asks for `continuation` to be processed after `delay`.
    async fn schedule(
        &self,
        continuation: &Continuation,
        delay: Duration,
    ) -> Result<(), QueueError>;
}

/// The adapters a use case runs on.
#[derive(Clone)]
pub struct Services {
    /// S3 or a local folder.
    pub store: Arc<dyn ObjectStore>,
    /// Meta's Graph API or the emulator.
    pub catalog: Arc<dyn CatalogApi>,
    /// SNS or the console.
    pub alerts: Arc<dyn AlertSink>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Follow-up invocations: SQS on AWS, in-process locally.
    pub continuations: Arc<dyn ContinuationQueue>,
}
