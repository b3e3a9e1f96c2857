//! The authenticated handshake (spec/PROTOCOL.md §3.2).
//!
//! ```text
//! initiator (dialer)                          responder (listener)
//!   frame(msg1)   -> e                  ->
//!                 <- e, ee, s, es       <-    frame(msg2)
//!   frame(msg3)   -> s, se, psk         ->    (wrong network key: msg3 fails, close)
//!   frame(proof_i)                      ->    (transport frame, nonce 0; read, not yet checked)
//!                                       <-    frame(proof_r)  (then proof_i is checked)
//! proof = feed id (32) || ed25519 signature (64) over
//!         "feedmesh handshake v1\0" || handshake hash (32) || role (0x01 initiator, 0x02 responder)
//! ```
//!
//! The Noise pattern is `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s` (through
//! `snow`), with the network key as the PSK and [`PROLOGUE`] as prologue.
//! The X25519 static keys are fresh for every connection: a node's identity
//! is its ed25519 feed key, bound to the session by the proofs, which sign
//! the handshake hash (unique per session) and the signer's role (so a proof
//! can be neither replayed in another session nor reflected back).

use std::io;
use std::time::Duration;

use crate::feed::signature::{self, SignedMessage};
use snow::HandshakeState;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::framing::{
    FrameReader, FramingError, MAX_MESSAGE, MIN_MAX_MESSAGE, RecvCipher, SecureStream, SendCipher, StreamError,
};
use super::key::NetworkKey;
use crate::feed::{FeedId, Keypair};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";
/// The Noise prologue: both sides must use the same, so a different protocol
/// version fails the handshake.
pub const PROLOGUE: &[u8] = b"feedmesh transport v2";
/// Domain separation of the identity proof's signed message.
pub const IDENTITY_CONTEXT: &[u8] = b"feedmesh handshake v1\0";
/// Role byte signed by the initiator (dialer).
pub const ROLE_INITIATOR: u8 = 0x01;
/// Role byte signed by the responder (listener).
pub const ROLE_RESPONDER: u8 = 0x02;
/// Length of the BLAKE2s handshake hash.
pub const HANDSHAKE_HASH_LEN: usize = 32;
/// Length of an identity proof's plaintext: feed id (32) + signature (64).
pub const IDENTITY_PROOF_LEN: usize = 32 + 64;
/// Largest handshake frame accepted (ciphertext length). The three Noise
/// messages are 48, 96 and 64 bytes long and the proof frame 112.
pub const MAX_HANDSHAKE_FRAME: usize = 256;
/// Default time allowed for a whole handshake (an honest one needs one and
/// a half round trips and two signatures).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a handshake and of the stream it opens.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    /// Time allowed for the whole handshake, from the first byte to the
    /// peer's verified identity (default 5 s).
    pub timeout: Duration,
    /// Largest message the stream accepts and sends (default [`MAX_MESSAGE`];
    /// raised to at least [`MIN_MAX_MESSAGE`]).
    pub max_message: usize,
}

impl Default for HandshakeConfig {
    fn default() -> HandshakeConfig {
        HandshakeConfig {
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_message: MAX_MESSAGE,
        }
    }
}

/// Why a handshake failed. On any of them the node closes the connection and
/// logs the reason (§3.4).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A Noise message failed to decrypt: the peer holds a different network
    /// key, speaks another protocol version, or sent garbage. The dialer also
    /// reports this when the listener closes the connection right after
    /// message 3, which is what a listener does when message 3 fails.
    #[error("handshake failed: wrong network key, other protocol version, or corrupt data")]
    WrongNetworkKeyOrCorrupt,
    /// The peer's identity proof is malformed or its signature does not
    /// verify for the feed id it claims (it does not own that id).
    #[error("the peer's identity proof is invalid")]
    BadIdentityProof,
    /// The peer proved an identity other than the one the dialer expected.
    #[error("expected peer {expected}, found {found}")]
    UnexpectedPeer {
        /// The feed id the dialer asked for.
        expected: FeedId,
        /// The feed id the peer proved.
        found: FeedId,
    },
    /// The peer proved this node's own feed id (a connection to itself, or a
    /// stolen key).
    #[error("the peer claims this node's own feed id")]
    SelfConnection,
    /// The handshake did not finish in time.
    #[error("handshake timed out after {0:?}")]
    Timeout(Duration),
    /// A handshake frame declared a length above [`MAX_HANDSHAKE_FRAME`].
    #[error("handshake frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The declared ciphertext length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A Noise message carried a payload where none is allowed.
    #[error("unexpected payload in a handshake message")]
    UnexpectedPayload,
    /// The connection closed before the handshake finished.
    #[error("connection closed during the handshake")]
    Closed,
    /// The socket failed.
    #[error("i/o during the handshake: {0}")]
    Io(#[from] io::Error),
    /// A local failure in the Noise library (e.g. no randomness); not the
    /// peer's doing.
    #[error("noise: {0}")]
    Noise(String),
}

