//! `bench`: throughput and peak memory of the catalog pipeline on generated files of several
//! sizes, and the init time and size of the compiled Lambda binaries. Figures are printed,
//! never checked: they depend on the machine and on what else runs on it.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use catalog::{
    Batch, BatchLimits, Batcher, ProductReader, ProductTypeMapping, RejectedRow, Sink, Superseded,
};
use serde::{Deserialize, Serialize};

use crate::EXIT_OK;

/// Seed of the generated files, so that every run measures the same bytes.
const SEED: u64 = 1;
/// The Lambda binaries, in the order they are reported.
const LAMBDAS: [&str; 2] = ["sync-on-arrival", "poll-batch-status"];
/// The command that builds them.
const BUILD_LAMBDAS: &str = "cargo build --release -p sync-on-arrival -p poll-batch-status";
/// The request a Lambda runtime makes once its init is done.
const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
/// How long a Lambda binary may take to make its first request before the run counts as failed.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request head accepted from a Lambda binary.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest request body kept (an init error's document) for the failure message.
const MAX_BODY_BYTES: usize = 4 * 1024;
/// Bytes in a megabyte, as in the MB and MB/s figures (file sizes are decimal).
const MB: f64 = 1e6;
/// Bytes in a mebibyte, as in the memory and binary-size figures.
const MIB: f64 = 1_048_576.0;

/// What `catalog-sync bench` measures, from its arguments.
#[derive(Debug)]
pub struct BenchOptions {
    /// Sizes of the generated files, in rows.
    pub rows: Vec<u64>,
    /// Sizes of the generated wide files (every field of the catalog filled), in rows.
    pub wide_rows: Vec<u64>,
    /// Requests per batch.
    pub batch_size: usize,
    /// Where to write the generated files (kept); `None` for a temporary folder.
    pub dir: Option<PathBuf>,
    /// Where the Lambda binaries are; `None` for this program's folder.
    pub lambda_dir: Option<PathBuf>,
    /// Init-time measurements per Lambda binary.
    pub runs: u32,
    /// Print one JSON object instead of a table.
    pub json: bool,
}

/// One file read by `bench-one`, printed as one JSON line for the parent to parse.
#[derive(Debug, Serialize, Deserialize)]
struct FileRun {
    /// Size of the file.
    bytes: u64,
    /// Data rows read.
    rows_read: u64,
    /// Rows that passed every rule.
    valid: u64,
    /// Rows that broke a rule.
    rejected: u64,
    /// Rows replaced by a later row with the same id.
    superseded: u64,
    /// Batches produced, the last partial one included.
    batches: u64,
    /// Total length of the batches' `requests` JSON.
    request_bytes: u64,
    /// From opening the file to the last batch.
    wall_s: f64,
    /// CPU time over the same span, where the platform reports it.
    cpu_s: Option<f64>,
    /// Peak resident memory of the whole process, where the platform reports it.
    peak_rss_kib: Option<u64>,
}

/// The machine the figures were measured on.
#[derive(Debug, Serialize)]
struct Machine {
    /// CPUs this process may use.
    cores: Option<usize>,
    /// The CPU's model name, from /proc/cpuinfo.
    cpu: Option<String>,
    /// Total memory, from /proc/meminfo.
    memory_gib: Option<f64>,
    /// Operating system.
    os: &'static str,
    /// Architecture.
    arch: &'static str,
}

/// The figures of one size.
#[derive(Debug, Serialize)]
struct SizeReport {
    /// `original` (the ten columns of the first contract) or `wide` (every field).
    export: &'static str,
    rows: u64,
    bytes: u64,
    mb: f64,
    wall_s: f64,
    cpu_s: Option<f64>,
    rows_per_s: f64,
    mb_per_s: f64,
    rows_per_cpu_s: Option<f64>,
    mb_per_cpu_s: Option<f64>,
    peak_rss_mib: Option<f64>,
    batches: u64,
    request_bytes: u64,
}

