//! Building the adapters once, from configuration: what a Lambda `main` or the CLI calls.

use std::sync::Arc;
use std::time::Duration;

use graph::RetryPolicy;
use tokio::time::Instant;

use crate::adapters::aws::{S3Store, SecretsManagerToken, SnsAlerts, SqsContinuations};
use crate::config::{Config, TokenSource};
use crate::graph_api::{ConnectError, GraphCatalog, StaticToken, TokenProvider};
use crate::ports::{AlertSink, SystemClock};
use crate::process::Services;
use crate::progress::{ContinuationQueue, NoQueue};

/// The token provider the configuration names: the secret on AWS, the variable locally.
pub fn token_provider(
    config: &Config,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Arc<dyn TokenProvider>, ConnectError> {
    match (&config.token, sdk) {
        (TokenSource::Literal(token), _) => Ok(Arc::new(StaticToken(token.clone()))),
        (TokenSource::Secret { arn }, Some(sdk)) => Ok(Arc::new(SecretsManagerToken::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            arn.clone(),
        ))),
        (TokenSource::Secret { .. }, None) => {
            Err(ConnectError::Token(crate::graph_api::TokenError(
                "ACCESS_TOKEN_SECRET_ARN needs AWS settings; off AWS set META_ACCESS_TOKEN instead"
                    .to_owned(),
            )))
        }
    }
}

/// Meta's catalog as configured, with the token read once now.
pub async fn graph_catalog(
    config: &Config,
    provider: Arc<dyn TokenProvider>,
) -> Result<GraphCatalog, ConnectError> {
    GraphCatalog::connect(
        config.graph.clone(),
        config.catalog_id.clone(),
        RetryPolicy::default(),
        provider,
    )
    .await
}

/// S3, SNS, Secrets Manager and the Graph API, each built once.
pub async fn aws_services(config: &Config) -> Result<Services, ConnectError> {
    let sdk = crate::adapters::aws::load_sdk_config().await;
    let provider = token_provider(config, Some(&sdk))?;
    let catalog = graph_catalog(config, provider).await?;
    let alerts: Arc<dyn AlertSink> = match &config.alert_topic_arn {
        Some(topic) => Arc::new(SnsAlerts::new(
            aws_sdk_sns::Client::new(&sdk),
            topic.clone(),
        )),
        None => Arc::new(crate::alert::LogAlerts),
    };
    let continuations: Arc<dyn ContinuationQueue> = match &config.continue_queue_url {
        Some(url) => Arc::new(SqsContinuations::new(
            aws_sdk_sqs::Client::new(&sdk),
            url.clone(),
        )),
        None => Arc::new(NoQueue),
    };
    Ok(Services {
        store: Arc::new(S3Store::from_sdk_config(&sdk)),
        catalog: Arc::new(catalog),
        alerts,
        clock: Arc::new(SystemClock),
        continuations,
    })
}

/// Time kept back from a Lambda deadline to write reports and checkpoints after the last call.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// A Lambda deadline (milliseconds since the epoch) as a tokio instant, less [`DEADLINE_MARGIN`].
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN.min(left / 4))
}

/// JSON logs for Lambda: one line per event, with the span's fields (request id, file key).
pub fn init_lambda_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
