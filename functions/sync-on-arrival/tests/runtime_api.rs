//! The compiled `sync-on-arrival` binary under AWS's Runtime Interface Emulator
//! (`aws-lambda-rie`), against moto and the Graph API emulator: the same bytes Lambda runs,
//! behind the Runtime API AWS ships.

use std::time::Duration;

use aws_lambda_events::event::s3::S3Event;
use graph_emulator::{DEFAULT_CATALOG_ID, EmulatorConfig, GraphEmulator, RunningEmulator};
use serde_json::Value;
use testkit::{
    FunctionSettings, Invocation, MotoServer, Outcome, RieFunction, unique_name, workspace_root,
};

const TOKEN: &str = "EAAB-runtime-canary-19c4e2-secret";

struct Stack {
    moto: &'static MotoServer,
    emulator: RunningEmulator,
    landing: String,
    synced: String,
    alerts_queue: String,
    env: Vec<(String, String)>,
}

async fn stack() -> Stack {
    let moto = MotoServer::shared();
    let landing = unique_name("landing");
    let synced = unique_name("synced");
    moto.create_bucket(&landing).await;
    moto.create_bucket(&synced).await;
    let topic = moto.create_topic(&unique_name("alerts")).await;
    let alerts_queue = moto.subscribe_queue_to_topic(&topic).await;
    let emulator = GraphEmulator::start(EmulatorConfig {
        tokens: vec![TOKEN.to_owned()],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let mut env = moto.env_vars();
    for (name, value) in [
        ("CATALOG_ID", DEFAULT_CATALOG_ID.to_owned()),
        ("META_ACCESS_TOKEN", TOKEN.to_owned()),
        ("GRAPH_API_BASE_URL", emulator.url()),
        ("SYNCED_BUCKET", synced.clone()),
        ("LANDING_BUCKET", landing.clone()),
        ("ALERT_TOPIC_ARN", topic),
        ("RUST_LOG", "info".to_owned()),
    ] {
        env.push((name.to_owned(), value));
    }
    Stack {
        moto,
        emulator,
        landing,
        synced,
        alerts_queue,
        env,
    }
}

/// `events/s3-object-created.json`, pointed at the test's landing bucket.
fn sample_event(landing: &str) -> (Value, String) {
    let text = std::fs::read_to_string(workspace_root().join("events/s3-object-created.json"))
        .expect("sample event");
    let mut event: Value = serde_json::from_str(&text).expect("json");
    let record = &mut event["Records"][0]["s3"];
    record["bucket"]["name"] = Value::from(landing);
    record["bucket"]["arn"] = Value::from(format!("arn:aws:s3:::{landing}"));
    let raw_key = record["object"]["key"].as_str().expect("key").to_owned();
    let key = sync::keys::decode_event_key(&raw_key).expect("decodable");
    (event, key)
}

/// The invocation's response; panics with its error otherwise (the function's output is
/// printed when its RieFunction is dropped during the panic).
fn response(invocation: &Invocation) -> &Value {
    match &invocation.outcome {
        Outcome::Response(summary) => summary,
        error => panic!("invocation {} failed: {error:?}", invocation.request_id),
    }
}

/// The function under the RIE with `timeout` (AWS_LAMBDA_FUNCTION_TIMEOUT).
fn start(stack: &Stack, timeout: Duration) -> RieFunction {
    RieFunction::start(
        env!("CARGO_BIN_EXE_sync-on-arrival"),
        &FunctionSettings::named("sync-on-arrival").timeout(timeout),
        &stack.env,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_processes_the_sample_event_and_a_redelivery_is_a_no_op() {
    let stack = stack().await;
    let (event, key) = sample_event(&stack.landing);
    assert_eq!(key, "data/exports/products 2025-01-15T10:00Z.csv");
    let csv =
        std::fs::read(workspace_root().join("events/products/outdoor-with-problems.csv")).unwrap();
    stack.moto.put_object(&stack.landing, &key, csv).await;

    let process = start(&stack, Duration::from_secs(120));
    let first = process.invoke(event.clone()).await;
    let summary = response(&first);
    assert_eq!(summary["archived"], serde_json::json!([key]));
    assert_eq!(summary["counts"]["sent"], 3);
    assert_eq!(summary["counts"]["rejected"], 5);
    assert_eq!(stack.emulator.items(DEFAULT_CATALOG_ID).len(), 3);
    assert_eq!(
        stack.moto.list_keys(&stack.landing, "archive/").await,
        ["archive/exports/products 2025-01-15T10:00Z.csv"]
    );
    assert_eq!(
        stack.moto.list_keys(&stack.synced, "pending/").await.len(),
        1
    );

    // At-least-once delivery: the same event again changes nothing and is not an error.
    let second = process.invoke(event).await;
    let summary = response(&second);
    assert_eq!(summary["ignored"], serde_json::json!([key]));
    assert_eq!(
        stack.moto.list_keys(&stack.synced, "pending/").await.len(),
        1
    );

    let alerts = stack
        .moto
        .receive_sns_messages(&stack.alerts_queue, 1, Duration::from_secs(20))
        .await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].attribute("kind"), Some("rows_rejected"));

    let logs = process.logs();
    let json_lines: Vec<Value> = logs
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        json_lines
            .iter()
            .any(
                |line| line["span"]["request_id"].as_str() == Some(first.request_id.as_str())
                    && line["fields"]["key"].as_str() == Some(key.as_str())
            ),
        "JSON log lines carry the request id and the file key:\n{}",
        logs.join("\n")
    );
    let metrics = json_lines
        .iter()
        .find(|line| line.get("_aws").is_some())
        .expect("an embedded-metric-format line");
    assert_eq!(metrics["ProductsSent"], 3);
    assert_eq!(metrics["ProductsRejected"], 5);
    assert_eq!(metrics["BatchesSent"], 1);
    assert_eq!(metrics["ProductsDeleted"], 0);
    for line in &logs {
        assert!(!line.contains(TOKEN), "token in a log line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_invocation_so_lambda_retries_it() {
    let stack = stack().await;
    let (event, key) = sample_event(&stack.landing);
    let csv = std::fs::read(workspace_root().join("events/products/sample.csv")).unwrap();
    stack.moto.put_object(&stack.landing, &key, csv).await;
    stack.emulator.revoke_token(TOKEN);

    let process = start(&stack, Duration::from_secs(60));
    let invocation = process.invoke(event).await;
    let Outcome::Error { body, .. } = &invocation.outcome else {
        panic!("expected an error, got {:?}", invocation.outcome);
    };
    let message = body.to_string();
    assert!(message.contains("access token"), "{message}");
    assert!(!message.contains(TOKEN));
    assert_eq!(
        stack.moto.list_keys(&stack.landing, "data/").await,
        [key],
        "the file stays for the retry"
    );
    let alerts = stack
        .moto
        .receive_sns_messages(&stack.alerts_queue, 1, Duration::from_secs(20))
        .await;
    assert_eq!(alerts[0].attribute("kind"), Some("token_invalid"));
    for line in process.logs() {
        assert!(!line.contains(TOKEN), "token in a log line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_one_init_error_naming_the_variable() {
    let mut stack = stack().await;
    stack.env.retain(|(name, _)| name != "SYNCED_BUCKET");
    let process = start(&stack, Duration::from_secs(60));
    // The RIE starts the function on the first invoke, which then fails with the init error.
    let (landing_event, _) = sample_event(&stack.landing);
    let invocation = process.invoke(landing_event).await;
    assert_eq!(
        invocation.status, 502,
        "an init failure, not a function error"
    );
    let (kind, body) = invocation.into_error();
    // The RIE answers with the document posted to /init/error; main.rs chooses its errorType.
    assert_eq!(body["errorType"].as_str(), Some(kind.as_str()));
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("configuration: SYNCED_BUCKET: not set"),
        "{body}"
    );
    // The process stops with a failure status, which the RIE reports.
    assert!(
        process.wait_for_log("exited: exit status", Duration::from_secs(60)),
        "the process stops: {:#?}",
        process.logs()
    );
    let logs = process.logs().join("\n");
    assert!(
        logs.contains("configuration: SYNCED_BUCKET: not set"),
        "{logs}"
    );
}

/// A column mapping with a bad entry stops the function at start-up, as any bad variable
/// does: one init error of type ConfigError naming the entry (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_column_mapping_is_a_config_error_naming_the_entry() {
    let mut stack = stack().await;
    stack.env.push((
        "COLUMN_MAPPING".to_owned(),
        "sale_price=SalePrice; saleprise=Sale".to_owned(),
    ));
    let process = start(&stack, Duration::from_secs(60));
    let (landing_event, _) = sample_event(&stack.landing);
    let invocation = process.invoke(landing_event).await;
    assert_eq!(invocation.status, 502, "an init failure");
    let (kind, body) = invocation.into_error();
    assert_eq!(body["errorType"].as_str(), Some(kind.as_str()));
    assert_eq!(body["errorType"], "ConfigError");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message
            .starts_with("configuration: COLUMN_MAPPING: column mapping entry \"saleprise=Sale\""),
        "{body}"
    );
    assert!(message.contains("did you mean sale_price?"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_continues_a_file_named_by_a_message_of_its_queue() {
    let stack = stack().await;
    let text = std::fs::read_to_string(workspace_root().join("events/sqs-continuation.json"))
        .expect("sample event");
    let mut event: Value = serde_json::from_str(&text).expect("json");
    let mut body: Value =
        serde_json::from_str(event["Records"][0]["body"].as_str().expect("body")).expect("json");
    body["bucket"] = Value::from(stack.landing.as_str());
    let key = body["key"].as_str().expect("key").to_owned();
    event["Records"][0]["body"] = Value::from(body.to_string());
    let csv = std::fs::read(workspace_root().join("events/products/sample.csv")).unwrap();
    stack.moto.put_object(&stack.landing, &key, csv).await;

    let process = start(&stack, Duration::from_secs(120));
    let invocation = process.invoke(event).await;
    let summary = response(&invocation);
    assert_eq!(summary["archived"], serde_json::json!([key]));
    assert_eq!(stack.emulator.items(DEFAULT_CATALOG_ID).len(), 5);
    assert!(
        stack
            .moto
            .list_keys(&stack.synced, "progress/")
            .await
            .is_empty()
    );
}

/// The RIE's function timeout drives the deadline: with 12 s, the function's own deadline
/// (the timeout less a quarter) leaves less than the 10 s a batch call needs, so the function
/// checkpoints before sending and queues a continuation, whatever the machine's speed. The
/// queued message then finishes the file in a function with a long timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_function_timeout_checkpoints_and_queues_a_continuation() {
    let mut stack = stack().await;
    let queue = stack.moto.create_queue(&unique_name("continue")).await;
    stack
        .env
        .push(("CONTINUE_QUEUE_URL".to_owned(), queue.clone()));
    let (event, key) = sample_event(&stack.landing);
    let csv = std::fs::read(workspace_root().join("events/products/sample.csv")).unwrap();
    stack.moto.put_object(&stack.landing, &key, csv).await;

    let short = start(&stack, Duration::from_secs(12));
    // A first event the function refuses at once, so the cold start's init (which the RIE counts
    // against the timeout) is over before the file's invocation.
    assert!(short.invoke(serde_json::json!({})).await.is_error());
    let invocation = short.invoke(event).await;
    let summary = response(&invocation);
    assert_eq!(summary["deferred"], serde_json::json!([key]), "{summary}");
    assert_eq!(summary["batches"], 0, "{summary}");
    assert!(stack.emulator.items(DEFAULT_CATALOG_ID).is_empty());
    assert_eq!(
        stack.moto.list_keys(&stack.landing, "data/").await,
        std::slice::from_ref(&key),
        "the file stays for the continuation"
    );
    assert_eq!(
        stack.moto.list_keys(&stack.synced, "progress/").await.len(),
        1,
        "a checkpoint"
    );
    drop(short);

    // The continuation is on the queue: long polling returns as soon as it is there.
    let received = stack
        .moto
        .sqs_client()
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .wait_time_seconds(20)
        .send()
        .await
        .expect("receive from the continuation queue");
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    let body: Value = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["key"], key.as_str());
    assert_eq!(body["bucket"], stack.landing.as_str());
    assert_eq!(body["reason"], "deadline");

    // Delivered as Lambda's SQS event source would, to a function with time enough.
    let sqs_event = serde_json::json!({"Records": [{
        "messageId": message.message_id.clone().unwrap_or_default(),
        "receiptHandle": message.receipt_handle.clone().unwrap_or_default(),
        "body": message.body.clone().unwrap_or_default(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1736935200000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1736935200100"},
        "messageAttributes": {},
        "md5OfBody": message.md5_of_body.clone().unwrap_or_default(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:continue",
        "awsRegion": "us-east-1"
    }]});
    let long = start(&stack, Duration::from_secs(120));
    let finished = long.invoke(sqs_event).await;
    let summary = response(&finished);
    assert_eq!(summary["archived"], serde_json::json!([key]), "{summary}");
    assert_eq!(stack.emulator.items(DEFAULT_CATALOG_ID).len(), 5);
    assert!(
        stack
            .moto
            .list_keys(&stack.synced, "progress/")
            .await
            .is_empty()
    );
}

#[test]
fn the_sample_events_parse_with_the_types_the_functions_use() {
    let text =
        std::fs::read_to_string(workspace_root().join("events/s3-object-created.json")).unwrap();
    let event: S3Event =
        serde_json::from_str(&text).expect("events/s3-object-created.json is an S3Event");
    let record = &event.records[0];
    assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Put"));
    let key = sync::keys::decode_event_key(record.s3.object.key.as_deref().unwrap()).unwrap();
    assert!(
        key.starts_with("data/") && key.ends_with(".csv") && key.contains(' '),
        "{key}"
    );

    let text =
        std::fs::read_to_string(workspace_root().join("events/scheduled-poll.json")).unwrap();
    let event: aws_lambda_events::event::eventbridge::EventBridgeEvent =
        serde_json::from_str(&text).expect("events/scheduled-poll.json is an EventBridge event");
    assert_eq!(event.detail_type, "Scheduled Event");

    let text =
        std::fs::read_to_string(workspace_root().join("events/sqs-continuation.json")).unwrap();
    let payload: Value = serde_json::from_str(&text).unwrap();
    match sync::event::Invocation::from_json(payload).expect("recognised") {
        sync::event::Invocation::Continue(continuations) => {
            assert_eq!(continuations.len(), 1);
            assert!(continuations[0].key.starts_with("data/"));
        }
        other => panic!("events/sqs-continuation.json is a continuation, not {other:?}"),
    }
}

/// An S3 event for `key` in `landing`, from the sample event.
fn event_for(landing: &str, key: &str) -> Value {
    let (mut event, _) = sample_event(landing);
    event["Records"][0]["s3"]["object"]["key"] = Value::from(key);
    event
}

/// Change detection across both compiled functions (issue 16): the sync function remembers
/// what Meta took, the poll function's verdicts are folded in by the next sync, a file landed
/// twice sends nothing the second time, and a full snapshot deletes exactly what it lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_binaries_send_only_what_changed_and_a_snapshot_deletes_what_it_lacks() {
    let stack = stack().await;
    let csv = std::fs::read(workspace_root().join("events/products/home-goods-clean.csv"))
        .expect("sample");
    let text = String::from_utf8(csv.clone()).expect("utf-8");
    let rows: Vec<&str> = text.lines().collect();
    let ids: Vec<&str> = rows[1..]
        .iter()
        .map(|row| row.split(',').next().expect("id"))
        .collect();
    let key = "data/full/catalog.csv";
    let sync = start(&stack, Duration::from_secs(120));
    let poll = RieFunction::start(
        testkit::cargo_bin("poll-batch-status"),
        &FunctionSettings::named("poll-batch-status").timeout(Duration::from_secs(120)),
        &stack.env,
    );
    let poll_event: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/scheduled-poll.json"))
            .expect("poll event"),
    )
    .expect("json");

    stack
        .moto
        .put_object(&stack.landing, key, csv.clone())
        .await;
    let first = response(&sync.invoke(event_for(&stack.landing, key)).await).clone();
    assert_eq!(first["counts"]["sent"], ids.len());
    // The emulator finishes a batch on its second check.
    for _ in 0..2 {
        response(&poll.invoke(poll_event.clone()).await);
    }
    assert!(
        stack
            .moto
            .list_keys(&stack.synced, "pending/")
            .await
            .is_empty()
    );
    assert_eq!(
        stack.moto.list_keys(&stack.synced, "state/").await.len(),
        2,
        "the state and the poller's verdict note"
    );

    // The same snapshot again: nothing is sent.
    let calls_before = stack.emulator.requests().len();
    stack.moto.put_object(&stack.landing, key, csv).await;
    let second = response(&sync.invoke(event_for(&stack.landing, key)).await).clone();
    assert_eq!(second["counts"]["sent"], 0);
    assert_eq!(second["counts"]["unchanged"], ids.len());
    assert_eq!(
        stack.emulator.requests().len(),
        calls_before,
        "no call at all"
    );

    // Without its last product: exactly that one is deleted (the sample holds ten or more, so
    // one is within the 10% the guard allows).
    assert!(ids.len() >= 10, "the sample is large enough for the guard");
    let last = ids[ids.len() - 1];
    let without_last = format!("{}\n", rows[..rows.len() - 1].join("\n"));
    stack
        .moto
        .put_object(&stack.landing, key, without_last.into_bytes())
        .await;
    let third = response(&sync.invoke(event_for(&stack.landing, key)).await).clone();
    assert_eq!(third["counts"]["deleted"], 1, "{third}");
    assert_eq!(third["counts"]["unchanged"], ids.len() - 1);
    let items = stack.emulator.items(DEFAULT_CATALOG_ID);
    assert_eq!(items.len(), ids.len() - 1);
    assert!(!items.contains_key(last));
    let metrics: Vec<Value> = sync
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect();
    assert!(
        metrics
            .iter()
            .any(|m| m["ProductsDeleted"] == 1 && m["ProductsUnchanged"] == ids.len() - 1),
        "{metrics:?}"
    );
}
