//! The glob patterns of `SCAN ... MATCH` and `KEYS` (Redis's): `*` any
//! run of bytes, `?` one byte, `[abc]`, `[a-z]` and `[^...]` one byte of
//! (or not of) a set, `\x` the byte `x` itself. Matching is on bytes, case
//! sensitive, and takes at most `pattern.len() * key.len()` steps (a
//! mismatch after a `*` only ever moves that last `*` on).

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// `*`.
    Any,
    /// `?`.
    One,
    /// A byte to match exactly.
    Byte(u8),
    /// `[...]`: inclusive ranges (a single byte is a range of one), negated
    /// with `^`.
    Set { ranges: Vec<(u8, u8)>, negated: bool },
}

/// A compiled glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(Vec<Token>);

impl Glob {
    /// Compiles `pattern`. Every pattern is valid: an unclosed `[` takes
    /// the rest of the pattern as its set, a trailing `\` is itself (as
    /// Redis reads them).
    pub fn new(pattern: &[u8]) -> Glob {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let token = match pattern[i] {
                b'*' => Token::Any,
                b'?' => Token::One,
                b'\\' if i + 1 < pattern.len() => {
                    i += 1;
                    Token::Byte(pattern[i])
                }
                b'[' => {
                    let (set, next) = set(pattern, i + 1);
                    i = next;
                    tokens.push(set);
                    continue;
                }
                byte => Token::Byte(byte),
            };
            // A run of `*` is one `*`.
            if !(token == Token::Any && tokens.last() == Some(&Token::Any)) {
                tokens.push(token);
            }
            i += 1;
        }
        Glob(tokens)
    }

    /// Whether the pattern matches everything (`*`), so a scan need not
    /// test each key.
    pub fn matches_all(&self) -> bool {
        self.0 == [Token::Any]
    }

    /// Whether `key` matches the whole pattern.
    pub fn matches(&self, key: &[u8]) -> bool {
        let tokens = &self.0;
        let (mut t, mut k) = (0, 0);
        // The token after the last `*` seen and the key position it was tried at.
        let mut star: Option<(usize, usize)> = None;
        while k < key.len() {
            match tokens.get(t) {
                Some(Token::Any) => {
                    star = Some((t + 1, k));
                    t += 1;
                }
                Some(token) if one(token, key[k]) => {
                    t += 1;
                    k += 1;
                }
                _ => match star {
                    Some((after, at)) => {
                        star = Some((after, at + 1));
                        t = after;
                        k = at + 1;
                    }
                    None => return false,
                },
            }
        }
        tokens[t..].iter().all(|token| *token == Token::Any)
    }
}

/// Whether the single-byte `token` (not `*`) matches `byte`.
fn one(token: &Token, byte: u8) -> bool {
    match token {
        Token::Any | Token::One => true,
        Token::Byte(b) => *b == byte,
        Token::Set { ranges, negated } => ranges.iter().any(|&(lo, hi)| lo <= byte && byte <= hi) != *negated,
    }
}

/// The set starting at `pattern[i]` (after its `[`) and where the pattern
/// goes on after its `]`.
fn set(pattern: &[u8], mut i: usize) -> (Token, usize) {
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    while i < pattern.len() && pattern[i] != b']' {
        let mut lo = pattern[i];
        if lo == b'\\' && i + 1 < pattern.len() {
            i += 1;
            lo = pattern[i];
        }
        if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() && pattern[i + 2] != b']' {
            let hi = pattern[i + 2];
            ranges.push((lo.min(hi), lo.max(hi)));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
    (Token::Set { ranges, negated }, i + 1)
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn matches(pattern: &str, key: &str) -> bool {
        Glob::new(pattern.as_bytes()).matches(key.as_bytes())
    }

    #[test]
    fn redis_examples() {
        for (pattern, key, expected) in [
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("sid:*:x", "sid:1:2:x", true),
            ("sid:*:x", "sid:1:2:y", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("abc", "abcd", false),
            ("abc*", "abc", true),
        ] {
            assert_eq!(matches(pattern, key), expected, "{pattern} on {key}");
        }
        assert!(Glob::new(b"**").matches_all());
        assert!(!Glob::new(b"a*").matches_all());
    }
}
