//! The "process one landed file" use case against a real S3 API (moto server) and the Graph
//! API emulator over HTTP. S3 events come from the bucket's own notification to SQS, so the
//! handler sees what S3 produces, not a hand-written event.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::s3::S3Event;
use graph::{AccessToken, GraphSettings, RetryPolicy};
use graph_emulator::{DEFAULT_CATALOG_ID, EmulatorConfig, Fault, GraphEmulator, RunningEmulator};
use sync::adapters::aws::{S3Store, SnsAlerts};
use sync::alert::AlertKind;
use sync::event::handle_s3_event;
use sync::graph_api::{GraphCatalog, StaticToken};
use sync::keys::Layout;
use sync::ports::SystemClock;
use sync::process::{FileProcessor, Services, Settings};
use testkit::{MotoServer, SnsEnvelope, complete_s3_event, unique_name, workspace_root};

/// A token distinctive enough that finding it anywhere is a leak.
const TOKEN: &str = "EAAB-leak-canary-7f3a9c1e5d2b-secret";

struct Harness {
    moto: &'static MotoServer,
    emulator: RunningEmulator,
    landing: String,
    synced: String,
    events_queue: String,
    alerts_queue: String,
    processor: FileProcessor,
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_throttle_wait: Duration::from_secs(1),
    }
}

