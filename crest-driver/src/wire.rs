//! [`Wire`]: the I/O-facing half of a connection, shared by the callback
//! [`Session`](crate::Session) and the adapters' `Stream + Sink` type: the
//! read buffer, vectored writes from the connection's queue, read pausing, and the
//! lingering close.
//!
//! - **Reading.** [`read_buf`](Wire::read_buf) reserves a buffer only when
//!   the socket is readable, so an idle connection holds none; what was read
//!   is split off and handed to crest-proto without copying, and the
//!   buffer is given back as soon as a read would block (to a small
//!   per-thread pool, so a busy thread does not allocate one per message).
//!   Reservations start
//!   at [`READ_MIN`], double while reads fill them (up to [`READ_MAX`]) and
//!   halve when reads use little of them. A frame larger than what is left
//!   of the block is not assembled from blocks (that would copy it): once
//!   its header is known, its rest is read straight into the connection's
//!   own buffer (`Connection::input_buffer`), sized to end with the frame,
//!   and handed out from there.
//! - **Writing.** Straight from the connection's queue, which
//!   `Connection::transmit_slices` lends as up to [`MAX_IOV`] slices (small
//!   frames coalesced, large payloads in place) for one vectored write, and
//!   `Connection::advance_transmit` drops once written: no copy, no `Bytes`,
//!   no queue of our own. The connection's coalescing buffer travels with
//!   the pooled buffer set (lent while the connection is active, reclaimed
//!   when it goes quiet), so a reply allocates nothing.
//! - **Back-pressure.** While more than [`READ_PAUSE`] bytes wait to be
//!   written, [`wants_read`](Wire::wants_read) is false: a peer that sends
//!   without reading our replies is slowed down by TCP instead of growing
//!   our memory.
//! - **Lingering close.** Once the WebSocket is closed and everything was
//!   written, the write side is shut down (FIN) and input is read and
//!   discarded until the peer's EOF or [`LINGER`]: closing a socket with
//!   unread input would reset it and could destroy our last frames in flight.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::task::{ready, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crest_proto::Connection;

/// The first read of a burst reserves this much: enough for any opening
/// handshake and a batch of small messages, small enough that a burst of
/// handshakes leaves little memory behind.
pub const READ_MIN: usize = 4 * 1024;
/// Reads that fill their buffer double the next reservation, up to this.
pub const READ_MAX: usize = 256 * 1024;
/// Reading pauses while more than this many bytes wait to be written.
pub const READ_PAUSE: usize = 256 * 1024;
/// Most time spent draining input after our FIN before dropping the socket.
pub const LINGER: Duration = Duration::from_secs(2);
/// A connection whose reads grew past [`READ_MIN`] keeps its read buffer
/// this long after its last read: bulk traffic then reuses one block instead
/// of allocating (and the allocator trimming) one per burst, and a
/// connection that went quiet still gives it back.
pub const READ_KEEP: Duration = Duration::from_secs(1);
/// After a frame larger than [`READ_MAX`] was read into the connection's own
/// buffer, the next read that starts a frame takes at most this much: if that
/// frame is large too, only this much of it is copied when it moves into a
/// buffer of its own.
pub const READ_PEEK: usize = READ_MIN;
/// Most buffer sets a thread keeps for reuse (see [`Buffers::take`]).
const POOL: usize = 8;
/// Largest read buffer a pooled buffer set keeps.
const POOL_READ: usize = 2 * READ_MIN;
/// Largest coalescing buffer a pooled buffer set keeps.
const POOL_WRITE: usize = 16 * 1024;
/// Chunks of the first vectored-write attempt (see [`poll_write_with`]).
const FEW_IOV: usize = 4;
/// Most chunks one vectored write takes (Linux's `UIO_MAXIOV` is 1024; a
/// few dozen already fill any socket buffer).
pub const MAX_IOV: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    /// Moving bytes both ways.
    Active,
    /// Closed and flushed: shut down writing (`shut` once done), drain reads
    /// until EOF or the deadline (kept in `Wire::clock`).
    Linger { shut: bool },
    /// Drop the socket.
    Done,
}

