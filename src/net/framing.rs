//! The encrypted message stream that follows the handshake
//! (spec/PROTOCOL.md §3.3).
//!
//! Two layers, each with a sans-IO decoder that keeps "need more bytes" apart
//! from "invalid":
//!
//! ```text
//! frame    = length: u16 big-endian || ciphertext (length bytes, 16..=65535)
//!            ciphertext = ChaChaPoly(plaintext) || 16-byte tag, nonce = frame counter
//! stream   = the plaintexts of the frames of one direction, concatenated
//! message  = length: u32 big-endian (<= max_message) || that many bytes
//! ```
//!
//! A sender starts every message in a new frame and splits it over as many
//! frames as needed ([`MAX_FRAME_PLAINTEXT`] bytes each); a receiver accepts
//! any split. Each direction has its own key and its own nonce counter,
//! starting at 0 (the identity proof of §3.2 is frame 0).
//!
//! The two directions share one [`snow::StatelessTransportState`] behind an
//! `Arc` (its methods take `&self` and an explicit nonce), and each half keeps
//! its own counter. That is what makes [`SecureStream::into_split`] possible
//! without a lock and without `snow`'s raw key export.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::budget::{BufferBudget, Reserving};
use crate::feed::FeedId;

/// Length of a frame's length prefix.
pub const FRAME_HEADER_LEN: usize = 2;
/// Length of the Noise (ChaChaPoly) authentication tag at the end of each frame.
pub const NOISE_TAG_LEN: usize = 16;
/// Largest ciphertext of one frame: Noise's maximum message length.
pub const MAX_NOISE_FRAME: usize = 65535;
/// Largest plaintext carried by one frame.
pub const MAX_FRAME_PLAINTEXT: usize = MAX_NOISE_FRAME - NOISE_TAG_LEN;
/// Length of a message's length prefix.
pub const MESSAGE_HEADER_LEN: usize = 4;
/// Default largest application message (plaintext, without its length
/// prefix): the replication layer's [`crate::sync::MAX_FRAME`], 4 MiB +
/// 64 KiB, so that a batch of entries with 1 MiB of payload (and their
/// headers) fits comfortably. A configured limit must be at least
/// [`MIN_MAX_MESSAGE`].
pub const MAX_MESSAGE: usize = crate::sync::MAX_FRAME;
/// Smallest allowed `max_message` setting (64 KiB).
pub const MIN_MAX_MESSAGE: usize = 64 * 1024;

/// How much the reader asks the socket for at once.
const READ_CHUNK: usize = 64 * 1024;
/// Above this capacity the writer's buffer is released after a send.
const KEEP_WRITE_BUFFER: usize = 256 * 1024;

/// A framing rule the peer broke (or that a local send would break).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A frame is shorter than the authentication tag, so it cannot be a Noise message.
    #[error("frame of {len} bytes is shorter than the {NOISE_TAG_LEN}-byte tag")]
    FrameTooShort {
        /// The declared ciphertext length.
        len: usize,
    },
    /// A frame is longer than allowed at this point (the handshake has a small limit).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The declared ciphertext length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message's declared length exceeds the limit (refused before buffering any of it).
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The declared (or, when sending, actual) message length.
        len: u64,
        /// The limit.
        max: usize,
    },
}

/// Why a [`SecureStream`] (or one of its halves) could not send or receive.
///
/// Every error is final: after one, the stream (or half) returns
/// [`StreamError::Broken`] and should be dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer closed the connection cleanly, between two messages.
    #[error("connection closed by the peer")]
    Closed,
    /// The connection ended in the middle of a frame or a message.
    #[error("connection closed in the middle of a frame or message")]
    Truncated,
    /// A frame failed authentication: tampered with, reordered, replayed or
    /// not encrypted under this session's key.
    #[error("a frame failed to decrypt")]
    Decrypt,
    /// The peer broke the framing rules (or a send would have).
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// 2^64 - 1 frames were sent or received in one direction; the session must end.
    #[error("nonce space exhausted")]
    NonceExhausted,
    /// An earlier call failed, or a `send` was cancelled part-way: the stream is unusable.
    #[error("the stream is unusable after an earlier error or a cancelled send")]
    Broken,
    /// A message that took a reservation of the node's buffer budget did
    /// not arrive whole within the budget's deadline of it being granted.
    #[error("a large message did not arrive whole within {0:?} of its buffer reservation")]
    SlowMessage(Duration),
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Parses the frame at the head of `buf` (sans-IO).
///
/// Returns `Ok(None)` when `buf` does not yet hold the whole frame (read more
/// and call again), `Ok(Some((ciphertext, consumed)))` when it does, and an
/// error when the declared length is invalid: shorter than the tag or longer
/// than `max_len` (at most [`MAX_NOISE_FRAME`]).
pub fn parse_frame(buf: &[u8], max_len: usize) -> Result<Option<(&[u8], usize)>, FramingError> {
    let Some(header) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes(*header));
    if len < NOISE_TAG_LEN {
        return Err(FramingError::FrameTooShort { len });
    }
    if len > max_len {
        return Err(FramingError::FrameTooLarge { len, max: max_len });
    }
    let end = FRAME_HEADER_LEN + len;
    Ok(buf.get(FRAME_HEADER_LEN..end).map(|ciphertext| (ciphertext, end)))
}

