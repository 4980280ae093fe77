//! Figures, never pass/fail: wall time of one poll run over 1,000 pending handles when every
//! status call takes 50 ms (the Graph API emulator's added latency), at concurrency 8 and 32.
//!
//! Storage is moto's S3 (a Python server, as in the integration tests) and, to show the
//! poller's own cost apart from moto's, an in-memory store. Alerts go nowhere.
//!
//! Run: `cargo bench -p sync --bench poll`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use graph::{AccessToken, GraphClient, GraphSettings, RetryPolicy};
use graph_emulator::{DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, GraphEmulator};
use serde_json::json;
use sync::adapters::aws::S3Store;
use sync::alert::Alert;
use sync::graph_api::{GraphCatalog, StaticToken};
use sync::keys::{self, Layout};
use sync::poll::{PollSettings, Poller};
use sync::ports::{
    AlertError, AlertSink, ListPage, ObjectBody, ObjectInfo, ObjectStore, Payload, StoreError,
    SystemClock,
};
use sync::process::Services;
use sync::report::PendingRecord;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const HANDLES: usize = 1000;
const LATENCY: Duration = Duration::from_millis(50);

/// Alerts dropped: a clean run publishes none anyway.
struct NoAlerts;

#[async_trait]
impl AlertSink for NoAlerts {
    async fn publish(&self, _alert: &Alert) -> Result<(), AlertError> {
        Ok(())
    }
}

/// A minimal in-memory object store (no ETags, no ranges beyond `from`).
#[derive(Default)]
struct MemoryStore {
    objects: Mutex<BTreeMap<(String, String), Bytes>>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Bytes>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn info(key: &str, bytes: &Bytes) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        size: bytes.len() as u64,
        etag: None,
        last_modified: None,
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let objects = self.lock();
        Ok(objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|b| info(key, b)))
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        from: u64,
        _if_match: Option<&str>,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, StoreError> {
        let objects = self.lock();
        Ok(objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|bytes| {
                let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
                let body: ObjectBody = Box::pin(std::io::Cursor::new(bytes.slice(start..)));
                (info(key, bytes), body)
            }))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        payload: Payload,
        _content_type: &str,
    ) -> Result<(), StoreError> {
        let bytes = match payload {
            Payload::Bytes(bytes) => bytes,
            Payload::File(path) => Bytes::from(std::fs::read(path).unwrap_or_default()),
        };
        self.lock()
            .insert((bucket.to_owned(), key.to_owned()), bytes);
        Ok(())
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<(), StoreError> {
        let mut objects = self.lock();
        if let Some(bytes) = objects.get(&(bucket.to_owned(), from.to_owned())).cloned() {
            objects.insert((bucket.to_owned(), to.to_owned()), bytes);
        }
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.lock().remove(&(bucket.to_owned(), key.to_owned()));
        Ok(())
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        _next: Option<String>,
    ) -> Result<ListPage, StoreError> {
        let objects = self.lock();
        Ok(ListPage {
            objects: objects
                .iter()
                .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
                .map(|((_, k), bytes)| info(k, bytes))
                .collect(),
            next: None,
        })
    }
}

