//! The subcommands of `feedmesh` that have a module of their own.

pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod demo;
pub(crate) mod member;
pub(crate) mod session;
