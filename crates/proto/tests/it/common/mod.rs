//! Helpers of the protocol crate's integration tests; `fork` and `keys` are
//! shared with the `feedmesh` crate's and the command line's tests.

pub(crate) mod fork;
pub(crate) mod keys;
pub(crate) mod message_vectors_gen;
pub(crate) mod vectors_gen;
pub(crate) mod vectors_json;
