//! The session example app (examples/session_app) served by three instances
//! at once, each next to its own feedmesh node, as real HTTP servers on
//! loopback, driven like a browser: a cookie jar per user agent. A login on
//! one instance is recognised on the others, a logout on a third rejects
//! the cookie everywhere, "log out everywhere" rejects every cookie of the
//! user (and only of that user), and forged cookies get nothing.

#[path = "../../examples/session_app/app.rs"]
mod app;
use crate::common::http;
use crate::common::nodes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use feedmesh::net::NetworkKey;
use feedmesh::node::Node;
use feedmesh::sessions::Sessions;
use http::{Request, Response};
use nodes::{addr, localhost, make_dir, start_sessions};
use serde_json::json;
use tempfile::TempDir;
use tokio::time::Instant;

/// Every wait in these tests ends by this long.
const DEADLINE: Duration = Duration::from_secs(15);

/// One instance: a node and the app serving HTTP next to it.
struct Instance {
    node: Node,
    http: SocketAddr,
}

/// Three nodes in a full mesh, each with the app on its own HTTP listener;
/// returns once every node is connected to both others.
async fn three_instances(root: &TempDir) -> Vec<Instance> {
    let key = NetworkKey::generate().expect("key");
    let mut nodes: Vec<Sessions> = Vec::new();
    for name in ["a", "b", "c"] {
        let peers = nodes.iter().map(|sessions| addr(sessions.node())).collect();
        nodes.push(start_sessions(&make_dir(root.path(), name, &key), peers).await);
    }
    let began = Instant::now();
    while !nodes.iter().all(|n| n.node().peers().len() == 2) {
        assert!(began.elapsed() < DEADLINE, "no full mesh in {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut instances = Vec::new();
    for sessions in nodes {
        let listener = tokio::net::TcpListener::bind(localhost()).await.expect("bind HTTP");
        let http = listener.local_addr().expect("HTTP address");
        // Each write waits for both other nodes: a cookie is usable
        // everywhere by the time the browser gets it (the polls below
        // still allow for a slow fold).
        let node = sessions.node().clone();
        let app = app::app(sessions, 2);
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        instances.push(Instance { node, http });
    }
    instances
}

/// A user agent: a cookie jar (name -> value) sent with every request and
/// updated from every `Set-Cookie`, removals included.
#[derive(Clone, Debug, Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser holding exactly `cookie` (`name=value`), e.g. a forged one.
    fn with_cookie(cookie: &str) -> Browser {
        let mut browser = Browser::default();
        browser.set_cookie(cookie);
        browser
    }

    async fn send(&mut self, at: SocketAddr, mut request: Request) -> Response {
        if !self.cookies.is_empty() {
            let header: Vec<String> = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
            request = request.header("Cookie", &header.join("; "));
        }
        let response = request.send(at).await;
        for set in response.header_values("set-cookie") {
            self.set_cookie(set);
        }
        response
    }

    /// Applies one `Set-Cookie` value: stores the cookie, or removes it if
    /// it is a removal (empty, `Max-Age=0`, as tower-cookies sends).
    fn set_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let (name, value) = parts
            .next()
            .and_then(|pair| pair.split_once('='))
            .expect("Set-Cookie name=value");
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        let removal = value.is_empty()
            || parts.any(|attribute| {
                let attribute = attribute.trim().to_ascii_lowercase();
                attribute == "max-age=0" || attribute.starts_with("max-age=-")
            });
        if removal {
            self.cookies.remove(&name);
        } else {
            self.cookies.insert(name, value);
        }
    }

    async fn login(&mut self, at: &Instance, user: &str) -> Response {
        self.send(at.http, Request::new("POST", "/login").json(&json!({ "user": user })))
            .await
    }

    async fn me(&mut self, at: &Instance) -> Response {
        self.send(at.http, Request::new("GET", "/me")).await
    }

    async fn post(&mut self, at: &Instance, path: &str) -> Response {
        self.send(at.http, Request::new("POST", path)).await
    }

    /// The session cookie's value.
    fn session(&self) -> Option<&str> {
        self.cookies.get("id").map(String::as_str)
    }
}

