//! RieFunction driving a real `lambda_runtime` binary (`echo-lambda`) under `aws-lambda-rie`:
//! what the RIE honours (timeout, memory, name, request ids, error documents, crashes, init
//! exits) and that the harness keeps the logs and kills what it started.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use testkit::{FunctionSettings, MotoServer, Outcome, RieFunction, cargo_bin, unique_name};

fn echo_lambda() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_echo-lambda"))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Whether a process with this id exists.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn cargo_bin_finds_the_binary_cargo_built_for_this_test() {
    assert_eq!(
        cargo_bin("echo-lambda").canonicalize().unwrap(),
        echo_lambda().canonicalize().unwrap()
    );
}

#[tokio::test]
async fn response_path_carries_event_context_and_environment() {
    let lambda = RieFunction::start(
        echo_lambda(),
        // Generous: a loaded machine can take seconds to start the function's process, and the
        // RIE counts that init against the timeout.
        &FunctionSettings::named("echo")
            .timeout(Duration::from_secs(60))
            .memory_mb(256),
        &env(&[("ECHO_LAMBDA_CUSTOM", "from-test")]),
    );
    assert!(lambda.invoke_address().ip().is_loopback());
    assert!(lambda.runtime_api_address().ip().is_loopback());
    let before_ms = now_ms();
    let out = lambda.invoke(json!({"hello": "world", "n": [1, 2]})).await;
    let after_ms = now_ms();
    let request_id = out.request_id.clone();
    assert_eq!(out.status, 200);
    let response = out.into_response();

    assert_eq!(response["echo"], json!({"hello": "world", "n": [1, 2]}));
    assert_eq!(response["request_id"], request_id.as_str());
    // The deadline is the invoke's arrival plus AWS_LAMBDA_FUNCTION_TIMEOUT.
    let deadline_ms = response["deadline_ms"].as_u64().unwrap();
    assert!(
        deadline_ms >= before_ms + 60_000 && deadline_ms <= after_ms + 60_000,
        "{deadline_ms} vs {before_ms}..{after_ms}"
    );
    // The RIE's invoked ARN has a fixed region and account.
    assert_eq!(
        response["function_arn"],
        "arn:aws:lambda:us-east-1:012345678912:function:echo"
    );
    assert_eq!(
        response["trace_id"],
        json!(null),
        "the RIE sends no trace id"
    );
    assert_eq!(response["function_name"], "echo");
    assert_eq!(response["memory_mb"], 256);
    assert_eq!(response["version"], "$LATEST");
    assert_eq!(response["custom_env"], "from-test");
    assert_eq!(
        response["home_is_set"], false,
        "the environment starts clean"
    );

    // The function's own output is there as soon as the invocation returns.
    let logs = lambda.logs();
    assert!(
        logs.iter().any(|l| l == "echo-lambda: init done"),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(
            |l| l.starts_with(&format!("REPORT RequestId: {request_id}"))
                && l.contains("Memory Size: 256 MB")
        ),
        "{logs:#?}"
    );
    let inits = lambda.init_durations();
    assert_eq!(inits.len(), 1, "one cold start: {logs:#?}");
}

#[tokio::test]
async fn error_path_reports_type_and_message() {
    let lambda = RieFunction::start(echo_lambda(), &FunctionSettings::default(), &[]);
    let out = lambda
        .invoke(json!({"fail": "CATALOG_ID is not set"}))
        .await;
    assert_eq!(out.status, 200, "the RIE answers a function error with 200");
    match &out.outcome {
        Outcome::Error { error_type, body } => {
            // The RIE answers with the document the function posted; its errorType is the
            // type lambda_runtime names.
            assert_eq!(body["errorMessage"], "CATALOG_ID is not set");
            assert_eq!(body["errorType"].as_str(), Some(error_type.as_str()));
            assert!(!error_type.is_empty());
        }
        other => panic!("expected an error, got {other:?}"),
    }

    let panicked = lambda.invoke(json!({"panic": "index out of range"})).await;
    let (_, body) = panicked.into_error();
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("index out of range"),
        "{body}"
    );
}

#[tokio::test]
async fn invocations_in_a_row_reuse_the_process() {
    let lambda = RieFunction::start(echo_lambda(), &FunctionSettings::default(), &[]);
    let mut ids = Vec::new();
    let mut pids = Vec::new();
    for i in 0..3 {
        let out = lambda.invoke(json!({"i": i})).await;
        ids.push(out.request_id.clone());
        assert_eq!(out.into_response()["echo"]["i"], i);
        pids.push(lambda.function_pids());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "request ids are unique");
    assert_eq!(pids[0].len(), 1, "one function process: {pids:?}");
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    // The error path does not break the loop either.
    assert!(lambda.invoke(json!({"fail": "x"})).await.is_error());
    assert!(lambda.invoke(json!({})).await.response().is_some());
    assert_eq!(lambda.function_pids(), pids[0]);
    assert_eq!(lambda.init_durations().len(), 1);
}

