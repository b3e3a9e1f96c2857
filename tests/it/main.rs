//! The integration tests of the `feedmesh` crate, one binary: real nodes on
//! loopback, the deterministic simulation, the spec's vectors, the fuzz
//! corpus, the store and the session view. Shared helpers are in `common`.

mod common;

mod admission;
mod audit;
mod audit_page;
mod ebt;
mod forks;
mod fuzz_corpus;
mod hostile;
mod membership;
mod mesh;
mod ready;
mod resp;
mod session_app;
mod session_http;
mod session_store;
mod sessions;
mod simulation;
mod tower_store;
mod transport;
