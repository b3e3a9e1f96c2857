//! `feedmesh serve --resp`: a real process serving the Redis protocol, over
//! a raw socket (the commands' replies are checked by the library's
//! tests/it/resp.rs), and the token rule it shares with `--api`.

use crate::process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use process::{DEADLINE, ServeProcess, feedmesh, path_arg};

fn init(dir: &std::path::Path) {
    let output = feedmesh(&["init", "--dir", path_arg(dir)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Sends `request` to `addr` and reads until `expected` has arrived.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8], expected: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    let mut chunk = [0; 1024];
    let start = Instant::now();
    while answer.len() < expected.len() && start.elapsed() < DEADLINE {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    assert_eq!(String::from_utf8_lossy(&answer), expected);
}

#[test]
fn serve_resp_answers_redis_commands() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a");
    init(&dir);
    let mut node = ServeProcess::spawn(
        &[
            "--dir",
            path_arg(&dir),
            "--listen",
            "127.0.0.1:0",
            "--resp",
            "127.0.0.1:0",
        ],
        "warn",
    );
    let addr = node.wait_for("the resp address", |lines| {
        lines
            .iter()
            .find_map(|line| line.strip_prefix("resp listening on "))
            .map(|addr| addr.trim().parse::<SocketAddr>().expect("address"))
    });
    exchange(
        addr,
        b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        "+PONG\r\n+OK\r\n$5\r\nvalue\r\n",
    );
    node.terminate();
}

#[test]
fn a_public_resp_endpoint_without_a_token_refuses_to_start() {
    crate::api::a_public_endpoint_without_a_token_refuses_to_start("--resp");
}
