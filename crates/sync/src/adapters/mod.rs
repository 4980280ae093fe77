//! The ports' adapters, grouped by where they run: Meta's Graph API (anywhere), a local folder
//! and the terminal (off AWS), the log (no topic or queue configured), fault injection (tests),
//! and AWS (S3, SNS, SQS, Secrets Manager) behind the `aws` feature.

#[cfg(feature = "aws")]
pub mod aws;
pub mod faults;
pub mod graph_api;
pub mod local;
pub mod log;
