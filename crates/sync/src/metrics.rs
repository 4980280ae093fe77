//! CloudWatch embedded-metric-format lines: metrics from logs, with no extra service.
//!
//! Every metric the functions emit is defined here, on the use cases' summaries. Words mean
//! what they mean in reports and on the CLI: "rejected" is a row that broke the CSV rules
//! (`Counts::rejected`, never sent); a product Meta refused when it was sent is "refused by
//! Meta", its own metric. `ProductsSent` counts every product Meta took, deletes included;
//! `ProductsDeleted` is the delete requests among them. Both functions count their calls to
//! Meta the same way: `GraphCallsFailed` is every attempt that failed, retried ones included,
//! and `GraphCallsThrottled` the attempts among them Meta refused for its rate limits, which
//! the other counts never show when a retry succeeded.

use serde_json::{Map, Value, json};

use crate::event::EventSummary;
use crate::poll::PollSummary;

/// The metric namespace.
pub const NAMESPACE: &str = "CatalogSync";

/// A metric's name and value.
pub type Metric = (&'static str, u64);

fn count(items: usize) -> u64 {
    u64::try_from(items).unwrap_or(u64::MAX)
}

impl EventSummary {
    /// The sync-on-arrival function's figures for one invocation.
    pub fn metrics(&self) -> [Metric; 10] {
        [
            ("ProductsReceived", self.counts.rows_read),
            ("ProductsSent", self.counts.sent),
            ("ProductsUnchanged", self.counts.unchanged),
            ("ProductsDeleted", self.counts.deleted),
            ("ProductsRejected", self.counts.rejected),
            ("ProductsRefusedByMeta", self.counts.refused_by_meta),
            ("BatchesSent", count(self.batches)),
            ("FilesFailed", count(self.failed.len())),
            (GRAPH_CALLS_FAILED, self.graph_calls.failed),
            (GRAPH_CALLS_THROTTLED, self.graph_calls.throttled),
        ]
    }
}

/// Calls to Meta that failed, each attempt counted (both functions).
pub const GRAPH_CALLS_FAILED: &str = "GraphCallsFailed";

/// Calls to Meta refused for its rate limits, each attempt counted (both functions).
pub const GRAPH_CALLS_THROTTLED: &str = "GraphCallsThrottled";

/// Seconds from a file's landing to its last batch's verdict: one value per completed file,
/// each on its own line.
pub const FILE_TO_VERDICT: &str = "FileToVerdictSeconds";

impl PollSummary {
    /// The poll-batch-status function's figures for one run.
    pub fn metrics(&self) -> [Metric; 11] {
        [
            ("BatchesChecked", self.checked),
            ("BatchesFinished", self.finished),
            ("BatchesNotSaved", self.canceled + self.errored),
            ("BatchesStuck", self.stuck),
            ("ItemErrors", self.item_errors),
            ("ItemWarnings", self.item_warnings),
            ("ApiErrors", self.api_errors),
            ("PendingHandles", self.pending_left),
            ("OldestPendingSeconds", self.oldest_pending_secs),
            (GRAPH_CALLS_FAILED, self.graph_calls.failed),
            (GRAPH_CALLS_THROTTLED, self.graph_calls.throttled),
        ]
    }

    /// One [`FILE_TO_VERDICT`] value per file completed in this run.
    pub fn file_metrics(&self) -> impl Iterator<Item = Metric> + '_ {
        self.file_verdict_secs
            .iter()
            .map(|seconds| (FILE_TO_VERDICT, *seconds))
    }
}

/// Every metric name each function can emit, by binary name: what dashboards and alarms may
/// name (the `metric_names` example prints it for the template tests).
pub fn emitted_names() -> [(&'static str, Vec<&'static str>); 2] {
    let names = |metrics: &[Metric]| metrics.iter().map(|(name, _)| *name).collect::<Vec<_>>();
    let mut poll = names(&PollSummary::default().metrics());
    poll.push(FILE_TO_VERDICT);
    [
        ("sync-on-arrival", names(&EventSummary::default().metrics())),
        ("poll-batch-status", poll),
    ]
}

/// CloudWatch's unit for a metric: durations end in `Seconds`, everything else counts.
fn unit(name: &str) -> &'static str {
    if name.ends_with("Seconds") {
        "Seconds"
    } else {
        "Count"
    }
}

