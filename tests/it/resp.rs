//! The Redis protocol endpoint (src/resp, spec/RESP.md) driven by a real
//! Redis client (the `redis` crate), raw sockets and, where installed,
//! `redis-cli`: a 3-node mesh with pipelined writes, `WAIT`, a login read
//! on another node and a logout that holds everywhere; conditional writes,
//! expiry, `SCAN`/`KEYS`, error texts, the bounds, `AUTH`, and values
//! across the HTTP, Rust and RESP doors.

use crate::common::api::serve_api;
use crate::common::http;
use crate::common::nodes;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use feedmesh::net::NetworkKey;
use feedmesh::resp::{RespError, RespServer};
use feedmesh::sessions::Sessions;
use feedmesh::token::ApiToken;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value, cmd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any wait of these tests may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Serves the Redis protocol of `sessions` on loopback until the test ends.
async fn serve_resp(sessions: &Sessions, token: Option<ApiToken>) -> SocketAddr {
    let server = RespServer::bind(nodes::localhost(), sessions.clone(), token)
        .await
        .expect("bind the Redis protocol endpoint");
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// A client connection to `addr`.
async fn connect(addr: SocketAddr) -> MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(DEADLINE))
        .set_response_timeout(Some(DEADLINE));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

/// The error line of a failed command, as the server sent it (`CODE detail`).
fn line(error: RedisError) -> String {
    match (error.code(), error.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => error.to_string(),
    }
}

/// Runs `args` on `con`; `Err` holds the error line.
async fn run<T: redis::FromRedisValue>(con: &mut MultiplexedConnection, args: &[&str]) -> Result<T, String> {
    let mut command = cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query_async(con).await.map_err(line)
}

/// [`run`], which must succeed.
async fn ok<T: redis::FromRedisValue>(con: &mut MultiplexedConnection, args: &[&str]) -> T {
    match run(con, args).await {
        Ok(value) => value,
        Err(error) => panic!("{args:?} failed: {error}"),
    }
}

