//! Checks the implementation against the committed test vectors,
//! `spec/vectors/entries.json` (spec/PROTOCOL.md part 1), and checks that the
//! committed files are exactly what the generator writes.
//!
//! The vectors are read from the committed JSON, not from the generator's
//! in-memory values, so these tests check the files other implementations
//! will use.

use crate::common::vectors_gen;
use crate::common::vectors_json;

use std::collections::BTreeSet;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use feedmesh_proto::bundle::{BundleWriter, ImportOptions, MAGIC, import};
use feedmesh_proto::feed::{
    Entry, FORMAT_VERSION, FeedId, ForkProof, ForkProofError, Hash, Keypair, MAX_ENTRY_SIZE, MAX_PAYLOAD, MAX_SEQ,
    SIGNING_CONTEXT, ValidationError, Verified, certificate_path, check_payload, check_signature, check_skip,
    check_successor, has_skip_link, lipmaa, to_hex, verify, verify_batch, verify_chain,
};
use feedmesh_proto::store::{MemoryStore, Store, StoreError};
use serde_json::Value;
use vectors_json::hex;

/// The public key of RFC 8032 §7.1 TEST 1, whose secret key is the author's seed.
const RFC8032_TEST1_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn vectors() -> Value {
    vectors_json::load("spec/vectors/entries.json")
}

fn str_of(value: &Value) -> &str {
    value.as_str().expect("a string")
}

fn u64_of(value: &Value) -> u64 {
    value.as_u64().expect("an unsigned integer")
}

