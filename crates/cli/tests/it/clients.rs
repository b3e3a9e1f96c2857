//! Another language's session middleware, unchanged, against two real
//! `feedmesh serve --resp` processes: an Express app on express-session +
//! connect-redis + node-redis (tests/clients/express/app.mjs, node-redis
//! speaking RESP3) logs in on one node, reads the session on the other,
//! logs out there, and finds the cookie refused back on the first. Needs
//! Node.js and `npm ci --prefix tests/clients/express` (what `.ci/run`
//! does); `FEEDMESH_SKIP_NODE=1` skips it where they are missing.

use crate::process;
use crate::resp::exchange;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use process::{ServeProcess, feedmesh, path_arg};
use serde_json::Value;

/// The Express client's folder.
fn express_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/express")
}

/// Starts a node of `dir` with a RESP endpoint, dialing `peer`; returns it,
/// its peer address and its RESP address.
fn serve(dir: &Path, peer: Option<SocketAddr>) -> (ServeProcess, SocketAddr, SocketAddr) {
    let mut args = vec![
        "--dir",
        path_arg(dir),
        "--listen",
        "127.0.0.1:0",
        "--resp",
        "127.0.0.1:0",
    ];
    let peer = peer.map(|peer| peer.to_string());
    if let Some(peer) = &peer {
        args.extend(["--peer", peer.as_str()]);
    }
    let mut node = ServeProcess::spawn(&args, "warn");
    let address = |prefix: &'static str| {
        move |lines: &[String]| {
            lines
                .iter()
                .find_map(|line| line.strip_prefix(prefix))
                .map(|addr| addr.trim().parse::<SocketAddr>().expect("address"))
        }
    };
    let listen = node.wait_for("the peer address", address("listening on "));
    let resp = node.wait_for("the resp address", address("resp listening on "));
    (node, listen, resp)
}

#[test]
fn express_sessions_in_connect_redis_work_unchanged_across_two_nodes() {
    if !express_dir().join("node_modules").is_dir() {
        assert!(
            std::env::var_os("FEEDMESH_SKIP_NODE").is_some(),
            "run `npm ci --prefix tests/clients/express` (Node.js needed), or set FEEDMESH_SKIP_NODE=1"
        );
        eprintln!("note: tests/clients/express/node_modules is absent: skipping");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("key");
    let output = feedmesh(&["network-key", "--out", path_arg(&key)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dirs = [tmp.path().join("a"), tmp.path().join("b")];
    for dir in &dirs {
        let output = feedmesh(&["init", "--dir", path_arg(dir), "--network-key-file", path_arg(&key)]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let (a, a_listen, a_resp) = serve(&dirs[0], None);
    let (b, _, b_resp) = serve(&dirs[1], Some(a_listen));

    let output = Command::new("node")
        .arg(express_dir().join("app.mjs"))
        .args([a_resp.port().to_string(), b_resp.port().to_string()])
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Express client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(seen["user_on_a"], "alice", "{seen}");
    assert_eq!(
        seen["user_on_b"], "alice",
        "the other node's instance knows the login: {seen}"
    );
    assert_eq!(
        seen["sessions_on_a"], 1,
        "connect-redis counts the session by SCAN: {seen}"
    );
    assert_eq!(seen["status_on_a_after_logout"], 401, "{seen}");

    // The session connect-redis stored is revoked for good on the first node.
    let sid = seen["sid"].as_str().expect("sid");
    let key = format!("sess:{sid}");
    exchange(
        a_resp,
        format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
        "$-1\r\n",
    );
    exchange(
        a_resp,
        format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$2\r\n{{}}\r\n", key.len()).as_bytes(),
        "-REVOKED the session key is revoked\r\n",
    );
    b.terminate();
    a.terminate();
}
