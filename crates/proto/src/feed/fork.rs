//! Equivocation: two different valid entries by one author at one sequence
//! number (spec/PROTOCOL.md §1.7).
//!
//! A [`ForkProof`] holds both entries. Anyone can check it with nothing but
//! the proof: both signatures verify under the same key, at the same
//! sequence, with different hashes. A feed with a proof is frozen at the fork
//! point: nothing at or after that sequence is accepted or folded.

use super::verify::check_signature;
use super::{DecodeError, Entry, FeedId, ValidationError};

/// Why two entries are not a fork proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForkProofError {
    /// The entries are by different authors or at different sequence numbers.
    #[error("the entries are not at the same position of one feed")]
    DifferentPositions,
    /// The two entries are the same entry.
    #[error("the entries are identical")]
    Identical,
    /// One of the entries is invalid on its own.
    #[error("invalid entry in fork proof: {0}")]
    Invalid(#[from] ValidationError),
}

/// Two valid entries by one author at one sequence number.
///
/// Canonical form: the entry with the smaller hash first. Encoded as the two
/// entries' bytes back to back (each entry is self-delimiting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkProof {
    first: Entry,
    second: Entry,
}

impl ForkProof {
    /// Checks that `a` and `b` prove a fork and builds the proof.
    pub fn new(a: Entry, b: Entry) -> Result<ForkProof, ForkProofError> {
        if a.author() != b.author() || a.seq() != b.seq() {
            return Err(ForkProofError::DifferentPositions);
        }
        if a.hash() == b.hash() {
            return Err(ForkProofError::Identical);
        }
        check_signature(&a)?;
        check_signature(&b)?;
        let (first, second) = if a.hash() < b.hash() { (a, b) } else { (b, a) };
        Ok(ForkProof { first, second })
    }

    /// The forked feed.
    pub fn author(&self) -> FeedId {
        self.first.author()
    }

    /// The sequence number at which the feed forked.
    pub fn seq(&self) -> u64 {
        self.first.seq()
    }

    /// The two conflicting entries, smaller hash first.
    pub fn entries(&self) -> (&Entry, &Entry) {
        (&self.first, &self.second)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        [self.first.as_bytes(), self.second.as_bytes()].concat()
    }

    /// Decodes and checks a proof; refuses non-canonical order and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<ForkProof, ForkProofError> {
        let (a, used) = Entry::decode_prefix(bytes)?;
        let b = Entry::decode(&bytes[used..])?;
        if a.hash() > b.hash() {
            return Err(ValidationError::Decode(DecodeError::NotCanonical {
                field: "fork proof order",
            })
            .into());
        }
        ForkProof::new(a, b)
    }
}
