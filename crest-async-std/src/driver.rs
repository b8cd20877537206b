//! The per-connection task: one loop moving bytes between an
//! `Async<TcpStream>` and a [`Session`], which makes every decision.
//!
//! - read: wait for readability (`poll_readable`), then a non-blocking
//!   `recv` into a buffer reserved only now (an idle connection holds no
//!   read buffer), again without asking the reactor while reads fill it;
//! - write: the session's chunks in one vectored write;
//! - sleep: until the session's deadline (an `async_io::Timer`, registered
//!   only while a deadline exists);
//! - wake: on commands from `Conn` handles (the session's inbox waker).
//!
//! It is a hand-written future rather than an `async fn` with `select!`, so
//! the task stores only this struct: no futures of pending branches, no I/O
//! slice arrays (those live on the stack during a poll). Everything here is
//! async-io and futures-io, so the task runs on async-std and on smol alike.

use std::future::Future;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Async;
use bytes::BytesMut;
use crest_driver::{wire, Session};
use futures_io::AsyncWrite;

/// Iterations of the loop before yielding to other tasks.
const BUDGET: u32 = 32;

/// A connection's task: a session and its socket.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) session: Session,
    stream: Async<TcpStream>,
    timer: Timer,
    /// The reactor reported the socket readable and no read found it drained
    /// since: read again without asking the reactor.
    readable: bool,
}

impl Driver {
    pub(crate) fn new(session: Session, stream: Async<TcpStream>) -> Self {
        Self { session, stream, timer: Timer::default(), readable: false }
    }

    /// Runs the loop until `done(session)` holds or the socket is finished.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>, done: fn(&Session) -> bool) -> Poll<()> {
        let s = &mut self.session;
        for _ in 0..BUDGET {
            let stream = &mut self.stream;
            if let Poll::Ready(Err(e)) =
                wire::poll_write_with(s, |iov| Pin::new(&mut *stream).poll_write_vectored(cx, iov))
            {
                s.io_error(e);
            }
            if s.wants_shutdown() {
                s.shutdown_polled(Poll::Ready(self.stream.get_ref().shutdown(Shutdown::Write)));
            }
            if s.is_finished() || done(s) {
                return Poll::Ready(());
            }
            let mut progress = false;
            if s.wants_read() {
                if !self.readable {
                    match self.stream.poll_readable(cx) {
                        Poll::Ready(Ok(())) => self.readable = true,
                        Poll::Ready(Err(e)) => {
                            s.io_error(e);
                            progress = true;
                        }
                        Poll::Pending => {}
                    }
                }
                if self.readable {
                    progress = true;
                    match recv(self.stream.get_ref(), s.read_buf()) {
                        Ok((0, _)) => s.receive_eof(),
                        Ok((_, full)) => {
                            // A short read most likely drained the socket.
                            self.readable = full;
                            s.received(Instant::now());
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.readable = false;
                            s.read_blocked();
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => s.io_error(e),
                    }
                }
            }
            let fired = self.timer.poll(cx, s.poll_timeout());
            progress |= s.handle_wakeups(fired, Instant::now);
            if !progress && s.arm(cx.waker()) {
                return Poll::Pending;
            }
        }
        // Busy connection: let the others run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// One connection's task, for [`App::spawn_with`](crate::App::spawn_with) and
/// [`Connect::connect_with`](crate::Connect::connect_with): a `Future` that
/// moves the connection's bytes until it is finished. Spawn it on any
/// executor (async-std, smol, `async_executor::Executor`, ...): it only
/// needs async-io's reactor, which runs wherever it is polled.
#[derive(Debug)]
#[must_use = "a connection's task does nothing unless spawned or awaited"]
pub struct Task(pub(crate) Driver);

impl Future for Task {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.drive(cx, |_| false)
    }
}

/// One non-blocking `recv` into `buf`'s spare capacity (reserved by the
/// session only now that the socket is readable); returns the count and
/// whether it filled the spare capacity (more is likely waiting).
///
/// The kernel writes into the uninitialised capacity directly, as tokio's
/// `try_read_buf` does: the safe alternative, zeroing the capacity first so
/// that it can be lent as `&mut [u8]`, costs a 4-64 KiB memset per read
/// (measured: about 40% more server CPU per 64 KiB message).
#[allow(unsafe_code)] // the one `unsafe` of this crate
fn recv(socket: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, bool)> {
    let spare = buf.spare_capacity_mut();
    let len = spare.len();
    // `socket2` takes `&mut [MaybeUninit<u8>]` and never reads it.
    let n = socket2::SockRef::from(socket).recv(spare)?.min(len);
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity
    // (n <= its length), so they may become part of the buffer.
    unsafe { buf.set_len(buf.len() + n) };
    Ok((n, n == len))
}

/// A deadline timer that is registered with the reactor only while armed.
#[derive(Debug, Default)]
pub(crate) struct Timer(Option<(Instant, async_io::Timer)>);

impl Timer {
    /// Arms (or disarms) the timer for `deadline`; `true` if it has passed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, deadline: Option<Instant>) -> bool {
        let Some(deadline) = deadline else {
            self.0 = None;
            return false;
        };
        let (at, timer) = self.0.get_or_insert_with(|| (deadline, async_io::Timer::at(deadline)));
        if *at != deadline {
            timer.set_at(deadline);
            *at = deadline;
        }
        if Pin::new(timer).poll(cx).is_pending() {
            return false;
        }
        // A fired `Timer::at` never fires again: drop it, so that a deadline
        // still pending next time gets a new one (which fires at once).
        self.0 = None;
        true
    }
}