/// The buffers of a connection that is moving bytes. Boxed and dropped
/// when the connection goes quiet: an idle connection's task holds only a
/// pointer (the task's size decides its allocation class, ~640 bytes).
#[derive(Debug, Default)]
struct Buffers {
    rbuf: BytesMut,
    /// The rest of `rbuf`'s block while a read is limited to [`READ_PEEK`]
    /// bytes (split off, and joined back after the read, without copying).
    rest: Option<BytesMut>,
    /// The connection's coalescing buffer, while the buffer set is pooled.
    tail: Vec<u8>,
    /// When to give back a read buffer kept between bursts.
    release_at: Option<Instant>,
    /// When the last read brought bytes (meaningful while `release_at` is
    /// set: the keep runs from here).
    read_at: Option<Instant>,
}

thread_local! {
    /// Buffer sets given back by connections that went quiet, for the next
    /// connection on this thread that moves bytes. Boxed as a connection
    /// holds them: moving one in or out allocates nothing.
    #[allow(clippy::vec_box)]
    static POOLED: RefCell<Vec<Box<Buffers>>> = const { RefCell::new(Vec::new()) };
}

impl Buffers {
    /// A buffer set from this thread's pool, or a new one. A server thread
    /// handles its connections one at a time, so a few pooled sets serve a
    /// message on every connection without allocating: a released set keeps
    /// its small read buffer (the rest of the block its last read landed in)
    /// and the coalescing buffer it took back.
    fn take() -> Box<Self> {
        POOLED.try_with(|p| p.borrow_mut().pop()).ok().flatten().unwrap_or_default()
    }

    /// [`take`](Self::take), lending the set's coalescing buffer to `conn`.
    fn take_for(conn: &mut Connection) -> Box<Self> {
        let mut b = Self::take();
        if b.tail.capacity() > 0 {
            // Refused when a command already gave `conn` its own buffer
            // (the set's is then kept for the next connection).
            if let Some(tail) = conn.lend_transmit_buffer(std::mem::take(&mut b.tail)) {
                b.tail = tail;
            }
        }
        b
    }

    /// Puts `self` (drained) back into this thread's pool, unless it is
    /// full; a large read buffer is dropped rather than kept.
    fn give_back(mut self: Box<Self>) {
        if self.rbuf.capacity() > POOL_READ {
            self.rbuf = BytesMut::new();
        }
        // The rest of a block split off for a limited read (when a stream
        // was not polled again after `Pending`) is not kept either.
        if self.rest.is_some() {
            self.rest = None;
        }
        if self.tail.capacity() > POOL_WRITE {
            self.tail = Vec::new();
        }
        let _ = POOLED.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL {
                p.push(self);
            }
        });
    }
}

impl Buffers {
    /// Joins the rest of the read block split off for a limited read back to
    /// the read buffer (right after it: no copy).
    fn rejoin(&mut self) {
        if let Some(rest) = self.rest.take() {
            self.rbuf.unsplit(rest);
        }
    }
}

/// Spare capacity: how much a read into `buf` may bring.
fn spare(buf: &BytesMut) -> usize {
    buf.capacity() - buf.len()
}

/// Where [`Wire::read_buf`] lent a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadInto {
    /// The read block, `Buffers::rbuf`.
    Block,
    /// The read block limited to [`READ_PEEK`] bytes (the rest split off
    /// into `Buffers::rest`).
    Peek,
    /// The connection's own buffer, which held this many bytes before (a
    /// `u32` keeps `Session` within its size; a partial frame of 4 GiB or
    /// more, possible only with such limits configured, is read into blocks).
    Conn(u32),
}

/// A `crest_proto::Connection` plus the buffers between it and a socket.
#[derive(Debug)]
pub struct Wire {
    conn: Connection,
    bufs: Option<Box<Buffers>>,
    io: Io,
    eof: bool,
    linger: bool,
    /// Bytes to reserve for the next read (kept while the buffers are not).
    read_size: u32,
    /// The last read continued a frame larger than [`READ_MAX`] in the
    /// connection's own buffer (`Connection::input_buffer`): the next read
    /// that starts a frame is limited to [`READ_PEEK`].
    after_large: bool,
    /// Where the buffer [`read_buf`](Self::read_buf) lent is.
    read: ReadInto,
    /// The latest time an input carried; the linger deadline once lingering.
    clock: Instant,
}