impl HandshakeError {
    fn from_stream(error: StreamError) -> HandshakeError {
        match error {
            StreamError::Closed | StreamError::Truncated => HandshakeError::Closed,
            StreamError::Framing(FramingError::FrameTooLarge { len, max }) => {
                HandshakeError::FrameTooLarge { len, max }
            }
            // A frame shorter than a tag cannot be a Noise message.
            StreamError::Framing(_) => HandshakeError::WrongNetworkKeyOrCorrupt,
            StreamError::Io(e) => HandshakeError::Io(e),
            StreamError::Decrypt => HandshakeError::WrongNetworkKeyOrCorrupt,
            other => HandshakeError::Noise(other.to_string()),
        }
    }
}

fn noise(error: snow::Error) -> HandshakeError {
    HandshakeError::Noise(error.to_string())
}

/// Who we claim to be: honestly (sign for our own id), or, in tests, an
/// impostor claiming `claimed` while signing with another key.
#[derive(Clone, Copy)]
struct Claim<'a> {
    claimed: FeedId,
    signer: &'a Keypair,
}

impl<'a> Claim<'a> {
    /// The honest claim: our own feed id, signed with our own key.
    fn own(local: &'a Keypair) -> Claim<'a> {
        Claim {
            claimed: local.feed_id(),
            signer: local,
        }
    }
}

/// The message an identity proof signs.
pub fn identity_proof_message(handshake_hash: &[u8; HANDSHAKE_HASH_LEN], role: u8) -> Vec<u8> {
    let mut message = Vec::with_capacity(IDENTITY_CONTEXT.len() + HANDSHAKE_HASH_LEN + 1);
    message.extend_from_slice(IDENTITY_CONTEXT);
    message.extend_from_slice(handshake_hash);
    message.push(role);
    message
}

fn make_proof(claim: Claim<'_>, handshake_hash: &[u8; HANDSHAKE_HASH_LEN], role: u8) -> [u8; IDENTITY_PROOF_LEN] {
    let signature = claim.signer.sign_message(&identity_proof_message(handshake_hash, role));
    let mut proof = [0u8; IDENTITY_PROOF_LEN];
    proof[..32].copy_from_slice(claim.claimed.as_bytes());
    proof[32..].copy_from_slice(&signature);
    proof
}

/// Checks a peer's identity proof (strict ed25519 verification).
fn check_proof(
    plaintext: &[u8],
    handshake_hash: &[u8; HANDSHAKE_HASH_LEN],
    role: u8,
) -> Result<FeedId, HandshakeError> {
    let proof: &[u8; IDENTITY_PROOF_LEN] = plaintext.try_into().map_err(|_| HandshakeError::BadIdentityProof)?;
    let (id, signature) = proof.split_at(32);
    let id: [u8; 32] = id.try_into().map_err(|_| HandshakeError::BadIdentityProof)?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| HandshakeError::BadIdentityProof)?;
    signature::check(&SignedMessage {
        key: &id,
        signature: &signature,
        message: &identity_proof_message(handshake_hash, role),
    })
    .map_err(|_| HandshakeError::BadIdentityProof)?;
    Ok(FeedId(id))
}

fn builder_state(network_key: &NetworkKey, initiator: bool) -> Result<HandshakeState, HandshakeError> {
    let params = NOISE_PARAMS.parse().map_err(noise)?;
    let builder = snow::Builder::new(params);
    // A fresh static key per connection: identity comes from the ed25519 proof.
    let statik = builder.generate_keypair().map_err(noise)?;
    let builder = builder
        .local_private_key(&statik.private)
        .map_err(noise)?
        .psk(3, network_key.as_bytes())
        .map_err(noise)?
        .prologue(PROLOGUE)
        .map_err(noise)?;
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(noise)
}

