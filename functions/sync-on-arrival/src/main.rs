//! Lambda: S3 `ObjectCreated` on the landing prefix -> validate, transform, send, archive; and
//! continuation messages (SQS) for files that need more than one invocation.
//!
//! Wiring only: configuration is read and clients are built once per container; each event
//! goes to [`sync::lambda::sync_on_arrival`], which also names each failure's `errorType`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use sync::init_error::report_init_error;
use sync::process::{FileProcessor, Settings};
use sync::{Config, Requirements};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sync::wiring::init_lambda_logging();
    let config = Config::from_env(Requirements::SyncFunction).map_err(report_init_error)?;
    let services = sync::wiring::aws_services(&config)
        .await
        .map_err(report_init_error)?;
    let processor = FileProcessor::new(services, Settings::from_config(&config));
    let function_name = sync::lambda::function_name("sync-on-arrival");
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        sync::lambda::sync_on_arrival(&processor, &function_name, event).instrument(span)
    }))
    .await
}
