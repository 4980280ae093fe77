//! `catalog-sync demo`: the whole flow on the sample exports, against the built-in emulator,
//! in a new folder, with a short account of what happened and where everything is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use sync::Requirements;
use sync::alert::wording::of_them_deleted;
use sync::keys::CHECKED_PREFIX;
use sync::local::{ConsoleAlerts, LocalStore};
use sync::poll::PollSummary;
use sync::ports;
use sync::process::FileOutcome;

use crate::setup::{self, CatalogChoice, RecordingAlerts, Storage, Wired};
use crate::{EXIT_OK, EXIT_REJECTED};

/// The sample exports of `events/products/`, built into the binary so the demo runs from any
/// working directory and from an installed binary alike.
pub const SAMPLES: &[(&str, &[u8])] = &[
    (
        "home-goods-clean.csv",
        include_bytes!("../../../events/products/home-goods-clean.csv"),
    ),
    (
        "outdoor-with-problems.csv",
        include_bytes!("../../../events/products/outdoor-with-problems.csv"),
    ),
    (
        "sample.csv",
        include_bytes!("../../../events/products/sample.csv"),
    ),
    (
        "spring-apparel.csv",
        include_bytes!("../../../events/products/spring-apparel.csv"),
    ),
];

/// Poll rounds before the demo gives up waiting for verdicts; the emulator finishes a batch
/// on its second check, so two rounds are normally enough.
const MAX_POLL_ROUNDS: u32 = 50;
/// Pause between poll rounds.
const POLL_PAUSE: Duration = Duration::from_millis(100);
/// Rejected rows quoted in the account; the reports hold every one.
const REJECTED_EXAMPLES: usize = 4;
/// Name of the file holding what the emulator's catalog holds at the end.
pub const CATALOG_FILE: &str = "emulator-catalog.json";

/// `catalog-sync demo [--dir DIR]`.
pub fn demo(dir: Option<PathBuf>) -> anyhow::Result<u8> {
    let started = Instant::now();
    let dir = prepare_dir(dir)?;
    let data = setup::landing_dir(&dir, &sync::keys::Layout::default());
    fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    for (name, bytes) in SAMPLES {
        let path = data.join(name);
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    setup::init_logging("warn");
    let runtime = setup::runtime()?;
    let code = runtime.block_on(run_demo(&dir, started))?;
    Ok(code)
}

/// The folder to use: `--dir` (empty or absent), or a new one named after the time.
fn prepare_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = dir {
        match fs::read_dir(&dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    bail!(
                        "--dir {} is not empty; give a new or empty folder so the demo's files are not mixed with others",
                        dir.display()
                    );
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create --dir {}", dir.display()))?;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read --dir {}", dir.display()));
            }
        }
        return Ok(dir);
    }
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .context("cannot format the time")?;
    // create_dir (not _all) claims the name, so two demos started in the same second differ.
    for attempt in 1..=20 {
        let name = if attempt == 1 {
            format!("catalog-sync-demo-{stamp}")
        } else {
            format!("catalog-sync-demo-{stamp}-{attempt}")
        };
        let dir = PathBuf::from(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "cannot create {} in the current folder; run the demo where you can write, or pass --dir",
                        dir.display()
                    )
                });
            }
        }
    }
    bail!("cannot find a free catalog-sync-demo-{stamp} folder name; pass --dir")
}

/// Processes, polls and tells.
async fn run_demo(dir: &Path, started: Instant) -> anyhow::Result<u8> {
    let mut wired = setup::wire(
        Storage::Local(dir.to_path_buf()),
        CatalogChoice::Emulator {
            keep_other_settings: false,
        },
        Requirements::Local,
    )
    .await?;
    // Alerts go to alerts.log only; the account below summarises them.
    let alerts = Arc::new(RecordingAlerts::new(ConsoleAlerts::in_root(dir, false)));
    wired.services.alerts = alerts.clone();

    let processor = wired.processor();
    let mut outcomes = Vec::new();
    for (name, _) in SAMPLES {
        let key = wired.config.layout.landing_key(name);
        let outcome = processor
            .process(wired.landing_bucket(), &key, None)
            .await
            .with_context(|| format!("processing {key} failed"))?;
        outcomes.push(outcome);
    }

    let poller = wired.poller();
    let mut polls = Vec::new();
    let mut left = usize::MAX;
    for _ in 0..MAX_POLL_ROUNDS {
        let summary = poller
            .run(None)
            .await
            .context("polling the batch handles failed")?;
        polls.push(summary);
        left = wired.pending_count().await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }

    let Some(emulator) = &wired.emulator else {
        bail!("the demo runs against the emulator, which did not start");
    };
    let products = setup::write_emulator_catalog(emulator, &dir.join(CATALOG_FILE))?;

    let account = Account {
        dir,
        wired: &wired,
        outcomes: &outcomes,
        polls: &polls,
        alerts: &alerts.alerts(),
        products,
        pending_left: left,
    };
    print!("{}", account.render().await?);
    println!(
        "Done in {:.1} s. To try your own exports, put them in {} and run:\n  catalog-sync run --root {} --emulator",
        started.elapsed().as_secs_f64(),
        setup::landing_dir(dir, &wired.config.layout).display(),
        dir.display()
    );
    Ok(if left == 0 { EXIT_OK } else { EXIT_REJECTED })
}

