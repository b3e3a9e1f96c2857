//! Reading from the store what a connection owes its peer: the records of
//! the ranges it queued ([`read_ranges`]), and the Chunk answering a Fetch
//! ([`serve_fetch`], spec/PROTOCOL.md §2.2 "Fetches", *Responding*).

use super::message::{
    CHUNK_OVERHEAD, MAX_FETCH_RANGE, MAX_RECORDS_PER_MESSAGE, Message, RECORDS_OVERHEAD, pack_chunk, record_size,
};
use super::sends::Range;
#[cfg(doc)]
use super::{MAX_FRAME, PeerSync};
use crate::feed::{FeedId, Record, certificate_path, declared_record_len};
use crate::store::{Store, StoreError};

/// The Chunk answering the peer's Fetch `id` of `from..=to` of `feed`
/// ([`PeerSync::next_serve`]), from what `store` holds when it is called: `latest`
/// the latest entry held; no records if the store holds no entry `from` (or
/// lacks an entry of its certificate path, which a store holding a
/// contiguous prefix never does); otherwise the entries of
/// [`certificate_path`]`(from)` below `from` (headers, payloads null), then
/// the held entries `from..=to`, at most [`MAX_FETCH_RANGE`] of them.
///
/// The message encodes to at most `max_bytes` (a driver's free outbox) and
/// [`MAX_FRAME`] bytes: the range is read within what the path leaves, its
/// payloads counted by their declared lengths before they are read
/// ([`Store::range_within`]), so the read never holds more than the message
/// may. What does not fit is cut from the end (the asker fetches the rest);
/// entry `from` is sent whenever `max_bytes` has room for it, the path and
/// the message's overhead.
pub fn serve_fetch<S: Store + ?Sized>(
    store: &S,
    id: u64,
    feed: FeedId,
    from: u64,
    to: u64,
    max_bytes: usize,
) -> Result<Message, StoreError> {
    let latest = store.latest(&feed)?.unwrap_or(0);
    if latest < from {
        return Ok(pack_chunk(id, feed, latest, Vec::new(), Vec::new()));
    }
    let mut path = Vec::new();
    for seq in certificate_path(from).into_iter().skip(1).rev() {
        match store.entry(&feed, seq)? {
            Some(entry) => path.push(entry),
            None => return Ok(pack_chunk(id, feed, latest, Vec::new(), Vec::new())),
        }
    }
    let limit = MAX_FETCH_RANGE as usize;
    // What one Chunk can carry besides the path (each record takes one byte
    // more in the message than on its own): read no more than that.
    let path_len: usize = path.iter().map(|entry| record_size(entry, None)).sum();
    let room = max_bytes.saturating_sub(CHUNK_OVERHEAD + path_len + limit);
    let range = store.range_within(&feed, from, to, limit, room)?;
    Ok(pack_chunk(id, feed, latest, path, range))
}