async fn harness(batch_size: usize) -> Harness {
    let moto = MotoServer::shared();
    let landing = unique_name("landing");
    let synced = unique_name("synced");
    moto.create_bucket(&landing).await;
    moto.create_bucket(&synced).await;
    let events_queue = moto.notify_bucket_to_queue(&landing, "data/", ".csv").await;
    let topic = moto.create_topic(&unique_name("alerts")).await;
    let alerts_queue = moto.subscribe_queue_to_topic(&topic).await;
    let emulator = GraphEmulator::start(EmulatorConfig {
        tokens: vec![TOKEN.to_owned()],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let settings = GraphSettings {
        base_url: emulator.url(),
        ..GraphSettings::default()
    };
    let catalog = GraphCatalog::connect(
        settings,
        DEFAULT_CATALOG_ID,
        retry(),
        Arc::new(StaticToken(AccessToken::new(TOKEN))),
    )
    .await
    .expect("catalog");
    let services = Services {
        store: Arc::new(S3Store::new(moto.s3_client())),
        catalog: Arc::new(catalog),
        alerts: Arc::new(SnsAlerts::new(moto.sns_client(), topic)),
        clock: Arc::new(SystemClock),
        continuations: Arc::new(sync::progress::NoQueue),
    };
    let layout = Layout {
        landing_bucket: landing.clone(),
        synced_bucket: synced.clone(),
        ..Layout::default()
    };
    let settings = Settings {
        layout,
        batch_limits: catalog::BatchLimits::new(batch_size).expect("batch size"),
        mapping: catalog::ProductTypeMapping::default(),
        column_mapping: catalog::ColumnMapping::default(),
        reader_limits: catalog::ReaderLimits::default(),
        min_send_window: sync::process::DEFAULT_MIN_SEND_WINDOW,
        changes: sync::config::ChangeSettings::default(),
    };
    Harness {
        moto,
        emulator,
        landing,
        synced,
        events_queue,
        alerts_queue,
        processor: FileProcessor::new(services, settings),
    }
}

impl Harness {
    /// Uploads a file and returns the S3 event its notification produced.
    async fn land(&self, key: &str, bytes: impl Into<Vec<u8>>) -> S3Event {
        self.moto.put_object(&self.landing, key, bytes).await;
        let bodies = self
            .moto
            .receive_s3_events_at_least(&self.events_queue, 1, Duration::from_secs(20))
            .await;
        assert_eq!(bodies.len(), 1, "one notification per upload: {bodies:?}");
        serde_json::from_value(complete_s3_event(&bodies[0])).expect("an S3Event")
    }

    async fn run(
        &self,
        event: &S3Event,
    ) -> Result<sync::event::EventSummary, sync::event::EventError> {
        handle_s3_event(&self.processor, event, None).await
    }

    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.moto.list_keys(bucket, prefix).await
    }

    async fn json(&self, bucket: &str, key: &str) -> serde_json::Value {
        let bytes = self
            .moto
            .get_object(bucket, key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        serde_json::from_slice(&bytes).expect("json")
    }

    async fn alerts(&self, expected: usize) -> Vec<SnsEnvelope> {
        let wait = if expected == 0 {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(20)
        };
        self.moto
            .receive_sns_messages(&self.alerts_queue, expected, wait)
            .await
    }
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("events/products").join(name)).expect("sample file")
}

fn generated(rows: u64) -> Vec<u8> {
    let mut csv = Vec::new();
    catalog::synthetic::write_products(&mut csv, rows, 3).expect("generate");
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_file_is_sent_recorded_and_archived() {
    let h = harness(3000).await;
    let event = h.land("data/sample.csv", sample("sample.csv")).await;
    let summary = h.run(&event).await.expect("processed");
    assert_eq!(summary.archived, ["data/sample.csv"]);
    assert_eq!(summary.counts.sent, 5);

    assert!(h.keys(&h.landing, "data/").await.is_empty());
    assert_eq!(h.keys(&h.landing, "archive/").await, ["archive/sample.csv"]);
    let synced = h.keys(&h.synced, "synced/").await;
    assert_eq!(synced.len(), 1);
    assert!(synced[0].ends_with("/batch-0001.json"), "{synced:?}");
    let body = h.json(&h.synced, &synced[0]).await;
    assert_eq!(body["item_type"], "PRODUCT_ITEM");
    assert_eq!(body["requests"].as_array().unwrap().len(), 5);

    let pending = h.keys(&h.synced, "pending/").await;
    assert_eq!(pending.len(), 1);
    let record = h.json(&h.synced, &pending[0]).await;
    assert_eq!(record["source_key"], "data/sample.csv");
    assert_eq!(record["catalog_id"], DEFAULT_CATALOG_ID);
    assert_eq!(record["item_count"], 5);
    assert_eq!(record["lines"], serde_json::json!([2, 3, 4, 5, 6]));
    assert_eq!(record["batch_key"], synced[0]);

    let reports = h.keys(&h.synced, "reports/").await;
    assert_eq!(reports.len(), 1);
    let report = h.json(&h.synced, &reports[0]).await;
    assert_eq!(report["status"], "archived");
    assert_eq!(report["counts"]["rows_read"], 5);
    assert_eq!(report["counts"]["sent"], 5);
    assert_eq!(report["rows"], serde_json::json!([]));

    assert_eq!(h.emulator.items(DEFAULT_CATALOG_ID).len(), 5);
    assert!(h.alerts(0).await.is_empty(), "no alert for a clean file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_are_reported_and_alerted_once_and_the_rest_is_sent() {
    let h = harness(3000).await;
    let event = h
        .land("data/outdoor.csv", sample("outdoor-with-problems.csv"))
        .await;
    let summary = h.run(&event).await.expect("processed");
    assert_eq!(summary.archived, ["data/outdoor.csv"]);
    assert_eq!(summary.counts.rejected, 5);
    assert_eq!(summary.counts.superseded, 1);
    assert_eq!(summary.counts.sent, 3);

    let items = h.emulator.items(DEFAULT_CATALOG_ID);
    assert_eq!(items.len(), 3);
    assert_eq!(
        items["OD-105"]["price"], "42.00 USD",
        "the later duplicate wins"
    );

    let report_key = &h.keys(&h.synced, "reports/").await[0];
    let report = h.json(&h.synced, report_key).await;
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "5 rejected + 1 superseded");
    let stove = rows.iter().find(|r| r["id"] == "OD-101").unwrap();
    assert_eq!(stove["line"], 4);
    assert_eq!(stove["problems"][0]["code"], "bad_price");

    let alerts = h.alerts(1).await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.attribute("kind"), Some("rows_rejected"));
    assert_eq!(alert.attribute("severity"), Some("warning"));
    let subject = alert.subject.as_deref().unwrap();
    assert!(
        subject.starts_with("catalog-sync: 5 of 9 rows rejected in data/outdoor.csv"),
        "{subject}"
    );
    assert!(subject.len() <= 100);
    // An SQS subscriber gets the JSON form of the alert (the email text goes to email only).
    let doc: serde_json::Value = serde_json::from_str(&alert.message).expect("JSON form for SQS");
    assert_eq!(doc["kind"], "rows_rejected");
    let first = &doc["samples"][0];
    assert_eq!(
        (first["line"].as_u64(), first["id"].as_str()),
        (Some(4), Some("OD-101"))
    );
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("price \"$45.00\"")
    );
    assert_eq!(doc["keys"][0], format!("s3://{}/{report_key}", h.synced));
    assert!(h.alerts(0).await.is_empty(), "exactly one alert per file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_file_moves_to_rejected_with_its_report_and_an_error_alert() {
    let h = harness(3000).await;
    let event = h.land("data/broken.csv", "id,title\nA,Mug\n").await;
    let summary = h
        .run(&event)
        .await
        .expect("a rejected file is not a function error");
    assert_eq!(summary.rejected, ["data/broken.csv"]);
    assert!(h.keys(&h.landing, "data/").await.is_empty());
    let rejected = h.keys(&h.landing, "rejected/").await;
    assert_eq!(
        rejected,
        ["rejected/broken.csv", "rejected/broken.csv.report.json"]
    );
    let report = h.json(&h.landing, "rejected/broken.csv.report.json").await;
    assert_eq!(report["status"], "rejected");
    assert_eq!(report["failure"]["code"], "missing_columns");
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("missing required column(s) description")
    );
    assert!(
        h.emulator.requests().is_empty(),
        "nothing is sent from an unusable file"
    );

    let alerts = h.alerts(1).await;
    assert_eq!(alerts[0].attribute("kind"), Some("file_rejected"));
    assert_eq!(alerts[0].attribute("severity"), Some("error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12000_row_file_goes_in_several_batches_each_recorded() {
    let h = harness(3000).await;
    let event = h.land("data/big.csv", generated(12_000)).await;
    let summary = h.run(&event).await.expect("processed");
    assert_eq!(summary.batches, 4);
    assert_eq!(summary.counts.sent, 12_000);
    assert_eq!(h.keys(&h.synced, "pending/").await.len(), 4);
    let synced = h.keys(&h.synced, "synced/").await;
    assert_eq!(synced.len(), 4);
    assert!(synced[3].ends_with("batch-0004.json"));
    assert_eq!(h.emulator.items(DEFAULT_CATALOG_ID).len(), 12_000);
    let record = h
        .json(&h.synced, &h.keys(&h.synced, "pending/").await[0])
        .await;
    assert_eq!(record["lines"].as_array().unwrap().len(), 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_twice_changes_nothing_the_second_time() {
    let h = harness(3000).await;
    let event = h.land("data/sample.csv", sample("sample.csv")).await;
    h.run(&event).await.expect("first delivery");
    let calls = h.emulator.requests().len();
    let objects = (h.keys(&h.synced, "").await, h.keys(&h.landing, "").await);

    let summary = h
        .run(&event)
        .await
        .expect("second delivery is not an error");
    assert_eq!(summary.ignored, ["data/sample.csv"]);
    assert!(summary.archived.is_empty());
    assert_eq!(h.emulator.requests().len(), calls, "nothing sent again");
    assert_eq!(
        (h.keys(&h.synced, "").await, h.keys(&h.landing, "").await),
        objects
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_spaces_and_plus_signs_are_decoded() {
    let h = harness(3000).await;
    let key = "data/summer sale+2026 (final).csv";
    let event = h.land(key, sample("sample.csv")).await;
    let raw = event.records[0].s3.object.key.clone().unwrap();
    assert_ne!(raw, key, "S3 encodes the key in the event");
    let summary = h.run(&event).await.expect("processed");
    assert_eq!(summary.archived, [key]);
    assert_eq!(
        h.keys(&h.landing, "archive/").await,
        ["archive/summer sale+2026 (final).csv"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_outside_the_landing_prefix_or_not_csv_are_ignored() {
    let h = harness(3000).await;
    // Events are hand-built here because the bucket notification filters these keys out.
    for key in ["data/notes.txt", "elsewhere/a.csv"] {
        h.moto.put_object(&h.landing, key, "x").await;
        let mut event = h.land("data/sample.csv", sample("sample.csv")).await;
        event.records[0].s3.object.key = Some(key.to_owned());
        let summary = h.run(&event).await.expect("ignored, not an error");
        assert_eq!(summary.ignored, [key]);
        h.moto
            .s3_client()
            .delete_object()
            .bucket(&h.landing)
            .key("data/sample.csv")
            .send()
            .await
            .unwrap();
    }
    assert!(h.emulator.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_several_records_handles_each() {
    let h = harness(3000).await;
    let first = h.land("data/a.csv", sample("sample.csv")).await;
    let second = h.land("data/b.csv", sample("home-goods-clean.csv")).await;
    let mut event = first.clone();
    event.records.extend(second.records);
    let summary = h.run(&event).await.expect("processed");
    assert_eq!(summary.archived, ["data/a.csv", "data/b.csv"]);
    assert_eq!(summary.counts.sent, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_part_way_keeps_what_was_sent_and_leaves_the_file_in_place() {
    let h = harness(3000).await;
    // The first items_batch call goes through; the second finds the token expired.
    h.emulator
        .push_fault(Fault::Slow(Duration::ZERO).on(graph_emulator::Endpoint::ItemsBatch));
    h.emulator
        .push_fault(Fault::TokenExpired.on(graph_emulator::Endpoint::ItemsBatch));
    let event = h.land("data/big.csv", generated(12_000)).await;
    let error = h
        .run(&event)
        .await
        .expect_err("a token failure is a function error");
    assert_eq!(error.summary.failed, ["data/big.csv"]);
    let message = error.to_string();
    assert!(message.contains("after 1 batch(es)"), "{message}");
    assert!(!message.contains(TOKEN));

    assert_eq!(
        h.keys(&h.landing, "data/").await,
        ["data/big.csv"],
        "the file stays for a retry"
    );
    assert!(h.keys(&h.landing, "archive/").await.is_empty());
    assert_eq!(
        h.keys(&h.synced, "pending/").await.len(),
        1,
        "the accepted batch is still tracked"
    );
    let report = h
        .json(&h.synced, &h.keys(&h.synced, "reports/").await[0])
        .await;
    assert_eq!(report["status"], "send_failed");
    assert_eq!(report["batches"].as_array().unwrap().len(), 1);

    let alerts = h.alerts(1).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].attribute("kind"),
        Some(AlertKind::TokenInvalid.as_str())
    );
    assert!(
        alerts[0].message.contains("catalog_management"),
        "says what to do"
    );
    assert!(
        alerts[0]
            .subject
            .as_deref()
            .unwrap()
            .starts_with("catalog-sync: Meta access token refused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_appears_in_no_object_report_or_alert() {
    let h = harness(2).await;
    for (key, bytes) in [
        ("data/clean.csv", sample("sample.csv")),
        ("data/problems.csv", sample("outdoor-with-problems.csv")),
        ("data/broken.csv", b"nope\n".to_vec()),
    ] {
        let event = h.land(key, bytes).await;
        let _ = h.run(&event).await;
    }
    h.emulator
        .push_fault(Fault::TokenExpired.on(graph_emulator::Endpoint::ItemsBatch));
    // Products not sent before: change detection would skip the clean file's again.
    let event = h.land("data/later.csv", sample("spring-apparel.csv")).await;
    let _ = h.run(&event).await;

    for bucket in [&h.landing, &h.synced] {
        for key in h.keys(bucket, "").await {
            let bytes = h.moto.get_object(bucket, &key).await.unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(TOKEN),
                "token in s3://{bucket}/{key}"
            );
        }
    }
    let alerts = h.alerts(4).await;
    assert!(alerts.len() >= 3, "{} alerts", alerts.len());
    for alert in alerts {
        assert!(!alert.raw.to_string().contains(TOKEN));
    }
    for request in h.emulator.requests() {
        assert!(
            !format!("{request:?}").contains(TOKEN),
            "the emulator redacts, and the URL never has it"
        );
    }
}
