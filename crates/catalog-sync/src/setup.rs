//! Wiring shared by `demo`, `run`, `replay`, `poll` and `doctor`: where the files are, which
//! catalog is talked to, signals, logs, and how outcomes are printed.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use graph_emulator::{DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, GraphEmulator};
use sync::alert::Alert;
use sync::alert::wording::of_them_deleted;
use sync::keys::Layout;
use sync::poll::{PollSettings, PollSummary, Poller};
use sync::ports::{AlertError, AlertSink};
use sync::process::{FileOutcome, FileProcessor, Services, Settings};
use sync::{Config, Requirements};
use tokio_util::sync::CancellationToken;

/// Where the landing zone is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// The S3 buckets named by `LANDING_BUCKET` and `SYNCED_BUCKET`.
    Aws,
    /// A local folder laid out like the buckets: `<root>/landing/...`, `<root>/synced/...`.
    Local(PathBuf),
}

impl Storage {
    /// `--root DIR` when given, S3 otherwise.
    pub fn from_root(root: Option<PathBuf>) -> Self {
        root.map_or(Storage::Aws, Storage::Local)
    }

    /// Refuses S3 in a build without the `aws` feature, saying how to build with it.
    pub fn require_aws_build(&self, command: &str) -> anyhow::Result<()> {
        if *self == Storage::Aws && !cfg!(feature = "aws") {
            bail!(
                "`catalog-sync {command}` without --root works on the AWS buckets, and {}; or pass --root DIR to use a local folder",
                sync::wiring::AWS_NOT_BUILT
            );
        }
        Ok(())
    }
}

/// The local folder of the landing prefix: `<root>/landing/data`.
pub fn landing_dir(root: &Path, layout: &Layout) -> PathBuf {
    root.join(sync::local::LANDING_BUCKET)
        .join(layout.landing_prefix.trim_end_matches('/'))
}

/// Which Graph API the use cases talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogChoice {
    /// The catalog the environment names (`CATALOG_ID`, `META_ACCESS_TOKEN` or the secret).
    Configured,
    /// The built-in emulator, started in this process; the environment's catalog is ignored.
    Emulator {
        /// Whether the other settings (`BATCH_SIZE`, prefixes, ...) still come from the
        /// environment; the demo takes none, so it always shows the same thing.
        keep_other_settings: bool,
    },
}

impl CatalogChoice {
    /// What `--emulator` asks for: the emulator with the environment's other settings, or the
    /// configured catalog.
    pub fn from_flag(emulator: bool) -> Self {
        if emulator {
            CatalogChoice::Emulator {
                keep_other_settings: true,
            }
        } else {
            CatalogChoice::Configured
        }
    }
}

/// Everything a command needs to run the use cases.
pub struct Wired {
    /// The configuration in force (for the emulator: its catalog, token and address).
    pub config: Config,
    /// The adapters.
    pub services: Services,
    /// Where the files are.
    pub storage: Storage,
    /// The emulator, when one was started; it stops when this is dropped.
    pub emulator: Option<graph_emulator::RunningEmulator>,
}

impl Wired {
    /// Reads landed files through `mapping` (`--column-mapping` or `COLUMN_MAPPING`), which
    /// is shown on standard error when it maps anything.
    pub fn read_through(&mut self, mapping: catalog::ColumnMapping) {
        for line in crate::output::mapping_lines(&mapping) {
            eprintln!("{line}");
        }
        self.config.column_mapping = mapping;
    }

    /// Settings of the "process one landed file" use case.
    pub fn process_settings(&self) -> Settings {
        Settings::from_config(&self.config)
    }

    /// The "process one landed file" use case.
    pub fn processor(&self) -> FileProcessor {
        FileProcessor::new(self.services.clone(), self.process_settings())
    }

    /// The "poll pending handles" use case.
    pub fn poller(&self) -> Poller {
        Poller::new(
            self.services.clone(),
            PollSettings::from_config(&self.config),
        )
    }

    /// The landing bucket (`landing` in a local folder).
    pub fn landing_bucket(&self) -> &str {
        &self.config.layout.landing_bucket
    }

    /// The synced-products bucket (`synced` in a local folder).
    pub fn synced_bucket(&self) -> &str {
        &self.config.layout.synced_bucket
    }