/// Appends a handshake message (empty payload) as a frame to `out`.
fn write_noise_frame(state: &mut HandshakeState, out: &mut Vec<u8>) -> Result<(), HandshakeError> {
    let mut buf = [0u8; MAX_HANDSHAKE_FRAME];
    let len = state.write_message(&[], &mut buf).map_err(noise)?;
    let header = u16::try_from(len).map_err(|_| HandshakeError::Noise("handshake message too long".into()))?;
    out.extend_from_slice(&header.to_be_bytes());
    out.extend_from_slice(&buf[..len]);
    Ok(())
}

/// Reads a handshake message; its payload must be empty.
async fn read_noise_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    frames: &mut FrameReader,
    state: &mut HandshakeState,
) -> Result<(), HandshakeError> {
    let ciphertext = frames
        .read_frame(stream, MAX_HANDSHAKE_FRAME)
        .await
        .map_err(HandshakeError::from_stream)?;
    let mut payload = [0u8; MAX_HANDSHAKE_FRAME];
    let len = state
        .read_message(ciphertext, &mut payload)
        .map_err(|_| HandshakeError::WrongNetworkKeyOrCorrupt)?;
    if len != 0 {
        return Err(HandshakeError::UnexpectedPayload);
    }
    Ok(())
}

/// Reads and decrypts the peer's identity proof (transport frame 0).
async fn read_proof<S: AsyncRead + Unpin>(
    stream: &mut S,
    frames: &mut FrameReader,
    recv: &mut RecvCipher,
) -> Result<Vec<u8>, HandshakeError> {
    let ciphertext = frames
        .read_frame(stream, MAX_HANDSHAKE_FRAME)
        .await
        .map_err(HandshakeError::from_stream)?;
    let mut plaintext = [0u8; MAX_HANDSHAKE_FRAME];
    let len = recv
        .open_frame(ciphertext, &mut plaintext)
        .map_err(HandshakeError::from_stream)?;
    Ok(plaintext[..len].to_vec())
}

fn finish(state: HandshakeState) -> Result<([u8; HANDSHAKE_HASH_LEN], (SendCipher, RecvCipher)), HandshakeError> {
    let hash: [u8; HANDSHAKE_HASH_LEN] = state
        .get_handshake_hash()
        .try_into()
        .map_err(|_| HandshakeError::Noise("unexpected handshake hash length".into()))?;
    let transport = state.into_stateless_transport_mode().map_err(noise)?;
    Ok((hash, SendCipher::pair(transport)))
}

fn check_peer(found: FeedId, local: &Keypair, expected: Option<FeedId>) -> Result<FeedId, HandshakeError> {
    if found == local.feed_id() {
        return Err(HandshakeError::SelfConnection);
    }
    match expected {
        Some(expected) if expected != found => Err(HandshakeError::UnexpectedPeer { expected, found }),
        _ => Ok(found),
    }
}

async fn with_timeout<T>(
    timeout: Duration,
    run: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(HandshakeError::Timeout(timeout)))
}

/// Runs the handshake as the dialer over `stream` and returns the encrypted
/// stream to the authenticated peer.
///
/// With `expected`, a peer proving any other feed id is refused
/// ([`HandshakeError::UnexpectedPeer`]). The whole handshake is bounded by
/// `config.timeout`. Note that the listener checks the dialer's proof after
/// the dialer has finished: a listener that refuses the dialer simply closes
/// the connection, which the dialer sees on its first `recv`.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    network_key: &NetworkKey,
    local: &Keypair,
    expected: Option<FeedId>,
    config: &HandshakeConfig,
) -> Result<SecureStream<S>, HandshakeError> {
    initiate_claiming(stream, network_key, Claim::own(local), expected, config).await
}

