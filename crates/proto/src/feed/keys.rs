//! A node's identity: an ed25519 key pair whose public half is its feed id.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};

use super::FeedId;
use super::id::{from_hex, to_hex};

/// An ed25519 signing key and the feed id it owns.
///
/// The secret is the 32-byte seed of RFC 8032; it is never printed by
/// `Debug`.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

/// Why a secret key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not 64 lowercase hex digits (surrounding white space aside).
    #[error("a secret key is 64 lowercase hex digits")]
    BadSecret,
    /// The operating system's random number generator failed.
    #[error("no randomness available: {0}")]
    Randomness(String),
}

impl Keypair {
    /// Generates a fresh key pair from the operating system's randomness.
    pub fn generate() -> Result<Keypair, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Randomness(e.to_string()))?;
        Ok(Keypair::from_seed(seed))
    }

    /// The key pair derived from a 32-byte seed (deterministic: used by test
    /// vectors and benchmarks).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The seed, for writing to the node's secret key file.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The seed as 64 lowercase hex digits.
    pub fn seed_hex(&self) -> String {
        to_hex(&self.seed())
    }

    /// Parses a seed written by [`Keypair::seed_hex`].
    pub fn from_seed_hex(text: &str) -> Result<Keypair, KeyError> {
        from_hex(text.trim())
            .map(Keypair::from_seed)
            .map_err(|_| KeyError::BadSecret)
    }

    /// The feed id (public key) this key pair signs for.
    pub fn feed_id(&self) -> FeedId {
        FeedId(self.signing.verifying_key().to_bytes())
    }

    /// Signs an arbitrary message (callers add their own domain separation).
    pub fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("feed_id", &self.feed_id())
            .finish_non_exhaustive()
    }
}
