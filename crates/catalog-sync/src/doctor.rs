//! `catalog-sync doctor`: checks the configuration, the token and catalog, and the buckets and
//! topic (or the local folder), one line per check. Read-only: it writes nothing but a
//! temporary probe file in a local folder, removed at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use graph::RetryPolicy;
use sync::graph_api::{ConnectError, GraphCatalog, TokenProvider};
use sync::local::{ALERTS_LOG, LANDING_BUCKET, SYNCED_BUCKET, TEMP_PREFIX};
use sync::ports::CatalogApi;
use sync::{Config, Requirements, TokenSource};

use crate::setup;
use crate::{EXIT_OK, EXIT_REJECTED};

/// The checks' results, printed as they come.
#[derive(Debug, Default)]
struct Checks {
    failed: usize,
}

impl Checks {
    fn ok(&mut self, check: &str) {
        println!("ok   {check}");
    }

    fn fail(&mut self, check: &str, what: &str, fix: &str) {
        self.failed += 1;
        println!("FAIL {check}: {what}; {fix}");
    }
}

/// `catalog-sync doctor [--root DIR]`.
pub fn doctor(root: Option<PathBuf>) -> anyhow::Result<u8> {
    let storage = setup::Storage::from_root(root);
    let runtime = setup::start_on(&storage, "doctor", "error")?;
    let failed = runtime.block_on(async {
        let mut checks = Checks::default();
        match &storage {
            setup::Storage::Local(root) => local(&mut checks, root).await,
            #[cfg(feature = "aws")]
            setup::Storage::Aws => aws::check(&mut checks).await,
            #[cfg(not(feature = "aws"))]
            setup::Storage::Aws => {}
        }
        checks.failed
    });
    if failed == 0 {
        println!("doctor: every check passed");
        Ok(EXIT_OK)
    } else {
        println!("doctor: {failed} check(s) failed");
        Ok(EXIT_REJECTED)
    }
}

/// The local folder's view: configuration, the token and catalog, and the folders.
async fn local(checks: &mut Checks, root: &Path) {
    let config = configuration(
        checks,
        Requirements::Local,
        " (or use `catalog-sync run --emulator`, which needs no catalog)",
    );
    column_mapping(checks);
    match &config {
        Some(config) => {
            let provider = sync::wiring::local_token_provider(config).await;
            catalog(checks, config, provider).await
        }
        None => checks.fail(
            "catalog",
            "not checked: the configuration is incomplete",
            "fix the configuration line above, then run doctor again",
        ),
    }
    let layout = config.map(|c| c.layout).unwrap_or_default();
    let check = format!("folder {}", root.display());
    if !root.is_dir() {
        checks.fail(
            &check,
            "does not exist or is not a folder",
            "create it, or pass the folder that holds landing/ and synced/",
        );
        return;
    }
    checks.ok(&check);
    let landing = root.join(LANDING_BUCKET);
    let data = setup::landing_dir(root, &layout);
    let check = format!("landing folder {}", data.display());
    if data.is_dir() {
        writable(checks, &check, &data);
    } else {
        checks.fail(
            &check,
            "does not exist",
            &format!(
                "create it (mkdir -p {}) and put the CSV exports in it; `catalog-sync run` also creates it",
                data.display()
            ),
        );
    }
    // Output folders are created by the first write; what matters is that they can be.
    for (name, dir) in [
        ("landing bucket folder", landing),
        ("synced bucket folder", root.join(SYNCED_BUCKET)),
    ] {
        let check = format!("{name} {}", dir.display());
        let existing = dir.ancestors().find(|d| d.is_dir()).unwrap_or(root);
        writable(checks, &check, existing);
    }
    let log = root.join(ALERTS_LOG);
    let check = format!("alert log {}", log.display());
    if log.exists() {
        match std::fs::OpenOptions::new().append(true).open(&log) {
            Ok(_) => checks.ok(&check),
            Err(error) => checks.fail(
                &check,
                &format!("cannot be appended to: {error}"),
                "fix its permissions",
            ),
        }
    } else {
        checks.ok(&format!("{check} (created by the first alert)"));
    }
}

