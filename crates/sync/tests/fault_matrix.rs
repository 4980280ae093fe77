//! Faults everywhere on the path of a landed file, against moto server (S3, SNS) and the Graph
//! API emulator over HTTP, with the fault-injecting store and alert wrappers in between.
//!
//! Each case injects one kind of failure, lets the file be retried the way Lambda, the
//! continuation queue and the sweep would, and then checks the promise to users for every row:
//! each valid row is in the catalog with its last row's values, each rejected row is in the
//! report with its reasons, and no product was sent more often than once plus once per failure
//! (the batch in flight when something broke is sent again, a harmless upsert). A property
//! test then does the same with random fault schedules over random files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph::RetryPolicy;
use graph_emulator::{DEFAULT_CATALOG_ID, Endpoint, Fault};
use proptest::prelude::*;
use serde_json::Value;
use sync::adapters::aws::{S3Store, SnsAlerts};
use sync::faults::{FaultyAlerts, FaultyStore, Op};
use sync::ports::Clock;
use sync::process::{FileOutcome, FileProcessor, ProcessError, Services};
use sync::progress::NoQueue;
use testkit::unique_name;
use time::OffsetDateTime;

mod common;

use common::{Stack, stack};

const TOKEN: &str = "fault-matrix-token";
const KEY: &str = "data/products.csv";

struct Harness {
    stack: Stack,
    store: Arc<FaultyStore<S3Store>>,
    alerts: Arc<FaultyAlerts<SnsAlerts>>,
    alerts_queue: String,
    clock: Arc<ShiftedClock>,
    processor: FileProcessor,
}

impl std::ops::Deref for Harness {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

/// The system clock moved forward by hand: the time that passes between a failed attempt and
/// its retry (a rate-limit wait, a lease running out) without waiting for it.
#[derive(Debug, Default)]
struct ShiftedClock {
    offset: Mutex<Duration>,
}

impl ShiftedClock {
    fn advance(&self, by: Duration) {
        if let Ok(mut offset) = self.offset.lock() {
            *offset += by;
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.offset.lock().map(|offset| *offset).unwrap_or_default()
    }
}

async fn harness(batch_size: usize, alert_failures: usize) -> Harness {
    let stack = stack(TOKEN).await;
    let moto = stack.moto;
    let topic = moto.create_topic(&unique_name("alerts")).await;
    let alerts_queue = moto.subscribe_queue_to_topic(&topic).await;
    let catalog = stack
        .catalog(
            RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
                max_throttle_wait: Duration::from_millis(50),
            },
            Duration::from_millis(800),
        )
        .await;
    let store = Arc::new(FaultyStore::new(S3Store::new(moto.s3_client())));
    let alerts = Arc::new(FaultyAlerts::new(
        SnsAlerts::new(moto.sns_client(), topic),
        alert_failures,
    ));
    let clock = Arc::new(ShiftedClock::default());
    let services = Services {
        store: store.clone(),
        catalog: Arc::new(catalog),
        alerts: alerts.clone(),
        clock: clock.clone(),
        continuations: Arc::new(NoQueue),
    };
    let settings = stack.settings(batch_size, Duration::from_millis(100));
    Harness {
        stack,
        store,
        alerts,
        alerts_queue,
        clock,
        processor: FileProcessor::new(services, settings),
    }
}

/// What every attempt at the file ended as.
#[derive(Debug, Default)]
struct Attempts {
    outcomes: Vec<Result<FileOutcome, String>>,
}

impl Attempts {
    fn errors(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().err().map(String::as_str))
            .collect()
    }
}

