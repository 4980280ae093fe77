//! The use cases on a local folder and the Graph API emulator over HTTP, in-process: what
//! `catalog-sync run --root DIR --emulator` does, without Python or AWS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use graph::{AccessToken, GraphSettings, RetryPolicy};
use graph_emulator::{
    DEFAULT_CATALOG_ID, EmulatorConfig, Endpoint, Fault, GraphEmulator, RunningEmulator,
};
use sync::graph_api::{GraphCatalog, StaticToken};
use sync::keys::Layout;
use sync::local::{ConsoleAlerts, LANDING_BUCKET, LocalStore, RescanQueue, SYNCED_BUCKET};
use sync::poll::{PollSettings, Poller};
use sync::ports::{ObjectStore, Payload, SystemClock, list_all};
use sync::process::{DEFAULT_MIN_SEND_WINDOW, FileOutcome, FileProcessor, Services, Settings};
use sync::sweep::{SweepLimits, Sweeper};

const TOKEN: &str = "local-use-case-token";

/// A landing folder, the emulator, and a processor wired as `catalog-sync run` wires it.
struct Local {
    dir: tempfile::TempDir,
    store: Arc<LocalStore>,
    catalog: Arc<GraphCatalog>,
    emulator: RunningEmulator,
    processor: FileProcessor,
}

async fn local() -> Local {
    local_with(EmulatorConfig::default()).await
}

/// [`local`] with an emulator configured otherwise (its token is always [`TOKEN`]).
async fn local_with(config: EmulatorConfig) -> Local {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(LocalStore::new(dir.path()));
    let emulator = GraphEmulator::start(EmulatorConfig {
        tokens: vec![TOKEN.to_owned()],
        ..config
    })
    .await
    .expect("emulator");
    let catalog = GraphCatalog::connect(
        GraphSettings {
            base_url: emulator.url(),
            ..GraphSettings::default()
        },
        DEFAULT_CATALOG_ID,
        RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            max_throttle_wait: Duration::from_secs(1),
        },
        Arc::new(StaticToken(AccessToken::new(TOKEN))),
    )
    .await
    .expect("catalog");
    let catalog = Arc::new(catalog);
    let services = Services {
        store: store.clone(),
        catalog: catalog.clone(),
        alerts: Arc::new(ConsoleAlerts::in_root(dir.path(), false)),
        clock: Arc::new(SystemClock),
        continuations: Arc::new(RescanQueue),
    };
    let settings = Settings {
        layout: Layout {
            landing_bucket: LANDING_BUCKET.to_owned(),
            synced_bucket: SYNCED_BUCKET.to_owned(),
            ..Layout::default()
        },
        batch_limits: catalog::BatchLimits::new(40).expect("batch size"),
        mapping: catalog::ProductTypeMapping::default(),
        column_mapping: catalog::ColumnMapping::default(),
        reader_limits: catalog::ReaderLimits::default(),
        min_send_window: DEFAULT_MIN_SEND_WINDOW,
        changes: sync::config::ChangeSettings::default(),
    };
    Local {
        dir,
        store,
        catalog,
        emulator,
        processor: FileProcessor::new(services, settings),
    }
}

impl Local {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    async fn land(&self, key: &str, bytes: Vec<u8>) {
        self.store
            .put(
                LANDING_BUCKET,
                key,
                Payload::Bytes(Bytes::from(bytes)),
                "text/csv",
            )
            .await
            .expect("land");
    }

    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        list_all(self.store.as_ref(), bucket, prefix)
            .await
            .expect("list")
            .into_iter()
            .map(|object| object.key)
            .collect()
    }

    /// Products the emulator accepted, counted per id.
    fn accepted_ids(&self) -> std::collections::BTreeMap<String, usize> {
        let mut ids = std::collections::BTreeMap::new();
        for request in self.emulator.requests() {
            if request.endpoint != Some(Endpoint::ItemsBatch) || request.status != Some(200) {
                continue;
            }
            for item in request
                .requests_json()
                .and_then(|requests| requests.as_array().cloned())
                .unwrap_or_default()
            {
                if let Some(id) = item["data"]["id"].as_str() {
                    *ids.entry(id.to_owned()).or_insert(0) += 1;
                }
            }
        }
        ids
    }
}

