//! The session routes of the HTTP API (src/api/sessions.rs) over two
//! in-process nodes, each with its API on loopback: writes on one node read
//! on the other, acknowledgements, digests, the 400 cases and the token
//! rule.

use crate::common::api;
use crate::common::http;
use crate::common::nodes;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::serve_api;
use feedmesh::api::ApiToken;
use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use feedmesh::sessions::Sessions;
use http::{DEADLINE, Request, Response, get};
use serde_json::{Value, json};

async fn put(api: SocketAddr, key: &str, body: Value) -> Response {
    Request::new("PUT", &format!("/v1/sessions/{key}"))
        .json(&body)
        .send(api)
        .await
}

async fn delete(api: SocketAddr, path: &str) -> Response {
    Request::new("DELETE", path).send(api).await
}

/// Polls `check` (bounded by [`DEADLINE`]) until it returns `Some`.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `GET path` on `api` answers `status`; returns the answer.
async fn status_becomes(api: SocketAddr, path: &str, status: u16) -> Response {
    eventually(&format!("GET {path} is {status}"), || async {
        let answer = get(api, path).await;
        (answer.status == status).then_some(answer)
    })
    .await
}

/// Two connected nodes A and B, with their APIs.
struct Pair {
    a: Sessions,
    b: Sessions,
    api_a: SocketAddr,
    api_b: SocketAddr,
    _tmp: tempfile::TempDir,
}