    /// Where `key` of `bucket` is, as a person would look for it.
    pub fn location(&self, bucket: &str, key: &str) -> String {
        self.services.store.location(bucket, key)
    }

    /// Batches still waiting for Meta's verdict (records under `pending/`).
    pub async fn pending_count(&self) -> Result<usize, sync::ports::StoreError> {
        sync::ports::list_all(
            self.services.store.as_ref(),
            self.synced_bucket(),
            sync::keys::PENDING_PREFIX,
        )
        .await
        .map(|objects| objects.len())
    }

    /// Proves the token and catalog before any file is touched.
    pub async fn preflight(&self) -> anyhow::Result<()> {
        let catalog = &self.services.catalog;
        match catalog.preflight().await {
            Ok(_) => Ok(()),
            Err(error) => bail!(
                "catalog {} at {}: {error}. {}",
                catalog.catalog_id(),
                self.config.graph.base_url,
                error.what_to_do()
            ),
        }
    }
}

/// Configuration for the emulator: its catalog, token and address, whatever the environment
/// says about them.
fn emulator_config(url: &str, keep_other_settings: bool) -> anyhow::Result<Config> {
    Config::from_lookup(Requirements::Local, |name| match name {
        "CATALOG_ID" => Some(DEFAULT_CATALOG_ID.to_owned()),
        "META_ACCESS_TOKEN" => Some(DEFAULT_TOKEN.to_owned()),
        "GRAPH_API_BASE_URL" => Some(url.to_owned()),
        // The emulator serves any version; a secret would take precedence over its token.
        "ACCESS_TOKEN_SECRET_ARN" | "GRAPH_API_VERSION" => None,
        other if keep_other_settings => std::env::var(other).ok(),
        _ => None,
    })
    .context("invalid setting")
}

/// Refuses a local run against a real catalog unless both the catalog and a token are named,
/// pointing at `--emulator` instead.
fn require_catalog_settings() -> anyhow::Result<()> {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let catalog = set("CATALOG_ID");
    let token = set("META_ACCESS_TOKEN") || set("ACCESS_TOKEN_SECRET_ARN");
    if catalog && token {
        return Ok(());
    }
    let missing = match (catalog, token) {
        (false, false) => "CATALOG_ID and META_ACCESS_TOKEN are not set",
        (false, true) => "CATALOG_ID is not set",
        _ => "META_ACCESS_TOKEN is not set",
    };
    bail!(
        "no catalog to send to: {missing}. Set CATALOG_ID and META_ACCESS_TOKEN to sync with your Meta catalog, or add --emulator to try it against the built-in Graph API emulator (nothing reaches Meta)"
    )
}

/// Builds the adapters for `storage` and `choice`; the emulator's banner goes to stderr.
///
/// `aws_requirements` are the variables the command needs on S3; a local folder needs only a
/// catalog and a token.
pub async fn wire(
    storage: Storage,
    choice: CatalogChoice,
    aws_requirements: Requirements,
) -> anyhow::Result<Wired> {
    let (mut config, emulator) = match choice {
        CatalogChoice::Emulator {
            keep_other_settings,
        } => {
            if storage == Storage::Aws {
                bail!(
                    "--emulator works with a local folder only: add --root DIR (files in S3 are sent to the catalog CATALOG_ID names)"
                );
            }
            let emulator = GraphEmulator::start(EmulatorConfig::default())
                .await
                .context("cannot start the built-in Graph API emulator on 127.0.0.1")?;
            let config = emulator_config(&emulator.url(), keep_other_settings)?;
            (config, Some(emulator))
        }
        CatalogChoice::Configured => {
            let requirements = match storage {
                Storage::Aws => aws_requirements,
                Storage::Local(_) => {
                    require_catalog_settings()?;
                    Requirements::Local
                }
            };
            (Config::from_env(requirements)?, None)
        }
    };
    let services = match &storage {
        #[cfg(feature = "aws")]
        Storage::Aws => sync::wiring::aws_services(&config).await,
        #[cfg(not(feature = "aws"))]
        Storage::Aws => bail!("{}", sync::wiring::AWS_NOT_BUILT),
        Storage::Local(root) => sync::wiring::local_services(&mut config, root, true).await,
    }
    .context("cannot connect to the catalog")?;
    if let Some(emulator) = &emulator {
        emulator_banner(&emulator.url());
    }
    Ok(Wired {
        config,
        services,
        storage,
        emulator,
    })
}

