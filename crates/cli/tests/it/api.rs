//! The HTTP API of real `feedmesh serve` processes, over the tiny HTTP/1.1
//! client of tests/it/common/http.rs: status, appends (with and without
//! acknowledgements), feed pages, metrics, the token rules and the config
//! file. Every wait is bounded and every child is killed when its test ends,
//! passing or not.

use crate::common::fork;
use crate::common::http;
use crate::process;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use feedmesh::store::{Record, Store};
use http::{Request, get, post};
use process::{DEADLINE, ServeProcess, feedmesh, path_arg};
use serde_json::Value;

/// Creates a node directory with the network key `key`; returns its feed id.
fn init(dir: &Path, key: &Path) -> String {
    let output = feedmesh(&["init", "--dir", path_arg(dir), "--network-key-file", path_arg(key)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_string()
}

fn network_key(path: &Path) {
    let output = feedmesh(&["network-key", "--out", path_arg(path)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A running `feedmesh serve` with its API, killed on drop.
struct Serve {
    process: ServeProcess,
    listen: SocketAddr,
    api: SocketAddr,
}

impl Serve {
    /// Starts `feedmesh serve --dir DIR ARGS...` and waits for both of its
    /// addresses.
    fn start(dir: &Path, args: &[&str]) -> Serve {
        let mut all = vec![
            "--dir",
            path_arg(dir),
            "--reconnect-min-ms",
            "20",
            "--reconnect-max-ms",
            "200",
        ];
        all.extend_from_slice(args);
        let mut process = ServeProcess::spawn(&all, "warn");
        let (listen, api) = process.wait_for("its addresses", |lines| {
            let find = |prefix: &str| {
                lines
                    .iter()
                    .find_map(|l| l.strip_prefix(prefix))
                    .map(|a| a.trim().parse::<SocketAddr>().expect("address"))
            };
            find("listening on ").zip(find("api listening on "))
        });
        Serve { process, listen, api }
    }

    /// Sends SIGTERM and waits (bounded) for a successful exit.
    fn terminate(self) {
        self.process.terminate();
    }

    /// The API's address on loopback (the port of a wildcard bind).
    fn api_loopback(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api.port()))
    }
}

#[tokio::test]
async fn status_append_feeds_and_metrics_on_one_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    network_key(&tmp.path().join("key"));
    let dir = tmp.path().join("a");
    let id = init(&dir, &tmp.path().join("key"));
    let node = Serve::start(&dir, &["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"]);

    let status = get(node.api, "/v1/status").await;
    assert_eq!(status.status, 200);
    let status = status.json();
    assert_eq!(status["id"], id.as_str());
    assert_eq!(status["clock"], serde_json::json!({}));
    assert_eq!(status["peers"], serde_json::json!([]));

    for seq in 1..=2 {
        let answer = post(node.api, "/v1/append", format!("payload {seq}").as_bytes()).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let answer = answer.json();
        assert_eq!(answer["feed"], id.as_str());
        assert_eq!(answer["seq"], seq);
        assert_eq!(answer["hash"].as_str().map(str::len), Some(64));
    }
    let status = get(node.api, "/v1/status").await.json();
    assert_eq!(status["clock"][&id], 2);

    // No peer can acknowledge: 504, and the entry is stored all the same.
    let timed_out = post(node.api, "/v1/append?acks=1&timeout_ms=200", b"lonely").await;
    assert_eq!(timed_out.status, 504, "{}", timed_out.text());
    let body = timed_out.json();
    assert_eq!(body["seq"], 3);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("stored")), "{body}");

    // The feed as JSON lines, like `feedmesh log`.
    let page = get(node.api, &format!("/v1/feeds/{id}?from=2")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = page
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["seq"], 2);
    assert_eq!(lines[1]["payload_len"], 6);
    let first = get(node.api, &format!("/v1/feeds/{id}?limit=1")).await;
    assert_eq!(first.text().lines().count(), 1);
    assert_eq!(first.header("feedmesh-next-from"), Some("2"));

    // Errors are JSON with their status.
    let malformed = get(node.api, "/v1/feeds/not-a-feed").await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["error"].is_string());
    assert_eq!(get(node.api, "/v1/nothing").await.status, 404);
    let too_large = post(node.api, "/v1/append", &vec![0u8; (1 << 20) + 1]).await;
    assert_eq!(too_large.status, 413);
    assert!(too_large.json()["error"].is_string());

    let metrics = get(node.api, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    let text = metrics.text();
    for name in [
        "feedmesh_feed_entries",
        "feedmesh_peer_received_bytes_total",
        "feedmesh_peer_sent_bytes_total",
        "feedmesh_peer_lag_entries",
        "feedmesh_disconnects_total",
        "feedmesh_handshake_failures_total",
        "feedmesh_buffered_bytes",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l == format!("feedmesh_feed_entries{{feed=\"{id}\"}} 3")),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "feedmesh_buffered_bytes 0"), "{text}");

    // SIGTERM stops the node (API included) gracefully; then `feedmesh log`
    // (it needs the store) prints the same objects.
    node.terminate();
    let log = feedmesh(&["log", "--dir", path_arg(&dir), "--from", "2"]);
    assert!(log.status.success(), "{}", String::from_utf8_lossy(&log.stderr));
    let logged: Vec<Value> = String::from_utf8(log.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(logged, lines, "the API and `feedmesh log` print the same objects");
}

