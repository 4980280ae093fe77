//! The "poll pending handles" use case against real protocol peers: S3 and SNS (moto, with an
//! SQS subscription to read alerts back) and the Graph API emulator over HTTP.
//!
//! Pending handles are created by really sending batches to the emulator and writing the
//! `pending/` records the sender writes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use graph::{
    AccessToken, BatchStatus, CallCounts, CatalogInfo, GraphClient, GraphError, GraphSettings,
    PartialSend, RetryPolicy, SentChunk,
};
use graph_emulator::{
    BatchOutcome, DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, Endpoint, Fault,
    GraphEmulator, RunningEmulator,
};
use serde_json::{Value, json};
use sync::adapters::aws::{S3Store, SnsAlerts};
use sync::alert::Alert;
use sync::graph_api::{GraphCatalog, StaticToken};
use sync::keys::{self, Layout};
use sync::poll::{CheckedRecord, PollSettings, PollSummary, Poller, START_MARGIN};
use sync::ports::{AlertError, AlertSink, CatalogApi, Clock};
use sync::process::Services;
use sync::report::PendingRecord;
use testkit::{MotoServer, SnsEnvelope, unique_name};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// A clock stopped at one instant, so `checked/` dates and ages are known.
#[derive(Debug)]
struct FixedClock(OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// SNS alerts, also kept in memory so the email text can be checked (SQS gets the JSON form).
struct RecordingAlerts {
    sns: SnsAlerts,
    seen: Mutex<Vec<Alert>>,
}

#[async_trait]
impl AlertSink for RecordingAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        self.seen.lock().unwrap().push(alert.clone());
        self.sns.publish(alert).await
    }
}

/// The real Graph API adapter, counting status checks in flight; optionally drops Meta's
/// `line` from problems, as some answers do, to exercise the lookup by id.
struct CountingCatalog {
    inner: GraphCatalog,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    checks: AtomicUsize,
    strip_lines: AtomicBool,
}

/// Decrements the in-flight count even when the check is cancelled.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl CatalogApi for CountingCatalog {
    fn catalog_id(&self) -> &str {
        self.inner.catalog_id()
    }

    async fn send_batch(
        &self,
        requests_json: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<SentChunk>, PartialSend> {
        self.inner.send_batch(requests_json, deadline).await
    }

    async fn check_status(
        &self,
        handle: &str,
        deadline: Option<Instant>,
    ) -> Result<BatchStatus, GraphError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(&self.in_flight);
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.checks.fetch_add(1, Ordering::SeqCst);
        let mut status = self.inner.check_status(handle, deadline).await?;
        if self.strip_lines.load(Ordering::SeqCst) {
            for problem in status.errors.iter_mut().chain(status.warnings.iter_mut()) {
                problem.line = None;
            }
        }
        Ok(status)
    }

    async fn preflight(&self) -> Result<CatalogInfo, GraphError> {
        self.inner.preflight().await
    }

    fn call_counts(&self) -> CallCounts {
        self.inner.call_counts()
    }
}

/// One test's world: its own buckets, topic and queue on the shared moto, its own emulator.
struct World {
    moto: &'static MotoServer,
    emulator: RunningEmulator,
    client: GraphClient,
    layout: Layout,
    queue_url: String,
    alerts: Arc<RecordingAlerts>,
    catalog: Arc<CountingCatalog>,
    now: OffsetDateTime,
}

/// The CSV line of the request at `index`: deliberately not the index itself, so a test
/// proves the mapping goes through `PendingRecord::lines`.
fn csv_line(index: usize) -> u64 {
    2 + 3 * index as u64
}

fn product(id: &str) -> Value {
    json!({"method": "UPDATE", "data": {
        "id": id, "title": "Blue mug", "description": "A blue mug", "availability": "in stock",
        "condition": "new", "price": "9.99 USD", "link": "https://shop.example/p",
        "image_link": "https://shop.example/p.jpg", "brand": "Mugs",
        "google_product_category": "Home > Kitchen"}})
}

/// Saved, with a warning: no category.
fn uncategorised(id: &str) -> Value {
    let mut p = product(id);
    p["data"]
        .as_object_mut()
        .unwrap()
        .remove("google_product_category");
    p
}

/// Refused with an error: unknown availability.
fn invalid(id: &str) -> Value {
    let mut p = product(id);
    p["data"]["availability"] = json!("maybe");
    p
}

