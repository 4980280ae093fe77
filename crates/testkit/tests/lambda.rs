//! RuntimeApi and LambdaProcess driving a real `lambda_runtime` binary (`echo-lambda`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use testkit::{LambdaProcess, MotoServer, Outcome, RuntimeApi, cargo_bin, unique_name};

fn echo_lambda() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_echo-lambda"))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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
    let api = RuntimeApi::start_named("echo");
    let lambda = LambdaProcess::spawn(
        echo_lambda(),
        &api,
        &env(&[("ECHO_LAMBDA_CUSTOM", "from-test")]),
    );
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let out = api
        .invoke(
            json!({"hello": "world", "n": [1, 2]}),
            // Generous: a loaded machine can take seconds to start the function's process.
            Duration::from_secs(60),
        )
        .await;
    let request_id = out.request_id.clone();
    let deadline_ms = out.deadline_ms.expect("delivered");
    let response = out.into_response();

    assert_eq!(response["echo"], json!({"hello": "world", "n": [1, 2]}));
    assert_eq!(response["request_id"], request_id.as_str());
    assert_eq!(response["deadline_ms"], deadline_ms);
    assert!(
        deadline_ms >= before_ms + 60_000,
        "{deadline_ms} vs {before_ms}"
    );
    assert_eq!(
        response["function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:echo"
    );
    assert!(
        response["trace_id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    assert_eq!(response["function_name"], "echo");
    assert_eq!(response["memory_mb"], 256);
    assert_eq!(response["version"], "$LATEST");
    assert_eq!(response["log_group"], "/aws/lambda/echo");
    assert_eq!(response["custom_env"], "from-test");
    assert_eq!(
        response["home_is_set"], false,
        "the environment starts clean"
    );

    assert!(lambda.wait_for_log("echo-lambda: init done", Duration::from_secs(5)));
    let init = api.first_next_at().expect("the runtime polled /next") - lambda.spawned_at();
    assert!(init < Duration::from_secs(20), "init took {init:?}");
    assert!(lambda.exit_status().is_none());
}

#[tokio::test]
async fn error_path_reports_type_and_message() {
    let api = RuntimeApi::start();
    let _lambda = LambdaProcess::spawn(echo_lambda(), &api, &[]);
    let out = api
        .invoke(
            json!({"fail": "CATALOG_ID is not set"}),
            Duration::from_secs(20),
        )
        .await;
    match &out.outcome {
        Outcome::Error { error_type, body } => {
            // lambda_runtime posts the header `unhandled` and a JSON error document.
            assert_eq!(error_type, "unhandled");
            assert_eq!(body["errorMessage"], "CATALOG_ID is not set");
            assert!(body["errorType"].is_string());
        }
        other => panic!("expected an error, got {other:?}"),
    }

    let panicked = api
        .invoke(
            json!({"panic": "index out of range"}),
            Duration::from_secs(20),
        )
        .await;
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
    let api = RuntimeApi::start();
    let lambda = LambdaProcess::spawn(echo_lambda(), &api, &[]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let out = api.invoke(json!({"i": i}), Duration::from_secs(20)).await;
        ids.push(out.request_id.clone());
        assert_eq!(out.into_response()["echo"]["i"], i);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "request ids are unique");
    // The error path does not break the loop either.
    assert!(
        api.invoke(json!({"fail": "x"}), Duration::from_secs(20))
            .await
            .is_error()
    );
    assert!(
        api.invoke(json!({}), Duration::from_secs(20))
            .await
            .response()
            .is_some()
    );
    assert!(lambda.exit_status().is_none());
}

#[tokio::test]
async fn the_function_sees_the_deadline_and_overruns_time_out() {
    let api = RuntimeApi::start();
    let _lambda = LambdaProcess::spawn(echo_lambda(), &api, &[]);
    // Warm up so the next timings do not include init.
    api.invoke(json!({}), Duration::from_secs(20))
        .await
        .into_response();

    let out = api.invoke(json!({}), Duration::from_millis(1500)).await;
    let remaining = out.into_response()["remaining_ms"].as_u64().unwrap();
    assert!(
        remaining > 500 && remaining <= 1500,
        "remaining {remaining} ms of 1500"
    );

    let slow = api
        .invoke(json!({"sleep_ms": 3000}), Duration::from_millis(500))
        .await;
    assert!(
        slow.duration < Duration::from_millis(2500),
        "{:?}",
        slow.duration
    );
    let (kind, body) = slow.into_error();
    assert_eq!(kind, "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 0.50 seconds")
    );
}

#[tokio::test]
async fn output_is_captured_line_by_line() {
    let api = RuntimeApi::start();
    let lambda = LambdaProcess::spawn(echo_lambda(), &api, &[]);
    api.invoke(
        json!({"print": "processing data/a.csv"}),
        Duration::from_secs(20),
    )
    .await
    .into_response();
    assert!(lambda.wait_for_log("stderr: processing data/a.csv", Duration::from_secs(5)));
    assert!(lambda.logs().iter().any(|l| l == "processing data/a.csv"));
}

#[tokio::test]
async fn a_crash_mid_invocation_is_a_runtime_exit_error() {
    let api = RuntimeApi::start();
    let lambda = LambdaProcess::spawn(echo_lambda(), &api, &[]);
    let out = api
        .invoke(json!({"exit": 3}), Duration::from_secs(20))
        .await;
    let (kind, body) = out.into_error();
    assert_eq!(kind, "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Runtime exited with error: exit status: 3"),
        "{body}"
    );
    assert_eq!(
        lambda
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(3)
    );
    // With no process left, later invocations fail at once instead of waiting for a runtime.
    let again = api.invoke(json!({}), Duration::from_secs(20)).await;
    assert_eq!(again.into_error().0, "Runtime.ExitError");
}