/// Polls `GET /me` on each of `instances` with (a copy of) `browser`'s
/// cookies until every one answers as expected: 200 with `user`, or 401
/// for `None`. A copy, so that an early answer (a 401 before the session
/// arrived, which also clears the cookie) does not change the browser.
async fn me_everywhere(browser: &Browser, instances: &[&Instance], user: Option<&str>) {
    for instance in instances {
        let began = Instant::now();
        loop {
            let answer = browser.clone().me(instance).await;
            let expected = match user {
                Some(user) => answer.status == 200 && answer.json() == json!({ "user": user }),
                None => answer.status == 401,
            };
            if expected {
                break;
            }
            assert!(
                began.elapsed() < DEADLINE,
                "/me on {} still {} after {DEADLINE:?} (wanted {user:?}): {}",
                instance.http,
                answer.status,
                answer.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn shutdown(instances: Vec<Instance>) {
    for instance in instances {
        instance.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_on_one_recognised_on_another_logout_on_a_third() {
    let root = TempDir::new().unwrap();
    let instances = three_instances(&root).await;
    let [one, two, three] = [&instances[0], &instances[1], &instances[2]];

    let mut alice = Browser::default();
    let answer = alice.login(one, "alice").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json(), json!({ "user": "alice" }));
    let set_cookie = answer.header("set-cookie").expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    let first = alice.session().expect("cookie kept").to_string();

    // Recognised on the second instance, then on all three.
    me_everywhere(&alice, &[two], Some("alice")).await;
    me_everywhere(&alice, &[one, two, three], Some("alice")).await;

    // Logging in again (on instance 2) gives a new id; the old one is revoked.
    let stale = alice.clone();
    let answer = alice.login(two, "alice").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let second = alice.session().expect("cookie kept").to_string();
    assert_ne!(first, second, "the id is cycled on login");
    me_everywhere(&alice, &[one, two, three], Some("alice")).await;
    me_everywhere(&stale, &[one, two, three], None).await;

    // Log out on the third: the browser's cookie is cleared, and a copy of
    // it (a stolen one) is refused on every instance.
    let stolen = alice.clone();
    let answer = alice.post(three, "/logout").await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(alice.session(), None, "the logout clears the cookie");
    me_everywhere(&stolen, &[one, two, three], None).await;
    assert_eq!(alice.me(one).await.status, 401);

    shutdown(instances).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_everywhere_rejects_every_cookie_of_the_user_only() {
    let root = TempDir::new().unwrap();
    let instances = three_instances(&root).await;
    let [one, two, three] = [&instances[0], &instances[1], &instances[2]];
    let all = [one, two, three];

    // Bob on two devices (two instances), Carol on a third.
    let (mut laptop, mut phone, mut carol) = (Browser::default(), Browser::default(), Browser::default());
    assert_eq!(laptop.login(one, "bob").await.status, 200);
    assert_eq!(phone.login(two, "bob").await.status, 200);
    assert_eq!(carol.login(three, "carol").await.status, 200);
    assert_ne!(laptop.session(), phone.session());
    for (browser, user) in [(&laptop, "bob"), (&phone, "bob"), (&carol, "carol")] {
        me_everywhere(browser, &all, Some(user)).await;
    }

    // Bob logs out everywhere from his laptop, on instance 3.
    let phone_copy = phone.clone();
    let laptop_copy = laptop.clone();
    let answer = laptop.post(three, "/logout-everywhere").await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(laptop.session(), None, "the answer clears the cookie");
    me_everywhere(&laptop_copy, &all, None).await;
    me_everywhere(&phone_copy, &all, None).await;
    assert_eq!(phone.me(one).await.status, 401);
    // Carol is still logged in everywhere.
    me_everywhere(&carol, &all, Some("carol")).await;

    // Bob can log in again: a new session, not caught by the old revocation.
    assert_eq!(phone.login(one, "bob").await.status, 200);
    me_everywhere(&phone, &all, Some("bob")).await;

    shutdown(instances).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_or_missing_cookies_are_refused_and_forms_log_in() {
    let root = TempDir::new().unwrap();
    let instances = three_instances(&root).await;
    let all: Vec<&Instance> = instances.iter().collect();

    // No cookie, a well-formed id no one issued, and garbage.
    let mut nobody = Browser::default();
    for instance in &all {
        assert_eq!(nobody.me(instance).await.status, 401);
        assert_eq!(nobody.post(instance, "/logout-everywhere").await.status, 401);
    }
    let forged = Browser::with_cookie("id=AAAAAAAAAAAAAAAAAAAAAA");
    let garbage = Browser::with_cookie("id=not-a-session-id");
    for browser in [&forged, &garbage] {
        me_everywhere(browser, &all, None).await;
    }
    let mut forger = forged.clone();
    assert_eq!(forger.me(all[0]).await.status, 401);
    assert_eq!(forger.session(), None, "an unknown session's cookie is cleared");

    // A form login works like a JSON one; bad names are refused.
    let mut dave = Browser::default();
    let form = Request::new("POST", "/login")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("user=dave");
    let answer = dave.send(all[1].http, form).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    me_everywhere(&dave, &all, Some("dave")).await;
    for bad in [String::new(), "x".repeat(129)] {
        let answer = Browser::default().login(all[0], &bad).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
    }

    shutdown(instances).await;
}