/// Reassembles messages from the decrypted byte stream of one direction
/// (sans-IO).
///
/// Feed it plaintext with [`MessageDecoder::decode`] in any split; it checks
/// each declared length against the limit as soon as the 4 length bytes are
/// in, before buffering any of the message.
#[derive(Debug)]
pub struct MessageDecoder {
    max_message: usize,
    header: [u8; MESSAGE_HEADER_LEN],
    header_len: usize,
    body: Option<(usize, Vec<u8>)>,
}

impl MessageDecoder {
    /// A decoder refusing messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> MessageDecoder {
        MessageDecoder {
            max_message,
            header: [0; MESSAGE_HEADER_LEN],
            header_len: 0,
            body: None,
        }
    }

    /// Consumes bytes from `input` up to the end of the current message.
    ///
    /// Returns how many bytes were consumed and, when they completed a
    /// message, the message. `(n, None)` with `n == input.len()` means "need
    /// more bytes". Call again with the rest of `input` when `n` is smaller.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Vec<u8>>), FramingError> {
        let mut consumed = 0;
        if self.body.is_none() {
            let take = (MESSAGE_HEADER_LEN - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            self.header_len += take;
            consumed += take;
            if self.header_len < MESSAGE_HEADER_LEN {
                return Ok((consumed, None));
            }
            let declared = u32::from_be_bytes(self.header);
            let len = usize::try_from(declared)
                .ok()
                .filter(|&len| len <= self.max_message)
                .ok_or(FramingError::MessageTooLarge {
                    len: u64::from(declared),
                    max: self.max_message,
                })?;
            self.header_len = 0;
            // Grow with the bytes that actually arrive, not with the claim.
            self.body = Some((len, Vec::with_capacity(len.min(MAX_FRAME_PLAINTEXT))));
        }
        let Some((len, body)) = self.body.as_mut() else {
            return Ok((consumed, None));
        };
        let rest = &input[consumed..];
        let take = (*len - body.len()).min(rest.len());
        if body.capacity() - body.len() < take {
            // Double as the bytes arrive, but never past the declared length.
            let target = body.capacity().saturating_mul(2).max(body.len() + take).min(*len);
            body.reserve_exact(target - body.len());
        }
        body.extend_from_slice(&rest[..take]);
        consumed += take;
        if body.len() == *len {
            let message = self.body.take().map(|(_, body)| body);
            return Ok((consumed, message));
        }
        Ok((consumed, None))
    }

    /// The declared length of the message being assembled, once its length
    /// prefix is in.
    pub fn body_len(&self) -> Option<usize> {
        self.body.as_ref().map(|(len, _)| *len)
    }

    /// Whether the decoder sits between two messages (nothing partial held).
    pub fn is_idle(&self) -> bool {
        self.header_len == 0 && self.body.is_none()
    }
}

/// Buffered reading of whole frames from a socket (cancel-safe).
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// Reads the next frame's ciphertext, at most `max_len` bytes long.
    ///
    /// Cancel-safe: the only await is a `read_buf`, and bytes read are kept.
    /// A clean end of stream between frames is [`StreamError::Closed`], in
    /// the middle of one [`StreamError::Truncated`].
    pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        max_len: usize,
    ) -> Result<&[u8], StreamError> {
        loop {
            if let Some((_, consumed)) = parse_frame(&self.buf[self.start..], max_len)? {
                let begin = self.start + FRAME_HEADER_LEN;
                self.start += consumed;
                return Ok(&self.buf[begin..self.start]);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(READ_CHUNK);
            if reader.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    StreamError::Closed
                } else {
                    StreamError::Truncated
                });
            }
        }
    }

    /// Whether bytes beyond the frames returned so far are buffered.
    fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }
}

