//! The fuzz targets of catalog-sync, as plain functions.
//!
//! Each target takes arbitrary bytes, drives one piece of the product that reads untrusted input,
//! and panics when an invariant breaks (a panic inside the product counts too). The same
//! function runs three ways:
//!
//! - `cargo fuzz run <target>` (`make fuzz`): `fuzz_targets/<target>.rs`, built with `--cfg
//!   fuzzing`, hands it to libFuzzer;
//! - `cargo test -p catalog-sync-fuzz` (part of `make test`): `tests/corpus_replay.rs` replays
//!   every saved input of `corpus/<target>/`, with no libFuzzer and no nightly features;
//! - `cargo run -p catalog-sync-fuzz --bin <target> -- FILE...`: the same binary built without
//!   `--cfg fuzzing` replays the files named (or the whole corpus), e.g. to reproduce a crash
//!   from `fuzz/artifacts/` on the stable toolchain.
//!
//! | target | input | drives |
//! |---|---|---|
//! | [`csv_pipeline`] | a CSV export | `catalog::ProductReader` → `catalog::Batcher`, and resuming part-way |
//! | [`lambda_events`] | a Lambda event (JSON) | `S3Event` decoding, `sync::keys` on its keys, the poller's scheduled input |
//! | [`graph_response`] | an HTTP answer (status line, headers, body) | `graph::response`: typed results or `GraphError` |

use std::fs;
use std::io;
use std::panic;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub mod csv_pipeline;
pub mod graph_response;
pub mod lambda_events;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (of the `fuzz_targets/<name>.rs` binary and the `corpus/<name>/`
/// folder) and its body.
pub const TARGETS: [(&str, Target); 3] = [
    ("csv_pipeline", csv_pipeline::run),
    ("lambda_events", lambda_events::run),
    ("graph_response", graph_response::run),
];

/// `fuzz/corpus/<name>/`: the saved inputs of a target.
pub fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

/// The files of `path` (itself when it is a file; a folder's files, sorted, hidden ones skipped).
pub fn input_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Runs `target` on every file; the error names each file whose run panicked.
pub fn replay(target: Target, files: &[PathBuf]) -> Result<usize, String> {
    let mut failed = Vec::new();
    for file in files {
        let data = fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if panic::catch_unwind(|| target(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    if failed.is_empty() {
        Ok(files.len())
    } else {
        Err(format!(
            "{} of {} inputs failed (see the panics above): {}",
            failed.len(),
            files.len(),
            failed.join(", ")
        ))
    }
}

/// `main` of a target binary built without libFuzzer: replays the files and folders named on
/// the command line, or the target's whole corpus.
pub fn replay_main(name: &str, target: Target) -> ExitCode {
    let mut paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        paths.push(corpus_dir(name));
    }
    let mut files = Vec::new();
    for path in &paths {
        match input_files(path) {
            Ok(found) => files.extend(found),
            Err(e) => {
                eprintln!("{name}: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    match replay(target, &files) {
        Ok(count) => {
            println!("{name}: {count} inputs replayed, no failure");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}
