//! `catalog-sync replay` and `catalog-sync poll`: operations on S3 (AWS settings) or a local
//! folder (`--root`), through the same use cases as the Lambda functions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sync::Requirements;
use sync::keys::report_beside;
use sync::ports;
use sync::process::FileOutcome;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};

use crate::setup::{self, CatalogChoice, Storage, Wired};
use crate::{EXIT_OK, EXIT_REJECTED};

/// What `catalog-sync replay` was asked to do.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Keys (`archive/...`, `failed/...`, `data/...`), `s3://` URLs, or local paths.
    pub keys: Vec<String>,
    /// Also every archived file modified at or after this time.
    pub since: Option<OffsetDateTime>,
    /// A local folder instead of S3.
    pub root: Option<PathBuf>,
    /// Send to the built-in emulator (local folder only).
    pub emulator: bool,
    /// Release the held deletes of the snapshots named.
    pub allow_deletes: bool,
    /// The retailer's columns as Meta's fields, and fixed values.
    pub column_mapping: catalog::ColumnMapping,
}

/// Parses `--since`: a date (`2026-11-01`, midnight UTC) or an RFC 3339 time.
pub fn parse_since(value: &str) -> Result<OffsetDateTime, String> {
    let value = value.trim();
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(at);
    }
    Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(|date| date.with_time(Time::MIDNIGHT).assume_utc())
    .map_err(|_| {
        format!("{value:?} is not a date; write it as 2026-11-01 (UTC) or 2026-11-01T08:00:00Z")
    })
}

/// `catalog-sync replay KEY... [--since DATE] [--root DIR]`.
pub fn replay(options: ReplayOptions) -> anyhow::Result<u8> {
    if options.keys.is_empty() && options.since.is_none() {
        bail!(
            "name the files to re-send (archive/..., failed/... or data/... keys) or give --since DATE"
        );
    }
    let runtime = setup::start_on(&Storage::from_root(options.root.clone()), "replay", "warn")?;
    runtime.block_on(replay_async(options))
}

/// Where a replayed file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Archive,
    Failed,
    Landing,
}

async fn replay_async(options: ReplayOptions) -> anyhow::Result<u8> {
    let stop = setup::stop_on_signals();
    let choice = CatalogChoice::from_flag(options.emulator);
    let storage = Storage::from_root(options.root.clone());
    let mut wired = setup::wire(storage, choice, Requirements::PollFunction).await?;
    wired.preflight().await?;
    wired.read_through(options.column_mapping.clone());

    let mut keys = Vec::new();
    for given in &options.keys {
        keys.push(to_key(&wired, given)?);
    }
    if let Some(since) = options.since {
        let archived = archived_since(&wired, since).await?;
        if archived.is_empty() {
            println!(
                "no archived file was modified since {}",
                since.format(&Rfc3339).unwrap_or_default()
            );
        }
        keys.extend(archived);
    }
    // Once each, in the order given (a key named twice would only be sent twice).
    let mut seen = BTreeSet::new();
    keys.retain(|key| seen.insert(key.clone()));

    let processor = wired.processor();
    let mut code = EXIT_OK;
    for key in &keys {
        if stop.is_cancelled() {
            println!("stopped before {key} and the files after it");
            code = EXIT_REJECTED;
            break;
        }
        match replay_one(&wired, &processor, key, options.allow_deletes).await {
            Ok(true) => {}
            Ok(false) => code = EXIT_REJECTED,
            Err(error) => {
                println!("{key}: not re-sent: {error:#}");
                code = EXIT_REJECTED;
            }
        }
    }
    if let Some(emulator) = &wired.emulator
        && let Some(root) = &options.root
    {
        setup::write_emulator_catalog(emulator, &root.join(crate::demo::CATALOG_FILE))?;
    }
    Ok(code)
}

/// Turns what the user typed into a landing-bucket key: a key as is, `s3://bucket/key`, or
/// (with --root) a path to a file under `<root>/landing/`.
fn to_key(wired: &Wired, given: &str) -> anyhow::Result<String> {
    let landing = wired.landing_bucket();
    if let Some(rest) = given.strip_prefix("s3://") {
        let Some((bucket, key)) = rest.split_once('/') else {
            bail!("{given}: an s3:// URL needs a bucket and a key");
        };
        if bucket != landing {
            bail!("{given}: not in the landing bucket {landing}; replay re-sends landing files");
        }
        return Ok(key.to_owned());
    }
    if let Storage::Local(root) = &wired.storage {
        let path = Path::new(given);
        let bucket_dir = root.join(landing);
        if path.is_absolute() || path.exists() {
            let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let bucket_dir = std::fs::canonicalize(&bucket_dir).unwrap_or(bucket_dir);
            if let Ok(relative) = full.strip_prefix(&bucket_dir) {
                let key: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                return Ok(key.join("/"));
            }
            if path.is_absolute() {
                bail!(
                    "{given}: not under {}; give a key such as archive/products.csv",
                    bucket_dir.display()
                );
            }
        }
    }
    Ok(given.to_owned())
}

