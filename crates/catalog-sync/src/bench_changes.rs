//! `bench --changes ROWS`: what change detection saves on a full snapshot of ROWS products,
//! synced four times in a row: the first sync (everything sent), the same snapshot again
//! (nothing sent), one with 1% of products changed, and one with 1% removed (deleted).
//!
//! Each sync runs the real use case (`FileProcessor`) on a local folder, in a fresh process so
//! that its peak memory is its own, with the state it left for the next. Meta is replaced by a
//! stand-in that counts calls and bytes and answers with a handle: the figures are then
//! catalog-sync's own (reading, change detection, the state, batching), not an emulator's.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use async_trait::async_trait;
use graph::{
    BatchStatus, CallCounts, CatalogInfo, GraphError, ItemsBatchResponse, PartialSend, SentChunk,
};
use serde::{Deserialize, Serialize};
use sync::local::{ConsoleAlerts, LANDING_BUCKET, LocalStore, RescanQueue, SYNCED_BUCKET};
use sync::ports::{CatalogApi, ObjectStore, Payload, SystemClock};
use sync::process::{FileOutcome, FileProcessor, Services, Settings};

use crate::EXIT_OK;

/// The snapshot's key in the landing folder.
const SNAPSHOT_KEY: &str = "data/full/catalog.csv";
/// One product in this many is changed, then removed.
const ONE_PERCENT: u64 = 100;

/// The four snapshots, in the order they are synced.
const SCENARIOS: [(&str, &str); 4] = [
    ("first", "the first sync: every product is sent"),
    ("same", "the same snapshot again"),
    ("changed", "1% of products changed"),
    ("removed", "1% of products removed"),
];

/// What one sync measured, printed by the child process as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct SyncRun {
    scenario: String,
    rows: u64,
    calls: u64,
    bytes_sent: u64,
    sent: u64,
    unchanged: u64,
    deleted: u64,
    deletes_held: u64,
    wall_ms: u64,
    peak_rss_kib: Option<u64>,
    /// Size of the stored state after the sync.
    state_bytes: u64,
    /// Memory the state took when loaded before the sync.
    state_memory: u64,
}

/// Meta's stand-in: counts calls and the bytes of their `requests`, takes everything.
#[derive(Default)]
struct CountingCatalog {
    calls: AtomicU64,
    bytes: AtomicU64,
}

#[async_trait]
impl CatalogApi for CountingCatalog {
    fn catalog_id(&self) -> &str {
        "bench-catalog"
    }

    async fn send_batch(
        &self,
        requests_json: &str,
        _deadline: Option<tokio::time::Instant>,
    ) -> Result<Vec<SentChunk>, PartialSend> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(requests_json.len() as u64, Ordering::Relaxed);
        let item_count = serde_json::from_str::<Vec<serde::de::IgnoredAny>>(requests_json)
            .map_or(0, |items| items.len());
        Ok(vec![SentChunk {
            requests_json: requests_json.to_owned(),
            item_count,
            response: ItemsBatchResponse {
                handles: vec![format!("bench-handle-{call}")],
                validation_status: Vec::new(),
            },
        }])
    }

    async fn check_status(
        &self,
        _handle: &str,
        _deadline: Option<tokio::time::Instant>,
    ) -> Result<BatchStatus, GraphError> {
        Err(not_asked())
    }

    async fn preflight(&self) -> Result<CatalogInfo, GraphError> {
        Err(not_asked())
    }

    fn call_counts(&self) -> CallCounts {
        CallCounts {
            calls: self.calls.load(Ordering::Relaxed),
            ..CallCounts::default()
        }
    }
}

fn not_asked() -> GraphError {
    GraphError::InvalidSettings {
        message: "the benchmark's stand-in for Meta only takes batches".to_owned(),
    }
}

