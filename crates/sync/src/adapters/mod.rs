//! Adapters of the ports, grouped by where they run.

#[cfg(feature = "aws")]
pub mod aws;
