//! Every fixture is used by some test: its constant (e.g. `SLOW_INIT`) appears in a file under
//! `crates/*/tests/` other than this crate's own.

use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn every_fixture_is_used_by_a_test() {
    let crates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut sources = Vec::new();
    for krate in fs::read_dir(crates_dir).unwrap() {
        let krate = krate.unwrap().path();
        if krate.file_name().unwrap() != "reprise-test-programs" {
            collect_files(&krate.join("tests"), &mut sources);
        }
    }
    let texts: Vec<String> = sources
        .iter()
        .map(|path| fs::read_to_string(path).unwrap_or_default())
        .collect();

    let unused: Vec<String> = reprise_test_programs::ALL
        .iter()
        .map(|(name, _)| name.replace('-', "_").to_uppercase())
        .filter(|constant| !texts.iter().any(|text| mentions(text, constant)))
        .collect();
    assert!(
        unused.is_empty(),
        "fixtures no test under crates/*/tests uses (add a test or delete the fixture): {unused:?}"
    );
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// Whether `text` contains `ident` as a whole identifier (`HELLO` is not in `HELLO_P3`).
fn mentions(text: &str, ident: &str) -> bool {
    let is_ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(ident).any(|(start, _)| {
        !text[..start].ends_with(is_ident_char)
            && !text[start + ident.len()..].starts_with(is_ident_char)
    })
}