/// The figures of one Lambda binary.
#[derive(Debug, Serialize)]
struct LambdaReport {
    name: &'static str,
    path: String,
    /// The binary is not in the folder; nothing else is set.
    missing: bool,
    size_bytes: Option<u64>,
    /// Each run's time from process start to the first `/next` request, in milliseconds.
    init_ms: Vec<f64>,
    best_ms: Option<f64>,
    median_ms: Option<f64>,
    /// Why a run failed; the remaining runs are skipped.
    error: Option<String>,
}

/// Everything `bench --json` prints.
#[derive(Debug, Serialize)]
struct BenchReport {
    machine: Machine,
    /// `release` or `debug`: the build of this program, which does the measured work.
    build: &'static str,
    batch_size: usize,
    seed: u64,
    /// The original ten-column export, one entry per size.
    sizes: Vec<SizeReport>,
    /// The wide export (every field filled), one entry per size.
    wide: Vec<SizeReport>,
    lambda_dir: String,
    init_runs: u32,
    lambdas: Vec<LambdaReport>,
    /// The command that builds the missing Lambda binaries, if any is missing.
    build_lambdas: Option<&'static str>,
}

/// `catalog-sync bench`.
pub fn bench(options: BenchOptions) -> anyhow::Result<u8> {
    let exe =
        std::env::current_exe().context("cannot locate this program to run its measurements")?;
    let lambda_dir = match &options.lambda_dir {
        Some(dir) => dir.clone(),
        None => exe
            .parent()
            .map(Path::to_path_buf)
            .context("this program's path has no folder; pass --lambda-dir")?,
    };
    // Kept alive until the end: dropping it deletes the folder and what is left in it.
    let temp;
    let dir = match &options.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --dir folder {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("catalog-sync-bench-")
                .tempdir()
                .context("cannot create a temporary folder for the generated files")?;
            temp.path().to_path_buf()
        }
    };
    let mut report = BenchReport {
        machine: machine(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        batch_size: options.batch_size,
        seed: SEED,
        sizes: Vec::new(),
        wide: Vec::new(),
        lambda_dir: lambda_dir.display().to_string(),
        init_runs: options.runs,
        lambdas: Vec::new(),
        build_lambdas: None,
    };
    let text = !options.json;
    let progress = io::stderr().is_terminal();
    let mut out = io::stdout().lock();
    if text {
        print_heading(&mut out, &report)?;
    }

    let sizes = options
        .rows
        .iter()
        .map(|&rows| (rows, false))
        .chain(options.wide_rows.iter().map(|&rows| (rows, true)));
    let mut wide_heading = false;
    for (rows, wide) in sizes {
        if wide && text && !wide_heading {
            writeln!(
                out,
                "\nWide export: every field of the catalog filled ({} columns):",
                catalog::FIELD_COUNT - 1
            )?;
            wide_heading = true;
        }
        let name = if wide { "bench-wide" } else { "bench" };
        let path = dir.join(format!("{name}-{rows}.csv"));
        if progress {
            eprint!("generating {} rows...\r", thousands(rows));
        }
        generate(&path, rows, wide)?;
        if progress {
            eprint!("reading {} rows...   \r", thousands(rows));
        }
        let run = measure_file(&exe, &path, options.batch_size);
        if options.dir.is_none() {
            // The largest files are hundreds of MB: free the space before generating the next.
            let _ = std::fs::remove_file(&path);
        }
        let mut size = size_report(&run?);
        if wide {
            size.export = "wide";
        }
        if text {
            print_size(&mut out, &size)?;
        }
        if wide {
            report.wide.push(size);
        } else {
            report.sizes.push(size);
        }
    }

    if text {
        writeln!(
            out,
            "\nLambda binaries in {} (init: process start to the first GET {NEXT_PATH}, {} runs):",
            lambda_dir.display(),
            options.runs
        )?;
    }
    for name in LAMBDAS {
        if progress {
            eprint!("starting {name}...        \r");
        }
        let lambda = measure_lambda(&lambda_dir, name, options.runs);
        if text {
            print_lambda(&mut out, &lambda)?;
        }
        report.lambdas.push(lambda);
    }
    if report.lambdas.iter().any(|lambda| lambda.missing) {
        report.build_lambdas = Some(BUILD_LAMBDAS);
        if text {
            writeln!(out, "  build them with: {BUILD_LAMBDAS}")?;
        }
    }

    if options.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// `catalog-sync bench-one FILE`: reads `file` once through the pipeline, discarding the
/// batches, and prints one [`FileRun`] as a JSON line.
pub fn bench_one(file: &Path, batch_size: usize) -> anyhow::Result<u8> {
    let limits = BatchLimits::new(batch_size)?;
    let cpu_start = cpu_time();
    let started = Instant::now();
    let input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let bytes = input
        .metadata()
        .with_context(|| format!("cannot read the size of {}", file.display()))?
        .len();
    // The same buffer size as validate and transform use.
    let input = BufReader::with_capacity(256 * 1024, input);
    let mut reader = ProductReader::new(input)
        .with_context(|| format!("{} is not a usable product export", file.display()))?;
    let mut batcher = Batcher::new(limits, ProductTypeMapping::default());
    let mut sink = Counter::default();
    let counts = catalog::feed(&mut reader, 0, &mut batcher, &mut sink)
        .with_context(|| format!("cannot read {}", file.display()))?;
    if let Some(batch) = batcher.finish() {
        sink.count(&batch);
    }
    let wall = started.elapsed();
    let cpu = cpu_start
        .zip(cpu_time())
        .map(|(start, end)| end.saturating_sub(start).as_secs_f64());
    let run = FileRun {
        bytes,
        rows_read: counts.rows_read,
        valid: counts.valid,
        rejected: counts.rejected,
        superseded: sink.superseded,
        batches: sink.batches,
        request_bytes: sink.request_bytes,
        wall_s: wall.as_secs_f64(),
        cpu_s: cpu,
        peak_rss_kib: peak_rss_kib(),
    };
    println!("{}", serde_json::to_string(&run)?);
    Ok(EXIT_OK)
}

/// Counts what the pipeline produces and drops it, so only the pipeline is measured.
#[derive(Debug, Default)]
struct Counter {
    batches: u64,
    request_bytes: u64,
    superseded: u64,
}

impl Counter {
    fn count(&mut self, batch: &Batch) {
        self.batches += 1;
        self.request_bytes += batch.requests_json.len() as u64;
    }
}

impl Sink for Counter {
    type Error = std::convert::Infallible;

    fn rejected(&mut self, _source: u32, _row: RejectedRow) -> Result<(), Self::Error> {
        Ok(())
    }

    fn superseded(&mut self, _superseded: Superseded) -> Result<(), Self::Error> {
        self.superseded += 1;
        Ok(())
    }

    fn batch(&mut self, batch: Batch) -> Result<(), Self::Error> {
        self.count(&batch);
        Ok(())
    }
}

/// Writes a generated export of `rows` products to `path` (not timed).
fn generate(path: &Path, rows: u64, wide: bool) -> anyhow::Result<u64> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1024 * 1024, file);
    let written = if wide {
        catalog::synthetic::write_wide_products(&mut out, rows, SEED)
    } else {
        catalog::synthetic::write_products(&mut out, rows, SEED)
    };
    let bytes = written.with_context(|| format!("cannot write {}", path.display()))?;
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes)
}