impl Wire {
    /// Wraps a connection.
    pub fn new(conn: Connection, now: Instant) -> Self {
        Self {
            conn,
            bufs: None,
            io: Io::Active,
            eof: false,
            linger: true,
            read_size: READ_MIN as u32,
            after_large: false,
            read: ReadInto::Block,
            clock: now,
        }
    }

    /// The protocol state machine.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The protocol state machine, for commands.
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The latest time an input carried.
    pub fn now(&self) -> Instant {
        self.clock
    }

    fn bufs(&mut self) -> &mut Buffers {
        let conn = &mut self.conn;
        self.bufs.get_or_insert_with(|| Buffers::take_for(conn))
    }

    /// Gives the buffers back (to the thread's pool) once nothing is in
    /// them or queued in the connection, they are not kept for bulk reads
    /// ([`READ_KEEP`]), and the
    /// connection holds no partial frame (the read buffer's spare capacity
    /// is where the rest of that frame lands, next to its start, with no
    /// copy).
    fn release(&mut self) {
        let idle = |b: &Buffers| b.rbuf.is_empty() && b.release_at.is_none();
        let bulk = self.read_size as usize > READ_MIN;
        // Output the connection queued (a reply a callback just sent) is
        // written next with these buffers: keep them until then.
        let quiet = self.conn.buffered_len() == 0 && self.conn.pending_transmit() == 0;
        if !bulk && quiet && self.bufs.as_deref().is_none_or(idle) {
            let tail = self.conn.reclaim_transmit_buffer();
            if let Some(mut b) = self.bufs.take() {
                if let Some(tail) = tail {
                    b.tail = tail;
                }
                b.give_back();
            } else if let Some(tail) = tail {
                // Output queued while no buffers were out (a broadcast to a
                // quiet connection): its coalescing buffer joins the pool.
                let mut b = Buffers::take();
                if b.tail.capacity() == 0 {
                    b.tail = tail;
                }
                b.give_back();
            }
        }
    }

    // ----- reading -----

    /// Whether to read from the socket now.
    pub fn wants_read(&self) -> bool {
        match self.io {
            Io::Active => !self.eof && self.unsent() <= READ_PAUSE,
            Io::Linger { .. } => !self.eof,
            Io::Done => false,
        }
    }

    /// The buffer to read into, with spare capacity. Call when the socket is
    /// readable; then [`received`](Self::received) (bytes appended) or
    /// [`read_blocked`](Self::read_blocked) (nothing to read).
    ///
    /// A frame is handed out as one slice of one buffer, so its pieces must
    /// land next to each other:
    ///
    /// - When the connection holds the start of a frame whose rest does not
    ///   fit in what is left of the read block, the rest is read straight
    ///   into the connection's own buffer (`Connection::input_buffer`), which
    ///   then has room for exactly the whole frame (the held start is copied
    ///   once, if at all) and no more: the read after the frame's last byte
    ///   starts the next frame. After a frame larger than [`READ_MAX`] that
    ///   read takes at most [`READ_PEEK`] bytes, so that a next large frame
    ///   copies only that.
    /// - A read that continues a frame that fits uses what is left right
    ///   after its start in the block.
    /// - During bulk reads a read that may start a frame (none is held) gets
    ///   at least a quarter of the reservation: the rest of the block if that
    ///   is still as large, else the block again from its start (once nothing
    ///   else refers to it) or a new one.
    #[inline]
    pub fn read_buf(&mut self) -> &mut BytesMut {
        if self.read != ReadInto::Block {
            // The last read was neither received nor blocked (`Pending`).
            self.read_done();
        }
        let remaining = self.conn.frame_remaining();
        if remaining > 0 {
            return self.frame_buf(remaining);
        }
        let size = self.read_size as usize;
        let frame_start = size > READ_MIN && self.conn.buffered_len() == 0;
        let want = if frame_start { size / 4 } else { READ_MIN / 4 };
        if self.after_large {
            return self.peek_buf(want);
        }
        let b = self.bufs();
        if frame_start && b.rbuf.is_empty() && spare(&b.rbuf) < size {
            // Bulk reads start at the block's beginning again whenever the
            // block is free (nothing read into it is still referenced): a
            // connection then cycles through one hot block-sized region
            // instead of walking the whole block (10 connections × 256 KiB
            // do not stay in cache; 64 KiB messages at offset 0 do).
            let _ = b.rbuf.try_reclaim(size);
        }
        if spare(&b.rbuf) < want {
            b.rbuf.reserve(size);
        }
        &mut b.rbuf
    }

