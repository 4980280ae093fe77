//! Configuration from environment variables, read and checked once at start-up.

use std::time::Duration;

use catalog::{BatchLimits, ColumnMapping, ProductTypeMapping};
use graph::{AccessToken, GraphSettings};
use thiserror::Error;

use crate::keys::Layout;

/// A missing or bad environment variable: one line naming it and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What is wrong and what to do.
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

/// Where the Graph API access token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A Secrets Manager secret (the production path); read once, re-read after a token error.
    Secret {
        /// The secret's ARN.
        arn: String,
    },
    /// The token itself, from `META_ACCESS_TOKEN` (local runs and tests only).
    Literal(AccessToken),
}

/// Everything the functions and the CLI read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Meta product catalog id (`CATALOG_ID`).
    pub catalog_id: String,
    /// Where the access token comes from.
    pub token: TokenSource,
    /// Graph API origin, version and timeouts.
    pub graph: GraphSettings,
    /// Buckets and prefixes.
    pub layout: Layout,
    /// SNS topic for alerts (`ALERT_TOPIC_ARN`); `None` off AWS.
    pub alert_topic_arn: Option<String>,
    /// Requests per call and bytes per body.
    pub batch_limits: BatchLimits,
    /// Where `product_type` goes in the request (`PRODUCT_TYPE_MAPPING`).
    pub mapping: ProductTypeMapping,
    /// The retailer's columns as Meta's fields, and fixed values (`COLUMN_MAPPING`); read by
    /// the sync function and the CLI, not the poller, which reads no export.
    pub column_mapping: ColumnMapping,
    /// When a pending handle counts as stuck (`PENDING_MAX_AGE`).
    pub pending_max_age: Duration,
    /// Status checks in flight at once (`POLL_CONCURRENCY`).
    pub poll_concurrency: usize,
    /// SQS queue of follow-up invocations of sync-on-arrival (`CONTINUE_QUEUE_URL`); without
    /// one, unfinished files wait for the poller's sweep.
    pub continue_queue_url: Option<String>,
    /// Age after which a file still in `data/` with no run in progress is re-driven
    /// (`STALE_FILE_AGE`).
    pub stale_file_age: Duration,
    /// Re-drives of one file before it is moved to `failed/` (`MAX_REDRIVES`).
    pub max_redrives: u32,
    /// Change detection and full snapshots (`RESEND_AFTER`, `MAX_DELETE_FRACTION`).
    pub changes: ChangeSettings,
}

/// How change detection decides what to send and what a full snapshot may delete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeSettings {
    /// A product unchanged for this long is sent anyway (`RESEND_AFTER`; 0 sends everything).
    pub resend_after: Duration,
    /// Share of the known products one snapshot may delete before its deletes are held
    /// (`MAX_DELETE_FRACTION`, from 0 to 1).
    pub max_delete_fraction: f64,
}

impl Default for ChangeSettings {
    fn default() -> Self {
        ChangeSettings {
            resend_after: crate::state::DEFAULT_RESEND_AFTER,
            max_delete_fraction: crate::state::DEFAULT_MAX_DELETE_FRACTION,
        }
    }
}

/// Which variables are required: the Lambda functions need AWS resources named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirements {
    /// sync-on-arrival: the synced bucket and topic; the landing bucket comes with each event.
    SyncFunction,
    /// poll-batch-status: also the landing bucket.
    PollFunction,
    /// The CLI against a local folder: no bucket or topic needed.
    Local,
}

/// Default Graph API version: a current one. Each version lives about two years.
pub const DEFAULT_GRAPH_API_VERSION: &str = graph::DEFAULT_API_VERSION;
/// Default `PENDING_MAX_AGE`.
pub const DEFAULT_PENDING_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default `POLL_CONCURRENCY`.
pub const DEFAULT_POLL_CONCURRENCY: usize = 8;
/// Default `STALE_FILE_AGE`.
pub const DEFAULT_STALE_FILE_AGE: Duration = Duration::from_secs(30 * 60);
/// Default `MAX_REDRIVES`.
pub const DEFAULT_MAX_REDRIVES: u32 = 3;