/// Runs `bench-one` on `file` in a fresh process, so that its peak memory is this file's alone.
fn measure_file(exe: &Path, file: &Path, batch_size: usize) -> anyhow::Result<FileRun> {
    let output = Command::new(exe)
        .arg("bench-one")
        .arg("--batch-size")
        .arg(batch_size.to_string())
        .arg(file)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {} bench-one", exe.display()))?;
    if !output.status.success() {
        bail!(
            "measuring {} failed: bench-one exited with {}",
            file.display(),
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .with_context(|| format!("measuring {}: bench-one printed nothing", file.display()))?;
    serde_json::from_str(line)
        .with_context(|| format!("measuring {}: bench-one printed {line:?}", file.display()))
}

/// The figures of one run, with rates.
fn size_report(run: &FileRun) -> SizeReport {
    let mb = run.bytes as f64 / MB;
    // A zero duration (a clock too coarse for a tiny file) would make the rates infinite.
    let wall = run.wall_s.max(1e-9);
    let cpu = run.cpu_s.map(|cpu| cpu.max(1e-9));
    SizeReport {
        export: "original",
        rows: run.rows_read,
        bytes: run.bytes,
        mb,
        wall_s: run.wall_s,
        cpu_s: run.cpu_s,
        rows_per_s: run.rows_read as f64 / wall,
        mb_per_s: mb / wall,
        rows_per_cpu_s: cpu.map(|cpu| run.rows_read as f64 / cpu),
        mb_per_cpu_s: cpu.map(|cpu| mb / cpu),
        peak_rss_mib: run.peak_rss_kib.map(|kib| kib as f64 * 1024.0 / MIB),
        batches: run.batches,
        request_bytes: run.request_bytes,
    }
}

/// Size and init times of the Lambda binary `name` in `dir`.
fn measure_lambda(dir: &Path, name: &'static str, runs: u32) -> LambdaReport {
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut report = LambdaReport {
        name,
        path: path.display().to_string(),
        missing: false,
        size_bytes: None,
        init_ms: Vec::new(),
        best_ms: None,
        median_ms: None,
        error: None,
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => report.size_bytes = Some(meta.len()),
        _ => {
            report.missing = true;
            return report;
        }
    }
    for _ in 0..runs {
        match measure_init(&path, name) {
            Ok(init) => report.init_ms.push(init.as_secs_f64() * 1000.0),
            Err(error) => {
                report.error = Some(format!("{error:#}"));
                break;
            }
        }
    }
    let mut sorted = report.init_ms.clone();
    sorted.sort_by(f64::total_cmp);
    report.best_ms = sorted.first().copied();
    report.median_ms = median(&sorted);
    report
}

/// The middle value of sorted `values` (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if !n.is_multiple_of(2) => values.get(mid).copied(),
        _ => Some((values.get(mid - 1)? + values.get(mid)?) / 2.0),
    }
}