/// One EMF log line with `metrics` (name, count) for `function_name`, at `timestamp_ms`.
pub fn emf_line(function_name: &str, timestamp_ms: i64, metrics: &[(&str, u64)]) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": unit(name)}))
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

    #[test]
    fn rejected_counts_only_rows_that_broke_the_rules_as_the_cli_and_reports_do() {
        use crate::report::Counts;
        let summary = EventSummary {
            counts: Counts {
                rows_read: 10,
                valid: 5,
                rejected: 5,
                superseded: 0,
                sent: 3,
                refused_by_meta: 2,
                deleted: 1,
                ..Counts::default()
            },
            batches: 1,
            failed: vec!["data/b.csv".to_owned()],
            ..EventSummary::default()
        };
        let metrics = summary.metrics();
        let value = |name: &str| {
            metrics
                .iter()
                .find(|(metric, _)| *metric == name)
                .map(|(_, value)| *value)
        };
        assert_eq!(value("ProductsRejected"), Some(summary.counts.rejected));
        assert_eq!(value("ProductsRefusedByMeta"), Some(2));
        assert_eq!(value("ProductsSent"), Some(3));
        assert_eq!(value("ProductsDeleted"), Some(1));
        assert_eq!(value("ProductsReceived"), Some(10));
        assert_eq!(value("BatchesSent"), Some(1));
        assert_eq!(value("FilesFailed"), Some(1));
    }

    #[test]
    fn poll_metrics_count_canceled_and_errored_batches_as_not_saved() {
        let summary = PollSummary {
            checked: 4,
            canceled: 1,
            errored: 2,
            item_errors: 7,
            ..PollSummary::default()
        };
        let line: Value = serde_json::from_str(&emf_line("poll", 0, &summary.metrics())).unwrap();
        assert_eq!(line["BatchesChecked"], 4);
        assert_eq!(line["BatchesNotSaved"], 3);
        assert_eq!(line["ItemErrors"], 7);
    }

    #[test]
    fn the_backlog_and_each_completed_file_are_measured_in_seconds() {
        let summary = PollSummary {
            pending_left: 2,
            oldest_pending_secs: 600,
            file_verdict_secs: vec![90, 3600],
            ..PollSummary::default()
        };
        let line: Value = serde_json::from_str(&emf_line("poll", 0, &summary.metrics())).unwrap();
        assert_eq!(line["PendingHandles"], 2);
        assert_eq!(line["OldestPendingSeconds"], 600);
        for definition in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            let expected = if definition["Name"] == "OldestPendingSeconds" {
                "Seconds"
            } else {
                "Count"
            };
            assert_eq!(definition["Unit"], expected, "{definition}");
        }
        let files: Vec<Metric> = summary.file_metrics().collect();
        assert_eq!(files, [(FILE_TO_VERDICT, 90), (FILE_TO_VERDICT, 3600)]);
        let file_line: Value = serde_json::from_str(&emf_line("poll", 0, &files[..1])).unwrap();
        assert_eq!(file_line[FILE_TO_VERDICT], 90);
        assert_eq!(
            file_line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Seconds"
        );
    }

    #[test]
    fn both_functions_report_the_calls_meta_failed_or_throttled() {
        let calls = graph::CallCounts {
            calls: 9,
            failed: 3,
            throttled: 2,
        };
        let sync = EventSummary {
            graph_calls: calls,
            ..EventSummary::default()
        };
        let poll = PollSummary {
            graph_calls: calls,
            ..PollSummary::default()
        };
        for metrics in [&sync.metrics()[..], &poll.metrics()[..]] {
            let line: Value = serde_json::from_str(&emf_line("f", 0, metrics)).unwrap();
            assert_eq!(line[GRAPH_CALLS_FAILED], 3);
            assert_eq!(line[GRAPH_CALLS_THROTTLED], 2);
        }
    }

    #[test]
    fn emitted_names_are_every_metric_of_each_function() {
        let [(sync, sync_names), (poll, poll_names)] = emitted_names();
        assert_eq!((sync, poll), ("sync-on-arrival", "poll-batch-status"));
        assert!(sync_names.contains(&"ProductsSent"));
        assert!(
            !sync_names.contains(&"ItemErrors"),
            "only the poller reads batch results"
        );
        assert!(poll_names.contains(&"ItemErrors"));
        assert!(poll_names.contains(&FILE_TO_VERDICT));
        assert!(poll_names.contains(&"PendingHandles"));
    }
}
