//! Command parsing: the arguments of one command into a typed [`Command`],
//! or the error Redis answers for them, worded as Redis words it
//! (spec/RESP.md §3). Pure: no node, no clock.

use redis_protocol::bytes::Bytes;

use super::codec::Protocol;

use crate::view::MAX_TTL_MS;

/// When a write makes a session expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No expiry given: the network's session lifetime.
    Default,
    /// `EX`, `PX`: this many milliseconds from now (1 to `MAX_TTL_MS`).
    In(u64),
    /// `EXAT`, `PXAT`: at this Unix time in milliseconds.
    At(u64),
    /// `KEEPTTL`: what the live session has left (else the default).
    Keep,
}

/// The condition of a `SET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `NX`: only if no session is held under the key.
    Absent,
    /// `XX`: only if a live session is held under the key.
    Live,
}

/// `SET` (and `SETEX`, `PSETEX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// When the session expires.
    pub expiry: Expiry,
    /// `NX` or `XX`.
    pub condition: Option<Condition>,
    /// `GET`: answer the value held before.
    pub get: bool,
    /// `OWNER user` (feedmesh's own option).
    pub owner: Option<Bytes>,
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `PING [message]`.
    Ping(Option<Bytes>),
    /// `ECHO message`.
    Echo(Bytes),
    /// `AUTH [username] password`.
    Auth {
        /// The user name (only `default` exists).
        user: Option<Bytes>,
        /// The token.
        password: Bytes,
    },
    /// `HELLO [protover [AUTH username password] [SETNAME name]]`.
    Hello {
        /// The protocol version asked for.
        protocol: Option<Protocol>,
        /// `AUTH username password`.
        auth: Option<(Bytes, Bytes)>,
        /// `SETNAME name`.
        name: Option<Bytes>,
    },
    /// `SELECT index`.
    Select(i64),
    /// `QUIT`.
    Quit,
    /// `CLIENT SETNAME name`.
    ClientSetName(Bytes),
    /// `CLIENT GETNAME`.
    ClientGetName,
    /// `CLIENT ID`.
    ClientId,
    /// `CLIENT SETINFO attribute value` (accepted, not kept).
    ClientSetInfo,
    /// `INFO [section ...]`, sections lowercased.
    Info(Vec<String>),
    /// `COMMAND`, `COMMAND DOCS|INFO|LIST ...`: no command documentation.
    CommandDocs,
    /// `COMMAND COUNT`.
    CommandCount,
    /// `CONFIG GET pattern ...`: the few parameters of [`CONFIG`](super::CONFIG)
    /// whose names match.
    ConfigGet(Vec<Bytes>),
    /// `DBSIZE`.
    DbSize,
    /// `SET`, `SETEX`, `PSETEX`.
    Set(Set),
    /// `GET key`.
    Get(Bytes),
    /// `MGET key [key ...]`.
    MGet(Vec<Bytes>),
    /// `GETEX key [EX|PX|EXAT|PXAT ...]`.
    GetEx {
        /// The key.
        key: Bytes,
        /// The new expiry, if any.
        expiry: Option<Expiry>,
    },
    /// `DEL` or `UNLINK key [key ...]`.
    Del(Vec<Bytes>),
    /// `EXISTS key [key ...]`.
    Exists(Vec<Bytes>),
    /// `EXPIRE key seconds`, `PEXPIRE key milliseconds`.
    Expire {
        /// The key.
        key: Bytes,
        /// The time to live asked for, in milliseconds.
        ttl_ms: u64,
    },
    /// `TTL key` (`millis` false), `PTTL key` (true).
    Ttl {
        /// The key.
        key: Bytes,
        /// Whether to answer in milliseconds.
        millis: bool,
    },
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
    Scan {
        /// Where to go on from (0: the start).
        cursor: u64,
        /// `MATCH pattern`.
        pattern: Option<Bytes>,
        /// `COUNT count` (default 10), at most [`MAX_SCAN_COUNT`].
        count: usize,
        /// `TYPE` other than `string`: nothing matches.
        none: bool,
    },
    /// `KEYS pattern`.
    Keys(Bytes),
    /// `FEEDMESH.REVOKEOWNER user`.
    RevokeOwner(Bytes),
    /// `FEEDMESH.OWNED user`: the live sessions of an owner.
    Owned(Bytes),
    /// `WAIT numpeers timeout`.
    Wait {
        /// How many peers to wait for.
        peers: usize,
        /// How long, in milliseconds (0: as long as allowed).
        timeout_ms: u64,
    },
}

