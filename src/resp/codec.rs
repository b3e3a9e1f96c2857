//! Framing: commands out of a connection's read buffer, replies into its
//! write buffer, and the limits that bound both (spec/RESP.md §2).
//!
//! A command is a RESP2 array of bulk strings (what every client sends) or
//! an inline command (a line of words, as typed into `telnet`). Before the
//! RESP2 decoder of `redis-protocol` sees a command, [`next_command`] walks
//! its headers and checks every declared length against the limits below:
//! the decoder is handed only complete, flat, bounded frames, so it neither
//! allocates for a length that was never sent nor recurses into nested
//! arrays.

pub use redis_protocol::bytes::{Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::BytesFrame;

/// The longest bulk string of a command (1 MiB): above the largest value a
/// session holds ([`MAX_VALUE`](crate::view::MAX_VALUE), 64 KiB), so an
/// oversized value gets a clear error rather than a protocol error.
pub const MAX_BULK: usize = 1 << 20;
/// The most arguments of a command, its name included: enough for `MGET`,
/// `DEL` or `EXISTS` of 1,024 keys (2,049 allows 1,024 pairs, should `MSET`
/// come).
pub const MAX_ARGS: usize = 1 + 2 * 1024;
/// The longest inline command, its line ending included (64 KiB, as Redis).
pub const MAX_INLINE: usize = 64 * 1024;
/// The most bytes one unfinished command may hold in the read buffer
/// (2 MiB): past it, the connection is refused with a protocol error.
pub const MAX_COMMAND: usize = 2 << 20;
/// The longest length line (`*N` or `$N` and CRLF) accepted.
const MAX_LENGTH_LINE: usize = 24;

/// A protocol error: the connection is answered `-ERR Protocol error: ...`
/// and closed (what Redis does).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(String);

impl ProtocolError {
    fn new(message: impl Into<String>) -> ProtocolError {
        ProtocolError(message.into())
    }
}

/// Takes the next complete command off the front of `buffer`: its
/// arguments (none for an empty line or array, which the caller skips);
/// `None` while it is incomplete; a [`ProtocolError`] for a malformed or
/// oversized one (the connection must then be closed: the framing is lost).
pub fn next_command(buffer: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    match buffer.first() {
        None => Ok(None),
        Some(b'*') => multibulk(buffer),
        Some(_) => Ok(inline(buffer)?),
    }
}

/// Where the CRLF-terminated line starting at `at` ends (the index after
/// its LF), and the integer after its first byte; `None` if incomplete.
fn length_line(buffer: &[u8], at: usize, what: &str) -> Result<Option<(usize, i64)>, ProtocolError> {
    let window = &buffer[at..buffer.len().min(at + MAX_LENGTH_LINE)];
    let Some(cr) = window.windows(2).position(|pair| pair == b"\r\n") else {
        if window.len() == MAX_LENGTH_LINE {
            return Err(ProtocolError::new(format!("invalid {what} length")));
        }
        return Ok(None);
    };
    let digits = &window[1..cr];
    let number = std::str::from_utf8(digits)
        .ok()
        .filter(|text| !text.starts_with('+'))
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError::new(format!("invalid {what} length")))?;
    Ok(Some((at + cr + 2, number)))
}

/// The length and argument count of the complete multibulk command at the
/// front of `buffer` (`None` if incomplete), its headers checked against
/// the limits.
fn multibulk_len(buffer: &[u8]) -> Result<Option<(usize, i64)>, ProtocolError> {
    let Some((mut at, count)) = length_line(buffer, 0, "multibulk")? else {
        return Ok(None);
    };
    if count > MAX_ARGS as i64 {
        return Err(ProtocolError::new(format!(
            "invalid multibulk length: {count} arguments, at most {MAX_ARGS}"
        )));
    }
    for _ in 0..count.max(0) {
        let Some(&kind) = buffer.get(at) else {
            return Ok(None);
        };
        if kind != b'$' {
            return Err(ProtocolError::new(format!("expected '$', got '{}'", char::from(kind))));
        }
        let Some((data, len)) = length_line(buffer, at, "bulk")? else {
            return Ok(None);
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= MAX_BULK)
            .ok_or_else(|| ProtocolError::new(format!("invalid bulk length: {len}, at most {MAX_BULK}")))?;
        at = data + len + 2;
        if at > buffer.len() {
            return Ok(None);
        }
        if &buffer[at - 2..at] != b"\r\n" {
            return Err(ProtocolError::new("bulk string not followed by CRLF"));
        }
    }
    Ok(Some((at, count)))
}