/// The ids of a generated export, read from its rows (not through the reader under test).
fn ids_of(csv: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(csv).expect("utf-8");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let id_column = header.iter().position(|name| *name == "id").expect("id");
    lines
        .map(|line| line.split(',').nth(id_column).expect("id field").to_owned())
        .collect()
}

fn generated(rows: u64) -> Vec<u8> {
    let mut csv = Vec::new();
    catalog::synthetic::write_products(&mut csv, rows, 7).expect("generate");
    csv
}

#[tokio::test]
async fn a_file_whose_finish_failed_once_is_finished_by_the_next_run() {
    let local = local().await;
    let csv = generated(100);
    let expected_ids = ids_of(&csv);
    local.land("data/export.csv", csv).await;
    // The archive folder cannot be created: a plain file stands where it should be.
    let blocker = local.root().join(LANDING_BUCKET).join("archive");
    std::fs::write(&blocker, b"in the way").expect("blocker");

    let first = local
        .processor
        .process(LANDING_BUCKET, "data/export.csv", None)
        .await;
    assert!(first.is_err(), "the archive move fails: {first:?}");
    assert_eq!(
        local.keys(LANDING_BUCKET, "data/").await,
        ["data/export.csv"]
    );
    assert!(
        !local.keys(SYNCED_BUCKET, "progress/").await.is_empty(),
        "the checkpoint stays for the next run"
    );

    std::fs::remove_file(&blocker).expect("unblock");
    let second = local
        .processor
        .process(LANDING_BUCKET, "data/export.csv", None)
        .await
        .expect("the next run finishes the file");
    let FileOutcome::Archived { counts, .. } = second else {
        panic!("archived, not {second:?}");
    };
    assert_eq!(counts.rows_read, 100);
    assert_eq!(counts.sent, 100);
    assert!(local.keys(LANDING_BUCKET, "data/").await.is_empty());
    assert_eq!(
        local.keys(LANDING_BUCKET, "archive/").await,
        ["archive/export.csv"]
    );
    assert!(local.keys(SYNCED_BUCKET, "progress/").await.is_empty());
    let accepted = local.accepted_ids();
    assert_eq!(accepted.len(), expected_ids.len());
    for id in &expected_ids {
        assert_eq!(accepted.get(id), Some(&1), "{id} sent exactly once");
    }
}

impl Local {
    fn services(&self) -> Services {
        Services {
            store: self.store.clone(),
            catalog: self.processor_catalog(),
            alerts: Arc::new(ConsoleAlerts::in_root(self.root(), false)),
            clock: Arc::new(SystemClock),
            continuations: Arc::new(RescanQueue),
        }
    }

    fn processor_catalog(&self) -> Arc<dyn sync::ports::CatalogApi> {
        self.catalog.clone()
    }

    /// The poller over the same folder and emulator, without the sweep.
    fn poller(&self) -> Poller {
        Poller::new(
            self.services(),
            PollSettings {
                layout: self.processor.layout().clone(),
                pending_max_age: Duration::from_secs(24 * 3600),
                concurrency: 2,
                sweep: None,
            },
        )
    }

    /// Processes `key` and returns its counts, report and batches; panics unless archived.
    async fn archive(&self, key: &str) -> (sync::report::Counts, String, usize) {
        let outcome = self
            .processor
            .process(LANDING_BUCKET, key, None)
            .await
            .expect("processed");
        let FileOutcome::Archived {
            counts,
            report_key,
            batches,
            ..
        } = outcome
        else {
            panic!("archived, not {outcome:?}");
        };
        (counts, report_key, batches)
    }

    fn alert_log(&self) -> String {
        std::fs::read_to_string(self.root().join(sync::local::ALERTS_LOG)).unwrap_or_default()
    }
}