/// The first request a Lambda binary made, and when its head was complete.
struct FirstRequest {
    /// `METHOD PATH VERSION`.
    line: String,
    at: Instant,
    /// The start of the body (an init error's document), for the failure message.
    body: String,
}

/// Starts `binary` against a one-shot Runtime API on loopback and returns the time from the
/// spawn to its first `GET /next`: what Lambda bills as the init phase.
fn measure_init(binary: &Path, name: &str) -> anyhow::Result<Duration> {
    // Loopback only: the function must reach nothing else during init.
    let listener = TcpListener::bind("127.0.0.1:0")
        .context("cannot listen on 127.0.0.1 for the Runtime API")?;
    let address = listener
        .local_addr()
        .context("the Runtime API listener has no address")?;
    let (sender, received) = mpsc::channel();
    // A blocking accept on its own thread records the instant the request arrives, with no
    // polling delay.
    let acceptor = std::thread::spawn(move || {
        let _ = sender.send(first_request(&listener));
    });

    let mut command = Command::new(binary);
    // A clean environment like Lambda's: nothing from this shell (AWS profiles, endpoints,
    // RUST_LOG) changes what the function does at init.
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .envs(lambda_env(name, address))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let spawned_at = Instant::now();
    let child = command.spawn();

    let outcome = match child {
        Ok(mut child) => {
            let outcome = wait_for_request(&received, &mut child, name, spawned_at);
            let _ = child.kill();
            let _ = child.wait();
            outcome
        }
        Err(error) => Err(anyhow!(error).context(format!("cannot start {}", binary.display()))),
    };
    if !acceptor.is_finished() {
        // Unblocks the accept (or ends the read) so that the thread can be joined.
        let _ = TcpStream::connect_timeout(&address, Duration::from_secs(1));
    }
    let _ = acceptor.join();

    let request = outcome?;
    let mut parts = request.line.split_whitespace();
    if parts.next() == Some("GET") && parts.next() == Some(NEXT_PATH) {
        Ok(request.at.saturating_duration_since(spawned_at))
    } else {
        bail!(
            "{name} made `{}` as its first request instead of GET {NEXT_PATH}{}",
            request.line,
            if request.body.is_empty() {
                String::new()
            } else {
                format!(": {}", request.body)
            }
        )
    }
}

