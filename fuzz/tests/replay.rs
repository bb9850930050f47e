//! Every committed corpus input through the same target functions the fuzzers run, on
//! stable: a crash the fuzzers found stays fixed once its input is in `corpus/<target>/`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use iothub_twins_fuzz::{replay::replay_dir, TARGETS};

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_corpus_input_keeps_its_invariants() {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let ran = replay_dir(*target, &dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        assert!(ran > 0, "{} holds no inputs", dir.display());
        eprintln!("{name}: {ran} corpus inputs");
    }
}

/// Inputs that once broke an invariant (of the library or of the target itself), kept
/// apart from the corpus so that `cargo fuzz cmin` can neither drop nor rename them.
#[test]
fn every_regression_input_keeps_its_invariants() {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("regressions").join(name);
        if dir.exists() {
            let ran = replay_dir(*target, &dir)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
            eprintln!("{name}: {ran} regression inputs");
        }
    }
}

#[test]
fn every_fuzz_target_binary_is_replayed() {
    let binaries: BTreeSet<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz_targets/ lists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    let replayed: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(binaries, replayed, "fuzz_targets/*.rs and TARGETS differ");
}