#[tokio::test]
async fn the_poller_records_every_verdict_of_a_locally_sent_file() {
    let local = local().await;
    local.land("data/export.csv", generated(100)).await;
    let (_, _, batches) = local.archive("data/export.csv").await;
    assert_eq!(batches, 3, "100 rows in batches of 40");
    assert_eq!(local.keys(SYNCED_BUCKET, "pending/").await.len(), 3);

    let poller = local.poller();
    // The emulator answers "in progress" once per handle, then "finished".
    let first = poller.run(None).await.expect("first poll");
    assert_eq!(first.pending_found, 3);
    assert_eq!(first.still_pending, 3);
    assert_eq!(first.finished, 0);
    assert_eq!(local.keys(SYNCED_BUCKET, "pending/").await.len(), 3);
    let summary = poller.run(None).await.expect("second poll");
    assert_eq!(summary.pending_found, 3);
    assert_eq!(summary.finished, 3);
    assert_eq!(summary.alerts_sent, 0, "clean batches need no alert");
    assert!(local.keys(SYNCED_BUCKET, "pending/").await.is_empty());
    assert_eq!(local.keys(SYNCED_BUCKET, "checked/").await.len(), 3);
}

#[tokio::test]
async fn the_sweep_gives_up_on_a_file_left_behind_through_the_finishing_path() {
    let local = local().await;
    local.land("data/left behind.csv", generated(5)).await;
    let sweeper = Sweeper::new(
        local.services(),
        local.processor.layout().clone(),
        SweepLimits {
            stale_file_age: Duration::ZERO,
            max_redrives: 0,
        },
    );
    let summary = sweeper.run().await.expect("sweep");
    assert_eq!(summary.failed, ["failed/left behind.csv"]);
    assert!(local.keys(LANDING_BUCKET, "data/").await.is_empty());
    assert_eq!(
        local.keys(LANDING_BUCKET, "failed/").await,
        [
            "failed/left behind.csv",
            "failed/left behind.csv.report.json"
        ]
    );
    assert_eq!(local.keys(SYNCED_BUCKET, "reports/").await.len(), 1);
    assert!(local.keys(SYNCED_BUCKET, "progress/").await.is_empty());
    let log = local.alert_log();
    assert!(log.contains("send_failed"), "{log}");
    assert!(log.contains("gave up on data/left behind.csv"), "{log}");
    assert!(
        log.contains("copy the file from failed/ back into data/"),
        "{log}"
    );
}

impl Local {
    /// The JSON objects under `prefix` of the synced bucket.
    async fn synced_json(&self, prefix: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for key in self.keys(SYNCED_BUCKET, prefix).await {
            let path = self.root().join(SYNCED_BUCKET).join(&key);
            let text = std::fs::read_to_string(&path).expect("readable");
            out.push(serde_json::from_str(&text).expect("json"));
        }
        out
    }
}

/// When Meta finds a batch too large, the client splits it; if the first half is accepted and
/// the second fails, the first half's handle is still recorded and polled, and the retry sends
/// the whole batch again (issue 15).
#[tokio::test]
async fn the_accepted_half_of_a_split_batch_is_recorded_when_the_other_half_fails() {
    let local = local().await;
    local.land("data/export.csv", generated(40)).await;
    local
        .emulator
        .push_fault(Fault::PayloadTooLarge.on(Endpoint::ItemsBatch));
    // The first half goes through untouched; the second half is refused for good.
    local
        .emulator
        .push_fault(Fault::Slow(Duration::ZERO).on(Endpoint::ItemsBatch));
    local
        .emulator
        .push_fault(Fault::PermissionDenied.on(Endpoint::ItemsBatch));
    let first = local
        .processor
        .process(LANDING_BUCKET, "data/export.csv", None)
        .await;
    assert!(first.is_err(), "the second half failed: {first:?}");
    let pending = local.synced_json("pending/").await;
    assert_eq!(pending.len(), 1, "the accepted half's handle is pending");
    assert_eq!(pending[0]["item_count"], 20);
    assert_eq!(
        local.keys(LANDING_BUCKET, "data/").await,
        ["data/export.csv"]
    );

    // The retry sends the whole batch again.
    local.archive("data/export.csv").await;
    assert_eq!(local.synced_json("pending/").await.len(), 2);
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 40);

    let poller = local.poller();
    poller.run(None).await.expect("first poll");
    let summary = poller.run(None).await.expect("second poll");
    assert_eq!(summary.finished, 2, "both handles get their verdict");
    assert!(local.keys(SYNCED_BUCKET, "pending/").await.is_empty());
}