/// Runs the handshake as the listener over an accepted `stream` and returns
/// the encrypted stream to the authenticated peer (whose feed id
/// [`SecureStream::remote_id`] gives; deciding whether that peer is welcome
/// is the caller's business). Bounded by `config.timeout`.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    network_key: &NetworkKey,
    local: &Keypair,
    config: &HandshakeConfig,
) -> Result<SecureStream<S>, HandshakeError> {
    respond_claiming(stream, network_key, Claim::own(local), config).await
}

/// [`initiate`], proving `claim`: the one path of honest and impostor dialers.
async fn initiate_claiming<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    network_key: &NetworkKey,
    claim: Claim<'_>,
    expected: Option<FeedId>,
    config: &HandshakeConfig,
) -> Result<SecureStream<S>, HandshakeError> {
    with_timeout(
        config.timeout,
        run_initiator(stream, network_key, claim, expected, config),
    )
    .await
}

/// [`respond`], proving `claim`: the one path of honest and impostor listeners.
async fn respond_claiming<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    network_key: &NetworkKey,
    claim: Claim<'_>,
    config: &HandshakeConfig,
) -> Result<SecureStream<S>, HandshakeError> {
    with_timeout(config.timeout, run_responder(stream, network_key, claim, config)).await
}

/// Test hooks: handshakes that claim a feed id while signing with another
/// key, as an impostor would. An honest peer must refuse them with
/// [`HandshakeError::BadIdentityProof`].
#[cfg(feature = "test-utils")]
#[doc(hidden)]
pub mod impostor {
    use super::*;

    /// [`initiate`](super::initiate), claiming `claimed` but signing with `signer`.
    pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        network_key: &NetworkKey,
        signer: &Keypair,
        claimed: FeedId,
        config: &HandshakeConfig,
    ) -> Result<SecureStream<S>, HandshakeError> {
        initiate_claiming(stream, network_key, Claim { claimed, signer }, None, config).await
    }

    /// [`respond`](super::respond), claiming `claimed` but signing with `signer`.
    pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        network_key: &NetworkKey,
        signer: &Keypair,
        claimed: FeedId,
        config: &HandshakeConfig,
    ) -> Result<SecureStream<S>, HandshakeError> {
        respond_claiming(stream, network_key, Claim { claimed, signer }, config).await
    }
}

async fn run_initiator<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    network_key: &NetworkKey,
    claim: Claim<'_>,
    expected: Option<FeedId>,
    config: &HandshakeConfig,
) -> Result<SecureStream<S>, HandshakeError> {
    let mut state = builder_state(network_key, true)?;
    let mut frames = FrameReader::default();
    let mut out = Vec::with_capacity(4 * MAX_HANDSHAKE_FRAME);

    write_noise_frame(&mut state, &mut out)?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    out.clear();

    read_noise_frame(&mut stream, &mut frames, &mut state).await?;

    write_noise_frame(&mut state, &mut out)?;
    let (hash, (mut send, mut recv)) = finish(state)?;
    send.seal_frame(&make_proof(claim, &hash, ROLE_INITIATOR), &mut out)
        .map_err(HandshakeError::from_stream)?;
    stream.write_all(&out).await?;
    stream.flush().await?;

    // The listener answers message 3 with its proof unless message 3 failed
    // (wrong network key), in which case it closes the connection.
    let proof = match read_proof(&mut stream, &mut frames, &mut recv).await {
        Err(HandshakeError::Closed) => return Err(HandshakeError::WrongNetworkKeyOrCorrupt),
        Err(HandshakeError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
            ) =>
        {
            return Err(HandshakeError::WrongNetworkKeyOrCorrupt);
        }
        other => other?,
    };
    let found = check_proof(&proof, &hash, ROLE_RESPONDER)?;
    let remote = check_peer(found, claim.signer, expected)?;
    let max_message = config.max_message.max(MIN_MAX_MESSAGE);
    Ok(SecureStream::new(
        stream,
        remote,
        hash,
        (send, recv),
        frames,
        max_message,
    ))
}