/// Sends `HANDLES` one-product batches and writes their pending records into `store`.
async fn seed(store: &dyn ObjectStore, client: &GraphClient, synced: &str) {
    let now = OffsetDateTime::now_utc();
    let sent_at = now.format(&Rfc3339).unwrap_or_default();
    futures::stream::iter(0..HANDLES)
        .map(|i| {
            let sent_at = sent_at.clone();
            async move {
                let requests = json!([{"method": "UPDATE", "data": {
                    "id": format!("sku-{i}"), "title": "Mug", "description": "A mug",
                    "availability": "in stock", "condition": "new", "price": "9.99 USD",
                    "link": "https://shop.example/p", "image_link": "https://shop.example/p.jpg",
                    "brand": "Mugs", "google_product_category": "Home"}}])
                .to_string();
                let response = client
                    .items_batch(DEFAULT_CATALOG_ID, &requests)
                    .await
                    .expect("emulator takes the batch");
                let handle = response.handles[0].clone();
                let record = PendingRecord {
                    catalog_id: DEFAULT_CATALOG_ID.to_owned(),
                    handle: handle.clone(),
                    source_bucket: "landing".to_owned(),
                    source_key: format!("data/bench-{}.csv", i % 10),
                    run_id: "bench".to_owned(),
                    batch_key: keys::synced_batch_key(now, "bench", 1, None),
                    report_key: keys::report_key(now, "bench"),
                    item_count: 1,
                    sent_at,
                    lines: vec![2],
                    stuck_alerted: false,
                    landed_at: None,
                };
                store
                    .put(
                        synced,
                        &keys::pending_key(&handle),
                        Payload::from(serde_json::to_vec(&record).unwrap_or_default()),
                        "application/json",
                    )
                    .await
                    .expect("pending record stored");
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
}

async fn bench() {
    let emulator = GraphEmulator::start(EmulatorConfig {
        checks_until_finished: 0,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let settings = GraphSettings {
        base_url: emulator.url(),
        ..GraphSettings::default()
    };
    let client =
        GraphClient::new(settings.clone(), AccessToken::new(DEFAULT_TOKEN)).expect("client builds");
    let catalog = Arc::new(
        GraphCatalog::connect(
            settings,
            DEFAULT_CATALOG_ID,
            RetryPolicy::default(),
            Arc::new(StaticToken(AccessToken::new(DEFAULT_TOKEN))),
        )
        .await
        .expect("catalog connects"),
    );
    let moto = testkit::MotoServer::start();

    println!(
        "poll run over {HANDLES} pending handles, {} ms per status call",
        LATENCY.as_millis()
    );
    println!(
        "{:<8} {:>11} {:>10} {:>15} {:>14}",
        "store", "concurrency", "wall (s)", "handles/s", "floor (s)"
    );
    for store_name in ["moto-s3", "memory"] {
        for concurrency in [8usize, 32] {
            let synced = testkit::unique_name("bench-synced");
            let store: Arc<dyn ObjectStore> = if store_name == "moto-s3" {
                moto.create_bucket(&synced).await;
                Arc::new(S3Store::new(moto.s3_client()))
            } else {
                Arc::new(MemoryStore::default())
            };
            emulator.set_latency(Duration::ZERO);
            seed(store.as_ref(), &client, &synced).await;
            emulator.set_latency(LATENCY);

            let poller = Poller::new(
                Services {
                    store,
                    catalog: catalog.clone(),
                    alerts: Arc::new(NoAlerts),
                    clock: Arc::new(SystemClock),
                    continuations: Arc::new(sync::progress::NoQueue),
                },
                PollSettings {
                    sweep: None,
                    layout: Layout {
                        synced_bucket: synced,
                        ..Layout::default()
                    },
                    pending_max_age: Duration::from_secs(24 * 3600),
                    concurrency,
                },
            );
            let started = Instant::now();
            let summary = poller.run(None).await.expect("poll run");
            let wall = started.elapsed();
            let floor = LATENCY.as_secs_f64() * HANDLES as f64 / concurrency as f64;
            println!(
                "{store_name:<8} {concurrency:>11} {:>10.2} {:>15.0} {:>14.2}",
                wall.as_secs_f64(),
                summary.finished as f64 / wall.as_secs_f64(),
                floor
            );
            if summary.finished != HANDLES as u64 {
                println!(
                    "  (only {} of {HANDLES} finished: {summary:?})",
                    summary.finished
                );
            }
        }
    }
    println!("floor = latency x handles / concurrency: the time the status calls alone need");
}

fn main() {
    // `cargo test --benches` runs benches with `--bench`-less arguments; a quick exit keeps
    // `cargo test --all-targets` fast.
    if !std::env::args().any(|a| a == "--bench") {
        println!("poll bench: run with `cargo bench -p sync --bench poll`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench());
}
