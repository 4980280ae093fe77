//! Meta Graph API client for catalog batch calls, with typed errors and retries.
//!
//! The contract this client follows is Meta's catalog batch API: `items_batch` to send,
//! `check_batch_request_status` to learn the outcome, and a catalog read as a preflight.
//! Every call is one attempt; [`GraphClient::send_batch`] and [`GraphClient::check_with_retry`]
//! add the [`RetryPolicy`]. The access token travels only in the `Authorization` header and is
//! scrubbed from anything the server echoes back, so it never reaches an error or a log line.

#![warn(missing_docs)]

mod calls;
mod client;
mod error;
pub mod response;
pub mod retry;
mod secret;
mod settings;
mod types;
mod usage;

pub use calls::CallCounts;
pub use client::{BATCH_STATUS_FIELDS, GraphClient, PartialSend, SentChunk};
pub use error::{CodeHandling, CodeRule, ERROR_CODES, ErrorClass, GraphError, code_rule};
pub use retry::RetryPolicy;
pub use secret::{AccessToken, AppSecret};
pub use settings::{DEFAULT_API_VERSION, GraphSettings};
pub use types::{
    BatchState, BatchStatus, CatalogInfo, ItemProblem, ItemsBatchResponse, Message,
    ValidationStatus,
};
pub use usage::{Usage, usage_from_headers};