/// Products Meta refuses while taking the call are counted once each and reported with their
/// CSV lines, and the call is not sent again; a call Meta takes nothing of (no `handles` key)
/// counts each of its products once (issue 15).
#[tokio::test]
async fn products_refused_at_once_are_counted_once_with_their_lines() {
    let local = local().await;
    let csv = generated(40);
    let ids = ids_of(&csv);
    local.emulator.refuse_at_once(
        &[ids[0].as_str(), ids[2].as_str()],
        "The price is not valid for this currency",
    );
    local.land("data/export.csv", csv.clone()).await;
    let (counts, report_key, _) = local.archive("data/export.csv").await;
    assert_eq!(counts.refused_by_meta, 2);
    assert_eq!(counts.sent, 38);
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 38);
    let calls = local
        .emulator
        .requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::ItemsBatch))
        .count();
    assert_eq!(
        calls, 1,
        "a refusal is not a failed call: nothing is re-sent"
    );
    let report_path = local.root().join(SYNCED_BUCKET).join(&report_key);
    let report = std::fs::read_to_string(report_path).expect("report");
    assert!(
        report.contains(&ids[0]) && report.contains(&ids[2]),
        "{report}"
    );
    assert!(
        report.contains("\"line\":2") && report.contains("\"line\":4"),
        "{report}"
    );
    let log = local.alert_log();
    assert!(log.contains("rows_rejected"), "{log}");

    // The same file again: the 38 Meta took are unchanged and not sent; the 2 it refused go
    // again. This time Meta refuses every product of the call: no handle (no `handles` key at
    // all), each counted once.
    let again: Vec<&str> = ids.iter().map(String::as_str).collect();
    local.emulator.refuse_at_once(&again, "Temporarily refused");
    local.land("data/export.csv", csv).await;
    let (counts, _, _) = local.archive("data/export.csv").await;
    assert_eq!(
        (counts.refused_by_meta, counts.sent, counts.unchanged),
        (2, 0, 38)
    );
    assert_eq!(
        local.synced_json("pending/").await.len(),
        1,
        "only the first run's handle waits: a call with no handle has nothing to poll"
    );
}

/// A version Meta no longer serves (code 2635) stops the file with a `send_failed` alert that
/// says to set `GRAPH_API_VERSION`; the file stays in `data/` for the next attempt (issue 15).
#[tokio::test]
async fn a_retired_api_version_stops_with_an_alert_naming_the_setting() {
    let local = local_with(EmulatorConfig {
        // Everything before a version newer than the product's default is retired.
        oldest_served_version: "v999.0".to_owned(),
        ..EmulatorConfig::default()
    })
    .await;
    local.land("data/export.csv", generated(5)).await;
    let outcome = local
        .processor
        .process(LANDING_BUCKET, "data/export.csv", None)
        .await;
    let error = outcome.expect_err("nothing can be sent");
    assert!(error.to_string().contains("GRAPH_API_VERSION"), "{error}");
    assert_eq!(
        local.keys(LANDING_BUCKET, "data/").await,
        ["data/export.csv"]
    );
    let log = local.alert_log();
    assert!(log.contains("send_failed"), "{log}");
    assert!(log.contains("GRAPH_API_VERSION"), "{log}");
    let sends = local
        .emulator
        .requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::ItemsBatch))
        .count();
    assert_eq!(sends, 1, "a retired version is not retried");
}

