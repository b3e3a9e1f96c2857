//! Command execution: a parsed [`Command`] of one client against the
//! node's session store, into its reply (spec/RESP.md §3). Reads answer at
//! once; writes answer once durable on this node, as a future the
//! connection polls alongside the other writes of its pipeline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_protocol::bytes::Bytes;
use tokio::sync::Semaphore;

use super::codec::{Protocol, Reply, array, bulk, error, integer, map, nil, ok, simple};
use super::command::{COMMANDS, Command, CommandError, Condition, Expiry, Set};
use super::glob::Glob;
use super::{CONFIG, MAX_WAIT, REDIS_VERSION, keyspace, value};
use crate::node::AckTimeout;
use crate::sessions::{Refusal, SessionError, Sessions, Written};
use crate::token::ApiToken;
use crate::view::{MAX_TTL_MS, Op};

/// What every connection of one endpoint shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The session store served (and its node).
    pub(crate) sessions: Sessions,
    /// The token `AUTH` must give, if any.
    pub(crate) token: Option<ApiToken>,
    /// When the endpoint started (`INFO`'s uptime).
    pub(crate) started: Instant,
    /// The port served (`INFO`'s `tcp_port`).
    pub(crate) port: u16,
    /// The connection slots.
    pub(crate) slots: Arc<Semaphore>,
    /// How many there are.
    pub(crate) max_connections: usize,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(sessions: Sessions, token: Option<ApiToken>, port: u16, max_connections: usize) -> Shared {
        Shared {
            sessions,
            token,
            started: Instant::now(),
            port,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            next_id: AtomicU64::new(1),
        }
    }
}

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Client {
    /// `CLIENT ID`.
    pub(crate) id: u64,
    /// Whether `AUTH` succeeded (or no token is needed).
    pub(crate) authenticated: bool,
    /// `CLIENT SETNAME`.
    pub(crate) name: Option<Bytes>,
    /// Set by `QUIT`: answer, then close.
    pub(crate) closing: bool,
    /// Set by `HELLO`: how the replies are encoded.
    pub(crate) protocol: Protocol,
}

impl Client {
    pub(crate) fn new(shared: &Shared) -> Client {
        Client {
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            authenticated: shared.token.is_none(),
            name: None,
            closing: false,
            protocol: Protocol::Resp2,
        }
    }
}

/// A reply, and the write it answers for (for `WAIT`).
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) reply: Reply,
    pub(crate) written: Option<Written>,
}

impl From<Reply> for Done {
    fn from(reply: Reply) -> Done {
        Done { reply, written: None }
    }
}

/// A command still running (a write, or `WAIT`).
pub(crate) type Running = Pin<Box<dyn Future<Output = Done> + Send>>;

/// What executing a command gave.
pub(crate) enum Step {
    /// The reply, at once.
    Now(Reply),
    /// The reply, once this completes.
    Later(Running),
}

impl From<Reply> for Step {
    fn from(reply: Reply) -> Step {
        Step::Now(reply)
    }
}

impl From<CommandError> for Step {
    fn from(failure: CommandError) -> Step {
        Step::Now(error(failure.to_string()))
    }
}

fn later(future: impl Future<Output = Done> + Send + 'static) -> Step {
    Step::Later(Box::pin(future))
}

/// The reply to a failed session operation (spec/RESP.md §3.3).
fn session_error(failure: SessionError) -> Reply {
    match failure {
        SessionError::Refused(Refusal::Revoked) => error(format!("REVOKED {}", Refusal::Revoked)),
        SessionError::Refused(Refusal::NotMember) => error(format!("NOTMEMBER {}", Refusal::NotMember)),
        other => error(format!("ERR {other}")),
    }
}

/// The reply to a write that completed: `reply` and where it landed, or
/// the error.
fn written(result: Result<Written, SessionError>, reply: Reply) -> Done {
    match result {
        Ok(written) => Done {
            reply,
            written: Some(written),
        },
        Err(failure) => session_error(failure).into(),
    }
}

