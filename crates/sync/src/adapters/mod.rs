//! Adapters of the ports, grouped by where they run.

pub mod aws;
