//! The catalog-sync use cases, written against small ports, with their adapters.
//!
//! - [`process::FileProcessor`]: process one landed file as its phases (claim, open, send,
//!   route, finish), driven by [`event::handle_invocation`] in the sync-on-arrival function;
//!   files too large for one invocation are checkpointed and continued.
//! - [`poll::Poller`]: ask Meta how each batch went, alert, and [`sweep`] files left behind.
//! - [`ports`]: every port (object store, catalog API, token, alerts, clock, continuation
//!   queue) and the [`ports::Services`] bundle a use case receives.
//! - [`alert::wording`]: what each alert kind says.
//! - Adapters: [`adapters`] (a local folder, the log, the Graph API, fault injection, and with
//!   the `aws` feature S3, SNS, SQS and Secrets Manager); [`wiring`] assembles them from
//!   configuration.
//! - The Lambda functions' handlers and error types: `lambda` (the `lambda` feature).
//!
//! `docs/architecture.md` in the repository shows where each decision lives.

pub mod adapters;
pub mod alert;
pub mod config;
pub mod event;
#[cfg(feature = "lambda")]
pub mod init_error;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod poll;
pub mod ports;
pub mod process;
pub mod progress;
pub mod report;
pub mod state;
pub mod sweep;
pub mod wiring;

pub use config::{Config, ConfigError, Requirements, TokenSource};

// The adapters' old paths, kept for the binaries and the CLI.
pub use adapters::{faults, graph_api, local};