/// The sending direction's cipher: the shared transport state and its own nonce counter.
pub(crate) struct SendCipher {
    state: Arc<StatelessTransportState>,
    nonce: u64,
}

impl SendCipher {
    pub(crate) fn new(state: Arc<StatelessTransportState>) -> SendCipher {
        SendCipher { state, nonce: 0 }
    }

    /// The ciphers of both directions of a finished handshake, nonces at 0.
    pub(crate) fn pair(transport: StatelessTransportState) -> (SendCipher, RecvCipher) {
        let state = Arc::new(transport);
        (SendCipher::new(state.clone()), RecvCipher::new(state))
    }

    /// Appends one frame (length prefix and ciphertext) carrying `plaintext` to `out`.
    pub(crate) fn seal_frame(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        debug_assert!(plaintext.len() <= MAX_FRAME_PLAINTEXT);
        // Noise reserves the nonce 2^64 - 1.
        if self.nonce == u64::MAX {
            return Err(StreamError::NonceExhausted);
        }
        let len = plaintext.len() + NOISE_TAG_LEN;
        let header = u16::try_from(len).map_err(|_| FramingError::FrameTooLarge {
            len,
            max: MAX_NOISE_FRAME,
        })?;
        let at = out.len();
        out.extend_from_slice(&header.to_be_bytes());
        out.resize(at + FRAME_HEADER_LEN + len, 0);
        let written = self
            .state
            .write_message(self.nonce, plaintext, &mut out[at + FRAME_HEADER_LEN..])
            .map_err(|_| StreamError::Broken)?;
        debug_assert_eq!(written, len);
        self.nonce += 1;
        Ok(())
    }
}

/// The receiving direction's cipher: the shared transport state and its own nonce counter.
pub(crate) struct RecvCipher {
    state: Arc<StatelessTransportState>,
    nonce: u64,
}

impl RecvCipher {
    pub(crate) fn new(state: Arc<StatelessTransportState>) -> RecvCipher {
        RecvCipher { state, nonce: 0 }
    }

    /// Decrypts one frame's ciphertext into `out` (at least the ciphertext's
    /// length), returning the plaintext length.
    pub(crate) fn open_frame(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, StreamError> {
        if self.nonce == u64::MAX {
            return Err(StreamError::NonceExhausted);
        }
        let len = self
            .state
            .read_message(self.nonce, ciphertext, out)
            .map_err(|_| StreamError::Decrypt)?;
        self.nonce += 1;
        Ok(len)
    }
}

/// The receiving half's state, independent of the socket type.
struct ReadState {
    frames: FrameReader,
    cipher: RecvCipher,
    plain: Vec<u8>,
    plain_start: usize,
    plain_end: usize,
    decoder: MessageDecoder,
    broken: bool,
    /// The node's pool for large messages; `None`: no budget applies.
    budget: Option<BufferBudget>,
    /// The reservation being waited for, for the message in progress.
    reserving: Option<Reserving>,
    /// The reservation of the message in progress, and when it must be whole.
    held: Option<(OwnedSemaphorePermit, Instant)>,
    /// The reservation of the message last returned, released by the next `recv`.
    done: Option<OwnedSemaphorePermit>,
    /// Reservations granted so far.
    granted: u64,
}

impl ReadState {
    fn new(frames: FrameReader, cipher: RecvCipher, max_message: usize) -> ReadState {
        ReadState {
            frames,
            cipher,
            plain: vec![0; MAX_NOISE_FRAME],
            plain_start: 0,
            plain_end: 0,
            decoder: MessageDecoder::new(max_message),
            broken: false,
            budget: None,
            reserving: None,
            held: None,
            done: None,
            granted: 0,
        }
    }

    async fn recv<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Result<Vec<u8>, StreamError> {
        if self.broken {
            return Err(StreamError::Broken);
        }
        // The caller is done with the previous message.
        self.done = None;
        // Only errors set `broken`; a cancelled recv loses nothing (see `recv`'s doc).
        match self.recv_inner(reader).await {
            Ok(message) => Ok(message),
            Err(e) => {
                self.broken = true;
                // A broken stream assembles nothing more: its share goes back to the pool.
                self.reserving = None;
                self.held = None;
                Err(e)
            }
        }
    }

