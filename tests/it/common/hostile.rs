//! A hostile peer for the integration tests: a fresh identity that holds
//! the network key, completes the handshake with a node and then sends what
//! the test tells it to, message by message. Needs the including test
//! binary to declare `mod nodes`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use feedmesh::feed::{FeedId, Keypair};
use feedmesh::net::{MAX_FRAME_PLAINTEXT, MESSAGE_HEADER_LEN, NetworkKey, SecureStream};
use feedmesh::sync::Message;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Every wait of the hostile peer ends by this long.
const WAIT: Duration = Duration::from_secs(15);

/// An authenticated connection to a node, as a fresh identity.
pub(crate) struct Rogue {
    /// The rogue's identity (its own feed).
    pub(crate) keys: Keypair,
    /// The connection.
    pub(crate) stream: SecureStream<TcpStream>,
}

impl Rogue {
    /// Connects to `addr` and completes the handshake with `key`.
    pub(crate) async fn connect(addr: SocketAddr, key: &NetworkKey) -> Rogue {
        let keys = Keypair::generate().expect("keys");
        let stream = super::nodes::rogue_as(addr, key, &keys).await;
        Rogue { keys, stream }
    }

    /// Sends one message.
    pub(crate) async fn send(&mut self, message: &Message) {
        self.stream.send(&message.encode()).await.expect("send");
    }

    /// Reads the node's messages until it has announced want = 1 for at
    /// least `count` feeds in its Clocks; returns those feeds.
    pub(crate) async fn until_wanted(&mut self, count: usize) -> BTreeSet<FeedId> {
        let mut wanted = BTreeSet::new();
        tokio::time::timeout(WAIT, async {
            while wanted.len() < count {
                let bytes = self.stream.recv().await.expect("the node stays connected");
                if let Ok(Message::Clock { feeds }) = Message::decode(&bytes) {
                    wanted.extend(feeds.iter().filter(|line| line.want).map(|line| line.feed));
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the node wanted only {} feeds", wanted.len()));
        wanted
    }

    /// Reads until the node closes the connection (bounded).
    pub(crate) async fn until_closed(&mut self) {
        tokio::time::timeout(WAIT, async { while self.stream.recv().await.is_ok() {} })
            .await
            .expect("the node closes the connection");
    }

    /// Starts a message declaring `declared` bytes, sends the first `sent`
    /// of them and stalls, on a task that ends once the node has closed the
    /// connection (its writes fail or its reads end). The task owns the
    /// rogue: the writes may block for as long as the node does not read.
    pub(crate) fn stall_in_message(mut self, declared: usize, sent: usize) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut stream = (declared as u32).to_be_bytes().to_vec();
            stream.resize(MESSAGE_HEADER_LEN + sent, 0x5a);
            for frame in stream.chunks(MAX_FRAME_PLAINTEXT) {
                if self.stream.send_raw_frame(frame).await.is_err() {
                    return;
                }
            }
            while self.stream.recv().await.is_ok() {}
        })
    }
}
