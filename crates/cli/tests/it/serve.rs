//! Real `feedmesh serve` processes on loopback: three nodes in a line
//! converge; a node killed with SIGKILL and restarted catches up with only
//! what it missed. Every wait is bounded and every child is killed when the
//! test ends, passing or not.

use crate::process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use process::{ServeProcess, feedmesh_with_stdin, path_arg, wait_until};
use serde_json::Value;

fn feedmesh(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let output = feedmesh_with_stdin(args, stdin.unwrap_or_default());
    assert!(
        output.status.success(),
        "feedmesh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn append(dir: &Path, count: usize, tag: &str) {
    for i in 0..count {
        feedmesh(
            &["append", "--dir", path_arg(dir)],
            Some(format!("{tag} {i}").as_bytes()),
        );
    }
}

fn log(dir: &Path) -> String {
    String::from_utf8(feedmesh(&["log", "--dir", path_arg(dir)], None).stdout).expect("utf-8")
}

/// A running `feedmesh serve`, killed on drop.
struct Serve {
    /// The child; its standard error carries JSON logs and `listening on`.
    process: ServeProcess,
    addr: SocketAddr,
}

impl Serve {
    fn start(dir: &Path, listen: &str, peers: &[SocketAddr]) -> Serve {
        let mut args = vec![
            "--dir".to_string(),
            path_arg(dir).into(),
            "--listen".into(),
            listen.into(),
            "--log-format".into(),
            "json".into(),
            "--reconnect-min-ms".into(),
            "20".into(),
            "--reconnect-max-ms".into(),
            "300".into(),
        ];
        for peer in peers {
            args.push("--peer".into());
            args.push(peer.to_string());
        }
        let mut process = ServeProcess::spawn(&args, "feedmesh=debug");
        let addr = process.wait_for("where it listens", |lines| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix("listening on "))
                .map(|addr| addr.trim().parse().expect("listening address"))
        });
        Serve { process, addr }
    }

    /// How many entries of `feed` this process stored from peers, and the
    /// highest sequence among them.
    fn received(&self, feed: &str) -> (u64, u64) {
        let lines = self.process.lines();
        let mut entries = 0;
        let mut latest = 0;
        for line in lines.iter() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let fields = &value["fields"];
            if fields["message"] == "stored entries from a peer" && fields["feed"] == feed {
                entries += fields["entries"].as_u64().unwrap_or(0);
                latest = latest.max(fields["seq"].as_u64().unwrap_or(0));
            }
        }
        (entries, latest)
    }

    fn holds(&self, feed: &str, seq: u64) -> bool {
        self.received(feed).1 >= seq
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(self) {
        self.process.terminate();
    }

    /// SIGKILL: no chance to clean up.
    fn kill(self) {
        self.process.kill();
    }
}

fn init(root: &Path, name: &str, key: &Path) -> (PathBuf, String) {
    let dir = root.join(name);
    let out = feedmesh(
        &["init", "--dir", path_arg(&dir), "--network-key-file", path_arg(key)],
        None,
    );
    let id = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
    (dir, id)
}

#[test]
fn a_line_of_serve_processes_converges_and_a_killed_node_catches_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let key = root.path().join("network_key");
    feedmesh(&["network-key", "--out", path_arg(&key)], None);
    let (a_dir, a) = init(root.path(), "a", &key);
    let (b_dir, b) = init(root.path(), "b", &key);
    let (c_dir, c) = init(root.path(), "c", &key);
    append(&a_dir, 3, "a");
    append(&b_dir, 3, "b");
    append(&c_dir, 3, "c");

    // A <- B <- C: B dials A, C dials B.
    let node_a = Serve::start(&a_dir, "127.0.0.1:0", &[]);
    let a_addr = node_a.addr;
    let node_b = Serve::start(&b_dir, "127.0.0.1:0", &[a_addr]);
    let node_c = Serve::start(&c_dir, "127.0.0.1:0", &[node_b.addr]);
    wait_until("every node holds every feed", || {
        node_a.holds(&b, 3)
            && node_a.holds(&c, 3)
            && node_b.holds(&a, 3)
            && node_b.holds(&c, 3)
            && node_c.holds(&a, 3)
            && node_c.holds(&b, 3)
    });

    // C dies hard; A stops cleanly, writes more offline and comes back on
    // the same address, where B redials it. C's received entries are
    // durable within SYNC_INTERVAL of being stored (spec/SESSIONS.md §6.3):
    // give it that, with a wide margin for a loaded machine, before the kill.
    std::thread::sleep(feedmesh::node::SYNC_INTERVAL * 50);
    node_c.kill();
    node_a.terminate();
    append(&a_dir, 4, "a later");
    let node_a = Serve::start(&a_dir, &a_addr.to_string(), &[]);
    wait_until("B holds A's new entries", || node_b.holds(&a, 7));

    // C restarts and fetches only what it missed: A's four new entries.
    let node_c = Serve::start(&c_dir, "127.0.0.1:0", &[node_b.addr]);
    wait_until("C caught up", || node_c.holds(&a, 7));
    assert_eq!(node_c.received(&a), (4, 7), "C stored only the missed entries");
    assert_eq!(node_c.received(&b), (0, 0), "C already held B's feed");

    node_a.terminate();
    node_b.terminate();
    node_c.terminate();
    let logs = [log(&a_dir), log(&b_dir), log(&c_dir)];
    assert_eq!(logs[0].lines().count(), 3 + 3 + 7);
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
    for dir in [&a_dir, &b_dir, &c_dir] {
        feedmesh(&["verify", "--dir", path_arg(dir)], None);
    }
}