#[tokio::test]
async fn the_function_timeout_is_honoured_and_a_new_process_follows() {
    let lambda = RieFunction::start(
        echo_lambda(),
        &FunctionSettings::default().timeout(Duration::from_secs(2)),
        &[],
    );
    // Far longer than the timeout: the outcome does not depend on how fast anything runs.
    let slow = lambda.invoke(json!({"sleep_ms": 600_000})).await;
    let (kind, body) = slow.into_error();
    assert_eq!(kind, "Sandbox.Timedout");
    assert_eq!(body["errorMessage"], "Task timed out after 2.00 seconds");

    // The timed-out process was killed; the next invoke starts a fresh one, whose context
    // carries the same timeout.
    let before_ms = now_ms();
    let out = lambda.invoke(json!({})).await;
    let after_ms = now_ms();
    let response = out.into_response();
    let deadline_ms = response["deadline_ms"].as_u64().unwrap();
    assert!(
        deadline_ms >= before_ms + 2_000 && deadline_ms <= after_ms + 2_000,
        "{deadline_ms} vs {before_ms}..{after_ms}"
    );
    assert!(response["remaining_ms"].as_u64().unwrap() <= 2_000);
    assert_eq!(lambda.init_durations().len(), 2, "{:#?}", lambda.logs());
}

#[tokio::test]
async fn output_is_captured_line_by_line() {
    let lambda = RieFunction::start(echo_lambda(), &FunctionSettings::default(), &[]);
    lambda
        .invoke(json!({"print": "processing data/a.csv"}))
        .await
        .into_response();
    let logs = lambda.logs();
    assert!(
        logs.iter().any(|l| l == "processing data/a.csv"),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l == "stderr: processing data/a.csv"),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_crash_mid_invocation_is_a_runtime_exit_error() {
    let lambda = RieFunction::start(echo_lambda(), &FunctionSettings::default(), &[]);
    let out = lambda.invoke(json!({"exit": 3})).await;
    assert_eq!(out.status, 502);
    let (kind, body) = out.into_error();
    assert_eq!(kind, "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Runtime exited with error: exit status 3"),
        "{body}"
    );
    // Like a new sandbox on AWS, the next invocation gets a fresh process.
    let again = lambda.invoke(json!({"after": "crash"})).await;
    assert_eq!(again.into_response()["echo"]["after"], "crash");
}

#[tokio::test]
async fn an_exit_during_init_fails_the_invocation() {
    let lambda = RieFunction::start(
        echo_lambda(),
        &FunctionSettings::default(),
        &env(&[("ECHO_LAMBDA_EXIT_AT_INIT", "2")]),
    );
    let out = lambda.invoke(json!({})).await;
    assert_eq!(out.status, 502);
    // The RIE answers an unreported init exit with an empty 502.
    assert_eq!(
        out.outcome,
        Outcome::Error {
            error_type: "Sandbox.Failure".to_owned(),
            body: json!(null),
        }
    );
    assert!(lambda.wait_for_log("exiting at init with code 2", Duration::from_secs(60)));
    assert!(lambda.wait_for_log("exit status 2", Duration::from_secs(60)));
}

#[tokio::test]
async fn a_function_reaches_moto_with_only_the_env_vars() {
    // The echo function builds its S3 client from the environment alone (no path-style
    // setting), like the real functions.
    let moto = MotoServer::shared();
    let bucket = unique_name("from-lambda");
    moto.create_bucket(&bucket).await;
    let lambda = RieFunction::start(
        echo_lambda(),
        &FunctionSettings::default(),
        &moto.env_vars(),
    );
    lambda
        .invoke(json!({"s3_put": {"bucket": bucket, "key": "synced/x.json", "body": "{}"}}))
        .await
        .into_response();
    assert_eq!(
        moto.get_object(&bucket, "synced/x.json").await.as_deref(),
        Some(&b"{}"[..])
    );
}

#[test]
fn invoke_blocking_drives_a_real_binary_from_sync_code() {
    let lambda = RieFunction::start(echo_lambda(), &FunctionSettings::default(), &[]);
    let out = lambda.invoke_blocking(json!({"sync": true}));
    assert_eq!(out.into_response()["echo"]["sync"], true);
}

#[test]
fn dropping_stops_the_rie_and_the_function() {
    let lambda = RieFunction::start(echo_lambda(), &FunctionSettings::default(), &[]);
    lambda.invoke_blocking(json!({})).into_response();
    let rie = lambda.rie_pid();
    let functions = lambda.function_pids();
    assert_eq!(functions.len(), 1, "{functions:?}");
    drop(lambda);
    // Drop waits for the RIE and kills what is left: nothing remains, with no waiting here.
    assert!(!alive(rie), "the RIE (pid {rie}) is still running");
    for pid in functions {
        // Reaped by the RIE before it exited, or killed by the harness (then a zombie of init
        // at most, which /proc/<pid>/cmdline shows empty).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(cmdline.is_empty(), "function pid {pid} still runs");
    }
}

#[test]
#[ignore = "slow on a cold target dir: `cargo build -p testkit` resolves features without the \
            dev-dependencies, so it compiles a second copy of many dependencies once; run with \
            `--ignored`"]
fn ensure_built_builds_into_the_running_target_dir() {
    // Proves cargo can be invoked from inside `cargo test` (same target dir) without a lock-up
    // and leaves the binaries where cargo_bin looks.
    testkit::ensure_built("testkit");
    testkit::ensure_built("testkit"); // second call is free
    assert!(cargo_bin("echo-lambda").is_file());
}
