//! In-memory backend (being written).

/// Holds feeds in memory.
#[derive(Debug, Default)]
pub struct MemoryStore;