#[tokio::test]
async fn an_exit_during_init_fails_the_invocation_promptly() {
    let api = RuntimeApi::start();
    let lambda = LambdaProcess::spawn(
        echo_lambda(),
        &api,
        &env(&[("ECHO_LAMBDA_EXIT_AT_INIT", "2")]),
    );
    let out = api.invoke(json!({}), Duration::from_secs(20)).await;
    assert!(out.duration < Duration::from_secs(15), "{:?}", out.duration);
    assert_eq!(out.deadline_ms, None, "never delivered");
    assert_eq!(out.into_error().0, "Runtime.ExitError");
    assert!(api.first_next_at().is_none());
    assert!(lambda.wait_for_log("exiting at init with code 2", Duration::from_secs(5)));
}

#[tokio::test]
async fn a_function_reaches_moto_with_only_the_env_vars() {
    // The echo function builds its S3 client from the environment alone (no path-style
    // setting), like the real functions.
    let moto = MotoServer::shared();
    let bucket = unique_name("from-lambda");
    moto.create_bucket(&bucket).await;
    let api = RuntimeApi::start();
    let _lambda = LambdaProcess::spawn(echo_lambda(), &api, &moto.env_vars());
    let out = api
        .invoke(
            json!({"s3_put": {"bucket": bucket, "key": "synced/x.json", "body": "{}"}}),
            Duration::from_secs(30),
        )
        .await;
    out.into_response();
    assert_eq!(
        moto.get_object(&bucket, "synced/x.json").await.as_deref(),
        Some(&b"{}"[..])
    );
}

#[test]
fn invoke_blocking_drives_a_real_binary_from_sync_code() {
    let api = RuntimeApi::start();
    let _lambda = LambdaProcess::spawn(echo_lambda(), &api, &[]);
    let out = api.invoke_blocking(json!({"sync": true}), Duration::from_secs(20));
    assert_eq!(out.into_response()["echo"]["sync"], true);
}

#[test]
fn dropping_the_process_kills_it() {
    let api = RuntimeApi::start();
    let lambda = LambdaProcess::spawn(echo_lambda(), &api, &[]);
    let pid = lambda.pid();
    assert!(lambda.wait_for_log("init done", Duration::from_secs(20)));
    drop(lambda);
    let alive = || {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(20));
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