/// The largest `COUNT` of a `SCAN` (larger ones are taken as this).
pub const MAX_SCAN_COUNT: usize = 10_000;

/// The names of the commands [`parse`] knows (what `COMMAND COUNT` counts).
pub const COMMANDS: &[&str] = &[
    "ping",
    "echo",
    "auth",
    "hello",
    "select",
    "quit",
    "client",
    "info",
    "command",
    "config",
    "dbsize",
    "set",
    "setex",
    "psetex",
    "get",
    "mget",
    "getex",
    "del",
    "unlink",
    "exists",
    "expire",
    "pexpire",
    "ttl",
    "pttl",
    "scan",
    "keys",
    "feedmesh.revokeowner",
    "feedmesh.owned",
    "wait",
];

/// Why a command was not run: the error reply, as Redis words it (its
/// `Display` is the reply line, prefix included).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No such command; the reply quotes the name and the first arguments.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    Unknown {
        /// The name as sent (at most 128 bytes of it).
        name: String,
        /// The first arguments, each quoted and followed by a space.
        args: String,
    },
    /// No such subcommand.
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The command, upper case.
        command: &'static str,
        /// The subcommand as sent.
        sub: String,
    },
    /// The wrong number of arguments for the command (named lower case).
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(String),
    /// An option that does not fit.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that should be an integer is not, or is out of range.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An expiry that is not positive, or overflows.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    /// An expiry beyond what a session may have.
    #[error("ERR invalid expire time in '{0}' command: a session lives at most {max} seconds (30 days)", max = MAX_TTL_MS / 1000)]
    ExpireTooLong(&'static str),
    /// `PERSIST`: sessions always expire.
    #[error("ERR sessions always expire: PERSIST is not supported (end a session with DEL)")]
    Persist,
    /// A `SCAN` cursor that is not an unsigned integer.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// A negative `WAIT` timeout.
    #[error("ERR timeout is negative")]
    NegativeTimeout,
    /// `HELLO` with a protocol version other than 2 or 3.
    #[error("NOPROTO sorry, this protocol version is not supported.")]
    NoProto,
}

/// At most this much of a name or of the arguments goes into an unknown
/// command's error (Redis's 128).
const QUOTE_LIMIT: usize = 128;

fn unknown(args: &[Bytes]) -> CommandError {
    let name = args.first().map(|name| lossy(name, QUOTE_LIMIT)).unwrap_or_default();
    let mut quoted = String::new();
    for arg in args.iter().skip(1) {
        if quoted.len() >= QUOTE_LIMIT {
            break;
        }
        let room = QUOTE_LIMIT - quoted.len();
        quoted.push_str(&format!("'{}' ", lossy(arg, room)));
    }
    CommandError::Unknown { name, args: quoted }
}

/// At most `limit` bytes of `bytes`, as text (invalid UTF-8 replaced).
fn lossy(bytes: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned()
}

fn integer(arg: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(CommandError::NotInteger)
}

/// A positive amount of `unit` milliseconds as milliseconds, checked
/// against the longest session for the command `name`.
fn ttl(arg: &[u8], unit: u64, name: &'static str) -> Result<u64, CommandError> {
    let amount = integer(arg)?;
    let ms = u64::try_from(amount)
        .ok()
        .filter(|&amount| amount > 0)
        .and_then(|amount| amount.checked_mul(unit))
        .ok_or(CommandError::InvalidExpire(name))?;
    if ms > MAX_TTL_MS {
        return Err(CommandError::ExpireTooLong(name));
    }
    Ok(ms)
}

