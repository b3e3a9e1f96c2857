//! The connection loop: reads commands as they come (every complete one
//! the socket holds), runs them in order, and writes the replies in
//! request order (spec/RESP.md §5).
//!
//! A `SET` without `GET` ([`Command::runs_concurrently`]) becomes a future
//! in the connection's queue of replies; the futures are polled in the
//! order received, so a pipeline of writes reaches the group committer
//! together, in order, and joins one commit. Any other command waits until
//! every write before it has answered (a read sees them; `WAIT` knows the
//! latest), and nothing after it starts before it has answered. At most
//! [`MAX_PENDING`] replies wait in the queue: past that, the connection
//! stops reading until the front ones are written. Replies are written as
//! they become ready, while the connection goes on reading.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use redis_protocol::bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::MAX_PENDING;
use super::codec::{self, Protocol, error};
use super::command::{self, Command, CommandError};
use super::exec::{self, Client, Done, Running, Shared, Step};
use crate::sessions::Written;

/// How much the read buffer grows by at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Replies move from the queue to the output buffer while it holds less
/// than this (1 MiB): a client that does not read its replies fills the
/// queue, and then the connection stops reading its commands.
const MAX_OUTPUT: usize = 1 << 20;

/// A reply in the queue: ready, or still running.
enum Slot {
    Ready(Done),
    Running(Running),
}

/// A reply in the queue, and the protocol it is to be encoded in (the
/// connection's when the command started: a `HELLO` changes it only for
/// itself and what follows).
type Queued = (Slot, Protocol);

/// The replies of one connection, in request order.
#[derive(Default)]
struct Replies {
    slots: VecDeque<Queued>,
    /// How many slots are running.
    running: usize,
    /// Whether the running one is a command that runs alone.
    alone: bool,
    /// The client's latest write that completed (highest sequence number).
    last: Option<Written>,
}

impl Replies {
    /// Whether `command` may start now.
    fn may_start(&self, concurrent: bool) -> bool {
        if concurrent { !self.alone } else { self.running == 0 }
    }

    fn push(&mut self, step: Step, concurrent: bool, protocol: Protocol) {
        match step {
            Step::Now(reply) => self.slots.push_back((Slot::Ready(reply.into()), protocol)),
            Step::Later(future) => {
                self.running += 1;
                self.alone = !concurrent;
                self.slots.push_back((Slot::Running(future), protocol));
            }
        }
    }

    /// Polls every running slot, in order; ready once one has completed.
    fn poll_running(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut completed = false;
        for (slot, _) in &mut self.slots {
            let Slot::Running(future) = slot else {
                continue;
            };
            if let Poll::Ready(done) = future.as_mut().poll(cx) {
                if let Some(written) = done.written
                    && self.last.is_none_or(|last| last.seq < written.seq)
                {
                    self.last = Some(written);
                }
                *slot = Slot::Ready(done);
                self.running -= 1;
                completed = true;
            }
        }
        if self.running == 0 {
            self.alone = false;
        }
        if completed { Poll::Ready(()) } else { Poll::Pending }
    }

    /// The front reply, if it is ready, with its protocol.
    fn pop_ready(&mut self) -> Option<(Done, Protocol)> {
        match self.slots.front() {
            Some((Slot::Ready(_), _)) => match self.slots.pop_front() {
                Some((Slot::Ready(done), protocol)) => Some((done, protocol)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A command read but not started yet.
type Parsed = Result<Command, CommandError>;

/// Serves one client on `stream` until it closes, sends `QUIT`, breaks the
/// protocol, or `shutdown` turns true (then the replies under way are
/// written first).
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut client = Client::new(&shared);
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    let mut replies = Replies::default();
    let mut held: Option<Parsed> = None;
    let mut reading = true;
    loop {
        // Start every command that may start.
        while replies.slots.len() < MAX_PENDING && !client.closing {
            let parsed = match held.take() {
                Some(parsed) => parsed,
                None => match codec::next_command(&mut input) {
                    Ok(Some(args)) if args.is_empty() => continue,
                    Ok(Some(args)) => command::parse(&args),
                    Ok(None) => break,
                    Err(failure) => {
                        replies.push(Step::Now(error(format!("ERR {failure}"))), false, client.protocol);
                        client.closing = true;
                        break;
                    }
                },
            };
            let concurrent = parsed.as_ref().is_ok_and(Command::runs_concurrently);
            if !replies.may_start(concurrent) {
                held = Some(parsed);
                break;
            }
            let step = match parsed {
                Ok(command) => exec::execute(&shared, &mut client, replies.last, command),
                Err(failure) => failure.into(),
            };
            replies.push(step, concurrent, client.protocol);
        }
        // Move the replies that are ready, in order, to the output buffer.
        while output.len() < MAX_OUTPUT
            && let Some((done, protocol)) = replies.pop_ready()
        {
            codec::encode(&done.reply, protocol, &mut output);
        }
        if replies.slots.is_empty() && held.is_none() && (client.closing || !reading) {
            break;
        }
        let can_read = reading && !client.closing && held.is_none() && replies.slots.len() < MAX_PENDING;
        if can_read && input.capacity() - input.len() < READ_CHUNK {
            input.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            changed = shutdown.changed(), if !client.closing => {
                if changed.is_err() || *shutdown.borrow() {
                    client.closing = true;
                }
            }
            () = std::future::poll_fn(|cx| replies.poll_running(cx)), if replies.running > 0 => {}
            written = writer.write(&output), if !output.is_empty() => match written {
                Ok(n) if n > 0 => output.advance(n),
                _ => return,
            },
            read = reader.read_buf(&mut input), if can_read => {
                if !matches!(read, Ok(n) if n > 0) {
                    reading = false;
                }
            }
            else => break,
        }
    }
    if !output.is_empty() && writer.write_all(&output).await.is_err() {
        return;
    }
    let _ = writer.shutdown().await;
}
