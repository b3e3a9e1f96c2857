//! A node's directory: its secret key, its network key and its store.
//!
//! ```text
//! DIR/secret_key    the ed25519 seed, 64 lowercase hex digits + newline (mode 0600)
//! DIR/network_key   the network key (optional), 64 lowercase hex digits + newline (mode 0600)
//! DIR/admins        the network's admin feeds (optional), one feed id per line
//! DIR/history_window the network's session lifetime and retention margin (optional)
//! DIR/store.redb    the redb store
//! DIR/store.redb.sessions.snapshot   the session view's snapshot (spec/SESSIONS.md §6.7; a cache, rebuilt from the store if lost)
//! ```
//!
//! The admins file holds one feed id per line in its one textual form
//! (`feed_` + 64 lowercase hex digits, as [`FeedId`] displays); blank lines
//! are skipped. No file, or no id in it, means an open network: every
//! holder of the network key is a member (spec/SESSIONS.md §5). Every node of
//! a network must hold the same admins.
//!
//! The history window file holds two lines, `session_lifetime_ms = N` and
//! `retention_margin_ms = N` (spec/SESSIONS.md §2.6). No file means the
//! defaults ([`HistoryWindow::default`]: 24 hours and 1 hour). Every node of
//! a network must hold the same window.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::feed::{FeedId, KeyError, Keypair, ParseIdError};
use crate::net::{NetworkKey, NetworkKeyError};
use crate::store::{RedbStore, StoreError};
use crate::view::HistoryWindow;

/// File name of the secret key inside a node directory.
pub const SECRET_KEY_FILE: &str = "secret_key";
/// File name of the network key inside a node directory.
pub const NETWORK_KEY_FILE: &str = "network_key";
/// File name of the history window inside a node directory.
pub const HISTORY_WINDOW_FILE: &str = "history_window";
/// File name of the admins file inside a node directory.
pub const ADMINS_FILE: &str = "admins";
/// File name of the store inside a node directory.
pub const STORE_FILE: &str = "store.redb";

