//! `send` and `status`: talk to a Graph API (Meta's, or an emulator named explicitly).

use std::path::PathBuf;

use anyhow::{Context, bail};
use catalog::{BatchLimits, Batcher, ProductTypeMapping};
use clap::Args;
use graph::{AccessToken, BatchState, GraphClient, GraphSettings, RetryPolicy};

use crate::check::{self, BatchOutput};
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
    /// A client and catalog id, refusing to go on without a token or a catalog.
    fn connect(&self) -> anyhow::Result<(GraphClient, String)> {
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `catalog-sync send`: validate, transform and send, printing each batch's handle.
pub fn send(
    files: &[PathBuf],
    graph: &GraphArgs,
    batch_size: usize,
    mapping: ProductTypeMapping,
) -> anyhow::Result<u8> {
    let (client, catalog_id) = graph.connect()?;
    let runtime = runtime()?;
    let info = runtime
        .block_on(client.catalog(&catalog_id))
        .with_context(|| {
            format!(
                "preflight of catalog {catalog_id} at {} failed",
                graph.graph_url
            )
        })?;
    eprintln!(
        "sending to catalog {} ({}) at {}/{}",
        info.id,
        info.name.as_deref().unwrap_or("unnamed"),
        graph.graph_url,
        graph.graph_version
    );
    let batcher = Batcher::new(BatchLimits::new(batch_size)?, mapping);
    let (sender, mut batches) = tokio::sync::mpsc::channel(1);
    let files = files.to_vec();
    // Validation streams on its own thread; this thread sends each batch as it completes.
    let checker = std::thread::spawn(move || {
        check::run(&files, batcher, BatchOutput::Channel(sender), false)
    });
    let sent = runtime.block_on(async {
        let mut lines = Vec::new();
        while let Some(batch) = batches.recv().await {
            let chunks = client
                .send_batch(
                    &catalog_id,
                    &batch.requests_json,
                    &RetryPolicy::default(),
                    None,
                )
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "batch {:04} was not sent: {error}. {}",
                        batch.number,
                        error.what_to_do()
                    )
                })?;
            for chunk in chunks {
                let handle = chunk
                    .response
                    .handles
                    .first()
                    .map_or("(none: nothing taken)", String::as_str);
                eprintln!(
                    "batch {:04}: {} requests sent, handle {handle}",
                    batch.number, chunk.item_count
                );
                lines.push(format!(
                    "batch {:04}: {} requests, handle {handle}",
                    batch.number, chunk.item_count
                ));
            }
        }
        anyhow::Ok(lines)
    });
    let checked = checker
        .join()
        .map_err(|_| anyhow::anyhow!("the validation thread failed"))?;
    let lines = sent?;
    for line in &lines {
        println!("{line}");
    }
    if !lines.is_empty() {
        println!("check the verdicts with: catalog-sync status HANDLE...");
    }
    checked
}

/// `catalog-sync status HANDLE...`: each handle's verdict.
pub fn status(handles: &[String], graph: &GraphArgs, json: bool) -> anyhow::Result<u8> {
    let (client, catalog_id) = graph.connect()?;
    let runtime = runtime()?;
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