/// The live value of `key` as a reply: a bulk string, or nil.
fn value_of(sessions: &Sessions, key: &[u8]) -> Reply {
    match sessions.get_raw(key) {
        None => nil(),
        Some(session) => match value::read(&session.value) {
            Ok(bytes) => bulk(bytes),
            Err(message) => error(format!("ERR {message}")),
        },
    }
}

fn milliseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The ttl of an expiry given at local time `now_ms`, for the command
/// `name`; `KEEPTTL` keeps what `key` has left.
fn ttl_of(
    expiry: Expiry,
    sessions: &Sessions,
    key: &[u8],
    now_ms: u64,
    name: &'static str,
) -> Result<u64, CommandError> {
    // The longest a session may live in this network (spec/SESSIONS.md §2.6).
    let lifetime = sessions.window().lifetime_ms();
    let ms = match expiry {
        Expiry::Default => lifetime,
        Expiry::In(ms) => ms,
        Expiry::At(at) => at
            .checked_sub(now_ms)
            .filter(|&ms| ms > 0)
            .ok_or(CommandError::InvalidExpire(name))?,
        Expiry::Keep => sessions
            .ttl(key)
            .map(milliseconds)
            .filter(|&ms| ms > 0)
            .unwrap_or(lifetime),
    };
    if ms > MAX_TTL_MS {
        return Err(CommandError::ExpireTooLong(name));
    }
    Ok(ms)
}

/// Runs `command` for `client`; `last` is the latest write of the client
/// that completed (for `WAIT`).
pub(crate) fn execute(shared: &Shared, client: &mut Client, last: Option<Written>, command: Command) -> Step {
    if !client.authenticated && !matches!(command, Command::Auth { .. } | Command::Hello { .. } | Command::Quit) {
        return error("NOAUTH Authentication required.").into();
    }
    let sessions = shared.sessions.clone();
    match command {
        Command::Ping(None) => simple("PONG").into(),
        Command::Ping(Some(message)) | Command::Echo(message) => bulk(message).into(),
        Command::Auth { user, password } => auth(shared, client, user.as_deref(), &password).into(),
        Command::Hello {
            protocol,
            auth: login,
            name,
        } => hello(shared, client, protocol, login, name).into(),
        Command::Select(0) => ok().into(),
        Command::Select(_) => error("ERR DB index is out of range").into(),
        Command::Quit => {
            client.closing = true;
            ok().into()
        }
        Command::ClientSetName(name) => {
            client.name = (!name.is_empty()).then_some(name);
            ok().into()
        }
        Command::ClientGetName => client.name.clone().map_or_else(nil, bulk).into(),
        Command::ClientId => integer(client.id).into(),
        Command::ClientSetInfo => ok().into(),
        Command::Info(sections) => bulk(info(shared, &sections)).into(),
        Command::CommandDocs => array(Vec::new()).into(),
        Command::ConfigGet(patterns) => config(&patterns).into(),
        Command::CommandCount => integer(COMMANDS.len()).into(),
        Command::DbSize => integer(keyspace::count(&sessions)).into(),
        Command::Set(set) => self::set(shared, sessions, set),
        Command::Get(key) => value_of(&sessions, &key).into(),
        Command::MGet(keys) => array(keys.iter().map(|key| value_of(&sessions, key)).collect()).into(),
        Command::GetEx { key, expiry } => getex(shared, sessions, key, expiry),
        Command::Del(keys) => del(sessions, keys),
        Command::Exists(keys) => integer(keys.iter().filter(|key| sessions.get_raw(key).is_some()).count()).into(),
        Command::Expire { key, ttl_ms } => {
            if sessions.get_raw(&key).is_none() {
                return integer(0).into();
            }
            later(async move { written(sessions.touch(&key, Duration::from_millis(ttl_ms)).await, integer(1)) })
        }
        Command::Ttl { key, millis } => integer(match sessions.ttl(&key).map(milliseconds) {
            None => -2,
            Some(ms) if millis => i64::try_from(ms).unwrap_or(i64::MAX),
            Some(ms) => i64::try_from(ms.saturating_add(500) / 1000).unwrap_or(i64::MAX),
        })
        .into(),
        Command::Scan {
            cursor,
            pattern,
            count,
            none,
        } => {
            let glob = Glob::new(pattern.as_deref().unwrap_or(b"*"));
            let (next, keys) = if none {
                (0, Vec::new())
            } else {
                keyspace::scan(&sessions, cursor, &glob, count)
            };
            array(vec![
                bulk(next.to_string()),
                array(keys.into_iter().map(bulk).collect()),
            ])
            .into()
        }
        Command::Keys(pattern) => match keyspace::keys(&sessions, &Glob::new(&pattern)) {
            Some(keys) => array(keys.into_iter().map(bulk).collect()).into(),
            None => error(format!(
                "ERR KEYS would answer more than {} keys: use SCAN",
                keyspace::MAX_KEYS
            ))
            .into(),
        },
        Command::RevokeOwner(owner) => later(async move {
            match sessions.revoke_owner(&owner).await {
                Ok(revoked) => Done {
                    reply: integer(revoked.sessions),
                    written: Some(revoked.written),
                },
                Err(failure) => session_error(failure).into(),
            }
        }),
        Command::Owned(owner) => {
            let keys = sessions.owned_by(&owner).into_iter().map(|(key, _)| bulk(key));
            array(keys.collect()).into()
        }
        Command::Wait { peers, timeout_ms } => wait(shared, last, peers, timeout_ms),
    }
}