/// Reads `ranges` in order, as many records as one Records message of at
/// most `allowance` bytes holds (counted before the payloads are read, so
/// one read never holds more than that message whatever the records'
/// sizes); returns them and the ranges, or rests of ranges, left unread, in
/// order.
pub fn read_ranges<S: Store + ?Sized>(
    store: &S,
    ranges: Vec<Range>,
    allowance: usize,
) -> Result<(Vec<Record>, Vec<Range>), StoreError> {
    let mut records: Vec<Record> = Vec::new();
    let mut unread = Vec::new();
    // Each record takes one byte more in a message than on its own.
    let mut left = allowance.saturating_sub(RECORDS_OVERHEAD + MAX_RECORDS_PER_MESSAGE);
    for (feed, from, to) in ranges {
        if !unread.is_empty() {
            unread.push((feed, from, to));
            continue;
        }
        let len = usize::try_from(to.saturating_sub(from).saturating_add(1)).unwrap_or(usize::MAX);
        let read = store.range_within(&feed, from, to, len, left)?;
        left -= read.iter().map(|(entry, _)| declared_record_len(entry)).sum::<usize>();
        let next = read.last().map_or(from, |(entry, _)| entry.seq() + 1);
        // Fewer than asked: either the bytes ran out, or the store holds
        // no more of the range (then nothing is left to send of it).
        if read.len() < len && next <= to && store.latest(&feed)?.is_some_and(|latest| latest >= next) {
            unread.push((feed, next, to));
        }
        records.extend(read);
    }
    Ok((records, unread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Keypair, declared_record_len};
    use crate::store::MemoryStore;
    use crate::sync::{Action, MAX_FRAME, PeerSync};
    use crate::writer::FeedWriter;

    /// A store holding one feed of `n` entries with `payload`-byte payloads.
    fn feed_of(n: usize, payload: usize) -> (MemoryStore, FeedId) {
        let store = MemoryStore::new();
        let mut writer = FeedWriter::open(&store, Keypair::from_seed([7; 32])).expect("writer");
        let payloads: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; payload]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        writer.append(&store, &refs, 1).expect("append");
        (store, writer.keys().feed_id())
    }

    /// The records of a Chunk: (seq, whether it has its payload).
    fn records(chunk: &Message) -> Vec<(u64, bool)> {
        let Message::Chunk { records, .. } = chunk else {
            panic!("not a Chunk: {chunk:?}");
        };
        records
            .iter()
            .map(|(entry, payload)| (entry.seq(), payload.is_some()))
            .collect()
    }

    #[test]
    fn the_chunk_carries_the_path_below_from_then_the_range_and_verifies_at_the_asker() {
        let (store, feed) = feed_of(100, 10);
        let mut asker = PeerSync::new();
        asker.start(&Default::default(), 0);
        let id = asker.fetch_range(feed, 40, 45, 0).expect("fetch");
        let chunk = serve_fetch(&store, id, feed, 40, 45, MAX_FRAME).expect("serve");

        let path: Vec<(u64, bool)> = certificate_path(40)
            .into_iter()
            .skip(1)
            .rev()
            .map(|s| (s, false))
            .collect();
        let range: Vec<(u64, bool)> = (40..=45).map(|s| (s, true)).collect();
        assert_eq!(records(&chunk), [path, range].concat());

        asker.handle_message(chunk, 1);
        let fetched = std::iter::from_fn(|| asker.poll_action()).find_map(|action| match action {
            Action::Fetched { id: got, result } if got == id => Some(result),
            _ => None,
        });
        let fetched = fetched.expect("no answer").expect("the chunk verifies");
        assert_eq!(fetched.latest, 100);
        let received: Vec<_> = fetched.records.into_iter().map(|r| r.into_parts()).collect();
        assert_eq!(received, store.range(&feed, 40, 45, usize::MAX).expect("range"));
    }

    #[test]
    fn a_range_past_what_is_held_is_answered_with_what_is_held_or_nothing() {
        let (store, feed) = feed_of(10, 10);
        let short = serve_fetch(&store, 1, feed, 8, 20, MAX_FRAME).expect("serve");
        let tail: Vec<(u64, bool)> = records(&short).into_iter().filter(|&(_, payload)| payload).collect();
        assert_eq!(tail, vec![(8, true), (9, true), (10, true)]);

        let none = serve_fetch(&store, 2, feed, 11, 20, MAX_FRAME).expect("serve");
        assert_eq!(none, pack_chunk(2, feed, 10, Vec::new(), Vec::new()));
        let unknown = Keypair::from_seed([8; 32]).feed_id();
        let none = serve_fetch(&store, 3, unknown, 1, 1, MAX_FRAME).expect("serve");
        assert_eq!(none, pack_chunk(3, unknown, 0, Vec::new(), Vec::new()));
    }

    #[test]
    fn the_chunk_stays_within_max_bytes_and_keeps_entry_from() {
        // 64 KiB payloads: 20 of them do not fit 1 MiB.
        let (store, feed) = feed_of(20, 64 * 1024);
        let max_bytes = 1024 * 1024;
        let chunk = serve_fetch(&store, 1, feed, 1, 20, max_bytes).expect("serve");
        let sent = records(&chunk);
        assert!(chunk.encode().len() <= max_bytes);
        assert!((1..20).contains(&sent.len()), "{sent:?}");
        assert_eq!(sent[0], (1, true));

        // Room for the path and entry `from` alone: entry `from` is sent.
        let entry = |seq| store.entry(&feed, seq).expect("entry").expect("held");
        let path: usize = certificate_path(17)
            .into_iter()
            .skip(1)
            .map(|seq| record_size(&entry(seq), None))
            .sum();
        let tight = CHUNK_OVERHEAD + path + MAX_FETCH_RANGE as usize + declared_record_len(&entry(17));
        let chunk = serve_fetch(&store, 2, feed, 17, 20, tight).expect("serve");
        assert!(chunk.encode().len() <= tight);
        let range: Vec<u64> = records(&chunk)
            .into_iter()
            .filter_map(|(seq, payload)| payload.then_some(seq))
            .collect();
        assert_eq!(range, vec![17]);
    }

    #[test]
    fn the_chunk_holds_at_most_max_fetch_range_entries_of_the_range() {
        let (store, feed) = feed_of(MAX_FETCH_RANGE as usize + 10, 1);
        let chunk = serve_fetch(&store, 1, feed, 1, MAX_FETCH_RANGE + 10, usize::MAX).expect("serve");
        let expected: Vec<(u64, bool)> = (1..=MAX_FETCH_RANGE).map(|seq| (seq, true)).collect();
        assert_eq!(records(&chunk), expected);
    }
}
