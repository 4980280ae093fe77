//! `cargo fuzz run lambda_events`: see [`catalog_sync_fuzz::lambda_events`]. Built without `--cfg fuzzing`, the
//! binary replays the files it is given (default: `fuzz/corpus/lambda_events/`).

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| catalog_sync_fuzz::lambda_events::run(data));

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    catalog_sync_fuzz::replay_main("lambda_events", catalog_sync_fuzz::lambda_events::run)
}