/// Errors opening or creating a node directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeDirError {
    /// `init` was pointed at a directory that already holds a node.
    #[error("{0} already holds a node")]
    AlreadyInitialised(PathBuf),
    /// The directory holds no node (no secret key).
    #[error("{0} is not a node directory (run `feedmesh init --dir {0}` first)")]
    NotANode(PathBuf),
    /// The secret key file is malformed.
    #[error("{path}: {error}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        error: KeyError,
    },
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The network key file is malformed or unreadable.
    #[error("{path}: {error}")]
    NetworkKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        error: NetworkKeyError,
    },
    /// A line of the admins file is not a feed id.
    #[error("{path}: line {line} is not a feed id: {error}")]
    Admins {
        /// The admins file.
        path: PathBuf,
        /// The malformed line, from 1.
        line: usize,
        /// What is wrong with it.
        error: ParseIdError,
    },
    /// The history window file does not hold valid settings.
    #[error("{path}: {reason}")]
    HistoryWindow {
        /// The history window file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An opened node directory.
#[derive(Debug)]
pub struct NodeDir {
    path: PathBuf,
    keys: Keypair,
}

impl NodeDir {
    /// Creates a node in `path` (created if absent) with a fresh identity and
    /// an empty store. Refuses a directory that already holds a node.
    pub fn create(path: &Path) -> Result<NodeDir, NodeDirError> {
        NodeDir::create_with_network_key(path, None)
    }

    /// Like [`NodeDir::create`], also writing `network_key` (when given) to
    /// the directory's network key file.
    pub fn create_with_network_key(path: &Path, network_key: Option<&NetworkKey>) -> Result<NodeDir, NodeDirError> {
        let io = |error| NodeDirError::Io {
            path: path.to_path_buf(),
            error,
        };
        fs::create_dir_all(path).map_err(io)?;
        let key_path = path.join(SECRET_KEY_FILE);
        let network_key_path = path.join(NETWORK_KEY_FILE);
        if key_path.exists() || path.join(STORE_FILE).exists() {
            return Err(NodeDirError::AlreadyInitialised(path.to_path_buf()));
        }
        if network_key.is_some() && network_key_path.exists() {
            return Err(NodeDirError::NetworkKey {
                path: network_key_path,
                error: NetworkKeyError::Io(std::io::ErrorKind::AlreadyExists.into()),
            });
        }
        let keys = Keypair::generate().map_err(|error| NodeDirError::Key {
            path: key_path.clone(),
            error,
        })?;
        write_secret(&key_path, &format!("{}\n", keys.seed_hex())).map_err(|error| NodeDirError::Io {
            path: key_path.clone(),
            error,
        })?;
        if let Some(network_key) = network_key {
            network_key
                .write_file(&network_key_path)
                .map_err(|error| NodeDirError::NetworkKey {
                    path: network_key_path,
                    error,
                })?;
        }
        let dir = NodeDir {
            path: path.to_path_buf(),
            keys,
        };
        dir.open_store()?;
        Ok(dir)
    }

    /// Opens an existing node directory (reads the secret key).
    pub fn open(path: &Path) -> Result<NodeDir, NodeDirError> {
        let key_path = path.join(SECRET_KEY_FILE);
        let text = match fs::read_to_string(&key_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NodeDirError::NotANode(path.to_path_buf()));
            }
            Err(error) => return Err(NodeDirError::Io { path: key_path, error }),
        };
        let keys = Keypair::from_seed_hex(&text).map_err(|error| NodeDirError::Key { path: key_path, error })?;
        Ok(NodeDir {
            path: path.to_path_buf(),
            keys,
        })
    }

    /// The node's key pair.
    pub fn keys(&self) -> &Keypair {
        &self.keys
    }

    /// The node's feed id.
    pub fn feed_id(&self) -> FeedId {
        self.keys.feed_id()
    }

    /// The network key from the directory's network key file, or `None`
    /// when the directory has none.
    pub fn network_key(&self) -> Result<Option<NetworkKey>, NodeDirError> {
        let path = self.path.join(NETWORK_KEY_FILE);
        match NetworkKey::read_file(&path) {
            Ok(key) => Ok(Some(key)),
            Err(NetworkKeyError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(NodeDirError::NetworkKey { path, error }),
        }
    }

    /// The admin feeds from the directory's admins file, in file order; none
    /// (an open network) when the directory has no such file.
    pub fn admins(&self) -> Result<Vec<FeedId>, NodeDirError> {
        let path = self.path.join(ADMINS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(NodeDirError::Io { path, error }),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                line.trim().parse().map_err(|error| NodeDirError::Admins {
                    path: path.clone(),
                    line: i + 1,
                    error,
                })
            })
            .collect()
    }

    /// The network's history window from the directory's history window
    /// file; the defaults when the directory has no such file.
    pub fn history_window(&self) -> Result<HistoryWindow, NodeDirError> {
        let path = self.path.join(HISTORY_WINDOW_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HistoryWindow::default()),
            Err(error) => return Err(NodeDirError::Io { path, error }),
        };
        let malformed = |reason: String| NodeDirError::HistoryWindow {
            path: path.clone(),
            reason,
        };
        let (mut lifetime, mut margin) = (None, None);
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| malformed(format!("`{line}` is not `name = value`")))?;
            let value: u64 = value
                .trim()
                .parse()
                .map_err(|_| malformed(format!("`{}` is not a number of milliseconds", value.trim())))?;
            match name.trim() {
                "session_lifetime_ms" => lifetime = Some(value),
                "retention_margin_ms" => margin = Some(value),
                other => return Err(malformed(format!("unknown setting `{other}`"))),
            }
        }
        let default = HistoryWindow::default();
        HistoryWindow::new(
            lifetime.unwrap_or(default.lifetime_ms()),
            margin.unwrap_or(default.margin_ms()),
        )
        .map_err(|error| malformed(error.to_string()))
    }

    /// Writes the history window file.
    pub fn set_history_window(&self, window: HistoryWindow) -> Result<(), NodeDirError> {
        let text = format!(
            "session_lifetime_ms = {}\nretention_margin_ms = {}\n",
            window.lifetime_ms(),
            window.margin_ms()
        );
        let path = self.path.join(HISTORY_WINDOW_FILE);
        write_atomically(&path, text.as_bytes()).map_err(|error| NodeDirError::Io { path, error })
    }

    /// Replaces the admins file with `admins` (sorted, without duplicates),
    /// atomically: written to a temporary file, synced, then renamed over
    /// the old one. An empty list makes the network open.
    pub fn set_admins(&self, admins: &[FeedId]) -> Result<(), NodeDirError> {
        let mut admins = admins.to_vec();
        admins.sort();
        admins.dedup();
        let text: String = admins.iter().map(|id| format!("{id}\n")).collect();
        let path = self.path.join(ADMINS_FILE);
        write_atomically(&path, text.as_bytes()).map_err(|error| NodeDirError::Io { path, error })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (or creates) the node's store.
    pub fn open_store(&self) -> Result<RedbStore, NodeDirError> {
        Ok(RedbStore::open(self.path.join(STORE_FILE))?)
    }
}

fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory, so that `path` holds either the old or the new contents.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    // Make the rename durable too.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_are_optional_round_trip_and_name_a_bad_line() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = NodeDir::create(root.path()).expect("create");
        assert_eq!(dir.admins().expect("read"), Vec::<FeedId>::new());
        let (a, b) = (FeedId([0xaa; 32]), FeedId([0x01; 32]));
        dir.set_admins(&[a, b, a]).expect("write");
        assert_eq!(dir.admins().expect("read"), vec![b, a]);
        let text = fs::read_to_string(root.path().join(ADMINS_FILE)).expect("file");
        assert_eq!(text, format!("{b}\n{a}\n"));
        assert!(!root.path().join("admins.tmp").exists());
        dir.set_admins(&[]).expect("write");
        assert_eq!(dir.admins().expect("read"), Vec::<FeedId>::new());

        fs::write(root.path().join(ADMINS_FILE), format!("{a}\n\n{}\n", "feed_xyz")).expect("overwrite");
        let error = dir.admins().expect_err("malformed");
        assert!(matches!(error, NodeDirError::Admins { line: 3, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("admins") && message.contains("line 3"), "{message}");
    }

    #[test]
    fn the_history_window_defaults_round_trips_and_names_a_bad_setting() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = NodeDir::create(&root.path().join("n")).expect("create");
        assert_eq!(dir.history_window().expect("read"), HistoryWindow::default());
        let window = HistoryWindow::new(60_000, 10_000).expect("in range");
        dir.set_history_window(window).expect("write");
        assert_eq!(dir.history_window().expect("read"), window);
        for (text, says) in [
            ("session_lifetime_ms = soon\n", "not a number"),
            ("lifetime = 5\n", "unknown setting"),
            ("session_lifetime_ms = 0\n", "session lifetime 0"),
        ] {
            fs::write(dir.path().join(HISTORY_WINDOW_FILE), text).expect("write");
            let message = dir.history_window().expect_err(text).to_string();
            assert!(
                message.contains(says) && message.contains("history_window"),
                "{message}"
            );
        }
    }

    #[test]
    fn network_key_is_optional_and_round_trips() {
        let root = tempfile::tempdir().expect("tempdir");
        let plain = NodeDir::create(&root.path().join("plain")).expect("create");
        assert_eq!(plain.network_key().expect("read"), None);

        let key = NetworkKey::generate().expect("key");
        let dir = root.path().join("keyed");
        let created = NodeDir::create_with_network_key(&dir, Some(&key)).expect("create");
        assert_eq!(created.network_key().expect("read"), Some(key.clone()));
        let text = fs::read_to_string(dir.join(NETWORK_KEY_FILE)).expect("file");
        assert_eq!(text, format!("{}\n", key.to_hex()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(NETWORK_KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            NodeDir::open(&dir).expect("open").network_key().expect("read"),
            Some(key)
        );

        fs::write(dir.join(NETWORK_KEY_FILE), "not hex\n").expect("overwrite");
        assert!(matches!(created.network_key(), Err(NodeDirError::NetworkKey { .. })));
    }
}
