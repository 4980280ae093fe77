//! Lambda: EventBridge schedule -> poll pending batch handles, record verdicts, alert.
//!
//! Wiring only: configuration is read and clients are built once per container; each event
//! runs [`sync::poll::Poller::run`]. Any JSON event is accepted: the EventBridge scheduled-event
//! envelope, EventBridge Scheduler's bare `{}`, or a manual test event; its content is unused.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use sync::poll::{PollSettings, PollSummary, Poller};
use sync::{Config, Requirements};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sync::wiring::init_lambda_logging();
    let config = match Config::from_env(Requirements::PollFunction) {
        Ok(config) => config,
        Err(error) => return Err(sync::init_error::report_init_error("ConfigError", &error)),
    };
    let services = match sync::wiring::aws_services(&config).await {
        Ok(services) => services,
        Err(error) => return Err(sync::init_error::report_init_error("ConnectError", &error)),
    };
    let poller = Poller::new(services, PollSettings::from_config(&config));
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .unwrap_or_else(|_| "poll-batch-status".to_owned());
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        handle(&poller, &function_name, event).instrument(span)
    }))
    .await
}

async fn handle(
    poller: &Poller,
    function_name: &str,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let deadline = sync::wiring::deadline_from_epoch_ms(event.context.deadline);
    let result = poller.run(Some(deadline)).await;
    if let Some(summary) = match &result {
        Ok(summary) => Some(summary),
        Err(error) => error.summary(),
    } {
        println!("{}", metrics_line(function_name, summary));
    }
    match result {
        Ok(summary) => Ok(serde_json::to_value(summary)?),
        Err(error) => {
            tracing::error!("{error}");
            Err(error.into())
        }
    }
}

/// The run's figures as one CloudWatch embedded-metric-format line.
fn metrics_line(function_name: &str, summary: &PollSummary) -> String {
    sync::metrics::emf_line(
        function_name,
        sync::metrics::now_ms(),
        &[
            ("BatchesChecked", summary.checked),
            ("BatchesFinished", summary.finished),
            ("BatchesNotSaved", summary.canceled + summary.errored),
            ("BatchesStuck", summary.stuck),
            ("ItemErrors", summary.item_errors),
            ("ItemWarnings", summary.item_warnings),
            ("ApiErrors", summary.api_errors),
        ],
    )
}