/// A positive Unix time in `unit` milliseconds, as milliseconds.
fn at(arg: &[u8], unit: u64, name: &'static str) -> Result<u64, CommandError> {
    u64::try_from(integer(arg)?)
        .ok()
        .filter(|&at| at > 0)
        .and_then(|at| at.checked_mul(unit))
        .ok_or(CommandError::InvalidExpire(name))
}

/// The expiry option at `args[0]` (`EX`, `PX`, `EXAT`, `PXAT`; `KEEPTTL`
/// if `keep` allows it) and how many arguments it took; `None` if
/// `args[0]` is no expiry option.
fn expiry_option(args: &[Bytes], keep: bool, name: &'static str) -> Result<Option<(Expiry, usize)>, CommandError> {
    let option = args[0].to_ascii_uppercase();
    let value = || args.get(1).ok_or(CommandError::Syntax);
    Ok(Some(match option.as_slice() {
        b"EX" => (Expiry::In(ttl(value()?, 1000, name)?), 2),
        b"PX" => (Expiry::In(ttl(value()?, 1, name)?), 2),
        b"EXAT" => (Expiry::At(at(value()?, 1000, name)?), 2),
        b"PXAT" => (Expiry::At(at(value()?, 1, name)?), 2),
        b"KEEPTTL" if keep => (Expiry::Keep, 1),
        _ => return Ok(None),
    }))
}

/// Checks that `args` (the name included) has `min` arguments, and at most
/// `max` if given.
fn arity(args: &[Bytes], name: &str, min: usize, max: Option<usize>) -> Result<(), CommandError> {
    if args.len() < min || max.is_some_and(|max| args.len() > max) {
        return Err(CommandError::Arity(name.to_string()));
    }
    Ok(())
}

/// Parses one command (`args[0]` its name, case-insensitive).
pub fn parse(args: &[Bytes]) -> Result<Command, CommandError> {
    let Some(name) = args.first() else {
        return Err(unknown(args));
    };
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    let exact = |n: usize| arity(args, &lower, n, Some(n));
    let at_least = |n: usize| arity(args, &lower, n, None);
    let arg = |i: usize| args[i].clone();
    Ok(match lower.as_str() {
        "ping" => {
            arity(args, &lower, 1, Some(2))?;
            Command::Ping(args.get(1).cloned())
        }
        "echo" => {
            exact(2)?;
            Command::Echo(arg(1))
        }
        "auth" => {
            arity(args, &lower, 2, Some(3))?;
            match args.len() {
                2 => Command::Auth {
                    user: None,
                    password: arg(1),
                },
                _ => Command::Auth {
                    user: Some(arg(1)),
                    password: arg(2),
                },
            }
        }
        "hello" => hello(args)?,
        "select" => {
            exact(2)?;
            Command::Select(integer(&args[1])?)
        }
        "quit" => Command::Quit,
        "client" => client(args)?,
        "info" => Command::Info(
            args[1..]
                .iter()
                .map(|section| String::from_utf8_lossy(section).to_ascii_lowercase())
                .collect(),
        ),
        "command" => match args.get(1).map(|sub| sub.to_ascii_uppercase()).as_deref() {
            None | Some(b"DOCS" | b"INFO" | b"LIST") => Command::CommandDocs,
            Some(b"COUNT") => Command::CommandCount,
            Some(_) => return Err(subcommand("COMMAND", &args[1])),
        },
        "config" => match args.get(1).map(|sub| sub.to_ascii_uppercase()).as_deref() {
            Some(b"GET") => {
                arity(args, "config|get", 3, None)?;
                Command::ConfigGet(args[2..].to_vec())
            }
            Some(_) => return Err(subcommand("CONFIG", &args[1])),
            None => return Err(CommandError::Arity(lower)),
        },
        "dbsize" => {
            exact(1)?;
            Command::DbSize
        }
        "set" => {
            at_least(3)?;
            set(args)?
        }
        "setex" | "psetex" => {
            exact(4)?;
            let (unit, name) = if lower == "setex" {
                (1000, "setex")
            } else {
                (1, "psetex")
            };
            Command::Set(Set {
                key: arg(1),
                value: arg(3),
                expiry: Expiry::In(ttl(&args[2], unit, name)?),
                condition: None,
                get: false,
                owner: None,
            })
        }
        "get" => {
            exact(2)?;
            Command::Get(arg(1))
        }
        "mget" => {
            at_least(2)?;
            Command::MGet(args[1..].to_vec())
        }
        "getex" => {
            at_least(2)?;
            getex(args)?
        }
        "del" | "unlink" => {
            at_least(2)?;
            Command::Del(args[1..].to_vec())
        }
        "exists" => {
            at_least(2)?;
            Command::Exists(args[1..].to_vec())
        }
        "expire" | "pexpire" => {
            exact(3)?;
            let (unit, name) = if lower == "expire" {
                (1000, "expire")
            } else {
                (1, "pexpire")
            };
            Command::Expire {
                key: arg(1),
                ttl_ms: ttl(&args[2], unit, name)?,
            }
        }
        "ttl" | "pttl" => {
            exact(2)?;
            Command::Ttl {
                key: arg(1),
                millis: lower == "pttl",
            }
        }
        "scan" => {
            at_least(2)?;
            scan(args)?
        }
        "keys" => {
            exact(2)?;
            Command::Keys(arg(1))
        }
        "feedmesh.revokeowner" => {
            exact(2)?;
            Command::RevokeOwner(arg(1))
        }
        "feedmesh.owned" => {
            exact(2)?;
            Command::Owned(arg(1))
        }
        "wait" => {
            exact(3)?;
            let peers = usize::try_from(integer(&args[1])?).map_err(|_| CommandError::NotInteger)?;
            let timeout_ms = u64::try_from(integer(&args[2])?).map_err(|_| CommandError::NegativeTimeout)?;
            Command::Wait { peers, timeout_ms }
        }
        _ => return Err(unknown(args)),
    })
}

