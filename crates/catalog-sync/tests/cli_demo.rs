//! `catalog-sync demo` as a person runs it: a process in an empty folder, no AWS, no token.

mod common;

use std::collections::BTreeSet;

use common::{catalog_ids, catalog_sync, deleted_ids, files_under, sample_files, text, valid_ids};
use serde_json::Value;

#[test]
fn the_demo_runs_the_whole_flow_and_leaves_every_output_in_its_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let output = catalog_sync()
        .arg("demo")
        .current_dir(cwd.path())
        // A real catalog in the environment must not be used: the demo is the emulator's.
        .env("CATALOG_ID", "987654321")
        .env("META_ACCESS_TOKEN", "EAAB-real-token-must-be-ignored")
        .env("GRAPH_API_BASE_URL", "http://127.0.0.1:9")
        .env("BATCH_SIZE", "1")
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("EMULATOR MODE"), "{stderr}");
    assert!(!stdout.contains("EAAB-real") && !stderr.contains("EAAB-real"));

    // One new folder, named after the time.
    let folders: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let dir = &folders[0];
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("catalog-sync-demo-")
    );

    let files = files_under(dir);
    let samples = sample_files();
    let names: Vec<String> = samples
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert!(
            files.contains(&format!("landing/archive/{name}")),
            "{name} archived: {files:#?}"
        );
    }
    let under = |prefix: &str| files.iter().filter(|f| f.starts_with(prefix)).count();
    assert_eq!(under("landing/data/"), 0, "{files:#?}");
    assert_eq!(under("synced/reports/"), names.len(), "{files:#?}");
    // BATCH_SIZE=1 in the environment is ignored too: one batch per file.
    assert_eq!(under("synced/synced/"), names.len(), "{files:#?}");
    assert_eq!(under("synced/checked/"), names.len(), "{files:#?}");
    assert_eq!(under("synced/pending/"), 0, "{files:#?}");
    assert!(files.contains(&"alerts.log".to_owned()));
    assert!(!files.iter().any(|f| f.contains(".tmp-")), "{files:#?}");
    for file in files.iter().filter(|f| f.ends_with(".json")) {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let alerts = std::fs::read_to_string(dir.join("alerts.log")).unwrap();
    assert!(alerts.contains("rows_rejected"), "{alerts}");

    // "Meta" holds exactly the products the catalog rules accept, computed here independently.
    let mut expected = BTreeSet::new();
    let mut sent = 0;
    let mut deleted = 0;
    for sample in &samples {
        let ids = valid_ids(sample);
        sent += ids.len();
        expected.extend(ids);
        // Files are processed in name order, so a delete removes what an earlier file sent.
        for id in deleted_ids(sample) {
            deleted += 1;
            expected.remove(&id);
        }
    }
    assert_eq!(catalog_ids(&dir.join("emulator-catalog.json")), expected);
    let document: Value =
        serde_json::from_slice(&std::fs::read(dir.join("emulator-catalog.json")).unwrap()).unwrap();
    // The later of two rows with the same id won.
    assert_eq!(document["products"]["OD-105"]["price"], "42.00 USD");

    // The account names what happened and where.
    assert!(deleted > 0, "a sample export deletes a product");
    assert!(
        stdout.contains(&format!(
            "Products sent: {sent} ({deleted} of them deletes)."
        )),
        "{stdout}"
    );
    assert!(stdout.contains("currency symbol"), "{stdout}");
    assert!(stdout.contains("finished, 0 error(s)"), "{stdout}");
    assert!(stdout.contains("[warning rows_rejected]"), "{stdout}");
    assert!(stdout.contains("emulator-catalog.json"), "{stdout}");
    assert!(stdout.contains("checked/"), "{stdout}");
}

#[test]
fn the_demo_refuses_a_folder_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let output = catalog_sync()
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("is not empty"));
    assert_eq!(files_under(dir.path()), ["keep.txt"]);
}

#[test]
fn the_demo_runs_in_a_given_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new/demo");
    let output = catalog_sync()
        .args(["demo", "--dir"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(target.join("emulator-catalog.json").is_file());
}
