//! Writes the replication message test vectors, `spec/vectors/messages.json`
//! (spec/PROTOCOL.md §2.1).
//!
//! Run from the crate root: `cargo run --example gen_message_vectors`. The
//! output is deterministic; `crates/proto/tests/it/message_vectors.rs` fails when the
//! committed file differs from what this writes.

#[path = "../crates/proto/tests/it/common/message_vectors_gen.rs"]
mod message_vectors_gen;

use std::path::Path;

fn main() -> std::io::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(message_vectors_gen::PATH);
    std::fs::write(&path, message_vectors_gen::file())?;
    println!("wrote {}", path.display());
    Ok(())
}