/// The loud notice that nothing reaches Meta.
fn emulator_banner(url: &str) {
    let line = "=".repeat(78);
    eprintln!(
        "{line}\n  EMULATOR MODE: products go to catalog-sync's built-in Graph API emulator at\n  {url}, NOT to Meta. Nothing reaches a real catalog; CATALOG_ID and\n  META_ACCESS_TOKEN are ignored. The emulator and its catalog end with this process.\n{line}"
    );
}

/// How every command on the buckets or a local folder starts: the build check for S3, logging
/// at `log_level` (unless `RUST_LOG` says otherwise), and the runtime.
pub fn start_on(
    storage: &Storage,
    command: &str,
    log_level: &str,
) -> anyhow::Result<tokio::runtime::Runtime> {
    storage.require_aws_build(command)?;
    init_logging(log_level);
    runtime()
}

/// The runtime of every command: two worker threads are plenty for one file at a time.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Log lines of the use cases to stderr, at `RUST_LOG` or `default` (warnings are worth seeing:
/// some problems, such as a verdict stored but its pending record left, are only logged).
pub fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Ctrl-C (or SIGTERM): the first asks the command to stop once the file in progress is done;
/// a second stops at once. Must be called inside the runtime.
pub fn stop_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        let mut signals = Signals::new();
        signals.next().await;
        eprintln!(
            "catalog-sync: stopping: the file in progress is finished first (Ctrl-C again to stop at once)"
        );
        stop.cancel();
        signals.next().await;
        eprintln!(
            "catalog-sync: stopped at once; a file that was being processed stays in data/ and is processed again by the next run"
        );
        std::process::exit(130);
    });
    token
}

/// Interrupt and terminate signals as one stream.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let terminate = match signal(SignalKind::terminate()) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    eprintln!(
                        "catalog-sync: cannot watch for SIGTERM ({error}); only Ctrl-C stops cleanly"
                    );
                    None
                }
            };
            Signals { terminate }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(terminate) = &mut self.terminate {
            tokio::select! {
                result = tokio::signal::ctrl_c() => Self::check(result).await,
                _ = terminate.recv() => {}
            }
            return;
        }
        Self::check(tokio::signal::ctrl_c().await).await;
    }

    /// A failed registration would make every wait return at once: wait forever instead.
    async fn check(result: std::io::Result<()>) {
        if let Err(error) = result {
            eprintln!("catalog-sync: cannot watch for Ctrl-C ({error})");
            std::future::pending::<()>().await;
        }
    }
}

/// One line saying what became of a file.
pub fn outcome_line(wired: &Wired, outcome: &FileOutcome) -> String {
    let synced = wired.synced_bucket();
    match outcome {
        FileOutcome::Archived {
            key,
            report_key,
            counts,
            batches,
        } => {
            let mut line = format!(
                "{key}: archived: {} rows read, {} sent{}, {} rejected, {} superseded, {batches} batch(es)",
                counts.rows_read,
                counts.sent,
                of_them_deleted(counts.deleted),
                counts.rejected,
                counts.superseded
            );
            if counts.refused_by_meta > 0 {
                line.push_str(&format!(
                    ", {} refused by Meta when sent",
                    counts.refused_by_meta
                ));
            }
            line.push_str(&format!("; report {}", wired.location(synced, report_key)));
            line
        }
        FileOutcome::Rejected {
            key,
            report_key,
            counts,
        } => format!(
            "{key}: file rejected after {} rows and moved to {}; report {}",
            counts.rows_read,
            wired.config.layout.rejected_prefix,
            wired.location(synced, report_key)
        ),
        FileOutcome::Ignored { key } => format!(
            "{key}: ignored: not a .csv file under {}",
            wired.config.layout.landing_prefix
        ),
        FileOutcome::AlreadyProcessed { key } => {
            format!("{key}: already processed: it is no longer in the landing folder")
        }
        FileOutcome::Deferred {
            key,
            batches_sent,
            resume_after,
            reason,
            progress_key,
            ..
        } => format!(
            "{key}: paused after {batches_sent} batch(es) ({}); it resumes from {} in {}",
            reason.as_str(),
            wired.location(synced, progress_key),
            humantime::format_duration(*resume_after)
        ),
        FileOutcome::Busy { key, run_id } => {
            format!("{key}: busy: run {run_id} is sending it now")
        }
    }
}

