//! MotoServer against a real moto server: the behaviours the other crates' tests rely on.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_lambda_events::event::s3::S3Event;
use aws_sdk_sns::types::MessageAttributeValue;
use serde_json::Value;
use testkit::{MotoServer, complete_s3_event, unique_name};

#[tokio::test]
async fn s3_helpers_round_trip_objects_and_list_keys() {
    let moto = MotoServer::shared();
    let bucket = unique_name("objects");
    moto.create_bucket(&bucket).await;
    moto.put_object(&bucket, "data/a.csv", b"id,title\n1,x\n".to_vec())
        .await;
    moto.put_object(&bucket, "data/b.csv", "b").await;
    moto.put_object(&bucket, "archive/a.csv", "a").await;

    assert_eq!(
        moto.get_object(&bucket, "data/a.csv").await.as_deref(),
        Some(&b"id,title\n1,x\n"[..])
    );
    assert_eq!(moto.get_object(&bucket, "data/missing.csv").await, None);
    assert_eq!(
        moto.list_keys(&bucket, "data/").await,
        ["data/a.csv", "data/b.csv"]
    );
    assert_eq!(moto.list_keys(&bucket, "").await.len(), 3);
    assert!(moto.list_keys(&bucket, "nothing/").await.is_empty());
}

#[tokio::test]
async fn list_keys_follows_pagination() {
    let moto = MotoServer::shared();
    let bucket = unique_name("pages");
    moto.create_bucket(&bucket).await;
    let s3 = moto.s3_client();
    // More than one page (1000 keys), written 16 at a time.
    for chunk in (0..1005).collect::<Vec<_>>().chunks(16) {
        let mut puts = tokio::task::JoinSet::new();
        for i in chunk {
            let put = s3
                .put_object()
                .bucket(&bucket)
                .key(format!("k/{i:04}"))
                .body(Vec::new().into());
            puts.spawn(put.send());
        }
        for result in puts.join_all().await {
            result.expect("put");
        }
    }
    let keys = moto.list_keys(&bucket, "k/").await;
    assert_eq!(keys.len(), 1005);
    assert_eq!(keys[1004], "k/1004");
}

#[tokio::test]
async fn plain_client_without_path_style_works_against_the_ip_endpoint() {
    // What a function does with AWS_ENDPOINT_URL: no force_path_style. The endpoint is an IP
    // address, so the SDK must fall back to path-style addressing on its own.
    let moto = MotoServer::shared();
    let s3 = aws_sdk_s3::Client::new(&moto.sdk_config());
    let bucket = unique_name("no-path-style");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create");
    s3.put_object()
        .bucket(&bucket)
        .key("k")
        .body(b"v".to_vec().into())
        .send()
        .await
        .expect("put");
    assert_eq!(
        moto.get_object(&bucket, "k").await.as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn s3_notifications_reach_sqs_filtered_by_prefix_and_suffix() {
    let moto = MotoServer::shared();
    let bucket = unique_name("landing");
    moto.create_bucket(&bucket).await;
    let queue = moto.notify_bucket_to_queue(&bucket, "data/", ".csv").await;

    moto.put_object(&bucket, "data/a.csv", "x").await;
    moto.put_object(&bucket, "data/a.txt", "x").await; // wrong suffix
    moto.put_object(&bucket, "other/b.csv", "x").await; // wrong prefix
    moto.put_object(&bucket, "data/sub dir/c+d.csv", "xyz")
        .await;

    let events = moto
        .receive_s3_events_at_least(&queue, 2, Duration::from_secs(10))
        .await;
    assert_eq!(events.len(), 2, "{events:#?}");

    let mut keys = Vec::new();
    for raw in &events {
        let json: Value = serde_json::from_str(raw).unwrap();
        let record = &json["Records"][0];
        assert_eq!(record["eventSource"], "aws:s3");
        assert_eq!(record["eventName"], "ObjectCreated:Put");
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["s3"]["bucket"]["name"], bucket.as_str());
        assert_eq!(
            record["s3"]["bucket"]["arn"],
            format!("arn:aws:s3:::{bucket}")
        );
        // moto leaves out fields S3 always sends and S3Event requires ...
        let err = serde_json::from_str::<S3Event>(raw).unwrap_err();
        assert!(err.to_string().contains("userIdentity"), "{err}");
        // ... which complete_s3_event adds, changing nothing that was there.
        let completed = complete_s3_event(raw);
        assert_eq!(
            completed["Records"][0]["s3"]["object"],
            record["s3"]["object"]
                .clone()
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert(
                        "sequencer".into(),
                        completed["Records"][0]["s3"]["object"]["sequencer"].clone(),
                    );
                    Value::Object(o)
                })
                .unwrap()
        );
        assert_eq!(completed["Records"][0]["eventTime"], record["eventTime"]);
        let typed: S3Event =
            serde_json::from_value(completed).expect("completed event parses as S3Event");
        assert_eq!(typed.records.len(), 1);
        keys.push(typed.records[0].s3.object.key.clone().unwrap_or_default());
    }
    keys.sort();
    // Keys are form-URL-encoded (space as '+', '+' as %2B) like on AWS, but moto also
    // encodes '/' as %2F where S3 leaves it alone; both decode to the same key.
    assert_eq!(keys, ["data%2Fa.csv", "data%2Fsub+dir%2Fc%2Bd.csv"]);
    let decoded: Vec<String> = keys.iter().map(|k| form_decode(k)).collect();
    assert_eq!(decoded, ["data/a.csv", "data/sub dir/c+d.csv"]);

    // Nothing else arrives (the s3:TestEvent is skipped, the filtered keys never sent).
    assert!(
        moto.receive_s3_events(&queue, Duration::from_millis(300))
            .await
            .is_empty()
    );
}