/// Every variable [`Config`] reads.
pub const VARIABLES: &[&str] = &[
    "CATALOG_ID",
    "ACCESS_TOKEN_SECRET_ARN",
    "META_ACCESS_TOKEN",
    "GRAPH_API_BASE_URL",
    "GRAPH_API_VERSION",
    "LANDING_PREFIX",
    "ARCHIVE_PREFIX",
    "REJECTED_PREFIX",
    "FAILED_PREFIX",
    "SYNCED_BUCKET",
    "LANDING_BUCKET",
    "ALERT_TOPIC_ARN",
    "BATCH_SIZE",
    "PRODUCT_TYPE_MAPPING",
    "COLUMN_MAPPING",
    "PENDING_MAX_AGE",
    "POLL_CONCURRENCY",
    "CONTINUE_QUEUE_URL",
    "STALE_FILE_AGE",
    "MAX_REDRIVES",
    "SNAPSHOT_PREFIX",
    "RESEND_AFTER",
    "MAX_DELETE_FRACTION",
];

impl Config {
    /// Reads the process environment.
    pub fn from_env(requirements: Requirements) -> Result<Config, ConfigError> {
        Self::from_lookup(requirements, |name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(
        requirements: Requirements,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let on_aws = requirements != Requirements::Local;

        let catalog_id = get("CATALOG_ID").ok_or_else(|| {
            ConfigError::new(
                "CATALOG_ID",
                "not set; set it to the numeric id of your Meta product catalog (Commerce Manager > Catalog > Settings)",
            )
        })?;
        if !catalog_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new(
                "CATALOG_ID",
                format!(
                    "{catalog_id:?} is not a catalog id; it is a number such as 123456789012345"
                ),
            ));
        }

        let token = match (get("ACCESS_TOKEN_SECRET_ARN"), get("META_ACCESS_TOKEN")) {
            (Some(arn), _) => {
                if !arn.starts_with("arn:") {
                    return Err(ConfigError::new(
                        "ACCESS_TOKEN_SECRET_ARN",
                        "is not an ARN; give the full ARN of the Secrets Manager secret (arn:aws:secretsmanager:...)",
                    ));
                }
                TokenSource::Secret { arn }
            }
            (None, Some(token)) => TokenSource::Literal(AccessToken::new(token)),
            (None, None) => {
                return Err(ConfigError::new(
                    if on_aws {
                        "ACCESS_TOKEN_SECRET_ARN"
                    } else {
                        "META_ACCESS_TOKEN"
                    },
                    "not set; on AWS set ACCESS_TOKEN_SECRET_ARN to the secret holding the system-user token, locally set META_ACCESS_TOKEN",
                ));
            }
        };

        let mut graph = GraphSettings::default();
        if let Some(base_url) = get("GRAPH_API_BASE_URL") {
            graph.base_url = base_url;
        }
        graph.api_version =
            get("GRAPH_API_VERSION").unwrap_or_else(|| DEFAULT_GRAPH_API_VERSION.to_owned());
        graph.validate().map_err(|error| {
            let variable = if error.to_string().contains("GRAPH_API_VERSION") {
                "GRAPH_API_VERSION"
            } else {
                "GRAPH_API_BASE_URL"
            };
            ConfigError::new(variable, error.to_string())
        })?;

        let mut layout = Layout::default();
        for (variable, slot) in [
            ("LANDING_PREFIX", &mut layout.landing_prefix),
            ("ARCHIVE_PREFIX", &mut layout.archive_prefix),
            ("REJECTED_PREFIX", &mut layout.rejected_prefix),
            ("FAILED_PREFIX", &mut layout.failed_prefix),
        ] {
            if let Some(value) = get(variable) {
                *slot = normalise_prefix(variable, &value)?;
            }
        }
        if let Some(value) = get("SNAPSHOT_PREFIX") {
            layout.snapshot_prefix = normalise_prefix("SNAPSHOT_PREFIX", &value)?;
        } else {
            layout.snapshot_prefix = format!("{}full/", layout.landing_prefix);
        }
        if !layout
            .snapshot_prefix
            .starts_with(layout.landing_prefix.as_str())
        {
            return Err(ConfigError::new(
                "SNAPSHOT_PREFIX",
                format!(
                    "{:?} is not inside the landing folder {:?}, so no snapshot would ever be processed; choose a folder under it, such as {:?}",
                    layout.snapshot_prefix,
                    layout.landing_prefix,
                    format!("{}full/", layout.landing_prefix)
                ),
            ));
        }
        layout
            .check_distinct()
            .map_err(|problem| ConfigError::new("LANDING_PREFIX", problem))?;
        match get("SYNCED_BUCKET") {
            Some(bucket) => layout.synced_bucket = bucket,
            None if on_aws => {
                return Err(ConfigError::new(
                    "SYNCED_BUCKET",
                    "not set; name the bucket for synced payloads, reports and pending handles",
                ));
            }
            None => {}
        }
        match get("LANDING_BUCKET") {
            Some(bucket) => layout.landing_bucket = bucket,
            None if requirements == Requirements::PollFunction => {
                return Err(ConfigError::new(
                    "LANDING_BUCKET",
                    "not set; the poller needs the landing bucket to find files left in data/",
                ));
            }
            None => {}
        }

        let alert_topic_arn = get("ALERT_TOPIC_ARN");
        if on_aws && alert_topic_arn.is_none() {
            return Err(ConfigError::new(
                "ALERT_TOPIC_ARN",
                "not set; give the ARN of the SNS topic that emails the team",
            ));
        }

        let batch_limits = match get("BATCH_SIZE") {
            Some(value) => BatchLimits::parse(&value)
                .map_err(|error| ConfigError::new("BATCH_SIZE", error.to_string()))?,
            None => BatchLimits::default(),
        };
        let mapping = match get("PRODUCT_TYPE_MAPPING") {
            Some(value) => value.parse().map_err(|error: catalog::UnknownMapping| {
                ConfigError::new("PRODUCT_TYPE_MAPPING", error.to_string())
            })?,
            None => ProductTypeMapping::default(),
        };
        // The poller reads no export: it neither needs nor checks a mapping.
        let column_mapping = match requirements {
            Requirements::PollFunction => ColumnMapping::default(),
            _ => match get("COLUMN_MAPPING") {
                Some(spec) => parse_column_mapping(&spec)?,
                None => ColumnMapping::default(),
            },
        };
        let pending_max_age = match get("PENDING_MAX_AGE") {
            Some(value) => parse_duration("PENDING_MAX_AGE", &value)?,
            None => DEFAULT_PENDING_MAX_AGE,
        };
        let poll_concurrency = match get("POLL_CONCURRENCY") {
            Some(value) => value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        "POLL_CONCURRENCY",
                        format!("{value:?} is not a whole number from 1 to 64"),
                    )
                })?,
            None => DEFAULT_POLL_CONCURRENCY,
        };

        let continue_queue_url = get("CONTINUE_QUEUE_URL");
        let stale_file_age = match get("STALE_FILE_AGE") {
            Some(value) => parse_duration("STALE_FILE_AGE", &value)?,
            None => DEFAULT_STALE_FILE_AGE,
        };
        let max_redrives = match get("MAX_REDRIVES") {
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| {
                    ConfigError::new(
                        "MAX_REDRIVES",
                        format!("{value:?} is not a whole number from 0 to 100"),
                    )
                })?,
            None => DEFAULT_MAX_REDRIVES,
        };

        let mut changes = ChangeSettings::default();
        if let Some(value) = get("RESEND_AFTER") {
            changes.resend_after = parse_duration("RESEND_AFTER", &value)?;
        }
        if let Some(value) = get("MAX_DELETE_FRACTION") {
            changes.max_delete_fraction = parse_fraction(&value).ok_or_else(|| {
                ConfigError::new(
                    "MAX_DELETE_FRACTION",
                    format!("{value:?} is not a share from 0 to 1 (such as 0.1) or a percentage (such as 10%)"),
                )
            })?;
        }

        Ok(Config {
            catalog_id,
            token,
            graph,
            layout,
            alert_topic_arn,
            batch_limits,
            mapping,
            column_mapping,
            pending_max_age,
            poll_concurrency,
            continue_queue_url,
            stale_file_age,
            max_redrives,
            changes,
        })
    }
}