    async fn recv_inner<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Result<Vec<u8>, StreamError> {
        loop {
            if self.plain_start < self.plain_end {
                let (n, message) = self.decoder.decode(&self.plain[self.plain_start..self.plain_end])?;
                self.plain_start += n;
                if let Some(message) = message {
                    self.done = self.held.take().map(|(permit, _)| permit);
                    return Ok(message);
                }
                continue;
            }
            self.reserve().await;
            let read = self.frames.read_frame(reader, MAX_NOISE_FRAME);
            let frame = match (&self.held, &self.budget) {
                (Some((_, deadline)), Some(budget)) => tokio::time::timeout_at(*deadline, read)
                    .await
                    .map_err(|_| StreamError::SlowMessage(budget.deadline()))?,
                _ => read.await,
            };
            let ciphertext = match frame {
                Err(StreamError::Closed) if !self.decoder.is_idle() => return Err(StreamError::Truncated),
                other => other?,
            };
            let len = self.cipher.open_frame(ciphertext, &mut self.plain)?;
            self.plain_start = 0;
            self.plain_end = len;
        }
    }
}

impl ReadState {
    /// Before reading more of a large message: waits (cancel-safe, keeping
    /// its place) for its reservation of the budget, and starts its deadline.
    async fn reserve(&mut self) {
        if self.held.is_some() {
            return;
        }
        let (Some(budget), Some(len)) = (&self.budget, self.decoder.body_len()) else {
            return;
        };
        if self.reserving.is_none() {
            self.reserving = budget.reserve(len);
        }
        let Some(reserving) = self.reserving.as_mut() else {
            return;
        };
        let permit = reserving.await;
        self.reserving = None;
        self.granted += 1;
        let deadline = Instant::now() + budget.deadline();
        self.held = permit.map(|permit| (permit, deadline));
    }
}

/// The sending half's state, independent of the socket type.
struct WriteState {
    cipher: SendCipher,
    max_message: usize,
    out: Vec<u8>,
    broken: bool,
}

impl WriteState {
    /// Refuses a message over the limit (before touching any state).
    fn check_len(&self, message: &[u8]) -> Result<u32, FramingError> {
        u32::try_from(message.len())
            .ok()
            .filter(|_| message.len() <= self.max_message)
            .ok_or(FramingError::MessageTooLarge {
                len: message.len() as u64,
                max: self.max_message,
            })
    }

    /// Encrypts `message` (of checked length `len`) into frames in `self.out`.
    fn seal_message(&mut self, len: u32, message: &[u8]) -> Result<(), StreamError> {
        let first_len = message.len().min(MAX_FRAME_PLAINTEXT - MESSAGE_HEADER_LEN);
        let (first, rest) = message.split_at(first_len);
        let mut head = Vec::with_capacity(MESSAGE_HEADER_LEN + first.len());
        head.extend_from_slice(&len.to_be_bytes());
        head.extend_from_slice(first);
        let frames = message.len() / MAX_FRAME_PLAINTEXT + 1;
        self.out
            .reserve(MESSAGE_HEADER_LEN + message.len() + frames * (FRAME_HEADER_LEN + NOISE_TAG_LEN));
        self.cipher.seal_frame(&head, &mut self.out)?;
        for chunk in rest.chunks(MAX_FRAME_PLAINTEXT) {
            self.cipher.seal_frame(chunk, &mut self.out)?;
        }
        Ok(())
    }

    async fn send<W: AsyncWrite + Unpin>(&mut self, writer: &mut W, message: &[u8]) -> Result<(), StreamError> {
        if self.broken {
            return Err(StreamError::Broken);
        }
        // Refused locally before anything is encrypted: the stream stays usable.
        let len = self.check_len(message)?;
        // Stays set if sealing fails or this future is dropped part-way through the write.
        self.broken = true;
        self.out.clear();
        self.seal_message(len, message)?;
        writer.write_all(&self.out).await?;
        writer.flush().await?;
        self.out.clear();
        if self.out.capacity() > KEEP_WRITE_BUFFER {
            self.out = Vec::new();
        }
        self.broken = false;
        Ok(())
    }

    /// Sends one empty frame (a keepalive: receivers skip it).
    async fn send_empty_frame<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> Result<(), StreamError> {
        if self.broken {
            return Err(StreamError::Broken);
        }
        self.broken = true;
        self.send_raw_frame(writer, &[]).await?;
        self.broken = false;
        Ok(())
    }

    async fn send_raw_frame<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        plaintext: &[u8],
    ) -> Result<(), StreamError> {
        self.out.clear();
        self.cipher.seal_frame(plaintext, &mut self.out)?;
        writer.write_all(&self.out).await?;
        writer.flush().await?;
        self.out.clear();
        Ok(())
    }
}

