//! Figures for the compiled sync-on-arrival binary under `aws-lambda-rie` (printed, never
//! asserted): time from process start to the first `/runtime/invocation/next` (what Lambda
//! bills as init, as the RIE's `INIT REPORT` gives it), binary size, and, for each size in
//! `BENCH_ROWS` (comma-separated row counts, default 5000,100000,1000000), end-to-end time,
//! throughput, batches and peak memory of a fresh function process against moto and the Graph
//! API emulator.
//!
//! Run with `cargo bench -p sync-on-arrival --bench lambda` (needs moto and the SAM CLI's RIE:
//! `make tools`);
//! `BENCH_ROWS=100000 cargo bench ...` for one size.

use std::time::{Duration, Instant};

use graph_emulator::{DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, GraphEmulator};
use serde_json::json;
use testkit::{FunctionSettings, MotoServer, Outcome, RieFunction, unique_name};

/// Sizes run end to end when `BENCH_ROWS` is not set.
const DEFAULT_ROWS: &str = "5000,100000,1000000";
/// Lambda's longest timeout; the largest file must finish in one invocation to be measured.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(900);

/// The function's settings under the RIE.
fn settings() -> FunctionSettings {
    FunctionSettings::named("sync-on-arrival").timeout(INVOCATION_TIMEOUT)
}

/// Peak resident memory of a process, from /proc (Linux), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let binary = env!("CARGO_BIN_EXE_sync-on-arrival");
    let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    println!(
        "sync-on-arrival binary: {binary} ({:.1} MiB)",
        size as f64 / 1_048_576.0
    );

    let moto = MotoServer::start();
    let emulator = runtime
        .block_on(GraphEmulator::start(EmulatorConfig::default()))
        .expect("emulator");
    let landing = unique_name("landing");
    let synced = unique_name("synced");
    runtime.block_on(async {
        moto.create_bucket(&landing).await;
        moto.create_bucket(&synced).await;
    });
    let topic = runtime.block_on(moto.create_topic(&unique_name("alerts")));
    let mut env = moto.env_vars();
    for (name, value) in [
        ("CATALOG_ID", DEFAULT_CATALOG_ID.to_owned()),
        ("META_ACCESS_TOKEN", DEFAULT_TOKEN.to_owned()),
        ("GRAPH_API_BASE_URL", emulator.url()),
        ("SYNCED_BUCKET", synced.clone()),
        ("LANDING_BUCKET", landing.clone()),
        ("ALERT_TOPIC_ARN", topic),
        ("RUST_LOG", "warn".to_owned()),
    ] {
        env.push((name.to_owned(), value));
    }

    let mut inits = Vec::new();
    for _ in 0..5 {
        // The RIE starts the function on the first invoke; an event the function refuses at
        // once is enough to measure the cold start.
        let function = RieFunction::start(binary, &settings(), &env);
        function.invoke_blocking(json!({}));
        inits.extend(function.init_durations().first().copied());
    }
    inits.sort();
    if let (Some(best), Some(median)) = (inits.first(), inits.get(inits.len() / 2)) {
        println!(
            "init (process start to first /runtime/invocation/next), 5 runs: best {best:?}, median {median:?}"
        );
    }

    let sizes = bench_rows();
    println!(
        "end to end against moto + emulator, a fresh Lambda process per size (BENCH_ROWS={}):",
        sizes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    for rows in sizes {
        end_to_end(&runtime, &moto, binary, &env, &landing, rows);
    }
}

/// Sizes to run end to end, from `BENCH_ROWS` (comma-separated row counts).
fn bench_rows() -> Vec<u64> {
    let list = std::env::var("BENCH_ROWS").unwrap_or_else(|_| DEFAULT_ROWS.to_owned());
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.replace('_', "").parse().unwrap_or_else(|_| {
                panic!("BENCH_ROWS: {item:?} is not a row count; give numbers such as 5000,100000")
            })
        })
        .collect()
}

/// Uploads a generated file of `rows` rows, invokes a fresh sync-on-arrival process on its
/// S3 event and prints throughput, batches and the process's peak memory.
fn end_to_end(
    runtime: &tokio::runtime::Runtime,
    moto: &MotoServer,
    binary: &str,
    env: &[(String, String)],
    landing: &str,
    rows: u64,
) {
    let key = format!("data/bench-{rows}.csv");
    let bytes = {
        // Dropped once uploaded, so the 1,000,000-row file is not held during the run.
        let mut csv = Vec::new();
        let bytes = catalog::synthetic::write_products(&mut csv, rows, 11).expect("generate");
        runtime.block_on(moto.put_object(landing, &key, csv));
        bytes
    };
    let event = json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "bench"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "bench",
               "bucket": {"name": landing, "ownerIdentity": {"principalId": "bench"}, "arn": format!("arn:aws:s3:::{landing}")},
               "object": {"key": key, "size": bytes, "eTag": "x", "sequencer": "1"}}
    }]});
    let function = RieFunction::start(binary, &settings(), env);
    let started = Instant::now();
    let invocation = function.invoke_blocking(event);
    let elapsed = started.elapsed();
    // Read before the process is killed (on drop): the high-water mark of its whole life.
    let peak = function.function_pids().into_iter().find_map(peak_rss_kib);
    let seconds = elapsed.as_secs_f64().max(1e-9);
    match &invocation.outcome {
        Outcome::Response(summary) => println!(
            "  {rows:>9} rows ({:.1} MB): {elapsed:.2?}, {:.0} rows/s, {:.1} MB/s, {} batches, {} products sent, {} archived, peak RSS {}",
            bytes as f64 / 1e6,
            rows as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            summary["batches"],
            summary["counts"]["sent"],
            summary["archived"].as_array().map_or(0, Vec::len),
            peak.map_or_else(
                || "unknown".to_owned(),
                |kib| format!("{:.1} MiB", kib as f64 / 1024.0)
            ),
        ),
        Outcome::Error { error_type, body } => {
            println!("  {rows:>9} rows: failed after {elapsed:.2?}: {error_type}: {body}")
        }
    }
}
