//! The integration tests of the `feedmesh` command, one binary: real
//! `feedmesh` processes (one-shot commands and `serve` children killed and
//! restarted) on loopback.

// The helpers of the library's tests; the command line uses a part of them.
#[allow(dead_code)]
#[path = "../../../../tests/it/common/mod.rs"]
mod common;

mod api;
mod audit;
mod bench_cli;
mod cli;
mod clients;
mod integrity;
mod member;
mod process;
mod resp;
mod serve;
mod session;
