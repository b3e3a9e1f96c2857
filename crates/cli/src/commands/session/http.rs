//! A tiny blocking HTTP/1.1 client for the node's API: one request per
//! connection (`Connection: close`), JSON in and out, an optional bearer
//! token.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// How long connecting to the API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the API may take to answer, on top of any acknowledgement wait.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP API of one node.
pub(crate) struct ApiClient {
    /// `HOST:PORT`.
    authority: String,
    token: Option<String>,
}

impl ApiClient {
    /// The API at `api` (`HOST:PORT` or `http://HOST:PORT`), with the bearer
    /// token read from `token_file` if given.
    pub(crate) fn new(api: &str, token_file: Option<&Path>) -> anyhow::Result<ApiClient> {
        let authority = api.strip_prefix("http://").unwrap_or(api);
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) || !authority.contains(':') {
            bail!("--api {api:?} is not HOST:PORT or http://HOST:PORT");
        }
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the API token file {}", path.display()))?;
                let token = text.trim();
                if token.is_empty() {
                    bail!("the API token file {} is empty", path.display());
                }
                Some(token.to_string())
            }
            None => None,
        };
        Ok(ApiClient {
            authority: authority.to_string(),
            token,
        })
    }

    /// `METHOD PATH` with `body` as JSON; waits at most `wait` plus
    /// [`ANSWER_TIMEOUT`] for the answer. Returns the answer's JSON; a
    /// status other than 2xx is an error naming it and the API's message.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>, wait: Duration) -> anyhow::Result<Value> {
        let raw = self
            .exchange(method, path, body, wait)
            .with_context(|| format!("{method} http://{}{path}", self.authority))?;
        let (status, answer) =
            parse_response(&raw).with_context(|| format!("malformed answer from {}", self.authority))?;
        if !(200..300).contains(&status) {
            let message = answer
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| answer.to_string(), str::to_string);
            bail!("HTTP {status} from {method} {path}: {message}");
        }
        Ok(answer)
    }

    fn exchange(&self, method: &str, path: &str, body: Option<&Value>, wait: Duration) -> anyhow::Result<Vec<u8>> {
        let addrs: Vec<_> = self
            .authority
            .to_socket_addrs()
            .context("cannot resolve the API address")?
            .collect();
        let mut stream = addrs
            .iter()
            .find_map(|addr| TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).ok())
            .context("cannot connect to the API")?;
        stream.set_read_timeout(Some(wait + ANSWER_TIMEOUT))?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            self.authority,
            body.len()
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(raw)
    }
}

/// The status and the JSON body of a length-delimited (or closed) answer.
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Value)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("headers not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    if lines.any(|line| {
        line.split_once(':')
            .is_some_and(|(name, value)| name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked"))
    }) {
        bail!("chunked answers are not supported");
    }
    let body = &raw[split + 4..];
    let answer =
        serde_json::from_slice(body).with_context(|| format!("not JSON: {}", String::from_utf8_lossy(body).trim()))?;
    Ok((status, answer))
}

/// `text` as one path segment: every byte but `A-Z a-z 0-9 - . _ ~`
/// percent-encoded.
pub(crate) fn path_segment(text: &str) -> String {
    let mut segment = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            segment.push(char::from(byte));
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    segment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_or_without_the_scheme() {
        for api in ["127.0.0.1:8001", "http://127.0.0.1:8001", "http://127.0.0.1:8001/"] {
            assert_eq!(ApiClient::new(api, None).expect(api).authority, "127.0.0.1:8001");
        }
        for api in ["", "127.0.0.1", "http://h:1/v1", "https://h:1", "u@h:1"] {
            assert!(ApiClient::new(api, None).is_err(), "{api}");
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(path_segment("sid-1_a.b~"), "sid-1_a.b~");
        assert_eq!(path_segment("a/b c%é"), "a%2Fb%20c%25%C3%A9");
    }

    #[test]
    fn answers_parse() {
        let (status, body) =
            parse_response(b"HTTP/1.1 404 Not Found\r\ncontent-length: 15\r\n\r\n{\"error\":\"no\"}").expect("parse");
        assert_eq!(status, 404);
        assert_eq!(body["error"], "no");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").is_err());
    }
}
