//! Building the adapters once, from configuration: what a Lambda `main` and every CLI command
//! call, so the services are assembled in this one place.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use graph::RetryPolicy;
use tokio::time::Instant;

use crate::config::{Config, TokenSource};
use crate::graph_api::{ConnectError, GraphCatalog, StaticToken, TokenError, TokenProvider};
use crate::local::{ConsoleAlerts, LANDING_BUCKET, LocalStore, RescanQueue, SYNCED_BUCKET};
use crate::ports::SystemClock;
use crate::process::Services;

/// What a build without the `aws` feature says when the configuration needs AWS.
pub const AWS_NOT_BUILT: &str = "this build of catalog-sync has no AWS support; build it with `cargo build --release -p catalog-sync --features aws`";

/// The token provider the configuration names: the secret on AWS, the variable locally.
///
/// `sdk` is the AWS configuration when one is loaded; a secret needs it.
#[cfg(feature = "aws")]
pub fn token_provider(
    config: &Config,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Arc<dyn TokenProvider>, ConnectError> {
    use crate::adapters::aws::SecretsManagerToken;
    match (&config.token, sdk) {
        (TokenSource::Literal(token), _) => Ok(Arc::new(StaticToken(token.clone()))),
        (TokenSource::Secret { arn }, Some(sdk)) => Ok(Arc::new(SecretsManagerToken::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            arn.clone(),
        ))),
        (TokenSource::Secret { .. }, None) => Err(ConnectError::Token(TokenError(
            "ACCESS_TOKEN_SECRET_ARN needs AWS settings; off AWS set META_ACCESS_TOKEN instead"
                .to_owned(),
        ))),
    }
}

/// The token provider for a local run: AWS is loaded only when the token is a secret, and a
/// build without the `aws` feature takes only `META_ACCESS_TOKEN`.
pub async fn local_token_provider(config: &Config) -> Result<Arc<dyn TokenProvider>, ConnectError> {
    #[cfg(feature = "aws")]
    {
        let sdk = match config.token {
            TokenSource::Secret { .. } => Some(crate::adapters::aws::load_sdk_config().await),
            TokenSource::Literal(_) => None,
        };
        token_provider(config, sdk.as_ref())
    }
    #[cfg(not(feature = "aws"))]
    match &config.token {
        TokenSource::Literal(token) => Ok(Arc::new(StaticToken(token.clone()))),
        TokenSource::Secret { .. } => Err(ConnectError::Token(TokenError(format!(
            "ACCESS_TOKEN_SECRET_ARN is read from Secrets Manager, and {AWS_NOT_BUILT}; or set META_ACCESS_TOKEN instead"
        )))),
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

/// S3, SNS, SQS, Secrets Manager and the Graph API, each built once.
#[cfg(feature = "aws")]
pub async fn aws_services(config: &Config) -> Result<Services, ConnectError> {
    use crate::adapters::aws::{S3Store, SnsAlerts, SqsContinuations};
    use crate::ports::AlertSink;
    use crate::progress::{ContinuationQueue, NoQueue};

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

/// A local folder laid out like the two buckets (`root/landing/...`, `root/synced/...`) and the
/// configured Graph API; alerts go to `root/alerts.log` (and stderr when `print_alerts`).
///
/// The configuration's bucket names are set to the folder's, whatever the AWS settings say.
pub async fn local_services(
    config: &mut Config,
    root: &Path,
    print_alerts: bool,
) -> Result<Services, ConnectError> {
    config.layout.landing_bucket = LANDING_BUCKET.to_owned();
    config.layout.synced_bucket = SYNCED_BUCKET.to_owned();
    let provider = local_token_provider(config).await?;
    let catalog = graph_catalog(config, provider).await?;
    Ok(Services {
        store: Arc::new(LocalStore::new(root)),
        catalog: Arc::new(catalog),
        alerts: Arc::new(ConsoleAlerts::in_root(root, print_alerts)),
        clock: Arc::new(SystemClock),
        continuations: Arc::new(RescanQueue),
    })
}

// The margin is defined once, beside the lease that must cover it.
pub use crate::process::DEADLINE_MARGIN;

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
