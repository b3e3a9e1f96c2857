//! The audit over HTTP (src/api/audit.rs) on in-process nodes: the three
//! report routes (JSON lines, the token rule, the 400 cases, peers' claims
//! in the health report), and the `/audit` page driven in headless Chromium
//! through chromedriver (W3C WebDriver; `common/webdriver.rs`).

use crate::common::api;
use crate::common::http;
use crate::common::nodes;
use crate::common::webdriver;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::serve_api;
use feedmesh::api::ApiToken;
use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use http::{DEADLINE, Request, Response, get};
use serde_json::{Value, json};
use webdriver::{Browser, Driver, browser_available};

/// The token of the APIs below.
const TOKEN: &str = "audit-token";
/// The key put, touched then revoked.
const REVOKED: &str = "s-revoked";
const HOUR: Duration = Duration::from_secs(3600);

/// A node with its API on loopback (token [`TOKEN`]) that wrote a put, a
/// touch and a revoke of [`REVOKED`], and a put of `s-live`.
struct Fixture {
    node: Node,
    api: SocketAddr,
    key: NetworkKey,
    tmp: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = NetworkKey::generate().expect("key");
    let sessions = nodes::start_sessions(&nodes::make_dir(tmp.path(), "a", &key), vec![]).await;
    let value = json!({"user": "alice <b>&amp;</b>"});
    sessions.put(REVOKED, &value, HOUR, Some("alice")).await.expect("put");
    sessions.touch(REVOKED, 2 * HOUR).await.expect("touch");
    sessions.revoke(REVOKED).await.expect("revoke");
    sessions.put("s-live", &json!(1), HOUR, None).await.expect("put");
    let api = serve_api(&sessions, ApiToken::new(TOKEN)).await;
    let node = sessions.node().clone();
    Fixture { node, api, key, tmp }
}

/// `GET path` with the token.
async fn get_with_token(api: SocketAddr, path: &str) -> Response {
    Request::new("GET", path).bearer(TOKEN).send(api).await
}