/// The environment Lambda gives a function, with the configuration both functions require.
/// The AWS and Graph API settings are dummies: no client calls out during init (the token is
/// literal, credentials are resolved on first use, the region is given), so they are never
/// used; the Graph API origin is a closed loopback port in case that ever changes.
fn lambda_env(name: &str, address: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", address.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]bench".to_owned(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        // Lambda has no shared config files; these keep a developer's ~/.aws out of the run.
        (
            "AWS_CONFIG_FILE",
            "/nonexistent/catalog-sync-bench/config".to_owned(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/catalog-sync-bench/credentials".to_owned(),
        ),
        ("CATALOG_ID", "100000000000001".to_owned()),
        ("META_ACCESS_TOKEN", "bench-token".to_owned()),
        ("GRAPH_API_BASE_URL", "http://127.0.0.1:9".to_owned()),
        ("SYNCED_BUCKET", "bench-synced".to_owned()),
        ("LANDING_BUCKET", "bench-landing".to_owned()),
        (
            "ALERT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:000000000000:bench".to_owned(),
        ),
    ]
}

/// Waits for the acceptor's result, giving up if the child exits first or takes too long.
fn wait_for_request(
    received: &mpsc::Receiver<anyhow::Result<FirstRequest>>,
    child: &mut std::process::Child,
    name: &str,
    spawned_at: Instant,
) -> anyhow::Result<FirstRequest> {
    loop {
        match received.recv_timeout(Duration::from_millis(20)) {
            Ok(request) => return request,
            Err(RecvTimeoutError::Disconnected) => bail!("the Runtime API listener stopped"),
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    // A request sent just before exiting may still be on its way.
                    if let Ok(request) = received.recv_timeout(Duration::from_millis(200)) {
                        return request;
                    }
                    bail!("{name} exited with {status} before calling the Runtime API");
                }
                if spawned_at.elapsed() >= INIT_TIMEOUT {
                    bail!("{name} made no request within {INIT_TIMEOUT:?}");
                }
            }
        }
    }
}

