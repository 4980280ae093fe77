//! What the two Lambda functions do with an invocation, and the `errorType` each failure
//! reports, so their `main.rs` only wires.
//!
//! `lambda_runtime` derives a failed invocation's `errorType` from the error's Rust type name
//! (`std::any::type_name`, e.g. `&alloc::boxed::Box<dyn core::error::Error ...>`) unless the
//! handler's error converts into its `Diagnostic` itself; [`FunctionError`] does, with the
//! names of [`ErrorKind`]. Start-up failures get the same names ([`crate::init_error`]).

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::config::ConfigError;
use crate::event::{EventError, Invocation, UnknownEvent, handle_invocation};
use crate::graph_api::ConnectError;
use crate::metrics::{Metric, emf_line, now_ms};
use crate::poll::{PollError, Poller};
use crate::process::FileProcessor;
use crate::wiring::deadline_from_epoch_ms;

/// Why a function failed: each kind is one `errorType` in Lambda's error response, its logs
/// and its metrics, so alarms and people can tell failures apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A variable is missing or invalid (start-up; the message names it and the fix).
    ConfigError,
    /// The access token or the Graph API client could not be set up (start-up).
    ConnectError,
    /// sync-on-arrival was invoked with neither an S3 notification nor a continuation message.
    UnknownEvent,
    /// A landed file could not be processed; it stays in `data/` and Lambda retries the event.
    FileFailed,
    /// The poller could not list `pending/`, or could not deliver an alert.
    PollFailed,
    /// The function's summary could not be turned into its JSON response.
    ResponseFailed,
}

impl ErrorKind {
    /// The `errorType` Lambda reports.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorKind::ConfigError => "ConfigError",
            ErrorKind::ConnectError => "ConnectError",
            ErrorKind::UnknownEvent => "UnknownEvent",
            ErrorKind::FileFailed => "FileFailed",
            ErrorKind::PollFailed => "PollFailed",
            ErrorKind::ResponseFailed => "ResponseFailed",
        }
    }
}

/// A function's failure: its kind and the message (which names the file, variable or fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FunctionError {
    /// Why it failed.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
}

impl FunctionError {
    /// A failure of `kind` described by `error`.
    pub fn new(kind: ErrorKind, error: &dyn std::fmt::Display) -> Self {
        FunctionError {
            kind,
            message: error.to_string(),
        }
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(error: FunctionError) -> Diagnostic {
        Diagnostic {
            error_type: error.kind.error_type().to_owned(),
            error_message: error.message,
        }
    }
}

impl From<ConfigError> for FunctionError {
    fn from(error: ConfigError) -> Self {
        FunctionError::new(ErrorKind::ConfigError, &error)
    }
}

impl From<ConnectError> for FunctionError {
    fn from(error: ConnectError) -> Self {
        FunctionError::new(ErrorKind::ConnectError, &error)
    }
}

impl From<UnknownEvent> for FunctionError {
    fn from(error: UnknownEvent) -> Self {
        FunctionError::new(ErrorKind::UnknownEvent, &error)
    }
}

impl From<EventError> for FunctionError {
    fn from(error: EventError) -> Self {
        FunctionError::new(ErrorKind::FileFailed, &error)
    }
}

impl From<PollError> for FunctionError {
    fn from(error: PollError) -> Self {
        FunctionError::new(ErrorKind::PollFailed, &error)
    }
}

impl From<serde_json::Error> for FunctionError {
    fn from(error: serde_json::Error) -> Self {
        FunctionError::new(ErrorKind::ResponseFailed, &error)
    }
}

/// The function's name for its metrics: `AWS_LAMBDA_FUNCTION_NAME`, or `default` off Lambda.
pub fn function_name(default: &str) -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| default.to_owned())
}

/// Prints the invocation's metrics as one embedded-metric-format line.
fn print_metrics(function_name: &str, metrics: &[Metric]) {
    println!("{}", emf_line(function_name, now_ms(), metrics));
}

