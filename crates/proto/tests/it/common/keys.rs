//! The identities of the tests: one keypair per seed byte, the same on
//! every run.

use feedmesh_proto::feed::Keypair;

/// The keypair whose 32-byte seed is `seed` repeated.
pub(crate) fn keys(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}