fn subcommand(command: &'static str, sub: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand {
        command,
        sub: lossy(sub, QUOTE_LIMIT),
    }
}

fn client(args: &[Bytes]) -> Result<Command, CommandError> {
    let Some(sub) = args.get(1) else {
        return Err(CommandError::Arity("client".into()));
    };
    let upper = sub.to_ascii_uppercase();
    let name = format!("client|{}", String::from_utf8_lossy(&upper).to_ascii_lowercase());
    Ok(match upper.as_slice() {
        b"SETNAME" => {
            arity(args, &name, 3, Some(3))?;
            Command::ClientSetName(args[2].clone())
        }
        b"GETNAME" => {
            arity(args, &name, 2, Some(2))?;
            Command::ClientGetName
        }
        b"ID" => {
            arity(args, &name, 2, Some(2))?;
            Command::ClientId
        }
        b"SETINFO" => {
            arity(args, &name, 4, Some(4))?;
            Command::ClientSetInfo
        }
        _ => return Err(subcommand("CLIENT", sub)),
    })
}

fn hello(args: &[Bytes]) -> Result<Command, CommandError> {
    let protocol = match args.get(1).map(|v| integer(v)).transpose()? {
        None => None,
        Some(2) => Some(Protocol::Resp2),
        Some(3) => Some(Protocol::Resp3),
        Some(_) => return Err(CommandError::NoProto),
    };
    let (mut auth, mut name) = (None, None);
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                auth = Some((args[i + 1].clone(), args[i + 2].clone()));
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(Command::Hello { protocol, auth, name })
}

