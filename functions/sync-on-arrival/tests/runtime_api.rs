//! The compiled `sync-on-arrival` binary, driven over the Lambda Runtime API against moto and
//! the Graph API emulator: the same bytes Lambda runs, answering the same protocol.

use std::time::Duration;

use aws_lambda_events::event::s3::S3Event;
use graph_emulator::{DEFAULT_CATALOG_ID, EmulatorConfig, GraphEmulator, RunningEmulator};
use serde_json::Value;
use testkit::{LambdaProcess, MotoServer, Outcome, RuntimeApi, unique_name, workspace_root};

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

fn spawn(stack: &Stack, api: &RuntimeApi) -> LambdaProcess {
    LambdaProcess::spawn(env!("CARGO_BIN_EXE_sync-on-arrival"), api, &stack.env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_processes_the_sample_event_and_a_redelivery_is_a_no_op() {
    let stack = stack().await;
    let (event, key) = sample_event(&stack.landing);
    assert_eq!(key, "data/exports/products 2025-01-15T10:00Z.csv");
    let csv =
        std::fs::read(workspace_root().join("events/products/outdoor-with-problems.csv")).unwrap();
    stack.moto.put_object(&stack.landing, &key, csv).await;

    let api = RuntimeApi::start();
    let process = spawn(&stack, &api);
    let first = api.invoke(event.clone(), Duration::from_secs(120)).await;
    let Outcome::Response(summary) = &first.outcome else {
        panic!(
            "invocation failed: {:?}\n{}",
            first.outcome,
            process.logs().join("\n")
        );
    };
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
    let second = api.invoke(event, Duration::from_secs(60)).await;
    let Outcome::Response(summary) = &second.outcome else {
        panic!("redelivery failed: {:?}", second.outcome);
    };
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

    let api = RuntimeApi::start();
    let process = spawn(&stack, &api);
    let invocation = api.invoke(event, Duration::from_secs(60)).await;
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
    let api = RuntimeApi::start();
    let process = spawn(&stack, &api);
    let status = process.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "the process stops");
    let logs = process.logs().join("\n");
    assert!(
        logs.contains("configuration: SYNCED_BUCKET: not set"),
        "{logs}"
    );
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

    let api = RuntimeApi::start();
    let process = spawn(&stack, &api);
    let invocation = api.invoke(event, Duration::from_secs(120)).await;
    let Outcome::Response(summary) = &invocation.outcome else {
        panic!(
            "invocation failed: {:?}\n{}",
            invocation.outcome,
            process.logs().join("\n")
        );
    };
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