/// Whether a file can be created in `dir`: a probe named like the store's temporary files,
/// which listings skip, removed at once.
fn writable(checks: &mut Checks, check: &str, dir: &Path) {
    match tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}doctor-"))
        .tempfile_in(dir)
    {
        Ok(_) => checks.ok(check),
        Err(error) => checks.fail(
            check,
            &format!("cannot write in {}: {error}", dir.display()),
            "fix the folder's permissions or choose another --root",
        ),
    }
}

/// The configuration line; the configuration when it is valid.
fn configuration(checks: &mut Checks, requirements: Requirements, hint: &str) -> Option<Config> {
    match Config::from_env(requirements) {
        Ok(config) => {
            checks.ok("configuration");
            Some(config)
        }
        Err(error) => {
            // The problem text already says what to do after a `;`.
            let (what, fix) = error.problem.split_once("; ").unwrap_or((
                error.problem.as_str(),
                "see the README's Configuration table",
            ));
            checks.fail(
                "configuration",
                &format!("{} {what}", error.variable),
                &format!("{fix}{hint}"),
            );
            None
        }
    }
}

/// The column mapping files are read through (`COLUMN_MAPPING`), entry by entry. Checked on
/// its own: the poller's configuration, which the AWS check reads, does not include it.
fn column_mapping(checks: &mut Checks) {
    let check = "column mapping (COLUMN_MAPPING)";
    let spec = std::env::var("COLUMN_MAPPING").unwrap_or_default();
    match sync::config::parse_column_mapping(&spec) {
        Ok(mapping) if mapping.is_empty() => checks.ok(&format!(
            "{check}: none; each column is read as the Meta field of its name"
        )),
        Ok(mapping) => checks.ok(&format!("{check}: {mapping}")),
        Err(error) => checks.fail(
            check,
            &error.problem,
            "fix that entry: field=column reads a column as a field, field:=value sets it in every row, entries are separated by ';'",
        ),
    }
}

/// The token (read from the secret when one is named) and the catalog (a preflight read).
async fn catalog(
    checks: &mut Checks,
    config: &Config,
    provider: Result<Arc<dyn TokenProvider>, ConnectError>,
) {
    let source = match &config.token {
        TokenSource::Secret { arn } => format!("from secret {arn}"),
        TokenSource::Literal(_) => "from META_ACCESS_TOKEN".to_owned(),
    };
    let token_check = format!("access token ({source})");
    let provider = match provider {
        Ok(provider) => provider,
        Err(error) => {
            checks.fail(
                &token_check,
                &error.to_string(),
                "set META_ACCESS_TOKEN, or ACCESS_TOKEN_SECRET_ARN with AWS settings",
            );
            return;
        }
    };
    let connected = GraphCatalog::connect(
        config.graph.clone(),
        config.catalog_id.clone(),
        RetryPolicy::no_retry(),
        provider,
    )
    .await;
    let catalog = match connected {
        Ok(catalog) => {
            checks.ok(&token_check);
            Arc::new(catalog)
        }
        Err(error) => {
            checks.fail(
                &token_check,
                &error.to_string(),
                "check the secret exists, holds the token, and may be read (secretsmanager:GetSecretValue)",
            );
            return;
        }
    };
    // Meta retires versions (code 2635); the one in use is worth seeing before it happens.
    let version = &config.graph.api_version;
    let origin = if version == graph::DEFAULT_API_VERSION {
        "the built-in default"
    } else {
        "from GRAPH_API_VERSION"
    };
    checks.ok(&format!("Graph API version {version} ({origin})"));
    let check = format!(
        "catalog {} at {}/{}",
        config.catalog_id, config.graph.base_url, config.graph.api_version
    );
    match catalog.preflight().await {
        Ok(info) => checks.ok(&format!(
            "{check} ({}, {} products)",
            info.name.as_deref().unwrap_or("unnamed"),
            info.product_count
                .map_or_else(|| "unknown number of".to_owned(), |n| n.to_string())
        )),
        Err(error) => checks.fail(&check, &error.to_string(), error.what_to_do()),
    }
}

