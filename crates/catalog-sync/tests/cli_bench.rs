//! `catalog-sync bench` on small sizes: the report's shape, not its figures (which depend on
//! the machine and are never checked).

mod common;

use serde_json::Value;

#[test]
fn bench_json_reports_each_size_and_the_missing_lambda_binaries() {
    let lambda_dir = tempfile::tempdir().unwrap();
    let output = common::catalog_sync()
        .args([
            "bench",
            "--rows",
            "2000,3000",
            "--wide-rows",
            "1000",
            "--runs",
            "1",
            "--json",
        ])
        .arg("--lambda-dir")
        .arg(lambda_dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", common::text(&output.stdout)));

    let sizes = report["sizes"].as_array().unwrap();
    let rows: Vec<u64> = sizes.iter().map(|s| s["rows"].as_u64().unwrap()).collect();
    assert_eq!(rows, [2000, 3000]);
    for size in sizes {
        assert!(size["batches"].as_u64().unwrap() >= 1, "{size}");
        for rate in ["rows_per_s", "mb_per_s", "mb", "wall_s"] {
            assert!(size[rate].as_f64().unwrap() > 0.0, "{rate} in {size}");
        }
        if cfg!(target_os = "linux") {
            assert!(size["peak_rss_mib"].as_f64().unwrap() > 0.0, "{size}");
            assert!(size["cpu_s"].as_f64().unwrap() > 0.0, "{size}");
        }
    }
    let wide = report["wide"].as_array().unwrap();
    assert_eq!(wide.len(), 1, "the wide export is reported apart");
    assert_eq!(wide[0]["rows"], 1000);
    assert_eq!(wide[0]["export"], "wide");
    assert!(wide[0]["mb_per_s"].as_f64().unwrap() > 0.0, "{}", wide[0]);
    assert_eq!(report["batch_size"], 3000);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);

    let lambdas = report["lambdas"].as_array().unwrap();
    let names: Vec<&str> = lambdas
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sync-on-arrival", "poll-batch-status"]);
    for lambda in lambdas {
        assert_eq!(lambda["missing"], true, "{lambda}");
        assert!(lambda["init_ms"].as_array().unwrap().is_empty());
    }
    assert_eq!(
        report["build_lambdas"],
        "cargo build --release -p sync-on-arrival -p poll-batch-status"
    );
}

#[test]
fn bench_text_is_a_table_and_says_how_to_build_the_lambdas() {
    let lambda_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let output = common::catalog_sync()
        .args([
            "bench",
            "--rows",
            "100",
            "--runs",
            "1",
            "--batch-size",
            "40",
        ])
        .arg("--lambda-dir")
        .arg(lambda_dir.path())
        .arg("--dir")
        .arg(files.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = common::text(&output.stdout);
    assert!(text.contains("batch size 40"), "{text}");
    assert!(text.contains("peak RSS MiB"), "{text}");
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("100 "))
        .unwrap_or_else(|| panic!("no line for 100 rows in:\n{text}"));
    assert!(
        line.trim_end().ends_with(" 3"),
        "100 rows in batches of 40: {line}"
    );
    assert!(text.contains("sync-on-arrival"), "{text}");
    assert!(text.contains("not found"), "{text}");
    assert!(
        text.contains("cargo build --release -p sync-on-arrival -p poll-batch-status"),
        "{text}"
    );
    // With --dir the generated file is kept.
    assert!(files.path().join("bench-100.csv").is_file());
}
