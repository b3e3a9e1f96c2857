//! Node directories of a network with an admin key (spec/SESSIONS.md §5).
//! Needs the including test binary to declare `mod nodes`.

use std::path::{Path, PathBuf};

use feedmesh::feed::FeedId;
use feedmesh::net::NetworkKey;
use feedmesh::node_dir::NodeDir;

use super::nodes::make_dir;

/// A node directory of a network whose only admin is `admin`.
pub(crate) fn member_dir(root: &Path, name: &str, key: &NetworkKey, admin: FeedId) -> PathBuf {
    let dir = make_dir(root, name, key);
    NodeDir::open(&dir).unwrap().set_admins(&[admin]).unwrap();
    dir
}

/// The admin's directory (its own id is the admin key).
pub(crate) fn admin_dir(root: &Path, key: &NetworkKey) -> (PathBuf, FeedId) {
    let dir = make_dir(root, "admin", key);
    let opened = NodeDir::open(&dir).unwrap();
    let id = opened.feed_id();
    opened.set_admins(&[id]).unwrap();
    (dir, id)
}