/// The checks of the AWS resources.
#[cfg(feature = "aws")]
mod aws {
    use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata};
    use sync::Requirements;
    use sync::adapters::aws::S3Store;
    use sync::keys::SYNCED_PREFIXES;
    use sync::ports::{ObjectStore, StoreErrorKind};

    use super::{Checks, catalog, column_mapping, configuration};

    fn is_set(name: &str) -> bool {
        std::env::var(name).is_ok_and(|value| !value.trim().is_empty())
    }

    /// The AWS deployment's view: configuration as the poller needs it (a superset of what the
    /// sync function needs), the token and catalog, both buckets and the topic.
    pub(super) async fn check(checks: &mut Checks) {
        let aws_named = ["SYNCED_BUCKET", "LANDING_BUCKET", "ALERT_TOPIC_ARN"]
            .iter()
            .any(|name| is_set(name));
        let config = if aws_named {
            configuration(checks, Requirements::PollFunction, "")
        } else {
            checks.fail(
                "storage",
                "no --root and no AWS settings (SYNCED_BUCKET, LANDING_BUCKET, ALERT_TOPIC_ARN)",
                "pass --root DIR to check a local folder, or set those variables to check the AWS resources",
            );
            configuration(checks, Requirements::Local, "")
        };
        column_mapping(checks);
        let sdk = sync::adapters::aws::load_sdk_config().await;
        match &config {
            Some(config) => {
                let provider = sync::wiring::token_provider(config, Some(&sdk));
                catalog(checks, config, provider).await
            }
            None => checks.fail(
                "catalog",
                "not checked: the configuration is incomplete",
                "fix the configuration line above, then run doctor again",
            ),
        }
        if !aws_named {
            return;
        }
        // Bucket and topic names are read even when another variable is wrong, so one run shows
        // every problem.
        let layout = config
            .as_ref()
            .map(|c| c.layout.clone())
            .unwrap_or_default();
        let store = S3Store::from_sdk_config(&sdk);
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        for (variable, prefixes) in [
            ("LANDING_BUCKET", &layout.landing_prefixes()[..]),
            ("SYNCED_BUCKET", &SYNCED_PREFIXES[..]),
        ] {
            match env(variable) {
                Some(bucket) => bucket_check(checks, &store, variable, &bucket, prefixes).await,
                None => checks.fail(
                    &format!("{variable} bucket"),
                    &format!("{variable} is not set"),
                    "set it to the bucket's name",
                ),
            }
        }
        match env("ALERT_TOPIC_ARN") {
            Some(topic) => topic_check(checks, &sdk, &topic).await,
            None => checks.fail(
                "alert topic",
                "ALERT_TOPIC_ARN is not set",
                "set it to the ARN of the SNS topic that emails the team",
            ),
        }
    }

    /// Lists each prefix of a bucket once (one page, nothing read or written).
    async fn bucket_check(
        checks: &mut Checks,
        store: &S3Store,
        variable: &str,
        bucket: &str,
        prefixes: &[&str],
    ) {
        let check = format!("{variable} s3://{bucket} ({})", prefixes.join(", "));
        for prefix in prefixes {
            if let Err(error) = store.list(bucket, prefix, None).await {
                let (what, fix) = match error.kind {
                    StoreErrorKind::NoSuchBucket => (
                        "the bucket does not exist".to_owned(),
                        format!("check {variable}, or deploy the stack that creates it"),
                    ),
                    StoreErrorKind::AccessDenied => (
                        format!("access denied listing {prefix}"),
                        "allow s3:ListBucket on the bucket for these credentials".to_owned(),
                    ),
                    _ => (
                        format!("cannot list {prefix}: {}", error.message),
                        "check the AWS credentials, region and network".to_owned(),
                    ),
                };
                checks.fail(&check, &what, &fix);
                return;
            }
        }
        checks.ok(&check);
    }

    /// Asks SNS for the topic's attributes.
    async fn topic_check(checks: &mut Checks, sdk: &aws_config::SdkConfig, topic: &str) {
        let check = format!("ALERT_TOPIC_ARN {topic}");
        let client = aws_sdk_sns::Client::new(sdk);
        match client.get_topic_attributes().topic_arn(topic).send().await {
            Ok(_) => checks.ok(&check),
            Err(error) => {
                let what = match (error.code(), error.message()) {
                    (Some("NotFound"), _) => "the topic does not exist".to_owned(),
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    _ => DisplayErrorContext(&error).to_string(),
                };
                checks.fail(
                    &check,
                    &what,
                    "check ALERT_TOPIC_ARN (account and region included) and that sns:GetTopicAttributes is allowed",
                );
            }
        }
    }
}
