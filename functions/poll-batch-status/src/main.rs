//! Lambda: EventBridge schedule -> poll pending batch handles, record verdicts, alert.
//!
//! Wiring only: configuration is read and clients are built once per container; each event
//! goes to [`sync::lambda::poll_batch_status`], which also names each failure's `errorType`.
//! Any JSON event is accepted: the EventBridge scheduled-event envelope, EventBridge
//! Scheduler's bare `{}`, or a manual test event; its content is unused.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use sync::init_error::report_init_error;
use sync::poll::{PollSettings, Poller};
use sync::{Config, Requirements};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sync::wiring::init_lambda_logging();
    let config = Config::from_env(Requirements::PollFunction).map_err(report_init_error)?;
    let services = sync::wiring::aws_services(&config)
        .await
        .map_err(report_init_error)?;
    let poller = Poller::new(services, PollSettings::from_config(&config));
    let function_name = sync::lambda::function_name("poll-batch-status");
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        sync::lambda::poll_batch_status(&poller, &function_name, event).instrument(span)
    }))
    .await
}