/// S3 event key decoding: '+' is a space, then percent-decoding.
fn form_decode(key: &str) -> String {
    let bytes = key.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn two_notification_queues_on_one_bucket_both_fire() {
    let moto = MotoServer::shared();
    let bucket = unique_name("two-queues");
    moto.create_bucket(&bucket).await;
    let csv = moto.notify_bucket_to_queue(&bucket, "data/", ".csv").await;
    let all = moto.notify_bucket_to_queue(&bucket, "", "").await;
    moto.put_object(&bucket, "data/x.csv", "x").await;
    moto.put_object(&bucket, "y.bin", "y").await;
    assert_eq!(
        moto.receive_s3_events(&csv, Duration::from_secs(5))
            .await
            .len(),
        1
    );
    assert_eq!(
        moto.receive_s3_events_at_least(&all, 2, Duration::from_secs(5))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn sns_to_sqs_delivers_the_envelope_with_subject_and_attributes() {
    let moto = MotoServer::shared();
    let topic = moto.create_topic(&unique_name("alerts")).await;
    let queue = moto.subscribe_queue_to_topic(&topic).await;
    let sns = moto.sns_client();

    sns.publish()
        .topic_arn(&topic)
        .subject("catalog-sync: 2 rows rejected")
        .message("details in reports/2026/01/01/run.json")
        .message_attributes(
            "kind",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("rows-rejected")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "count",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("2")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("publish");
    sns.publish()
        .topic_arn(&topic)
        .message("no subject")
        .send()
        .await
        .expect("publish");

    let messages = moto
        .receive_sns_messages(&queue, 2, Duration::from_secs(10))
        .await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let first = messages
        .iter()
        .find(|m| m.subject.is_some())
        .expect("the message with a subject");
    assert_eq!(first.kind, "Notification");
    assert_eq!(first.topic_arn, topic);
    assert_eq!(
        first.subject.as_deref(),
        Some("catalog-sync: 2 rows rejected")
    );
    assert_eq!(first.message, "details in reports/2026/01/01/run.json");
    assert_eq!(first.attribute("kind"), Some("rows-rejected"));
    assert_eq!(first.message_attributes["kind"].data_type, "String");
    assert_eq!(first.attribute("count"), Some("2"));
    assert_eq!(first.message_attributes["count"].data_type, "Number");
    assert!(!first.message_id.is_empty());
    assert!(!first.timestamp.is_empty());

    let second = messages.iter().find(|m| m.subject.is_none()).unwrap();
    assert_eq!(second.message, "no subject");
    assert!(second.message_attributes.is_empty());

    assert!(
        moto.receive_sns_messages(&queue, 0, Duration::from_millis(300))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn secrets_hold_their_value() {
    let moto = MotoServer::shared();
    let name = unique_name("token");
    let arn = moto.create_secret(&name, "EAAB-secret-token").await;
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-east-1:"),
        "{arn}"
    );
    let value = moto
        .secrets_client()
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("get secret");
    assert_eq!(value.secret_string(), Some("EAAB-secret-token"));
}

#[tokio::test]
async fn own_server_resets_and_stops_on_drop() {
    let moto = MotoServer::start();
    assert_ne!(moto.endpoint(), MotoServer::shared().endpoint());
    moto.create_bucket("to-be-reset").await;
    let buckets = moto.s3_client().list_buckets().send().await.unwrap();
    assert_eq!(buckets.buckets().len(), 1);
    moto.reset();
    let buckets = moto.s3_client().list_buckets().send().await.unwrap();
    assert!(buckets.buckets().is_empty());

    let port = moto.port();
    drop(moto);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "moto still listening on {port} after drop"
    );
}

#[test]
fn env_vars_name_the_endpoint_region_and_credentials() {
    let moto = MotoServer::shared();
    let env: std::collections::HashMap<_, _> = moto.env_vars().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], moto.endpoint());
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert!(!env["AWS_ACCESS_KEY_ID"].is_empty());
    assert!(!env["AWS_SECRET_ACCESS_KEY"].is_empty());
    assert_eq!(env["AWS_EC2_METADATA_DISABLED"], "true");
}

/// Helper process for `moto_dies_with_a_killed_test_process`: starts a server, reports its
/// port, then dies without running any destructor. Ignored, so a plain `cargo test` never
/// runs it; its parent runs it explicitly (`--ignored --exact`) with `TESTKIT_ORPHAN_CHILD`
/// set. Run any other way it fails, rather than passing without testing anything or aborting
/// the whole test binary.
#[test]
#[ignore = "a helper process, run by moto_dies_with_a_killed_test_process"]
fn orphan_child_helper() {
    assert!(
        std::env::var_os("TESTKIT_ORPHAN_CHILD").is_some(),
        "orphan_child_helper aborts its process; only moto_dies_with_a_killed_test_process runs it"
    );
    let moto = MotoServer::start();
    println!("MOTO_PORT={}", moto.port());
    std::mem::forget(moto);
    std::process::abort();
}

#[test]
fn moto_dies_with_a_killed_test_process() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "orphan_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TESTKIT_ORPHAN_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let port: u16 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            // libtest prints "test orphan_child_helper ... " before the helper's own output.
            l.split_once("MOTO_PORT=")
                .map(|(_, p)| p.trim().parse().unwrap())
        })
        .expect("the helper reports its moto port");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the helper aborts");

    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "moto on port {port} survived its aborted test process"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