/// Every archived CSV file modified at or after `since`.
async fn archived_since(wired: &Wired, since: OffsetDateTime) -> anyhow::Result<Vec<String>> {
    let layout = &wired.config.layout;
    let objects = ports::list_all(
        wired.services.store.as_ref(),
        wired.landing_bucket(),
        &layout.archive_prefix,
    )
    .await
    .context("cannot list the archived files")?;
    Ok(objects
        .into_iter()
        .filter(|object| object.last_modified.is_some_and(|at| at >= since))
        .filter(|object| {
            object
                .key
                .strip_prefix(layout.archive_prefix.as_str())
                .is_some_and(|relative| {
                    layout
                        .landing_relative(&layout.landing_key(relative))
                        .is_some()
                })
        })
        .map(|object| object.key)
        .collect())
}

/// Re-sends one file; true when it was archived.
async fn replay_one(
    wired: &Wired,
    processor: &sync::process::FileProcessor,
    key: &str,
    allow_deletes: bool,
) -> anyhow::Result<bool> {
    let layout = &wired.config.layout;
    let store = wired.services.store.as_ref();
    let landing = wired.landing_bucket();
    let (origin, relative) = if let Some(relative) = key.strip_prefix(&layout.archive_prefix) {
        (Origin::Archive, relative)
    } else if let Some(relative) = key.strip_prefix(&layout.failed_prefix) {
        (Origin::Failed, relative)
    } else if let Some(relative) = key.strip_prefix(&layout.landing_prefix) {
        (Origin::Landing, relative)
    } else if key.starts_with(&layout.rejected_prefix) {
        bail!(
            "files in {} could not be used at all; fix the file (its .report.json says why) and put it in {} again",
            layout.rejected_prefix,
            layout.landing_prefix
        );
    } else {
        bail!(
            "not a file replay can re-send: give a key under {}, {} or {}",
            layout.archive_prefix,
            layout.failed_prefix,
            layout.landing_prefix
        );
    };
    let target = layout.landing_key(relative);
    if layout.landing_relative(&target).is_none() {
        bail!("only .csv files are processed");
    }
    if store
        .head(landing, key)
        .await
        .context("cannot look the file up")?
        .is_none()
    {
        bail!("{} does not exist", wired.location(landing, key));
    }
    let mut note = String::new();
    if allow_deletes {
        if !layout.is_snapshot(&target) {
            bail!(
                "--allow-deletes releases the deletes of full snapshots, and {target} is not under the snapshot folder {}",
                layout.snapshot_prefix
            );
        }
        sync::state::StateStore::new(
            store,
            wired.synced_bucket(),
            wired.services.catalog.catalog_id(),
        )
        .release_deletes(&target)
        .await
        .context("cannot record the release of its deletes")?;
        note.push_str("deletes released; ");
    }
    if origin != Origin::Landing {
        if store
            .head(landing, &target)
            .await
            .context("cannot look the landing file up")?
            .is_some()
        {
            note.push_str(&format!(
                "{target} is already in the landing folder, so that copy is sent; "
            ));
        } else {
            store
                .copy(landing, key, &target)
                .await
                .with_context(|| format!("cannot copy it to {target}"))?;
            note.push_str(&format!("copied to {target}; "));
        }
    }
    let outcome = processor
        .process(landing, &target, None)
        .await
        .map_err(anyhow::Error::from)?;
    if origin == Origin::Failed
        && matches!(
            outcome,
            FileOutcome::Archived { .. } | FileOutcome::Rejected { .. }
        )
    {
        // It is no longer a failure; leaving it would invite sending it again.
        store.delete(landing, key).await?;
        store.delete(landing, &report_beside(key)).await?;
        note.push_str(&format!("removed from {}; ", layout.failed_prefix));
    }
    let archived = matches!(outcome, FileOutcome::Archived { .. });
    let line = setup::outcome_line(wired, &outcome);
    if note.is_empty() {
        println!("{line}");
    } else {
        println!("{key}: {note}{line}");
    }
    Ok(archived)
}

/// `catalog-sync poll [--root DIR]`: the poll use case once, and its summary.
pub fn poll(root: Option<PathBuf>) -> anyhow::Result<u8> {
    let storage = Storage::from_root(root);
    let runtime = setup::start_on(&storage, "poll", "warn")?;
    runtime.block_on(async {
        let wired = setup::wire(
            storage,
            CatalogChoice::Configured,
            Requirements::PollFunction,
        )
        .await?;
        match wired.poller().run(None).await {
            Ok(summary) => {
                for line in setup::poll_lines(&summary) {
                    println!("{line}");
                }
                Ok(EXIT_OK)
            }
            Err(error) => {
                println!("poll: {error}");
                if let Some(summary) = error.summary() {
                    for line in setup::poll_lines(summary) {
                        println!("{line}");
                    }
                }
                Ok(EXIT_REJECTED)
            }
        }
    })
}