fn optional_hash(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn author(v: &Value) -> Keypair {
    Keypair::from_seed_hex(str_of(&v["keys"][0]["seed"])).expect("a seed")
}

/// The valid feed's entries and payloads, decoded.
fn valid_feed(v: &Value) -> Vec<(Entry, Vec<u8>)> {
    v["valid"]
        .as_array()
        .expect("valid entries")
        .iter()
        .map(|item| {
            let entry = Entry::decode(&hex(&item["entry"])).expect("a valid entry decodes");
            (entry, hex(&item["payload"]))
        })
        .collect()
}

fn verified(records: &[(Entry, Vec<u8>)]) -> Vec<Verified> {
    records
        .iter()
        .map(|(entry, payload)| verify(entry.clone(), Some(payload.clone())).expect("valid"))
        .collect()
}

fn assert_fields(entry: &Entry, fields: &Value) {
    let h = entry.header();
    assert_eq!(u64_of(&fields["version"]), FORMAT_VERSION);
    assert_eq!(h.author.to_string(), str_of(&fields["author"]));
    assert_eq!(h.seq, u64_of(&fields["seq"]));
    assert_eq!(h.prev.map(|x| x.to_string()), optional_hash(&fields["prev"]));
    assert_eq!(h.skip.map(|x| x.to_string()), optional_hash(&fields["skip"]));
    assert_eq!(h.timestamp.as_u64(), u64_of(&fields["timestamp"]));
    assert_eq!(h.payload_len, u64_of(&fields["payload_len"]));
    assert_eq!(h.payload_hash.to_string(), str_of(&fields["payload_hash"]));
    assert_eq!(to_hex(&h.signature), str_of(&fields["signature"]));
}

/// Checks the signature without the library: ed25519 (strict) over the
/// signing context and every byte before the 66-byte signature item.
fn assert_signed_as_specified(entry: &Entry) {
    let bytes = entry.as_bytes();
    let (unsigned, signature_item) = bytes.split_at(bytes.len() - 66);
    assert_eq!(&signature_item[..2], &[0x58, 0x40]);
    let message = [SIGNING_CONTEXT, unsigned].concat();
    assert_eq!(entry.signed_message(), message);
    let key = VerifyingKey::from_bytes(entry.author().as_bytes()).expect("a curve point");
    let signature = Signature::from_slice(&signature_item[2..]).expect("64 bytes");
    key.verify_strict(&message, &signature).expect("the signature verifies");
}

#[test]
fn committed_vectors_are_what_the_generator_writes() {
    let root = vectors_json::repo_root();
    for (path, expected) in vectors_gen::files() {
        let committed = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        assert!(
            committed == expected,
            "{path} is not what the generator writes: run `cargo run --example gen_vectors`"
        );
    }
}

#[test]
fn constants_and_keys_are_as_listed() {
    let v = vectors();
    assert_eq!(u64_of(&v["format_version"]), FORMAT_VERSION);
    assert_eq!(hex(&v["signing_context"]), SIGNING_CONTEXT);
    assert_eq!(SIGNING_CONTEXT, b"feedmesh entry v1\0");
    assert_eq!(u64_of(&v["limits"]["max_entry_size"]), MAX_ENTRY_SIZE as u64);
    assert_eq!(u64_of(&v["limits"]["max_payload"]), MAX_PAYLOAD);
    assert_eq!(u64_of(&v["limits"]["max_seq"]), MAX_SEQ);
    for key in v["keys"].as_array().expect("keys") {
        let seed = str_of(&key["seed"]);
        let keys = Keypair::from_seed_hex(seed).expect("a seed");
        // The secret key file: 64 hex digits and a newline.
        assert_eq!(
            Keypair::from_seed_hex(&format!("{seed}\n"))
                .expect("a key file")
                .feed_id(),
            keys.feed_id()
        );
        assert_eq!(keys.seed_hex(), seed);
        let feed_id = str_of(&key["feed_id"]);
        assert_eq!(keys.feed_id().to_string(), feed_id);
        assert_eq!(feed_id.parse::<FeedId>(), Ok(keys.feed_id()));
    }
    assert_eq!(str_of(&v["keys"][0]["feed_id"]), format!("feed_{RFC8032_TEST1_PUBLIC}"));
}

#[test]
fn valid_entries_decode_to_their_fields_and_verify() {
    let v = vectors();
    let keys = author(&v);
    let items = v["valid"].as_array().expect("valid entries");
    assert_eq!(items.len(), 24);
    for (index, item) in items.iter().enumerate() {
        let bytes = hex(&item["entry"]);
        let entry = Entry::decode(&bytes).expect("a valid entry decodes");
        let seq = index as u64 + 1;
        assert_eq!(u64_of(&item["seq"]), seq);
        assert_eq!(entry.seq(), seq);
        assert_eq!(entry.as_bytes(), &bytes[..]);
        assert_eq!(entry.hash().to_string(), str_of(&item["hash"]));
        assert_eq!(entry.hash(), Hash::of(&bytes));
        assert_fields(&entry, &item["fields"]);
        let derived = &item["derived"];
        assert_eq!(derived["skip_target"].as_u64(), has_skip_link(seq).then(|| lipmaa(seq)));
        assert_eq!(entry.timestamp().wall_ms(), u64_of(&derived["wall_ms"]));
        assert_eq!(u64::from(entry.timestamp().logical()), u64_of(&derived["logical"]));
        assert_signed_as_specified(&entry);
        let payload = hex(&item["payload"]);
        assert_eq!(entry.header().payload_hash, Hash::of(&payload));
        verify(entry.clone(), Some(payload.clone())).expect("entry and payload verify");

        // Signing the same fields again gives the same bytes: ed25519 is
        // deterministic and the encoding canonical.
        let h = entry.header();
        let resigned = Entry::sign(
            &keys,
            &feedmesh_proto::feed::NewEntry {
                seq: h.seq,
                prev: h.prev,
                skip: h.skip,
                timestamp: h.timestamp,
                payload: &payload,
            },
        )
        .expect("signable");
        assert_eq!(resigned, entry);
    }
}

#[test]
fn valid_feed_is_one_chain() {
    let v = vectors();
    let feed = valid_feed(&v);
    let entries: Vec<Entry> = feed.iter().map(|(entry, _)| entry.clone()).collect();

    let summary = verify_chain(&entries).expect("the feed is a chain");
    assert_eq!(
        (summary.author, summary.lowest, summary.highest),
        (entries[0].author(), 1, 24)
    );
    for pair in entries.windows(2) {
        check_successor(&pair[0], &pair[1]).expect("successor");
        if has_skip_link(pair[1].seq()) {
            check_skip(&entries[lipmaa(pair[1].seq()) as usize - 1], &pair[1]).expect("skip link");
        }
    }
    // A chunk from the middle, with the certificate path of its first entry,
    // verifies without the entries in between.
    let mut chunk: BTreeSet<u64> = certificate_path(17).into_iter().collect();
    chunk.extend(17..=24);
    let chunk: Vec<Entry> = chunk.iter().map(|&seq| entries[seq as usize - 1].clone()).collect();
    assert_eq!(chunk.len(), 11);
    assert_eq!(verify_chain(&chunk).map(|s| (s.lowest, s.highest)), Ok((1, 24)));

    let batch: Vec<(Entry, Option<Vec<u8>>)> = feed.iter().map(|(e, p)| (e.clone(), Some(p.clone()))).collect();
    assert_eq!(verify_batch(batch).expect("batch verifies").len(), 24);

    let store = MemoryStore::new();
    let report = store.append(&verified(&feed)).expect("the feed appends");
    assert_eq!((report.appended, report.already_held), (24, 0));
    assert_eq!(store.latest(&entries[0].author()).expect("latest"), Some(24));
    for entry in &entries {
        let held = store.entry(&entry.author(), entry.seq()).expect("read").expect("held");
        assert_eq!(held.as_bytes(), entry.as_bytes());
    }
    let again = store.append(&verified(&feed)).expect("appending again");
    assert_eq!((again.appended, again.already_held), (0, 24));
}

#[test]
fn edge_entries_are_valid_alone() {
    let v = vectors();
    let sizes: Vec<usize> = v["valid_alone"]
        .as_array()
        .expect("edge entries")
        .iter()
        .map(|item| {
            let bytes = hex(&item["entry"]);
            let entry = Entry::decode(&bytes).expect("decodes");
            assert_eq!(entry.as_bytes(), &bytes[..]);
            assert_eq!(entry.hash().to_string(), str_of(&item["hash"]));
            assert_fields(&entry, &item["fields"]);
            check_signature(&entry).expect("verifies");
            assert_signed_as_specified(&entry);
            bytes.len()
        })
        .collect();
    // The smallest and the largest possible entries: the largest is why
    // MAX_ENTRY_SIZE is 256.
    assert_eq!(sizes, [141, 227]);
    let largest = Entry::decode(&hex(&v["valid_alone"][1]["entry"])).expect("decodes");
    assert_eq!(largest.header().payload_len, MAX_PAYLOAD);
    assert_eq!(largest.header().payload_hash, Hash::of(&vec![0; MAX_PAYLOAD as usize]));
    assert!(largest.seq() <= MAX_SEQ && largest.seq() > u64::from(u32::MAX));
}

/// Checks an entry in its context and returns the first rule it breaks,
/// asserting on the way that it passes every check before that context.
fn check_in_context(case: &Value, feed: &[(Entry, Vec<u8>)]) -> Result<(), ValidationError> {
    let bytes = hex(&case["entry"]);
    match str_of(&case["context"]) {
        "alone" => {
            let result = Entry::decode(&bytes).and_then(|entry| check_signature(&entry));
            if let Ok(entry) = Entry::decode(&bytes) {
                // The batch path agrees with the single path.
                let batch = verify_batch(vec![(entry, None)]).map(|_| ()).map_err(|e| e.error);
                assert_eq!(batch, result, "batch and single verification disagree");
            }
            result
        }
        "after" => {
            let held = u64_of(&case["after"]) as usize;
            let entry = Entry::decode(&bytes).expect("an 'after' entry decodes");
            check_signature(&entry).expect("an 'after' entry is signed");
            let prefix: Vec<Entry> = feed[..held].iter().map(|(entry, _)| entry.clone()).collect();
            let mut result = check_successor(&prefix[held - 1], &entry);
            let target = lipmaa(entry.seq()) as usize;
            if result.is_ok() && has_skip_link(entry.seq()) && target <= held {
                result = check_skip(&prefix[target - 1], &entry);
            }

            // verify_chain reports the same rule for the same entry.
            let chain = [prefix, vec![entry.clone()]].concat();
            let from_chain = verify_chain(&chain).map(|_| ()).map_err(|failure| {
                assert_eq!(failure.index, held, "verify_chain blames another entry");
                failure.error
            });
            assert_eq!(from_chain, result, "verify_chain and check_successor disagree");

            // So does a store holding the first entries. A store files every
            // entry under its own author, so there an entry of another author
            // does not extend this feed but starts its own (at the wrong
            // sequence number).
            let store = MemoryStore::new();
            store.append(&verified(&feed[..held])).expect("the prefix appends");
            let store_expects = match &result {
                Err(ValidationError::WrongFeed { .. }) => Err(ValidationError::SequenceGap {
                    expected: 1,
                    found: entry.seq(),
                }),
                other => other.clone(),
            };
            let appended = verify(entry, None).expect("valid alone");
            match store.append(&[appended]) {
                Ok(_) => panic!("the store took an entry the chain checks refuse"),
                Err(StoreError::Rejected { index: 0, error }) => {
                    assert_eq!(Err(error), store_expects, "the store and check_successor disagree");
                }
                Err(other) => panic!("unexpected store error {other}"),
            }
            result
        }
        "payload" => {
            let entry = Entry::decode(&bytes).expect("a 'payload' entry decodes");
            check_signature(&entry).expect("a 'payload' entry is signed");
            let payload = hex(&case["payload"]);
            let result = check_payload(&entry, &payload);
            assert_eq!(verify(entry.clone(), Some(payload.clone())).map(|_| ()), result);
            let batch = verify_batch(vec![(entry, Some(payload))])
                .map(|_| ())
                .map_err(|e| e.error);
            assert_eq!(batch, result);
            result
        }
        other => panic!("unknown context {other}"),
    }
}

#[test]
fn invalid_entries_fail_on_exactly_their_rule() {
    let v = vectors();
    let feed = valid_feed(&v);
    let mut rules = BTreeSet::new();
    for case in v["invalid"].as_array().expect("invalid cases") {
        let name = str_of(&case["name"]);
        let expected = str_of(&case["rule"]);
        match check_in_context(case, &feed) {
            Ok(()) => panic!("{name}: accepted, expected {expected}"),
            Err(error) => assert_eq!(error.rule(), expected, "{name}: {error}"),
        }
        rules.insert(expected.split(' ').next().expect("a rule number").to_owned());
    }
    let all: BTreeSet<String> = (1..=13).map(|n| format!("V{n}")).collect();
    assert_eq!(rules, all, "every rule has a vector");
}

#[test]
fn decoders_read_framing_errors_as_specified() {
    let v = vectors();
    let case = |name: &str| {
        let case = v["invalid"]
            .as_array()
            .expect("invalid cases")
            .iter()
            .find(|case| case["name"] == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        hex(&case["entry"])
    };
    // Input that ends inside an entry is incomplete (more bytes may finish
    // it); a complete entry followed by more is trailing bytes.
    assert!(
        Entry::decode(&case("truncated"))
            .expect_err("truncated")
            .is_incomplete()
    );
    assert!(Entry::decode(&case("empty")).expect_err("empty").is_incomplete());
    let (entry, used) = Entry::decode_prefix(&case("trailing-byte")).expect("an entry, then a byte");
    assert_eq!((entry.seq(), used), (4, entry.as_bytes().len()));
    assert!(
        !Entry::decode(&case("trailing-byte"))
            .expect_err("trailing")
            .is_incomplete()
    );
    // A declared length beyond its limit is refused from the head alone,
    // without waiting for the bytes it announces.
    let oversized = case("oversized-signature-length");
    assert!(!Entry::decode(&oversized).expect_err("oversized").is_incomplete());
}

#[test]
fn small_order_key_vector_needs_strict_verification() {
    let v = vectors();
    let case = v["invalid"]
        .as_array()
        .expect("invalid cases")
        .iter()
        .find(|case| case["name"] == "small-order-key")
        .expect("the small-order-key case");
    let entry = Entry::decode(&hex(&case["entry"])).expect("decodes");
    let key = VerifyingKey::from_bytes(entry.author().as_bytes()).expect("a curve point");
    let signature = Signature::from_bytes(&entry.header().signature);
    // Lax (non-strict) verification accepts this signature for any message.
    assert!(key.verify(&entry.signed_message(), &signature).is_ok());
    assert!(key.verify(b"any other message", &signature).is_ok());
    assert_eq!(check_signature(&entry), Err(ValidationError::BadSignature));
}

#[test]
fn fork_vectors_prove_forks_and_freeze_the_feed() {
    let v = vectors();
    let feed = valid_feed(&v);
    for fork in v["forks"].as_array().expect("forks") {
        let a = Entry::decode(&hex(&fork["entry_a"])).expect("decodes");
        let b = Entry::decode(&hex(&fork["entry_b"])).expect("decodes");
        let seq = u64_of(&fork["seq"]);
        assert_eq!((a.seq(), b.seq(), a.author()), (seq, seq, b.author()));
        // Each branch is valid after the shared prefix.
        let before = &feed[seq as usize - 2].0;
        check_successor(before, &a).expect("branch a extends the prefix");
        check_successor(before, &b).expect("branch b extends the prefix");

        let proof_bytes = hex(&fork["proof"]);
        let proof = ForkProof::new(b.clone(), a.clone()).expect("a fork proof");
        assert_eq!(proof.encode(), proof_bytes);
        let (first, second) = proof.entries();
        assert!(first.hash() < second.hash());
        assert_eq!(proof_bytes, [first.as_bytes(), second.as_bytes()].concat());
        let decoded = ForkProof::decode(&proof_bytes).expect("the proof decodes");
        assert_eq!((decoded.author(), decoded.seq()), (a.author(), seq));
        let reversed = [second.as_bytes(), first.as_bytes()].concat();
        assert!(matches!(ForkProof::decode(&reversed), Err(ForkProofError::Invalid(e)) if e.rule() == "V2 encoding"));

        // A store holding one branch records the proof and takes nothing
        // more of the feed.
        let store = MemoryStore::new();
        store
            .append(&verified(&feed[..seq as usize]))
            .expect("prefix with branch a");
        let other = verify(b.clone(), Some(b"payload 6, forked".to_vec())).expect("branch b verifies");
        match store.append(&[other]) {
            Err(StoreError::Fork { proof: held, .. }) => assert_eq!(held.encode(), proof_bytes),
            other => panic!("expected a fork, got {other:?}"),
        }
        assert_eq!(store.forks().expect("forks").len(), 1);
        let next = verified(&feed[seq as usize..seq as usize + 1]);
        assert!(matches!(store.append(&next), Err(StoreError::Frozen { seq: at, .. }) if at == seq));
        assert_eq!(store.latest(&a.author()).expect("latest"), Some(seq));
    }
}

#[test]
fn bundle_vectors_read_and_write_as_specified() {
    let v = vectors();
    let feed = valid_feed(&v);
    for bundle in v["bundles"].as_array().expect("bundles") {
        let bytes = hex(&bundle["bytes"]);
        assert_eq!(&bytes[..MAGIC.len()], b"feedmesh bundle v1\n");
        let records: Vec<(u64, bool)> = bundle["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|record| {
                (
                    u64_of(&record["seq"]),
                    record["payload_included"].as_bool().expect("a bool"),
                )
            })
            .collect();

        // Written record by record, the bundle has exactly these bytes.
        let mut writer = BundleWriter::new(Vec::new()).expect("in memory");
        for &(seq, included) in &records {
            let (entry, payload) = &feed[seq as usize - 1];
            writer
                .write(entry, included.then_some(&payload[..]))
                .expect("in memory");
        }
        let (count, written) = writer.finish().expect("in memory");
        assert_eq!((count, written), (records.len(), bytes.clone()));

        // Importing stores every record; importing again stores nothing new.
        let store = MemoryStore::new();
        let options = ImportOptions {
            allow_missing_payloads: true,
        };
        let outcome = import(&store, &bytes[..], options).expect("a bundle");
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(
            (outcome.records, outcome.report.appended),
            (records.len(), records.len())
        );
        for &(seq, included) in &records {
            let held = store.payload(&feed[0].0.author(), seq).expect("read");
            assert_eq!(held.is_some(), included);
        }
        let again = import(&store, &bytes[..], options).expect("a bundle");
        assert_eq!((again.report.appended, again.report.already_held), (0, records.len()));

        // A bundle cut inside its last record keeps the records before it.
        let cut = import(&MemoryStore::new(), &bytes[..bytes.len() - 1], options).expect("a bundle");
        assert!(cut.error.is_some());
        assert_eq!(cut.report.appended, records.len() - 1);
    }
}

#[test]
fn lipmaa_table_matches() {
    let v = vectors();
    for row in v["lipmaa"].as_array().expect("lipmaa table") {
        let n = u64_of(&row["n"]);
        assert_eq!(lipmaa(n), u64_of(&row["lipmaa"]), "lipmaa({n})");
        assert_eq!(
            has_skip_link(n),
            row["has_skip_link"].as_bool().expect("a bool"),
            "has_skip_link({n})"
        );
        let path: Vec<u64> = row["certificate_path"]
            .as_array()
            .expect("a path")
            .iter()
            .map(u64_of)
            .collect();
        assert_eq!(certificate_path(n), path, "certificate_path({n})");
    }
}