/// Polls `check` until it holds (bounded by [`DEADLINE`]).
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `request` on a new raw connection and reads until `done` holds of
/// what came back, or the server closes; returns what came back and
/// whether the server closed.
async fn exchange(addr: SocketAddr, request: &[u8], done: impl Fn(&[u8]) -> bool) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let closed = loop {
        if done(&answer) {
            break false;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer in {DEADLINE:?}: {:?}", String::from_utf8_lossy(&answer)),
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// Whether `answer` holds `n` CRLF-terminated lines.
fn lines(n: usize) -> impl Fn(&[u8]) -> bool {
    move |answer| answer.windows(2).filter(|w| w == b"\r\n").count() >= n
}

/// One node with its Redis protocol endpoint.
async fn single(token: Option<ApiToken>) -> (Sessions, SocketAddr, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let node = nodes::start_sessions(&nodes::make_dir(tmp.path(), "a", &key), vec![]).await;
    let addr = serve_resp(&node, token).await;
    (node, addr, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_mesh_over_redis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let a = nodes::start_sessions(&nodes::make_dir(tmp.path(), "a", &key), vec![]).await;
    let b = nodes::start_sessions(&nodes::make_dir(tmp.path(), "b", &key), vec![nodes::addr(a.node())]).await;
    let c = nodes::start_sessions(
        &nodes::make_dir(tmp.path(), "c", &key),
        vec![nodes::addr(a.node()), nodes::addr(b.node())],
    )
    .await;
    let mesh = [a.clone(), b.clone(), c.clone()];
    eventually("every node has two peers", || async {
        mesh.iter().all(|node| node.node().peers().len() == 2)
    })
    .await;
    let mut cons = Vec::new();
    for node in &mesh {
        cons.push(connect(serve_resp(node, None).await).await);
    }

    // Before any write, WAIT answers the connected peers.
    assert_eq!(ok::<i64>(&mut cons[0], &["WAIT", "2", "5000"]).await, 2);

    // A pipeline of writes: answered in order, read back, in few entries.
    let before = a
        .node()
        .clock()
        .expect("clock")
        .get(&a.node().id())
        .copied()
        .unwrap_or(0);
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(format!("v{i}"));
    }
    pipe.cmd("GET").arg("p199");
    let mut answers: Vec<Value> = pipe.query_async(&mut cons[0]).await.expect("pipeline");
    assert_eq!(answers.pop(), Some(Value::BulkString(b"v199".to_vec())));
    assert!(answers.iter().all(|answer| *answer == Value::Okay), "{answers:?}");
    let entries = a.node().clock().expect("clock")[&a.node().id()] - before;
    assert!(
        entries < 200,
        "200 pipelined SETs took {entries} entries: no group commit"
    );
    let keys: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let mut mget = cmd("MGET");
    mget.arg(&keys);
    let values: Vec<String> = mget.query_async(&mut cons[0]).await.expect("mget");
    assert_eq!(values, (0..200).map(|i| format!("v{i}")).collect::<Vec<_>>());
    assert_eq!(ok::<i64>(&mut cons[0], &["WAIT", "2", "5000"]).await, 2);

    // A login on A, read on B.
    let _: () = ok(&mut cons[0], &["SET", "sid-1", "alice", "EX", "3600", "OWNER", "alice"]).await;
    assert_eq!(ok::<i64>(&mut cons[0], &["WAIT", "2", "5000"]).await, 2);
    assert_eq!(
        ok::<Option<String>>(&mut cons[1], &["GET", "sid-1"]).await.as_deref(),
        Some("alice")
    );
    let ttl: i64 = ok(&mut cons[1], &["TTL", "sid-1"]).await;
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    let info: String = ok(&mut cons[1], &["INFO", "replication"]).await;
    assert!(
        info.contains("role:master") && info.contains("connected_slaves:2"),
        "{info}"
    );

    // A logout on C holds everywhere, for good.
    let c_has = || async { c.get_raw("sid-1").is_some() };
    eventually("C holds the login", c_has).await;
    assert_eq!(ok::<i64>(&mut cons[2], &["DEL", "sid-1", "never-put"]).await, 1);
    assert_eq!(ok::<i64>(&mut cons[2], &["WAIT", "2", "5000"]).await, 2);
    for con in &mut cons {
        assert_eq!(ok::<Option<String>>(con, &["GET", "sid-1"]).await, None);
        assert_eq!(
            run::<()>(con, &["SET", "sid-1", "again"]).await,
            Err("REVOKED the session key is revoked".to_string())
        );
        assert_eq!(ok::<i64>(con, &["DEL", "sid-1"]).await, 0);
    }
    // The key never put here is revoked too: a late login cannot land.
    assert!(a.is_revoked("never-put") || c.is_revoked("never-put"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_and_expiry() {
    let (_node, addr, _tmp) = single(None).await;
    let mut con = connect(addr).await;
    // NX creates only, XX updates only; a refusal is nil.
    assert_eq!(ok::<Option<String>>(&mut con, &["SET", "k", "1", "XX"]).await, None);
    assert_eq!(
        ok::<Option<String>>(&mut con, &["SET", "k", "1", "NX"])
            .await
            .as_deref(),
        Some("OK")
    );
    assert_eq!(ok::<Option<String>>(&mut con, &["SET", "k", "2", "NX"]).await, None);
    assert_eq!(
        ok::<Option<String>>(&mut con, &["SET", "k", "3", "XX", "GET"])
            .await
            .as_deref(),
        Some("1")
    );
    assert_eq!(ok::<String>(&mut con, &["GET", "k"]).await, "3");
    // No expiry given: the network's session lifetime, 24 hours by default.
    assert_eq!(ok::<i64>(&mut con, &["TTL", "k"]).await, 86_400);
    // TTL and PTTL; -2 when absent, never -1.
    let _: () = ok(&mut con, &["SET", "e", "v", "PX", "60000"]).await;
    let pttl: i64 = ok(&mut con, &["PTTL", "e"]).await;
    assert!((59_000..=60_000).contains(&pttl), "{pttl}");
    assert_eq!(ok::<i64>(&mut con, &["TTL", "absent"]).await, -2);
    assert_eq!(ok::<i64>(&mut con, &["PTTL", "absent"]).await, -2);
    // EXPIRE extends a live session, never shortens one, and is 0 when absent.
    assert_eq!(ok::<i64>(&mut con, &["EXPIRE", "e", "120"]).await, 1);
    assert!(ok::<i64>(&mut con, &["TTL", "e"]).await > 110);
    assert_eq!(ok::<i64>(&mut con, &["PEXPIRE", "e", "10"]).await, 1);
    assert!(ok::<i64>(&mut con, &["TTL", "e"]).await > 110);
    assert_eq!(ok::<i64>(&mut con, &["EXPIRE", "absent", "10"]).await, 0);
    // KEEPTTL keeps what is left; SETEX, PSETEX; GETEX reads and extends.
    let _: () = ok(&mut con, &["SET", "e", "w", "KEEPTTL"]).await;
    assert!((110..=120).contains(&ok::<i64>(&mut con, &["TTL", "e"]).await));
    let _: () = ok(&mut con, &["SETEX", "s", "100", "x"]).await;
    let _: () = ok(&mut con, &["PSETEX", "ps", "100000", "y"]).await;
    assert_eq!(
        ok::<Vec<Option<String>>>(&mut con, &["MGET", "s", "ps", "absent"]).await,
        [Some("x".into()), Some("y".into()), None]
    );
    assert_eq!(ok::<String>(&mut con, &["GETEX", "s", "EX", "500"]).await, "x");
    assert!(ok::<i64>(&mut con, &["TTL", "s"]).await > 400);
    assert_eq!(
        ok::<Option<String>>(&mut con, &["GETEX", "absent", "EX", "5"]).await,
        None
    );
    assert_eq!(
        run::<()>(&mut con, &["GETEX", "s", "PERSIST"]).await,
        Err("ERR sessions always expire: PERSIST is not supported (end a session with DEL)".into())
    );
    assert_eq!(ok::<i64>(&mut con, &["EXISTS", "s", "ps", "absent", "s"]).await, 3);
    // A short session expires.
    let _: () = ok(&mut con, &["SET", "short", "v", "PX", "50"]).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(ok::<Option<String>>(&mut con, &["GET", "short"]).await, None);
    // The limits of an expiry.
    assert_eq!(
        run::<()>(&mut con, &["SET", "k", "v", "EX", "0"]).await,
        Err("ERR invalid expire time in 'set' command".into())
    );
    assert!(run::<()>(&mut con, &["SET", "k", "v", "EX", "2592001"]).await.is_err());
    // FEEDMESH.REVOKEOWNER logs a user out everywhere.
    let _: () = ok(&mut con, &["SET", "o1", "v", "OWNER", "bob"]).await;
    let _: () = ok(&mut con, &["SET", "o2", "v", "OWNER", "bob"]).await;
    assert_eq!(ok::<i64>(&mut con, &["FEEDMESH.REVOKEOWNER", "bob"]).await, 2);
    assert_eq!(ok::<i64>(&mut con, &["EXISTS", "o1", "o2"]).await, 0);
    // In one pipeline: a second SET of a key wins, SET NX after a SET of its
    // key is refused, a SET after a DEL of its key is refused.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    pipe.cmd("SET").arg("q").arg("1");
    pipe.cmd("SET").arg("q").arg("2");
    pipe.cmd("SET").arg("q").arg("3").arg("NX");
    pipe.cmd("GET").arg("q");
    pipe.cmd("DEL").arg("q");
    pipe.cmd("SET").arg("q").arg("4");
    let answers: Vec<redis::RedisResult<Value>> = pipe.query_async(&mut con).await.expect("pipeline");
    let answers: Vec<Result<Value, String>> = answers.into_iter().map(|a| a.map_err(line)).collect();
    assert_eq!(
        answers,
        [
            Ok(Value::Okay),
            Ok(Value::Okay),
            Ok(Value::Nil),
            Ok(Value::BulkString(b"2".to_vec())),
            Ok(Value::Int(1)),
            Err("REVOKED the session key is revoked".into()),
        ]
    );
    // WAIT with no peer to hold the write: 0 once the timeout has passed.
    let started = Instant::now();
    assert_eq!(ok::<i64>(&mut con, &["WAIT", "1", "100"]).await, 0);
    assert!(started.elapsed() >= Duration::from_millis(100));
    // The connection commands.
    assert_eq!(ok::<String>(&mut con, &["PING"]).await, "PONG");
    assert_eq!(ok::<String>(&mut con, &["ECHO", "hi"]).await, "hi");
    let _: () = ok(&mut con, &["SELECT", "0"]).await;
    assert_eq!(
        run::<()>(&mut con, &["SELECT", "1"]).await,
        Err("ERR DB index is out of range".into())
    );
    let _: () = ok(&mut con, &["CLIENT", "SETNAME", "me"]).await;
    assert_eq!(ok::<String>(&mut con, &["CLIENT", "GETNAME"]).await, "me");
    let config: Vec<String> = ok(&mut con, &["CONFIG", "GET", "save"]).await;
    assert_eq!(config, ["save", ""]);
    let info: String = ok(&mut con, &["INFO"]).await;
    assert!(
        info.contains("redis_version:7.2.0") && info.contains("db0:keys="),
        "{info}"
    );
    assert!(ok::<i64>(&mut con, &["DBSIZE"]).await >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_keys_match() {
    let (_node, addr, _tmp) = single(None).await;
    let mut con = connect(addr).await;
    let mut pipe = redis::pipe();
    for i in 0..40 {
        pipe.cmd("SET").arg(format!("user:{i}")).arg("v").ignore();
    }
    pipe.cmd("SET").arg("other").arg("v").ignore();
    let _: () = pipe.query_async(&mut con).await.expect("pipeline");
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, keys): (String, Vec<String>) =
            ok(&mut con, &["SCAN", &cursor, "MATCH", "user:*", "COUNT", "7"]).await;
        assert!(keys.len() <= 7);
        seen.extend(keys);
        calls += 1;
        assert!(calls < 100, "the scan does not end");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    seen.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("user:{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let keys: Vec<String> = ok(&mut con, &["KEYS", "user:1?"]).await;
    assert_eq!(keys, (10..20).map(|i| format!("user:{i}")).collect::<Vec<_>>());
    assert_eq!(ok::<Vec<String>>(&mut con, &["KEYS", "oth[a-f]r"]).await, ["other"]);
    let (next, keys): (String, Vec<String>) = ok(&mut con, &["SCAN", "0", "TYPE", "hash"]).await;
    assert_eq!((next.as_str(), keys.len()), ("0", 0));
    assert_eq!(
        run::<()>(&mut con, &["SCAN", "x"]).await,
        Err("ERR invalid cursor".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_texts_and_bounds() {
    let (_node, addr, _tmp) = single(None).await;
    let (answer, _) = exchange(addr, b"*3\r\n$7\r\nFLUSHDB\r\n$1\r\na\r\n$1\r\nb\r\n", lines(1)).await;
    assert_eq!(
        answer,
        "-ERR unknown command 'FLUSHDB', with args beginning with: 'a' 'b' \r\n"
    );
    let (answer, _) = exchange(addr, b"*1\r\n$3\r\nGET\r\n", lines(1)).await;
    assert_eq!(answer, "-ERR wrong number of arguments for 'get' command\r\n");
    // Inline commands, as typed into telnet.
    let (answer, _) = exchange(addr, b"PING\r\nECHO hi\r\n", lines(3)).await;
    assert_eq!(answer, "+PONG\r\n$2\r\nhi\r\n");
    // More commands at once than a connection keeps replies pending: all
    // answered, in order.
    let many: Vec<u8> = (0..3000).flat_map(|i| format!("ECHO {i}\r\n").into_bytes()).collect();
    let (answer, _) = exchange(addr, &many, lines(6000)).await;
    let expected: String = (0..3000)
        .map(|i| format!("${}\r\n{i}\r\n", i.to_string().len()))
        .collect();
    assert_eq!(answer, expected);

    // An oversized bulk length: an error, and the connection closes...
    let (answer, closed) = exchange(addr, b"*2\r\n$3\r\nGET\r\n$2000000000\r\n", |_| false).await;
    assert!(
        answer.starts_with("-ERR Protocol error: invalid bulk length"),
        "{answer}"
    );
    assert!(closed);
    // ... as for too many arguments, a nested array, or an endless inline line.
    let (answer, closed) = exchange(addr, b"*100000\r\n", |_| false).await;
    assert!(
        answer.starts_with("-ERR Protocol error: invalid multibulk length"),
        "{answer}"
    );
    assert!(closed);
    let (answer, closed) = exchange(addr, b"*1\r\n*1\r\n*1\r\n", |_| false).await;
    assert_eq!(answer, "-ERR Protocol error: expected '$', got '*'\r\n");
    assert!(closed);
    let (answer, closed) = exchange(addr, &vec![b'x'; 70_000], |_| false).await;
    assert_eq!(answer, "-ERR Protocol error: too big inline request\r\n");
    assert!(closed);
    // A value over the limit of a session is an error, not a protocol error.
    let mut con = connect(addr).await;
    let big = "x".repeat(70_000);
    let refused = run::<()>(&mut con, &["SET", "big", &big]).await.expect_err("too big");
    assert!(refused.starts_with("ERR "), "{refused}");
    // ... and the node goes on serving.
    assert_eq!(ok::<String>(&mut con, &["PING"]).await, "PONG");
    let (answer, _) = exchange(addr, b"QUIT\r\nPING\r\n", |_| false).await;
    assert_eq!(answer, "+OK\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited() {
    let (node, _, _tmp) = single(None).await;
    let server = RespServer::bind(nodes::localhost(), node.clone(), None)
        .await
        .expect("bind")
        .with_max_connections(1);
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    let mut first = connect(addr).await;
    assert_eq!(ok::<String>(&mut first, &["PING"]).await, "PONG");
    let (answer, closed) = exchange(addr, b"PING\r\n", |_| false).await;
    assert_eq!(answer, "-ERR max number of clients reached\r\n");
    assert!(closed);
    drop(first);
    eventually("a slot frees up", || async {
        exchange(addr, b"PING\r\n", lines(1)).await.0 == "+PONG\r\n"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_on_a_token_protected_endpoint() {
    let (node, addr, _tmp) = single(ApiToken::new("s3cret")).await;
    let (answer, _) = exchange(addr, b"GET k\r\nAUTH nope\r\nAUTH s3cret\r\nGET k\r\n", lines(4)).await;
    assert_eq!(
        answer,
        "-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is \
         disabled.\r\n+OK\r\n$-1\r\n"
    );
    let client = redis::Client::open(format!("redis://:s3cret@{addr}/")).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect with AUTH");
    let _: () = ok(&mut con, &["SET", "k", "v"]).await;
    assert_eq!(ok::<String>(&mut con, &["GET", "k"]).await, "v");
    // Without a token, only loopback.
    let any: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    assert!(matches!(
        RespServer::bind(any, node.clone(), None).await,
        Err(RespError::TokenRequired(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_across_doors() {
    let (sessions, addr, _tmp) = single(None).await;
    let api = serve_api(&sessions, None).await;
    let mut con = connect(addr).await;
    let ttl = Duration::from_secs(60);
    // RESP text: a JSON string over HTTP, a String in Rust.
    let _: () = ok(&mut con, &["SET", "t", "héllo"]).await;
    assert_eq!(http::get(api, "/v1/sessions/t").await.json()["value"], "héllo");
    assert_eq!(sessions.get::<String>("t").expect("text").expect("live").value, "héllo");
    // RESP bytes that are not UTF-8: a byte string, answered byte for byte.
    let binary = vec![0xff, 0x00, 0xfe];
    let _: () = cmd("SET")
        .arg("b")
        .arg(&binary)
        .query_async(&mut con)
        .await
        .expect("set");
    let stored = sessions
        .get::<ciborium::Value>("b")
        .expect("bytes")
        .expect("live")
        .value;
    assert_eq!(stored, ciborium::Value::Bytes(binary.clone()));
    let read: Vec<u8> = cmd("GET").arg("b").query_async(&mut con).await.expect("get");
    assert_eq!(read, binary);
    assert_eq!(
        http::get(api, "/v1/sessions/b").await.status,
        500,
        "bytes have no JSON form"
    );
    // Rust and HTTP writes, read over RESP: text as is, any other value as JSON.
    sessions.put("r", "plain text", ttl, None).await.expect("put");
    sessions
        .put("j", &serde_json::json!({"user": "alice", "n": 2}), ttl, None)
        .await
        .expect("put");
    let put = http::Request::new("PUT", "/v1/sessions/h")
        .json(&serde_json::json!({"value": [1, 2.5, null], "ttl_secs": 60}))
        .send(api)
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(ok::<String>(&mut con, &["GET", "r"]).await, "plain text");
    assert_eq!(ok::<String>(&mut con, &["GET", "j"]).await, r#"{"n":2,"user":"alice"}"#);
    assert_eq!(ok::<String>(&mut con, &["GET", "h"]).await, "[1,2.5,null]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_drives_a_node() {
    let cli = std::path::Path::new("/usr/bin/redis-cli");
    if !cli.exists() {
        eprintln!("note: /usr/bin/redis-cli is absent (apt-get install redis-tools): skipping");
        return;
    }
    let (_node, addr, _tmp) = single(None).await;
    let run_cli = |args: &'static [&'static str]| async move {
        let port = addr.port().to_string();
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new("/usr/bin/redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port])
                .args(args)
                .output()
                .expect("run redis-cli");
            assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        })
        .await
        .expect("redis-cli task")
    };
    assert_eq!(run_cli(&["SET", "cli-key", "cli value"]).await, "OK");
    assert_eq!(run_cli(&["GET", "cli-key"]).await, "cli value");
    assert_eq!(run_cli(&["TTL", "cli-key"]).await, "86400");
    assert_eq!(run_cli(&["DEL", "cli-key"]).await, "1");
    assert_eq!(run_cli(&["GET", "cli-key"]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_a_node_not_admitted_are_notmember() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let dir = nodes::make_dir(tmp.path(), "outsider", &key);
    // The network's only admin is some other feed, which never admitted this one.
    feedmesh::node_dir::NodeDir::open(&dir)
        .expect("open")
        .set_admins(&[feedmesh::feed::FeedId([9; 32])])
        .expect("admins");
    let node = nodes::start_sessions(&dir, vec![]).await;
    let mut con = connect(serve_resp(&node, None).await).await;
    let not_member = Err("NOTMEMBER this node is not a member of the network".to_string());
    assert_eq!(run::<()>(&mut con, &["SET", "s", "v"]).await, not_member);
    assert_eq!(run::<()>(&mut con, &["DEL", "s"]).await, not_member);
    assert_eq!(
        run::<()>(&mut con, &["FEEDMESH.REVOKEOWNER", "alice"]).await,
        not_member
    );
    assert_eq!(ok::<i64>(&mut con, &["EXPIRE", "s", "10"]).await, 0);
    assert_eq!(
        node.node().clock().expect("clock").get(&node.node().id()),
        None,
        "nothing appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_3_switches_the_connection_to_resp3() {
    let (_node, addr, _tmp) = single(None).await;
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let command = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len());
        for arg in args {
            out.push_str(&bulk(arg));
        }
        out
    };
    // GET of a missing key before (RESP2 nil), HELLO 3 (a map), then RESP3
    // nils, alone and inside an array; CONFIG GET is a map too.
    let request = [
        command(&["GET", "missing"]),
        command(&["HELLO", "3"]),
        command(&["SET", "k", "v"]),
        command(&["GET", "missing"]),
        command(&["MGET", "k", "missing"]),
        command(&["CONFIG", "GET", "appendonly"]),
        command(&["HELLO", "2"]),
        command(&["GET", "missing"]),
    ]
    .concat();
    let hello = |head: &str, proto: u8| {
        let pair = |k: &str, v: &str| bulk(k) + &bulk(v);
        [
            head.to_owned(),
            pair("server", "redis"),
            pair("version", feedmesh::resp::REDIS_VERSION),
            bulk("proto"),
            format!(":{proto}\r\n"),
            bulk("id"),
            ":ID\r\n".to_owned(),
            pair("mode", "standalone"),
            pair("role", "master"),
            bulk("modules"),
            "*0\r\n".to_owned(),
        ]
        .concat()
    };
    let expected = [
        "$-1\r\n".to_owned(),
        hello("%7\r\n", 3),
        "+OK\r\n".to_owned(),
        "_\r\n".to_owned(),
        "*2\r\n$1\r\nv\r\n_\r\n".to_owned(),
        format!("%1\r\n{}{}", bulk("appendonly"), bulk("yes")),
        // HELLO 2 answers in RESP2: its map is a flat array.
        hello("*14\r\n", 2),
        "$-1\r\n".to_owned(),
    ]
    .concat();
    let (answer, closed) = exchange(addr, request.as_bytes(), |a| a.ends_with(b"*0\r\n$-1\r\n")).await;
    assert!(!closed);
    // The connection's id, whatever it is, in both HELLO answers.
    let id_line = "$2\r\nid\r\n:";
    let at = answer.find(id_line).expect("an id") + id_line.len();
    let id = &answer[at..at + answer[at..].find('\r').expect("id line")];
    let answer = answer.replace(&format!("{id_line}{id}\r\n"), &format!("{id_line}ID\r\n"));
    assert_eq!(answer, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_absolute_expiries_and_the_probes_clients_send() {
    let (_node, addr, _tmp) = single(None).await;
    let mut con = connect(addr).await;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    // EXAT and PXAT: an absolute expiry, in seconds or milliseconds.
    let at = (now_s + 600).to_string();
    let _: () = ok(&mut con, &["SET", "s", "v", "EXAT", &at]).await;
    let ttl: i64 = ok(&mut con, &["TTL", "s"]).await;
    assert!((598..=600).contains(&ttl), "{ttl}");
    let at_ms = ((now_s + 900) * 1000).to_string();
    let _: () = ok(&mut con, &["SET", "m", "v", "PXAT", &at_ms]).await;
    let pttl: i64 = ok(&mut con, &["PTTL", "m"]).await;
    assert!((898_000..=900_000).contains(&pttl), "{pttl}");
    let later = (now_s + 1200).to_string();
    assert_eq!(ok::<String>(&mut con, &["GETEX", "s", "EXAT", &later]).await, "v");
    assert!(ok::<i64>(&mut con, &["TTL", "s"]).await > 1100);

    // UNLINK revokes as DEL does: gone, and refused for good.
    assert_eq!(ok::<i64>(&mut con, &["UNLINK", "s", "m", "never"]).await, 2);
    assert_eq!(ok::<Option<String>>(&mut con, &["GET", "s"]).await, None);
    let refused = run::<()>(&mut con, &["SET", "m", "again"]).await.unwrap_err();
    assert!(refused.starts_with("REVOKED"), "{refused}");

    // An owner's live sessions, and how many a log-out-everywhere revoked.
    for key in ["o2", "o1"] {
        let _: () = ok(&mut con, &["SET", key, "v", "EX", "600", "OWNER", "bob"]).await;
    }
    assert_eq!(
        ok::<Vec<String>>(&mut con, &["FEEDMESH.OWNED", "bob"]).await,
        ["o1", "o2"]
    );
    assert_eq!(ok::<i64>(&mut con, &["FEEDMESH.REVOKEOWNER", "bob"]).await, 2);
    assert!(ok::<Vec<String>>(&mut con, &["FEEDMESH.OWNED", "bob"]).await.is_empty());

    // What clients send on connect and when they probe.
    assert_eq!(ok::<Vec<String>>(&mut con, &["COMMAND"]).await, Vec::<String>::new());
    assert_eq!(
        ok::<String>(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "x"]).await,
        "OK"
    );
    assert_eq!(ok::<String>(&mut con, &["CLIENT", "SETNAME", "app"]).await, "OK");
    assert_eq!(ok::<String>(&mut con, &["CLIENT", "GETNAME"]).await, "app");
    assert!(ok::<i64>(&mut con, &["CLIENT", "ID"]).await > 0);
    assert_eq!(ok::<String>(&mut con, &["SELECT", "0"]).await, "OK");
    let error = run::<()>(&mut con, &["NOSUCH", "a", "b"]).await.unwrap_err();
    assert!(error.starts_with("ERR unknown command 'NOSUCH'"), "{error}");
}
