//! Session keys as the view holds them: inline when short (most session ids
//! are 16 to 44 bytes), on the heap otherwise. An inline key is compared
//! where the hash table keeps it, without a read of another cache line: a
//! read of a view of a million sessions is a few cache misses, and this
//! saves one of them.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// The longest key held inline.
const INLINE: usize = 46;

/// A session key (1 to [`super::MAX_KEY`] bytes).
#[derive(Clone)]
pub(crate) enum Key {
    /// `bytes[..len]`.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A longer key.
    Heap(Box<[u8]>),
}

impl Key {
    /// The key holding `bytes`.
    pub(crate) fn new(bytes: &[u8]) -> Key {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                Key::Inline { len, bytes: inline }
            }
            _ => Key::Heap(bytes.into()),
        }
    }

    /// The key's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Hashes as the byte slice does, as [`Borrow`] requires.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn short_and_long_keys_are_found_by_their_bytes() {
        let mut map = HashMap::new();
        let keys: Vec<Vec<u8>> = [1, 2, 45, 46, 47, 128].iter().map(|&n| vec![b'k'; n]).collect();
        for (i, key) in keys.iter().enumerate() {
            map.insert(Key::new(key), i);
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(map.get(key.as_slice()), Some(&i));
            assert_eq!(Key::new(key).as_slice(), key.as_slice());
        }
        assert!(matches!(Key::new(&[1; 46]), Key::Inline { .. }));
        assert!(matches!(Key::new(&[1; 47]), Key::Heap(_)));
        assert_eq!(map.get(&b"absent"[..]), None);
    }
}