/// sync-on-arrival: one S3 notification or batch of continuation messages.
pub async fn sync_on_arrival(
    processor: &FileProcessor,
    function_name: &str,
    event: LambdaEvent<Value>,
) -> Result<Value, FunctionError> {
    let deadline = deadline_from_epoch_ms(event.context.deadline);
    let invocation = Invocation::from_json(event.payload).inspect_err(log)?;
    let result = handle_invocation(processor, &invocation, Some(deadline)).await;
    let summary = match &result {
        Ok(summary) => summary,
        Err(error) => &error.summary,
    };
    print_metrics(function_name, &summary.metrics());
    Ok(serde_json::to_value(result.inspect_err(log)?)?)
}

/// poll-batch-status: one scheduled run (the event's content is unused).
pub async fn poll_batch_status(
    poller: &Poller,
    function_name: &str,
    event: LambdaEvent<Value>,
) -> Result<Value, FunctionError> {
    let deadline = deadline_from_epoch_ms(event.context.deadline);
    let result = poller.run(Some(deadline)).await;
    let summary = match &result {
        Ok(summary) => Some(summary),
        Err(error) => error.summary(),
    };
    if let Some(summary) = summary {
        print_metrics(function_name, &summary.metrics());
        // One line per file: each is one data point of the landing-to-verdict time.
        for metric in summary.file_metrics() {
            print_metrics(function_name, &[metric]);
        }
    }
    Ok(serde_json::to_value(result.inspect_err(log)?)?)
}

fn log(error: &impl std::fmt::Display) {
    tracing::error!("{error}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Requirements;
    use crate::event::EventSummary;
    use crate::ports::{StoreError, StoreErrorKind};

    fn error_type(error: impl Into<FunctionError>) -> String {
        Diagnostic::from(error.into()).error_type
    }

    #[test]
    fn a_missing_variable_is_a_config_error() {
        let error = crate::Config::from_lookup(Requirements::SyncFunction, |_| None).unwrap_err();
        let diagnostic = Diagnostic::from(FunctionError::from(error));
        assert_eq!(diagnostic.error_type, "ConfigError");
        assert!(
            diagnostic.error_message.contains("CATALOG_ID"),
            "{}",
            diagnostic.error_message
        );
    }

    #[test]
    fn a_token_that_cannot_be_read_is_a_connect_error() {
        let error =
            ConnectError::Token(crate::graph_api::TokenError("secret not found".to_owned()));
        assert_eq!(error_type(error), "ConnectError");
    }

    #[test]
    fn an_event_that_is_neither_s3_nor_a_continuation_is_an_unknown_event() {
        let error = Invocation::from_json(serde_json::json!({"Records": "none"})).unwrap_err();
        assert_eq!(error_type(error), "UnknownEvent");
    }

    #[test]
    fn a_file_that_failed_is_file_failed_with_the_message() {
        let error = EventError {
            errors: Vec::new(),
            summary: EventSummary {
                failed: vec!["data/a.csv".to_owned()],
                ..EventSummary::default()
            },
        };
        let message = error.to_string();
        let diagnostic = Diagnostic::from(FunctionError::from(error));
        assert_eq!(diagnostic.error_type, "FileFailed");
        assert_eq!(diagnostic.error_message, message);
    }

    #[test]
    fn a_poll_that_could_not_list_pending_is_poll_failed() {
        let error = PollError::List(StoreError {
            operation: "ListObjectsV2",
            location: "s3://synced/pending/".to_owned(),
            kind: StoreErrorKind::AccessDenied,
            message: "access denied".to_owned(),
        });
        assert_eq!(error_type(error), "PollFailed");
    }

    #[test]
    fn no_error_type_is_a_rust_type_path() {
        for kind in [
            ErrorKind::ConfigError,
            ErrorKind::ConnectError,
            ErrorKind::UnknownEvent,
            ErrorKind::FileFailed,
            ErrorKind::PollFailed,
            ErrorKind::ResponseFailed,
        ] {
            let name = kind.error_type();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{kind:?}: {name}"
            );
            assert_eq!(format!("{kind:?}"), name);
        }
    }
}