    /// [`read_buf`](Self::read_buf) after a frame was read into the
    /// connection's buffer: limited to [`READ_PEEK`] bytes if it starts a
    /// frame.
    #[cold]
    #[inline(never)]
    fn peek_buf(&mut self, want: usize) -> &mut BytesMut {
        let size = self.read_size as usize;
        let frame_start = self.conn.buffered_len() == 0;
        let b = self.bufs();
        if spare(&b.rbuf) < want {
            b.rbuf.reserve(size);
        }
        if frame_start && spare(&b.rbuf) > READ_PEEK {
            let at = b.rbuf.len() + READ_PEEK;
            b.rest = Some(b.rbuf.split_off(at));
            self.read = ReadInto::Peek;
        }
        &mut self.bufs().rbuf
    }

    /// Ends a read into anything but the whole block.
    #[cold]
    #[inline(never)]
    fn read_done(&mut self) {
        self.read = ReadInto::Block;
        if let Some(b) = &mut self.bufs {
            b.rejoin();
        }
    }

    /// [`read_buf`](Self::read_buf) for the rest of a frame whose header is
    /// known: the block if it fits there, right after the frame's start, else
    /// the connection's own buffer.
    #[inline(never)]
    fn frame_buf(&mut self, remaining: usize) -> &mut BytesMut {
        let own = spare(self.conn.input_buffer(0));
        let block = self.bufs.as_ref().map_or(0, |b| spare(&b.rbuf));
        let held_fits = u32::try_from(self.conn.input_buffer(0).len()).is_ok();
        if (own > 0 || remaining > block) && held_fits {
            // A frame no block holds: the next one may be as large, so the
            // read that starts it is limited. (Smaller frames that did not
            // fit in what was left of the block do not limit it: they fit in
            // the next block.)
            self.after_large = self.conn.buffered_len().saturating_add(remaining) > READ_MAX;
            let buf = self.conn.input_buffer(remaining);
            // Reserving may compact the held bytes, never add to them.
            self.read = ReadInto::Conn(u32::try_from(buf.len()).unwrap_or(u32::MAX));
            return buf;
        }
        &mut self.bufs().rbuf
    }

    /// Feeds what was appended to [`read_buf`](Self::read_buf) to the
    /// connection (without copying). While lingering it is discarded.
    ///
    /// A read that did not fill the buffer drained the socket (so both
    /// drivers stop reading until the next readiness): that counts as
    /// [`read_blocked`](Self::read_blocked) too, so an idle connection gives
    /// its read buffer back without a read that finds nothing.
    pub fn received(&mut self, now: Instant) {
        if self.feed(now) {
            self.read_blocked();
        }
    }

    /// [`received`](Self::received) without its
    /// [`read_blocked`](Self::read_blocked): returns whether the read drained
    /// the socket, and the caller calls `read_blocked` itself once it has
    /// handled the events, so that a reply they queued is written with the
    /// buffers at hand instead of the set going back to the pool and out
    /// again for the write.
    pub fn feed(&mut self, now: Instant) -> bool {
        if self.read != ReadInto::Block {
            return self.feed_elsewhere(now);
        }
        let size = self.read_size as usize;
        // Only a read that starts a frame says how large reads now are: the
        // last piece of a large frame is often small.
        let continuing = self.conn.buffered_len() > 0;
        let b = self.bufs();
        let small = !continuing && b.rbuf.len() < size / 8;
        let filled = b.rbuf.capacity() == b.rbuf.len();
        let data = b.rbuf.split();
        b.read_at = Some(now);
        if filled {
            // The read filled the buffer: more is coming.
            self.read_size = (size * 2).min(READ_MAX) as u32;
        } else if small {
            self.read_size = (size / 2).max(READ_MIN) as u32;
        }
        self.hand_over(now, data, filled)
    }