/// `0.1` or `10%`, from 0 to 1.
fn parse_fraction(value: &str) -> Option<f64> {
    let fraction = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
        None => value.parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&fraction).then_some(fraction)
}

/// A `COLUMN_MAPPING` spec (`field=column; field:=value`), or the error naming its bad entry.
pub fn parse_column_mapping(spec: &str) -> Result<ColumnMapping, ConfigError> {
    spec.parse().map_err(|error: catalog::MappingError| {
        ConfigError::new("COLUMN_MAPPING", error.to_string())
    })
}

/// A prefix ends in `/`, does not start with one, and is not empty.
fn normalise_prefix(variable: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim_matches('/');
    if trimmed.is_empty() {
        return Err(ConfigError::new(
            variable,
            "is empty; give a folder name such as data/",
        ));
    }
    Ok(format!("{trimmed}/"))
}

/// Parses `24h`, `90m`, `1d 12h` and the like.
fn parse_duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| {
            ConfigError::new(
                variable,
                format!("{value:?} is not a duration; write it like 24h, 90m or 2d"),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(requirements: Requirements, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(requirements, |name| map.get(name).cloned())
    }

    const AWS: &[(&str, &str)] = &[
        ("CATALOG_ID", "123456789"),
        (
            "ACCESS_TOKEN_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:1:secret:meta-token",
        ),
        ("SYNCED_BUCKET", "synced"),
        ("LANDING_BUCKET", "landing"),
        ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:1:alerts"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        AWS.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut pairs = without(name);
        pairs.push((name, value));
        pairs
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = config(Requirements::PollFunction, AWS).unwrap();
        assert_eq!(config.layout.landing_prefix, "data/");
        assert_eq!(config.layout.archive_prefix, "archive/");
        assert_eq!(config.layout.rejected_prefix, "rejected/");
        assert_eq!(config.layout.failed_prefix, "failed/");
        assert_eq!(config.batch_limits.max_items(), 3000);
        assert_eq!(config.pending_max_age, Duration::from_secs(86_400));
        assert_eq!(config.graph.api_version, DEFAULT_GRAPH_API_VERSION);
        assert_eq!(config.graph.base_url, "https://graph.facebook.com");
        assert!(matches!(config.token, TokenSource::Secret { .. }));
    }

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for variable in [
            "CATALOG_ID",
            "SYNCED_BUCKET",
            "ALERT_TOPIC_ARN",
            "LANDING_BUCKET",
            "ACCESS_TOKEN_SECRET_ARN",
        ] {
            let err = config(Requirements::PollFunction, &without(variable)).unwrap_err();
            assert_eq!(err.variable, variable);
            assert!(
                err.to_string()
                    .starts_with(&format!("configuration: {variable}: not set")),
                "{err}"
            );
            assert!(!err.to_string().contains('\n'));
        }
        // The sync function learns the landing bucket from each event.
        assert!(config(Requirements::SyncFunction, &without("LANDING_BUCKET")).is_ok());
    }

    #[test]
    fn bad_values_are_named_with_the_fix() {
        for (variable, value) in [
            ("BATCH_SIZE", "6000"),
            ("BATCH_SIZE", "lots"),
            ("PENDING_MAX_AGE", "soon"),
            ("PENDING_MAX_AGE", "0s"),
            ("CATALOG_ID", "my-catalog"),
            ("ACCESS_TOKEN_SECRET_ARN", "meta-token"),
            ("GRAPH_API_BASE_URL", "http://graph.example.com"),
            ("GRAPH_API_VERSION", "25"),
            ("PRODUCT_TYPE_MAPPING", "category"),
            ("POLL_CONCURRENCY", "0"),
            ("LANDING_PREFIX", "/"),
            ("SNAPSHOT_PREFIX", "full/"),
            ("RESEND_AFTER", "weekly"),
            ("MAX_DELETE_FRACTION", "150%"),
            ("MAX_DELETE_FRACTION", "-0.1"),
        ] {
            let err = config(Requirements::PollFunction, &with(variable, value)).unwrap_err();
            assert_eq!(err.variable, variable, "{value}: {err}");
        }
    }

    #[test]
    fn loopback_http_is_allowed_for_emulators_and_values_are_normalised() {
        let pairs = [
            with("GRAPH_API_BASE_URL", "http://127.0.0.1:8080"),
            vec![
                ("PENDING_MAX_AGE", "90m"),
                ("BATCH_SIZE", " 500 "),
                ("ARCHIVE_PREFIX", "/old"),
            ],
        ]
        .concat();
        let config = config(Requirements::PollFunction, &pairs).unwrap();
        assert_eq!(config.pending_max_age, Duration::from_secs(5400));
        assert_eq!(config.batch_limits.max_items(), 500);
        assert_eq!(config.layout.archive_prefix, "old/");
    }

    #[test]
    fn change_detection_has_defaults_and_reads_shares_and_percentages() {
        let read = config(Requirements::PollFunction, &with("BATCH_SIZE", "500")).unwrap();
        assert_eq!(read.changes, ChangeSettings::default());
        assert_eq!(read.layout.snapshot_prefix, "data/full/");
        for (value, expected) in [("25%", 0.25), ("0.5", 0.5), ("0", 0.0), ("1", 1.0)] {
            let pairs = [
                with("MAX_DELETE_FRACTION", value),
                vec![
                    ("RESEND_AFTER", "1d"),
                    ("LANDING_PREFIX", "in"),
                    ("SNAPSHOT_PREFIX", "in/all"),
                ],
            ]
            .concat();
            let read = config(Requirements::PollFunction, &pairs).unwrap();
            assert_eq!(read.changes.max_delete_fraction, expected, "{value}");
            assert_eq!(read.changes.resend_after, Duration::from_secs(86_400));
            assert_eq!(read.layout.snapshot_prefix, "in/all/");
            assert!(read.layout.is_snapshot("in/all/catalog.csv"));
        }
        // The default snapshot folder follows a changed landing folder.
        let read = config(Requirements::PollFunction, &with("LANDING_PREFIX", "inbox")).unwrap();
        assert_eq!(read.layout.snapshot_prefix, "inbox/full/");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let pairs = [
            without("ACCESS_TOKEN_SECRET_ARN"),
            vec![("META_ACCESS_TOKEN", "EAAB-very-secret")],
        ]
        .concat();
        let config = config(Requirements::Local, &pairs).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn a_column_mapping_is_read_by_the_sync_function_and_a_bad_entry_is_named() {
        let good = with("COLUMN_MAPPING", " sale_price=SalePrice; condition:=new ");
        let read = config(Requirements::SyncFunction, &good).unwrap();
        assert_eq!(
            read.column_mapping.field_of("saleprice"),
            Some(catalog::Field::SalePrice)
        );
        assert_eq!(
            read.column_mapping.fixed(),
            [(catalog::Field::Condition, "new".to_owned())]
        );
        assert!(
            config(Requirements::SyncFunction, AWS)
                .unwrap()
                .column_mapping
                .is_empty()
        );
        assert!(
            config(Requirements::SyncFunction, &with("COLUMN_MAPPING", " "))
                .unwrap()
                .column_mapping
                .is_empty()
        );

        for (spec, named) in [
            ("sale_price=SalePrice; saleprise=Sale", "\"saleprise=Sale\""),
            ("brand=Marke; brand=Hersteller", "\"brand=Hersteller\""),
            ("condition", "\"condition\""),
        ] {
            let pairs = [without("COLUMN_MAPPING"), vec![("COLUMN_MAPPING", spec)]].concat();
            for requirements in [Requirements::SyncFunction, Requirements::Local] {
                let err = config(requirements, &pairs).unwrap_err();
                assert_eq!(err.variable, "COLUMN_MAPPING", "{spec}: {err}");
                assert!(
                    err.to_string()
                        .starts_with("configuration: COLUMN_MAPPING: column mapping entr"),
                    "{err}"
                );
                assert!(err.to_string().contains(named), "{spec}: {err}");
            }
            // The poller reads no export, so a mapping cannot stop it.
            assert!(config(Requirements::PollFunction, &pairs).is_ok());
        }
    }

    /// What `Config` looks up for `requirements`, recorded so the lists cannot go stale.
    fn asked(requirements: Requirements) -> Vec<String> {
        let asked = std::sync::Mutex::new(Vec::new());
        let map: HashMap<String, String> = AWS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(requirements, |name| {
            asked.lock().unwrap().push(name.to_owned());
            map.get(name).cloned()
        })
        .unwrap();
        let mut asked = asked.into_inner().unwrap();
        asked.sort();
        asked.dedup();
        asked
    }

    #[test]
    fn the_template_sets_every_variable_the_functions_read() {
        let mut both = [
            asked(Requirements::SyncFunction),
            asked(Requirements::PollFunction),
        ]
        .concat();
        both.sort();
        both.dedup();
        let mut listed: Vec<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
        listed.sort();
        assert_eq!(both, listed, "VARIABLES lists exactly what Config reads");

        // infra/function-env.json is what template.yaml sets on each function (checked by
        // infra/tests/test_template.py); every variable a function reads must be set there,
        // except the local-only token, which must never be in a Lambda's environment.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/function-env.json");
        let text = std::fs::read_to_string(path).expect("infra/function-env.json");
        let sets: HashMap<String, Vec<String>> = serde_json::from_str(&text).unwrap();
        for (function, requirements) in [
            ("SyncOnArrivalFunction", Requirements::SyncFunction),
            ("PollBatchStatusFunction", Requirements::PollFunction),
        ] {
            for variable in asked(requirements)
                .iter()
                .filter(|v| *v != "META_ACCESS_TOKEN")
            {
                assert!(
                    sets[function].iter().any(|s| s == variable),
                    "{function} does not set {variable}"
                );
            }
        }
    }
}
