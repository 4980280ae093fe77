//! Figures for the compiled sync-on-arrival binary (printed, never asserted):
//! time from process start to the first `/runtime/invocation/next` (what Lambda bills as
//! init), binary size, and end-to-end time and peak memory for a 100,000-row file against
//! moto and the Graph API emulator.
//!
//! Run with `cargo bench -p sync-on-arrival --bench lambda` (needs moto: `make tools`).

use std::time::{Duration, Instant};

use graph_emulator::{DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, GraphEmulator};
use serde_json::json;
use testkit::{LambdaProcess, MotoServer, Outcome, RuntimeApi, unique_name};

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
        let api = RuntimeApi::start();
        let process = LambdaProcess::spawn(binary, &api, &env);
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.first_next_at().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(at) = api.first_next_at() {
            inits.push(at.duration_since(process.spawned_at()));
        }
    }
    inits.sort();
    if let (Some(best), Some(median)) = (inits.first(), inits.get(inits.len() / 2)) {
        println!(
            "init (process start to first /runtime/invocation/next), 5 runs: best {best:?}, median {median:?}"
        );
    }

    let mut csv = Vec::new();
    let bytes = catalog::synthetic::write_products(&mut csv, 100_000, 11).expect("generate");
    let key = "data/bench-100k.csv";
    runtime.block_on(moto.put_object(&landing, key, csv));
    let event = json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "bench"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "bench",
               "bucket": {"name": landing, "ownerIdentity": {"principalId": "bench"}, "arn": format!("arn:aws:s3:::{landing}")},
               "object": {"key": key, "size": bytes, "eTag": "x", "sequencer": "1"}}
    }]});
    let api = RuntimeApi::start();
    let process = LambdaProcess::spawn(binary, &api, &env);
    let started = Instant::now();
    let invocation = api.invoke_blocking(event, Duration::from_secs(600));
    let elapsed = started.elapsed();
    let peak = peak_rss_kib(process.pid());
    match &invocation.outcome {
        Outcome::Response(summary) => println!(
            "100,000 rows ({:.1} MB) end to end against moto + emulator: {elapsed:.2?} ({:.0} rows/s), {} batches, {} products sent, peak RSS {}",
            bytes as f64 / 1e6,
            100_000.0 / elapsed.as_secs_f64(),
            summary["batches"],
            summary["counts"]["sent"],
            peak.map_or_else(
                || "unknown".to_owned(),
                |kib| format!("{:.1} MiB", kib as f64 / 1024.0)
            ),
        ),
        Outcome::Error { error_type, body } => {
            println!("100,000-row run failed: {error_type}: {body}")
        }
    }
}
