//! Checks the implementation against the committed replication message test
//! vectors, `spec/vectors/messages.json` (spec/PROTOCOL.md §2.1), and checks
//! that the committed file is exactly what the generator writes.
//!
//! The vectors are read from the committed JSON, not from the generator's
//! in-memory values, so these tests check the file other implementations
//! will use.

use crate::common::message_vectors_gen;
use crate::common::vectors_json;

use std::collections::BTreeSet;

use feedmesh_proto::feed::{Keypair, MAX_PAYLOAD, MAX_SEQ, check_payload, check_signature};
use feedmesh_proto::sync::{MAX_FEEDS_PER_CLOCK, MAX_FRAME, MAX_RECORDS_PER_MESSAGE, Message};
use message_vectors_gen::{error_json, fields_json};
use serde_json::Value;
use vectors_json::hex;

fn vectors() -> Value {
    vectors_json::load(message_vectors_gen::PATH)
}

fn items<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().expect("a list")
}

#[test]
fn committed_vectors_are_what_the_generator_writes() {
    let root = vectors_json::repo_root();
    let committed = std::fs::read_to_string(root.join(message_vectors_gen::PATH)).unwrap_or_default();
    assert!(
        committed == message_vectors_gen::file(),
        "{} is not what the generator writes: run `cargo run --example gen_message_vectors`",
        message_vectors_gen::PATH
    );
}

#[test]
fn limits_and_keys_are_as_listed() {
    let v = vectors();
    let limits = &v["limits"];
    assert_eq!(limits["max_frame"].as_u64(), Some(MAX_FRAME as u64));
    assert_eq!(
        limits["max_records_per_message"].as_u64(),
        Some(MAX_RECORDS_PER_MESSAGE as u64)
    );
    assert_eq!(limits["max_feeds_per_clock"].as_u64(), Some(MAX_FEEDS_PER_CLOCK as u64));
    assert_eq!(limits["max_payload"].as_u64(), Some(MAX_PAYLOAD));
    assert_eq!(limits["max_seq"].as_u64(), Some(MAX_SEQ));
    for key in items(&v, "keys") {
        let keys = Keypair::from_seed_hex(key["seed"].as_str().expect("a seed")).expect("a valid seed");
        assert_eq!(keys.feed_id().to_string(), key["feed_id"].as_str().expect("a feed id"));
    }
}

#[test]
fn valid_messages_decode_to_their_fields_and_re_encode() {
    let v = vectors();
    let valid = items(&v, "valid");
    let kinds: BTreeSet<&str> = valid
        .iter()
        .filter_map(|item| item["fields"]["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["chunk", "clock", "fetch", "fork", "records", "request"]),
        "one of each kind"
    );
    for item in valid {
        let name = item["name"].as_str().expect("a name");
        let bytes = hex(&item["hex"]);
        let message = Message::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fields_json(&message), item["fields"], "{name}");
        assert_eq!(message.kind(), item["fields"]["kind"], "{name}");
        assert_eq!(message.encode(), bytes, "{name}: encode(decode(b)) == b");
        assert!(bytes.len() <= MAX_FRAME);
        // Every entry in a valid message is signed; every payload present
        // is the one its entry commits to.
        match &message {
            Message::Records { records } | Message::Chunk { records, .. } => {
                for (entry, payload) in records {
                    check_signature(entry).expect("signed");
                    if let Some(payload) = payload {
                        check_payload(entry, payload).expect("committed payload");
                    }
                }
            }
            Message::Fork { proof } => {
                let (first, second) = proof.entries();
                assert!(first.hash() < second.hash());
            }
            _ => {}
        }
    }
}

#[test]
fn invalid_messages_are_refused_with_their_error() {
    let v = vectors();
    let invalid = items(&v, "invalid");
    assert!(invalid.len() >= 20);
    let mut wrong = Vec::new();
    for item in invalid {
        let name = item["name"].as_str().expect("a name");
        let bytes = hex(&item["hex"]);
        match Message::decode(&bytes) {
            Ok(message) => wrong.push(format!("{name}: accepted as {message:?}")),
            Err(error) if error_json(&error) != item["error"] => wrong.push(format!(
                "{name}: {} ({error}), expected {}",
                error_json(&error),
                item["error"]
            )),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn payloads_listed_are_those_of_the_records() {
    let v = vectors();
    let records = items(&v, "valid")
        .iter()
        .find(|item| item["name"] == "records")
        .expect("the records example");
    for (record, listed) in items(&records["fields"], "records").iter().zip(items(&v, "payloads")) {
        assert_eq!(record["seq"], listed["seq"]);
        if !record["payload"].is_null() {
            assert_eq!(record["payload"], listed["payload"]);
        }
    }
}
