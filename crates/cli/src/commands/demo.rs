//! `feedmesh demo`: two nodes, a few appends, export, import, and a tampered
//! bundle refused — the same steps as the README's commands, in one go.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use feedmesh::bundle::{self, ImportOptions};
use feedmesh::clock::system_time_ms;
use feedmesh::integrity::verify_store;
use feedmesh::node_dir::NodeDir;
use feedmesh::store::Store;
use feedmesh::writer::FeedWriter;

/// Runs the demo in `dir` (a fresh temporary directory when `None`).
pub(crate) fn run(dir: Option<&Path>, out: &mut impl Write) -> anyhow::Result<()> {
    let root = match dir {
        Some(dir) => dir.to_path_buf(),
        None => fresh_temp_dir()?,
    };
    let alice = NodeDir::create(&root.join("alice"))?;
    let bob = NodeDir::create(&root.join("bob"))?;
    writeln!(out, "created nodes in {}", root.display())?;
    writeln!(out, "  alice = {}", alice.feed_id())?;
    writeln!(out, "  bob   = {}", bob.feed_id())?;

    let alice_store = alice.open_store()?;
    let mut writer = FeedWriter::open(&alice_store, alice.keys().clone())?;
    let payloads: Vec<String> = (1..=5)
        .map(|i| format!("{{\"session\":\"s{i}\",\"user\":\"u{i}\"}}"))
        .collect();
    let payload_refs: Vec<&[u8]> = payloads.iter().map(String::as_bytes).collect();
    let entries = writer.append(&alice_store, &payload_refs, system_time_ms())?;
    for entry in &entries {
        writeln!(out, "alice appended seq {} hash {}", entry.seq(), entry.hash())?;
    }
    let report = verify_store(&alice_store)?;
    writeln!(out, "alice verify: {} entries ok", report.entries)?;

    let mut bundle_bytes = Vec::new();
    let records = bundle::export(&alice_store, &alice.feed_id(), 1, &mut bundle_bytes)?;
    writeln!(out, "exported {records} records ({} bytes)", bundle_bytes.len())?;

    let bob_store = bob.open_store()?;
    let outcome = bundle::import(&bob_store, bundle_bytes.as_slice(), ImportOptions::default())?;
    writeln!(out, "bob imported {} new entries", outcome.report.appended)?;
    let again = bundle::import(&bob_store, bundle_bytes.as_slice(), ImportOptions::default())?;
    writeln!(
        out,
        "bob imported the same bundle again: {} new, {} already held",
        again.report.appended, again.report.already_held
    )?;
    writeln!(
        out,
        "bob now holds alice's feed up to seq {:?}",
        bob_store.latest(&alice.feed_id())?.unwrap_or(0)
    )?;

    // Flip one byte inside the third record's payload.
    let mut tampered = bundle_bytes.clone();
    let at = tampered.len() * 3 / 5;
    tampered[at] ^= 0x01;
    let carol = NodeDir::create(&root.join("carol"))?;
    let carol_store = carol.open_store()?;
    let outcome = bundle::import(&carol_store, tampered.as_slice(), ImportOptions::default())?;
    let error = outcome.error.context("a tampered bundle was accepted")?;
    writeln!(out, "carol refused a bundle with byte {at} flipped: {error}")?;
    writeln!(
        out,
        "carol kept only the valid prefix: {} entries",
        outcome.report.appended
    )?;
    Ok(())
}

fn fresh_temp_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("feedmesh-demo-{}-{}", std::process::id(), system_time_ms()));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    Ok(dir)
}
