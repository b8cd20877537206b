//! The outgoing queue: everything the connection has to send, in order.
//!
//! Small frames are coalesced into one growing `tail` buffer (one write for
//! many messages); a large payload is queued as its own `Bytes` after its
//! header, never copied. The caller takes the queue with `poll_transmit`
//! (into its `Vec<u8>`) or `poll_transmit_bytes` (chunk by chunk, for
//! vectored writes). When the queue empties its buffer is released, so a
//! quiet connection holds no output memory.
//!
//! A caller that writes reply by reply can avoid the allocation per reply:
//! `poll_transmit_bytes_in` copies a small coalesced tail into the caller's
//! `BytesMut` (split off it, so the caller's buffer is reclaimed once the
//! written `Bytes` is dropped) and keeps the tail's capacity; the caller
//! takes that capacity back with `reclaim_transmit_buffer` when it goes quiet
//! and lends it (to this or another connection) with `lend_transmit_buffer`.
//!
//! A caller can also write straight from the queue: `transmit_slices` lends
//! it as `IoSlice`s for one vectored write and `advance_transmit` drops what
//! was written, so a reply is neither copied nor reference-counted; the tail
//! keeps its capacity as with `poll_transmit_bytes_in`.
//!
//! The tail is a `Vec<u8>` rather than a `BytesMut`: `Vec`'s appends are
//! generic, so they inline into the encoder and a short frame's fixed-size
//! copy compiles to register moves; sealing it into `Bytes` takes the
//! allocation over without copying.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// How much to reserve when the tail buffer is full: large enough to batch
/// many small frames, small enough not to matter per connection.
const TAIL_RESERVE: usize = 4096;
/// Largest coalesced tail [`TxQueue::pop_into`] copies out (rather than
/// handing its buffer over): a copy this size costs less than the
/// allocation it saves.
pub(crate) const COPY_OUT_MAX: usize = 16 * 1024;

#[derive(Debug, Default)]
pub(crate) struct TxQueue {
    chunks: VecDeque<Bytes>,
    tail: Vec<u8>,
    /// Bytes in `chunks` (the tail's length is its own).
    chunks_len: usize,
}

impl TxQueue {
    /// Space to append `additional` bytes to the coalescing buffer.
    #[inline]
    pub(crate) fn tail(&mut self, additional: usize) -> &mut Vec<u8> {
        if self.tail.capacity() - self.tail.len() < additional {
            self.tail.reserve(additional.max(TAIL_RESERVE));
        }
        &mut self.tail
    }

    /// Appends the first `len` bytes of `block`. The copy is of all of
    /// `block` (a fixed size: register moves, no `memcpy` call), trimmed
    /// after.
    #[inline(always)]
    pub(crate) fn push_prefix<const N: usize>(&mut self, block: &[u8; N], len: usize) {
        let tail = self.tail(N);
        let end = tail.len() + len.min(N);
        tail.extend_from_slice(block);
        tail.truncate(end);
    }

    /// Queues a frame whose payload stays its own chunk: `head` joins the
    /// small frames before it, or, when there are none, becomes a chunk of
    /// its own (a few bytes, rather than a tail buffer that sealing would
    /// hand over with its spare capacity).
    pub(crate) fn push_large(&mut self, head: &[u8], payload: Bytes) {
        if self.tail.is_empty() {
            self.chunks_len += head.len();
            self.chunks.push_back(Bytes::copy_from_slice(head));
        } else {
            self.tail.extend_from_slice(head);
        }
        self.push_chunk(payload);
    }

