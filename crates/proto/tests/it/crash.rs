//! Crash consistency of the redb store: a writer process killed with SIGKILL
//! in the middle of its appends leaves a store that opens, verifies, and holds
//! every append that had returned.
//!
//! The writer is this test binary itself, re-executed with [`WRITER_DIR_VAR`]
//! set so that [`crash_writer`] does the writing: it appends entries to its
//! feed, one per transaction and in batches, and prints `acked <seq>` after
//! each append returns. The parent reads those lines, kills the writer after a
//! few hundred of them, then checks the store, and starts the next round on the
//! same store.

use crate::common::keys::keys;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use feedmesh_proto::feed::{
    Entry, Hash, Keypair, NewEntry, Timestamp, Verified, check_payload, has_skip_link, lipmaa, sign, verify_chain,
};
use feedmesh_proto::store::{RedbStore, Store};

/// Set (to the store's directory) in the environment of a writer process.
const WRITER_DIR_VAR: &str = "FEEDMESH_CRASH_WRITER_DIR";
/// Entries a writer appends before stopping by itself; far more than a
/// round lets it ack before being killed, so it is always killed mid-way.
const WRITER_MAX_ENTRIES: u64 = 4000;
/// Entries per batch when the writer batches.
const BATCH: u64 = 25;
/// Acks after which each round's writer is killed.
const KILL_AFTER: [usize; 4] = [150, 320, 90, 400];

fn store_file(dir: &Path) -> PathBuf {
    dir.join("feeds.redb")
}

/// The payload of entry `seq`: its length varies, so pages fill unevenly.
fn payload_of(seq: u64) -> Vec<u8> {
    let mut payload = format!("entry {seq} ").into_bytes();
    payload.resize(payload.len() + (seq % 97) as usize, b'.');
    payload
}

/// Signs entry `seq` of the feed, given the hashes of entries `1..seq`.
fn next_record(keys: &Keypair, hashes: &[Hash]) -> Verified {
    let seq = hashes.len() as u64 + 1;
    let hash_of = |s: u64| hashes[(s - 1) as usize];
    sign(
        keys,
        &NewEntry {
            seq,
            prev: (seq > 1).then(|| hash_of(seq - 1)),
            skip: has_skip_link(seq).then(|| hash_of(lipmaa(seq))),
            timestamp: Timestamp::from_u64(1_000 + seq),
            payload: &payload_of(seq),
        },
    )
    .expect("valid entry")
}

/// The writer's side: does nothing unless [`WRITER_DIR_VAR`] is set.
#[test]
fn crash_writer() {
    let Some(dir) = std::env::var_os(WRITER_DIR_VAR) else {
        return;
    };
    let store = RedbStore::open(store_file(Path::new(&dir))).expect("writer opens the store");
    let keys = keys(42);
    // Continue the chain the store holds.
    let mut hashes: Vec<Hash> = Vec::new();
    let latest = store.latest(&keys.feed_id()).expect("latest").unwrap_or(0);
    while (hashes.len() as u64) < latest {
        let from = hashes.len() as u64 + 1;
        let got = store.range(&keys.feed_id(), from, latest, 1000).expect("range");
        assert!(!got.is_empty(), "store is missing entries {from}..={latest}");
        hashes.extend(got.iter().map(|(entry, _)| entry.hash()));
    }
    let stop = latest + WRITER_MAX_ENTRIES;
    let mut out = std::io::stdout().lock();
    let mut block = 0u64;
    while (hashes.len() as u64) < stop {
        // Alternate blocks of single-entry appends and of batched appends.
        let batched = block % 2 == 1;
        block += 1;
        for _ in 0..BATCH {
            let size = if batched { BATCH } else { 1 };
            let mut records = Vec::with_capacity(size as usize);
            for _ in 0..size {
                let record = next_record(&keys, &hashes);
                hashes.push(record.entry().hash());
                records.push(record);
            }
            let report = store.append(&records).expect("append");
            assert_eq!(report.appended, records.len());
            writeln!(out, "acked {}", hashes.len()).expect("stdout");
            out.flush().expect("stdout");
            if batched {
                break;
            }
        }
    }
}

/// Runs one writer on `dir`, kills it after `kill_after` acks; returns the
/// highest acknowledged sequence number.
fn run_writer_and_kill(dir: &Path, kill_after: usize) -> u64 {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["--exact", "crash::crash_writer", "--nocapture", "--test-threads=1"])
        .env(WRITER_DIR_VAR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("writer stdout");
    let mut acks = 0;
    let mut highest = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read writer output");
        let Some(seq) = line.strip_prefix("acked ") else {
            continue; // the test harness's own lines
        };
        let seq: u64 = seq.trim().parse().expect("acked sequence number");
        assert!(seq > highest, "acks go up");
        highest = seq;
        acks += 1;
        if acks == kill_after {
            child.kill().expect("kill the writer"); // SIGKILL on Unix
            break;
        }
    }
    let status = child.wait().expect("reap the writer");
    assert!(
        acks == kill_after,
        "writer stopped after {acks} acks ({status}) before it could be killed"
    );
    assert!(!status.success(), "the writer was killed, not finished");
    highest
}

/// Opens the store left by a killed writer and checks all of it.
fn check_store(dir: &Path, acked: u64) -> u64 {
    let store = RedbStore::open_checked(store_file(dir)).expect("the store opens after a crash");
    let feed = keys(42).feed_id();
    let latest = store.latest(&feed).expect("latest").expect("feed held");
    assert!(
        latest >= acked,
        "acknowledged {acked} but the store holds only {latest}"
    );
    let records = store.range(&feed, 1, latest, usize::MAX).expect("re-read every entry");
    assert_eq!(
        records.len() as u64,
        latest,
        "the store holds 1..={latest} without holes"
    );
    for (entry, payload) in &records {
        let payload = payload.as_deref().expect("payload kept");
        check_payload(entry, payload).expect("payload matches its entry");
        assert_eq!(payload, payload_of(entry.seq()).as_slice());
    }
    let entries: Vec<Entry> = records.into_iter().map(|(entry, _)| entry).collect();
    let summary = verify_chain(&entries).expect("the stored chain verifies");
    assert_eq!((summary.author, summary.lowest, summary.highest), (feed, 1, latest));
    assert_eq!(store.clock().expect("clock").get(&feed), Some(&latest));
    latest
}

#[test]
fn killed_writer_keeps_every_acked_append() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut previous = 0;
    for kill_after in KILL_AFTER {
        let acked = run_writer_and_kill(dir.path(), kill_after);
        assert!(acked > previous, "each round appends more");
        previous = check_store(dir.path(), acked);
    }
}
