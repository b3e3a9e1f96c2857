//! The rogue-member scenario of tests/it/membership.rs written offline into
//! one node's store: the fixture of the audit tests, in the library's and the
//! command line's.

use std::path::PathBuf;

use feedmesh::clock::system_time_ms;
use feedmesh::feed::{FeedId, Keypair};
use feedmesh::node_dir::NodeDir;
use feedmesh::store::Store;
use feedmesh::view::{Op, encode_ops, encode_value};
use feedmesh::writer::FeedWriter;
use tempfile::TempDir;
pub(crate) const HOUR_MS: u64 = 3_600_000;

/// The rogue scenario, stored in the admin's node directory.
pub(crate) struct Scenario {
    pub(crate) _root: TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) admin: FeedId,
    pub(crate) b: FeedId,
    pub(crate) rogue: FeedId,
    /// The rogue's first entry after it turned.
    pub(crate) went_rogue: u64,
}

pub(crate) fn put(key: &str, value: &str, owner: Option<&str>) -> Op {
    Op::Put {
        key: key.as_bytes().to_vec(),
        value: encode_value(&value.to_string()).unwrap(),
        ttl_ms: HOUR_MS,
        owner: owner.map(|o| o.as_bytes().to_vec()),
    }
}

pub(crate) fn scenario() -> Scenario {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("admin");
    let node = NodeDir::create(&dir).unwrap();
    let admin = node.feed_id();
    node.set_admins(&[admin]).unwrap();
    let store = node.open_store().unwrap();
    let (b_keys, rogue_keys) = (Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
    let (b, rogue) = (b_keys.feed_id(), rogue_keys.feed_id());
    let mut writers = [
        FeedWriter::open(&store, node.keys().clone()).unwrap(),
        FeedWriter::open(&store, b_keys).unwrap(),
        FeedWriter::open(&store, rogue_keys).unwrap(),
    ];
    let (a_, b_, r_) = (0, 1, 2);
    let mut t = system_time_ms() - 600_000;
    let mut write = |who: usize, ops: &[Op], at: Option<u64>| {
        t += 1000;
        let payload = encode_ops(ops).unwrap();
        writers[who].append(&store, &[&payload], at.unwrap_or(t)).unwrap();
    };
    write(r_, &[put("early", "too soon", None)], None);
    write(
        a_,
        &[
            Op::AddMember { feed: b, from_seq: 1 },
            Op::AddMember {
                feed: rogue,
                from_seq: 2,
            },
        ],
        None,
    );
    for (i, owner) in ["alice", "bob"].iter().enumerate() {
        write(
            a_,
            &[put(&format!("a{i}"), &format!("admin's {owner}"), Some(owner))],
            None,
        );
        write(b_, &[put(&format!("b{i}"), &format!("b's {owner}"), Some(owner))], None);
        write(r_, &[put(&format!("r{i}"), &format!("r's {owner}"), Some(owner))], None);
    }
    write(b_, &[put("a0", "b's rewrite", Some("alice"))], None);
    let went_rogue = store.latest(&rogue).unwrap().unwrap() + 1;
    write(
        r_,
        &[put("a0", "pwned", None), Op::Revoke { key: b"b0".to_vec() }],
        None,
    );
    write(
        r_,
        &[Op::RevokeOwner {
            owner: b"alice".to_vec(),
        }],
        None,
    );
    write(
        a_,
        &[Op::RemoveMember {
            feed: rogue,
            from_seq: went_rogue,
        }],
        None,
    );
    // Dated ten minutes ahead: held back.
    write(
        b_,
        &[put("future", "too early", None)],
        Some(system_time_ms() + 600_000),
    );
    drop(store);
    Scenario {
        _root: root,
        dir,
        admin,
        b,
        rogue,
        went_rogue,
    }
}