#[tokio::test]
async fn an_acknowledged_append_is_on_the_peer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("key");
    network_key(&key);
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let id_a = init(&dir_a, &key);
    let id_b = init(&dir_b, &key);
    let a = Serve::start(&dir_a, &["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"]);
    let peer = a.listen.to_string();
    let b = Serve::start(
        &dir_b,
        &["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--peer", &peer],
    );

    let start = Instant::now();
    while get(a.api, "/v1/status").await.json()["peers"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(start.elapsed() < DEADLINE, "the nodes never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = post(a.api, "/v1/append?acks=1&timeout_ms=5000", b"replicated").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["seq"], 1);

    let page = get(b.api, &format!("/v1/feeds/{id_a}")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let lines: Vec<Value> = page
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["feed"], id_a.as_str());
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["hash"], answer.json()["hash"]);

    // B fetches entry 1 of A's feed from A itself (verified, not stored).
    let fetched = get(b.api, &format!("/v1/peers/{id_a}/feeds/{id_a}?from=1&to=5")).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    let lines: Vec<Value> = fetched
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "A holds entry 1 only");
    assert_eq!(lines[0]["hash"], answer.json()["hash"]);
    let stranger = get(b.api, &format!("/v1/peers/{id_b}/feeds/{id_a}?from=1")).await;
    assert_eq!(stranger.status, 404, "{}", stranger.text());
    let too_long = get(b.api, &format!("/v1/peers/{id_a}/feeds/{id_a}?from=1&to=5000")).await;
    assert_eq!(too_long.status, 400, "{}", too_long.text());

    // A counted the bytes it exchanged with B, and B holds everything A has.
    let text = get(a.api, "/metrics").await.text();
    let value = |name: &str| -> u64 {
        let prefix = format!("{name}{{peer=\"{id_b}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} for B:\n{text}"))
    };
    assert!(value("feedmesh_peer_sent_bytes_total") > 0);
    assert!(value("feedmesh_peer_received_bytes_total") > 0);
    assert_eq!(value("feedmesh_peer_lag_entries"), 0);
}

