//! The view's table of records by key, a hash table whose hashes the view
//! can keep: the owner index ([`super::SessionView`]'s `by_owner`) lists an
//! owner's keys by their 8-byte hash instead of a second copy of each key.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::Record;
use crate::view::key::Key;

/// Records by key.
#[derive(Clone, Debug, Default)]
pub(super) struct Records {
    table: HashTable<(Key, Record)>,
    hasher: RandomState,
}

impl Records {
    /// An empty table with room for `capacity` records.
    pub(super) fn with_capacity(capacity: usize) -> Records {
        Records {
            table: HashTable::with_capacity(capacity),
            hasher: RandomState::new(),
        }
    }

    /// The hash under which `key`'s record is (or would be) held.
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The record of `key`.
    pub(super) fn get(&self, key: &[u8]) -> Option<&Record> {
        let hash = self.hash(key);
        self.table.find(hash, |(k, _)| k.as_slice() == key).map(|(_, r)| r)
    }

    /// The record of `key` (hashed to `hash`), inserted empty if absent.
    pub(super) fn get_or_default(&mut self, key: &[u8], hash: u64) -> &mut Record {
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |(k, _)| k.as_slice() == key,
            |(k, _)| hasher.hash_one(k.as_slice()),
        );
        &mut entry.or_insert_with(|| (Key::new(key), Record::default())).into_mut().1
    }

    /// Inserts `record` under `key`; returns false (and keeps the record
    /// already there) if `key` has one.
    pub(super) fn insert_new(&mut self, key: Key, record: Record) -> bool {
        let hash = self.hash(key.as_slice());
        if self.table.find(hash, |(k, _)| *k == key).is_some() {
            return false;
        }
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, (key, record), |(k, _)| hasher.hash_one(k.as_slice()));
        true
    }

    /// The records whose key hashes to `hash` (and possibly a few others).
    pub(super) fn by_hash(&self, hash: u64) -> impl Iterator<Item = (&Key, &Record)> {
        self.table.iter_hash(hash).map(|(k, r)| (k, r))
    }

    /// [`Records::by_hash`], mutable.
    pub(super) fn by_hash_mut(&mut self, hash: u64) -> impl Iterator<Item = &mut Record> {
        self.table.iter_hash_mut(hash).map(|(_, r)| r)
    }

    /// Every record, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &Record)> {
        self.table.iter().map(|(k, r)| (k, r))
    }

    /// Keeps only the records for which `keep` answers true (it may change them).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut Record) -> bool) {
        self.table.retain(|(_, r)| keep(r));
    }

    /// Removes the record of `key` (hashed to `hash`), if there is one.
    pub(super) fn remove(&mut self, key: &[u8], hash: u64) {
        if let Ok(entry) = self.table.find_entry(hash, |(k, _)| k.as_slice() == key) {
            entry.remove();
        }
    }
}
