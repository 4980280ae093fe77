//! Helpers shared by the integration tests of the local-run and operations commands.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Variables the commands read; every test starts from none of them and sets what it needs.
pub const SETTINGS: &[&str] = &[
    "CATALOG_ID",
    "META_ACCESS_TOKEN",
    "ACCESS_TOKEN_SECRET_ARN",
    "GRAPH_API_BASE_URL",
    "GRAPH_API_VERSION",
    "SYNCED_BUCKET",
    "LANDING_BUCKET",
    "ALERT_TOPIC_ARN",
    "LANDING_PREFIX",
    "ARCHIVE_PREFIX",
    "REJECTED_PREFIX",
    "FAILED_PREFIX",
    "BATCH_SIZE",
    "PENDING_MAX_AGE",
    "PRODUCT_TYPE_MAPPING",
    "COLUMN_MAPPING",
    "POLL_CONCURRENCY",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_PROFILE",
    "RUST_LOG",
];

/// The built binary with none of the settings above in its environment.
pub fn catalog_sync() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog-sync"));
    for name in SETTINGS {
        command.env_remove(name);
    }
    command
}

/// `events/products/`.
pub fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/products")
}

/// The sample CSV files, sorted.
pub fn sample_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "csv"))
        .collect();
    files.sort();
    files
}

/// Collects the product ids of every batch, and those of its DELETE requests apart.
struct Ids(BTreeSet<String>, BTreeSet<String>);

impl catalog::Sink for Ids {
    type Error = std::convert::Infallible;

    fn rejected(&mut self, _: u32, _: catalog::RejectedRow) -> Result<(), Self::Error> {
        Ok(())
    }

    fn superseded(&mut self, _: catalog::Superseded) -> Result<(), Self::Error> {
        Ok(())
    }

    fn batch(&mut self, batch: catalog::Batch) -> Result<(), Self::Error> {
        let requests: Vec<Value> = serde_json::from_str(&batch.requests_json).unwrap();
        for request in requests {
            let id = request["data"]["id"].as_str().unwrap().to_owned();
            if request["method"] == "DELETE" {
                self.1.insert(id.clone());
            }
            self.0.insert(id);
        }
        Ok(())
    }
}

/// The ids the catalog crate's rules send from `file`, as one upload.
pub fn valid_ids(file: &Path) -> BTreeSet<String> {
    sent_ids(file).0
}

/// The ids `file` asks to delete, as one upload.
pub fn deleted_ids(file: &Path) -> BTreeSet<String> {
    sent_ids(file).1
}

/// Every id sent from `file`, and the deleted ones among them.
fn sent_ids(file: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let input = std::fs::File::open(file).unwrap();
    let mut reader = catalog::ProductReader::new(input).unwrap();
    let mut batcher = catalog::Batcher::new(
        catalog::BatchLimits::default(),
        catalog::ProductTypeMapping::default(),
    );
    let mut ids = Ids(BTreeSet::new(), BTreeSet::new());
    catalog::feed(&mut reader, 0, &mut batcher, &mut ids).unwrap();
    if let Some(batch) = batcher.finish() {
        catalog::Sink::batch(&mut ids, batch).unwrap();
    }
    (ids.0, ids.1)
}

/// Every file under `dir`, as paths relative to it with `/` separators, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                out.push(
                    relative
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    out.sort();
    out
}

/// The product ids in an `emulator-catalog.json`.
pub fn catalog_ids(path: &Path) -> BTreeSet<String> {
    let document: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    document["products"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Text of captured output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
