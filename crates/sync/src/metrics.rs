//! CloudWatch embedded-metric-format lines: metrics from logs, with no extra service.

use serde_json::{Map, Value, json};

/// The metric namespace.
pub const NAMESPACE: &str = "CatalogSync";

/// One EMF log line with `metrics` (name, count) for `function_name`, at `timestamp_ms`.
pub fn emf_line(function_name: &str, timestamp_ms: i64, metrics: &[(&str, u64)]) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    let mut line = Map::new();
    line.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": definitions,
            }],
        }),
    );
    line.insert("FunctionName".to_owned(), json!(function_name));
    for (name, value) in metrics {
        line.insert((*name).to_owned(), json!(value));
    }
    Value::Object(line).to_string()
}

/// Milliseconds since the Unix epoch, for metric timestamps.
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let line = emf_line(
            "sync",
            1_700_000_000_000,
            &[("ProductsSent", 5), ("BatchesSent", 1)],
        );
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "CatalogSync"
        );
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "BatchesSent"
        );
        assert_eq!(value["ProductsSent"], 5);
        assert_eq!(value["FunctionName"], "sync");
        assert!(!line.contains('\n'));
    }
}
