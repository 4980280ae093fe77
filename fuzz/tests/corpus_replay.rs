//! Replays every saved input of `fuzz/corpus/<target>/` through its target, without libFuzzer:
//! seeds, what fuzzing found interesting, and the inputs of crashes that were fixed.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use catalog_sync_fuzz::{TARGETS, Target, corpus_dir, input_files, replay};

fn replay_corpus(name: &str) {
    let (_, target): &(&str, Target) = TARGETS
        .iter()
        .find(|(known, _)| *known == name)
        .expect("a listed target");
    let dir = corpus_dir(name);
    let files = input_files(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(
        !files.is_empty(),
        "{} holds no input; the target would be untested",
        dir.display()
    );
    match replay(*target, &files) {
        Ok(count) => println!("{name}: {count} inputs replayed"),
        Err(error) => panic!("{name}: {error}"),
    }
}

#[test]
fn csv_pipeline_corpus() {
    replay_corpus("csv_pipeline");
}

#[test]
fn lambda_events_corpus() {
    replay_corpus("lambda_events");
}

#[test]
fn graph_response_corpus() {
    replay_corpus("graph_response");
}

/// A new `fuzz_targets/*.rs` must be listed in `TARGETS` (and so replayed) and get a test above.
#[test]
fn every_fuzz_target_is_listed_and_replayed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz_targets");
    let binaries: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(binaries, listed);
    let this =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus_replay.rs"))
            .unwrap();
    for name in &listed {
        assert!(
            this.contains(&format!("replay_corpus(\"{name}\")")),
            "{name} has no replay test"
        );
    }
}
