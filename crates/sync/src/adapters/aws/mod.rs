//! AWS adapters: S3 for storage, SNS for alerts, SQS for follow-up invocations, Secrets Manager
//! for the access token.

mod s3;
mod secrets;
mod sns;
mod sqs;

pub use s3::S3Store;
pub use secrets::SecretsManagerToken;
pub use sns::SnsAlerts;
pub use sqs::SqsContinuations;

/// Loads the AWS SDK configuration from the environment (region, credentials, endpoint
/// overrides such as `AWS_ENDPOINT_URL` for a local emulator).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// True when an S3 endpoint override is set, in which case path-style addressing is used so
/// a local S3 server works.
pub fn endpoint_overridden() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()))
}
