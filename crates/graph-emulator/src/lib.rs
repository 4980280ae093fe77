//! A local emulator of Meta's Graph API catalog batch endpoints, for tests and demos.
//!
//! It honours the contract described in `docs/meta-graph-api.md`, read independently of the
//! client: `items_batch` (form or JSON bodies, Bearer header or `access_token` parameter,
//! `allow_upsert` true unless sent as false, the 5000-request and 30 MB limits, Meta's item
//! rules), `check_batch_request_status` answering only the fields asked for (bare handle and
//! status without `fields`), `appsecret_proof` checked when given an app secret, code 2635 for
//! retired versions, and the catalog read. Faults and batch outcomes can be scripted, and every
//! request is recorded with its token redacted.

#![warn(missing_docs)]

pub mod cli;
mod listener;
mod rules;
mod server;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

pub use server::{GraphEmulator, RunningEmulator};

/// The token a default emulator accepts.
pub const DEFAULT_TOKEN: &str = "emulator-token";
/// The catalog a default emulator holds.
pub const DEFAULT_CATALOG_ID: &str = "100000000000001";
/// Most requests one `items_batch` call may carry.
pub const MAX_REQUESTS_PER_BATCH: usize = 5000;
/// Largest `items_batch` request body, in bytes: Meta documents 30 MB for `requests`; the
/// emulator takes the stricter reading (decimal megabytes) and counts the whole body.
pub const MAX_BODY_BYTES: usize = 30 * 1000 * 1000;
/// Versions older than this answer code 2635, as Meta does for retired versions: the Marketing
/// API's table ended v24.0 on 10 November 2026.
pub const DEFAULT_OLDEST_SERVED_VERSION: &str = "v25.0";
/// Most errors or warnings returned as samples in a batch status; the counts stay exact.
pub const MAX_SAMPLES: usize = 100;

/// How an emulator starts.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Access tokens accepted.
    pub tokens: Vec<String>,
    /// Catalog ids that exist (empty at start).
    pub catalogs: Vec<String>,
    /// How many status checks of a handle report a non-terminal state before the final one.
    pub checks_until_finished: u32,
    /// Delay added to every answer.
    pub latency: Duration,
    /// When set, every call must carry `appsecret_proof`, the hex HMAC-SHA256 of its token keyed
    /// by this secret, as Meta requires of apps with "Require App Secret" on.
    pub app_secret: Option<String>,
    /// The oldest API version served (`vNN.N`); older ones answer code 2635.
    pub oldest_served_version: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tokens: vec![DEFAULT_TOKEN.to_owned()],
            catalogs: vec![DEFAULT_CATALOG_ID.to_owned()],
            checks_until_finished: 1,
            latency: Duration::ZERO,
            app_secret: None,
            oldest_served_version: DEFAULT_OLDEST_SERVED_VERSION.to_owned(),
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are secrets even here: show how many, never which.
        f.debug_struct("EmulatorConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("catalogs", &self.catalogs)
            .field("checks_until_finished", &self.checks_until_finished)
            .field("latency", &self.latency)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("oldest_served_version", &self.oldest_served_version)
            .finish()
    }
}

/// The endpoints the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /{version}/{catalog_id}/items_batch`.
    ItemsBatch,
    /// `GET /{version}/{catalog_id}/check_batch_request_status`.
    BatchStatus,
    /// `GET /{version}/{catalog_id}`.
    Catalog,
    /// `GET /{version}/{catalog_id}/products`.
    Products,
}

/// A failure to inject into the next matching call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A throttling error with `code` (4, 17, 32, 613, 80000-80009, 80014), optionally with an
    /// `X-Business-Use-Case-Usage` regain time and a `Retry-After` header.
    Throttle {
        /// Graph error code.
        code: i64,
        /// `estimated_time_to_regain_access`, in minutes.
        regain_access_minutes: Option<u64>,
        /// `Retry-After`, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// That HTTP status with a Graph-shaped transient error body.
    ServerError {
        /// HTTP status to answer with (500 when not a valid status).
        status: u16,
    },
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Close the connection without any HTTP answer.
    DropConnection,
    /// Error 190 subcode 463; the token stays revoked afterwards.
    TokenExpired,
    /// Error 200, missing permission.
    PermissionDenied,
    /// Error code 1 asking to reduce the amount of data.
    PayloadTooLarge,
}

impl Fault {
    /// This fault, limited to calls of `endpoint`.
    pub fn on(self, endpoint: Endpoint) -> ScriptedFault {
        ScriptedFault {
            fault: self,
            endpoint: Some(endpoint),
        }
    }
}

/// A fault and the endpoint it waits for (`None`: the next call of any endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedFault {
    /// What goes wrong.
    pub fault: Fault,
    /// Which endpoint it applies to.
    pub endpoint: Option<Endpoint>,
}

impl From<Fault> for ScriptedFault {
    fn from(fault: Fault) -> Self {
        Self {
            fault,
            endpoint: None,
        }
    }
}

/// How the next `items_batch` handle ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchOutcome {
    /// `finished`; valid items are saved.
    #[default]
    Finished,
    /// `canceled`; as with Meta, the batch may have been partly applied: the first half of its
    /// valid items (rounded down) is saved.
    Canceled,
    /// `error`; a batch-level error is reported, and, as with `Canceled`, the first half of
    /// its valid items (rounded down) is saved.
    Error,
    /// Never leaves the non-terminal states; nothing is saved.
    NeverFinishes,
}

/// How a request presented its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `Authorization: Bearer ...`.
    Bearer,
    /// An `access_token` query or body parameter.
    AccessTokenParam,
    /// No token at all.
    None,
}

/// One request the emulator received, with every token redacted.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Query string with `access_token` redacted.
    pub query: String,
    /// Query and body parameters (body wins), `access_token` redacted. Form values are strings;
    /// JSON bodies keep their JSON types.
    pub params: BTreeMap<String, Value>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// How the token was presented.
    pub auth: AuthMode,
    /// The endpoint the path matched, if any.
    pub endpoint: Option<Endpoint>,
    /// The status answered; `None` while in flight or when the connection was dropped.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// The `requests` parameter as JSON, whether sent as a JSON string (form) or an array (JSON body).
    pub fn requests_json(&self) -> Option<Value> {
        match self.params.get("requests")? {
            Value::String(text) => serde_json::from_str(text).ok(),
            other => Some(other.clone()),
        }
    }
}
