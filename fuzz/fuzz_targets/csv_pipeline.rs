//! `cargo fuzz run csv_pipeline`: see [`catalog_sync_fuzz::csv_pipeline`]. Built without `--cfg fuzzing`, the
//! binary replays the files it is given (default: `fuzz/corpus/csv_pipeline/`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| catalog_sync_fuzz::csv_pipeline::run(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    catalog_sync_fuzz::replay_main("csv_pipeline", catalog_sync_fuzz::csv_pipeline::run)
}