/// `feedmesh serve` with `flag` (`--api` or `--resp`) on a public address
/// and no token: it refuses to start, with one line naming the token flag.
pub(crate) fn a_public_endpoint_without_a_token_refuses_to_start(flag: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    network_key(&tmp.path().join("key"));
    let dir = tmp.path().join("a");
    init(&dir, &tmp.path().join("key"));
    let output = feedmesh(&[
        "serve",
        "--dir",
        path_arg(&dir),
        "--listen",
        "127.0.0.1:0",
        flag,
        "0.0.0.0:0",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--api-token-file"), "{stderr}");
}

#[test]
fn a_public_api_without_a_token_refuses_to_start() {
    a_public_endpoint_without_a_token_refuses_to_start("--api");
}

#[test]
fn a_malformed_config_file_is_one_clear_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    network_key(&tmp.path().join("key"));
    let dir = tmp.path().join("a");
    init(&dir, &tmp.path().join("key"));
    std::fs::write(dir.join("feedmesh.toml"), "listen = \"127.0.0.1:0\"\nlisen = 1\n").expect("write config");
    let output = feedmesh(&["serve", "--dir", path_arg(&dir)]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("feedmesh.toml:2:1:") && stderr.contains("lisen"),
        "{stderr}"
    );
}

#[tokio::test]
async fn with_a_token_from_the_config_file_every_request_needs_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    network_key(&tmp.path().join("key"));
    let dir = tmp.path().join("a");
    init(&dir, &tmp.path().join("key"));
    std::fs::write(dir.join("token"), "s3cret-token\n").expect("write token");
    std::fs::write(
        dir.join("feedmesh.toml"),
        "listen = \"127.0.0.1:0\"\napi = \"0.0.0.0:0\"\napi_token_file = \"token\"\n",
    )
    .expect("write config");
    let node = Serve::start(&dir, &[]);
    let api = node.api_loopback();

    let anonymous = get(api, "/v1/status").await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.json()["error"].is_string());
    assert_eq!(
        Request::new("GET", "/metrics").bearer("wrong").send(api).await.status,
        401
    );
    assert_eq!(post(api, "/v1/append", b"x").await.status, 401);
    let status = Request::new("GET", "/v1/status").bearer("s3cret-token").send(api).await;
    assert_eq!(status.status, 200, "{}", status.text());
    assert!(status.json()["id"].is_string());
}

/// Parses JSON lines.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test]
async fn a_frozen_feed_is_marked_in_the_feed_list_its_pages_and_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("key");
    network_key(&key);
    let dir = tmp.path().join("a");
    init(&dir, &key);
    let forked = {
        let store = feedmesh::node_dir::NodeDir::open(&dir).unwrap().open_store().unwrap();
        let healthy = fork::branch(8, 2, u64::MAX, "");
        store.append(&feedmesh::feed::verify_batch(healthy).unwrap()).unwrap();
        store_forked(&store, 9, 4, 3)
    };
    let node = Serve::start(&dir, &["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"]);

    let list = get(node.api, "/v1/feeds").await;
    assert_eq!(list.status, 200, "{}", list.text());
    let feeds = list.json()["feeds"].as_array().expect("a list").clone();
    assert_eq!(feeds.len(), 2, "{feeds:?}");
    for feed in &feeds {
        let frozen = if feed["id"] == forked.to_string() {
            Value::from(3)
        } else {
            Value::Null
        };
        assert_eq!(feed["frozen"], frozen, "{feed}");
    }

    // Entries at and after the fork point carry the marker; those below do not.
    let page = get(node.api, &format!("/v1/feeds/{forked}")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let lines = json_lines(&page.text());
    let marks: Vec<&Value> = lines.iter().map(|l| &l["frozen"]).collect();
    assert_eq!(marks, [&Value::Null, &Value::Null, &Value::from(3), &Value::from(3)]);

    node.terminate();
    let log = feedmesh(&["log", "--dir", path_arg(&dir), "--feed", &forked.to_string()]);
    assert!(log.status.success(), "{}", String::from_utf8_lossy(&log.stderr));
    let logged = json_lines(&String::from_utf8(log.stdout).expect("utf-8"));
    assert_eq!(logged, lines, "`feedmesh log` marks the same entries");
}

/// Stores branch "a" of feed `seed` (`1..=len`) in `store`, then branch
/// "b"'s entry at `fork_at`: the store records the proof and freezes the
/// feed there. Returns the feed.
fn store_forked(store: &dyn Store, seed: u8, len: u64, fork_at: u64) -> feedmesh::feed::FeedId {
    let verified = |records: &[Record]| feedmesh::feed::verify_batch(records.to_vec()).expect("valid records");
    let main = fork::branch(seed, len, fork_at, "a");
    let other = fork::branch(seed, len, fork_at, "b");
    store.append(&verified(&main)).expect("branch a");
    let at = (fork_at - 1) as usize;
    let error = store.append(&verified(&other[at..=at])).expect_err("a fork");
    assert!(matches!(error, feedmesh::store::StoreError::Fork { .. }), "{error}");
    main[0].0.author()
}
