//! `send`, `status` and `emulator` of the built binary, against the emulator over HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use graph_emulator::{DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, GraphEmulator};

fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/products")
        .join(name)
        .display()
        .to_string()
}

fn catalog_sync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog-sync"));
    command.args(args);
    for name in [
        "META_ACCESS_TOKEN",
        "CATALOG_ID",
        "GRAPH_API_BASE_URL",
        "GRAPH_API_VERSION",
        "BATCH_SIZE",
        "COLUMN_MAPPING",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run catalog-sync")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_each_handle_and_status_prints_each_verdict() {
    let emulator = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let url = emulator.url();
    let env = [
        ("META_ACCESS_TOKEN", DEFAULT_TOKEN),
        ("CATALOG_ID", DEFAULT_CATALOG_ID),
    ];
    let file = sample("home-goods-clean.csv");
    let output = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            catalog_sync(
                &["send", "--graph-url", &url, "--batch-size", "8", &file],
                &env,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let handles: Vec<String> = stdout
        .lines()
        .filter_map(|line| line.split("handle ").nth(1))
        .map(str::to_owned)
        .collect();
    assert_eq!(handles.len(), 3, "20 products in batches of 8: {stdout}");
    assert_eq!(emulator.items(DEFAULT_CATALOG_ID).len(), 20);
    assert!(text(&output.stderr).contains(&format!("sending to catalog {DEFAULT_CATALOG_ID}")));

    let mut args = vec!["status".to_owned(), "--graph-url".to_owned(), url.clone()];
    args.extend(handles.iter().cloned());
    // The emulator reports "in progress" once, then the final verdict.
    for _ in 0..2 {
        let args = args.clone();
        let output = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            catalog_sync(&refs, &env)
        })
        .await
        .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert_eq!(
            stdout.lines().filter(|l| l.contains("error(s)")).count(),
            3,
            "{stdout}"
        );
        if stdout.contains("finished (final)") {
            return;
        }
    }
    panic!("no handle reached its final verdict");
}

#[test]
fn send_and_status_refuse_without_a_token_or_a_catalog_and_never_fall_back() {
    let output = catalog_sync(&["send", "--catalog-id", "1", &sample("sample.csv")], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr)
            .contains("META_ACCESS_TOKEN is not set; catalog-sync never sends without a token")
    );

    let output = catalog_sync(&["status", "HANDLE"], &[("META_ACCESS_TOKEN", "x")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("pass --catalog-id or set CATALOG_ID"));

    let output = catalog_sync(
        &[
            "send",
            "--graph-url",
            "http://graph.example.com",
            &sample("sample.csv"),
        ],
        &[
            ("META_ACCESS_TOKEN", "EAAB-secret-value"),
            ("CATALOG_ID", "1"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("GRAPH_API_BASE_URL"),
        "plain http is refused off loopback: {stderr}"
    );
    assert!(!stderr.contains("EAAB-secret-value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_explained_without_showing_it() {
    let emulator = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let url = emulator.url();
    let output = tokio::task::spawn_blocking(move || {
        catalog_sync(
            &["send", "--graph-url", &url, &sample("sample.csv")],
            &[
                ("META_ACCESS_TOKEN", "EAAB-wrong-token-4411"),
                ("CATALOG_ID", DEFAULT_CATALOG_ID),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("preflight of catalog"), "{stderr}");
    assert!(!stderr.contains("EAAB-wrong-token-4411"));
    assert!(emulator.items(DEFAULT_CATALOG_ID).is_empty());
}

#[test]
fn the_emulator_command_serves_on_loopback_and_prints_its_url() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catalog-sync"))
        .args(["emulator", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
}