#[test]
fn init_without_a_network_key_file_makes_a_key_and_says_so() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("solo");
    let out = feedmesh(&["init", "--dir", path_arg(&dir)], None);
    let note = String::from_utf8(out.stderr).expect("utf-8");
    assert!(note.contains("network key"), "{note}");
    let key = std::fs::read_to_string(dir.join("network_key")).expect("key file");
    assert_eq!(key.len(), 65);
    assert!(key.ends_with('\n'));
    let printed = String::from_utf8(feedmesh(&["network-key"], None).stdout).expect("utf-8");
    assert_eq!(printed.len(), 65);
    assert!(printed.trim_end().chars().all(|c| c.is_ascii_hexdigit()));
}

/// `feedmesh session ARGS... --api API`, which must succeed; its JSON answer.
fn session_json(api: &str, args: &[&str]) -> Value {
    let mut all = vec!["session"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--api", api]);
    let out = feedmesh(&all, None);
    serde_json::from_slice(&out.stdout).expect("JSON answer")
}

/// A `feedmesh serve` with an HTTP API that saves its view's snapshot every
/// 100 ms; its API address.
fn serve_with_api(dir: &Path) -> (ServeProcess, String) {
    let args = [
        "--dir",
        path_arg(dir),
        "--listen",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--snapshot-interval-ms",
        "100",
        "--log-format",
        "json",
    ];
    let mut process = ServeProcess::spawn(&args, "feedmesh=debug");
    let api = process.wait_for("its API address", |lines| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix("api listening on "))
            .map(str::to_string)
    });
    (process, api)
}

/// How many times the process logged that it saved the view snapshot.
fn snapshots_saved(process: &ServeProcess) -> usize {
    process
        .lines()
        .iter()
        .filter(|line| line.contains("saved the view snapshot"))
        .count()
}

#[test]
fn a_node_killed_mid_stream_restarts_from_its_last_snapshot_with_the_same_view() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("a");
    feedmesh(&["init", "--dir", path_arg(&dir)], None);
    let (node, api) = serve_with_api(&dir);
    let put = |api: &str, key: &str| {
        session_json(
            api,
            &[
                "put",
                key,
                "--value",
                r#"{"user":"erin"}"#,
                "--ttl-secs",
                "3600",
                "--owner",
                "erin",
            ],
        )
    };
    for i in 0..10 {
        put(&api, &format!("early-{i}"));
    }
    wait_until("a snapshot is saved", || snapshots_saved(&node) >= 1);
    for i in 0..5 {
        put(&api, &format!("late-{i}"));
    }
    session_json(&api, &["revoke", "early-3"]);
    let before = session_json(&api, &["digest"]);
    // Killed without a chance to save: the store holds 16 entries, the last
    // snapshot at least the first 10 of them.
    node.kill();

    let (node, api) = serve_with_api(&dir);
    let after = session_json(&api, &["digest"]);
    assert_eq!(after["digest"], before["digest"]);
    assert_eq!(after["sessions"], before["sessions"]);
    assert_eq!(after["started"]["from_snapshot"], true, "{after}");
    let folded = after["started"]["folded"].as_u64().expect("folded");
    assert!(
        folded <= 6,
        "folded {folded} entries, the snapshot covered at least 10 of 16"
    );
    node.terminate();
}
