//! The catalog-sync use cases, written against small ports, with their adapters.
//!
//! - [`process::FileProcessor`]: process one landed file (validate, transform, send, record,
//!   archive), driven by [`event::handle_s3_event`] in the sync-on-arrival function.
//! - Ports ([`ports`]): object store, catalog API, alerts, clock.
//! - Adapters: [`aws`] (S3, SNS, Secrets Manager) and [`graph_api`] (Meta's Graph API).

pub mod alert;
pub mod aws;
pub mod config;
pub mod event;
pub mod faults;
pub mod graph_api;
pub mod init_error;
pub mod keys;
pub mod local;
pub mod metrics;
pub mod poll;
pub mod ports;
pub mod process;
pub mod report;
pub mod wiring;

pub use config::{Config, ConfigError, Requirements, TokenSource};
