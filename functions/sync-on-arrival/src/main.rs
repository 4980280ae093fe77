//! Lambda: S3 `ObjectCreated` on the landing prefix -> validate, transform, send, archive; and
//! continuation messages (SQS) for files that need more than one invocation.
//!
//! Wiring only: configuration is read and clients are built once per container; each event
//! goes to [`sync::event::handle_invocation`].

use lambda_runtime::{Error, LambdaEvent, service_fn};
use sync::process::{FileProcessor, Settings};
use sync::{Config, Requirements};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sync::wiring::init_lambda_logging();
    let config = match Config::from_env(Requirements::SyncFunction) {
        Ok(config) => config,
        Err(error) => return Err(sync::init_error::report_init_error("ConfigError", &error)),
    };
    let services = match sync::wiring::aws_services(&config).await {
        Ok(services) => services,
        Err(error) => return Err(sync::init_error::report_init_error("ConnectError", &error)),
    };
    let processor = FileProcessor::new(services, Settings::from_config(&config));
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sync-on-arrival".to_owned());
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        handle(&processor, &function_name, event).instrument(span)
    }))
    .await
}

async fn handle(
    processor: &FileProcessor,
    function_name: &str,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let deadline = sync::wiring::deadline_from_epoch_ms(event.context.deadline);
    let invocation = sync::event::Invocation::from_json(event.payload)?;
    let result = sync::event::handle_invocation(processor, &invocation, Some(deadline)).await;
    let summary = match &result {
        Ok(summary) => summary,
        Err(error) => &error.summary,
    };
    let failures = u64::try_from(summary.failed.len()).unwrap_or(u64::MAX);
    println!(
        "{}",
        sync::metrics::emf_line(
            function_name,
            sync::metrics::now_ms(),
            &[
                ("ProductsReceived", summary.counts.rows_read),
                ("ProductsSent", summary.counts.sent),
                (
                    "ProductsRejected",
                    summary.counts.rejected + summary.counts.refused_by_meta
                ),
                (
                    "BatchesSent",
                    u64::try_from(summary.batches).unwrap_or(u64::MAX)
                ),
                ("ApiErrors", failures),
            ],
        )
    );
    match result {
        Ok(summary) => Ok(serde_json::to_value(summary)?),
        Err(error) => Err(error.into()),
    }
}
