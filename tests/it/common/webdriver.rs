//! A tiny W3C WebDriver client for the browser tests, over the HTTP client
//! of `common/http.rs`: Debian's `chromedriver` started on a free loopback
//! port, driving Debian's `chromium` headless with a fresh profile.
//!
//! ```ignore
//! if !webdriver::browser_available() { return; }
//! let driver = Driver::start().await;
//! let browser = driver.session().await;
//! browser.goto("http://127.0.0.1:8080/audit").await;
//! let key = browser.find("#session-key").await;
//! browser.send_keys(&key, "s1").await;
//! browser.quit().await;
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::{DEADLINE, Request};

/// Debian's Chromium (package `chromium`).
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver (package `chromium-driver`).
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The environment variable that lets a machine without them skip the
/// browser tests (`FEEDMESH_SKIP_BROWSER=1`).
pub(crate) const SKIP_VARIABLE: &str = "FEEDMESH_SKIP_BROWSER";

/// The key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether a browser test can run: `true` with both programs installed;
/// `false` (with a line on standard error) when one is missing and
/// [`SKIP_VARIABLE`] is `1`; a panic naming the packages to install
/// otherwise.
pub(crate) fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|program| !Path::new(program).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(" and ");
    if std::env::var(SKIP_VARIABLE).as_deref() == Ok("1") {
        eprintln!("skipping the browser test: {missing} missing and {SKIP_VARIABLE}=1");
        return false;
    }
    panic!(
        "{missing} missing: install the Debian packages `chromium chromium-driver` (apt-get install -y chromium \
         chromium-driver; .ci/run installs them), or set {SKIP_VARIABLE}=1 to skip the browser tests"
    );
}

/// A running `chromedriver`, with the temporary directory holding its log
/// and the browser profiles. On drop (a test that panicked included) it
/// ends the sessions not ended by [`Browser::quit`] (Chromium outlives a
/// killed chromedriver), then kills chromedriver.
pub(crate) struct Driver {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    sessions: Mutex<Vec<String>>,
}

impl Driver {
    /// Starts `chromedriver` on a free loopback port and waits (at most
    /// [`DEADLINE`]) until it is ready.
    pub(crate) async fn start() -> Driver {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", dir.path().join("chromedriver.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
            sessions: Mutex::new(Vec::new()),
        };
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(driver.addr).await.is_ok() {
                let status = Request::new("GET", "/status").send(driver.addr).await;
                if status.status == 200 && status.json()["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(start.elapsed() < DEADLINE, "chromedriver not ready after {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser session: headless Chromium with a fresh profile.
    pub(crate) async fn session(&self) -> Browser<'_> {
        let profile = tempfile::tempdir_in(self.dir.path()).expect("profile dir");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            format!("--user-data-dir={}", profile.keep().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let answer = command(self.addr, "POST", "/session", Some(&capabilities)).await;
        let id = answer.expect("new WebDriver session")["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        self.sessions.lock().expect("sessions").push(id.clone());
        Browser { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let open = std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for id in open {
            delete_session_blocking(self.addr, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("chromedriver log (last lines):");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
    }
}

/// `DELETE /session/{id}` without async (for [`Drop`]): waits, at most
/// 10 s, for the first bytes of the answer; ignores every error.
fn delete_session_blocking(driver: SocketAddr, id: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(&driver, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("DELETE /session/{id} HTTP/1.1\r\nHost: {driver}\r\nContent-Length: 0\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read(&mut [0; 256]);
    }
}

/// One WebDriver command: its `value`, or the WebDriver error as
/// `Err("error: message")`.
async fn command(driver: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let request = Request::new(method, path);
    let request = match body {
        Some(body) => request.json(body),
        None => request,
    };
    let answer = request.send(driver).await;
    let value = answer.json()["value"].take();
    if answer.status == 200 {
        Ok(value)
    } else {
        Err(format!("{} {}: {}", answer.status, value["error"], value["message"]))
    }
}

/// An element of the page, as WebDriver names it.
#[derive(Clone, Debug)]
pub(crate) struct Element(String);

/// A browser session; [`Browser::quit`] ends it.
pub(crate) struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Browser<'_> {
    /// A command of this session (`path` below `/session/{id}`); panics on a
    /// WebDriver error.
    async fn run(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        command(self.driver.addr, method, &path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {method} {path}: {error}"))
    }

    /// Opens `url` (returns once the page has loaded).
    pub(crate) async fn goto(&self, url: &str) {
        self.run("POST", "/url", Some(&json!({ "url": url }))).await;
    }

    /// The elements matching the CSS selector `css`, in document order.
    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .run(
                "POST",
                "/elements",
                Some(&json!({"using": "css selector", "value": css})),
            )
            .await;
        let found = found.as_array().cloned().unwrap_or_default();
        found
            .iter()
            .map(|element| Element(element[ELEMENT_KEY].as_str().expect("element reference").to_string()))
            .collect()
    }

    /// The first element matching `css`; panics if there is none.
    pub(crate) async fn find(&self, css: &str) -> Element {
        let found = self.find_all(css).await;
        found
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    /// Types `text` into `element`.
    pub(crate) async fn send_keys(&self, element: &Element, text: &str) {
        let path = format!("/element/{}/value", element.0);
        self.run("POST", &path, Some(&json!({ "text": text }))).await;
    }

    /// Clicks `element`.
    pub(crate) async fn click(&self, element: &Element) {
        self.run("POST", &format!("/element/{}/click", element.0), Some(&json!({})))
            .await;
    }

    /// The rendered text of `element`.
    pub(crate) async fn text(&self, element: &Element) -> String {
        let text = self.run("GET", &format!("/element/{}/text", element.0), None).await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// The texts of every element matching `css`.
    pub(crate) async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.find_all(css).await {
            texts.push(self.text(&element).await);
        }
        texts
    }

    /// The attribute `name` of `element` (`None` if absent).
    pub(crate) async fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        let path = format!("/element/{}/attribute/{name}", element.0);
        self.run("GET", &path, None).await.as_str().map(str::to_string)
    }

    /// Polls (every 50 ms, at most [`DEADLINE`]) the texts of the elements
    /// matching `css` until `ready` holds for them; returns them. The
    /// panic names `what` and shows the last texts.
    pub(crate) async fn wait_for(&self, what: &str, css: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
        let start = Instant::now();
        loop {
            let texts = self.texts(css).await;
            if ready(&texts) {
                return texts;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting until {what}; {css} shows {texts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the session (closes the browser).
    pub(crate) async fn quit(self) {
        self.run("DELETE", "", None).await;
        (self.driver.sessions.lock().expect("sessions")).retain(|id| *id != self.id);
    }
}
