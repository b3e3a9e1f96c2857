//! A tiny HTTP/1.1 client for the integration tests: one request per
//! connection (`Connection: close`), any method, optional bearer token and
//! request headers, every response header kept (repeated ones such as
//! `Set-Cookie` included). Every exchange is bounded by [`DEADLINE`].
//!
//! ```ignore
//! let answer = Request::new("PUT", "/v1/sessions/s1")
//!     .json(&serde_json::json!({"value": 1, "ttl_secs": 60}))
//!     .bearer("token")
//!     .header("Cookie", "sid=s1")
//!     .send(addr)
//!     .await;
//! assert_eq!(answer.status, 200, "{}", answer.text());
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every exchange ends by this long.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// An HTTP request being built; [`Request::send`] sends it.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request `METHOD PATH` (`path` with its query string) with no body.
    pub(crate) fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds the request header `name: value` (any number, repeats allowed).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `Authorization: Bearer TOKEN`.
    pub(crate) fn bearer(self, token: &str) -> Request {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// Sets the body (its `Content-Length` is always sent).
    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets `value` as a JSON body, with its content type.
    pub(crate) fn json(self, value: &Value) -> Request {
        self.header("Content-Type", "application/json").body(value.to_string())
    }

    /// Sends the request on a fresh connection to `addr`; panics on an I/O
    /// error, a malformed answer or after [`DEADLINE`].
    pub(crate) async fn send(self, addr: SocketAddr) -> Response {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect to the API");
            let mut head = format!(
                "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
                self.method,
                self.path,
                self.body.len()
            );
            for (name, value) in &self.headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.expect("write request");
            stream.write_all(&self.body).await.expect("write body");
            // To the end of the body by its Content-Length, or of the stream:
            // some servers (chromedriver) keep the connection open.
            let mut raw = Vec::new();
            let mut chunk = [0; 16 * 1024];
            while !Response::complete(&raw) {
                let read = stream.read(&mut chunk).await.expect("read response");
                if read == 0 {
                    break;
                }
                raw.extend_from_slice(&chunk[..read]);
            }
            raw
        };
        let raw = tokio::time::timeout(DEADLINE, exchange)
            .await
            .expect("response in time");
        Response::parse(&raw)
    }
}

/// An HTTP response: status, headers (lowercase names, in order, repeats
/// kept), body.
#[derive(Clone, Debug)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// Every header, name lowercased, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// Whether `raw` holds the whole head and a body as long as its
    /// `Content-Length` (`false` without one: read to the end).
    fn complete(raw: &[u8]) -> bool {
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let length = String::from_utf8_lossy(&raw[..split])
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok());
        length.is_some_and(|length| raw.len() >= split + 4 + length)
    }

    fn parse(raw: &[u8]) -> Response {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
        let head = String::from_utf8(raw[..split].to_vec()).expect("utf-8 head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let response = Response {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        };
        assert!(
            response
                .header("transfer-encoding")
                .is_none_or(|v| !v.contains("chunked")),
            "this client reads only length-delimited bodies"
        );
        response
    }

    /// The body as JSON; panics (showing the body) if it is not.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as UTF-8 text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }

    /// The first value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    /// Every value of header `name` (any case), in order: e.g. each
    /// `Set-Cookie`.
    pub(crate) fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// `GET path` with no token.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Response {
    Request::new("GET", path).send(addr).await
}

/// `POST path` with `body` and no token.
pub(crate) async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Response {
    Request::new("POST", path).body(body).send(addr).await
}
