//! The ports' adapters, grouped by where they run: Meta's Graph API (anywhere), a local folder
//! and the terminal (off AWS), and fault injection (tests).

pub mod faults;
pub mod graph_api;
pub mod local;
// The AWS adapters (S3, SNS, SQS, Secrets Manager) move here behind the `aws` feature:
// #[cfg(feature = "aws")]
// pub mod aws;