/// What the demo tells at the end.
struct Account<'a> {
    dir: &'a Path,
    wired: &'a Wired,
    outcomes: &'a [FileOutcome],
    polls: &'a [PollSummary],
    alerts: &'a [sync::alert::Alert],
    products: usize,
    pending_left: usize,
}

impl Account<'_> {
    async fn render(&self) -> anyhow::Result<String> {
        let store = LocalStore::new(self.dir);
        let synced = self.wired.synced_bucket();
        let mut out = String::new();
        let url = self
            .wired
            .emulator
            .as_ref()
            .map(graph_emulator::RunningEmulator::url)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\ncatalog-sync demo: the sample exports, processed as the Lambda functions would, in\n{}\nThe catalog is the built-in Graph API emulator at {url}, not Meta: nothing left\nthis machine, and CATALOG_ID / META_ACCESS_TOKEN in the environment were ignored.\n",
            self.dir.display()
        );

        let _ = writeln!(
            out,
            "1. Files processed ({} landed in landing/data/):",
            self.outcomes.len()
        );
        let mut sent = 0;
        let mut deleted = 0;
        let mut rejected = 0;
        let mut reports = Vec::new();
        for outcome in self.outcomes {
            let _ = writeln!(out, "   {}", summary_of(outcome));
            match outcome {
                FileOutcome::Archived {
                    counts, report_key, ..
                } => {
                    sent += counts.sent;
                    deleted += counts.deleted;
                    rejected += counts.rejected;
                    reports.push(report_key.clone());
                }
                FileOutcome::Rejected {
                    counts, report_key, ..
                } => {
                    rejected += counts.rejected;
                    reports.push(report_key.clone());
                }
                _ => {}
            }
        }
        let _ = writeln!(
            out,
            "   Products sent: {sent}{}. Rows rejected: {rejected} (not sent; each report lists every one).\n",
            of_them_deleted(deleted)
        );

        let _ = writeln!(out, "2. Rows rejected, and why (a few examples):");
        let mut examples = 0;
        let mut warnings = Vec::new();
        for report_key in &reports {
            let Some(bytes) = ports::read_small(&store, synced, report_key).await? else {
                continue;
            };
            let report: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("report {report_key} is not JSON"))?;
            let source = report["source_key"].as_str().unwrap_or("?");
            for warning in report["warnings"].as_array().into_iter().flatten() {
                if let Some(warning) = warning.as_str() {
                    warnings.push(format!("{source}: {warning}"));
                }
            }
            for row in report["rows"].as_array().into_iter().flatten() {
                if examples >= REJECTED_EXAMPLES || row["outcome"] != "rejected" {
                    continue;
                }
                examples += 1;
                let reasons: Vec<&str> = row["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["message"].as_str())
                    .collect();
                let _ = writeln!(
                    out,
                    "   {source}:{} id {}: {}",
                    row["line"],
                    row["id"].as_str().unwrap_or("(none)"),
                    reasons.join("; ")
                );
            }
        }
        if examples == 0 {
            let _ = writeln!(out, "   none");
        } else if (examples as u64) < rejected {
            let _ = writeln!(
                out,
                "   ... and {} more in the reports.",
                rejected - examples as u64
            );
        }
        for warning in &warnings {
            let _ = writeln!(out, "   warning: {warning}");
        }
        out.push('\n');

        let _ = writeln!(
            out,
            "3. Batch handles and Meta's verdicts (the emulator's), after {} poll(s):",
            self.polls.len()
        );
        let verdicts = self.verdicts(&store).await?;
        for verdict in &verdicts {
            let _ = writeln!(out, "   {verdict}");
        }
        if verdicts.is_empty() {
            let _ = writeln!(out, "   none");
        }
        if self.pending_left > 0 {
            let _ = writeln!(
                out,
                "   {} handle(s) still pending after {} polls: something is wrong; see the log above.",
                self.pending_left,
                self.polls.len()
            );
        }
        out.push('\n');

        let _ = writeln!(
            out,
            "4. Alerts that would have been emailed through SNS ({}; full text in alerts.log):",
            self.alerts.len()
        );
        for alert in self.alerts {
            let _ = writeln!(
                out,
                "   [{} {}] {}",
                alert.severity().as_str(),
                alert.kind.as_str(),
                alert.subject
            );
            // The first paragraph says what happened; the rest (samples, keys, next steps) is
            // in the log.
            for line in alert
                .text
                .lines()
                .take_while(|line| !line.trim().is_empty())
            {
                let _ = writeln!(out, "     {line}");
            }
        }
        if self.alerts.is_empty() {
            let _ = writeln!(out, "   none");
        }
        out.push('\n');

        let _ = writeln!(
            out,
            "5. The emulator's catalog now holds {} product(s): {}\n",
            self.products,
            self.dir.join(CATALOG_FILE).display()
        );

        let _ = writeln!(out, "6. Where every output is:");
        for line in tree(self.dir)? {
            let _ = writeln!(out, "   {line}");
        }
        let _ = writeln!(
            out,
            "   landing/ is the landing bucket (data/ in, archive/ and rejected/ out); synced/ is the\n   synced-products bucket: synced/ exactly what was sent, reports/ one per file, checked/\n   each batch's final verdict (pending/ empties as verdicts arrive).\n"
        );
        Ok(out)
    }

    /// One line per checked batch, from the records under `checked/`.
    async fn verdicts(&self, store: &LocalStore) -> anyhow::Result<Vec<String>> {
        let synced = self.wired.synced_bucket();
        let mut lines = BTreeMap::new();
        for object in ports::list_all(store, synced, CHECKED_PREFIX).await? {
            let Some(bytes) = ports::read_small(store, synced, &object.key).await? else {
                continue;
            };
            let record: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", object.key))?;
            let source = record["source_key"].as_str().unwrap_or("?").to_owned();
            let line = format!(
                "{source}: {} product(s), handle {}: {}, {} error(s), {} warning(s)",
                record["item_count"],
                record["handle"].as_str().unwrap_or("?"),
                record["state"].as_str().unwrap_or("?"),
                record["errors_total_count"],
                record["warnings_total_count"]
            );
            lines.insert((source, object.key), line);
        }
        Ok(lines.into_values().collect())
    }
}