// ------------------------------------------------------------------ change detection (issue 16)

/// `csv` with the brand of the data rows at `rows` (0-based) changed.
fn with_brand_changed(csv: &[u8], rows: &[usize]) -> Vec<u8> {
    let text = std::str::from_utf8(csv).expect("utf-8");
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
        let changed = index > 0 && rows.contains(&(index - 1));
        let line = if changed {
            line.replace(",Hearth & Co,", ",Hearth & Sons,")
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

/// `csv` without the data rows at `rows` (0-based).
fn without_rows(csv: &[u8], rows: &[usize]) -> Vec<u8> {
    let text = std::str::from_utf8(csv).expect("utf-8");
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
        if index > 0 && rows.contains(&(index - 1)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

impl Local {
    /// `items_batch` calls the emulator answered so far.
    fn batch_calls(&self) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.endpoint == Some(Endpoint::ItemsBatch))
            .count()
    }

    /// Polls until no handle is pending (the emulator finishes each on its second check).
    async fn poll_until_done(&self) {
        let poller = self.poller();
        for _ in 0..5 {
            let summary = poller.run(None).await.expect("poll");
            if summary.pending_found == summary.finished + summary.canceled + summary.errored {
                return;
            }
        }
        panic!("handles still pending after five polls");
    }

    async fn state(&self) -> sync::state::ProductState {
        sync::state::StateStore::new(self.store.as_ref(), SYNCED_BUCKET, DEFAULT_CATALOG_ID)
            .load()
            .await
            .expect("state readable")
            .state
    }
}

#[tokio::test]
async fn the_same_file_twice_sends_nothing_and_changed_rows_send_only_themselves() {
    let local = local().await;
    let csv = generated(100);
    local.land("data/export.csv", csv.clone()).await;
    let (first, _, batches) = local.archive("data/export.csv").await;
    assert_eq!((first.sent, first.unchanged, batches), (100, 0, 3));
    let calls = local.batch_calls();

    local.land("data/export.csv", csv.clone()).await;
    let (second, report_key, batches) = local.archive("data/export.csv").await;
    assert_eq!((second.sent, second.unchanged, batches), (0, 100, 0));
    assert_eq!(local.batch_calls(), calls, "no items_batch call at all");
    let report =
        std::fs::read_to_string(local.root().join(SYNCED_BUCKET).join(report_key)).expect("report");
    assert!(report.contains("\"unchanged\":100"), "{report}");

    // The poller's verdicts are folded in on the next run; three rows change.
    local.poll_until_done().await;
    local
        .land("data/export.csv", with_brand_changed(&csv, &[0, 50, 99]))
        .await;
    let (third, _, batches) = local.archive("data/export.csv").await;
    assert_eq!((third.sent, third.unchanged, batches), (3, 97, 1));
    let ids = ids_of(&csv);
    let items = local.emulator.items(DEFAULT_CATALOG_ID);
    for row in [0, 50, 99] {
        assert_eq!(items[&ids[row]]["brand"], "Hearth & Sons", "{}", ids[row]);
    }
    let state = local.state().await;
    let summary = state.summary(i64::MAX / 2, Duration::from_secs(u64::MAX / 4));
    assert_eq!(summary.remembered, 100);
    let entry = state.entry(&ids[1]).expect("remembered");
    assert_eq!(entry.standing, sync::state::Standing::Confirmed);
    assert_eq!(
        state.entry(&ids[50]).expect("remembered").standing,
        sync::state::Standing::Sent,
        "its new version waits for a verdict"
    );
}

#[tokio::test]
async fn a_snapshot_deletes_exactly_the_products_it_no_longer_holds() {
    let local = local().await;
    let csv = generated(100);
    let ids = ids_of(&csv);
    local.land("data/full/catalog.csv", csv.clone()).await;
    let (first, _, _) = local.archive("data/full/catalog.csv").await;
    assert_eq!((first.sent, first.deleted), (100, 0));
    local.poll_until_done().await;

    let gone = [3usize, 40, 41, 77, 98];
    local
        .land("data/full/catalog.csv", without_rows(&csv, &gone))
        .await;
    let (second, _, batches) = local.archive("data/full/catalog.csv").await;
    assert_eq!(
        (second.unchanged, second.deleted, second.sent, batches),
        (95, 5, 5, 1)
    );
    let items = local.emulator.items(DEFAULT_CATALOG_ID);
    assert_eq!(items.len(), 95);
    for row in gone {
        assert!(!items.contains_key(&ids[row]), "{} deleted", ids[row]);
    }
    // A delta file (outside data/full/) never deletes.
    let not_in_delta: Vec<usize> = (0..100).filter(|row| !(10..20).contains(row)).collect();
    let delta = with_brand_changed(&without_rows(&csv, &not_in_delta), &[0]);
    local.land("data/delta.csv", delta).await;
    let (delta, _, _) = local.archive("data/delta.csv").await;
    assert_eq!((delta.sent, delta.unchanged, delta.deleted), (1, 9, 0));

    // Once Meta confirms, the deleted products are forgotten; the same snapshot again sends
    // nothing.
    local.poll_until_done().await;
    local
        .land("data/full/catalog.csv", without_rows(&csv, &gone))
        .await;
    let (third, _, batches) = local.archive("data/full/catalog.csv").await;
    // Row 10's brand changed in the delta; the snapshot puts it back.
    assert_eq!((third.sent, third.deleted, batches), (1, 0, 1));
    let state = local.state().await;
    assert!(
        state.entry(&ids[3]).is_none(),
        "forgotten after Meta confirmed"
    );
    assert_eq!(state.known(), 95);
}

#[tokio::test]
async fn an_empty_or_mostly_empty_snapshot_deletes_nothing_until_released() {
    let local = local().await;
    let csv = generated(100);
    local.land("data/full/catalog.csv", csv.clone()).await;
    local.archive("data/full/catalog.csv").await;

    let header_only = csv.split(|b| *b == b'\n').next().expect("header").to_vec();
    local.land("data/full/catalog.csv", header_only).await;
    let outcome = local
        .processor
        .process(LANDING_BUCKET, "data/full/catalog.csv", None)
        .await
        .expect("processed");
    let FileOutcome::Rejected { counts, .. } = outcome else {
        panic!("a header-only file is rejected, not {outcome:?}");
    };
    assert_eq!((counts.deleted, counts.deletes_held), (0, 100));
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 100);
    let log = local.alert_log();
    assert!(log.contains("deletes_held"), "{log}");
    assert!(log.contains("header only"), "{log}");

    // A truncated one: the first ten rows.
    let truncated = without_rows(&csv, &(10..100).collect::<Vec<_>>());
    local.land("data/full/catalog.csv", truncated).await;
    let (cut, _, batches) = local.archive("data/full/catalog.csv").await;
    assert_eq!((cut.deleted, cut.deletes_held, batches), (0, 90, 0));
    assert!(
        local
            .alert_log()
            .contains("catalog-sync replay --allow-deletes archive/full/catalog.csv"),
        "{}",
        local.alert_log()
    );

    // Half the catalog missing: its updates go, its deletes are held.
    let half: Vec<usize> = (50..100).collect();
    let mostly = with_brand_changed(&without_rows(&csv, &half), &[0]);
    local.land("data/full/catalog.csv", mostly.clone()).await;
    let (held, _, _) = local.archive("data/full/catalog.csv").await;
    assert_eq!((held.sent, held.deleted, held.deletes_held), (1, 0, 50));
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 100);

    // A person releases them: the same snapshot again deletes the 50, once.
    sync::state::StateStore::new(local.store.as_ref(), SYNCED_BUCKET, DEFAULT_CATALOG_ID)
        .release_deletes("data/full/catalog.csv")
        .await
        .expect("release");
    local.land("data/full/catalog.csv", mostly.clone()).await;
    let (released, _, _) = local.archive("data/full/catalog.csv").await;
    assert_eq!((released.deleted, released.deletes_held), (50, 0));
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 50);
    assert!(
        local
            .keys(SYNCED_BUCKET, "state/")
            .await
            .iter()
            .all(|k| !k.contains("/release/")),
        "a release is used once"
    );
}

