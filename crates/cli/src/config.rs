//! The settings of `feedmesh serve`, from a TOML file in the node directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use feedmesh::node::{DEFAULT_MAX_CONNECTIONS, DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN, NodeConfig};

/// The config file's name in the node directory.
pub(crate) const CONFIG_FILE: &str = "feedmesh.toml";

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines (`"text"`).
    #[default]
    Text,
    /// One JSON object per line, for log shippers (`"json"`).
    Json,
}

/// The settings of `feedmesh serve`, as read from `DIR/feedmesh.toml`
/// ([`CONFIG_FILE`], or the file given with `--config`). Command-line flags
/// override the file, key by key (`--peer` flags replace the whole `peers`
/// list). Every key is optional; an unknown key is an error.
///
/// | key | type | default | meaning |
/// |---|---|---|---|
/// | `listen` | `"IP:PORT"` | none: required here or as `--listen` | address to accept peers on (port 0: any free port) |
/// | `peers` | `["IP:PORT", ...]` | `[]` | peers to dial and keep connected |
/// | `api` | `"IP:PORT"` | none: no HTTP API | address of the HTTP API ([`feedmesh::api`]) |
/// | `api_token_file` | path | none | file holding the API's bearer token (also the `AUTH` token of `resp`); required when `api` or `resp` is not loopback; a relative path is relative to the node directory |
/// | `resp` | `"IP:PORT"` | none: no Redis protocol endpoint | address of the Redis protocol endpoint ([`feedmesh::resp`]) |
/// | `log_format` | `"text"` or `"json"` | `"text"` | log format on standard error |
/// | `max_connections` | integer | 64 | most established inbound connections at once (at least 1) |
/// | `max_handshakes` | integer | 32 | most unfinished inbound handshakes at once (at least 1) |
/// | `max_handshakes_per_addr` | integer | 8 | most unfinished inbound handshakes from one IP address (at least 1) |
/// | `handshake_timeout_ms` | integer, ms | 5000 | time allowed for a handshake |
/// | `reconnect_min_ms` | integer, ms | 100 | first reconnect delay |
/// | `reconnect_max_ms` | integer, ms | 10000 | largest reconnect delay |
/// | `max_feeds` | integer | 64512 | in an open network, feeds taken from peers before only connected peers' own feeds are (spec/PROTOCOL.md §2.2) |
/// | `buffer_budget_bytes` | integer | 67108864 (64 MiB) | bytes of large incoming messages all connections may hold at once (at least one largest message, 4259840; spec/PROTOCOL.md §2.2 "Memory per node") |
/// | `outbox_budget_bytes` | integer | 134217728 (128 MiB) | bytes of messages all connections may hold waiting to be sent, an equal share each over `max_connections` + 8 reserved + `peers` (at least 1114377 each; spec/PROTOCOL.md §2.2 "Memory per node") |
/// | `ready_admin_within_ms` | integer, ms | 300000 | with admins, how recently an admin feed must have been heard from for `GET /v1/ready` |
/// | `snapshot_interval_ms` | integer, ms | 300000 | how often the session view is saved as a snapshot (if it changed; also at shutdown), which bounds what a restart after a crash re-folds (spec/SESSIONS.md §6.7) |
///
/// ```toml
/// listen = "0.0.0.0:7000"
/// peers = ["10.0.0.2:7000", "10.0.0.3:7000"]
/// api = "127.0.0.1:8080"
/// log_format = "json"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServeConfig {
    /// Address to accept peers on. Default none (then `--listen` is required).
    pub(crate) listen: Option<SocketAddr>,
    /// Peers to dial. Default none.
    pub(crate) peers: Vec<SocketAddr>,
    /// Address of the HTTP API. Default none (no API).
    pub(crate) api: Option<SocketAddr>,
    /// The API's bearer token file. Default none.
    pub(crate) api_token_file: Option<PathBuf>,
    /// Address of the Redis protocol endpoint. Default none.
    pub(crate) resp: Option<SocketAddr>,
    /// Log format. Default [`LogFormat::Text`].
    pub(crate) log_format: LogFormat,
    /// Most established inbound connections at once. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub(crate) max_connections: usize,
    /// Most unfinished inbound handshakes at once. Default
    /// [`feedmesh::net::DEFAULT_MAX_HANDSHAKES`].
    pub(crate) max_handshakes: usize,
    /// Most unfinished inbound handshakes from one IP address. Default
    /// [`feedmesh::net::DEFAULT_MAX_HANDSHAKES_PER_ADDR`].
    pub(crate) max_handshakes_per_addr: usize,
    /// Handshake timeout in milliseconds. Default 5,000.
    pub(crate) handshake_timeout_ms: u64,
    /// First reconnect delay in milliseconds. Default 100.
    pub(crate) reconnect_min_ms: u64,
    /// Largest reconnect delay in milliseconds. Default 10,000.
    pub(crate) reconnect_max_ms: u64,
    /// With admins, how recently an admin feed must have been heard from
    /// for readiness, in milliseconds. Default 300,000.
    pub(crate) ready_admin_within_ms: u64,
    /// How often the session view is saved as a snapshot, in milliseconds.
    /// Default [`feedmesh::node::DEFAULT_SNAPSHOT_INTERVAL`].
    pub(crate) snapshot_interval_ms: u64,
    /// In an open network, feeds taken from peers before only connected
    /// peers' own feeds are. Default [`feedmesh::sync::DEFAULT_FEED_BUDGET`].
    pub(crate) max_feeds: usize,
    /// Bytes of large incoming messages all connections may hold at once.
    /// Default [`feedmesh::net::DEFAULT_BUFFER_BUDGET`].
    pub(crate) buffer_budget_bytes: usize,
    /// Bytes of messages all connections may hold waiting to be sent.
    /// Default [`feedmesh::node::DEFAULT_OUTBOX_BUDGET`].
    pub(crate) outbox_budget_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        let node = NodeConfig::default();
        ServeConfig {
            listen: None,
            peers: Vec::new(),
            api: None,
            api_token_file: None,
            resp: None,
            log_format: LogFormat::Text,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: node.max_handshakes,
            max_handshakes_per_addr: node.max_handshakes_per_addr,
            handshake_timeout_ms: millis(node.handshake_timeout),
            reconnect_min_ms: millis(DEFAULT_RECONNECT_MIN),
            reconnect_max_ms: millis(DEFAULT_RECONNECT_MAX),
            ready_admin_within_ms: millis(node.ready_admin_within),
            snapshot_interval_ms: millis(node.snapshot_interval),
            max_feeds: node.max_feeds,
            buffer_budget_bytes: node.buffer_budget,
            outbox_budget_bytes: node.outbox_budget,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Errors of reading a [`ServeConfig`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or value.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error (0: unknown).
        line: usize,
        /// 1-based column of the error (0: unknown).
        column: usize,
        /// What is wrong, on one line.
        message: String,
    },
    /// No listen address, from the file or a flag.
    #[error("no listen address: give --listen ADDR or `listen` in the config file")]
    NoListen,
}