/// An authenticated, encrypted message stream to one peer, as returned by
/// [`initiate`](super::initiate) and [`respond`](super::respond).
///
/// Generic over the socket (`tokio::net::TcpStream`, a turmoil stream, an
/// in-memory duplex). Use [`SecureStream::into_split`] (or
/// [`SecureStream::split_with`]) to read and write from different tasks.
pub struct SecureStream<S> {
    stream: S,
    remote: FeedId,
    handshake_hash: [u8; 32],
    read: ReadState,
    write: WriteState,
}

impl<S> std::fmt::Debug for SecureStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureStream")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl<S> SecureStream<S> {
    /// Assembles a stream after a completed handshake. `frames` holds bytes
    /// already read past the handshake.
    pub(crate) fn new(
        stream: S,
        remote: FeedId,
        handshake_hash: [u8; 32],
        (send, recv): (SendCipher, RecvCipher),
        frames: FrameReader,
        max_message: usize,
    ) -> SecureStream<S> {
        SecureStream {
            stream,
            remote,
            handshake_hash,
            read: ReadState::new(frames, recv, max_message),
            write: WriteState {
                cipher: send,
                max_message,
                out: Vec::new(),
                broken: false,
            },
        }
    }

    /// The peer's feed id, proven during the handshake.
    pub fn remote_id(&self) -> FeedId {
        self.remote
    }

    /// The Noise handshake hash: a unique identifier of this session (both
    /// sides see the same value), e.g. for logs.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// The underlying socket (for its addresses, say).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Whether bytes received beyond the last returned message are buffered
    /// (a complete message may be waiting).
    pub fn has_buffered_input(&self) -> bool {
        !self.read.frames.is_empty() || self.read.plain_start < self.read.plain_end
    }

    /// Splits into a reader and a writer half with `split` (for example
    /// `tokio::net::TcpStream::into_split`, which needs no lock).
    pub fn split_with<R, W>(self, split: impl FnOnce(S) -> (R, W)) -> (SecureReader<R>, SecureWriter<W>) {
        let (reader, writer) = split(self.stream);
        (
            SecureReader {
                reader,
                remote: self.remote,
                state: self.read,
            },
            SecureWriter {
                writer,
                remote: self.remote,
                state: self.write,
            },
        )
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SecureStream<S> {
    /// Sends one message (at most `max_message` bytes).
    ///
    /// A message over the limit is refused with [`FramingError::MessageTooLarge`]
    /// and the stream stays usable. Not cancel-safe: a send dropped part-way
    /// leaves the stream [`StreamError::Broken`].
    pub async fn send(&mut self, message: &[u8]) -> Result<(), StreamError> {
        self.write.send(&mut self.stream, message).await
    }

    /// Receives the next message.
    ///
    /// Cancel-safe (usable in `tokio::select!`): a partly received message
    /// is kept and completed by the next call.
    pub async fn recv(&mut self) -> Result<Vec<u8>, StreamError> {
        self.read.recv(&mut self.stream).await
    }

    /// Test hook: sends one frame carrying `plaintext` as is (no message
    /// length prefix), to act as a misbehaving peer.
    #[doc(hidden)]
    pub async fn send_raw_frame(&mut self, plaintext: &[u8]) -> Result<(), StreamError> {
        self.write.send_raw_frame(&mut self.stream, plaintext).await
    }

    /// Splits into a reader and a writer half (through `tokio::io::split`,
    /// which works for any socket type; see [`SecureStream::split_with`] for
    /// a lock-free split of a `TcpStream`).
    pub fn into_split(self) -> (SecureReader<ReadHalf<S>>, SecureWriter<WriteHalf<S>>) {
        self.split_with(tokio::io::split)
    }
}

/// The receiving half of a [`SecureStream`].
pub struct SecureReader<R> {
    reader: R,
    remote: FeedId,
    state: ReadState,
}

impl<R> std::fmt::Debug for SecureReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureReader")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> SecureReader<R> {
    /// Receives the next message (cancel-safe, as [`SecureStream::recv`]).
    pub async fn recv(&mut self) -> Result<Vec<u8>, StreamError> {
        self.state.recv(&mut self.reader).await
    }

    /// Frames received and decrypted so far, empty ones (keepalives)
    /// included: it grows whenever the peer is heard from.
    pub fn frames_received(&self) -> u64 {
        self.state.cipher.nonce
    }

    /// Counts the messages this half receives against `budget`: a message
    /// over [`super::SMALL_MESSAGE`] bytes waits for its reservation before
    /// more of it is read, then has the budget's deadline to arrive whole.
    pub fn set_budget(&mut self, budget: BufferBudget) {
        self.state.budget = Some(budget);
    }

    /// Whether the half stopped reading the socket until the budget has
    /// room for the message in progress (the peer is not to blame for the
    /// silence meanwhile).
    pub fn is_waiting_for_budget(&self) -> bool {
        self.state.reserving.is_some()
    }

    /// Grows whenever a frame arrives ([`SecureReader::frames_received`])
    /// or the budget lets the half read on: while it stands still and the
    /// half is not [waiting](SecureReader::is_waiting_for_budget), the peer
    /// is silent.
    pub fn progress(&self) -> u64 {
        self.state.cipher.nonce.saturating_add(self.state.granted)
    }

    /// The peer's feed id, proven during the handshake.
    pub fn remote_id(&self) -> FeedId {
        self.remote
    }
}