#[tokio::test]
async fn a_product_refused_in_its_verdict_is_sent_again() {
    let local = local().await;
    let csv = generated(40);
    local
        .emulator
        .push_outcome(graph_emulator::BatchOutcome::Error);
    local.land("data/export.csv", csv.clone()).await;
    let (first, _, _) = local.archive("data/export.csv").await;
    assert_eq!(first.sent, 40);
    local.poll_until_done().await;
    local.land("data/export.csv", csv).await;
    let (second, _, _) = local.archive("data/export.csv").await;
    assert_eq!(
        (second.sent, second.unchanged),
        (40, 0),
        "a batch that ended in error applied nothing this run can rely on"
    );
}

#[tokio::test]
async fn a_damaged_state_is_started_over_with_a_warning() {
    let local = local().await;
    let csv = generated(40);
    local.land("data/export.csv", csv.clone()).await;
    local.archive("data/export.csv").await;
    let state_file = local
        .root()
        .join(SYNCED_BUCKET)
        .join(sync::keys::state_key(DEFAULT_CATALOG_ID));
    let mut bytes = std::fs::read(&state_file).expect("state written");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&state_file, bytes).expect("damage");

    local.land("data/export.csv", csv).await;
    let (again, _, _) = local.archive("data/export.csv").await;
    assert_eq!(
        (again.sent, again.unchanged),
        (40, 0),
        "everything is sent once more"
    );
    let log = local.alert_log();
    assert!(log.contains("state_reset"), "{log}");
    assert_eq!(local.state().await.len(), 40, "a new state was saved");
}
/// Delete requests Meta took are counted on their own (`deleted`, part of `sent`) in the
/// outcome, the report and the alert; a delete Meta refused at once is refused, not deleted;
/// and the count survives a checkpoint (issue 14).
#[tokio::test]
async fn deletes_are_counted_on_their_own_and_across_a_checkpoint() {
    let local = local().await;
    let csv = generated(100);
    let ids = ids_of(&csv);
    local.land("data/export.csv", csv).await;
    local.archive("data/export.csv").await;
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 100);

    let deletes = |ids: &[String]| -> Vec<u8> {
        let mut file = String::from("id,method\n");
        for id in ids {
            file.push_str(&format!("{id},delete\n"));
        }
        file.into_bytes()
    };
    local
        .emulator
        .refuse_at_once(&[ids[2].as_str()], "Temporarily refused");
    local.land("data/deletes.csv", deletes(&ids[..3])).await;
    let (counts, report_key, _) = local.archive("data/deletes.csv").await;
    assert_eq!(
        (counts.sent, counts.deleted, counts.refused_by_meta),
        (2, 2, 1)
    );
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 98);
    let report_path = local.root().join(SYNCED_BUCKET).join(&report_key);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_path).expect("report")).expect("json");
    assert_eq!(report["counts"]["deleted"], 2);
    assert_eq!(report["counts"]["sent"], 2);
    let log = local.alert_log();
    assert!(log.contains("sent 2 products (2 of them deletes)"), "{log}");

    // 60 deletes in batches of 40: the second call is throttled longer than the client waits,
    // so the run is checkpointed after the first; the next run resumes and counts all 60.
    local
        .emulator
        .push_fault(Fault::Slow(Duration::ZERO).on(Endpoint::ItemsBatch));
    local.emulator.push_fault(
        Fault::Throttle {
            code: 80014,
            regain_access_minutes: None,
            retry_after_secs: Some(2),
        }
        .on(Endpoint::ItemsBatch),
    );
    local.land("data/more.csv", deletes(&ids[10..70])).await;
    let first = local
        .processor
        .process(LANDING_BUCKET, "data/more.csv", None)
        .await
        .expect("deferred");
    assert!(
        matches!(
            first,
            FileOutcome::Deferred {
                batches_sent: 1,
                ..
            }
        ),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (counts, _, _) = local.archive("data/more.csv").await;
    assert_eq!((counts.sent, counts.deleted), (60, 60));
    assert_eq!(local.emulator.items(DEFAULT_CATALOG_ID).len(), 38);
}