    /// [`feed`](Self::feed) after a read limited to [`READ_PEEK`] or
    /// into the connection's own buffer. Neither says how large reads now
    /// are: the first was limited, the second sized to end with a frame.
    #[inline(never)]
    fn feed_elsewhere(&mut self, now: Instant) -> bool {
        match std::mem::replace(&mut self.read, ReadInto::Block) {
            ReadInto::Conn(before) => {
                let buf = self.conn.input_buffer(0);
                let filled = buf.capacity() == buf.len();
                let n = buf.len().saturating_sub(before as usize);
                if self.io == Io::Active {
                    self.clock = now;
                }
                if let Some(b) = &mut self.bufs {
                    b.read_at = Some(now);
                }
                // A connection that lingers takes no input: it drops them.
                self.conn.receive_appended(now, n);
                !filled
            }
            ReadInto::Peek | ReadInto::Block => {
                // Cleared by a limited read that brought bytes, not by one
                // that found none (as between a client's messages).
                self.after_large = false;
                let b = self.bufs();
                let filled = b.rbuf.capacity() == b.rbuf.len();
                let data = b.rbuf.split();
                b.rejoin();
                b.read_at = Some(now);
                self.hand_over(now, data, filled)
            }
        }
    }

    /// Gives what a read into the block brought to the connection (unless
    /// lingering); returns whether the read drained the socket (did not fill
    /// its buffer).
    #[inline(always)]
    fn hand_over(&mut self, now: Instant, data: BytesMut, filled: bool) -> bool {
        if self.io == Io::Active {
            self.clock = now;
            self.conn.receive_bytes(now, data);
        }
        !filled
    }

    /// The socket had nothing to read. Give the read buffer back, so an
    /// idle connection holds none; but keep it while the connection holds
    /// part of a frame (its rest lands right after it in the same block, so
    /// crest-proto need not copy it), and for [`READ_KEEP`] after bulk reads.
    ///
    /// The bulk keep is one deadline per [`READ_KEEP`], not one per burst:
    /// it is set when the first burst ends and left alone by the bursts after
    /// it (when it comes, [`handle_timeout`](Self::handle_timeout) moves it
    /// to [`READ_KEEP`] after the last read if one came since). A
    /// deadline that appeared and vanished with every burst made both
    /// adapters' timers register anew per burst (async-io's `Timer` also
    /// wakes its reactor with a write to its notifier each time).
    pub fn read_blocked(&mut self) {
        if self.read != ReadInto::Block {
            self.read_done();
        }
        let bulk = self.read_size as usize > READ_MIN;
        let keep_until = self.clock + READ_KEEP;
        if let Some(b) = &mut self.bufs {
            if !bulk {
                b.release_at = None;
            } else if b.release_at.is_none() && b.rbuf.is_empty() {
                b.release_at = Some(keep_until);
            }
        }
        self.release();
    }

    /// The peer closed its side. Returns whether the connection was still
    /// active (the caller then reports the events that follow).
    pub fn receive_eof(&mut self) -> bool {
        self.eof = true;
        match self.io {
            Io::Active => {
                self.conn.receive_eof();
                true
            }
            Io::Linger { .. } => {
                self.io = Io::Done;
                false
            }
            Io::Done => false,
        }
    }

    // ----- writing -----

    /// Bytes accepted by the connection and not yet written.
    pub fn unsent(&self) -> usize {
        self.conn.pending_transmit()
    }

    // ----- closing -----

    /// Whether to shut down the socket's write side now (send FIN).
    pub fn wants_shutdown(&self) -> bool {
        self.io == Io::Linger { shut: false }
    }

