//! `GET /v1/ready` and the admins' last-heard times (src/readiness.rs) on
//! real nodes over loopback: a node that never heard from an admin says so
//! and is not ready; a node behind what its peers claimed is not ready
//! until it caught up.

use crate::common::admins;
use crate::common::api;
use crate::common::http;
use crate::common::nodes;

use std::path::Path;
use std::time::Duration;

use feedmesh::feed::FeedId;
use feedmesh::net::NetworkKey;
use feedmesh::sessions::Sessions;
use http::Request;
use nodes::{addr, config, eventually, make_dir, start, start_sessions};
use serde_json::Value;
use tempfile::TempDir;
use tokio::time::Instant;

/// Every wait in these tests ends by this long.
const DEADLINE: Duration = Duration::from_secs(30);

/// `GET path` on the API at `api`: status and JSON body.
async fn get(api: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let response = Request::new("GET", path).send(api).await;
    (response.status, response.json())
}

/// Polls `GET /v1/ready` until it answers `status`; returns the body.
async fn until_ready_is(api: std::net::SocketAddr, status: u16) -> Value {
    let started = Instant::now();
    loop {
        let (got, body) = get(api, "/v1/ready").await;
        if got == status {
            return body;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "/v1/ready never answered {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A member node that takes an admin feed heard within 300 ms as recent.
async fn start_member(dir: &Path, peers: Vec<std::net::SocketAddr>) -> Sessions {
    let mut config = config(dir, peers);
    config.ready_admin_within = Duration::from_millis(300);
    Sessions::start(config).await.expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_heard_from_an_admin_is_not_ready_and_says_so() {
    let root = TempDir::new().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let (admin_path, admin_id) = admins::admin_dir(root.path(), &key);
    let member_path = admins::member_dir(root.path(), "b", &key, admin_id);
    let member_sessions = start_member(&member_path, vec![]).await;
    let member = member_sessions.node();

    // Alone, the member has never heard from the admin.
    let api = api::serve_api(&member_sessions, None).await;
    let body = until_ready_is(api, 503).await;
    assert_eq!(body["reasons"][0], "no admin feed heard within 300 ms");
    let (_, status) = get(api, "/v1/status").await;
    assert_eq!(status["admins"][0]["feed"], admin_id.to_string());
    assert_eq!(status["admins"][0]["heard_at_ms"], Value::Null);
    let (_, members) = get(api, "/v1/members").await;
    assert_eq!(members["admins_heard"][0]["heard_at_ms"], Value::Null, "{members}");
    let health = Request::new("GET", "/v1/audit/health").send(api).await.text();
    let admin_line: Value = health
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .find(|line| line["line"] == "admin")
        .expect("an admin line");
    assert_eq!(admin_line["feed"], admin_id.to_string());
    assert_eq!(admin_line["heard_at_ms"], Value::Null);

    // The admin connects and admits it: it holds the admin's feed and is ready.
    let admin = start_sessions(&admin_path, vec![addr(member)]).await;
    admin.add_member(member.id(), 1).await.expect("admit");
    eventually("the admission arrives", || {
        member.clock().expect("clock").contains_key(&admin_id)
    })
    .await;
    let body = until_ready_is(api, 200).await;
    assert_eq!(body["admins"][0]["seq"], 1);
    assert!(body["admins"][0]["heard_at_ms"].is_u64(), "{body}");
    let metrics = Request::new("GET", "/metrics").send(api).await.text();
    assert!(metrics.contains("feedmesh_ready 1"), "{metrics}");
    let heard = format!("feedmesh_admin_last_heard_ms{{feed=\"{admin_id}\"}}");
    assert!(metrics.contains(&heard), "{metrics}");

    // The admin gone, what was heard from it ages past the bound.
    admin.node().shutdown().await;
    let body = until_ready_is(api, 503).await;
    assert_eq!(body["reasons"][0], "no admin feed heard within 300 ms");
    assert_eq!(body["admins"][0]["seq"], 1, "still held, no longer recent");
    member.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_ready_only_once_it_holds_what_its_peers_claimed() {
    let root = TempDir::new().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let source = start(&make_dir(root.path(), "source", &key), vec![]).await;
    let payload = vec![7_u8; 1000];
    for _ in 0..6 {
        let batch: Vec<&[u8]> = vec![&payload; 500];
        source.append_batch(&batch).await.expect("append");
    }
    let held = source.store().latest(&source.id()).expect("latest").expect("some");
    let fresh_sessions = start_sessions(&make_dir(root.path(), "fresh", &key), vec![addr(&source)]).await;
    let fresh = fresh_sessions.node();
    let api = api::serve_api(&fresh_sessions, None).await;

    let (status, body) = get(api, "/v1/ready").await;
    if status == 503 {
        // Caught early: not connected yet, or the source's feed still coming.
        let reason = body["reasons"][0].as_str().expect("a reason");
        if reason != "no peer connected yet" {
            assert!(reason.contains("behind"), "{body}");
            let feed: FeedId = body["behind"][0]["feed"]
                .as_str()
                .expect("feed")
                .parse()
                .expect("feed id");
            assert_eq!(feed, source.id());
        }
    }
    until_ready_is(api, 200).await;
    let got = fresh.store().latest(&source.id()).expect("latest").unwrap_or(0);
    assert!(got >= held, "ready while holding {got} of {held}");
    fresh.shutdown().await;
    source.shutdown().await;
}