async fn run_responder<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    network_key: &NetworkKey,
    claim: Claim<'_>,
    config: &HandshakeConfig,
) -> Result<SecureStream<S>, HandshakeError> {
    let mut state = builder_state(network_key, false)?;
    let mut frames = FrameReader::default();
    let mut out = Vec::with_capacity(2 * MAX_HANDSHAKE_FRAME);

    read_noise_frame(&mut stream, &mut frames, &mut state).await?;

    write_noise_frame(&mut state, &mut out)?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    out.clear();

    read_noise_frame(&mut stream, &mut frames, &mut state).await?;
    let (hash, (mut send, mut recv)) = finish(state)?;
    // The dialer sent its proof with message 3: read it now, so that neither
    // side blocks writing while the other does too (small socket buffers).
    let proof = read_proof(&mut stream, &mut frames, &mut recv).await?;

    // Our proof goes out before we check the dialer's, so that a dialer that
    // gets no proof knows its message 3 failed here.
    send.seal_frame(&make_proof(claim, &hash, ROLE_RESPONDER), &mut out)
        .map_err(HandshakeError::from_stream)?;
    stream.write_all(&out).await?;
    stream.flush().await?;

    let found = check_proof(&proof, &hash, ROLE_INITIATOR)?;
    let remote = check_peer(found, claim.signer, None)?;
    let max_message = config.max_message.max(MIN_MAX_MESSAGE);
    Ok(SecureStream::new(
        stream,
        remote,
        hash,
        (send, recv),
        frames,
        max_message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_binds_hash_and_role() {
        let keys = Keypair::from_seed([7; 32]);
        let claim = Claim {
            claimed: keys.feed_id(),
            signer: &keys,
        };
        let hash = [1u8; 32];
        let proof = make_proof(claim, &hash, ROLE_INITIATOR);
        assert_eq!(check_proof(&proof, &hash, ROLE_INITIATOR).ok(), Some(keys.feed_id()));
        assert!(matches!(
            check_proof(&proof, &hash, ROLE_RESPONDER),
            Err(HandshakeError::BadIdentityProof)
        ));
        assert!(matches!(
            check_proof(&proof, &[2u8; 32], ROLE_INITIATOR),
            Err(HandshakeError::BadIdentityProof)
        ));
        assert!(matches!(
            check_proof(&proof[..95], &hash, ROLE_INITIATOR),
            Err(HandshakeError::BadIdentityProof)
        ));
        let message = identity_proof_message(&hash, ROLE_RESPONDER);
        assert_eq!(message.len(), 22 + 32 + 1);
        assert!(message.starts_with(b"feedmesh handshake v1\0"));
    }

    #[tokio::test]
    async fn handshake_over_a_duplex_pipe() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let key = NetworkKey::from_bytes([3; 32]);
        let (ka, kb) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let config = HandshakeConfig::default();
        let (left, right) = tokio::join!(
            initiate(a, &key, &ka, Some(kb.feed_id()), &config),
            respond(b, &key, &kb, &config)
        );
        let (mut left, mut right) = (left.expect("initiator"), right.expect("responder"));
        assert_eq!(left.remote_id(), kb.feed_id());
        assert_eq!(right.remote_id(), ka.feed_id());
        assert_eq!(left.handshake_hash(), right.handshake_hash());
        left.send(b"hello").await.expect("send");
        assert_eq!(right.recv().await.expect("recv"), b"hello");
    }

    #[tokio::test]
    async fn tiny_socket_buffers_split_frames_anywhere() {
        // A 7-byte pipe delivers every frame and message in many pieces.
        let (a, b) = tokio::io::duplex(7);
        let key = NetworkKey::from_bytes([3; 32]);
        let (ka, kb) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let config = HandshakeConfig::default();
        let (left, right) = tokio::join!(initiate(a, &key, &ka, None, &config), respond(b, &key, &kb, &config));
        let (mut left, right) = (left.expect("initiator"), right.expect("responder"));
        let messages: Vec<Vec<u8>> = vec![vec![1; 70_000], vec![], vec![2; 3], vec![3; 131_038]];
        let (mut reader, _writer) = right.into_split();
        let sent = messages.clone();
        let (sending, received) = tokio::join!(
            async move {
                for m in &sent {
                    left.send(m).await.expect("send");
                }
                left
            },
            async {
                let mut got = Vec::new();
                for _ in 0..4 {
                    got.push(reader.recv().await.expect("recv"));
                }
                got
            }
        );
        drop(sending);
        assert!(received == messages);
        assert!(matches!(reader.recv().await, Err(StreamError::Closed)));
    }
}