/// Accepts one connection and reads its request head (and a bounded part of its body).
fn first_request(listener: &TcpListener) -> anyhow::Result<FirstRequest> {
    let (mut stream, _) = listener
        .accept()
        .context("the Runtime API could not accept a connection")?;
    stream
        .set_read_timeout(Some(INIT_TIMEOUT))
        .context("cannot set a read timeout")?;
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head_end, at) = loop {
        if let Some(end) = data.windows(4).position(|window| window == b"\r\n\r\n") {
            break (end, Instant::now());
        }
        if data.len() > MAX_HEAD_BYTES {
            bail!("request head over {MAX_HEAD_BYTES} bytes");
        }
        let read = stream
            .read(&mut buffer)
            .context("cannot read the first request")?;
        if read == 0 {
            bail!("the connection closed before a whole request head arrived");
        }
        data.extend_from_slice(buffer.get(..read).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(data.get(..head_end).unwrap_or_default()).into_owned();
    let line = head.lines().next().unwrap_or_default().to_owned();
    let length = head
        .lines()
        .filter_map(|header| header.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY_BYTES);
    let mut body = data.get(head_end + 4..).unwrap_or_default().to_vec();
    while body.len() < length {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => body.extend_from_slice(buffer.get(..read).unwrap_or_default()),
        }
    }
    body.truncate(length);
    Ok(FirstRequest {
        line,
        at,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// CPU time used so far by this process (user and system), on Linux.
fn cpu_time() -> Option<Duration> {
    // /proc/self/schedstat counts nanoseconds, where /proc/self/stat counts 10 ms ticks, too
    // coarse for the smallest files. It covers the main thread only, which is all bench-one
    // runs on. Yielding first makes the kernel account the slice running now, which it
    // otherwise adds only at the next tick or switch.
    std::thread::yield_now();
    let schedstat = std::fs::read_to_string("/proc/self/schedstat").ok();
    if let Some(nanos) = schedstat
        .as_deref()
        .and_then(|text| text.split_whitespace().next())
        .and_then(|field| field.parse::<u64>().ok())
    {
        return Some(Duration::from_nanos(nanos));
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields follow the command name, which is in parentheses and may hold spaces; utime and
    // stime are the 12th and 13th after it, in USER_HZ ticks (100 a second).
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// Peak resident memory of this process (`VmHWM`), on Linux.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Cores, CPU model, memory, OS and architecture.
fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib as f64 * 1024.0 / (MIB * 1024.0));
    Machine {
        cores: std::thread::available_parallelism()
            .ok()
            .map(std::num::NonZeroUsize::get),
        cpu,
        memory_gib,
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
    }
}

/// The lines above the table: the build, the machine and the method.
fn print_heading(out: &mut impl Write, report: &BenchReport) -> io::Result<()> {
    let machine = &report.machine;
    let mut parts = Vec::new();
    if let Some(cpu) = &machine.cpu {
        parts.push(cpu.clone());
    }
    if let Some(cores) = machine.cores {
        parts.push(format!("{cores} cores"));
    }
    if let Some(memory) = machine.memory_gib {
        parts.push(format!("{memory:.1} GiB"));
    }
    parts.push(format!("{} {}", machine.os, machine.arch));
    writeln!(
        out,
        "catalog-sync bench: {} build, batch size {}, generated files (seed {})",
        report.build,
        thousands(report.batch_size as u64),
        report.seed
    )?;
    if report.build == "debug" {
        writeln!(
            out,
            "note: a debug build is several times slower; run `cargo run --release -p catalog-sync -- bench`"
        )?;
    }
    writeln!(out, "machine: {}", parts.join(", "))?;
    writeln!(
        out,
        "each file is read once (from the page cache) by a fresh process on one core: validation, \
         requests and batches; batches are counted and dropped"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>10} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>13} {:>8}",
        "rows",
        "MB",
        "wall s",
        "CPU s",
        "rows/s",
        "MB/s wall",
        "MB/s CPU",
        "peak RSS MiB",
        "batches"
    )
}

/// One line of the table.
fn print_size(out: &mut impl Write, size: &SizeReport) -> io::Result<()> {
    let or_na = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
    };
    writeln!(
        out,
        "{:>10} {:>8.1} {:>8.3} {:>8} {:>10} {:>9.1} {:>9} {:>13} {:>8}",
        thousands(size.rows),
        size.mb,
        size.wall_s,
        or_na(size.cpu_s, 3),
        thousands(size.rows_per_s.round() as u64),
        size.mb_per_s,
        or_na(size.mb_per_cpu_s, 1),
        or_na(size.peak_rss_mib, 1),
        thousands(size.batches)
    )
}

/// One line per Lambda binary.
fn print_lambda(out: &mut impl Write, lambda: &LambdaReport) -> io::Result<()> {
    if lambda.missing {
        return writeln!(out, "  {:<18} not found: {}", lambda.name, lambda.path);
    }
    let size = lambda.size_bytes.map_or_else(String::new, |bytes| {
        format!("{:.1} MiB", bytes as f64 / MIB)
    });
    let init = match (lambda.best_ms, lambda.median_ms) {
        (Some(best), Some(median)) => format!(
            "init best {best:.1} ms, median {median:.1} ms ({} runs)",
            lambda.init_ms.len()
        ),
        _ => "init not measured".to_owned(),
    };
    writeln!(out, "  {:<18} {size:>9}  {init}", lambda.name)?;
    if let Some(error) = &lambda.error {
        writeln!(out, "  {:<18} failed: {error}", "")?;
    }
    Ok(())
}

/// `1234567` as `1,234,567`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[1.0, 2.0, 10.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), Some(3.0));
    }
}