/// The poll summary as a few readable lines.
pub fn poll_lines(summary: &PollSummary) -> Vec<String> {
    let mut lines = vec![format!(
        "poll: {} pending batch(es) found, {} checked: {} finished, {} canceled, {} error, {} still waiting for Meta",
        summary.pending_found,
        summary.checked,
        summary.finished,
        summary.canceled,
        summary.errored,
        summary.still_pending
    )];
    if summary.item_errors + summary.item_warnings > 0 {
        lines.push(format!(
            "poll: Meta reported {} item error(s) and {} warning(s); see the alert and checked/",
            summary.item_errors, summary.item_warnings
        ));
    }
    let not_checked = summary.not_checked_deadline + summary.not_checked_stopped;
    if not_checked + summary.api_errors + summary.store_errors + summary.stuck > 0 {
        lines.push(format!(
            "poll: {} not checked this run, {} status check(s) failed, {} storage error(s), {} stuck; they stay pending",
            not_checked, summary.api_errors, summary.store_errors, summary.stuck
        ));
    }
    if let Some(reason) = &summary.stopped_early {
        lines.push(format!("poll: stopped early: {reason}"));
    }
    if let Some(sweep) = &summary.sweep {
        for file in &sweep.in_progress {
            lines.push(format!(
                "poll: in progress: {} ({} batch(es), {} rows done in {} invocation(s); {})",
                file.key, file.batches_done, file.rows_done, file.invocations, file.state
            ));
        }
        for key in &sweep.redriven {
            lines.push(format!(
                "poll: re-driven: {key} was left in the landing folder"
            ));
        }
        for key in &sweep.failed {
            lines.push(format!(
                "poll: gave up: moved to {key} with its report; see the alert"
            ));
        }
    }
    if summary.alerts_sent > 0 {
        lines.push(format!("poll: {} alert(s) sent", summary.alerts_sent));
    }
    lines
}

/// Writes what the emulator's catalog holds to `path` (whole or not at all).
pub fn write_emulator_catalog(
    emulator: &graph_emulator::RunningEmulator,
    path: &Path,
) -> anyhow::Result<usize> {
    let items = emulator.items(DEFAULT_CATALOG_ID);
    let count = items.len();
    let document = serde_json::json!({
        "about": "What catalog-sync's built-in Graph API emulator (standing in for Meta) holds at the end of the run. Not a real catalog.",
        "catalog_id": DEFAULT_CATALOG_ID,
        "product_count": count,
        "products": items,
    });
    let mut body = serde_json::to_vec_pretty(&document).context("cannot serialise the catalog")?;
    body.push(b'\n');
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(sync::local::TEMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(temp.as_file_mut(), &body)
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(count)
}

/// Forwards alerts to another sink and keeps a copy, so a command can summarise them.
pub struct RecordingAlerts<S> {
    inner: S,
    seen: Mutex<Vec<Alert>>,
}

impl<S> RecordingAlerts<S> {
    /// Records what goes to `inner`.
    pub fn new(inner: S) -> Self {
        RecordingAlerts {
            inner,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The alerts published so far.
    pub fn alerts(&self) -> Vec<Alert> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl<S: AlertSink> AlertSink for RecordingAlerts<S> {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(alert.clone());
        self.inner.publish(alert).await
    }
}

/// Parses `30s`, `2m`, `1h30m`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|error| {
        format!("{value:?} is not a duration ({error}); write it like 30s, 2m or 1h")
    })
}

/// Parses a duration that must not be zero (an interval of zero would poll without pause).
pub fn parse_interval(value: &str) -> Result<Duration, String> {
    parse_duration(value).and_then(|duration| {
        if duration.is_zero() {
            Err(format!("{value:?} is zero; give an interval such as 30s"))
        } else {
            Ok(duration)
        }
    })
}