impl Local {
    /// A processor over the same folder and emulator that reads columns through the
    /// `COLUMN_MAPPING` spec `spec`.
    fn processor_with_mapping(&self, spec: &str) -> FileProcessor {
        let settings = Settings {
            layout: self.processor.layout().clone(),
            batch_limits: catalog::BatchLimits::new(40).expect("batch size"),
            mapping: catalog::ProductTypeMapping::default(),
            column_mapping: sync::config::parse_column_mapping(spec).expect("a valid mapping"),
            reader_limits: catalog::ReaderLimits::default(),
            min_send_window: DEFAULT_MIN_SEND_WINDOW,
            changes: sync::config::ChangeSettings::default(),
        };
        FileProcessor::new(self.services(), settings)
    }
}

/// A retailer's column renamed to a Meta field and a fixed value for every row arrive in the
/// catalog as Meta's fields; a column matching neither is named once in the report's warning,
/// with the nearest field (issue 14).
#[tokio::test]
async fn a_renamed_column_and_a_fixed_value_arrive_as_metas_fields() {
    let local = local().await;
    let processor =
        local.processor_with_mapping("sale_price=SalePrice; condition:=new; brand = Marke");
    let csv = "\
id,title,description,link,image_link,availability,price,Marke,SalePrice,Colour
SKU-1,Mug,Stoneware mug,https://shop.example/p/1,https://cdn.example/1.jpg,in stock,10.00 USD,Hearth,8.00 USD,red
SKU-2,Bowl,Stoneware bowl,https://shop.example/p/2,https://cdn.example/2.jpg,in stock,12.00 USD,Hearth,,blue
";
    local.land("data/mapped.csv", csv.as_bytes().to_vec()).await;
    let outcome = processor
        .process(LANDING_BUCKET, "data/mapped.csv", None)
        .await
        .expect("processed");
    let FileOutcome::Archived {
        counts, report_key, ..
    } = outcome
    else {
        panic!("archived, not {outcome:?}");
    };
    assert_eq!((counts.rows_read, counts.sent, counts.rejected), (2, 2, 0));

    let items = local.emulator.items(DEFAULT_CATALOG_ID);
    let first = &items["SKU-1"];
    assert_eq!(first["condition"], "new", "{first}");
    assert_eq!(first["brand"], "Hearth", "{first}");
    assert!(
        first["sale_price"].to_string().contains("8.00"),
        "the renamed column arrives as sale_price: {first}"
    );
    let second = &items["SKU-2"];
    assert_eq!(second["condition"], "new", "{second}");
    assert!(
        second.get("sale_price").is_none(),
        "an empty value is not sent: {second}"
    );
    for item in [first, second] {
        assert!(
            item.get("SalePrice").is_none() && item.get("Colour").is_none(),
            "{item}"
        );
    }

    let report_path = local.root().join(SYNCED_BUCKET).join(&report_key);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_path).expect("report")).expect("json");
    assert_eq!(
        report["warnings"],
        serde_json::json!(["extra columns ignored: Colour (did you mean color?)"])
    );

    // Without the mapping the same file lacks condition, and is rejected naming it.
    local
        .land("data/unmapped.csv", csv.as_bytes().to_vec())
        .await;
    let outcome = local
        .processor
        .process(LANDING_BUCKET, "data/unmapped.csv", None)
        .await
        .expect("processed");
    assert!(
        matches!(outcome, FileOutcome::Rejected { .. }),
        "{outcome:?}"
    );
}
