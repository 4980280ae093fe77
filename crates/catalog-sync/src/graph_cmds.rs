//! `send` and `status`: talk to a Graph API (Meta's, or an emulator named explicitly).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use catalog::{ColumnMapping, ProductTypeMapping};
use clap::Args;
use graph::{AccessToken, BatchState, GraphClient, GraphSettings, RetryPolicy};
use sync::alert::wording::of_them_deleted;
use sync::process::{FileOutcome, FileProcessor, Settings};
use sync::report::FileReport;
use sync::{Config, Requirements};

use crate::{EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE};

/// Which catalog, on which Graph API.
#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    /// The Meta product catalog id.
    #[arg(long, env = "CATALOG_ID")]
    pub catalog_id: Option<String>,
    /// The Graph API origin; an emulator's URL to try things locally.
    #[arg(
        long,
        env = "GRAPH_API_BASE_URL",
        default_value = "https://graph.facebook.com"
    )]
    pub graph_url: String,
    /// The Graph API version.
    #[arg(long, env = "GRAPH_API_VERSION", default_value = sync::config::DEFAULT_GRAPH_API_VERSION)]
    pub graph_version: String,
}

impl GraphArgs {
    /// The token and catalog id, refusing to go on without either.
    fn token_and_catalog(&self) -> anyhow::Result<(String, String)> {
        let token = std::env::var("META_ACCESS_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let Some(token) = token else {
            bail!(
                "META_ACCESS_TOKEN is not set; catalog-sync never sends without a token. Set it to a system-user token with catalog_management permission, or run `catalog-sync emulator` and use its token (emulator-token) with --graph-url"
            );
        };
        let Some(catalog_id) = self.catalog_id.clone() else {
            bail!(
                "no catalog: pass --catalog-id or set CATALOG_ID to your Meta product catalog id"
            );
        };
        Ok((token, catalog_id))
    }

    /// The use case's configuration for these arguments: the flags, `META_ACCESS_TOKEN`, and
    /// `batch_size`, `mapping` and `columns`; the token from Secrets Manager is not used here.
    fn config(
        &self,
        batch_size: usize,
        mapping: ProductTypeMapping,
        columns: ColumnMapping,
    ) -> anyhow::Result<Config> {
        let (token, catalog_id) = self.token_and_catalog()?;
        let batch_size = batch_size.to_string();
        let mut config = Config::from_lookup(Requirements::Local, |name| match name {
            "CATALOG_ID" => Some(catalog_id.clone()),
            "META_ACCESS_TOKEN" => Some(token.clone()),
            "GRAPH_API_BASE_URL" => Some(self.graph_url.clone()),
            "GRAPH_API_VERSION" => Some(self.graph_version.clone()),
            "BATCH_SIZE" => Some(batch_size.clone()),
            // The mapping comes with the arguments (which read COLUMN_MAPPING themselves).
            "ACCESS_TOKEN_SECRET_ARN" | "COLUMN_MAPPING" => None,
            other => std::env::var(other).ok(),
        })?;
        config.mapping = mapping;
        config.column_mapping = columns;
        Ok(config)
    }

    /// A client and catalog id, refusing to go on without a token or a catalog.
    fn connect(&self) -> anyhow::Result<(GraphClient, String)> {
        let (token, catalog_id) = self.token_and_catalog()?;
        let settings = GraphSettings {
            base_url: self.graph_url.clone(),
            api_version: self.graph_version.clone(),
            ..GraphSettings::default()
        };
        settings.validate()?;
        let client = GraphClient::new(settings, AccessToken::new(token.trim()))?;
        Ok((client, catalog_id))
    }
}

