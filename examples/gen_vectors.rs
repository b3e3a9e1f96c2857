//! Writes the entry-format test vectors, `spec/vectors/` (spec/PROTOCOL.md
//! part 1).
//!
//! Run from the crate root: `cargo run --example gen_vectors`. The output is
//! deterministic; `crates/proto/tests/it/vectors.rs` fails when the committed files differ
//! from what this writes.

#[path = "../crates/proto/tests/it/common/vectors_gen.rs"]
mod vectors_gen;

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, contents) in vectors_gen::files() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
