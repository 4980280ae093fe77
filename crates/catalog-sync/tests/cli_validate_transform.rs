//! The built `catalog-sync` binary on real files: output and exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/products")
}

fn sample(name: &str) -> String {
    samples().join(name).display().to_string()
}

fn catalog_sync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catalog-sync"))
        .args(args)
        .env_remove("BATCH_SIZE")
        .env_remove("PRODUCT_TYPE_MAPPING")
        .env_remove("COLUMN_MAPPING")
        .output()
        .expect("run catalog-sync")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn validate_a_clean_file_exits_0_with_a_summary() {
    let output = catalog_sync(&["validate", &sample("sample.csv")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).contains("sample.csv: 5 rows read, 5 valid, 0 rejected, 0 superseded"));
}

#[test]
fn validate_lists_each_rejected_row_with_file_line_id_and_reason_and_exits_1() {
    let output = catalog_sync(&["validate", &sample("outdoor-with-problems.csv")]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("outdoor-with-problems.csv:4: id OD-101: rejected: price \"$45.00\" contains a currency symbol"), "{text}");
    assert!(text.contains("outdoor-with-problems.csv:5: id OD-102: rejected: title is empty"));
    assert!(text.contains(":8: id OD-105: superseded: id appears again on line 10"));
    assert!(text.contains("9 rows read, 4 valid, 5 rejected, 1 superseded"));
}