/// `catalog-sync send`: each file goes through the sync function's own use case (validate,
/// transform, send, record) over a temporary folder laid out like the buckets, which is
/// deleted at the end; each batch's handle is printed.
pub fn send(
    files: &[PathBuf],
    graph: &GraphArgs,
    batch_size: usize,
    mapping: ProductTypeMapping,
    columns: ColumnMapping,
) -> anyhow::Result<u8> {
    let mut config = graph.config(batch_size, mapping, columns)?;
    let runtime = crate::setup::runtime()?;
    runtime.block_on(async move {
        let work = tempfile::Builder::new()
            .prefix("catalog-sync-send-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let services = sync::wiring::local_services(&mut config, work.path(), true)
            .await
            .context("cannot connect to the catalog")?;
        let info = services.catalog.preflight().await.map_err(|error| {
            anyhow::anyhow!(
                "preflight of catalog {} at {} failed: {error}. {}",
                config.catalog_id,
                graph.graph_url,
                error.what_to_do()
            )
        })?;
        eprintln!(
            "sending to catalog {} ({}) at {}/{}",
            info.id,
            info.name.as_deref().unwrap_or("unnamed"),
            graph.graph_url,
            graph.graph_version
        );
        for line in crate::output::mapping_lines(&config.column_mapping) {
            eprintln!("{line}");
        }
        let store = services.store.clone();
        let processor = FileProcessor::new(services, Settings::from_config(&config));
        let landing = crate::setup::landing_dir(work.path(), &config.layout);
        std::fs::create_dir_all(&landing)
            .with_context(|| format!("cannot create {}", landing.display()))?;
        let mut code = EXIT_OK;
        let mut handles = 0;
        for (index, file) in files.iter().enumerate() {
            // Numbered, so two files of the same name stay apart.
            let relative = format!("{:04}-{}.csv", index + 1, file_stem(file));
            land(file, &landing.join(&relative))?;
            let key = config.layout.landing_key(&relative);
            let name = display_name(file);
            let outcome = processor
                .process(&config.layout.landing_bucket, &key, None)
                .await
                .with_context(|| format!("{name}: not sent"))?;
            match &outcome {
                FileOutcome::Archived {
                    counts,
                    report_key,
                    ..
                } => {
                    // Read as a stream: the report also lists every rejected row.
                    let path = store.location(&config.layout.synced_bucket, report_key);
                    let report: FileReport = std::fs::File::open(&path)
                        .map_err(anyhow::Error::from)
                        .and_then(|file| {
                            Ok(serde_json::from_reader(std::io::BufReader::new(file))?)
                        })
                        .with_context(|| format!("cannot read the file's report {path}"))?;
                    for batch in &report.batches {
                        let handle = batch
                            .handles
                            .first()
                            .map_or("(none: nothing taken)", String::as_str);
                        handles += usize::from(!batch.handles.is_empty());
                        println!(
                            "{name}: batch {:04}: {} requests, handle {handle}",
                            batch.number, batch.items
                        );
                    }
                    println!(
                        "{name}: {} rows read, {} sent{}{}, {} rejected, {} superseded, {} refused by Meta",
                        counts.rows_read,
                        counts.sent,
                        of_them_deleted(counts.deleted),
                        counts.changes_text(),
                        counts.rejected,
                        counts.superseded,
                        counts.refused_by_meta
                    );
                    if counts.rejected + counts.refused_by_meta > 0 {
                        code = code.max(EXIT_REJECTED);
                    }
                }
                FileOutcome::Rejected { .. } => {
                    println!("{name}: file rejected; nothing was sent (see the alert above)");
                    code = code.max(EXIT_REJECTED);
                }
                other => {
                    println!("{name}: not sent: {other:?}");
                    code = EXIT_UNUSABLE;
                }
            }
        }
        if handles > 0 {
            println!("check the verdicts with: catalog-sync status HANDLE...");
        }
        if code != EXIT_OK {
            println!("every rejected row and why: catalog-sync validate FILE...");
        }
        Ok(code)
    })
}

/// A file's name without folders and extension, for its key in the temporary folder.
fn file_stem(file: &Path) -> String {
    if file == Path::new("-") {
        return "stdin".to_owned();
    }
    file.file_stem().map_or_else(
        || "file".to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

fn display_name(file: &Path) -> String {
    if file == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        file.display().to_string()
    }
}

/// Copies `file` (or standard input for `-`) to `to`, streaming.
fn land(file: &Path, to: &Path) -> anyhow::Result<()> {
    let mut out =
        std::fs::File::create(to).with_context(|| format!("cannot create {}", to.display()))?;
    let copied = if file == Path::new("-") {
        std::io::copy(&mut std::io::stdin().lock(), &mut out)
    } else {
        std::fs::File::open(file).and_then(|mut source| std::io::copy(&mut source, &mut out))
    };
    copied.with_context(|| format!("cannot read {}", display_name(file)))?;
    Ok(())
}

/// `catalog-sync status HANDLE...`: each handle's verdict.
pub fn status(handles: &[String], graph: &GraphArgs, json: bool) -> anyhow::Result<u8> {
    let (client, catalog_id) = graph.connect()?;
    let runtime = crate::setup::runtime()?;
    let mut code = EXIT_OK;
    let mut verdicts = Vec::new();
    for handle in handles {
        match runtime.block_on(client.check_with_retry(
            &catalog_id,
            handle,
            &RetryPolicy::default(),
            None,
        )) {
            Ok(status) => {
                let state = status.state();
                if status.errors_total_count > 0
                    || matches!(state, BatchState::Canceled | BatchState::Error)
                {
                    code = code.max(EXIT_REJECTED);
                }
                if json {
                    verdicts.push(status.raw.clone());
                    continue;
                }
                println!(
                    "{handle}: {} ({}), {} error(s), {} warning(s)",
                    status.status,
                    if status.is_terminal() {
                        "final"
                    } else {
                        "not final yet"
                    },
                    status.errors_total_count,
                    status.warnings_total_count
                );
                for (kind, problems) in [("error", &status.errors), ("warning", &status.warnings)] {
                    for problem in problems {
                        let id = problem.id.as_deref().unwrap_or("?");
                        println!("  {kind}: id {id}: {}", problem.message);
                    }
                }
            }
            Err(error) => {
                code = EXIT_UNUSABLE;
                eprintln!("{handle}: cannot check: {error}. {}", error.what_to_do());
            }
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(verdicts));
    }
    Ok(code)
}