    /// Queues `bytes` as its own chunk, after everything queued so far.
    pub(crate) fn push_chunk(&mut self, bytes: Bytes) {
        self.seal_tail();
        self.chunks_len += bytes.len();
        self.chunks.push_back(bytes);
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let sealed = Bytes::from(std::mem::take(&mut self.tail));
            self.chunks_len += sealed.len();
            self.chunks.push_back(sealed);
        }
    }

    /// Bytes waiting to be taken.
    pub(crate) fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends everything queued to `out` and empties the queue. When `out`
    /// is empty and everything is in the tail, the tail's buffer becomes
    /// `out` (no copy) and `out`'s old buffer is released.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() && self.chunks.is_empty() {
            *out = std::mem::take(&mut self.tail);
            return;
        }
        out.reserve(self.len());
        for chunk in self.chunks.drain(..) {
            out.extend_from_slice(&chunk);
        }
        out.extend_from_slice(&self.tail);
        self.chunks_len = 0;
        self.tail = Vec::new();
    }

    /// Takes the next chunk, in order, like [`pop`](Self::pop), except that
    /// a coalesced tail of at most [`COPY_OUT_MAX`] bytes is copied into
    /// `small` (cleared first) and split off it, and the tail keeps its
    /// capacity for the next frames.
    pub(crate) fn pop_into(&mut self, small: &mut BytesMut) -> Option<Bytes> {
        if let Some(chunk) = self.chunks.pop_front() {
            self.chunks_len -= chunk.len();
            return Some(chunk);
        }
        // Every chunk is ahead of the tail: the tail is next.
        let len = self.tail.len();
        if len == 0 {
            return None;
        }
        if len > COPY_OUT_MAX {
            return self.pop();
        }
        small.clear();
        if small.capacity() < len {
            // Reclaims `small`'s block in place when every `Bytes` split
            // off it was dropped; allocates only when one is still held.
            small.reserve(len.max(TAIL_RESERVE));
        }
        small.extend_from_slice(&self.tail);
        self.tail.clear();
        Some(small.split().freeze())
    }

    /// Lends the queue, in order, as up to `dst.len()` slices; returns how
    /// many were filled.
    pub(crate) fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let tail = (!self.tail.is_empty()).then_some(self.tail.as_slice());
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks.iter().map(|c| &c[..]).chain(tail)) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes (written from [`slices`](Self::slices)).
    /// The tail keeps its capacity, as with [`pop_into`](Self::pop_into).
    pub(crate) fn advance(&mut self, mut n: usize) {
        while let Some(front) = self.chunks.front_mut() {
            if n < front.len() {
                front.advance(n);
                self.chunks_len -= n;
                return;
            }
            n -= front.len();
            self.chunks_len -= front.len();
            self.chunks.pop_front();
        }
        if n >= self.tail.len() {
            self.tail.clear();
        } else {
            // A partial write (the socket is full): rare, and small.
            self.tail.drain(..n);
        }
    }

    /// Uses `buf`'s capacity for the coalescing buffer, unless the queue
    /// already has one: then `buf` is given back.
    pub(crate) fn lend(&mut self, mut buf: Vec<u8>) -> Option<Vec<u8>> {
        if self.tail.capacity() > 0 {
            return Some(buf);
        }
        buf.clear();
        self.tail = buf;
        None
    }

    /// Takes the (empty) coalescing buffer's capacity, if it has any and
    /// holds no bytes.
    pub(crate) fn reclaim(&mut self) -> Option<Vec<u8>> {
        (self.tail.is_empty() && self.tail.capacity() > 0).then(|| std::mem::take(&mut self.tail))
    }

    /// Takes the next chunk, in order.
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        self.seal_tail();
        let chunk = self.chunks.pop_front()?;
        self.chunks_len -= chunk.len();
        if self.chunks.is_empty() {
            // Sealed, the tail is empty: release any capacity it kept.
            self.tail = Vec::new();
        }
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_across_tail_and_chunks() {
        let mut q = TxQueue::default();
        q.tail(2).extend_from_slice(b"ab");
        q.push_chunk(Bytes::from_static(b"LARGE"));
        q.tail(1).extend_from_slice(b"c");
        assert_eq!(q.len(), 8);
        let mut out = Vec::new();
        while let Some(c) = q.pop() {
            out.extend_from_slice(&c);
        }
        assert_eq!(out, b"abLARGEc");
        assert!(q.is_empty());
        q.tail(1).extend_from_slice(b"x");
        q.push_chunk(Bytes::from_static(b"y"));
        q.push_large(b"h1", Bytes::from_static(b"LARGE1"));
        q.tail(1).extend_from_slice(b"z");
        q.push_large(b"h2", Bytes::from_static(b"LARGE2"));
        let mut out = Vec::new();
        q.drain_into(&mut out);
        assert_eq!(out, b"xyh1LARGE1zh2LARGE2");
        assert!(q.is_empty());
    }

    #[test]
    fn drain_hands_over_the_tail_only_into_an_empty_out() {
        let mut q = TxQueue::default();
        q.tail(3).extend_from_slice(b"abc");
        let tail_ptr = q.tail.as_ptr();
        let mut out = Vec::with_capacity(100);
        q.drain_into(&mut out);
        assert_eq!((out.as_slice(), out.as_ptr()), (&b"abc"[..], tail_ptr), "taken over, not copied");
        assert_eq!((q.len(), q.tail.capacity()), (0, 0), "the queue holds no memory");
        q.tail(1).extend_from_slice(b"d");
        q.drain_into(&mut out);
        assert_eq!(out, b"abcd", "appended after what `out` held");
        assert_eq!(q.tail.capacity(), 0);
    }

    #[test]
    fn pop_into_copies_a_small_tail_and_keeps_both_buffers() {
        let mut q = TxQueue::default();
        let mut small = BytesMut::new();
        q.tail(2).extend_from_slice(b"ab");
        q.push_chunk(Bytes::from_static(b"LARGE"));
        q.tail(2).extend_from_slice(b"cd");
        let tail_ptr = q.tail.as_ptr();
        assert_eq!(q.pop_into(&mut small).as_deref(), Some(&b"ab"[..]), "the sealed tail, handed over");
        assert_eq!(q.pop_into(&mut small).as_deref(), Some(&b"LARGE"[..]));
        let cd = q.pop_into(&mut small).unwrap();
        assert_eq!(&cd[..], b"cd");
        assert_eq!(q.pop_into(&mut small), None);
        assert!(q.is_empty());
        assert_eq!(q.tail.as_ptr(), tail_ptr, "the tail keeps its buffer");
        let block = cd.as_ptr();
        drop(cd);
        // Every reply lands in the same block of `small` once the previous one was dropped.
        for i in 0..3 * TAIL_RESERVE {
            q.tail(3).extend_from_slice(b"xyz");
            let out = q.pop_into(&mut small).unwrap();
            assert_eq!(&out[..], b"xyz");
            let offset = (out.as_ptr() as usize).wrapping_sub(block as usize);
            assert!(offset < TAIL_RESERVE, "reply {i} reused the block");
            assert_eq!(q.tail.as_ptr(), tail_ptr);
        }
        // A reply still held: the next one goes elsewhere, both intact.
        q.tail(1).extend_from_slice(b"1");
        let held = q.pop_into(&mut small).unwrap();
        q.tail(1).extend_from_slice(b"2");
        let next = q.pop_into(&mut small).unwrap();
        assert_eq!((&held[..], &next[..]), (&b"1"[..], &b"2"[..]));
        // A large tail is handed over, not copied.
        let big = vec![7u8; COPY_OUT_MAX + 1];
        q.tail(big.len()).extend_from_slice(&big);
        let big_ptr = q.tail.as_ptr();
        let out = q.pop_into(&mut small).unwrap();
        assert_eq!((out.as_ptr(), out.len()), (big_ptr, big.len()));
        assert_eq!(q.tail.capacity(), 0);
    }

    #[test]
    fn slices_lend_the_queue_in_order_and_advance_drops_what_was_written() {
        /// What `slices` lends into `room` slots, copied out.
        fn lent(q: &TxQueue, room: usize) -> Vec<Vec<u8>> {
            let mut iov = vec![IoSlice::new(&[]); room];
            let n = q.slices(&mut iov);
            iov[..n].iter().map(|s| s.to_vec()).collect()
        }
        let mut q = TxQueue::default();
        assert!(lent(&q, 4).is_empty());
        q.tail(2).extend_from_slice(b"ab");
        q.push_chunk(Bytes::from_static(b"LARGE"));
        q.tail(2).extend_from_slice(b"cd");
        assert_eq!(lent(&q, 4), [&b"ab"[..], b"LARGE", b"cd"]);
        assert_eq!(lent(&q, 1), [b"ab"], "as many as fit");
        // Partial writes: inside a chunk, across chunks, inside the tail.
        q.advance(1);
        assert_eq!((lent(&q, 4), q.len()), (vec![b"b".to_vec(), b"LARGE".to_vec(), b"cd".to_vec()], 8));
        q.advance(4);
        assert_eq!(lent(&q, 4), [&b"GE"[..], b"cd"]);
        q.advance(3);
        assert_eq!((lent(&q, 4), q.len()), (vec![b"d".to_vec()], 1));
        let tail_ptr = q.tail.as_ptr();
        q.advance(1);
        assert!(q.is_empty() && lent(&q, 4).is_empty());
        q.tail(1).extend_from_slice(b"e");
        assert_eq!(q.tail.as_ptr(), tail_ptr, "the tail keeps its buffer");
        q.advance(1);
        assert!(q.is_empty());
    }

    #[test]
    fn lend_and_reclaim_move_the_tail_buffer() {
        let mut q = TxQueue::default();
        assert_eq!(q.reclaim(), None, "nothing to reclaim");
        let lent = Vec::with_capacity(64);
        let ptr = lent.as_ptr();
        assert_eq!(q.lend(lent), None);
        q.tail(5).extend_from_slice(b"hello");
        assert_eq!(q.tail.as_ptr(), ptr, "encoded into the lent buffer");
        assert_eq!(q.reclaim(), None, "not while it holds bytes");
        assert_eq!(q.lend(Vec::with_capacity(8)).map(|v| v.capacity()), Some(8));
        assert_eq!(q.tail.as_ptr(), ptr, "a second loan is refused while one is used");
        let mut small = BytesMut::new();
        assert_eq!(q.pop_into(&mut small).as_deref(), Some(&b"hello"[..]));
        let back = q.reclaim().unwrap();
        assert_eq!((back.as_ptr(), back.len()), (ptr, 0));
        assert_eq!(q.tail.capacity(), 0, "the queue holds no memory");
    }
}