#[test]
fn validate_json_is_one_document_with_the_same_facts() {
    let output = catalog_sync(&[
        "validate",
        "--json",
        &sample("outdoor-with-problems.csv"),
        &sample("home-goods-clean.csv"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(doc["totals"]["rows_read"], 29);
    assert_eq!(doc["totals"]["rejected"], 5);
    assert_eq!(doc["totals"]["superseded"], 1);
    assert_eq!(doc["totals"]["ok"], false);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let stove = rows.iter().find(|r| r["id"] == "OD-101").unwrap();
    assert_eq!(stove["line"], 4);
    assert_eq!(stove["outcome"], "rejected");
    assert_eq!(stove["problems"][0]["field"], "price");
    assert_eq!(stove["problems"][0]["code"], "bad_price");
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files[0]["status"], "rows_rejected");
    assert_eq!(files[1]["status"], "ok");
    assert_eq!(
        files[1]["warnings"][0],
        "extra columns ignored: warehouse_bin"
    );
}

#[test]
fn a_file_level_problem_rejects_the_file_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let header_only = dir.path().join("header-only.csv");
    std::fs::write(&header_only, format!("{}\n", catalog::REQUIRED_HEADER)).unwrap();
    let missing = dir.path().join("missing-columns.csv");
    std::fs::write(&missing, "id,title\n1,x\n").unwrap();
    let output = catalog_sync(&[
        "validate",
        header_only.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("header-only.csv: file rejected: the file has a header but no products"),
        "{text}"
    );
    assert!(text.contains("missing-columns.csv: file rejected: line 1: missing required column(s) description, link"), "{text}");
}

#[test]
fn an_unreadable_file_exits_2_and_other_files_are_still_checked() {
    let output = catalog_sync(&[
        "validate",
        "/nonexistent/products.csv",
        &sample("sample.csv"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(
        text.contains("/nonexistent/products.csv: cannot read: No such file or directory"),
        "{text}"
    );
    assert!(text.contains("sample.csv: 5 rows read"));
}

#[test]
fn wrong_arguments_exit_2() {
    assert_eq!(catalog_sync(&["validate"]).status.code(), Some(2));
    assert_eq!(catalog_sync(&["frobnicate"]).status.code(), Some(2));
    let output = catalog_sync(&["transform", "--batch-size", "6000", &sample("sample.csv")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("BATCH_SIZE must be a whole number from 1 to 5000")
    );
}

#[test]
fn validate_reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalog-sync"))
        .args(["validate", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let csv = std::fs::read(samples().join("sample.csv")).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &csv).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("<stdin>: 5 rows read, 5 valid"));
}

#[test]
fn transform_writes_exactly_what_would_be_sent_merging_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("batches");
    let output = catalog_sync(&[
        "transform",
        "--batch-size",
        "10",
        "--out",
        out.to_str().unwrap(),
        &sample("home-goods-clean.csv"),
        &sample("sample.csv"),
        &sample("outdoor-with-problems.csv"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // 20 + 5 + 3 products to send, in batches of 10.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["batch-0001.json", "batch-0002.json", "batch-0003.json"]
    );
    let mut ids = Vec::new();
    for name in &names {
        let body: Value = serde_json::from_slice(&std::fs::read(out.join(name)).unwrap()).unwrap();
        assert_eq!(body["item_type"], "PRODUCT_ITEM");
        assert_eq!(body["allow_upsert"], true);
        for request in body["requests"].as_array().unwrap() {
            assert_eq!(request["method"], "UPDATE");
            ids.push(request["data"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 28);
    assert_eq!(ids.iter().filter(|id| *id == "OD-105").count(), 1);
    let last: Value =
        serde_json::from_slice(&std::fs::read(out.join("batch-0003.json")).unwrap()).unwrap();
    let poles = last["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["data"]["id"] == "OD-105")
        .unwrap();
    assert_eq!(poles["data"]["price"], "42.00 USD", "the later row wins");
    assert!(stdout(&output).contains("batch-0003.json (8 requests"));
}

#[test]
fn transform_refuses_to_mix_with_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("batch-0001.json"), "{}").unwrap();
    let output = catalog_sync(&[
        "transform",
        "--out",
        dir.path().to_str().unwrap(),
        &sample("sample.csv"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already holds batch-0001.json"));
}

#[test]
fn transform_maps_product_type_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let output = catalog_sync(&[
        "transform",
        "--product-type-as",
        "product_type",
        "--out",
        dir.path().to_str().unwrap(),
        &sample("sample.csv"),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let body: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("batch-0001.json")).unwrap())
            .unwrap();
    let data = &body["requests"][0]["data"];
    assert!(data.get("google_product_category").is_none());
    assert!(
        data["product_type"]
            .as_str()
            .unwrap()
            .starts_with("Animals & Pet Supplies")
    );
}

/// An export in the retailer's own column names, read through a column mapping (issue 14).
const MAPPED_EXPORT: &str = "\
SKU,Name,Beschreibung,link,image_link,availability,price,Marke,SalePrice,Colour
A-1,Mug,Stoneware mug,https://shop.example/p/1,https://cdn.example/1.jpg,in stock,10.00 USD,Hearth,8.00 USD,red
A-2,Bowl,Stoneware bowl,https://shop.example/p/2,https://cdn.example/2.jpg,in stock,12.00 USD,Hearth,14.00 USD,blue
";

const MAPPING: &str = "id=SKU; title=Name; description=Beschreibung; brand=Marke; sale_price=SalePrice; condition:=new";

#[test]
fn validate_shows_the_column_mapping_before_its_verdicts_and_reads_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapped.csv");
    std::fs::write(&file, MAPPED_EXPORT).unwrap();
    let file = file.to_str().unwrap();
    let output = catalog_sync(&["validate", "--column-mapping", MAPPING, file]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "column mapping: column \"SKU\" is read as id",
            "column mapping: column \"Name\" is read as title",
            "column mapping: column \"Beschreibung\" is read as description",
            "column mapping: column \"Marke\" is read as brand",
            "column mapping: column \"SalePrice\" is read as sale_price",
            "column mapping: condition is \"new\" in every row",
        ],
        "{text}"
    );
    // The renamed column is checked as sale_price: above the price on line 3.
    assert!(
        lines[6].contains("mapped.csv:3: id A-2: rejected: sale_price 14.00 USD is above price"),
        "{text}"
    );
    assert!(text.contains("2 rows read, 1 valid, 1 rejected"), "{text}");
    // A column matching no field and no mapping is named once, with the nearest field.
    assert_eq!(
        text.matches("extra columns ignored: Colour (did you mean color?)")
            .count(),
        1,
        "{text}"
    );

    // The same from the environment, and in the JSON document.
    let output = Command::new(env!("CARGO_BIN_EXE_catalog-sync"))
        .args(["validate", "--json", file])
        .env("COLUMN_MAPPING", MAPPING)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let doc: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(
        doc["column_mapping"]["renames"][4],
        serde_json::json!({"column": "SalePrice", "field": "sale_price"})
    );
    assert_eq!(
        doc["column_mapping"]["fixed"],
        serde_json::json!([{"field": "condition", "value": "new"}])
    );
    assert_eq!(doc["totals"]["valid"], 1);

    // Without the mapping, the file lacks Meta's columns.
    let output = catalog_sync(&["validate", file]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("file rejected"),
        "{}",
        stdout(&output)
    );
    assert!(!stdout(&output).contains("column mapping:"));
}

#[test]
fn a_bad_column_mapping_stops_at_start_naming_the_entry_with_exit_2() {
    for (args, env) in [
        (
            vec![
                "validate",
                "--column-mapping",
                "sale_price=SalePrice; saleprise=Sale",
                "x.csv",
            ],
            None,
        ),
        (
            vec!["transform", "x.csv"],
            Some("brand=Marke; brand=Hersteller"),
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_catalog-sync"));
        command.args(&args).env_remove("COLUMN_MAPPING");
        if let Some(spec) = env {
            command.env("COLUMN_MAPPING", spec);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "nothing checked: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let named = if env.is_some() {
            "\"brand=Marke\" and \"brand=Hersteller\" both give brand"
        } else {
            "\"saleprise=Sale\": \"saleprise\" is not a Meta field; did you mean sale_price?"
        };
        assert!(stderr.contains(named), "{stderr}");
        assert!(stderr.contains("--column-mapping"), "{stderr}");
    }
}
