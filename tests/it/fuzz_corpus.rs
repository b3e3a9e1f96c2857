//! Replays the committed fuzz corpus through the fuzz entry points, so every
//! input the fuzzer ever kept (and every crash it found, once fixed) is a
//! regression test in `cargo test`.
//!
//! `fuzz/corpus/<target>/` holds the seed corpus (written by the ignored
//! `write_seed_corpus` test below) plus what the fuzzer added;
//! `fuzz/regressions/<target>/` holds former crash inputs. See fuzz/README.md.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use feedmesh::bundle::{BundleWriter, MAGIC};
use feedmesh::clock::Timestamp;
use feedmesh::feed::{Entry, FeedId, ForkProof, Hash, Keypair, Verified, certificate_path};
use feedmesh::fuzzing::{self, Input, bundle_of, signed_chain};
use feedmesh::net::{MAX_MESSAGE, MIN_MAX_MESSAGE};
use feedmesh::sync::{ClockEntry, MAX_RECORDS_PER_MESSAGE, Message};

use feedmesh::view::{Membership, Op, Snapshot, encode_ops};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files directly inside `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(listing) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = listing
        .map(|item| item.expect("reading a corpus directory").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
}

/// Runs every corpus and regression file of `target` through `run`.
fn replay(target: &str, run: fn(&[u8])) {
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ is empty");
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).expect("reading a corpus file");
        if panic::catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
}

#[test]
fn entry_decode_corpus() {
    replay("entry_decode", fuzzing::entry_decode);
}

#[test]
fn chain_verify_corpus() {
    replay("chain_verify", fuzzing::chain_verify);
}

#[test]
fn bundle_import_corpus() {
    replay("bundle_import", fuzzing::bundle_import);
}

#[test]
fn fork_proof_decode_corpus() {
    replay("fork_proof_decode", fuzzing::fork_proof_decode);
}

#[test]
fn message_decode_corpus() {
    replay("message_decode", fuzzing::message_decode);
}

#[test]
fn frame_decode_corpus() {
    replay("frame_decode", fuzzing::frame_decode);
}

#[test]
fn peer_sync_corpus() {
    replay("peer_sync", fuzzing::peer_sync);
}

#[test]
fn session_fold_corpus() {
    replay("session_fold", fuzzing::session_fold);
}

#[test]
fn evidence_decode_corpus() {
    replay("evidence_decode", fuzzing::evidence_decode);
}

#[test]
fn view_snapshot_corpus() {
    replay("view_snapshot", fuzzing::view_snapshot);
}

#[test]
fn resp_command_corpus() {
    replay("resp_command", fuzzing::resp_command);
}

/// Bytes that `signed_chain` turns into timestamps and payloads.
fn material(variant: u8) -> Vec<u8> {
    (0..=255u8).map(|i| i.wrapping_mul(31).wrapping_add(variant)).collect()
}

fn entries(records: &[Verified]) -> Vec<Entry> {
    records.iter().map(|record| record.entry().clone()).collect()
}

fn concat<'a>(parts: impl IntoIterator<Item = &'a Entry>) -> Vec<u8> {
    parts.into_iter().flat_map(|entry| entry.as_bytes().to_vec()).collect()
}

/// A bundle of `(entry, payload)` records, in the given order.
fn bundle(records: &[(&Entry, Option<&[u8]>)]) -> Vec<u8> {
    let mut writer = BundleWriter::new(Vec::new()).unwrap();
    for (entry, payload) in records {
        writer.write(entry, *payload).unwrap();
    }
    writer.finish().unwrap().1
}

/// `first` followed by `rest`.
fn with_prefix(first: &[u8], rest: &[u8]) -> Vec<u8> {
    [first, rest].concat()
}

/// Writes the seed corpus. Deterministic: running it again rewrites the same
/// files (and leaves files the fuzzer added alone).
#[test]
#[ignore = "writes fuzz/corpus/; run with `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`"]
fn write_seed_corpus() {
    let chain = signed_chain(13, &mut Input(&material(0)));
    // Same key and first two entries, a different third: a fork at seq 3.
    let mut input = Input(&material(0));
    signed_chain(2, &mut input);
    let used = material(0).len() - input.0.len();
    let mut forked_material = material(0);
    forked_material[used..].iter_mut().for_each(|b| *b ^= 0x55);
    let forked = signed_chain(3, &mut Input(&forked_material));
    assert_eq!(forked[1], chain[1]);
    assert_ne!(forked[2].entry(), chain[2].entry());
    let e = entries(&chain);
    let at = |seq: usize| &e[seq - 1];
    let bytes = |seq: usize| at(seq).as_bytes().to_vec();

    let mut seeds: Vec<(&str, &str, Vec<u8>)> = Vec::new();
    let mut seed = |target, name, data| seeds.push((target, name, data));

    // entry_decode
    for (seq, name) in [(1, "seq1"), (2, "seq2"), (4, "seq4-skip"), (13, "seq13-skip")] {
        seed("entry_decode", name, bytes(seq));
    }
    seed("entry_decode", "trailing-byte", with_prefix(&bytes(1), &[0]));
    seed("entry_decode", "truncated", bytes(4)[..100].to_vec());
    let mut version_2 = bytes(2);
    version_2[1] = 2;
    seed("entry_decode", "version-2", version_2);
    // seq 3 written as a two-byte integer (0x18 0x03): not canonical.
    let seq3 = bytes(3);
    seed(
        "entry_decode",
        "non-canonical-seq",
        [&seq3[..36], &[0x18], &seq3[36..]].concat(),
    );
    let mut bad_signature = bytes(5);
    *bad_signature.last_mut().unwrap() ^= 1;
    seed("entry_decode", "bad-signature", bad_signature);

    // chain_verify: raw entries (split, sorted) and material for the generated feed.
    seed("chain_verify", "whole-feed", concat(&e));
    seed("chain_verify", "whole-feed-reversed", concat(e.iter().rev()));
    let path: Vec<&Entry> = certificate_path(13).into_iter().map(|seq| at(seq as usize)).collect();
    seed("chain_verify", "certificate-path-13", concat(path));
    seed("chain_verify", "gap", concat([at(1), at(2), at(3), at(5)]));
    seed(
        "chain_verify",
        "fork-at-3",
        concat([at(1), at(2), forked[2].entry(), at(3)]),
    );
    seed(
        "chain_verify",
        "generate-flip",
        vec![12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3, 60, 9],
    );
    seed(
        "chain_verify",
        "generate-drop-swap",
        vec![15, 0, 0, 0, 0, 0, 0, 1, 1, 1, 5, 0, 2, 3, 1, 2, 9],
    );

    // bundle_import: a flag byte (bit 0: allow missing payloads), then the bundle.
    let full = bundle_of(&chain[..5]);
    seed("bundle_import", "five-records", with_prefix(&[0], &full));
    let missing: Vec<(&Entry, Option<&[u8]>)> = chain[..4]
        .iter()
        .map(|r| (r.entry(), if r.entry().seq() == 3 { None } else { r.payload() }))
        .collect();
    seed(
        "bundle_import",
        "missing-payload-allowed",
        with_prefix(&[1], &bundle(&missing)),
    );
    seed(
        "bundle_import",
        "missing-payload-refused",
        with_prefix(&[0], &bundle(&missing)),
    );
    let duplicate: Vec<(&Entry, Option<&[u8]>)> = [0, 1, 1, 2]
        .iter()
        .map(|&i| (chain[i].entry(), chain[i].payload()))
        .collect();
    seed(
        "bundle_import",
        "duplicate-record",
        with_prefix(&[0], &bundle(&duplicate)),
    );
    let mut fork = bundle_of(&chain[..3]);
    fork.extend_from_slice(&bundle_of(&forked[2..])[MAGIC.len()..]);
    seed("bundle_import", "fork-at-3", with_prefix(&[0], &fork));
    seed("bundle_import", "gap", with_prefix(&[0], &bundle_of(&chain[1..3])));
    seed("bundle_import", "truncated", with_prefix(&[0], &full[..full.len() - 7]));
    seed("bundle_import", "magic-only", with_prefix(&[0], &full[..MAGIC.len()]));
    let mut bad_payload = bundle_of(&chain[..3]);
    *bad_payload.last_mut().unwrap() ^= 0x20;
    seed("bundle_import", "bad-payload", with_prefix(&[0], &bad_payload));

    // fork_proof_decode
    let proof = ForkProof::new(chain[2].entry().clone(), forked[2].entry().clone()).unwrap();
    let (low, high) = proof.entries();
    seed("fork_proof_decode", "valid", proof.encode());
    seed("fork_proof_decode", "reversed", concat([high, low]));
    seed("fork_proof_decode", "identical", concat([low, low]));
    seed("fork_proof_decode", "different-seqs", concat([at(2), at(3)]));
    seed("fork_proof_decode", "trailing-byte", with_prefix(&proof.encode(), &[0]));
    seed("fork_proof_decode", "truncated", proof.encode()[..300].to_vec());

    // message_decode: one message of each kind, then broken ones.
    let feed = |seed: u8| Keypair::from_seed([seed; 32]).feed_id();
    let mut lines: Vec<ClockEntry> = [(1, 0, true), (2, 13, false), (3, 1 << 40, true)]
        .into_iter()
        .map(|(seed, latest, want)| ClockEntry {
            feed: feed(seed),
            latest,
            want,
            frozen: seed == 2,
            head: (latest > 0).then_some(Hash([seed; 32])),
        })
        .collect();
    lines.sort_by_key(|line| line.feed);
    let clock = Message::Clock { feeds: lines.clone() }.encode();
    let records = Message::Records {
        records: chain[..4]
            .iter()
            .map(|r| {
                let (entry, payload) = r.clone().into_parts();
                (entry.clone(), if entry.seq() == 3 { None } else { payload })
            })
            .collect(),
    }
    .encode();
    let request = Message::Request {
        feed: feed(1),
        from: 2,
        to: 9,
    }
    .encode();
    let fork_message = Message::Fork {
        proof: Box::new(proof.clone()),
    }
    .encode();
    seed(
        "message_decode",
        "clock-empty",
        Message::Clock { feeds: Vec::new() }.encode(),
    );
    seed("message_decode", "clock", clock.clone());
    seed("message_decode", "records", records.clone());
    seed("message_decode", "request", request.clone());
    seed("message_decode", "fork", fork_message.clone());
    seed("message_decode", "request-trailing-byte", with_prefix(&request, &[0]));
    seed(
        "message_decode",
        "records-truncated",
        records[..records.len() - 9].to_vec(),
    );
    let mut long_from = request.clone();
    let at = long_from.len() - 2;
    long_from.splice(at..at + 1, [0x18, 0x02]);
    seed("message_decode", "request-non-canonical-from", long_from);
    seed("message_decode", "unknown-type", vec![0x82, 0x09, 0x80]);
    let count = MAX_RECORDS_PER_MESSAGE as u16 + 1;
    seed(
        "message_decode",
        "records-over-limit",
        with_prefix(&[0x82, 0x01, 0x99], &count.to_be_bytes()),
    );
    lines.swap(0, 1);
    seed(
        "message_decode",
        "clock-out-of-order",
        Message::Clock { feeds: lines }.encode(),
    );
    seed(
        "message_decode",
        "fork-in-records",
        with_prefix(&[0x82, 0x01, 0x81, 0x82], &proof.encode()),
    );

    // frame_decode: max_message selector, max_len selector, pad byte, chunk
    // sizes, then the stream (see `fuzzing::frame_decode_measured`).
    let message = |body: &[u8]| with_prefix(&(body.len() as u32).to_be_bytes(), body);
    let frame = |len: u16| with_prefix(&len.to_be_bytes(), &vec![0x33; usize::from(len)]);
    let messages = [message(b""), message(b"hello"), message(&material(1)), vec![0, 0]].concat();
    seed(
        "frame_decode",
        "messages-split",
        [&[3, 0, 0, 3, 1, 5, 0][..], &messages].concat(),
    );
    seed(
        "frame_decode",
        "messages-whole",
        [&[3, 0, 0, 0][..], &messages].concat(),
    );
    let frames = [frame(16), frame(20), frame(300), vec![1]].concat();
    seed(
        "frame_decode",
        "frames-split",
        [&[3, 0, 0, 2, 7, 2][..], &frames].concat(),
    );
    seed("frame_decode", "frame-too-short", vec![3, 0, 0, 0, 0, 15, 1, 2]);
    seed(
        "frame_decode",
        "frame-over-small-limit",
        [&[3, 1, 50, 0, 0][..], &frame(100)].concat(),
    );
    seed(
        "frame_decode",
        "message-over-limit",
        [&[0, 10, 0, 0, 0][..], &message(&[7; 11])].concat(),
    );
    assert_eq!(MIN_MAX_MESSAGE, 0x1_0000);
    seed(
        "frame_decode",
        "pad-min-max-message",
        [&[2, 0, 0xa5, 0x01, 0x00, 0x00, 0x42, 2, 0x90, 0x85][..], &message(b"x")].concat(),
    );
    seed(
        "frame_decode",
        "pad-over-min",
        vec![2, 0, 0xa5, 0x01, 0x00, 0x01, 0x42, 0],
    );
    assert_eq!(MAX_MESSAGE, 0x41_0000);
    seed(
        "frame_decode",
        "pad-max-message",
        vec![3, 0, 0xa5, 0x41, 0x00, 0x00, 0x11, 1, 0xff],
    );

    // peer_sync: config, clock, the start clock's bytes, then operations
    // (see `fuzzing::peer_sync`): 0 Clock, 1 Records, 2 corrupted Records,
    // 3 Request, 4 Fork, 5 local_advanced, 6 time, 7 request_range,
    // 8 local_fork, 9 raw frame, 10 store_refused.
    let clock_a = [0, 1, 0, 10, 1];
    let peer_seeds: [(&str, Vec<u8>); 10] = [
        (
            "replicate",
            [
                &[0, 1][..],
                &clock_a,
                &[1, 0, 0, 0, 5, 0],
                &[1, 0, 0, 5, 5, 0],
                &[6, 100],
                &[3, 0, 0, 4],
            ]
            .concat(),
        ),
        (
            "fork",
            [
                &[0, 1][..],
                &clock_a,
                &[1, 0, 0, 0, 4, 0],
                &[1, 0, 1, 4, 2, 0],
                &[1, 0, 0, 4, 1, 0],
                &[4],
                &[1, 0, 0, 5, 2, 0],
            ]
            .concat(),
        ),
        (
            "stall",
            [&[2, 0, 3][..], &[0, 1, 0, 9, 1], &[6, 61], &[6, 20], &[6, 200]].concat(),
        ),
        (
            "request-range",
            [&[1, 0][..], &[7, 1, 1, 3], &[1, 0, 2, 0, 4, 0], &[1, 0, 2, 4, 1, 0]].concat(),
        ),
        ("bad-payload", [&[0, 0][..], &clock_a, &[1, 0, 0, 0, 5, 0x12]].concat()),
        (
            "missing-payload",
            [&[0, 0][..], &clock_a, &[1, 1, 0, 0, 3, 0x01, 2, 0, 2, 0]].concat(),
        ),
        (
            "mutated-frame",
            [&[0, 0][..], &clock_a, &[2, 0, 0, 0, 3, 0, 40, 0, 0x10]].concat(),
        ),
        ("out-of-order", [&[0, 0][..], &clock_a, &[1, 0, 0, 0, 4, 3]].concat()),
        (
            "peer-wants-ours",
            [
                &[6, 0, 10, 5][..],
                &[0, 2, 0, 2, 1, 1, 0, 1],
                &[3, 0, 0, 11],
                &[5, 0, 13],
                &[8],
                &[10, 0],
            ]
            .concat(),
        ),
        (
            "garbage",
            vec![0, 0, 9, 10, 0x82, 0x01, 0x81, 0x82, 0x89, 0x01, 0x58, 0x20, 0, 0],
        ),
    ];
    for (name, data) in peer_seeds {
        seed("peer_sync", name, data);
    }

    // session_fold: a valid ops payload (for the decoder half), and scripts
    // (see `fuzzing::session_fold`): header (authors, entries), then per
    // entry author, time, op count and ops (kind byte: kind % 8 with 0-3 Put,
    // 4-5 Touch, 6 Revoke, 7 RevokeOwner; key (kind >> 2) % 3, owner
    // (kind >> 4) % 2, bit 0x40 = owned put; ttl byte; value byte for a put,
    // the named put's time byte for a touch);
    // the rest chooses the permutation.
    let payload = encode_ops(&[
        Op::Put {
            key: b"k1".to_vec(),
            value: vec![0xa0],
            ttl_ms: 1000,
            owner: Some(b"u".to_vec()),
        },
        Op::Touch {
            key: b"k1".to_vec(),
            ttl_ms: 5,
            put: Timestamp::new(1000, 0),
        },
        Op::Revoke { key: b"k2".to_vec() },
        Op::RevokeOwner { owner: b"u".to_vec() },
    ])
    .unwrap();
    seed("session_fold", "payload", payload);
    let session_seeds: [(&str, Vec<u8>); 4] = [
        // Two authors' puts on k1 at the same time, a touch from a third.
        (
            "lww-touch",
            [
                &[3 * 2 + 1][..],
                &[0, 5, 0, 0x00, 10, 1],
                &[1, 5, 0, 0x01, 10, 2],
                &[2, 7, 0, 0x04, 30],
                &[1, 0],
            ]
            .concat(),
        ),
        // A put, its revocation by another author, a later put.
        (
            "revoke",
            [
                &[3 * 2][..],
                &[0, 2, 0, 0x00, 20, 1],
                &[1, 3, 0, 0x06, 1],
                &[0, 4, 0, 0x00, 20, 2],
                &[2, 1],
            ]
            .concat(),
        ),
        // Owned puts before and after a RevokeOwner of u, same entry and not.
        (
            "revoke-owner",
            [
                &[3 * 3 + 2][..],
                &[0, 1, 2, 0x40, 30, 1, 0x07, 1, 0x44, 30, 2],
                &[3, 0x12, 0, 0x48, 30, 3],
                &[2, 3, 0, 0x57, 1],
                &[1, 9, 1, 0x07, 1, 0x00, 9, 3],
                &[3, 2, 1],
            ]
            .concat(),
        ),
        ("garbage", vec![0xff, 0x13, 0x37, 0x80, 0x81, 0x82, 0x09, 0x41, 0x01]),
    ];
    for (name, data) in session_seeds {
        seed("session_fold", name, data);
    }

    // view_snapshot: a valid snapshot (for the decoder half), a truncated
    // one, then scripts (see `fuzzing::view_snapshot`): header (entries,
    // admins, held flag), per entry an author, a time, operations, a
    // covered hash and a frozen choice; then a changed byte.
    let (a, b) = (FeedId([1; 32]), FeedId([2; 32]));
    let put = |key: &[u8], owner: Option<&[u8]>| Op::Put {
        key: key.to_vec(),
        value: vec![0x61],
        ttl_ms: 60_000,
        owner: owner.map(<[u8]>::to_vec),
    };
    let mut snapshot: Snapshot = Snapshot {
        membership: Membership::with_admins([a]),
        ..Snapshot::default()
    };
    let history = [
        (
            a,
            1,
            1_000,
            vec![put(b"k1", Some(b"u")), Op::AddMember { feed: b, from_seq: 1 }],
        ),
        (
            b,
            1,
            2_000,
            vec![
                put(b"k2", None),
                Op::Touch {
                    key: b"k1".to_vec(),
                    ttl_ms: 90_000,
                    put: Timestamp::new(1_000, 0),
                },
            ],
        ),
        (
            b,
            2,
            3_000,
            vec![
                Op::Revoke { key: b"k2".to_vec() },
                Op::RevokeOwner { owner: b"w".to_vec() },
            ],
        ),
        (a, 2, 500_000, vec![put(b"k3", Some(b"w"))]),
    ];
    for (author, seq, wall, ops) in history {
        snapshot.membership.apply(author, &ops);
        snapshot.view.offer(author, seq, Timestamp::new(wall, 0), ops, 10_000);
        snapshot.covered.insert(author, (seq, Hash([seq as u8; 32])));
    }
    let valid = snapshot.encode();
    seed("view_snapshot", "valid", valid.clone());
    seed("view_snapshot", "truncated", valid[..valid.len() / 2].to_vec());
    seed(
        "view_snapshot",
        "script-small",
        vec![3, 0, 10, 1, 0x00, 5, 1, 9, 7, 7, 0, 1, 0],
    );
    seed(
        "view_snapshot",
        "script-held-and-revoked",
        vec![
            0x27, 1, 200, 2, 0x40, 3, 0x06, 4, 1, 1, 2, 30, 1, 0x07, 9, 5, 3, 3, 40, 0, 0x01, 2, 0, 0, 0, 8, 0xff,
        ],
    );

    // resp_command: a cut byte, then what a client sent.
    let resp_seeds: [(&str, &[u8]); 8] = [
        ("pipeline", b"\x80*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        (
            "set-options",
            b"\x40*9\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n10\r\n$2\r\nNX\r\n$3\r\nGET\r\n$5\r\nOWNER\r\n$1\r\nu\r\n",
        ),
        ("inline", b"\x10PING\r\nECHO  hi\r\nSCAN 0 MATCH u:[a-c]* COUNT 5\r\n"),
        ("unknown", b"\x00*3\r\n$4\r\nFOO\r\r\n$2\r\na\n\r\n$0\r\n\r\n"),
        ("bulk-too-long", b"\xff*2\r\n$3\r\nGET\r\n$2000000000\r\n"),
        ("nested", b"\x20*1\r\n*1\r\n$4\r\nPING\r\n"),
        ("incomplete", b"\x90*2\r\n$3\r\nGET\r\n$10\r\nabc"),
        ("keys-glob", b"\x30*3\r\n$4\r\nKEYS\r\n$6\r\nh[^e]*\r\n$5\r\nhallo\r\n"),
    ];
    for (name, data) in resp_seeds {
        seed("resp_command", name, data.to_vec());
    }

    for (target, name, data) in seeds {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
}
