//! `feedmesh session ...`: the session routes of a running node's HTTP API
//! (`PUT`/`GET`/`DELETE /v1/sessions/KEY`, `POST /v1/sessions/KEY/touch`,
//! `DELETE /v1/owners/OWNER/sessions`, `GET /v1/view/digest`), each
//! printing the API's JSON answer on one line.

mod http;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use feedmesh::api::DEFAULT_ACK_TIMEOUT;
use serde_json::{Value, json};

use http::{ApiClient, path_segment};

/// Which node's API, and how to get in.
#[derive(clap::Args)]
pub(crate) struct ApiArgs {
    /// The node's HTTP API: HOST:PORT or http://HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    api: String,
    /// File holding the API's bearer token (for an API started with --api-token-file).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// How many peers a write waits for.
#[derive(clap::Args)]
pub(crate) struct AckArgs {
    /// Answer only once this many connected peers hold the write (exit 1 if
    /// they do not in time; the write is made all the same).
    #[arg(long, value_name = "K")]
    acks: Option<usize>,
    /// How long to wait for --acks, in milliseconds [default: 5000].
    #[arg(long, value_name = "T", requires = "acks")]
    timeout_ms: Option<u64>,
}

impl AckArgs {
    /// The query string (`?acks=K&timeout_ms=T`, or empty) and the longest
    /// wait it asks for.
    fn query(&self) -> (String, Duration) {
        let wait = self.timeout_ms.map_or(DEFAULT_ACK_TIMEOUT, Duration::from_millis);
        match (self.acks, self.timeout_ms) {
            (None, _) => (String::new(), Duration::ZERO),
            (Some(acks), None) => (format!("?acks={acks}"), wait),
            (Some(acks), Some(ms)) => (format!("?acks={acks}&timeout_ms={ms}"), wait),
        }
    }
}

/// The `session` subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum SessionCommand {
    /// Create or replace session KEY; prints {"author", "seq", "expires_at" (ms since the epoch)}.
    Put {
        #[command(flatten)]
        api: ApiArgs,
        /// The session key (1 to 128 bytes).
        key: String,
        /// The session data: any JSON.
        #[arg(long, value_parser = parse_json)]
        value: Value,
        /// Time to live in seconds (1 to 2592000, 30 days).
        #[arg(long)]
        ttl_secs: u64,
        /// The owner (for example a user id), for revoke-owner.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        acks: AckArgs,
    },
    /// Print live session KEY: {"value", "expires_at", "owner", "author", "seq"}; exit 1 if there is none.
    Get {
        #[command(flatten)]
        api: ApiArgs,
        /// The session key.
        key: String,
    },
    /// Extend session KEY's expiry to at least now + --ttl-secs.
    Touch {
        #[command(flatten)]
        api: ApiArgs,
        /// The session key.
        key: String,
        /// Time to live from now, in seconds (1 to 2592000).
        #[arg(long)]
        ttl_secs: u64,
        #[command(flatten)]
        acks: AckArgs,
    },
    /// Revoke session KEY for good (logout).
    Revoke {
        #[command(flatten)]
        api: ApiArgs,
        /// The session key.
        key: String,
        #[command(flatten)]
        acks: AckArgs,
    },
    /// Revoke every session OWNER put so far ("log out everywhere").
    RevokeOwner {
        #[command(flatten)]
        api: ApiArgs,
        /// The owner.
        owner: String,
        #[command(flatten)]
        acks: AckArgs,
    },
    /// Print the node's view digest, clock and session counts.
    Digest {
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
}

/// Runs `command` against the API it names; prints the answer on `out`.
pub(crate) fn run(command: SessionCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let (api, method, path, body, acks) = match &command {
        SessionCommand::Put {
            api,
            key,
            value,
            ttl_secs,
            owner,
            acks,
        } => (
            api,
            "PUT",
            format!("/v1/sessions/{}", path_segment(key)),
            Some(json!({ "value": value, "ttl_secs": ttl_secs, "owner": owner })),
            Some(acks),
        ),
        SessionCommand::Get { api, key } => (api, "GET", format!("/v1/sessions/{}", path_segment(key)), None, None),
        SessionCommand::Touch {
            api,
            key,
            ttl_secs,
            acks,
        } => (
            api,
            "POST",
            format!("/v1/sessions/{}/touch", path_segment(key)),
            Some(json!({ "ttl_secs": ttl_secs })),
            Some(acks),
        ),
        SessionCommand::Revoke { api, key, acks } => (
            api,
            "DELETE",
            format!("/v1/sessions/{}", path_segment(key)),
            None,
            Some(acks),
        ),
        SessionCommand::RevokeOwner { api, owner, acks } => (
            api,
            "DELETE",
            format!("/v1/owners/{}/sessions", path_segment(owner)),
            None,
            Some(acks),
        ),
        SessionCommand::Digest { api } => (api, "GET", "/v1/view/digest".to_string(), None, None),
    };
    let (query, wait) = acks.map(AckArgs::query).unwrap_or_default();
    let client = ApiClient::new(&api.api, api.token_file.as_deref())?;
    let answer = client.call(method, &format!("{path}{query}"), body.as_ref(), wait)?;
    writeln!(out, "{answer}")?;
    Ok(())
}