impl ServeConfig {
    /// Parses the TOML text of a config file; `path` names it in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<ServeConfig, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let (line, column) = match error.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    (line, column)
                }
                None => (0, 0),
            };
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: error.message().split_whitespace().collect::<Vec<_>>().join(" "),
            }
        })
    }

    /// Reads a config file. A missing file gives the defaults when
    /// `required` is false (the default `DIR/feedmesh.toml`), and an error
    /// otherwise (a file named with `--config`). Relative paths in the file
    /// (`api_token_file`) are resolved against `dir`, the node directory.
    pub(crate) fn load(path: &Path, required: bool, dir: &Path) -> Result<ServeConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(ServeConfig::default());
            }
            Err(error) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    error,
                });
            }
        };
        let mut config = ServeConfig::parse(&text, path)?;
        if let Some(file) = &config.api_token_file
            && file.is_relative()
        {
            config.api_token_file = Some(dir.join(file));
        }
        Ok(config)
    }

    /// The node's configuration for the node in `dir` (needs `listen`).
    pub(crate) fn node_config(&self, dir: &Path) -> Result<NodeConfig, ConfigError> {
        Ok(NodeConfig {
            listen: Some(self.listen.ok_or(ConfigError::NoListen)?),
            peers: self.peers.clone(),
            max_connections: self.max_connections,
            max_handshakes: self.max_handshakes,
            max_handshakes_per_addr: self.max_handshakes_per_addr,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            reconnect_min: Duration::from_millis(self.reconnect_min_ms),
            reconnect_max: Duration::from_millis(self.reconnect_max_ms),
            ready_admin_within: Duration::from_millis(self.ready_admin_within_ms),
            snapshot_interval: Duration::from_millis(self.snapshot_interval_ms),
            max_feeds: self.max_feeds,
            buffer_budget: self.buffer_budget_bytes,
            outbox_budget: self.outbox_budget_bytes,
            ..NodeConfig::new(dir)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let config = ServeConfig::parse("", Path::new("f.toml")).expect("parse");
        assert_eq!(config, ServeConfig::default());
        let node = NodeConfig::default();
        assert_eq!(config.max_connections, node.max_connections);
        assert_eq!(
            Duration::from_millis(config.handshake_timeout_ms),
            node.handshake_timeout
        );
        assert_eq!(Duration::from_millis(config.reconnect_min_ms), node.reconnect_min);
        assert_eq!(Duration::from_millis(config.reconnect_max_ms), node.reconnect_max);
        assert_eq!(
            Duration::from_millis(config.ready_admin_within_ms),
            node.ready_admin_within
        );
        assert_eq!(
            Duration::from_millis(config.snapshot_interval_ms),
            node.snapshot_interval
        );
        assert_eq!(config.max_feeds, node.max_feeds);
        assert_eq!(config.buffer_budget_bytes, node.buffer_budget);
        assert_eq!(config.outbox_budget_bytes, node.outbox_budget);
    }

    #[test]
    fn keys_parse() {
        let text = "listen = \"127.0.0.1:7000\"\npeers = [\"127.0.0.1:7001\"]\napi = \"127.0.0.1:0\"\n\
                    api_token_file = \"token\"\nresp = \"127.0.0.1:6379\"\nlog_format = \"json\"\nmax_connections = 3\n\
                    max_feeds = 100\nready_admin_within_ms = 1000\nbuffer_budget_bytes = 8000000\n\
                    outbox_budget_bytes = 9000000\nsnapshot_interval_ms = 60000\n";
        let config = ServeConfig::parse(text, Path::new("f.toml")).expect("parse");
        assert_eq!(config.listen, Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!(config.peers, vec!["127.0.0.1:7001".parse().unwrap()]);
        assert_eq!(config.resp, Some("127.0.0.1:6379".parse().unwrap()));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.max_connections, 3);
        let node = config.node_config(Path::new("/d")).expect("node config");
        assert_eq!(node.listen, config.listen);
        assert_eq!(node.max_feeds, 100);
        assert_eq!(node.buffer_budget, 8_000_000);
        assert_eq!(node.outbox_budget, 9_000_000);
        assert_eq!(node.ready_admin_within, Duration::from_millis(1000));
        assert_eq!(node.snapshot_interval, Duration::from_secs(60));
    }

    #[test]
    fn errors_are_one_line_with_a_position() {
        let error = ServeConfig::parse("listen = \"127.0.0.1:7000\"\nlisen = 3\n", Path::new("f.toml"))
            .expect_err("unknown key");
        let text = error.to_string();
        assert!(text.starts_with("f.toml:2:1: "), "{text}");
        assert!(!text.contains('\n'), "{text}");
        let error = ServeConfig::parse("listen = \"nowhere\"\n", Path::new("f.toml")).expect_err("bad address");
        assert!(!error.to_string().contains('\n'), "{error}");
        assert!(matches!(
            ServeConfig::default().node_config(Path::new("/d")),
            Err(ConfigError::NoListen)
        ));
    }
}