async fn pair() -> Pair {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let a = nodes::start_sessions(&nodes::make_dir(tmp.path(), "a", &key), vec![]).await;
    let b = nodes::start_sessions(&nodes::make_dir(tmp.path(), "b", &key), vec![nodes::addr(a.node())]).await;
    eventually("the nodes connect", || async {
        (!a.node().peers().is_empty() && !b.node().peers().is_empty()).then_some(())
    })
    .await;
    let (api_a, api_b) = (serve_api(&a, None).await, serve_api(&b, None).await);
    Pair {
        a,
        b,
        api_a,
        api_b,
        _tmp: tmp,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_one_node_are_read_on_the_other() {
    let Pair {
        a,
        b,
        api_a,
        api_b,
        _tmp,
    } = pair().await;

    let value = json!({"user": "alice", "roles": ["admin"], "n": 1.5});
    let before = feedmesh::clock::system_time_ms();
    let written = Request::new("PUT", "/v1/sessions/s1?acks=1&timeout_ms=5000")
        .json(&json!({"value": value, "ttl_secs": 3600, "owner": "alice"}))
        .send(api_a)
        .await;
    assert_eq!(written.status, 200, "{}", written.text());
    let written = written.json();
    assert_eq!(written["author"], a.node().id().to_string());
    assert_eq!(written["acked"], 1);
    let expires_at = written["expires_at"].as_u64().expect("expires_at");
    assert!(
        (before + 3_600_000..before + 3_700_000).contains(&expires_at),
        "{written}"
    );

    let mut read = status_becomes(api_b, "/v1/sessions/s1", 200).await.json();
    let ttl_ms = read.as_object_mut().unwrap().remove("ttl_ms").expect("ttl_ms");
    assert!(ttl_ms.as_u64().unwrap() <= expires_at - before, "{ttl_ms}");
    assert_eq!(
        read,
        json!({"value": value, "expires_at": expires_at, "owner": "alice",
               "author": a.node().id().to_string(), "seq": written["seq"]})
    );

    // B extends the session; A reads the later expiry.
    let touched = Request::new("POST", "/v1/sessions/s1/touch")
        .json(&json!({"ttl_secs": 7200}))
        .send(api_b)
        .await;
    assert_eq!(touched.status, 200, "{}", touched.text());
    let touched = touched.json();
    assert_eq!(touched["author"], b.node().id().to_string());
    let extended = touched["expires_at"].as_u64().expect("expires_at");
    assert!(extended >= expires_at + 3_600_000, "{touched}");
    eventually("A reads the touch", || async {
        (get(api_a, "/v1/sessions/s1").await.json()["expires_at"] == extended).then_some(())
    })
    .await;
    // A touch finds no live session: refused, nothing written.
    let orphan = Request::new("POST", "/v1/sessions/nobody/touch")
        .json(&json!({"ttl_secs": 60}))
        .send(api_b)
        .await;
    assert_eq!(orphan.status, 412, "{}", orphan.text());
    assert_eq!(orphan.json()["error"], "refused: no live session under the key");

    // Revoked on B: gone on both, and a later put cannot bring it back.
    let revoked = delete(api_b, "/v1/sessions/s1?acks=1").await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert_eq!(revoked.json()["acked"], 1);
    assert_eq!(get(api_b, "/v1/sessions/s1").await.status, 404);
    let gone = status_becomes(api_a, "/v1/sessions/s1", 404).await;
    assert!(gone.json()["error"].as_str().is_some_and(|e| e.contains("s1")));
    let again = put(api_a, "s1", json!({"value": 1, "ttl_secs": 60})).await;
    assert_eq!(again.status, 409, "a revoked key stays revoked: {}", again.text());
    assert_eq!(get(api_a, "/v1/sessions/s1").await.status, 404);

    // Owner revocation on B kills bob's sessions put on A, not carol's.
    for (key, owner) in [("s2", "bob"), ("s3", "bob"), ("s4", "carol")] {
        let answer = put(api_a, key, json!({"value": key, "ttl_secs": 600, "owner": owner})).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    status_becomes(api_b, "/v1/sessions/s3", 200).await;
    let answer = delete(api_b, "/v1/owners/bob/sessions").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    status_becomes(api_a, "/v1/sessions/s2", 404).await;
    status_becomes(api_a, "/v1/sessions/s3", 404).await;
    assert_eq!(get(api_a, "/v1/sessions/s4").await.json()["value"], "s4");

    // A key with a slash and a space, percent-encoded in the path.
    let odd = put(api_a, "a%2Fb%20c", json!({"value": null, "ttl_secs": 60})).await;
    assert_eq!(odd.status, 200, "{}", odd.text());
    assert_eq!(
        status_becomes(api_b, "/v1/sessions/a%2Fb%20c", 200).await.json()["value"],
        Value::Null
    );
    assert!(a.get_raw("a/b c").is_some());

    // Once both hold the same entries, their digests are equal.
    let (digest_a, digest_b) = eventually("the clocks are equal", || async {
        let (da, db) = (
            get(api_a, "/v1/view/digest").await.json(),
            get(api_b, "/v1/view/digest").await.json(),
        );
        (da["clock"] == db["clock"]).then_some((da, db))
    })
    .await;
    assert_eq!(digest_a, digest_b);
    assert_eq!(digest_a["digest"].as_str().map(str::len), Some(64), "{digest_a}");
    assert_eq!(
        digest_a["clock"][a.node().id().to_string()],
        5,
        "the refused put appended nothing: {digest_a}"
    );
    assert_eq!(digest_a["sessions"], 2, "s4 and a/b c: {digest_a}");
    assert_eq!(digest_a["held_back"], 0);
    assert_eq!(digest_a["digest"], a.digest().to_string());

    // Five peers cannot acknowledge: 504, the write made all the same.
    let short = Request::new("PUT", "/v1/sessions/s5?acks=5&timeout_ms=100")
        .json(&json!({"value": 5, "ttl_secs": 60}))
        .send(api_a)
        .await;
    assert_eq!(short.status, 504, "{}", short.text());
    let short = short.json();
    assert_eq!(short["acked"], 1);
    assert_eq!(short["author"], a.node().id().to_string());
    assert!(
        short["error"].as_str().is_some_and(|e| e.contains("stored durably")),
        "{short}"
    );
    assert_eq!(get(api_a, "/v1/sessions/s5").await.json()["value"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_writes_are_400_with_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let node = nodes::start_sessions(&nodes::make_dir(tmp.path(), "a", &key), vec![]).await;
    let api = serve_api(&node, None).await;
    let long_key = "k".repeat(129);
    let ok = json!({"value": 1, "ttl_secs": 60});
    let cases: Vec<(&str, Request)> = vec![
        (
            "ttl_secs 0",
            Request::new("PUT", "/v1/sessions/k").json(&json!({"value": 1, "ttl_secs": 0})),
        ),
        (
            "ttl_secs over 30 days",
            Request::new("PUT", "/v1/sessions/k").json(&json!({"value": 1, "ttl_secs": 2_592_001})),
        ),
        (
            "a key of 129 bytes",
            Request::new("PUT", &format!("/v1/sessions/{long_key}")).json(&ok),
        ),
        ("bad JSON", Request::new("PUT", "/v1/sessions/k").body("{\"value\": ")),
        (
            "an unknown field",
            Request::new("PUT", "/v1/sessions/k").json(&json!({"value": 1, "ttl_secs": 60, "ttl": 1})),
        ),
        (
            "no value",
            Request::new("PUT", "/v1/sessions/k").json(&json!({"ttl_secs": 60})),
        ),
        (
            "an empty owner",
            Request::new("PUT", "/v1/sessions/k").json(&json!({"value": 1, "ttl_secs": 60, "owner": ""})),
        ),
        (
            "a value over 64 KiB",
            Request::new("PUT", "/v1/sessions/k").json(&json!({"value": "x".repeat(70_000), "ttl_secs": 60})),
        ),
        (
            "an unknown query parameter",
            Request::new("PUT", "/v1/sessions/k?ack=1").json(&ok),
        ),
        (
            "timeout_ms over the limit",
            Request::new("PUT", "/v1/sessions/k?acks=1&timeout_ms=300001").json(&ok),
        ),
        (
            "a touch with ttl_secs 0",
            Request::new("POST", "/v1/sessions/k/touch").json(&json!({"ttl_secs": 0})),
        ),
        (
            "a revoke of a 129-byte key",
            Request::new("DELETE", &format!("/v1/sessions/{long_key}")),
        ),
        (
            "an owner of 129 bytes",
            Request::new("DELETE", &format!("/v1/owners/{long_key}/sessions")),
        ),
    ];
    for (what, request) in cases {
        let answer = request.send(api).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.text());
        let error = answer.json()["error"].as_str().expect("error").to_string();
        assert_eq!(error.lines().count(), 1, "{what}: {error}");
    }
    // Nothing was written; a 128-byte key is fine.
    assert_eq!(node.node().clock().expect("clock").len(), 0);
    let answer = put(api, &"k".repeat(128), ok).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let missing = get(api, "/v1/sessions/never").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
    assert_eq!(delete(api, "/v1/view/digest").await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_routes_need_the_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let node = nodes::start_sessions(&nodes::make_dir(tmp.path(), "a", &key), vec![]).await;
    let api = serve_api(&node, ApiToken::new("t0ken")).await;
    let body = json!({"value": 1, "ttl_secs": 60});
    assert_eq!(put(api, "k", body.clone()).await.status, 401);
    assert_eq!(get(api, "/v1/view/digest").await.status, 401);
    assert_eq!(delete(api, "/v1/owners/o/sessions").await.status, 401);
    let with = |method: &str, path: &str| Request::new(method, path).bearer("t0ken");
    assert_eq!(with("PUT", "/v1/sessions/k").json(&body).send(api).await.status, 200);
    assert_eq!(with("GET", "/v1/sessions/k").send(api).await.json()["value"], 1);
    assert_eq!(with("GET", "/v1/view/digest").send(api).await.json()["sessions"], 1);
}

/// The 409 answer of a refused write: its one-line reason, and nothing appended.
async fn refused(api: SocketAddr, node: &Node, request: Request, reason: &str) {
    let before = node.clock().expect("clock");
    let answer = request.send(api).await;
    assert_eq!(answer.status, 409, "{}", answer.text());
    assert_eq!(answer.json()["error"], format!("refused: {reason}"));
    assert_eq!(node.clock().expect("clock"), before, "a refused write appended");
}

fn touch_request(key: &str) -> Request {
    Request::new("POST", &format!("/v1/sessions/{key}/touch")).json(&json!({"ttl_secs": 60}))
}

fn put_request(key: &str) -> Request {
    Request::new("PUT", &format!("/v1/sessions/{key}")).json(&json!({"value": 1, "ttl_secs": 60}))
}

#[tokio::test]
async fn writes_to_a_revoked_key_are_409_and_append_nothing() {
    let Pair { a, api_a, _tmp, .. } = pair().await;
    assert_eq!(
        put(api_a, "gone", json!({"value": 1, "ttl_secs": 60})).await.status,
        200
    );
    assert_eq!(delete(api_a, "/v1/sessions/gone").await.status, 200);
    let revoked = "the session key is revoked";
    refused(api_a, a.node(), put_request("gone"), revoked).await;
    refused(api_a, a.node(), touch_request("gone"), revoked).await;
    refused(api_a, a.node(), Request::new("DELETE", "/v1/sessions/gone"), revoked).await;
    // Another key is written as before.
    assert_eq!(
        put(api_a, "other", json!({"value": 1, "ttl_secs": 60})).await.status,
        200
    );
}

#[tokio::test]
async fn session_writes_from_a_node_not_admitted_are_409() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let dir = nodes::make_dir(tmp.path(), "outsider", &key);
    // The network's only admin is some other feed, which never admitted this one.
    feedmesh::node_dir::NodeDir::open(&dir)
        .unwrap()
        .set_admins(&[feedmesh::feed::FeedId([9; 32])])
        .unwrap();
    let node = nodes::start_sessions(&dir, vec![]).await;
    let api = serve_api(&node, None).await;
    let not_member = "this node is not a member of the network";
    refused(api, node.node(), put_request("s"), not_member).await;
    refused(api, node.node(), touch_request("s"), not_member).await;
    refused(api, node.node(), Request::new("DELETE", "/v1/sessions/s"), not_member).await;
    refused(
        api,
        node.node(),
        Request::new("DELETE", "/v1/owners/alice/sessions"),
        not_member,
    )
    .await;
}

#[tokio::test]
async fn preconditions_make_create_and_update_and_owners_are_listed() {
    let Pair {
        a,
        b,
        api_a,
        api_b,
        _tmp,
    } = pair().await;
    let create = |key: &str, value: i64| {
        Request::new("PUT", &format!("/v1/sessions/{key}"))
            .header("If-None-Match", "*")
            .json(&json!({"value": value, "ttl_secs": 60, "owner": "bob"}))
    };
    let update = |key: &str, value: i64| {
        Request::new("PUT", &format!("/v1/sessions/{key}"))
            .header("If-Match", "*")
            .json(&json!({"value": value, "ttl_secs": 60, "owner": "bob"}))
    };
    assert_eq!(create("s1", 1).send(api_a).await.status, 200);
    assert_eq!(create("s2", 2).send(api_a).await.status, 200);

    // Once b holds them, a create there is 412 and writes nothing.
    status_becomes(api_b, "/v1/sessions/s2", 200).await;
    let before = b.node().clock().expect("clock");
    let answer = create("s1", 9).send(api_b).await;
    assert_eq!(answer.status, 412, "{}", answer.text());
    assert_eq!(answer.json()["error"], "refused: a live session exists under the key");
    let answer = update("never", 9).send(api_b).await;
    assert_eq!(answer.status, 412, "{}", answer.text());
    assert_eq!(answer.json()["error"], "refused: no live session under the key");
    assert_eq!(
        b.node().clock().expect("clock"),
        before,
        "a failed precondition appended"
    );

    assert_eq!(update("s1", 3).send(api_b).await.status, 200);
    let read = get(api_b, "/v1/sessions/s1").await.json();
    assert_eq!(read["value"], 3);
    let ttl_ms = read["ttl_ms"].as_u64().expect("ttl_ms");
    assert!(
        ttl_ms <= 60_000 && ttl_ms > 60_000 - DEADLINE.as_millis() as u64,
        "{ttl_ms}"
    );

    // Unsupported precondition values are 400.
    let answer = Request::new("PUT", "/v1/sessions/s1")
        .header("If-Match", "\"etag\"")
        .json(&json!({"value": 1, "ttl_secs": 60}))
        .send(api_b)
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text());

    let listed = get(api_b, "/v1/owners/bob/sessions").await.json();
    assert_eq!(listed["count"], 2);
    let keys: Vec<&str> = (listed["sessions"].as_array().unwrap().iter())
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["s1", "s2"]);
    assert_eq!(listed["sessions"][0]["author"], b.node().id().to_string());

    let answer = delete(api_b, "/v1/owners/bob/sessions").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["revoked"], 2);
    assert_eq!(get(api_b, "/v1/owners/bob/sessions").await.json()["count"], 0);
    // A revoked session cannot be updated back to life.
    status_becomes(api_a, "/v1/sessions/s1", 404).await;
    assert_eq!(update("s1", 4).send(api_a).await.status, 409);
    let _ = a;
}
