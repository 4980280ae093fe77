//! Files that need more than one invocation: checkpoints under `progress/`, continuations
//! through a real SQS queue (moto server), and the Graph API emulator over HTTP throttling and
//! slowing down the calls. Every invocation goes through `Invocation::from_json`, as the Lambda's
//! payload does.

use std::sync::Arc;
use std::time::Duration;

use graph_emulator::{DEFAULT_CATALOG_ID, Endpoint, Fault};
use serde_json::{Value, json};
use sync::adapters::aws::{S3Store, SnsAlerts, SqsContinuations};
use sync::event::{EventSummary, Invocation, handle_invocation};
use sync::poll::{PollSettings, Poller};
use sync::ports::SystemClock;
use sync::process::{FileProcessor, Services};
use sync::sweep::SweepLimits;
use testkit::{complete_s3_event, unique_name};
use tokio::time::Instant;

mod common;

use common::{Stack, fast_retry, generated, stack};

const TOKEN: &str = "resume-test-token";

struct Harness {
    stack: Stack,
    events_queue: String,
    continue_queue: String,
    alerts_queue: String,
    services: Services,
    processor: FileProcessor,
}

impl std::ops::Deref for Harness {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

async fn harness(batch_size: usize) -> Harness {
    let stack = stack(TOKEN).await;
    let moto = stack.moto;
    let events_queue = moto
        .notify_bucket_to_queue(&stack.landing, "data/", ".csv")
        .await;
    let continue_queue = moto.create_queue(&unique_name("continue")).await;
    let topic = moto.create_topic(&unique_name("alerts")).await;
    let alerts_queue = moto.subscribe_queue_to_topic(&topic).await;
    let catalog = stack.catalog(fast_retry(), Duration::from_secs(60)).await;
    let services = Services {
        store: Arc::new(S3Store::new(moto.s3_client())),
        catalog: Arc::new(catalog),
        alerts: Arc::new(SnsAlerts::new(moto.sns_client(), topic)),
        clock: Arc::new(SystemClock),
        continuations: Arc::new(SqsContinuations::new(
            moto.sqs_client(),
            continue_queue.clone(),
        )),
    };
    let settings = stack.settings(batch_size, Duration::from_millis(300));
    Harness {
        stack,
        events_queue,
        continue_queue,
        alerts_queue,
        processor: FileProcessor::new(services.clone(), settings),
        services,
    }
}

impl Harness {
    /// Lets `calls` items_batch calls through, then throttles the next with Graph error `code`
    /// and `Retry-After: seconds`, longer than the client sleeps.
    fn throttle_after(&self, calls: usize, code: i64, seconds: u64) {
        self.pass(calls);
        self.emulator.push_fault(
            Fault::Throttle {
                code,
                regain_access_minutes: None,
                retry_after_secs: Some(seconds),
            }
            .on(Endpoint::ItemsBatch),
        );
    }

    /// Uploads a file and returns the Lambda payload its S3 notification produced.
    async fn land(&self, key: &str, bytes: Vec<u8>) -> Value {
        self.moto.put_object(&self.landing, key, bytes).await;
        let bodies = self
            .moto
            .receive_s3_events_at_least(&self.events_queue, 1, Duration::from_secs(20))
            .await;
        assert_eq!(bodies.len(), 1, "one notification per upload");
        complete_s3_event(&bodies[0])
    }

