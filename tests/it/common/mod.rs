//! Helpers shared by the integration tests of the `feedmesh` crate and of
//! the command line (crates/cli/tests/it).

pub(crate) mod admins;
pub(crate) mod api;
pub(crate) mod audit_scenario;
pub(crate) mod fork;
pub(crate) mod hostile;
pub(crate) mod http;
pub(crate) mod message_vectors_gen;
pub(crate) mod nodes;
pub(crate) mod vectors_gen;
pub(crate) mod vectors_json;
pub(crate) mod webdriver;