/// The sending half of a [`SecureStream`].
pub struct SecureWriter<W> {
    writer: W,
    remote: FeedId,
    state: WriteState,
}

impl<W> std::fmt::Debug for SecureWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureWriter")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> SecureWriter<W> {
    /// Sends one message (as [`SecureStream::send`]; not cancel-safe).
    pub async fn send(&mut self, message: &[u8]) -> Result<(), StreamError> {
        self.state.send(&mut self.writer, message).await
    }

    /// Sends an empty frame, which the peer's reader skips (§3.3): a
    /// keepalive that proves the connection alive. Not cancel-safe.
    pub async fn send_keepalive(&mut self) -> Result<(), StreamError> {
        self.state.send_empty_frame(&mut self.writer).await
    }

    /// Closes the sending direction (the peer's `recv` then returns
    /// [`StreamError::Closed`]).
    pub async fn shutdown(&mut self) -> Result<(), StreamError> {
        self.writer.shutdown().await?;
        Ok(())
    }

    /// The peer's feed id, proven during the handshake.
    pub fn remote_id(&self) -> FeedId {
        self.remote
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_need_more_bytes_or_are_invalid() {
        assert_eq!(parse_frame(&[], MAX_NOISE_FRAME), Ok(None));
        assert_eq!(parse_frame(&[0], MAX_NOISE_FRAME), Ok(None));
        assert_eq!(parse_frame(&[0, 16, 1, 2], MAX_NOISE_FRAME), Ok(None));
        assert_eq!(
            parse_frame(&[0, 15], MAX_NOISE_FRAME),
            Err(FramingError::FrameTooShort { len: 15 })
        );
        assert_eq!(
            parse_frame(&[1, 0], 255),
            Err(FramingError::FrameTooLarge { len: 256, max: 255 })
        );
        let mut frame = vec![0, 16];
        frame.extend_from_slice(&[7; 17]);
        assert_eq!(parse_frame(&frame, MAX_NOISE_FRAME), Ok(Some((&[7u8; 16][..], 18))));
    }

    #[test]
    fn decoder_refuses_an_oversized_length_before_buffering() {
        let mut decoder = MessageDecoder::new(MAX_MESSAGE);
        assert_eq!(decoder.decode(&[0xff, 0xff]), Ok((2, None)));
        assert!(!decoder.is_idle());
        assert_eq!(
            decoder.decode(&[0xff, 0xff, 1, 2, 3]),
            Err(FramingError::MessageTooLarge {
                len: u64::from(u32::MAX),
                max: MAX_MESSAGE
            })
        );
        let mut decoder = MessageDecoder::new(10);
        assert_eq!(
            decoder.decode(&11u32.to_be_bytes()),
            Err(FramingError::MessageTooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn decoder_accepts_any_split() {
        let messages: Vec<Vec<u8>> = vec![vec![], vec![1], (0..=255).collect(), vec![9; 1000]];
        let mut stream = Vec::new();
        for m in &messages {
            stream.extend_from_slice(&(m.len() as u32).to_be_bytes());
            stream.extend_from_slice(m);
        }
        for step in [1, 2, 3, 5, 7, 64, 4096] {
            let mut decoder = MessageDecoder::new(1000);
            let mut got = Vec::new();
            for chunk in stream.chunks(step) {
                let mut at = 0;
                while at < chunk.len() {
                    let (n, message) = decoder.decode(&chunk[at..]).expect("valid");
                    at += n;
                    got.extend(message);
                }
            }
            assert_eq!(got, messages, "step {step}");
            assert!(decoder.is_idle());
        }
    }
}