fn set(args: &[Bytes]) -> Result<Command, CommandError> {
    let mut set = Set {
        key: args[1].clone(),
        value: args[2].clone(),
        expiry: Expiry::Default,
        condition: None,
        get: false,
        owner: None,
    };
    let mut i = 3;
    while i < args.len() {
        if let Some((expiry, used)) = expiry_option(&args[i..], true, "set")? {
            if set.expiry != Expiry::Default {
                return Err(CommandError::Syntax);
            }
            set.expiry = expiry;
            i += used;
            continue;
        }
        match args[i].to_ascii_uppercase().as_slice() {
            b"NX" | b"XX" if set.condition.is_some() => return Err(CommandError::Syntax),
            b"NX" => set.condition = Some(Condition::Absent),
            b"XX" => set.condition = Some(Condition::Live),
            b"GET" if !set.get => set.get = true,
            b"OWNER" if set.owner.is_none() && i + 1 < args.len() => {
                i += 1;
                set.owner = Some(args[i].clone());
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    Ok(Command::Set(set))
}

fn getex(args: &[Bytes]) -> Result<Command, CommandError> {
    let key = args[1].clone();
    let rest = &args[2..];
    if rest.is_empty() {
        return Ok(Command::GetEx { key, expiry: None });
    }
    if rest[0].eq_ignore_ascii_case(b"PERSIST") {
        return Err(if rest.len() == 1 {
            CommandError::Persist
        } else {
            CommandError::Syntax
        });
    }
    match expiry_option(rest, false, "getex")? {
        Some((expiry, used)) if used == rest.len() => Ok(Command::GetEx {
            key,
            expiry: Some(expiry),
        }),
        _ => Err(CommandError::Syntax),
    }
}

fn scan(args: &[Bytes]) -> Result<Command, CommandError> {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or(CommandError::InvalidCursor)?;
    let (mut pattern, mut count, mut none) = (None, 10, false);
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Err(CommandError::Syntax);
        };
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(value.clone()),
            b"COUNT" => {
                let n = integer(value)?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = usize::try_from(n).unwrap_or(MAX_SCAN_COUNT).min(MAX_SCAN_COUNT);
            }
            b"TYPE" => none = !value.eq_ignore_ascii_case(b"string"),
            _ => return Err(CommandError::Syntax),
        }
        i += 2;
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        none,
    })
}

impl Command {
    /// Whether the command may run alongside the writes received just
    /// before and after it on its connection, so that they join one group
    /// commit: a `SET` that reads nothing (no `GET`). Every other command
    /// runs alone, once those before it have answered (spec/RESP.md §5).
    pub fn runs_concurrently(&self) -> bool {
        matches!(self, Command::Set(set) if !set.get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|word| Bytes::from(word.to_string())).collect()
    }

    fn parsed(line: &str) -> Result<Command, CommandError> {
        parse(&args(line))
    }

    #[test]
    fn set_options() {
        let Ok(Command::Set(set)) = parsed("set k v EX 10 nx GET OWNER alice") else {
            panic!("set parses");
        };
        assert_eq!(set.expiry, Expiry::In(10_000));
        assert_eq!(set.condition, Some(Condition::Absent));
        assert!(set.get);
        assert_eq!(set.owner.as_deref(), Some(&b"alice"[..]));
        assert_eq!(parsed("SET k v NX XX"), Err(CommandError::Syntax));
        assert_eq!(parsed("SET k v EX 1 PX 1"), Err(CommandError::Syntax));
        assert_eq!(parsed("SET k v EX 0"), Err(CommandError::InvalidExpire("set")));
        assert_eq!(parsed("SET k v EX x"), Err(CommandError::NotInteger));
        assert_eq!(parsed("SET k v EX 2592001"), Err(CommandError::ExpireTooLong("set")));
        assert_eq!(parsed("SET k"), Err(CommandError::Arity("set".into())));
        assert_eq!(parsed("GETEX k PERSIST"), Err(CommandError::Persist));
    }

    #[test]
    fn unknown_command_is_worded_as_redis_words_it() {
        assert_eq!(
            parsed("FOO a b").map_err(|e| e.to_string()),
            Err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ".to_string())
        );
        assert_eq!(
            parsed("foo").map_err(|e| e.to_string()),
            Err("ERR unknown command 'foo', with args beginning with: ".to_string())
        );
    }
}