/// `catalog-sync bench --changes ROWS`: generates the snapshots and syncs them in turn.
pub fn bench_changes(rows: u64, dir: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    let temp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let work = dir.map_or_else(|| temp.path().to_path_buf(), Path::to_path_buf);
    let files = work.join("snapshots");
    let root = work.join("root");
    std::fs::create_dir_all(&files)
        .with_context(|| format!("cannot create {}", files.display()))?;
    if root.exists() {
        bail!(
            "{} exists from an earlier run; remove it or choose another --dir",
            root.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find this program")?;
    // The generated products once; the changed and removed snapshots are derived from them.
    let base = files.join("products.csv");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&base)?);
        catalog::synthetic::write_products(&mut out, rows, 1)?;
        out.flush()?;
    }
    let mut runs = Vec::new();
    for (scenario, what) in SCENARIOS {
        let file = match scenario {
            "first" | "same" => base.clone(),
            _ => {
                let file = files.join(format!("{scenario}.csv"));
                write_snapshot(&base, &file, scenario)?;
                file
            }
        };
        if !json {
            eprintln!("bench: syncing {rows} products: {what}");
        }
        let output = Command::new(&exe)
            .args(["bench-sync-one", "--scenario", scenario, "--root"])
            .arg(&root)
            .arg(&file)
            .stderr(Stdio::inherit())
            .output()
            .context("cannot start the measuring process")?;
        if !output.status.success() {
            bail!("the {scenario} sync failed: {}", output.status);
        }
        let run: SyncRun = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("the {scenario} sync printed no figures"))?;
        runs.push(run);
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&runs)?)?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "change detection on a {rows}-product full snapshot (Meta replaced by a counting stand-in)"
    )?;
    writeln!(
        out,
        "{:<9} {:>7} {:>12} {:>9} {:>10} {:>8} {:>9} {:>10} {:>11} {:>13}",
        "sync",
        "calls",
        "bytes sent",
        "sent",
        "unchanged",
        "deleted",
        "wall s",
        "peak RSS",
        "state after",
        "state loaded"
    )?;
    for run in &runs {
        writeln!(
            out,
            "{:<9} {:>7} {:>12} {:>9} {:>10} {:>8} {:>9.1} {:>10} {:>11} {:>13}",
            run.scenario,
            run.calls,
            run.bytes_sent,
            run.sent,
            run.unchanged,
            run.deleted,
            run.wall_ms as f64 / 1000.0,
            run.peak_rss_kib.map_or_else(
                || "?".to_owned(),
                |kib| format!("{:.1} MiB", kib as f64 / 1024.0)
            ),
            format!("{:.1} MB", run.state_bytes as f64 / 1e6),
            format!("{:.1} MB", run.state_memory as f64 / 1e6),
        )?;
    }
    Ok(EXIT_OK)
}

/// Writes the snapshot of `scenario` from the generated products in `base`, streamed: every
/// hundredth product with its brand changed (`changed`) or left out (`removed`).
fn write_snapshot(base: &Path, path: &Path, scenario: &str) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let input = std::io::BufReader::new(std::fs::File::open(base)?);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        let hit = index > 0 && (index as u64 - 1).is_multiple_of(ONE_PERCENT);
        match (hit, scenario) {
            (true, "removed") => continue,
            (true, _) => writeln!(
                out,
                "{}",
                line.replacen(",Hearth & Co,", ",Hearth & Sons,", 1)
            )?,
            (false, _) => writeln!(out, "{line}")?,
        }
    }
    out.flush()?;
    Ok(())
}

/// `bench-sync-one --scenario NAME --root DIR FILE`: one sync in this process, one JSON line.
pub fn bench_sync_one(scenario: &str, root: &Path, file: &Path) -> anyhow::Result<u8> {
    let runtime = crate::setup::runtime()?;
    let run = runtime.block_on(sync_once(scenario, root.to_path_buf(), file))?;
    println!("{}", serde_json::to_string(&run)?);
    Ok(EXIT_OK)
}

async fn sync_once(scenario: &str, root: PathBuf, file: &Path) -> anyhow::Result<SyncRun> {
    let store = Arc::new(LocalStore::new(&root));
    let catalog = Arc::new(CountingCatalog::default());
    let services = Services {
        store: store.clone(),
        catalog: catalog.clone(),
        alerts: Arc::new(ConsoleAlerts::in_root(&root, false)),
        clock: Arc::new(SystemClock),
        continuations: Arc::new(RescanQueue),
    };
    let config = sync::Config::from_lookup(sync::Requirements::Local, |name| match name {
        "CATALOG_ID" => Some("1".to_owned()),
        "META_ACCESS_TOKEN" => Some("bench".to_owned()),
        _ => None,
    })?;
    let mut settings = Settings::from_config(&config);
    settings.layout.landing_bucket = LANDING_BUCKET.to_owned();
    settings.layout.synced_bucket = SYNCED_BUCKET.to_owned();
    let processor = FileProcessor::new(services, settings);
    store
        .put(
            LANDING_BUCKET,
            SNAPSHOT_KEY,
            Payload::File(file.to_path_buf()),
            "text/csv",
        )
        .await?;
    // The state this sync starts from, as it sits in memory (loaded and dropped again).
    let state_memory =
        sync::state::StateStore::new(store.as_ref(), SYNCED_BUCKET, catalog.catalog_id())
            .load()
            .await?
            .state
            .memory_bytes() as u64;
    let started = Instant::now();
    let outcome = processor
        .process(LANDING_BUCKET, SNAPSHOT_KEY, None)
        .await?;
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let FileOutcome::Archived { counts, .. } = outcome else {
        bail!("the snapshot was not archived: {outcome:?}");
    };
    let state_bytes = store
        .head(SYNCED_BUCKET, &sync::keys::state_key(catalog.catalog_id()))
        .await?
        .map_or(0, |info| info.size);
    Ok(SyncRun {
        scenario: scenario.to_owned(),
        rows: counts.rows_read,
        calls: catalog.calls.load(Ordering::Relaxed),
        bytes_sent: catalog.bytes.load(Ordering::Relaxed),
        sent: counts.sent,
        unchanged: counts.unchanged,
        deleted: counts.deleted,
        deletes_held: counts.deletes_held,
        wall_ms,
        peak_rss_kib: crate::bench::peak_rss_kib(),
        state_bytes,
        state_memory,
    })
}