impl Harness {
    /// Processes the file again and again, as Lambda's retries, continuations and the sweep
    /// would, until it leaves the landing folder (or `max` attempts).
    async fn settle(&self, max: usize, between: impl Fn(usize)) -> Attempts {
        let mut attempts = Attempts::default();
        for attempt in 0..max {
            if attempt > 0 {
                self.clock.advance(Duration::from_secs(2 * 60 * 60));
            }
            between(attempt);
            let result = self
                .processor
                .process(
                    &self.landing,
                    KEY,
                    Some(tokio::time::Instant::now() + Duration::from_secs(30)),
                )
                .await
                .map_err(|error: ProcessError| error.to_string());
            let done = matches!(
                result,
                Ok(FileOutcome::Archived { .. }
                    | FileOutcome::Rejected { .. }
                    | FileOutcome::AlreadyProcessed { .. })
            );
            attempts.outcomes.push(result);
            if done {
                break;
            }
        }
        attempts
    }

    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.moto.list_keys(bucket, prefix).await
    }

    async fn report(&self) -> Value {
        let reports = self.keys(&self.synced, "reports/").await;
        assert_eq!(reports.len(), 1, "one report: {reports:?}");
        let bytes = self
            .moto
            .get_object(&self.synced, &reports[0])
            .await
            .expect("report");
        serde_json::from_slice(&bytes).expect("json")
    }

    /// The promise, for every row of `csv`: the file is archived; valid rows are in the catalog
    /// with their last row's title; rejected rows are in the report with reasons; nothing was
    /// sent more than `1 + failures` times; no checkpoint is left.
    async fn assert_promise_kept(&self, expected: Expected, attempts: &Attempts, failures: usize) {
        assert!(
            self.keys(&self.landing, "data/").await.is_empty(),
            "the file left the landing folder: {attempts:?}"
        );
        assert_eq!(
            self.keys(&self.landing, "archive/").await,
            ["archive/products.csv"],
            "{attempts:?}"
        );
        let items = self.emulator.items(DEFAULT_CATALOG_ID);
        for (id, title) in &expected.valid {
            let item = items
                .get(id)
                .unwrap_or_else(|| panic!("{id} is not in the catalog: {attempts:?}"));
            assert_eq!(item["title"].as_str(), Some(title.as_str()), "{id}");
        }
        assert_eq!(
            items.len(),
            expected.valid.len(),
            "nothing else is in the catalog"
        );
        let report = self.report().await;
        let reported: BTreeSet<u64> = report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|row| row["outcome"] == "rejected")
            .map(|row| {
                assert!(
                    !row["problems"].as_array().expect("problems").is_empty(),
                    "a rejected row has reasons: {row}"
                );
                row["line"].as_u64().expect("line")
            })
            .collect();
        assert_eq!(
            reported, expected.rejected_lines,
            "every rejected row, once"
        );
        assert_eq!(
            report["counts"]["rejected"].as_u64(),
            Some(expected.rejected_lines.len() as u64)
        );
        let sends = self.sends_per_row();
        let most = sends.values().copied().max().unwrap_or(0);
        assert!(
            most <= 1 + failures,
            "a product was sent {most} times with {failures} failure(s): {sends:?}"
        );
        assert!(
            self.keys(&self.synced, "progress/").await.is_empty(),
            "no checkpoint is left"
        );
    }
}

/// What the file should become, worked out from the generated rows themselves (not by the
/// reader under test): each id ends with the title of its last valid row, and every row that
/// breaks a rule is rejected at its line.
struct Expected {
    valid: BTreeMap<String, String>,
    rejected_lines: BTreeSet<u64>,
}

impl Expected {
    /// The expectation for `file(rows, salt)`.
    fn of(rows: usize, salt: u64) -> Self {
        let mut valid = BTreeMap::new();
        let mut rejected_lines = BTreeSet::new();
        for row in generated_rows(rows, salt) {
            if row.breaks_a_rule {
                rejected_lines.insert(row.line);
            } else {
                valid.insert(row.id, row.title);
            }
        }
        Expected {
            valid,
            rejected_lines,
        }
    }
}

/// One row of a generated file, with what the generator made of it.
struct GeneratedRow {
    /// 1-based CSV line (the header is line 1; no field spans lines).
    line: u64,
    id: String,
    title: String,
    /// Its price has an unquoted decimal comma: one field too many, so the row is rejected.
    breaks_a_rule: bool,
    price: &'static str,
    n: usize,
}

/// The rows of `file(rows, salt)`: every seventh breaks a rule and every eleventh repeats an
/// earlier id with a new title (so "last row wins" is checked too).
fn generated_rows(rows: usize, salt: u64) -> Vec<GeneratedRow> {
    (0..rows)
        .map(|n| {
            let id = if n % 11 == 10 {
                format!("p{salt}-{}", n / 2)
            } else {
                format!("p{salt}-{n}")
            };
            let breaks_a_rule = n % 7 == 6;
            GeneratedRow {
                line: n as u64 + 2,
                id,
                title: format!("Item {n} of {salt}"),
                breaks_a_rule,
                price: if breaks_a_rule {
                    "12,50 EUR"
                } else {
                    "12.50 EUR"
                },
                n,
            }
        })
        .collect()
}

/// A file of `rows` rows (see [`generated_rows`]).
fn file(rows: usize, salt: u64) -> Vec<u8> {
    let mut csv = String::from(
        "id,title,description,link,image_link,availability,price,brand,condition,product_type\n",
    );
    for row in generated_rows(rows, salt) {
        let GeneratedRow {
            id,
            title,
            price,
            n,
            ..
        } = row;
        csv.push_str(&format!(
            "{id},{title},A thing,https://shop.example/{n},https://shop.example/{n}.jpg,in stock,{price},Acme,new,Things\n"
        ));
    }
    csv.into_bytes()
}

