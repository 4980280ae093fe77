//! The stack the sync integration tests run on: two buckets on moto server, the Graph API
//! emulator over HTTP, and a Graph client for it. Each test file adds its own adapters.
#![allow(dead_code)] // each test file uses part of it

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use graph::{AccessToken, GraphSettings, RetryPolicy};
use graph_emulator::{
    DEFAULT_CATALOG_ID, EmulatorConfig, Endpoint, Fault, GraphEmulator, RunningEmulator,
};
use sync::graph_api::{GraphCatalog, StaticToken};
use sync::keys::Layout;
use sync::process::Settings;
use testkit::{MotoServer, unique_name};

/// Buckets on moto and an emulator that accepts `token`.
pub struct Stack {
    /// The shared moto server.
    pub moto: &'static MotoServer,
    /// The Graph API emulator.
    pub emulator: RunningEmulator,
    /// The landing bucket.
    pub landing: String,
    /// The synced bucket.
    pub synced: String,
    token: String,
}

/// Fresh buckets and a fresh emulator.
pub async fn stack(token: &str) -> Stack {
    let moto = MotoServer::shared();
    let landing = unique_name("landing");
    let synced = unique_name("synced");
    moto.create_bucket(&landing).await;
    moto.create_bucket(&synced).await;
    let emulator = GraphEmulator::start(EmulatorConfig {
        tokens: vec![token.to_owned()],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    Stack {
        moto,
        emulator,
        landing,
        synced,
        token: token.to_owned(),
    }
}

/// Retries that keep tests fast: short backoffs, and throttle waits over 1 s come back at once.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_throttle_wait: Duration::from_secs(1),
    }
}

impl Stack {
    /// A Graph client for the emulator with `retry`, each request limited to `request_timeout`.
    pub async fn catalog(&self, retry: RetryPolicy, request_timeout: Duration) -> GraphCatalog {
        GraphCatalog::connect(
            GraphSettings {
                base_url: self.emulator.url(),
                request_timeout,
                ..GraphSettings::default()
            },
            DEFAULT_CATALOG_ID,
            retry,
            Arc::new(StaticToken(AccessToken::new(self.token.clone()))),
        )
        .await
        .expect("catalog")
    }

    /// The two buckets with the default prefixes.
    pub fn layout(&self) -> Layout {
        Layout {
            landing_bucket: self.landing.clone(),
            synced_bucket: self.synced.clone(),
            ..Layout::default()
        }
    }

    /// Processing settings: `batch_size` requests a call, and `min_send_window` kept for a call.
    pub fn settings(&self, batch_size: usize, min_send_window: Duration) -> Settings {
        Settings {
            layout: self.layout(),
            batch_limits: catalog::BatchLimits::new(batch_size).expect("batch size"),
            mapping: catalog::ProductTypeMapping::default(),
            column_mapping: catalog::ColumnMapping::default(),
            reader_limits: catalog::ReaderLimits::default(),
            min_send_window,
            changes: sync::config::ChangeSettings::default(),
        }
    }

    /// Lets the next `n` items_batch calls through unchanged.
    pub fn pass(&self, n: usize) {
        for _ in 0..n {
            self.emulator
                .push_fault(Fault::Slow(Duration::ZERO).on(Endpoint::ItemsBatch));
        }
    }

    /// How many accepted items_batch calls carried each (id, title): a later row with the id
    /// of one already sent is sent again by design, to override it.
    pub fn sends_per_row(&self) -> BTreeMap<(String, String), usize> {
        let mut sends = BTreeMap::new();
        for request in self.emulator.requests() {
            if request.endpoint != Some(Endpoint::ItemsBatch) || request.status != Some(200) {
                continue;
            }
            for item in request
                .requests_json()
                .and_then(|requests| requests.as_array().cloned())
                .unwrap_or_default()
            {
                if let (Some(id), Some(title)) =
                    (item["data"]["id"].as_str(), item["data"]["title"].as_str())
                {
                    *sends.entry((id.to_owned(), title.to_owned())).or_insert(0) += 1;
                }
            }
        }
        sends
    }

    /// A JSON object of a bucket.
    pub async fn json(&self, bucket: &str, key: &str) -> serde_json::Value {
        let bytes = self
            .moto
            .get_object(bucket, key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        serde_json::from_slice(&bytes).expect("json")
    }
}

/// A generated export of `rows` distinct, valid products.
pub fn generated(rows: u64, seed: u64) -> Vec<u8> {
    let mut csv = Vec::new();
    catalog::synthetic::write_products(&mut csv, rows, seed).expect("generate");
    csv
}
