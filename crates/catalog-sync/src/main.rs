//! The `catalog-sync` command-line program: check, transform and send a retailer's product CSV
//! exports to a Meta catalog, and run the product's use cases off AWS (a local folder) or
//! operate them on AWS (replay, poll, doctor).

mod bench;
mod bench_changes;
mod check;
mod demo;
mod doctor;
mod graph_cmds;
mod output;
mod replay;
mod run;
mod setup;
mod state_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use catalog::{BatchLimits, ColumnMapping, ProductTypeMapping};
use clap::{Args, Parser, Subcommand};

/// Exit status when every row of every file is valid.
const EXIT_OK: u8 = 0;
/// Exit status when any row or file was rejected.
const EXIT_REJECTED: u8 = 1;
/// Exit status when a file could not be read or the arguments are wrong.
const EXIT_UNUSABLE: u8 = 2;

/// Keep a Meta product catalog in sync with CSV exports of your product database.
#[derive(Debug, Parser)]
#[command(name = "catalog-sync", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the whole flow on the built-in sample exports, against the built-in Graph API
    /// emulator, in a new folder; needs no AWS account and no Meta token.
    Demo(DemoArgs),
    /// Process every CSV file in DIR/landing/data/, then poll for the verdicts; --watch keeps
    /// going, taking files as they arrive.
    ///
    /// Sends to the catalog CATALOG_ID and META_ACCESS_TOKEN name, or with --emulator to the
    /// built-in emulator. Exit status: 0 when every file was archived, 1 when a file was rejected
    /// or could not be sent, 2 on a usage or setup error.
    Run(RunArgs),
    /// Check the configuration, the token and catalog, and the buckets and topic (or, with
    /// --root, the local folder); one line per check.
    ///
    /// Exit status: 0 when every check passed, 1 otherwise.
    Doctor(DoctorArgs),
    /// Re-send archived (archive/...) or stuck (data/..., failed/...) files through the same
    /// path as a new upload, on S3 or (with --root) in a local folder.
    ///
    /// Exit status: 0 when every file was archived again, 1 otherwise.
    Replay(ReplayArgs),
    /// Ask Meta once for the verdict of every pending batch, as the scheduled function does, on
    /// S3 or (with --root) in a local folder.
    Poll(PollArgs),
    /// Show what change detection remembers of the catalog: how many products are remembered,
    /// waiting for a verdict, refused or due for a resend; with IDs, each one's last send,
    /// batch, verdict and fingerprint.
    State(StateArgs),
    /// Check CSV files against Meta's catalog rules and list every rejected row.
    ///
    /// Exit status: 0 when every row of every file is valid, 1 when a row or a file is
    /// rejected, 2 when a file cannot be read or the arguments are wrong.
    Validate(ValidateArgs),
    /// Validate, then write each items_batch request body as DIR/batch-0001.json, ...: exactly
    /// what would be sent, without sending it.
    ///
    /// Several files are merged into one stream of batches. Exit status as for validate.
    Transform(TransformArgs),
    /// Validate, transform and send to a catalog, printing each batch's handle.
    ///
    /// The token comes from META_ACCESS_TOKEN; without it nothing is sent.
    Send(SendArgs),
    /// Print the verdict of each batch handle.
    Status(StatusArgs),
    /// Serve the built-in Graph API emulator on 127.0.0.1 until Ctrl-C.
    Emulator(graph_emulator::cli::EmulatorArgs),
    /// Write a realistic synthetic product export, to try catalog-sync or measure it.
    Generate(GenerateArgs),
    /// Measure throughput and peak memory on generated files of several sizes, and the init
    /// time and size of the compiled Lambda binaries; figures are printed, never checked.
    ///
    /// Each size is read in a fresh process, so its peak memory is its own. Build in release
    /// first: cargo build --release -p catalog-sync -p sync-on-arrival -p poll-batch-status.
    Bench(BenchArgs),
    /// One measurement of `bench`, in its own process: prints one JSON line.
    #[command(hide = true)]
    BenchOne(BenchOneArgs),
    /// One sync of `bench --changes`, in its own process: prints one JSON line.
    #[command(hide = true)]
    BenchSyncOne(BenchSyncOneArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Folder to run in; must be empty or absent. Default: a new catalog-sync-demo-<time>
    /// folder in the current directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The folder laid out like the buckets: CSV files in DIR/landing/data/, outputs in
    /// DIR/landing/ and DIR/synced/.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Keep running: take files as they arrive and poll on an interval, until Ctrl-C (which
    /// finishes the file in progress first).
    #[arg(long)]
    watch: bool,
    /// Send to the built-in Graph API emulator instead of Meta (CATALOG_ID and
    /// META_ACCESS_TOKEN are then ignored).
    #[arg(long)]
    emulator: bool,
    #[command(flatten)]
    columns: ColumnMappingArgs,
    /// Time between polls for batch verdicts [default: 30s, or 1s with --emulator].
    #[arg(long, value_name = "DURATION", value_parser = setup::parse_interval)]
    poll_interval: Option<std::time::Duration>,
    /// How long a file must stay unchanged (size, time, identity) before it is taken, so a
    /// file still being written is not sent half-way.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = setup::parse_duration)]
    settle: std::time::Duration,
    /// Without --watch: keep polling this long for the verdicts of what was sent [default: 0,
    /// or up to 1m with --emulator, whose batches end with the run].
    #[arg(long, value_name = "DURATION", value_parser = setup::parse_duration)]
    wait: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// Check a local folder instead of the AWS buckets and topic.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Also every archived file modified since this date (2026-11-01, UTC) or time (RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = replay::parse_since)]
    since: Option<time::OffsetDateTime>,
    /// A local folder instead of the S3 buckets.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// With --root: send to the built-in Graph API emulator instead of Meta.
    #[arg(long, requires = "root")]
    emulator: bool,
    /// Release the deletes a full snapshot's guard held back (deletes_held alert): the named
    /// snapshots delete the products they lack, however many.
    #[arg(long)]
    allow_deletes: bool,
    #[command(flatten)]
    columns: ColumnMappingArgs,
    /// Landing-bucket keys (archive/x.csv, failed/x.csv, data/x.csv) or s3://bucket/key URLs;
    /// with --root also paths of files under DIR/landing/.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
}

