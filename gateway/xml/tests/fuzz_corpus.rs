//! Replays the committed cargo-fuzz corpora (`fuzz/corpus/{parse,c14n,smev}/`) through
//! the very functions the fuzz targets call (`mezhved_xml::fuzzing`), so every input the
//! fuzzer once found interesting stays a regression test on stable Rust, without
//! cargo-fuzz or a sanitizer.
//!
//! Inputs under `fuzz/crashes/` are deliberately not replayed here: they are known
//! failures awaiting a fix, and become ordinary regression tests once fixed.

use mezhved_xml::fuzzing::{c14n_target, parse_target, smev_target};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Fewer files than this in a corpus means it was emptied or lost, not minimised.
const MIN_FILES_PER_TARGET: usize = 200;

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus dir {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `run` on every file of `target`'s corpus, then fails listing every input that
/// panicked (not just the first), and fails if the corpus is too small.
fn replay(target: &str, run: impl Fn(&[u8])) {
    let files = corpus_files(target);
    let mut failures = Vec::new();
    for path in &files {
        let data =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failures.push(format!(
                "{}: {:?}",
                path.display(),
                String::from_utf8_lossy(&data)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} corpus inputs panicked:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(
        files.len() >= MIN_FILES_PER_TARGET,
        "{target} corpus has {} files, expected at least {MIN_FILES_PER_TARGET}",
        files.len()
    );
}

#[test]
fn parse_corpus_never_panics() {
    replay("parse", |data| {
        let _ = parse_target(data);
    });
}

#[test]
fn c14n_corpus_holds_its_properties() {
    replay("c14n", c14n_target);
}

#[test]
fn smev_corpus_holds_its_properties() {
    replay("smev", smev_target);
}
