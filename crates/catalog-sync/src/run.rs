//! `catalog-sync run`: the two use cases over a local folder laid out like the landing zone,
//! once, or watching the folder and polling on an interval.
//!
//! A file is taken only once it is completely written: it must be unchanged (size, time and
//! file identity, i.e. the local store's ETag) for the `--settle` period, or already that old
//! when first seen. Hidden files (`.name`) are never taken, since copy tools and editors use
//! them for writes in progress, and only `.csv` files are taken at all; writing to another name
//! and renaming into `data/` is the safe way to deliver a file. A hidden `.keep` marker holds
//! the landing folder in place.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use notify::{RecursiveMode, Watcher};
use sync::Requirements;
use sync::alert::wording::of_them_deleted;
use sync::event::EventSummary;
use sync::poll::PollSummary;
use sync::ports;
use sync::process::FileOutcome;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::demo::CATALOG_FILE;
use crate::setup::{self, CatalogChoice, Storage, Wired};
use crate::{EXIT_OK, EXIT_REJECTED};

/// Time between polls against a real catalog: Meta takes minutes to finish a batch.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// Time between polls against the emulator, which answers at once.
const EMULATOR_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a one-shot run against the emulator waits for verdicts: its handles end with it.
const EMULATOR_WAIT: Duration = Duration::from_secs(60);
/// Rescan of the landing folder when no file event arrives: events can be missed (network
/// file systems, queue overflow), so the folder is also listed now and then.
const RESCAN: Duration = Duration::from_secs(10);
/// A file whose processing failed is tried again when it changes, or after this long.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(5 * 60);

/// What `catalog-sync run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The folder holding `landing/` and `synced/`.
    pub root: PathBuf,
    /// Keep running, taking files as they arrive.
    pub watch: bool,
    /// Send to the built-in emulator instead of the configured catalog.
    pub emulator: bool,
    /// The retailer's columns as Meta's fields, and fixed values.
    pub column_mapping: catalog::ColumnMapping,
    /// Time between polls (default: 30 s, or 1 s against the emulator).
    pub poll_interval: Option<Duration>,
    /// How long a file must stay unchanged before it is taken.
    pub settle: Duration,
    /// One-shot runs: how long to keep polling for verdicts (default: none against a real
    /// catalog, up to a minute against the emulator).
    pub wait: Option<Duration>,
}

/// `catalog-sync run --root DIR [--watch] [--emulator] ...`.
pub fn run(options: RunOptions) -> anyhow::Result<u8> {
    if !options.root.is_dir() {
        bail!(
            "--root {} is not a folder; create it (with landing/data/ inside for the CSV files) or point at an existing one",
            options.root.display()
        );
    }
    setup::init_logging("warn");
    let runtime = setup::runtime()?;
    runtime.block_on(run_async(options))
}