/// The JSON lines of a 200 answer.
fn lines(answer: &Response) -> Vec<Value> {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/x-ndjson"));
    answer
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// `(op, effect)` of each `op` line.
fn effects(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|line| line["line"] == "op")
        .map(|line| {
            (
                line["op"].as_str().unwrap().into(),
                line["effect"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_the_reports_as_json_lines() {
    let Fixture {
        node, api, tmp: _tmp, ..
    } = fixture().await;
    let length = node.clock().expect("clock")[&node.id()];

    let session = lines(&get_with_token(api, &format!("/v1/audit/sessions/{REVOKED}")).await);
    assert_eq!(
        effects(&session),
        [("put", "applied"), ("touch", "applied"), ("revoke", "applied")].map(|(o, e)| (o.into(), e.into()))
    );
    let state = session.last().expect("state line");
    assert_eq!((&state["line"], &state["status"]), (&json!("state"), &json!("revoked")));

    let id = node.id().to_string();
    let member = lines(&get_with_token(api, &format!("/v1/audit/members/{id}?since=0")).await);
    assert_eq!(effects(&member).len(), 4, "{member:?}");
    let summary = member.last().expect("member line");
    assert_eq!(
        (&summary["role"], &summary["entries"]),
        (&json!("open"), &json!(length))
    );
    let future = lines(&get_with_token(api, &format!("/v1/audit/members/{id}?since=32503680000000")).await);
    assert_eq!(future.len(), 1, "nothing written in the year 3000: {future:?}");

    let health = lines(&get_with_token(api, "/v1/audit/health").await);
    assert_eq!(health[0]["feed"], id);
    assert_eq!(health[0]["length"], length);
    assert_eq!(health.last().expect("health line")["entries"], length);

    for (path, status) in [
        ("/v1/audit/health", 401),
        ("/v1/audit/sessions/x", 401),
        ("/audit", 200),
        ("/audit?token=x", 200),
    ] {
        let answer = get(api, path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
    }
    let page = get(api, "/audit").await;
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'"))
    );
    for path in [
        "/v1/audit/members/feed_nothex",
        &format!("/v1/audit/members/{id}?since=5&until=4"),
        &format!("/v1/audit/members/{id}?from=1"),
        &format!("/v1/audit/sessions/{}", "k".repeat(129)),
    ] {
        let answer = get_with_token(api, path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_what_peers_claimed() {
    let Fixture {
        node: a,
        key,
        tmp,
        api: _,
    } = fixture().await;
    let length = a.clock().expect("clock")[&a.id()];
    let b = nodes::start_sessions(&nodes::make_dir(tmp.path(), "b", &key), vec![nodes::addr(&a)]).await;
    let api_b = serve_api(&b, None).await;

    let a_id = a.id().to_string();
    let start = Instant::now();
    loop {
        let health = lines(&get(api_b, "/v1/audit/health").await);
        let claims = health
            .iter()
            .find(|line| line["line"] == "feed" && line["feed"] == a_id)
            .map(|line| line["peer_claims"].clone());
        if let Some(claims) = claims
            && claims[0]["peer"] == a_id
            && claims[0]["claimed"] == length
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "B's health never showed A's claim: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Searches `value` in the form of `input` (typed) and `button` (clicked).
async fn search(browser: &Browser<'_>, input: &str, button: &str, value: &str) {
    let field = browser.find(input).await;
    browser.send_keys(&field, value).await;
    browser.click(&browser.find(button).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_shows_timelines_members_and_health() {
    if !browser_available() {
        return;
    }
    let started = Instant::now();
    let Fixture {
        node, api, tmp: _tmp, ..
    } = fixture().await;
    let driver = Driver::start().await;
    let browser = driver.session().await;
    browser.goto(&format!("http://{api}/audit?token={TOKEN}")).await;

    // Health, loaded on open: the node's feed and its length.
    let id = node.id().to_string();
    let length = node.clock().expect("clock")[&node.id()].to_string();
    let row = format!("#health tr[data-feed=\"{id}\"]");
    let shown = browser
        .wait_for(
            "the health panel lists the node's feed",
            &format!("{row} td.length"),
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(shown, [length.as_str()], "{:?}", browser.texts("#error").await);
    assert_eq!(browser.texts(&format!("{row} td.feed")).await, [&id[..13]]);

    // The session timeline, in fold order, with effects and the state.
    search(&browser, "#session-key", "#session-search", REVOKED).await;
    let ops = browser
        .wait_for("the timeline shows three operations", "#timeline td.op", |t| {
            t.len() == 3
        })
        .await;
    assert_eq!(ops, ["put", "touch", "revoke"]);
    assert_eq!(
        browser.texts("#timeline td.effect").await,
        ["applied", "applied", "applied"]
    );
    let effect = browser.find("#timeline tr[data-op=\"revoke\"] td.effect").await;
    assert_eq!(
        browser.attribute(&effect, "class").await.as_deref(),
        Some("effect effect-applied")
    );
    let detail = browser.texts("#timeline tr[data-op=\"put\"] td.detail").await;
    assert!(
        detail[0].contains("alice <b>&amp;</b>"),
        "data inserted as text: {detail:?}"
    );
    assert_eq!(browser.texts("#timeline td.author").await[0], &id[..13]);
    let state = browser
        .wait_for("the state shows", "#state td.status", |t| !t.is_empty())
        .await;
    assert_eq!(state, ["revoked"]);

    // The member search: everything the node wrote.
    search(&browser, "#member-id", "#member-search", &id).await;
    let ops = browser
        .wait_for("the member's operations show", "#member-ops td.op", |t| t.len() == 4)
        .await;
    assert_eq!(ops, ["put", "touch", "revoke", "put"]);
    assert_eq!(browser.texts("#member-summary td.entries").await, [length]);
    assert_eq!(browser.texts("#error").await, [""]);

    browser.quit().await;
    drop(driver);
    eprintln!("browser test took {:?}", started.elapsed());
}