fn multibulk(buffer: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some((len, count)) = multibulk_len(buffer)? else {
        if buffer.len() > MAX_COMMAND {
            return Err(ProtocolError::new(format!("command longer than {MAX_COMMAND} bytes")));
        }
        return Ok(None);
    };
    // `*0` and `*-1`: nothing to run (Redis skips them too).
    if count <= 0 {
        let _ = buffer.split_to(len);
        return Ok(Some(Vec::new()));
    }
    let decoded = decode_bytes_mut(buffer).map_err(|error| ProtocolError::new(error.to_string()))?;
    match decoded {
        Some((BytesFrame::Array(frames), used, _)) if used == len => frames
            .into_iter()
            .map(|frame| match frame {
                BytesFrame::BulkString(bytes) => Ok(bytes),
                _ => Err(ProtocolError::new("expected a bulk string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(ProtocolError::new(
            "the command does not decode as an array of bulk strings",
        )),
    }
}

fn inline(buffer: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(end) = buffer.iter().take(MAX_INLINE).position(|&b| b == b'\n') else {
        if buffer.len() >= MAX_INLINE {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    let line = buffer.split_to(end + 1).freeze();
    let mut words = Vec::new();
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        match (b.is_ascii_whitespace(), start) {
            (true, Some(s)) => {
                words.push(line.slice(s..i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if words.len() > MAX_ARGS {
        return Err(ProtocolError::new(format!(
            "too many arguments in an inline request, at most {MAX_ARGS}"
        )));
    }
    Ok(Some(words))
}

/// The protocol a connection speaks (`HELLO 2`, the default, or `HELLO 3`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2.
    #[default]
    Resp2,
    /// RESP3: nil is `_`, and a map (`HELLO`, `CONFIG GET`) is `%`.
    Resp3,
}

/// A reply, before it is encoded in the connection's [`Protocol`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A simple string (`+TEXT`).
    Simple(Bytes),
    /// An error line (`-PREFIX message`).
    Error(String),
    /// An integer.
    Integer(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// Nil: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// An array.
    Array(Vec<Reply>),
    /// A map: a flat array of keys and values in RESP2, `%` in RESP3.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// The RESP2 frame of this reply (a map as its flat array).
    fn resp2(&self) -> BytesFrame {
        match self {
            Reply::Simple(text) => BytesFrame::SimpleString(text.clone()),
            Reply::Error(line) => BytesFrame::Error(line.clone().into()),
            Reply::Integer(value) => BytesFrame::Integer(*value),
            Reply::Bulk(bytes) => BytesFrame::BulkString(bytes.clone()),
            Reply::Nil => BytesFrame::Null,
            Reply::Array(items) => BytesFrame::Array(items.iter().map(Reply::resp2).collect()),
            Reply::Map(pairs) => BytesFrame::Array(
                pairs
                    .iter()
                    .flat_map(|(key, value)| [key.resp2(), value.resp2()])
                    .collect(),
            ),
        }
    }
}

/// Appends `reply` to `out`, encoded in `protocol`: RESP2 by the codec
/// crate; RESP3 differs only in nil and maps (and in aggregates holding
/// them), which are written here.
pub fn encode(reply: &Reply, protocol: Protocol, out: &mut BytesMut) {
    match (protocol, reply) {
        (Protocol::Resp3, Reply::Nil) => out.extend_from_slice(b"_\r\n"),
        (Protocol::Resp3, Reply::Array(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                encode(item, protocol, out);
            }
        }
        (Protocol::Resp3, Reply::Map(pairs)) => {
            out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
            for (key, value) in pairs {
                encode(key, protocol, out);
                encode(value, protocol, out);
            }
        }
        _ => {
            if let Err(error) = extend_encode(out, &reply.resp2(), false) {
                tracing::warn!(%error, "a reply could not be encoded");
                out.extend_from_slice(b"-ERR the reply could not be encoded\r\n");
            }
        }
    }
}

/// `+OK`.
pub fn ok() -> Reply {
    simple("OK")
}

/// A simple string (`+TEXT`).
pub fn simple(text: &'static str) -> Reply {
    Reply::Simple(Bytes::from_static(text.as_bytes()))
}

/// An error (`-PREFIX message`): `line` starts with its prefix (`ERR`,
/// `NOAUTH`, ...). CR and LF in it become spaces, as Redis does.
pub fn error(line: impl Into<String>) -> Reply {
    let line: String = line.into();
    let line = if line.contains(['\r', '\n']) {
        line.replace(['\r', '\n'], " ")
    } else {
        line
    };
    Reply::Error(line)
}

/// A bulk string.
pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
    Reply::Bulk(bytes.into())
}

/// An integer.
pub fn integer(value: impl TryInto<i64>) -> Reply {
    Reply::Integer(value.try_into().unwrap_or(i64::MAX))
}

/// Nil (`$-1`, or `_` in RESP3).
pub fn nil() -> Reply {
    Reply::Nil
}

/// An array.
pub fn array(items: Vec<Reply>) -> Reply {
    Reply::Array(items)
}

/// A map, its pairs in the order given.
pub fn map(pairs: Vec<(Reply, Reply)>) -> Reply {
    Reply::Map(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> (Result<Option<Vec<Bytes>>, ProtocolError>, usize) {
        let mut buffer = BytesMut::from(bytes);
        let result = next_command(&mut buffer);
        (result, buffer.len())
    }

    #[test]
    fn commands_are_taken_whole_or_not_at_all() {
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        for cut in 0..set.len() {
            assert_eq!(frame(&set[..cut]), (Ok(None), cut), "cut at {cut}");
        }
        let args = ["SET", "k", "v"].map(|a| Bytes::from_static(a.as_bytes())).to_vec();
        assert_eq!(frame(&[&set[..], b"PING\r\n"].concat()), (Ok(Some(args)), 6));
        assert_eq!(frame(b"*0\r\n"), (Ok(Some(Vec::new())), 0));
        assert_eq!(
            frame(b"  ECHO \t hi\r\n").0,
            Ok(Some(vec![Bytes::from_static(b"ECHO"), Bytes::from_static(b"hi")]))
        );
    }

    #[test]
    fn limits_are_checked_before_the_bytes_arrive() {
        let error = |bytes: &[u8]| frame(bytes).0.map_err(|e| e.to_string());
        assert_eq!(
            error(b"*1\r\n$1048577\r\n"),
            Err("Protocol error: invalid bulk length: 1048577, at most 1048576".into())
        );
        assert_eq!(
            error(b"*2050\r\n"),
            Err("Protocol error: invalid multibulk length: 2050 arguments, at most 2049".into())
        );
        assert_eq!(
            error(b"*1\r\n$-1\r\n"),
            Err("Protocol error: invalid bulk length: -1, at most 1048576".into())
        );
        assert_eq!(
            error(b"*+1\r\n"),
            Err("Protocol error: invalid multibulk length".into())
        );
        assert_eq!(
            error(b"*1\r\n$1\r\nab\r\n"),
            Err("Protocol error: bulk string not followed by CRLF".into())
        );
        assert!(error(&[b'*'; MAX_LENGTH_LINE]).is_err());
        assert_eq!(frame(&[b'*'; MAX_LENGTH_LINE - 1]).0, Ok(None));
    }
}
