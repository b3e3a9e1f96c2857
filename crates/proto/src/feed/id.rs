//! Identifiers: feed ids (ed25519 public keys) and blake3 hashes, with their
//! one textual form each (spec/PROTOCOL.md §1.1).

use std::fmt;
use std::str::FromStr;

/// The textual prefix of a feed id: `feed_` followed by 64 lowercase hex digits.
pub const FEED_ID_PREFIX: &str = "feed_";

/// Why a textual feed id or hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// A feed id must start with `feed_`.
    #[error("a feed id starts with \"{FEED_ID_PREFIX}\"")]
    MissingPrefix,
    /// The hex part must be exactly 64 lowercase hex digits.
    #[error("expected 64 lowercase hex digits")]
    BadHex,
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Decodes exactly `N` bytes from lowercase hex; anything else is refused.
pub fn from_hex<const N: usize>(text: &str) -> Result<[u8; N], ParseIdError> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return Err(ParseIdError::BadHex);
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let hi = digit(pair[0]).ok_or(ParseIdError::BadHex)?;
        let lo = digit(pair[1]).ok_or(ParseIdError::BadHex)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

/// A feed's identity: the author's ed25519 public key (32 bytes).
///
/// Displayed and parsed as `feed_` + 64 lowercase hex digits, the single
/// textual form used by every command, log line and API.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedId(pub [u8; 32]);

impl FeedId {
    /// The raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FEED_ID_PREFIX}{}", to_hex(&self.0))
    }
}

impl fmt::Debug for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for FeedId {
    type Err = ParseIdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = text.strip_prefix(FEED_ID_PREFIX).ok_or(ParseIdError::MissingPrefix)?;
        from_hex(hex).map(FeedId)
    }
}

/// A blake3 hash (32 bytes), displayed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The blake3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hash {
    type Err = ParseIdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        from_hex(text).map(Hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_id_round_trips_and_rejects_other_forms() {
        let id = FeedId([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text, format!("feed_{}", "ab".repeat(32)));
        assert_eq!(text.parse::<FeedId>(), Ok(id));
        assert_eq!(text.to_uppercase().parse::<FeedId>(), Err(ParseIdError::MissingPrefix));
        assert_eq!(
            format!("feed_{}", "AB".repeat(32)).parse::<FeedId>(),
            Err(ParseIdError::BadHex)
        );
        assert_eq!("ab".repeat(32).parse::<FeedId>(), Err(ParseIdError::MissingPrefix));
        assert_eq!("feed_abc".parse::<FeedId>(), Err(ParseIdError::BadHex));
    }
}
