//! `graph-emulator`: serve the Graph API emulator on 127.0.0.1 until Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use graph_emulator::cli::{EmulatorArgs, serve};

/// A local emulator of Meta's Graph API catalog batch endpoints.
#[derive(Debug, Parser)]
#[command(name = "graph-emulator", version, about)]
struct Cli {
    #[command(flatten)]
    args: EmulatorArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    serve(Cli::parse().args).await
}