    /// The write side was shut down.
    pub fn shutdown_sent(&mut self) {
        if let Io::Linger { shut } = &mut self.io {
            *shut = true;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called.
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.io {
            Io::Active => {
                let release = self.bufs.as_ref().and_then(|b| b.release_at);
                match (self.conn.poll_timeout(), release) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Io::Linger { .. } => Some(self.clock),
            Io::Done => None,
        }
    }

    /// The deadline came. Returns whether the connection was still active
    /// (the caller then reports the events that follow).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.io {
            Io::Active => {
                let partial = self.conn.buffered_len() > 0;
                self.clock = now;
                if let Some(b) = &mut self.bufs {
                    if b.release_at.is_some_and(|at| at <= now) {
                        // The bulk keep runs from the last read: if one came
                        // since it was set (or a partial frame waits for its
                        // rest in the block), it moves on instead of expiring.
                        let keep_until = b.read_at.map_or(now, |at| at + READ_KEEP);
                        if partial || keep_until > now {
                            b.release_at = Some(if partial { now + READ_KEEP } else { keep_until });
                        } else {
                            b.release_at = None;
                            b.rbuf = BytesMut::new();
                            self.read_size = READ_MIN as u32;
                        }
                    }
                }
                self.release();
                self.conn.handle_timeout(now);
                true
            }
            Io::Linger { .. } if now >= self.clock => {
                self.io = Io::Done;
                false
            }
            _ => false,
        }
    }

    /// Stops everything: the socket is to be dropped, unsent output is lost.
    pub fn abort(&mut self) {
        self.io = Io::Done;
        self.bufs = None;
    }

    /// Skips the lingering close: the peer stopped responding (a timer
    /// expired), so waiting for its EOF is pointless.
    pub fn skip_linger(&mut self) {
        self.linger = false;
    }

    /// Whether the socket should now be dropped.
    pub fn is_finished(&self) -> bool {
        self.io == Io::Done
    }

    /// Moves to lingering (or done) once the connection is finished and
    /// every byte was written. Call after every input and command.
    pub fn update(&mut self) {
        let flushed = self.conn.pending_transmit() == 0;
        if self.io == Io::Active && flushed && self.conn.is_finished() {
            if self.eof || !self.linger {
                self.io = Io::Done;
            } else {
                self.io = Io::Linger { shut: false };
                self.clock += LINGER;
            }
        }
    }
}

/// The output side of a connection, as a vectored writer sees it. Written by
/// every adapter's flush loop:
///
/// ```text
/// while t.wants_write() {
///     let n = t.io_slices(&mut iov);
///     match write_vectored(&iov[..n]) { Ok(k) => t.transmitted(k), Err(WouldBlock) => wait, .. }
/// }
/// ```
pub trait Transmit {
    /// Whether there is output to write (takes it from the connection).
    fn wants_write(&mut self) -> bool;

    /// Lends the output for a vectored write: fills `dst` with up to
    /// `dst.len()` chunks, returns how many.
    fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize;

    /// `n` bytes of the output were written.
    fn transmitted(&mut self, n: usize);
}

