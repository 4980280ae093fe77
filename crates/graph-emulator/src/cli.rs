//! The emulator's command line, shared by `graph-emulator` and `catalog-sync emulator`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::{DEFAULT_CATALOG_ID, EmulatorConfig, GraphEmulator};

/// Options of the emulator server.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on: one address of this machine (a container network's gateway, for
    /// one), never a wildcard such as 0.0.0.0.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), value_parser = specific_address)]
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// An accepted access token (repeatable); default: the emulator's built-in token, `emulator-token`.
    #[arg(long = "token", value_name = "TOKEN")]
    pub tokens: Vec<String>,
    /// A catalog id that exists (repeatable); default: 100000000000001.
    #[arg(long = "catalog", value_name = "ID")]
    pub catalogs: Vec<String>,
    /// Status checks that report "in progress" before a batch finishes.
    #[arg(long, default_value_t = 1)]
    pub checks_until_finished: u32,
    /// Delay added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

/// `--host`: an address, but not a wildcard one, which would expose the emulator on every interface.
fn specific_address(text: &str) -> Result<IpAddr, String> {
    let address: IpAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address (e.g. 127.0.0.1)"))?;
    if address.is_unspecified() {
        return Err(format!(
            "{address} listens on every interface; give one address of this machine, such as 127.0.0.1"
        ));
    }
    Ok(address)
}

/// Serves the emulator on `--host` (127.0.0.1 by default) until Ctrl-C; prints its URL first on
/// standard output.
pub async fn serve(args: EmulatorArgs) -> ExitCode {
    let mut config = EmulatorConfig {
        checks_until_finished: args.checks_until_finished,
        latency: Duration::from_millis(args.latency_ms),
        ..EmulatorConfig::default()
    };
    if !args.tokens.is_empty() {
        config.tokens = args.tokens;
    }
    if !args.catalogs.is_empty() {
        config.catalogs = args.catalogs;
    }
    let catalogs = config.catalogs.join(", ");
    let token_count = config.tokens.len();
    let addr = SocketAddr::new(args.host, args.port);
    let emulator = match GraphEmulator::start_on(addr, config).await {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!(
                "graph-emulator: cannot listen on {addr}: {e}; choose another --port or 0 for a free one"
            );
            return ExitCode::FAILURE;
        }
    };
    println!("{}", emulator.url());
    eprintln!(
        "graph-emulator listening on {} (catalogs: {catalogs}; {token_count} accepted token(s); default catalog {DEFAULT_CATALOG_ID}); press Ctrl-C to stop",
        emulator.url()
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("graph-emulator: cannot wait for Ctrl-C ({e}); stopping");
    }
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_one_address_never_a_wildcard() {
        assert_eq!(
            specific_address("172.18.0.1"),
            Ok(IpAddr::V4(Ipv4Addr::new(172, 18, 0, 1)))
        );
        assert_eq!(specific_address("::1"), Ok("::1".parse().unwrap()));
        for wildcard in ["0.0.0.0", "::"] {
            let error = specific_address(wildcard).unwrap_err();
            assert!(error.contains("every interface"), "{error}");
        }
        assert!(specific_address("localhost").is_err());
    }
}