/// `data/x.csv: 9 rows read, ...` for the account.
fn summary_of(outcome: &FileOutcome) -> String {
    match outcome {
        FileOutcome::Archived {
            key,
            counts,
            batches,
            ..
        } => format!(
            "{key}: {} rows read, {} sent{} in {batches} batch(es){}, {} rejected, {} superseded by a later row -> archived",
            counts.rows_read,
            counts.sent,
            of_them_deleted(counts.deleted),
            counts.changes_text(),
            counts.rejected,
            counts.superseded
        ),
        FileOutcome::Rejected { key, .. } => {
            format!("{key}: the whole file was rejected -> rejected/")
        }
        FileOutcome::Ignored { key } => format!("{key}: ignored (not a .csv file)"),
        FileOutcome::AlreadyProcessed { key } => format!("{key}: already processed"),
        FileOutcome::Deferred {
            key, batches_sent, ..
        } => format!("{key}: paused after {batches_sent} batch(es); resumes from its checkpoint"),
        FileOutcome::Busy { key, .. } => format!("{key}: being sent by another run"),
    }
}

/// The folder's files as an indented tree; chains of single folders are shown as one line
/// (`checked/2026/11/22/`), so the dates do not take four lines.
fn tree(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut lines = vec![format!("{}/", root.display())];
    walk(root, 1, &mut lines)?;
    Ok(lines)
}

fn walk(dir: &Path, depth: usize, lines: &mut Vec<String>) -> anyhow::Result<()> {
    let mut entries: Vec<(String, PathBuf, bool)> = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        entries.push((name, entry.path(), is_dir));
    }
    entries.sort();
    let indent = "  ".repeat(depth);
    for (name, path, is_dir) in entries {
        if !is_dir {
            lines.push(format!("{indent}{name}"));
            continue;
        }
        let mut label = format!("{name}/");
        let mut path = path;
        while let Some(only) = single_subfolder(&path) {
            let Some(child) = only.file_name() else { break };
            label.push_str(&format!("{}/", child.to_string_lossy()));
            path = only;
        }
        lines.push(format!("{indent}{label}"));
        walk(&path, depth + 1, lines)?;
    }
    Ok(())
}

/// The folder's only entry, when that is a folder.
fn single_subfolder(dir: &Path) -> Option<PathBuf> {
    let mut entries = fs::read_dir(dir).ok()?;
    let first = entries.next()?.ok()?;
    if entries.next().is_some() || !first.file_type().ok()?.is_dir() {
        return None;
    }
    Some(first.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_export_is_built_in_unchanged() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/products");
        let mut on_disk: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".csv"))
            .collect();
        on_disk.sort();
        let built_in: Vec<&str> = SAMPLES.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, built_in);
        for (name, bytes) in SAMPLES {
            assert_eq!(&fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        }
    }

    #[test]
    fn the_tree_folds_chains_of_single_folders() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/2026/11/22")).unwrap();
        fs::write(dir.path().join("a/2026/11/22/h.json"), "{}").unwrap();
        fs::write(dir.path().join("z.log"), "").unwrap();
        let lines = tree(dir.path()).unwrap();
        assert_eq!(&lines[1..], ["  a/2026/11/22/", "    h.json", "  z.log"]);
    }
}
