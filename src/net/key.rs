//! The network key: a 32-byte secret shared by every member of a network
//! (spec/PROTOCOL.md §3.1).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::feed::{from_hex, to_hex};

/// Length of a network key in bytes.
pub const NETWORK_KEY_LEN: usize = 32;

/// The network's pre-shared secret: only its holders can complete a
/// handshake (it is the PSK of the Noise handshake, §3.2).
///
/// Its textual form (and the content of a `network_key` file) is 64
/// lowercase hex digits followed by a newline. `Debug` never prints it.
#[derive(Clone)]
pub struct NetworkKey([u8; NETWORK_KEY_LEN]);

/// Why a network key could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkKeyError {
    /// The text is not 64 lowercase hex digits (surrounding white space aside).
    #[error("a network key is 64 lowercase hex digits")]
    BadKey,
    /// The operating system's random number generator failed.
    #[error("no randomness available: {0}")]
    Randomness(String),
    /// The key file could not be read or written.
    #[error("network key file: {0}")]
    Io(#[from] io::Error),
}

impl NetworkKey {
    /// Generates a fresh key from the operating system's randomness.
    pub fn generate() -> Result<NetworkKey, NetworkKeyError> {
        let mut bytes = [0u8; NETWORK_KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| NetworkKeyError::Randomness(e.to_string()))?;
        Ok(NetworkKey(bytes))
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; NETWORK_KEY_LEN]) -> NetworkKey {
        NetworkKey(bytes)
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; NETWORK_KEY_LEN] {
        &self.0
    }

    /// The key as 64 lowercase hex digits (no newline).
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 64 lowercase hex digits; surrounding white space (such as the
    /// file's final newline) is ignored.
    pub fn from_hex(text: &str) -> Result<NetworkKey, NetworkKeyError> {
        from_hex(text.trim())
            .map(NetworkKey)
            .map_err(|_| NetworkKeyError::BadKey)
    }

    /// Reads a key file written by [`NetworkKey::write_file`].
    pub fn read_file(path: &Path) -> Result<NetworkKey, NetworkKeyError> {
        let text = fs::read_to_string(path)?;
        NetworkKey::from_hex(&text)
    }

    /// Writes the key to a new file (64 hex digits + newline; mode 0600 on
    /// Unix). Refuses to overwrite an existing file.
    pub fn write_file(&self, path: &Path) -> Result<(), NetworkKeyError> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(format!("{}\n", self.to_hex()).as_bytes())?;
        file.sync_all()?;
        Ok(())
    }
}

/// Compares in constant time (no early exit on the first differing byte).
impl PartialEq for NetworkKey {
    fn eq(&self, other: &NetworkKey) -> bool {
        self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl Eq for NetworkKey {}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetworkKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_debug_hides_the_secret() {
        let key = NetworkKey::from_bytes([0xab; 32]);
        assert_eq!(
            NetworkKey::from_hex(&format!("{}\n", key.to_hex())).ok(),
            Some(key.clone())
        );
        assert!(!format!("{key:?}").contains("ab"));
        assert!(matches!(NetworkKey::from_hex("abc"), Err(NetworkKeyError::BadKey)));
        assert!(matches!(
            NetworkKey::from_hex(&"AB".repeat(32)),
            Err(NetworkKeyError::BadKey)
        ));
        assert_ne!(NetworkKey::generate().ok(), NetworkKey::generate().ok());
    }

    #[test]
    fn file_round_trip_is_private_and_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("network_key");
        let key = NetworkKey::generate().expect("key");
        key.write_file(&path).expect("write");
        assert_eq!(NetworkKey::read_file(&path).expect("read"), key);
        assert!(key.write_file(&path).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
