//! redb backend (being written).

/// Holds feeds in a redb database file.
#[derive(Debug)]
pub struct RedbStore;
