//! The compiled `poll-batch-status` binary under AWS's Runtime Interface Emulator
//! (`aws-lambda-rie`), against moto (S3, SNS -> SQS) and the Graph API emulator, configured
//! only through its environment.

use std::time::Duration;

use graph::{AccessToken, GraphClient, GraphSettings};
use graph_emulator::{DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, GraphEmulator};
use serde_json::{Value, json};
use sync::keys;
use sync::report::PendingRecord;
use testkit::{FunctionSettings, MotoServer, RieFunction, unique_name, workspace_root};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const BINARY: &str = env!("CARGO_BIN_EXE_poll-batch-status");

fn product(id: &str, availability: &str) -> Value {
    json!({"method": "UPDATE", "data": {
        "id": id, "title": "Mug", "description": "A mug", "availability": availability,
        "condition": "new", "price": "9.99 USD", "link": "https://shop.example/p",
        "image_link": "https://shop.example/p.jpg", "brand": "Mugs",
        "google_product_category": "Home"}})
}

/// The function's settings under the RIE (the metrics line names the function).
fn settings() -> FunctionSettings {
    FunctionSettings::named("poll-batch-status").timeout(Duration::from_secs(60))
}

fn env(pairs: &[(&str, &str)], moto: &MotoServer) -> Vec<(String, String)> {
    let mut env = moto.env_vars();
    env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_and_bare_events_return_the_run_summary() {
    let moto = MotoServer::shared();
    let emulator = GraphEmulator::start(EmulatorConfig {
        checks_until_finished: 0,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let synced = unique_name("synced");
    let landing = unique_name("landing");
    moto.create_bucket(&synced).await;
    moto.create_bucket(&landing).await;
    let topic = moto.create_topic(&unique_name("alerts")).await;
    let queue = moto.subscribe_queue_to_topic(&topic).await;

    // Two batches really sent to the emulator, one with an item error, recorded as pending.
    let client = GraphClient::new(
        GraphSettings {
            base_url: emulator.url(),
            ..GraphSettings::default()
        },
        AccessToken::new(DEFAULT_TOKEN),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let mut handles = Vec::new();
    for (n, products) in [
        vec![product("a1", "in stock")],
        vec![product("b1", "in stock"), product("b2", "maybe")],
    ]
    .into_iter()
    .enumerate()
    {
        let requests = serde_json::to_string(&products).unwrap();
        let handle = client
            .items_batch(DEFAULT_CATALOG_ID, &requests)
            .await
            .unwrap()
            .handles[0]
            .clone();
        let record = PendingRecord {
            catalog_id: DEFAULT_CATALOG_ID.to_owned(),
            handle: handle.clone(),
            source_bucket: landing.clone(),
            source_key: format!("data/file-{n}.csv"),
            run_id: format!("run-{n}"),
            batch_key: keys::synced_batch_key(now, &format!("run-{n}"), 1, None),
            report_key: keys::report_key(now, &format!("run-{n}")),
            item_count: products.len(),
            sent_at: now.format(&Rfc3339).unwrap(),
            lines: (0..products.len() as u64).map(|i| i + 2).collect(),
            stuck_alerted: false,
            landed_at: None,
        };
        moto.put_object(
            &synced,
            &keys::pending_key(&handle),
            serde_json::to_vec(&record).unwrap(),
        )
        .await;
        handles.push(handle);
    }

    let lambda = RieFunction::start(
        BINARY,
        &settings(),
        &env(
            &[
                ("CATALOG_ID", DEFAULT_CATALOG_ID),
                ("META_ACCESS_TOKEN", DEFAULT_TOKEN),
                ("GRAPH_API_BASE_URL", &emulator.url()),
                ("SYNCED_BUCKET", &synced),
                ("LANDING_BUCKET", &landing),
                ("ALERT_TOPIC_ARN", &topic),
            ],
            moto,
        ),
    );

    let scheduled: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/scheduled-poll.json")).unwrap(),
    )
    .unwrap();
    let first = lambda.invoke(scheduled).await.into_response();
    assert_eq!(first["pending_found"], 2, "{first}");
    assert_eq!(first["checked"], 2, "{first}");
    assert_eq!(first["finished"], 2, "{first}");
    assert_eq!(first["item_errors"], 1, "{first}");
    assert_eq!(first["alerts_sent"], 1, "{first}");
    assert_eq!(first["stopped_early"], Value::Null, "{first}");
    assert!(moto.list_keys(&synced, "pending/").await.is_empty());
    assert_eq!(moto.list_keys(&synced, "checked/").await.len(), 2);

    let alerts = moto
        .receive_sns_messages(&queue, 1, Duration::from_secs(20))
        .await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].attribute("kind"), Some("batch_errors"));
    let document: Value = serde_json::from_str(&alerts[0].message).unwrap();
    assert_eq!(document["samples"][0]["id"], "b2");
    assert_eq!(document["samples"][0]["line"], 3);
    assert_eq!(document["samples"][0]["file"], "data/file-1.csv");

    let second = lambda.invoke(json!({})).await.into_response();
    assert_eq!(second["pending_found"], 0, "{second}");
    assert_eq!(second["checked"], 0, "{second}");

    // One metrics line per invocation, in CloudWatch's embedded metric format.
    let logs = lambda.logs();
    let metrics: Vec<Value> = logs
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect();
    assert_eq!(metrics.len(), 2, "{logs:#?}");
    assert_eq!(metrics[0]["BatchesChecked"], 2);
    assert_eq!(metrics[0]["ItemErrors"], 1);
    assert_eq!(metrics[0]["ApiErrors"], 0);
    assert_eq!(metrics[0]["FunctionName"], "poll-batch-status");
    assert!(
        !logs.iter().any(|line| line.contains(DEFAULT_TOKEN)),
        "{logs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_variable_is_an_init_error_naming_it() {
    let moto = MotoServer::shared();
    let lambda = RieFunction::start(
        BINARY,
        &settings(),
        &env(
            &[
                ("CATALOG_ID", DEFAULT_CATALOG_ID),
                ("META_ACCESS_TOKEN", DEFAULT_TOKEN),
                ("GRAPH_API_BASE_URL", "http://127.0.0.1:9"),
                ("LANDING_BUCKET", "landing"),
                (
                    "ALERT_TOPIC_ARN",
                    "arn:aws:sns:us-east-1:123456789012:alerts",
                ),
            ],
            moto,
        ),
    );
    let out = lambda.invoke(json!({})).await;
    // The RIE answers an init failure reported to /init/error with 502 and the posted document
    // (the `Runtime.ConfigError` header type is not surfaced: the error type is the document's).
    assert_eq!(out.status, 502, "reported to /init/error: {out:?}");
    let (kind, body) = out.into_error();
    assert_eq!(kind, "ConfigError", "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("configuration: SYNCED_BUCKET: not set"),
        "{body}"
    );
    assert_eq!(body["errorType"], "ConfigError");
    assert_eq!(
        body.as_object().map(|fields| fields.len()),
        Some(2),
        "exactly the posted document: {body}"
    );
    // The process stops, which the RIE reports.
    assert!(
        lambda.wait_for_log("exited: exit status", Duration::from_secs(60)),
        "{:#?}",
        lambda.logs()
    );
    assert!(
        !lambda.logs().iter().any(|l| l.contains(DEFAULT_TOKEN)),
        "{:#?}",
        lambda.logs()
    );
}
