//! `feedmesh member add` and `member remove` on an admin's node directory:
//! the printed operations, the membership a node started on it folds, and the
//! refusal on a node that is not an admin.

use crate::common::admins::{admin_dir, member_dir};
use crate::common::nodes::start_sessions;
use crate::process::feedmesh;

use feedmesh::feed::FeedId;
use feedmesh::net::NetworkKey;
use feedmesh::node_dir::NodeDir;
use tempfile::TempDir;

#[tokio::test]
async fn member_add_and_remove_from_the_command_line() {
    let root = TempDir::new().unwrap();
    let key = NetworkKey::generate().expect("key");
    let (admin_path, admin_id) = admin_dir(root.path(), &key);
    let member = member_dir(root.path(), "member", &key, admin_id);
    let member_id = NodeDir::open(&member).unwrap().feed_id().to_string();
    let admin = admin_path.to_str().unwrap();

    let added = feedmesh(&["member", "add", "--dir", admin, &member_id, "--from-seq", "3"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let line: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap();
    assert_eq!(line["op"], "add_member");
    assert_eq!(line["member"], member_id.as_str());
    assert_eq!((line["seq"].as_u64(), line["from_seq"].as_u64()), (Some(1), Some(3)));
    let removed = feedmesh(&["member", "remove", "--dir", admin, &member_id]);
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let line: serde_json::Value = serde_json::from_slice(&removed.stdout).unwrap();
    // Nothing of the member's is held here: removed from its first entry.
    assert_eq!(
        (line["op"].as_str(), line["from_seq"].as_u64()),
        (Some("remove_member"), Some(1))
    );

    let sessions = start_sessions(&admin_path, vec![]).await;
    let membership = sessions.membership();
    let id: FeedId = member_id.parse().unwrap();
    assert_eq!(
        (membership.admitted_from(&id), membership.removed_from(&id)),
        (Some(3), Some(1))
    );
    assert!(membership.is_removed(&id));
    sessions.node().shutdown().await;

    // Only an admin may.
    let refused = feedmesh(&[
        "member",
        "add",
        "--dir",
        member.to_str().unwrap(),
        &admin_id.to_string(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("is not an admin"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}