#[derive(Debug, Args)]
struct StateArgs {
    /// A local folder instead of the S3 buckets.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// With --root: the built-in emulator's catalog (as `run --emulator` and `demo` use).
    #[arg(long, requires = "root")]
    emulator: bool,
    /// Product ids to look up.
    #[arg(value_name = "ID")]
    ids: Vec<String>,
}

#[derive(Debug, Args)]
struct PollArgs {
    /// A local folder instead of the S3 buckets.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SendArgs {
    #[command(flatten)]
    graph: graph_cmds::GraphArgs,
    /// Requests per items_batch call, 1 to 5000.
    #[arg(long, env = "BATCH_SIZE", default_value_t = catalog::DEFAULT_BATCH_SIZE, value_parser = parse_batch_size)]
    batch_size: usize,
    #[command(flatten)]
    mapping: MappingArgs,
    /// CSV files to send, in order; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    graph: graph_cmds::GraphArgs,
    /// Print Meta's answers as one JSON array.
    #[arg(long)]
    json: bool,
    /// Batch handles, as printed by send or stored under pending/.
    #[arg(required = true, value_name = "HANDLE")]
    handles: Vec<String>,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Number of products.
    #[arg(long, default_value_t = 1000)]
    rows: u64,
    /// Seed; the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write; `-` for standard output.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Sizes to measure, in rows, comma-separated.
    #[arg(
        long,
        value_name = "ROWS",
        value_delimiter = ',',
        default_value = "5000,100000,1000000",
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    rows: Vec<u64>,
    /// Sizes of the wide export (every field of the catalog filled, about 40 columns), in
    /// rows, comma-separated; `0` skips it.
    #[arg(
        long,
        value_name = "ROWS",
        value_delimiter = ',',
        default_value = "100000",
        value_parser = clap::value_parser!(u64),
    )]
    wide_rows: Vec<u64>,
    /// Requests per items_batch call, 1 to 5000.
    #[arg(long, default_value_t = catalog::DEFAULT_BATCH_SIZE, value_parser = parse_batch_size)]
    batch_size: usize,
    /// Folder for the generated files, which are kept [default: a temporary folder, deleted
    /// afterwards].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Folder holding the sync-on-arrival and poll-batch-status binaries [default: the folder
    /// of this program, target/release under `cargo run --release`].
    #[arg(long, value_name = "DIR")]
    lambda_dir: Option<PathBuf>,
    /// Init-time measurements per Lambda binary.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Instead, measure change detection: a full snapshot of ROWS products synced four times
    /// (first sync, the same again, 1% changed, 1% removed), each in its own process.
    #[arg(long, value_name = "ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    changes: Option<u64>,
}

#[derive(Debug, Args)]
struct BenchSyncOneArgs {
    /// The scenario's name, for the figures.
    #[arg(long)]
    scenario: String,
    /// The local folder the syncs share.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// The snapshot to sync.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct BenchOneArgs {
    /// Requests per items_batch call, 1 to 5000.
    #[arg(long, default_value_t = catalog::DEFAULT_BATCH_SIZE, value_parser = parse_batch_size)]
    batch_size: usize,
    /// The product export to read.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    mapping: MappingArgs,
    /// CSV files to check; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct TransformArgs {
    /// Requests per items_batch call, 1 to 5000.
    #[arg(long, env = "BATCH_SIZE", default_value_t = catalog::DEFAULT_BATCH_SIZE, value_parser = parse_batch_size)]
    batch_size: usize,
    /// Folder for the batch files; created if missing, and must not hold earlier batch files.
    #[arg(long, value_name = "DIR", default_value = "batches")]
    out: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    mapping: MappingArgs,
    /// CSV files to transform, in order; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct MappingArgs {
    /// Which Meta field receives the CSV's product_type column.
    #[arg(
        long,
        env = "PRODUCT_TYPE_MAPPING",
        default_value = "product_type",
        value_parser = parse_mapping,
    )]
    product_type_as: ProductTypeMapping,
    #[command(flatten)]
    columns: ColumnMappingArgs,
}

