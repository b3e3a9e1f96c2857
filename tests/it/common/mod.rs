//! Helpers shared by the integration tests of the `feedmesh` crate and of
//! the command line (crates/cli/tests/it).

pub(crate) mod admins;
pub(crate) mod api;
pub(crate) mod audit_scenario;
#[path = "../../../crates/proto/tests/it/common/fork.rs"]
pub(crate) mod fork;
pub(crate) mod hostile;
pub(crate) mod http;
#[path = "../../../crates/proto/tests/it/common/keys.rs"]
pub(crate) mod keys;
pub(crate) mod nodes;
pub(crate) mod webdriver;
