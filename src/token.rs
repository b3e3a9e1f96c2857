//! The bearer token of a node's client endpoints: the HTTP API
//! (`Authorization: Bearer TOKEN`) and the Redis protocol endpoint
//! (`AUTH TOKEN`), and the rule that an endpoint on an address that is not
//! loopback needs one ([`requires_token`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors of reading a token file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read the API token file {path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The token (file) is empty.
    #[error("the API token file {0} is empty")]
    Empty(PathBuf),
}

/// The token every client of an endpoint must present. Only its BLAKE3
/// hash is kept, and compared in constant time ([`blake3::Hash`]'s equality
/// is).
#[derive(Clone)]
pub struct ApiToken(blake3::Hash);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// The token `token` (surrounding whitespace ignored); `None` if empty.
    pub fn new(token: &str) -> Option<ApiToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| ApiToken(blake3::hash(token.as_bytes())))
    }

    /// Reads the token from a file (its content, trimmed; not empty).
    pub fn read_file(path: &Path) -> Result<ApiToken, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|error| TokenError::File {
            path: path.to_path_buf(),
            error,
        })?;
        ApiToken::new(&text).ok_or_else(|| TokenError::Empty(path.to_path_buf()))
    }

    /// Whether `presented` is the token, in constant time.
    pub fn matches(&self, presented: impl AsRef<[u8]>) -> bool {
        blake3::hash(presented.as_ref()) == self.0
    }
}

/// Whether serving an endpoint on `addr` requires a token: every address
/// but loopback ones (`127.0.0.0/8`, `::1`).
pub fn requires_token(addr: SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_and_refuse_empty() {
        let token = ApiToken::new(" secret\n").expect("token");
        assert!(token.matches("secret"));
        assert!(!token.matches("secreT"));
        assert!(!token.matches(""));
        assert!(ApiToken::new(" \n").is_none());
        assert_eq!(format!("{token:?}"), "ApiToken(..)");
    }

    #[test]
    fn only_loopback_goes_without_a_token() {
        assert!(!requires_token("127.0.0.1:0".parse().unwrap()));
        assert!(!requires_token("[::1]:80".parse().unwrap()));
        assert!(requires_token("0.0.0.0:0".parse().unwrap()));
        assert!(requires_token("192.168.1.2:80".parse().unwrap()));
        assert!(requires_token("[::]:80".parse().unwrap()));
    }
}
