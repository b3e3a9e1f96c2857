//! Rule V6 (spec/PROTOCOL.md §1.3): the ten edge cases of "Taming the many
//! EdDSAs" (Chalkias et al. 2020) get the verdict `spec/vectors/signatures.json`
//! gives them, alone and inside batches of honest signatures of any size, at
//! any position: the answer never depends on the batch.

use crate::common::vectors_json;

use ed25519_dalek::{Signer, SigningKey};
use feedmesh_proto::feed::signature::{SignatureFault, SignedMessage, batch_holds, check};
use feedmesh_proto::rng::SplitMix64;
use serde_json::Value;
use vectors_json::{hex, load};

/// One case of the vectors file, decoded.
struct Case {
    key: [u8; 32],
    signature: [u8; 64],
    message: Vec<u8>,
    valid: bool,
    fault: Option<String>,
}

fn cases() -> Vec<Case> {
    let file = load("spec/vectors/signatures.json");
    file["cases"]
        .as_array()
        .expect("a cases array")
        .iter()
        .map(|case: &Value| Case {
            key: hex(&case["pub_key"]).try_into().expect("32-byte key"),
            signature: hex(&case["signature"]).try_into().expect("64-byte signature"),
            message: hex(&case["message"]),
            valid: case["valid"].as_bool().expect("a verdict"),
            fault: case["fault"].as_str().map(str::to_owned),
        })
        .collect()
}

impl Case {
    fn signed(&self) -> SignedMessage<'_> {
        SignedMessage {
            key: &self.key,
            signature: &self.signature,
            message: &self.message,
        }
    }
}

/// The name a fault has in the vectors file.
fn fault_name(fault: SignatureFault) -> &'static str {
    match fault {
        SignatureFault::NonCanonicalS => "non-canonical-s",
        SignatureFault::BadKeyEncoding => "bad-key-encoding",
        SignatureFault::SmallOrderKey => "small-order-key",
        SignatureFault::BadREncoding => "bad-r-encoding",
        SignatureFault::SmallOrderR => "small-order-r",
        SignatureFault::Equation => "equation",
    }
}

/// `count` honest signatures by a few keys over distinct messages.
fn honest(count: usize) -> Vec<([u8; 32], [u8; 64], Vec<u8>)> {
    let keys: Vec<SigningKey> = (0..4u8).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
    (0..count)
        .map(|i| {
            let key = &keys[i % keys.len()];
            let message = format!("honest message {i}").into_bytes();
            (key.verifying_key().to_bytes(), key.sign(&message).to_bytes(), message)
        })
        .collect()
}

#[test]
fn each_case_alone_gets_its_verdict() {
    let cases = cases();
    assert_eq!(cases.len(), 10, "the ten cases of the paper");
    for (index, case) in cases.iter().enumerate() {
        let verdict = check(&case.signed());
        assert_eq!(verdict.is_ok(), case.valid, "case {index}: {verdict:?}");
        assert_eq!(verdict.err().map(fault_name), case.fault.as_deref(), "case {index}");
        assert_eq!(
            batch_holds(&[case.signed()]),
            case.valid,
            "case {index} as a batch of 1"
        );
    }
}

#[test]
fn a_case_in_a_batch_gets_the_same_verdict_at_any_position() {
    let cases = cases();
    let pool = honest(2048);
    let honest_signed: Vec<SignedMessage<'_>> = pool
        .iter()
        .map(|(key, signature, message)| SignedMessage {
            key,
            signature,
            message,
        })
        .collect();
    assert!(batch_holds(&honest_signed[..1024]), "honest signatures hold together");
    let sizes = [1usize, 2, 63, 1024];
    let mut positions = SplitMix64::new(0x5eed);
    for trial in 0..1000usize {
        let case = &cases[trial % cases.len()];
        let size = sizes[(trial / cases.len()) % sizes.len()];
        let start = (positions.next_u64() as usize) % (honest_signed.len() - size);
        let mut batch = honest_signed[start..start + size].to_vec();
        let position = (positions.next_u64() as usize) % (size + 1);
        batch.insert(position, case.signed());
        assert_eq!(
            batch_holds(&batch),
            case.valid,
            "trial {trial}: case {} among {size} honest at {position}",
            trial % cases.len()
        );
    }
}
