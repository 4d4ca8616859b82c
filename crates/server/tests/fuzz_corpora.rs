//! Replays every fuzz corpus and regression input (fuzz/corpus/<target>/,
//! fuzz/regressions/<target>/) through the fuzz targets' own entry points, on stable and
//! without libFuzzer: so the corpora guard against regressions in every test run. See
//! docs/fuzzing.md.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/targets/server.rs"]
mod server;
#[path = "../../../fuzz/src/targets/token.rs"]
mod token;

type Entry = fn(&[u8]);

const TARGETS: &[(&str, Entry)] = &[
    ("token", token::token),
    ("credential_headers", server::credential_headers),
    ("forward_auth_path", server::forward_auth_path),
    ("forward_auth_routes", server::forward_auth_routes),
    ("json_requests", server::json_requests),
    ("config", server::config),
    ("jwt", server::jwt),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_replays_without_a_failure() {
    let mut failures = Vec::new();
    for (name, entry) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is empty or missing: the corpora live in the repo"
        );
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            if std::panic::catch_unwind(|| entry(&data)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that fail: {failures:#?}");
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file()
        );
    }
}