#[derive(Debug, Args)]
struct ColumnMappingArgs {
    /// Your columns as Meta's fields, and fixed values: entries `field=column` (read the column
    /// as the field) and `field:=value` (the value in every row), separated by `;`, e.g.
    /// "sale_price=SalePrice; condition:=new".
    #[arg(
        long,
        env = "COLUMN_MAPPING",
        value_name = "SPEC",
        value_parser = parse_column_mapping,
    )]
    column_mapping: Option<ColumnMapping>,
}

impl ColumnMappingArgs {
    /// The mapping given, or none.
    fn mapping(self) -> ColumnMapping {
        self.column_mapping.unwrap_or_default()
    }
}

fn parse_mapping(value: &str) -> Result<ProductTypeMapping, String> {
    value
        .parse()
        .map_err(|error: catalog::UnknownMapping| error.to_string())
}

fn parse_column_mapping(value: &str) -> Result<ColumnMapping, String> {
    value
        .parse()
        .map_err(|error: catalog::MappingError| error.to_string())
}

fn parse_batch_size(value: &str) -> Result<usize, String> {
    BatchLimits::parse(value)
        .map(|limits| limits.max_items())
        .map_err(|error| error.to_string())
}

fn emulator(args: graph_emulator::cli::EmulatorArgs) -> anyhow::Result<u8> {
    let code = setup::runtime()?.block_on(graph_emulator::cli::serve(args));
    Ok(if code == ExitCode::SUCCESS {
        EXIT_OK
    } else {
        EXIT_UNUSABLE
    })
}

fn generate(args: &GenerateArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    let bytes = if args.file.as_os_str() == "-" {
        catalog::synthetic::write_products(std::io::stdout().lock(), args.rows, args.seed)?
    } else {
        let file = std::fs::File::create(&args.file)
            .with_context(|| format!("cannot create {}", args.file.display()))?;
        let out = std::io::BufWriter::with_capacity(1024 * 1024, file);
        let bytes = catalog::synthetic::write_products(out, args.rows, args.seed)
            .with_context(|| format!("cannot write {}", args.file.display()))?;
        eprintln!(
            "wrote {} products ({bytes} bytes) to {}",
            args.rows,
            args.file.display()
        );
        bytes
    };
    let _ = bytes;
    Ok(EXIT_OK)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => check::validate(
            &args.files,
            args.mapping.product_type_as,
            &args.mapping.columns.mapping(),
            args.json,
        ),
        Command::Transform(args) => check::transform(
            &args.files,
            args.batch_size,
            args.mapping.product_type_as,
            &args.mapping.columns.mapping(),
            &args.out,
            args.json,
        ),
        Command::Send(args) => graph_cmds::send(
            &args.files,
            &args.graph,
            args.batch_size,
            args.mapping.product_type_as,
            args.mapping.columns.mapping(),
        ),
        Command::Status(args) => graph_cmds::status(&args.handles, &args.graph, args.json),
        Command::Emulator(args) => emulator(args),
        Command::Generate(args) => generate(&args),
        Command::Bench(BenchArgs {
            changes: Some(rows),
            dir,
            json,
            ..
        }) => bench_changes::bench_changes(rows, dir.as_deref(), json),
        Command::BenchSyncOne(args) => {
            bench_changes::bench_sync_one(&args.scenario, &args.root, &args.file)
        }
        Command::Bench(args) => bench::bench(bench::BenchOptions {
            rows: args.rows,
            wide_rows: args
                .wide_rows
                .into_iter()
                .filter(|&rows| rows > 0)
                .collect(),
            batch_size: args.batch_size,
            dir: args.dir,
            lambda_dir: args.lambda_dir,
            runs: args.runs,
            json: args.json,
        }),
        Command::BenchOne(args) => bench::bench_one(&args.file, args.batch_size),
        Command::Demo(args) => demo::demo(args.dir),
        Command::Run(args) => run::run(run::RunOptions {
            root: args.root,
            watch: args.watch,
            emulator: args.emulator,
            column_mapping: args.columns.mapping(),
            poll_interval: args.poll_interval,
            settle: args.settle,
            wait: args.wait,
        }),
        Command::Doctor(args) => doctor::doctor(args.root),
        Command::Replay(args) => replay::replay(replay::ReplayOptions {
            keys: args.keys,
            since: args.since,
            root: args.root,
            emulator: args.emulator,
            allow_deletes: args.allow_deletes,
            column_mapping: args.columns.mapping(),
        }),
        Command::Poll(args) => replay::poll(args.root),
        Command::State(args) => state_cmd::state(args.root, args.emulator, args.ids),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("catalog-sync: {error:#}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}
