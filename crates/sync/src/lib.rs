//! The catalog-sync use cases, written against small ports, with their adapters.
//!
//! - [`process::FileProcessor`]: process one landed file (validate, transform, send, record,
//!   archive), driven by [`event::handle_invocation`] in the sync-on-arrival function; files
//!   too large for one invocation are checkpointed and continued ([`progress`]).
//! - [`poll::Poller`]: ask Meta how each batch went, alert, and sweep files left behind.
//! - Ports ([`ports`], [`progress::ContinuationQueue`]): object store, catalog API, alerts,
//!   clock, follow-up queue.
//! - Adapters: [`adapters`] (`aws`: S3, SNS, SQS, Secrets Manager, with the `aws` feature) and
//!   [`graph_api`] (Meta's Graph API); [`wiring`] assembles them from configuration.
//! - The Lambda functions' handlers and error types: [`lambda`] (the `lambda` feature).

pub mod adapters;
pub mod alert;
pub mod config;
pub mod event;
pub mod faults;
pub mod graph_api;
#[cfg(feature = "lambda")]
pub mod init_error;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod local;
pub mod metrics;
pub mod poll;
pub mod ports;
pub mod process;
pub mod progress;
pub mod report;
pub mod sweep;
pub mod wiring;

pub use config::{Config, ConfigError, Requirements, TokenSource};