fn auth(shared: &Shared, client: &mut Client, user: Option<&[u8]>, password: &[u8]) -> Reply {
    let Some(token) = &shared.token else {
        return error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your \
             configuration is correct?",
        );
    };
    if user.is_none_or(|user| user == b"default") && token.matches(password) {
        client.authenticated = true;
        return ok();
    }
    error("WRONGPASS invalid username-password pair or user is disabled.")
}

fn hello(
    shared: &Shared,
    client: &mut Client,
    protocol: Option<Protocol>,
    login: Option<(Bytes, Bytes)>,
    name: Option<Bytes>,
) -> Reply {
    if let Some((user, password)) = login {
        let answer = auth(shared, client, Some(&user), &password);
        if !client.authenticated {
            return answer;
        }
    }
    if !client.authenticated {
        return error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH \
             <user> <pass> option can be used to authenticate the client and select the RESP protocol version at \
             the same time",
        );
    }
    if let Some(name) = name {
        client.name = Some(name);
    }
    if let Some(protocol) = protocol {
        client.protocol = protocol;
    }
    let text = |s: &'static str| bulk(Bytes::from_static(s.as_bytes()));
    let proto = match client.protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    map(vec![
        (text("server"), text("redis")),
        (text("version"), text(REDIS_VERSION)),
        (text("proto"), integer(proto)),
        (text("id"), integer(client.id)),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), array(Vec::new())),
    ])
}

fn set(shared: &Shared, sessions: Sessions, set: Set) -> Step {
    let ttl_ms = match ttl_of(set.expiry, &sessions, &set.key, shared.sessions.node().now_ms(), "set") {
        Ok(ms) => ms,
        Err(failure) => return failure.into(),
    };
    let owner = match set.owner.map(|owner| String::from_utf8(owner.to_vec())).transpose() {
        Ok(owner) => owner,
        Err(_) => return error("ERR the OWNER of a session must be UTF-8").into(),
    };
    // Read now: `GET` runs alone, after the writes before it answered.
    let before = set.get.then(|| value_of(&sessions, &set.key));
    later(async move {
        let (key, ttl, owner) = (&set.key, Duration::from_millis(ttl_ms), owner.as_deref());
        let stored = value::Written::of(&set.value);
        let result = match set.condition {
            None => sessions.put(key, &stored, ttl, owner).await,
            Some(Condition::Absent) => sessions.create(key, &stored, ttl, owner).await,
            Some(Condition::Live) => sessions.update(key, &stored, ttl, owner).await,
        };
        match result {
            Err(SessionError::Refused(Refusal::Exists | Refusal::NotLive)) => before.unwrap_or_else(nil).into(),
            result => written(result, before.unwrap_or_else(ok)),
        }
    })
}

