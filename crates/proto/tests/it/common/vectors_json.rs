//! Reading the committed test vector files (`spec/vectors/*.json`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository's top directory (where `spec/` is), two levels above
/// this crate's manifest.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed vectors file at `path`, relative to the repository's top.
pub(crate) fn load(path: &str) -> Value {
    let file = repo_root().join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path} exists: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is JSON: {e}"))
}

/// The bytes of a hex string value.
pub(crate) fn hex(value: &Value) -> Vec<u8> {
    let text = value.as_str().expect("a hex string");
    assert!(text.len().is_multiple_of(2), "odd-length hex {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}