/// The flush loop of every adapter: writes `t`'s output with `write` (one
/// vectored write of up to [`MAX_IOV`] chunks per call) until it is all
/// written (`Ready(Ok)`), `write` is `Pending` (the socket is full; the
/// adapter registered its waker) or fails. `Ok(0)` is `WriteZero`;
/// `Interrupted` is retried.
///
/// ```
/// use std::io::IoSlice;
/// use std::task::Poll;
/// use crest_driver::wire::{poll_write_with, Transmit};
///
/// struct Out(Vec<u8>);
/// impl Transmit for Out {
///     fn wants_write(&mut self) -> bool { !self.0.is_empty() }
///     fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize { dst[0] = IoSlice::new(&self.0); 1 }
///     fn transmitted(&mut self, n: usize) { self.0.drain(..n); }
/// }
/// let mut out = Out(b"hello".to_vec());
/// let mut sent = Vec::new();
/// // A socket that takes at most 2 bytes per write.
/// let r = poll_write_with(&mut out, |iov| {
///     let k = iov[0].len().min(2);
///     sent.extend_from_slice(&iov[0][..k]);
///     Poll::Ready(Ok(k))
/// });
/// assert!(matches!(r, Poll::Ready(Ok(()))));
/// assert_eq!(sent, b"hello");
/// ```
pub fn poll_write_with(
    t: &mut impl Transmit,
    mut write: impl FnMut(&[IoSlice<'_>]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<()>> {
    while t.wants_write() {
        // Usually there are a few chunks: lend them without initialising
        // (1 KiB of) a full-size array.
        let mut few = [IoSlice::new(&[]); FEW_IOV];
        let n = t.io_slices(&mut few);
        let written = if n < FEW_IOV {
            ready!(write(&few[..n]))
        } else {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = t.io_slices(&mut iov);
            ready!(write(&iov[..n]))
        };
        match written {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(k) => t.transmitted(k),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
}

impl Transmit for Wire {
    fn wants_write(&mut self) -> bool {
        self.io != Io::Done && self.conn.pending_transmit() > 0
    }

    fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.conn.transmit_slices(dst)
    }

    fn transmitted(&mut self, n: usize) {
        self.conn.advance_transmit(n);
        // A read follows every write of both drivers' rounds while reading
        // (it gives the buffers back if it finds nothing): not releasing here
        // saves taking them out of the pool again for that read.
        if !self.wants_read() {
            self.release();
        }
        self.update();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crest_proto::{Config, Event, Message, Role};

    /// A server `Wire` read from an in-memory socket that returns at most
    /// `max_read` bytes per read (and fills the lent buffer's spare capacity
    /// like `recv` does), recording every buffer lent for a read.
    struct Reader {
        wire: Wire,
        now: Instant,
        /// (address, capacity) of every buffer lent for a read.
        lent: Vec<(usize, usize)>,
        /// Bytes each read brought, in order.
        reads: Vec<usize>,
    }

    impl Reader {
        fn new() -> Self {
            let now = Instant::now();
            let wire = Wire::new(Connection::open(Role::Server, Config::default(), now), now);
            let mut r = Self { wire, now, lent: Vec::new(), reads: Vec::new() };
            assert_eq!(r.wire.conn_mut().poll_event(), Some(Event::Open));
            r
        }

        /// Reads all of `input` and returns the events.
        fn read_all(&mut self, mut input: &[u8], max_read: usize) -> Vec<Event> {
            let mut events = Vec::new();
            while !input.is_empty() {
                let buf = self.wire.read_buf();
                self.lent.push((buf.as_ptr() as usize, buf.capacity()));
                let n = spare(buf).min(max_read).min(input.len());
                assert!(n > 0, "a read buffer with room");
                buf.extend_from_slice(&input[..n]);
                input = &input[n..];
                self.reads.push(n);
                self.wire.received(self.now);
                events.extend(std::iter::from_fn(|| self.wire.conn_mut().poll_event()));
            }
            self.wire.read_blocked();
            events
        }

        /// Whether `payload` lies in one buffer that was lent for a read:
        /// it was not copied after it arrived.
        fn read_in_place(&self, payload: &[u8]) -> bool {
            let (p, n) = (payload.as_ptr() as usize, payload.len());
            self.lent.iter().any(|&(at, cap)| at <= p && p + n <= at + cap)
        }
    }

    /// Client frames (masked) carrying `messages`.
    fn client_wire(messages: &[Vec<u8>]) -> Vec<u8> {
        let now = Instant::now();
        let mut client = Connection::open(Role::Client, Config::default(), now);
        let _ = client.poll_event();
        let mut out = Vec::new();
        for m in messages {
            client.send(Message::binary(m.clone())).unwrap();
            client.poll_transmit(&mut out);
        }
        out
    }

    fn payloads(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes.iter().enumerate().map(|(i, &n)| (0..n).map(|j| (i * 7 + j % 251) as u8).collect()).collect()
    }

    #[test]
    fn large_frames_are_read_into_one_buffer_each_and_never_copied() {
        let sizes = [1 << 20, 300_000, 5, 1 << 20, 70_000, 1 << 20];
        let messages = payloads(&sizes);
        let wire = client_wire(&messages);
        for max_read in [usize::MAX, 200_000, 65_536, 10_007] {
            let mut r = Reader::new();
            let events = r.read_all(&wire, max_read);
            assert_eq!(events.len(), messages.len(), "max_read {max_read}");
            for (event, m) in events.iter().zip(&messages) {
                let Event::Binary(b) = event else { panic!("{event:?}") };
                assert_eq!(&b[..], &m[..], "max_read {max_read}");
                if m.len() > READ_MAX {
                    assert!(r.read_in_place(b), "max_read {max_read}: a {} byte payload was copied", m.len());
                }
            }
            // After a large frame read in place, the next read starts the
            // next frame and takes at most READ_PEEK bytes.
            assert!(r.reads.iter().filter(|&&n| n <= READ_PEEK).count() >= 3, "{:?}", r.reads);
            drop(events);
            // Nothing held: the buffers go back once the bulk keep expires.
            assert_eq!(r.wire.conn().buffered_len(), 0);
            let later = r.now + READ_KEEP;
            r.wire.handle_timeout(later);
            assert!(r.wire.bufs.is_none(), "max_read {max_read}: an idle connection holds no buffer");
        }
    }

    #[test]
    fn bulk_bursts_share_one_keep_deadline_that_runs_from_the_last_input() {
        // 64 KiB messages one burst at a time, as a closed-loop client sends
        // them: the reads grow past READ_MIN, so the read buffer is kept.
        let messages = payloads(&[65_536; 8]);
        let wire = client_wire(&messages);
        let per = wire.len() / messages.len();
        let mut r = Reader::new();
        let mut deadlines = Vec::new();
        for (i, burst) in wire.chunks(per).enumerate() {
            r.now += Duration::from_millis(100);
            assert_eq!(r.read_all(burst, usize::MAX).len(), 1, "burst {i}");
            deadlines.extend(r.wire.poll_timeout());
        }
        // One deadline for every burst (set when the first bulk burst ended),
        // not a new one per burst: the timer registers once per period.
        let first = deadlines[0];
        assert!(deadlines.iter().all(|&d| d == first), "{deadlines:?}");
        assert!(r.wire.bufs.is_some());
        // It comes while input has arrived since: it moves to READ_KEEP
        // after the last input, and the buffer stays.
        let last_input = r.now;
        r.wire.handle_timeout(first);
        assert_eq!(r.wire.poll_timeout(), Some(last_input + READ_KEEP));
        assert!(r.wire.bufs.is_some(), "kept while reads continue");
        // Then a quiet READ_KEEP: the buffers go back, no deadline is left.
        r.wire.handle_timeout(last_input + READ_KEEP);
        assert!(r.wire.bufs.is_none(), "an idle connection holds no buffer");
        assert_eq!(r.wire.poll_timeout(), None);
    }

    #[test]
    fn a_read_that_finds_nothing_keeps_the_next_read_limited() {
        // A closed-loop client: one large message, its echo, a wakeup that
        // finds nothing, then the next large message.
        let messages = payloads(&[1 << 20, 1 << 20]);
        let wire = client_wire(&messages);
        let one = wire.len() / 2;
        let mut r = Reader::new();
        assert_eq!(r.read_all(&wire[..one], usize::MAX).len(), 1);
        let _ = r.wire.read_buf();
        r.wire.read_blocked();
        let first = r.reads.len();
        let events = r.read_all(&wire[one..], usize::MAX);
        assert_eq!(r.reads[first], READ_PEEK, "{:?}", r.reads);
        let [Event::Binary(b)] = &events[..] else { panic!("{events:?}") };
        assert_eq!(&b[..], &messages[1][..]);
        assert!(r.read_in_place(b));
    }

    #[test]
    fn a_partial_large_frame_is_held_in_a_buffer_of_its_size() {
        let messages = payloads(&[1 << 20]);
        let wire = client_wire(&messages);
        let mut r = Reader::new();
        // A first read of 5000 bytes, then the socket is drained.
        assert_eq!(r.read_all(&wire[..5000], usize::MAX), vec![]);
        assert_eq!(r.wire.conn().frame_remaining(), wire.len() - 5000);
        // The next read goes to a buffer with room for exactly the rest.
        let buf = r.wire.read_buf();
        assert_eq!(spare(buf), wire.len() - 5000);
        r.wire.read_blocked();
        let events = r.read_all(&wire[5000..], 100_000);
        let [Event::Binary(b)] = &events[..] else { panic!("{events:?}") };
        assert_eq!(&b[..], &messages[0][..]);
        assert!(r.read_in_place(b));
    }
}