fn getex(shared: &Shared, sessions: Sessions, key: Bytes, expiry: Option<Expiry>) -> Step {
    let reply = value_of(&sessions, &key);
    let Some(expiry) = expiry.filter(|_| reply != nil()) else {
        return reply.into();
    };
    let ttl_ms = match ttl_of(expiry, &sessions, &key, shared.sessions.node().now_ms(), "getex") {
        Ok(ms) => ms,
        Err(failure) => return failure.into(),
    };
    later(async move { written(sessions.touch(&key, Duration::from_millis(ttl_ms)).await, reply) })
}

/// `DEL`: revokes every key named, even one this node does not hold (its
/// put may still be on its way), except those already revoked; answers how
/// many were live here.
fn del(sessions: Sessions, mut keys: Vec<Bytes>) -> Step {
    keys.sort_unstable();
    keys.dedup();
    let live = keys.iter().filter(|key| sessions.get_raw(key).is_some()).count();
    let ops: Vec<Op> = keys
        .iter()
        .filter(|key| !sessions.is_revoked(key))
        .map(|key| Op::Revoke { key: key.to_vec() })
        .filter(|op| op.check().is_ok())
        .collect();
    if ops.is_empty() {
        return integer(0).into();
    }
    later(async move { written(sessions.write(ops).await, integer(live)) })
}

/// `WAIT`: how many connected peers hold the client's latest write (all of
/// them, before its first).
fn wait(shared: &Shared, last: Option<Written>, peers: usize, timeout_ms: u64) -> Step {
    let Some(last) = last else {
        return integer(shared.sessions.node().peers().len()).into();
    };
    let timeout = match Duration::from_millis(timeout_ms) {
        Duration::ZERO => MAX_WAIT,
        timeout => timeout.min(MAX_WAIT),
    };
    let sessions = shared.sessions.clone();
    later(async move {
        match sessions.wait_for_acks(&last, peers, timeout).await {
            Ok(acked) | Err(AckTimeout { acked, .. }) => integer(acked).into(),
        }
    })
}

/// `CONFIG GET`: the parameters of [`CONFIG`] that a pattern matches, as
/// name, value pairs.
fn config(patterns: &[Bytes]) -> Reply {
    let globs: Vec<Glob> = patterns
        .iter()
        .map(|pattern| Glob::new(&pattern.to_ascii_lowercase()))
        .collect();
    let pairs = CONFIG
        .iter()
        .filter(|(name, _)| globs.iter().any(|glob| glob.matches(name.as_bytes())))
        .map(|&(name, value)| {
            (
                bulk(Bytes::from_static(name.as_bytes())),
                bulk(Bytes::from_static(value.as_bytes())),
            )
        });
    map(pairs.collect())
}

/// The text of `INFO` for `sections` (none, `all`, `default`, `everything`:
/// every section).
fn info(shared: &Shared, sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
    let wanted = |name: &str| all || sections.iter().any(|s| s == name);
    let mut text = String::new();
    let uptime = shared.started.elapsed().as_secs();
    if wanted("server") {
        text.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nfeedmesh_version:{}\r\n\
             feedmesh_id:{}\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\n\
             uptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            shared.sessions.node().id(),
            std::env::consts::OS,
            usize::BITS,
            std::process::id(),
            shared.port,
            uptime / 86_400,
        ));
    }
    if wanted("clients") {
        let max = shared.max_connections;
        let connected = max - shared.slots.available_permits();
        text.push_str(&format!(
            "# Clients\r\nconnected_clients:{connected}\r\nmaxclients:{max}\r\n\r\n"
        ));
    }
    if wanted("replication") {
        text.push_str(&format!(
            "# Replication\r\nrole:master\r\nconnected_slaves:{}\r\n\r\n",
            shared.sessions.node().peers().len()
        ));
    }
    if wanted("keyspace") {
        let keys = keyspace::count(&shared.sessions);
        text.push_str("# Keyspace\r\n");
        if keys > 0 {
            text.push_str(&format!("db0:keys={keys},expires={keys},avg_ttl=0\r\n"));
        }
        text.push_str("\r\n");
    }
    text
}