async fn run_async(options: RunOptions) -> anyhow::Result<u8> {
    let stop = setup::stop_on_signals();
    let choice = CatalogChoice::from_flag(options.emulator);
    let mut wired = setup::wire(
        Storage::Local(options.root.clone()),
        choice,
        Requirements::Local,
    )
    .await?;
    wired.preflight().await?;
    wired.read_through(options.column_mapping.clone());
    let data_dir = setup::landing_dir(&options.root, &wired.config.layout);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the landing folder {}", data_dir.display()))?;
    keep_folder(&data_dir)?;
    let poll_interval = options.poll_interval.unwrap_or(if options.emulator {
        EMULATOR_POLL_INTERVAL
    } else {
        DEFAULT_POLL_INTERVAL
    });

    let mut landing = Landing::new(options.settle);
    // Tallied as the sync function's metrics are, so "rejected" means the same here.
    let mut tally = EventSummary::default();
    let mut events = if options.watch {
        let landing_dir = options.root.join(wired.landing_bucket());
        let events = FolderEvents::start(&landing_dir, &data_dir)?;
        eprintln!(
            "watching {} for CSV files (each taken once unchanged for {}); polling every {}; Ctrl-C stops",
            data_dir.display(),
            humantime::format_duration(options.settle),
            humantime::format_duration(poll_interval)
        );
        Some(events)
    } else {
        None
    };
    let processor = wired.processor();
    // Sending and polling share one catalog adapter: the run's calls are all counted here.
    let calls_before = processor.graph_calls();
    let mut last_poll: Option<Instant> = None;
    let mut poll_failed = false;
    loop {
        let scan = match landing.scan(&wired).await {
            Ok(scan) => scan,
            // A watcher outlives a passing problem (a permission being fixed, a remount).
            Err(error) if options.watch => {
                eprintln!(
                    "catalog-sync: {error:#}; trying again in {}",
                    humantime::format_duration(RESCAN)
                );
                wait_or_stop(&stop, None, RESCAN).await;
                if stop.is_cancelled() {
                    break;
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        for key in &scan.ready {
            if stop.is_cancelled() {
                break;
            }
            take(&wired, &processor, key, &mut landing, &mut tally).await;
            // In case the marker was removed: the store removes folders a move leaves empty,
            // and people expect to find data/.
            if std::fs::create_dir_all(&data_dir).is_ok() {
                let _ = keep_folder(&data_dir);
            }
        }
        if stop.is_cancelled() {
            break;
        }
        let Some(events) = &mut events else {
            if scan.settling == 0 {
                break;
            }
            wait_or_stop(&stop, None, tick(options.settle)).await;
            continue;
        };
        if last_poll.is_none_or(|at| at.elapsed() >= poll_interval) {
            poll_failed |= !poll_once(&wired).await;
            last_poll = Some(Instant::now());
            write_catalog(&wired, &options.root);
        }
        let until_poll = last_poll.map_or(Duration::ZERO, |at| {
            poll_interval.saturating_sub(at.elapsed())
        });
        let wait = if scan.settling > 0 {
            tick(options.settle)
        } else {
            RESCAN
        };
        wait_or_stop(&stop, Some(events), wait.min(until_poll)).await;
    }

    let stopped = stop.is_cancelled();
    if stopped {
        eprintln!("catalog-sync: stopped cleanly");
    } else {
        // One-shot: poll for the verdicts of what was just sent.
        let wait = options.wait.unwrap_or(if options.emulator {
            EMULATOR_WAIT
        } else {
            Duration::ZERO
        });
        poll_failed |= !poll_until(&wired, &stop, wait, poll_interval).await;
    }
    write_catalog(&wired, &options.root);
    let pending = wired.pending_count().await.unwrap_or(0);
    tally.graph_calls = processor.graph_calls().since(calls_before);
    println!("{}", summary_line(&tally, pending));
    if pending > 0 && !options.emulator {
        println!(
            "run: check them later with `catalog-sync poll --root {}`",
            options.root.display()
        );
    }
    if !tally.rejected.is_empty() || !tally.failed.is_empty() || poll_failed {
        Ok(EXIT_REJECTED)
    } else {
        Ok(EXIT_OK)
    }
}

/// The run's closing line; its counts are those of the sync function's metrics.
fn summary_line(tally: &EventSummary, pending: usize) -> String {
    let counts = &tally.counts;
    let refused = if counts.refused_by_meta > 0 {
        format!(", {} refused by Meta when sent", counts.refused_by_meta)
    } else {
        String::new()
    };
    // Retries hide failed calls from every other count; say so when there were any.
    let calls = &tally.graph_calls;
    let failed_calls = if calls.failed > 0 {
        format!(
            "; {} of {} Graph API call(s) failed ({} throttled by Meta) and were retried or left for later",
            calls.failed, calls.calls, calls.throttled
        )
    } else {
        String::new()
    };
    format!(
        "run: {} file(s) archived, {} rejected, {} not sent (left in data/); {} products sent{}{}, {} rows rejected{refused}; {pending} batch(es) still waiting for a verdict{failed_calls}",
        tally.archived.len(),
        tally.rejected.len(),
        tally.failed.len(),
        counts.sent,
        of_them_deleted(counts.deleted),
        counts.changes_text(),
        counts.rejected,
    )
}

/// Name of the marker that keeps the landing folder in place.
const KEEP_MARKER: &str = ".keep";

/// Puts a hidden marker in the landing folder: the store removes folders a move leaves empty
/// (S3 has no folders), and an exporter writing into `data/` at that moment would fail.
fn keep_folder(data_dir: &Path) -> anyhow::Result<()> {
    let marker = data_dir.join(KEEP_MARKER);
    if !marker.exists() {
        std::fs::write(
            &marker,
            "Keeps this folder in place while catalog-sync moves files out of it.\n",
        )
        .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(())
}

/// How often settling files are looked at again.
fn tick(settle: Duration) -> Duration {
    (settle / 8).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Waits `wait`, or less when a file event arrives or a stop is asked for.
async fn wait_or_stop(stop: &CancellationToken, events: Option<&mut FolderEvents>, wait: Duration) {
    match events {
        Some(events) => {
            tokio::select! {
                () = stop.cancelled() => {}
                () = events.next() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        None => {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Processes one file and says what became of it.
async fn take(
    wired: &Wired,
    processor: &sync::process::FileProcessor,
    key: &str,
    landing: &mut Landing,
    tally: &mut EventSummary,
) {
    eprintln!("processing {key}");
    let result = processor.process(wired.landing_bucket(), key, None).await;
    match &result {
        Ok(outcome) => {
            println!("{}", setup::outcome_line(wired, outcome));
            if let FileOutcome::Deferred { resume_after, .. } = outcome {
                landing.pause(key, *resume_after);
            } else {
                landing.forget(key);
            }
        }
        Err(error) => {
            println!(
                "{key}: not processed: {error}. The file stays in data/; it is tried again when it changes or in {} (or re-send it with `catalog-sync replay`)",
                humantime::format_duration(RETRY_FAILED_AFTER)
            );
            landing.failed(key);
        }
    }
    let _ = tally.record(key.to_owned(), result);
}

/// Runs the poller once, printing the summary when something ended or went wrong; false
/// when the run failed.
async fn poll_once(wired: &Wired) -> bool {
    match wired.poller().run(None).await {
        Ok(summary) => {
            let news = summary.finished
                + summary.canceled
                + summary.errored
                + summary.api_errors
                + summary.store_errors
                + summary.alerts_sent;
            if news > 0 {
                print_poll(&summary);
            }
            true
        }
        Err(error) => {
            print_poll_error(&error);
            false
        }
    }
}

/// Polls until no answered handle is waiting, `wait` has passed, or a stop; false on failure.
async fn poll_until(
    wired: &Wired,
    stop: &CancellationToken,
    wait: Duration,
    interval: Duration,
) -> bool {
    // A huge --wait means "as long as it takes", not an overflow.
    let deadline = Instant::now().checked_add(wait);
    loop {
        let summary = match wired.poller().run(None).await {
            Ok(summary) => summary,
            Err(error) => {
                print_poll_error(&error);
                return false;
            }
        };
        let next_poll = Instant::now().checked_add(interval);
        let out_of_time = match (next_poll, deadline) {
            (Some(next), Some(deadline)) => next > deadline,
            (None, _) => true,
            (Some(_), None) => false,
        };
        let done = summary.still_pending == 0 || out_of_time || stop.is_cancelled();
        if done {
            if summary.pending_found > 0 {
                print_poll(&summary);
            }
            return true;
        }
        wait_or_stop(stop, None, interval).await;
    }
}

fn print_poll(summary: &PollSummary) {
    for line in setup::poll_lines(summary) {
        println!("{line}");
    }
}

fn print_poll_error(error: &sync::poll::PollError) {
    println!("poll: {error}");
    if let Some(summary) = error.summary() {
        print_poll(summary);
    }
}

/// Writes `emulator-catalog.json` when running against the emulator.
fn write_catalog(wired: &Wired, root: &Path) {
    if let Some(emulator) = &wired.emulator
        && let Err(error) = setup::write_emulator_catalog(emulator, &root.join(CATALOG_FILE))
    {
        eprintln!("catalog-sync: {error:#}");
    }
}

/// What was learnt about the files in the landing folder.
#[derive(Debug)]
struct Landing {
    settle: Duration,
    /// Each file's ETag and since when it has had it.
    seen: HashMap<String, (Option<String>, Instant)>,
    /// Files whose processing failed or paused: their ETag then, and when to try again.
    failed: HashMap<String, (Option<String>, Instant)>,
    /// Files that are not taken, already mentioned once.
    ignored: HashSet<String>,
    /// Files paused by a checkpoint (Meta's rate limit): a one-shot run waits for them.
    paused: HashSet<String>,
}

/// One look at the landing folder.
#[derive(Debug, Default)]
struct Scan {
    /// Files ready to take, in key order.
    ready: Vec<String>,
    /// Files still being written (or too recently changed to tell), or paused for a while.
    settling: usize,
}

impl Landing {
    fn new(settle: Duration) -> Self {
        Landing {
            settle,
            seen: HashMap::new(),
            failed: HashMap::new(),
            ignored: HashSet::new(),
            paused: HashSet::new(),
        }
    }

    async fn scan(&mut self, wired: &Wired) -> anyhow::Result<Scan> {
        let layout = &wired.config.layout;
        let objects = ports::list_all(
            wired.services.store.as_ref(),
            wired.landing_bucket(),
            &layout.landing_prefix,
        )
        .await
        .context("cannot list the landing folder")?;
        let now = Instant::now();
        let wall = time::OffsetDateTime::now_utc();
        let mut scan = Scan::default();
        let mut present = HashSet::new();
        for object in objects {
            let key = object.key;
            present.insert(key.clone());
            let relative = key
                .strip_prefix(layout.landing_prefix.as_str())
                .unwrap_or(&key);
            // Hidden files are writes in progress (or the folder's marker): silently left alone.
            if relative.split('/').any(|part| part.starts_with('.')) {
                continue;
            }
            if layout.landing_relative(&key).is_none() {
                if self.ignored.insert(key.clone()) {
                    eprintln!("ignoring {key}: only .csv files are processed");
                }
                continue;
            }
            if let Some((etag, retry_at)) = self.failed.get(&key) {
                if *etag == object.etag && now < *retry_at {
                    if self.paused.contains(&key) {
                        scan.settling += 1;
                    }
                    continue;
                }
                self.failed.remove(&key);
            }
            match self.seen.get(&key) {
                Some((etag, since)) if *etag == object.etag => {
                    if now.duration_since(*since) >= self.settle {
                        scan.ready.push(key);
                    } else {
                        scan.settling += 1;
                    }
                }
                _ => {
                    // Already quiet for the settle period before this run saw it.
                    let quiet = object.last_modified.is_some_and(|modified| {
                        (wall - modified)
                            .try_into()
                            .is_ok_and(|age: Duration| age >= self.settle)
                    });
                    if quiet {
                        scan.ready.push(key.clone());
                    } else {
                        scan.settling += 1;
                    }
                    self.seen.insert(key, (object.etag, now));
                }
            }
        }
        self.seen.retain(|key, _| present.contains(key));
        self.failed.retain(|key, _| present.contains(key));
        self.ignored.retain(|key| present.contains(key));
        self.paused.retain(|key| present.contains(key));
        Ok(scan)
    }

    fn forget(&mut self, key: &str) {
        self.seen.remove(key);
        self.paused.remove(key);
    }

    /// `key` was checkpointed: resume it after `wait`, and keep a one-shot run going until then.
    fn pause(&mut self, key: &str, wait: Duration) {
        self.retry_later(key, wait);
        self.paused.insert(key.to_owned());
    }

    fn failed(&mut self, key: &str) {
        self.retry_later(key, RETRY_FAILED_AFTER);
    }

    /// Leaves `key` alone for `wait` unless it changes.
    fn retry_later(&mut self, key: &str, wait: Duration) {
        if let Some((etag, _)) = self.seen.remove(key) {
            self.failed
                .insert(key.to_owned(), (etag, Instant::now() + wait));
        }
    }
}

/// File-system events under the landing folder, as wake-ups: what is there is always read
/// from a listing, so a missed or merged event costs at most one rescan period.
struct FolderEvents {
    _watcher: notify::RecommendedWatcher,
    receiver: mpsc::UnboundedReceiver<()>,
}

impl FolderEvents {
    /// Watches `landing_dir` (which outlives `data_dir`: the store removes an emptied data/)
    /// and reports events under `data_dir`.
    fn start(landing_dir: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let data_dir = data_dir.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    Ok(event) => event.paths.iter().any(|path| path.starts_with(&data_dir)),
                    // An error (such as a queue overflow) may hide events: rescan.
                    Err(_) => true,
                };
                if relevant {
                    let _ = sender.send(());
                }
            })
            .context("cannot watch the landing folder for new files")?;
        watcher
            .watch(landing_dir, RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {} for new files", landing_dir.display()))?;
        Ok(FolderEvents {
            _watcher: watcher,
            receiver,
        })
    }

    /// The next event (several queued ones count as one).
    async fn next(&mut self) {
        if self.receiver.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        while self.receiver.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync::report::Counts;

    #[test]
    fn the_closing_line_counts_rejected_rows_as_the_metrics_do() {
        let mut tally = EventSummary::default();
        let counts = Counts {
            rows_read: 10,
            valid: 5,
            rejected: 5,
            superseded: 0,
            sent: 3,
            refused_by_meta: 2,
            deleted: 1,
            ..Counts::default()
        };
        tally
            .record(
                "data/a.csv".to_owned(),
                Ok(FileOutcome::Archived {
                    key: "data/a.csv".to_owned(),
                    report_key: "reports/a.json".to_owned(),
                    counts,
                    batches: 1,
                }),
            )
            .unwrap();
        let line = summary_line(&tally, 1);
        let metric = |name: &str| {
            tally
                .metrics()
                .iter()
                .find(|(metric, _)| *metric == name)
                .map(|(_, value)| *value)
                .unwrap()
        };
        assert_eq!(metric("ProductsRejected"), 5);
        assert_eq!(metric("ProductsRefusedByMeta"), 2);
        assert_eq!(metric("ProductsDeleted"), 1);
        assert!(
            line.contains(
                "3 products sent (1 of them deletes), 5 rows rejected, 2 refused by Meta when sent"
            ),
            "{line}"
        );
        assert!(line.starts_with("run: 1 file(s) archived, 0 rejected, 0 not sent"));
        assert!(!line.contains("Graph API call"), "{line}");

        tally.graph_calls = graph::CallCounts {
            calls: 12,
            failed: 3,
            throttled: 2,
        };
        let line = summary_line(&tally, 0);
        assert!(
            line.ends_with(
                "; 3 of 12 Graph API call(s) failed (2 throttled by Meta) and were retried or left for later"
            ),
            "{line}"
        );
    }
}
