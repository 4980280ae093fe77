//! Lambda: scheduled poll of pending batch handles, alerting on problems.

fn main() {}