impl World {
    async fn new() -> World {
        let moto = MotoServer::shared();
        let emulator = GraphEmulator::start(EmulatorConfig {
            checks_until_finished: 0,
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let layout = Layout {
            landing_bucket: unique_name("landing"),
            synced_bucket: unique_name("synced"),
            ..Layout::default()
        };
        moto.create_bucket(&layout.landing_bucket).await;
        moto.create_bucket(&layout.synced_bucket).await;
        let topic = moto.create_topic(&unique_name("alerts")).await;
        let queue_url = moto.subscribe_queue_to_topic(&topic).await;
        let settings = GraphSettings {
            base_url: emulator.url(),
            ..GraphSettings::default()
        };
        let client = GraphClient::new(settings.clone(), AccessToken::new(DEFAULT_TOKEN)).unwrap();
        let inner = GraphCatalog::connect(
            settings,
            DEFAULT_CATALOG_ID,
            RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                max_throttle_wait: Duration::from_millis(200),
            },
            Arc::new(StaticToken(AccessToken::new(DEFAULT_TOKEN))),
        )
        .await
        .unwrap();
        let catalog = Arc::new(CountingCatalog {
            inner,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            checks: AtomicUsize::new(0),
            strip_lines: AtomicBool::new(false),
        });
        let alerts = Arc::new(RecordingAlerts {
            sns: SnsAlerts::new(moto.sns_client(), topic),
            seen: Mutex::new(Vec::new()),
        });
        // Whole seconds: RFC 3339 round trips are then exact.
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        World {
            moto,
            emulator,
            client,
            layout,
            queue_url,
            alerts,
            catalog,
            now,
        }
    }

    fn poller(&self, concurrency: usize) -> Poller {
        let services = Services {
            store: Arc::new(S3Store::new(self.moto.s3_client())),
            catalog: self.catalog.clone(),
            alerts: self.alerts.clone(),
            clock: Arc::new(FixedClock(self.now)),
            continuations: Arc::new(sync::progress::NoQueue),
        };
        Poller::new(
            services,
            PollSettings {
                sweep: None,
                layout: self.layout.clone(),
                pending_max_age: Duration::from_secs(24 * 3600),
                concurrency,
            },
        )
    }

    fn synced(&self) -> &str {
        &self.layout.synced_bucket
    }

    /// Sends `products` as one batch, stores its body and its pending record (sent `age` ago).
    async fn send(&self, source_key: &str, products: &[Value], age: Duration) -> PendingRecord {
        self.send_with(source_key, products, age, true).await
    }

    async fn send_with(
        &self,
        source_key: &str,
        products: &[Value],
        age: Duration,
        store_body: bool,
    ) -> PendingRecord {
        let requests_json = serde_json::to_string(products).unwrap();
        let response = self
            .client
            .items_batch(DEFAULT_CATALOG_ID, &requests_json)
            .await
            .unwrap();
        let handle = response.handles[0].clone();
        let run_id = unique_name("run");
        let batch_key = keys::synced_batch_key(self.now, &run_id, 1, None);
        if store_body {
            let body = format!(
                "{{\"item_type\":\"PRODUCT_ITEM\",\"allow_upsert\":true,\"requests\":{requests_json}}}"
            );
            self.moto.put_object(self.synced(), &batch_key, body).await;
        }
        let sent_at = self.now - time::Duration::try_from(age).unwrap();
        let record = PendingRecord {
            catalog_id: DEFAULT_CATALOG_ID.to_owned(),
            handle: handle.clone(),
            source_bucket: self.layout.landing_bucket.clone(),
            source_key: source_key.to_owned(),
            run_id: run_id.clone(),
            batch_key,
            report_key: keys::report_key(self.now, &run_id),
            item_count: products.len(),
            sent_at: sent_at.format(&Rfc3339).unwrap(),
            lines: (0..products.len()).map(csv_line).collect(),
            stuck_alerted: false,
            landed_at: None,
        };
        self.moto
            .put_object(
                self.synced(),
                &keys::pending_key(&handle),
                serde_json::to_vec(&record).unwrap(),
            )
            .await;
        record
    }

    /// `n` batches of one valid product each, sent concurrently.
    async fn send_many(&self, n: usize, store_body: bool) -> Vec<PendingRecord> {
        futures::stream::iter(0..n)
            .map(|i| async move {
                self.send_with(
                    &format!("data/many-{}.csv", i % 7),
                    &[product(&format!("sku-{i}"))],
                    Duration::ZERO,
                    store_body,
                )
                .await
            })
            .buffer_unordered(16)
            .collect()
            .await
    }

    /// `record`, rewritten as sent by the run `run_id` (a real run id carries its start time).
    async fn in_run(&self, mut record: PendingRecord, run_id: &str) -> PendingRecord {
        record.run_id = run_id.to_owned();
        self.moto
            .put_object(
                self.synced(),
                &keys::pending_key(&record.handle),
                serde_json::to_vec(&record).unwrap(),
            )
            .await;
        record
    }

    async fn pending_keys(&self) -> Vec<String> {
        self.moto.list_keys(self.synced(), "pending/").await
    }

    async fn checked(&self, handle: &str) -> Option<CheckedRecord> {
        let key = keys::checked_key(self.now, handle);
        let bytes = self.moto.get_object(self.synced(), &key).await?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    async fn pending(&self, handle: &str) -> Option<PendingRecord> {
        let bytes = self
            .moto
            .get_object(self.synced(), &keys::pending_key(handle))
            .await?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    fn recorded(&self) -> Vec<Alert> {
        self.alerts.seen.lock().unwrap().clone()
    }

    /// SNS envelopes from the subscribed queue: at least `expected`, waiting up to `timeout`.
    async fn delivered(&self, expected: usize, timeout: Duration) -> Vec<SnsEnvelope> {
        self.moto
            .receive_sns_messages(&self.queue_url, expected, timeout)
            .await
    }

    /// Exactly one delivered alert: waits for it, then makes sure no second one follows.
    async fn one_delivered(&self) -> (SnsEnvelope, Value) {
        let mut got = self.delivered(1, Duration::from_secs(20)).await;
        got.extend(self.delivered(0, Duration::from_millis(500)).await);
        assert_eq!(got.len(), 1, "{got:#?}");
        let envelope = got.remove(0);
        let document: Value = serde_json::from_str(&envelope.message)
            .unwrap_or_else(|e| panic!("SQS gets the JSON form ({e}): {}", envelope.message));
        (envelope, document)
    }
}

fn assert_subject(subject: &str) {
    assert!(subject.starts_with("catalog-sync: "), "{subject}");
    assert!(subject.chars().count() <= 100, "{subject}");
}

/// Sample objects of an alert's JSON document.
fn samples(document: &Value) -> Vec<Value> {
    document["samples"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_batches_are_recorded_under_checked_and_raise_no_alert() {
    let world = World::new().await;
    let a = world
        .send(
            "data/a.csv",
            &[product("a1"), product("a2")],
            Duration::ZERO,
        )
        .await;
    let b = world
        .send("data/b.csv", &[product("b1")], Duration::ZERO)
        .await;

    let summary = world.poller(4).run(None).await.unwrap();
    assert_eq!(
        summary,
        PollSummary {
            pending_found: 2,
            checked: 2,
            finished: 2,
            graph_calls: CallCounts {
                calls: 2,
                ..CallCounts::default()
            },
            ..PollSummary::default()
        }
    );
    assert!(world.pending_keys().await.is_empty());
    for record in [&a, &b] {
        let checked = world.checked(&record.handle).await.expect("verdict stored");
        assert_eq!(&checked.pending, record);
        assert_eq!(checked.state, "finished");
        assert_eq!(checked.checked_at, world.now.format(&Rfc3339).unwrap());
        assert_eq!(checked.verdict["status"], "finished");
        assert_eq!(checked.verdict["handle"], record.handle.as_str());
        assert_eq!(checked.errors_total_count, 0);
    }
    assert!(world.recorded().is_empty());
    assert!(world.delivered(0, Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_and_the_time_from_a_run_start_to_its_last_verdict_are_measured() {
    let world = World::new().await;
    let minutes = |m: i64| world.now - time::Duration::minutes(m);
    // A: both batches end in this run, the file is done: one value, from its run's start.
    let run_a = keys::new_run_id(minutes(10));
    for id in ["a1", "a2"] {
        let sent = world
            .send("data/a.csv", &[product(id)], Duration::from_secs(300))
            .await;
        world.in_run(sent, &run_a).await;
    }
    // B: its batch ends, but a checkpoint says more batches are still to be sent.
    let run_b = keys::new_run_id(minutes(5));
    let sent = world
        .send("data/b.csv", &[product("b1")], Duration::ZERO)
        .await;
    world.in_run(sent, &run_b).await;
    world
        .moto
        .put_object(world.synced(), &keys::progress_key(&run_b), "{}")
        .await;
    // C: one batch ends, the other (sent 20 minutes ago) is not finished yet.
    let run_c = keys::new_run_id(minutes(30));
    let sent = world
        .send("data/c.csv", &[product("c1")], Duration::ZERO)
        .await;
    world.in_run(sent, &run_c).await;
    world.emulator.set_checks_until_finished(5);
    let sent = world
        .send("data/c.csv", &[product("c2")], Duration::from_secs(1200))
        .await;
    world.in_run(sent, &run_c).await;
    // D: an old record whose run id carries no time (written before run ids did): no value.
    world.emulator.set_checks_until_finished(0);
    world
        .send("data/d.csv", &[product("d1")], Duration::ZERO)
        .await;

    let summary = world.poller(4).run(None).await.unwrap();
    assert_eq!(summary.finished, 5);
    assert_eq!(summary.file_verdict_secs, [600]);
    assert_eq!(summary.pending_left, 1);
    assert_eq!(summary.oldest_pending_secs, 1200);
    let metrics = summary.metrics();
    assert!(metrics.contains(&("PendingHandles", 1)));
    assert!(metrics.contains(&("OldestPendingSeconds", 1200)));
    assert_eq!(
        summary.file_metrics().collect::<Vec<_>>(),
        [(sync::metrics::FILE_TO_VERDICT, 600)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_errors_give_one_batch_errors_alert_pointing_at_csv_lines() {
    let world = World::new().await;
    let a = world
        .send(
            "data/a.csv",
            &[product("p1"), invalid("p2"), product("p3"), invalid("p4")],
            Duration::ZERO,
        )
        .await;
    let b = world
        .send(
            "data/b.csv",
            &[uncategorised("q1"), invalid("q2")],
            Duration::ZERO,
        )
        .await;
    let clean = world
        .send("data/c.csv", &[product("r1")], Duration::ZERO)
        .await;

    let summary = world.poller(8).run(None).await.unwrap();
    assert_eq!(summary.checked, 3);
    assert_eq!(summary.finished, 3);
    assert_eq!(summary.item_errors, 3);
    assert_eq!(summary.item_warnings, 1);
    assert_eq!(summary.alerts_sent, 1);
    assert!(world.pending_keys().await.is_empty());

    // The stored verdict maps Meta's request index to the CSV line.
    let checked_a = world.checked(&a.handle).await.unwrap();
    let lines: Vec<(Option<u64>, Option<&str>)> = checked_a
        .errors
        .iter()
        .map(|s| (s.line, s.id.as_deref()))
        .collect();
    assert_eq!(
        lines,
        [
            (Some(csv_line(1)), Some("p2")),
            (Some(csv_line(3)), Some("p4"))
        ]
    );
    assert_eq!(checked_a.verdict["errors_total_count"], 2);

    // Over SNS -> SQS (raw delivery off): the envelope carries subject and attributes, and its
    // Message is the JSON form meant for programs.
    let (envelope, document) = world.one_delivered().await;
    let subject = envelope.subject.clone().unwrap();
    assert_subject(&subject);
    assert!(
        subject.contains("3 item error(s), 1 warning(s) in 2 batch(es)"),
        "{subject}"
    );
    assert_eq!(envelope.attribute("severity"), Some("error"));
    assert_eq!(envelope.attribute("kind"), Some("batch_errors"));
    assert_eq!(document["kind"], "batch_errors");
    assert_eq!(document["severity"], "error");
    assert_eq!(document["subject"], subject.as_str());
    let samples = samples(&document);
    assert_eq!(samples.len(), 4, "3 errors then 1 warning: {samples:#?}");
    assert_eq!(
        samples[0],
        json!({"file": "data/a.csv", "line": csv_line(1), "id": "p2", "message": samples[0]["message"]})
    );
    assert!(
        samples[0]["message"]
            .as_str()
            .unwrap()
            .contains("availability")
    );
    assert_eq!(samples[1]["line"], csv_line(3));
    assert_eq!(samples[1]["id"], "p4");
    assert_eq!(samples[2]["file"], "data/b.csv");
    assert_eq!(samples[2]["line"], csv_line(1));
    assert_eq!(samples[2]["id"], "q2");
    assert_eq!(samples[3]["line"], csv_line(0));
    assert_eq!(samples[3]["id"], "q1");
    assert!(
        samples[3]["message"]
            .as_str()
            .unwrap()
            .contains("google_product_category")
    );
    let keys: Vec<&str> = document["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let synced = world.synced();
    let key_of =
        |r: &PendingRecord| format!("s3://{synced}/{}", keys::checked_key(world.now, &r.handle));
    assert_eq!(keys, [key_of(&a), key_of(&b)]);
    assert!(!keys.contains(&key_of(&clean).as_str()));
    let facts = document["facts"].as_array().unwrap();
    let landing = &world.layout.landing_bucket;
    assert!(facts.contains(&json!({"name": format!("File s3://{landing}/data/a.csv"), "value": "2 error(s), 0 warning(s) in 1 batch(es)"})), "{facts:#?}");
    assert!(facts.contains(&json!({"name": format!("File s3://{landing}/data/b.csv"), "value": "1 error(s), 1 warning(s) in 1 batch(es)"})), "{facts:#?}");

    // The email form is plain text with the same facts.
    let recorded = world.recorded();
    assert_eq!(recorded.len(), 1);
    let alert = &recorded[0];
    assert_eq!(alert.subject, subject);
    let text = &alert.text;
    assert!(
        text.contains(&format!("data/a.csv, line {}, id p2: ", csv_line(1))),
        "{text}"
    );
    assert!(
        text.contains(&format!("data/b.csv, line {}, id q2: ", csv_line(1))),
        "{text}"
    );
    assert!(text.contains(&key_of(&a)), "{text}");
    assert!(text.contains("What to do:"), "{text}");
    let sns: Value = serde_json::from_str(&alert.sns_message()).unwrap();
    assert_eq!(sns["email"], text.as_str());
    assert_eq!(sns["sqs"], envelope.message.as_str());
    assert!(alert.sns_message().len() < 256 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_only_give_a_batch_warnings_alert() {
    let world = World::new().await;
    world
        .send(
            "data/w.csv",
            &[product("w1"), uncategorised("w2"), uncategorised("w3")],
            Duration::ZERO,
        )
        .await;

    let summary = world.poller(2).run(None).await.unwrap();
    assert_eq!(summary.finished, 1);
    assert_eq!(summary.item_errors, 0);
    assert_eq!(summary.item_warnings, 2);

    let (envelope, document) = world.one_delivered().await;
    assert_subject(envelope.subject.as_deref().unwrap());
    assert!(
        envelope
            .subject
            .as_deref()
            .unwrap()
            .contains("2 item warning(s) in 1 batch(es)")
    );
    assert_eq!(envelope.attribute("severity"), Some("warning"));
    assert_eq!(envelope.attribute("kind"), Some("batch_warnings"));
    let lines: Vec<Value> = samples(&document)
        .iter()
        .map(|s| s["line"].clone())
        .collect();
    assert_eq!(lines, [json!(csv_line(1)), json!(csv_line(2))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceled_and_failed_batches_are_errors_even_without_item_errors() {
    let world = World::new().await;
    world.emulator.push_outcome(BatchOutcome::Canceled);
    let canceled = world
        .send(
            "data/x.csv",
            &[product("x1"), product("x2")],
            Duration::ZERO,
        )
        .await;
    world.emulator.push_outcome(BatchOutcome::Error);
    let failed = world
        .send("data/y.csv", &[product("y1")], Duration::ZERO)
        .await;

    let summary = world.poller(2).run(None).await.unwrap();
    assert_eq!(summary.checked, 2);
    assert_eq!(summary.canceled, 1);
    assert_eq!(summary.errored, 1);
    assert_eq!(summary.finished, 0);
    assert!(world.pending_keys().await.is_empty());
    assert_eq!(
        world.checked(&canceled.handle).await.unwrap().state,
        "canceled"
    );
    assert_eq!(world.checked(&failed.handle).await.unwrap().state, "error");

    let (envelope, document) = world.one_delivered().await;
    assert_eq!(envelope.attribute("kind"), Some("batch_errors"));
    assert_eq!(envelope.attribute("severity"), Some("error"));
    let subject = envelope.subject.unwrap();
    assert!(subject.contains("1 canceled, 1 failed"), "{subject}");
    let messages: Vec<String> = samples(&document)
        .iter()
        .map(|s| s["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains(&canceled.handle) && m.contains("ended canceled")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains(&failed.handle) && m.contains("ended error")),
        "{messages:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_still_in_progress_stay_pending_without_alert() {
    let world = World::new().await;
    world.emulator.push_outcome(BatchOutcome::NeverFinishes);
    let record = world
        .send("data/slow.csv", &[product("s1")], Duration::from_secs(3600))
        .await;

    let summary = world.poller(2).run(None).await.unwrap();
    assert_eq!(summary.checked, 1);
    assert_eq!(summary.still_pending, 1);
    assert_eq!(summary.stuck, 0);
    assert_eq!(summary.alerts_sent, 0);
    assert_eq!(world.pending(&record.handle).await.unwrap(), record);
    assert!(
        world
            .moto
            .list_keys(world.synced(), "checked/")
            .await
            .is_empty()
    );
    assert!(world.recorded().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_batch_is_alerted_once() {
    let world = World::new().await;
    world.emulator.push_outcome(BatchOutcome::NeverFinishes);
    let stuck = world
        .send(
            "data/stuck.csv",
            &[product("k1")],
            Duration::from_secs(2 * 24 * 3600),
        )
        .await;
    world.emulator.push_outcome(BatchOutcome::NeverFinishes);
    let young = world
        .send(
            "data/young.csv",
            &[product("k2")],
            Duration::from_secs(3600),
        )
        .await;

    let first = world.poller(2).run(None).await.unwrap();
    assert_eq!(first.still_pending, 2);
    assert_eq!(first.stuck, 1);
    assert_eq!(first.alerts_sent, 1);
    let (envelope, document) = world.one_delivered().await;
    assert_subject(envelope.subject.as_deref().unwrap());
    assert!(
        envelope
            .subject
            .as_deref()
            .unwrap()
            .contains("1 batch(es) not finished after 24h")
    );
    assert_eq!(envelope.attribute("kind"), Some("batch_stuck"));
    assert_eq!(envelope.attribute("severity"), Some("error"));
    let text = document.to_string();
    assert!(text.contains(&stuck.handle), "{text}");
    assert!(!text.contains(&young.handle), "{text}");
    assert_eq!(
        document["keys"][0],
        format!(
            "s3://{}/{}",
            world.synced(),
            keys::pending_key(&stuck.handle)
        )
    );
    assert!(world.pending(&stuck.handle).await.unwrap().stuck_alerted);
    assert!(!world.pending(&young.handle).await.unwrap().stuck_alerted);

    let second = world.poller(2).run(None).await.unwrap();
    assert_eq!(second.stuck, 1, "still stuck, still counted");
    assert_eq!(second.alerts_sent, 0, "but not alerted again");
    assert!(world.delivered(0, Duration::from_secs(1)).await.is_empty());
    assert_eq!(world.recorded().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_short_by_the_deadline_leaves_the_rest_pending() {
    let world = World::new().await;
    // Each check waits at least LATENCY (a lower bound, whatever the load), two at a time, and
    // none starts after WINDOW: at most 2 * (WINDOW / LATENCY + 1) = 14 of the 40 can start, so
    // some are always left; the whole run would take at least 40 / 2 * LATENCY = 20 s.
    const HANDLES: u64 = 40;
    const LATENCY: Duration = Duration::from_secs(1);
    const WINDOW: Duration = Duration::from_secs(6);
    world.send_many(HANDLES as usize, false).await;
    world.emulator.set_latency(LATENCY);

    let started = Instant::now();
    let deadline = started + START_MARGIN + WINDOW;
    let summary = world.poller(2).run(Some(deadline)).await.unwrap();
    let elapsed = started.elapsed();

    assert!(summary.finished > 0, "{summary:?}");
    assert!(summary.not_checked_deadline > 0, "{summary:?}");
    assert_eq!(summary.finished + summary.not_checked_deadline, HANDLES);
    assert_eq!(
        world.pending_keys().await.len() as u64,
        summary.not_checked_deadline
    );
    // Stopped at the deadline, not after every check: below the whole run's lower bound.
    assert!(elapsed < LATENCY * (HANDLES as u32) / 2, "{elapsed:?}");
    assert!(world.recorded().is_empty());

    // The next run picks up the rest.
    world.emulator.set_latency(Duration::ZERO);
    let next = world.poller(2).run(None).await.unwrap();
    assert_eq!(next.finished, summary.not_checked_deadline);
    assert!(world.pending_keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_stops_the_run_and_checks_resume_next_run() {
    let world = World::new().await;
    world.send_many(6, false).await;
    world.emulator.push_fault(
        Fault::Throttle {
            code: 80014,
            regain_access_minutes: Some(30),
            retry_after_secs: None,
        }
        .on(Endpoint::BatchStatus),
    );

    let summary = world.poller(1).run(None).await.unwrap();
    assert!(
        summary
            .stopped_early
            .as_deref()
            .unwrap()
            .starts_with("throttled: "),
        "{summary:?}"
    );
    assert_eq!(summary.checked, 0);
    assert_eq!(summary.api_errors, 1);
    assert_eq!(summary.not_checked_stopped, 6);
    assert_eq!(summary.alerts_sent, 1);
    assert_eq!(
        world.catalog.checks.load(Ordering::SeqCst),
        1,
        "no check after the stop"
    );
    // Meta's 30-minute wait is not slept through: one call, throttled, in the run's metrics.
    assert_eq!(
        summary.graph_calls,
        CallCounts {
            calls: 1,
            failed: 1,
            throttled: 1
        }
    );
    assert!(summary.metrics().contains(&("GraphCallsThrottled", 1)));
    assert_eq!(world.pending_keys().await.len(), 6);
    let (envelope, document) = world.one_delivered().await;
    let subject = envelope.subject.clone().unwrap();
    assert_subject(&subject);
    assert!(subject.contains("resume next run"), "{subject}");
    assert_eq!(envelope.attribute("kind"), Some("send_failed"));
    assert!(
        document["what_happened"]
            .as_str()
            .unwrap()
            .contains("rate-limited")
    );

    let next = world.poller(1).run(None).await.unwrap();
    assert_eq!(next.finished, 6);
    assert_eq!(next.stopped_early, None);
    // Each run counts its own calls only.
    assert_eq!(
        next.graph_calls,
        CallCounts {
            calls: 6,
            failed: 0,
            throttled: 0
        }
    );
    assert!(world.pending_keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_alerted_once_per_run_whatever_the_number_of_handles() {
    let world = World::new().await;
    world.send_many(12, false).await;
    world.emulator.revoke_token(DEFAULT_TOKEN);

    let summary = world.poller(4).run(None).await.unwrap();
    assert!(
        summary
            .stopped_early
            .as_deref()
            .unwrap()
            .starts_with("token_invalid: "),
        "{summary:?}"
    );
    assert_eq!(summary.checked, 0);
    assert_eq!(summary.not_checked_stopped, 12);
    assert_eq!(summary.alerts_sent, 1);
    assert!(
        summary.api_errors >= 1 && summary.api_errors <= 4,
        "{summary:?}"
    );
    assert_eq!(world.pending_keys().await.len(), 12);
    let (envelope, document) = world.one_delivered().await;
    assert_subject(envelope.subject.as_deref().unwrap());
    assert_eq!(envelope.attribute("kind"), Some("token_invalid"));
    assert_eq!(envelope.attribute("severity"), Some("error"));
    assert!(!document.to_string().contains(DEFAULT_TOKEN));
    assert!(
        document["next_steps"]
            .as_str()
            .unwrap()
            .contains("system-user token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_to_a_verdict_counts_from_the_landing_the_records_name() {
    let world = World::new().await;
    let minutes = |m: i64| world.now - time::Duration::minutes(m);
    // The file landed 25 minutes ago and waited 15 for its run, which started 10 minutes ago;
    // its two batches name the landing (one record in its old form, without it).
    let run = keys::new_run_id(minutes(10));
    for (id, landed) in [("l1", Some(minutes(25))), ("l2", None)] {
        let mut sent = world
            .send("data/l.csv", &[product(id)], Duration::ZERO)
            .await;
        sent.landed_at = landed.map(|at| at.format(&Rfc3339).unwrap());
        world.in_run(sent, &run).await;
    }
    let summary = world.poller(2).run(None).await.unwrap();
    assert_eq!(summary.finished, 2);
    assert_eq!(summary.file_verdict_secs, [1500]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_leaves_its_handle_pending_and_the_run_goes_on() {
    let world = World::new().await;
    world.send_many(3, false).await;
    // Two failures exhaust the two attempts of the first check only.
    for _ in 0..2 {
        world
            .emulator
            .push_fault(Fault::ServerError { status: 503 }.on(Endpoint::BatchStatus));
    }

    let summary = world.poller(1).run(None).await.unwrap();
    assert_eq!(summary.api_errors, 1);
    assert_eq!(summary.finished, 2);
    assert_eq!(summary.stopped_early, None);
    assert_eq!(summary.alerts_sent, 0);
    assert_eq!(world.pending_keys().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_without_a_line_are_found_by_id_in_the_stored_body() {
    let world = World::new().await;
    world.catalog.strip_lines.store(true, Ordering::SeqCst);
    let record = world
        .send(
            "data/ids.csv",
            &[product("i1"), product("i2"), invalid("i3")],
            Duration::ZERO,
        )
        .await;

    let summary = world.poller(1).run(None).await.unwrap();
    assert_eq!(summary.item_errors, 1);
    let checked = world.checked(&record.handle).await.unwrap();
    assert_eq!(checked.errors[0].line, Some(csv_line(2)));
    assert_eq!(checked.errors[0].id.as_deref(), Some("i3"));
    let (_, document) = world.one_delivered().await;
    assert_eq!(samples(&document)[0]["line"], csv_line(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_pending_record_is_still_checked_by_its_key() {
    let world = World::new().await;
    let record = world
        .send("data/u.csv", &[invalid("u1")], Duration::ZERO)
        .await;
    world
        .moto
        .put_object(
            world.synced(),
            &keys::pending_key(&record.handle),
            b"{not json".to_vec(),
        )
        .await;

    let summary = world.poller(1).run(None).await.unwrap();
    assert_eq!(summary.finished, 1);
    assert_eq!(summary.item_errors, 1);
    assert!(world.pending_keys().await.is_empty());
    let checked = world.checked(&record.handle).await.unwrap();
    assert_eq!(checked.pending.handle, record.handle);
    assert!(checked.pending.source_key.is_empty());
    let (_, document) = world.one_delivered().await;
    assert_eq!(samples(&document)[0]["id"], "u1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pending_handles_finish_within_the_concurrency_bound() {
    let world = World::new().await;
    world.send_many(1000, false).await;
    assert_eq!(world.pending_keys().await.len(), 1000);
    // A little latency lets checks overlap, so the bound is actually exercised.
    world.emulator.set_latency(Duration::from_millis(20));

    let started = std::time::Instant::now();
    let summary = world.poller(8).run(None).await.unwrap();
    let max = world.catalog.max_in_flight.load(Ordering::SeqCst);
    eprintln!(
        "1000 handles, concurrency 8: {:?}, max checks in flight {max}",
        started.elapsed()
    );
    assert_eq!(summary.pending_found, 1000);
    assert_eq!(summary.checked, 1000);
    assert_eq!(summary.finished, 1000);
    assert_eq!(summary.alerts_sent, 0);
    assert!((2..=8).contains(&max), "max in flight {max}");
    assert_eq!(world.catalog.checks.load(Ordering::SeqCst), 1000);
    assert!(world.pending_keys().await.is_empty());
    let date = keys::date_path(world.now);
    assert_eq!(
        world
            .moto
            .list_keys(world.synced(), &format!("checked/{date}/"))
            .await
            .len(),
        1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_alert_stays_small_with_many_files_and_batches() {
    let world = World::new().await;
    let long = "x".repeat(400);
    for n in 0..45 {
        let products: Vec<Value> = (0..3).map(|i| invalid(&format!("f{n}-{i}"))).collect();
        world
            .send(
                &format!("data/{long}-{n:02}.csv"),
                &products,
                Duration::ZERO,
            )
            .await;
    }

    let summary = world.poller(8).run(None).await.unwrap();
    assert_eq!(summary.item_errors, 135);
    let recorded = world.recorded();
    assert_eq!(recorded.len(), 1);
    let alert = &recorded[0];
    assert_subject(&alert.subject);
    assert!(
        alert
            .subject
            .contains("135 item error(s), 0 warning(s) in 45 batch(es)"),
        "{}",
        alert.subject
    );
    assert!(alert.sns_message().len() < 256 * 1024);
    let document = &alert.document;
    assert_eq!(samples(document).len(), 20);
    let keys = document["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 21, "20 verdict keys and where the rest are");
    assert!(
        keys[20]
            .as_str()
            .unwrap()
            .starts_with("... and 25 more under s3://"),
        "{}",
        keys[20]
    );
    let facts = document["facts"].as_array().unwrap();
    assert!(
        facts.contains(&json!({"name": "Other files", "value": "25 more; see the full verdicts"}))
    );
    assert!(alert.text.contains("Examples (20 of "), "{}", alert.text);
    let (envelope, _) = world.one_delivered().await;
    assert_eq!(envelope.attribute("kind"), Some("batch_errors"));
}