/// One failure of the second batch call, repeated past the client's retries.
fn fail_second_batch(stack: &Stack, fault: Fault) {
    stack.pass(1);
    for _ in 0..2 {
        stack
            .emulator
            .push_fault(fault.clone().on(Endpoint::ItemsBatch));
    }
}

async fn run_case(name: &str, inject: impl FnOnce(&Harness), failures: usize) {
    let h = harness(10, 0).await;
    let csv = file(45, 1);
    h.moto.put_object(&h.landing, KEY, csv.clone()).await;
    inject(&h);
    let attempts = h.settle(6, |_| {}).await;
    eprintln!("{name}: {:?}", attempts.outcomes);
    h.assert_promise_kept(Expected::of(45, 1), &attempts, failures)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_server_errors_are_retried_and_the_file_resumes() {
    run_case(
        "5xx",
        |h| fail_second_batch(h, Fault::ServerError { status: 503 }),
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_timeouts_are_retried_and_the_file_resumes() {
    run_case(
        "timeout",
        |h| fail_second_batch(h, Fault::Slow(Duration::from_secs(2))),
        // A timed-out call may still have been taken by Meta.
        2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_and_the_file_resumes() {
    run_case("drop", |h| fail_second_batch(h, Fault::DropConnection), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_with_usage_headers_pauses_the_file_and_it_resumes() {
    run_case(
        "throttle+usage",
        |h| {
            fail_second_batch(
                h,
                Fault::Throttle {
                    code: 80014,
                    regain_access_minutes: Some(1),
                    retry_after_secs: None,
                },
            )
        },
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_without_headers_pauses_the_file_and_it_resumes() {
    run_case(
        "throttle",
        |h| {
            fail_second_batch(
                h,
                Fault::Throttle {
                    code: 4,
                    regain_access_minutes: None,
                    retry_after_secs: None,
                },
            )
        },
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_mid_file_stops_it_until_a_new_token_is_stored() {
    let h = harness(10, 0).await;
    let csv = file(45, 2);
    h.moto.put_object(&h.landing, KEY, csv.clone()).await;
    h.pass(2);
    h.emulator
        .push_fault(Fault::TokenExpired.on(Endpoint::ItemsBatch));
    // The first attempt fails on the token; a person stores a new one before the retry.
    let attempts = h
        .settle(4, |attempt| {
            if attempt == 1 {
                h.emulator.add_token(TOKEN);
            }
        })
        .await;
    let errors = attempts.errors();
    assert_eq!(errors.len(), 1, "{attempts:?}");
    assert!(errors[0].contains("token"), "{}", errors[0]);
    let alerts = h
        .moto
        .receive_sns_messages(&h.alerts_queue, 2, Duration::from_secs(20))
        .await;
    assert!(
        alerts
            .iter()
            .any(|alert| alert.attribute("kind") == Some("token_invalid")),
        "{alerts:?}"
    );
    h.assert_promise_kept(Expected::of(45, 2), &attempts, 0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_catalog_permission_mid_file_fails_the_attempt_and_the_retry_resumes() {
    run_case(
        "permission",
        |h| {
            h.pass(3);
            h.emulator
                .push_fault(Fault::PermissionDenied.on(Endpoint::ItemsBatch));
        },
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_breaks_mid_file_is_retried_not_rejected() {
    run_case(
        "read",
        |h| {
            h.store.fail_read_after_times(KEY, 2500, 1);
        },
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_storage_write_can_fail_once_and_the_file_still_ends_archived() {
    for (op, pattern) in [
        (Op::Put, "synced/"),
        (Op::Put, "pending/"),
        (Op::Put, "progress/"),
        (Op::Put, "reports/"),
        (Op::Copy, "archive/"),
        (Op::Delete, KEY),
        (Op::Head, KEY),
        (Op::List, "progress/"),
    ] {
        run_case(
            &format!("{op:?} {pattern}"),
            |h| {
                h.store.fail(op, pattern, 1);
            },
            1,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_cannot_be_published_does_not_lose_the_result() {
    let h = harness(10, 1).await;
    let csv = file(30, 3);
    h.moto.put_object(&h.landing, KEY, csv.clone()).await;
    let attempts = h.settle(1, |_| {}).await;
    assert!(
        matches!(attempts.outcomes[0], Ok(FileOutcome::Archived { .. })),
        "{attempts:?}"
    );
    assert_eq!(
        h.alerts.attempts(),
        1,
        "the rows-rejected alert was attempted"
    );
    h.assert_promise_kept(Expected::of(30, 3), &attempts, 0)
        .await;
    assert!(
        h.moto
            .receive_sns_messages(&h.alerts_queue, 0, Duration::from_secs(1))
            .await
            .is_empty(),
        "the failed publish delivered nothing (it is in the log)"
    );
}

/// One injected failure of a random schedule.
#[derive(Debug, Clone)]
enum Injected {
    Graph(usize, Fault),
    Store(Op, &'static str),
    ReadBreak(u64),
}

fn injected() -> impl Strategy<Value = Injected> {
    prop_oneof![
        (
            0usize..4,
            prop_oneof![
                Just(Fault::ServerError { status: 500 }),
                Just(Fault::DropConnection),
                Just(Fault::Throttle {
                    code: 17,
                    regain_access_minutes: None,
                    retry_after_secs: Some(30)
                }),
                Just(Fault::PermissionDenied),
            ]
        )
            .prop_map(|(after, fault)| Injected::Graph(after, fault)),
        prop_oneof![
            Just((Op::Put, "synced/")),
            Just((Op::Put, "pending/")),
            Just((Op::Put, "progress/")),
            Just((Op::Put, "reports/")),
            Just((Op::Copy, "archive/")),
            Just((Op::Delete, "data/")),
            Just((Op::Get, "data/")),
        ]
        .prop_map(|(op, pattern)| Injected::Store(op, pattern)),
        (200u64..4000).prop_map(Injected::ReadBreak),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random files, random batch sizes, random faults: once the retries have run, every row
    /// is in the catalog or in the report, and nothing was sent more than once per failure.
    #[test]
    fn random_fault_schedules_keep_the_promise_for_every_row(
        rows in 5usize..80,
        batch_size in 3usize..25,
        salt in 0u64..1000,
        schedule in proptest::collection::vec(injected(), 0..4),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let h = harness(batch_size, 0).await;
            let csv = file(rows, salt);
            h.moto.put_object(&h.landing, KEY, csv.clone()).await;
            for injected in &schedule {
                match injected {
                    Injected::Graph(after, fault) => {
                        h.pass(*after);
                        h.emulator.push_fault(fault.clone().on(Endpoint::ItemsBatch));
                    }
                    Injected::Store(op, pattern) => {
                        h.store.fail(*op, pattern, 1);
                    }
                    Injected::ReadBreak(bytes) => {
                        h.store.fail_read_after_times(KEY, *bytes, 1);
                    }
                }
            }
            let attempts = h.settle(2 + 2 * schedule.len(), |_| {}).await;
            h.assert_promise_kept(Expected::of(rows, salt), &attempts, schedule.len()).await;
        });
    }
}

// ------------------------------------------------- the change-detection state (issue 16)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_cannot_be_read_fails_the_attempt_and_the_retry_sends() {
    run_case(
        "state read",
        |h| {
            h.store.fail(Op::Get, "products.state", 1);
        },
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_notes_that_cannot_be_listed_fail_the_attempt_and_the_retry_sends() {
    run_case(
        "verdicts list",
        |h| {
            h.store.fail(Op::List, "/verdicts/", 1);
        },
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_write_that_fails_means_the_next_run_sends_those_products_again() {
    let h = harness(10, 0).await;
    let csv = file(45, 3);
    h.moto.put_object(&h.landing, KEY, csv.clone()).await;
    h.store.fail(Op::Put, "products.state", 1);
    let attempts = h.settle(3, |_| {}).await;
    h.assert_promise_kept(Expected::of(45, 3), &attempts, 0)
        .await;
    let report = h.report().await;
    assert!(
        report["warnings"]
            .to_string()
            .contains("could not be saved"),
        "{report}"
    );
    let once = h.sends_per_row();

    // Nothing remembered: the same file is sent again, whole; its state is saved this time.
    h.moto.put_object(&h.landing, KEY, csv.clone()).await;
    h.settle(3, |_| {}).await;
    let twice = h.sends_per_row();
    assert!(
        once.keys()
            .all(|row| twice.get(row) == Some(&(once[row] + 1))),
        "every product went again: {twice:?}"
    );
    // And the third time nothing goes but the ids the file repeats (a repeated id is always
    // sent: the last row wins).
    h.moto.put_object(&h.landing, KEY, csv).await;
    h.settle(3, |_| {}).await;
    let thrice = h.sends_per_row();
    let repeated: BTreeSet<String> = generated_rows(45, 3)
        .into_iter()
        .filter(|row| row.n % 11 == 10)
        .map(|row| row.id)
        .collect();
    let resent: Vec<&String> = thrice
        .iter()
        .filter(|(row, count)| twice.get(*row) != Some(count))
        .map(|((id, _), _)| id)
        .collect();
    assert!(
        resent.iter().all(|id| repeated.contains(*id)),
        "only repeated ids went again: {resent:?}"
    );
}
