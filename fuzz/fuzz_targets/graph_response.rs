//! `cargo fuzz run graph_response`: see [`catalog_sync_fuzz::graph_response`]. Built without `--cfg fuzzing`, the
//! binary replays the files it is given (default: `fuzz/corpus/graph_response/`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| catalog_sync_fuzz::graph_response::run(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    catalog_sync_fuzz::replay_main("graph_response", catalog_sync_fuzz::graph_response::run)
}