    /// The next continuation message, as the SQS event source hands it to the function.
    async fn next_continuation(&self) -> Value {
        let sqs = self.moto.sqs_client();
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&self.continue_queue)
                .max_number_of_messages(1)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
                sqs.delete_message()
                    .queue_url(&self.continue_queue)
                    .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
                return json!({"Records": [{
                    "messageId": message.message_id,
                    "receiptHandle": message.receipt_handle,
                    "body": message.body,
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:continue",
                    "awsRegion": "us-east-1"
                }]});
            }
            assert!(Instant::now() < give_up, "no continuation was queued");
        }
    }

    async fn invoke(&self, payload: Value, time_left: Option<Duration>) -> EventSummary {
        let invocation = Invocation::from_json(payload).expect("a recognised payload");
        let deadline = time_left.map(|left| Instant::now() + left);
        handle_invocation(&self.processor, &invocation, deadline)
            .await
            .expect("the invocation succeeds")
    }

    /// A poll run with the sweep, treating files as left behind at once.
    async fn poll(&self, max_redrives: u32) -> sync::poll::PollSummary {
        let poller = Poller::new(
            self.services.clone(),
            PollSettings {
                layout: self.processor.layout().clone(),
                pending_max_age: Duration::from_secs(86_400),
                concurrency: 4,
                sweep: Some(SweepLimits {
                    stale_file_age: Duration::ZERO,
                    max_redrives,
                }),
            },
        );
        poller.run(None).await.expect("poll run")
    }

    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.moto.list_keys(bucket, prefix).await
    }

    async fn checkpoint(&self) -> Value {
        let keys: Vec<String> = self
            .keys(&self.synced, "progress/")
            .await
            .into_iter()
            .filter(|key| key.ends_with(".json"))
            .collect();
        assert_eq!(keys.len(), 1, "one checkpoint: {keys:?}");
        self.json(&self.synced, &keys[0]).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_needing_three_invocations_is_sent_once_and_archived_once() {
    let h = harness(10).await;
    let csv = generated(60, 11);
    let rows = 60;

    // Invocation 1: two batches go through, then Meta throttles with a wait longer than the
    // client will sleep. The file is checkpointed and a continuation queued.
    h.throttle_after(2, 80014, 2);
    let event = h.land("data/big.csv", csv).await;
    let first = h.invoke(event, Some(Duration::from_secs(60))).await;
    assert_eq!(first.deferred, ["data/big.csv"], "{first:?}");
    // The throttled call shows in the invocation's metrics though no file failed.
    assert_eq!(
        first.graph_calls,
        graph::CallCounts {
            calls: 3,
            failed: 1,
            throttled: 1
        },
        "{first:?}"
    );
    assert_eq!(
        first
            .metrics()
            .iter()
            .find(|(name, _)| *name == "GraphCallsThrottled"),
        Some(&("GraphCallsThrottled", 1))
    );
    let checkpoint = h.checkpoint().await;
    assert_eq!(checkpoint["batches_done"], 2);
    assert_eq!(checkpoint["state"], "waiting");
    assert_eq!(checkpoint["source_key"], "data/big.csv");
    assert!(checkpoint["resume_at"]["byte"].as_u64().unwrap() > 0);
    assert_eq!(checkpoint["resume_at"]["rows"], 20);
    assert!(checkpoint["resume_not_before"].is_string());
    assert_eq!(h.keys(&h.landing, "data/").await, ["data/big.csv"]);

    // The poller reports the file as in progress and leaves it alone: Meta asked to wait.
    let poll = h.poll(3).await;
    let sweep = poll.sweep.expect("the sweep ran");
    assert_eq!(sweep.in_progress.len(), 1, "{sweep:?}");
    assert_eq!(sweep.in_progress[0].key, "data/big.csv");
    assert_eq!(sweep.in_progress[0].batches_done, 2);
    assert_eq!(sweep.in_progress[0].rows_done, 20);
    assert!(
        sweep.redriven.is_empty() && sweep.failed.is_empty(),
        "{sweep:?}"
    );

    // Invocation 2, from the queued continuation: every call is slow and the deadline short,
    // so it stops part-way on its own deadline.
    h.emulator.set_latency(Duration::from_millis(600));
    let continuation = h.next_continuation().await;
    let second = h
        .invoke(continuation, Some(Duration::from_millis(2000)))
        .await;
    assert_eq!(second.deferred, ["data/big.csv"], "{second:?}");
    let checkpoint = h.checkpoint().await;
    let after_second = checkpoint["batches_done"].as_u64().unwrap();
    assert!(
        (3..6).contains(&after_second),
        "the second invocation sent some but not all batches: {after_second}"
    );
    assert_eq!(checkpoint["invocations"], 2);

    // Invocation 3 finishes the file.
    h.emulator.set_latency(Duration::ZERO);
    let continuation = h.next_continuation().await;
    let third = h.invoke(continuation, Some(Duration::from_secs(60))).await;
    assert_eq!(third.archived, ["data/big.csv"], "{third:?}");

    // Each product reached the catalog in exactly one accepted call.
    let sends = h.sends_per_row();
    assert_eq!(sends.len(), rows, "every product was sent");
    assert!(
        sends.values().all(|&n| n == 1),
        "sent more than once: {sends:?}"
    );
    assert_eq!(h.emulator.items(DEFAULT_CATALOG_ID).len(), rows);

    // Archived once, one report for the whole run, no checkpoint left.
    assert!(h.keys(&h.landing, "data/").await.is_empty());
    assert_eq!(h.keys(&h.landing, "archive/").await, ["archive/big.csv"]);
    assert!(h.keys(&h.synced, "progress/").await.is_empty());
    let reports = h.keys(&h.synced, "reports/").await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = h.json(&h.synced, &reports[0]).await;
    assert_eq!(report["invocations"], 3);
    assert_eq!(report["counts"]["rows_read"], rows);
    assert_eq!(report["counts"]["sent"], rows);
    let numbers: Vec<u64> = report["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|batch| batch["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert_eq!(h.keys(&h.synced, "pending/").await.len(), 6);
    let synced = h.keys(&h.synced, "synced/").await;
    assert_eq!(synced.len(), 6, "{synced:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_found_before_a_checkpoint_are_in_the_final_report() {
    let h = harness(2).await;
    let csv =
        b"id,title,description,link,image_link,availability,price,brand,condition,product_type
a1,Tent,A tent,https://e.example/a1,https://e.example/a1.jpg,in stock,10.00 USD,Acme,new,Camping
bad1,,No title,https://e.example/b1,https://e.example/b1.jpg,in stock,10.00 USD,Acme,new,Camping
a2,Tent,A tent,https://e.example/a2,https://e.example/a2.jpg,in stock,10.00 USD,Acme,new,Camping
a3,Tent,A tent,https://e.example/a3,https://e.example/a3.jpg,in stock,10.00 USD,Acme,new,Camping
bad2,Tent,A tent,https://e.example/b2,https://e.example/b2.jpg,sold out,10.00 USD,Acme,new,Camping
a4,Tent,A tent,https://e.example/a4,https://e.example/a4.jpg,in stock,10.00 USD,Acme,new,Camping
a5,Tent,A tent,https://e.example/a5,https://e.example/a5.jpg,in stock,10.00 USD,Acme,new,Camping
bad3,Tent,A tent,ftp://e.example/b3,https://e.example/b3.jpg,in stock,10.00 USD,Acme,new,Camping
a6,Tent,A tent,https://e.example/a6,https://e.example/a6.jpg,in stock,10.00 USD,Acme,new,Camping
"
        .to_vec();
    // Batch 1 (a1, a2) goes through; batch 2 is throttled.
    h.throttle_after(1, 4, 2);
    let event = h.land("data/mixed.csv", csv).await;
    let first = h.invoke(event, None).await;
    assert_eq!(first.deferred, ["data/mixed.csv"]);
    let checkpoint = h.checkpoint().await;
    assert_eq!(checkpoint["batches_done"], 1);
    assert_eq!(
        checkpoint["spool"]["rows"], 1,
        "bad1 is before the resume point"
    );

    let continuation = h.next_continuation().await;
    let second = h.invoke(continuation, None).await;
    assert_eq!(second.archived, ["data/mixed.csv"]);
    let reports = h.keys(&h.synced, "reports/").await;
    let report = h.json(&h.synced, &reports[0]).await;
    assert_eq!(report["counts"]["rows_read"], 9);
    assert_eq!(report["counts"]["rejected"], 3);
    assert_eq!(report["counts"]["valid"], 6);
    assert_eq!(report["counts"]["sent"], 6);
    let rejected: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rejected,
        ["bad1", "bad2", "bad3"],
        "each rejected row once, in order"
    );
    let sends = h.sends_per_row();
    assert_eq!(sends.len(), 6);
    assert!(sends.values().all(|&n| n == 1), "{sends:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_between_invocations_starts_over_with_the_new_version() {
    let h = harness(10).await;
    // The first version: 2 batches sent, then throttled.
    h.throttle_after(2, 80014, 2);
    let event = h.land("data/catalog.csv", generated(50, 1)).await;
    let first = h.invoke(event, Some(Duration::from_secs(60))).await;
    assert_eq!(first.deferred, ["data/catalog.csv"]);
    let old_run = h.checkpoint().await["run_id"].as_str().unwrap().to_owned();

    // The exporter replaces the file before the follow-up runs (new ETag).
    let new_version = generated(30, 2);
    let event = h.land("data/catalog.csv", new_version).await;
    let second = h.invoke(event, Some(Duration::from_secs(60))).await;
    assert_eq!(second.archived, ["data/catalog.csv"], "{second:?}");

    // The stale continuation of the first version finds nothing left to do.
    let continuation = h.next_continuation().await;
    let third = h.invoke(continuation, Some(Duration::from_secs(60))).await;
    assert_eq!(third.ignored, ["data/catalog.csv"], "{third:?}");

    let reports = h.keys(&h.synced, "reports/").await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = h.json(&h.synced, &reports[0]).await;
    assert_ne!(report["run_id"], old_run.as_str(), "a new run");
    assert_eq!(
        report["counts"]["rows_read"], 30,
        "only the new version's rows"
    );
    assert_eq!(report["counts"]["sent"], 30);
    assert_eq!(report["invocations"], 1);
    let numbers: Vec<u64> = report["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|batch| batch["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3], "the new version is numbered from 1");
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains(&old_run), "{warnings}");
    assert!(h.keys(&h.synced, "progress/").await.is_empty());
    assert_eq!(
        h.keys(&h.landing, "archive/").await,
        ["archive/catalog.csv"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_left_in_data_is_redriven_then_moved_to_failed_with_an_alert() {
    let h = harness(10).await;
    // The file lands but its event is lost: nothing processes it.
    let _lost = h.land("data/orphan.csv", generated(15, 5)).await;

    // First sweep: re-driven through the continuation queue.
    let sweep = h.poll(1).await.sweep.expect("the sweep ran");
    assert_eq!(sweep.redriven, ["data/orphan.csv"], "{sweep:?}");
    let checkpoint = h.checkpoint().await;
    assert_eq!(checkpoint["redrives"], 1);

    // The re-drive fails for good: the token was revoked. A continuation never fails the
    // invocation; the failure is recorded in the checkpoint and alerted.
    h.emulator.revoke_token(TOKEN);
    let continuation = h.next_continuation().await;
    let attempt = h.invoke(continuation, Some(Duration::from_secs(60))).await;
    assert_eq!(attempt.failed, ["data/orphan.csv"], "{attempt:?}");
    let checkpoint = h.checkpoint().await;
    assert_eq!(checkpoint["failed_attempts"], 1);
    assert_eq!(checkpoint["last_failure"]["code"], "tokeninvalid");
    let token_alerts = h
        .moto
        .receive_sns_messages(&h.alerts_queue, 1, Duration::from_secs(20))
        .await;
    assert_eq!(token_alerts[0].attribute("kind"), Some("token_invalid"));

    // Second sweep: out of re-drives, so the file goes to failed/ with its report and an alert.
    let sweep = h.poll(1).await.sweep.expect("the sweep ran");
    assert_eq!(sweep.failed, ["failed/orphan.csv"], "{sweep:?}");
    assert!(h.keys(&h.landing, "data/").await.is_empty());
    assert_eq!(
        h.keys(&h.landing, "failed/").await,
        ["failed/orphan.csv", "failed/orphan.csv.report.json"]
    );
    let report = h.json(&h.landing, "failed/orphan.csv.report.json").await;
    assert_eq!(report["status"], "failed");
    assert_eq!(report["failure"]["code"], "gave_up");
    assert!(
        report["failure"]["what_to_do"]
            .as_str()
            .unwrap()
            .contains("failed/ back into data/"),
        "{report}"
    );
    assert!(h.keys(&h.synced, "progress/").await.is_empty());
    let alerts = h
        .moto
        .receive_sns_messages(&h.alerts_queue, 1, Duration::from_secs(20))
        .await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].attribute("kind"), Some("send_failed"));
    assert_eq!(alerts[0].attribute("severity"), Some("error"));
    let subject = alerts[0].subject.clone().unwrap_or_default();
    assert!(subject.contains("gave up"), "{subject}");

    // Nothing is left for a third sweep.
    let sweep = h.poll(1).await.sweep.expect("the sweep ran");
    assert_eq!(sweep, sync::sweep::SweepSummary::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_whose_file_is_gone_is_removed_by_the_sweep() {
    let h = harness(10).await;
    h.throttle_after(1, 4, 2);
    let event = h.land("data/gone.csv", generated(25, 9)).await;
    let first = h.invoke(event, None).await;
    assert_eq!(first.deferred, ["data/gone.csv"]);
    // A person deletes the file before the follow-up.
    h.moto
        .s3_client()
        .delete_object()
        .bucket(&h.landing)
        .key("data/gone.csv")
        .send()
        .await
        .expect("delete");
    let sweep = h.poll(3).await.sweep.expect("the sweep ran");
    assert_eq!(sweep.orphans_removed, 1, "{sweep:?}");
    assert!(h.keys(&h.synced, "progress/").await.is_empty());
}
