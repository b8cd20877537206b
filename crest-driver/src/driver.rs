//! [`Driver`]: the loop of a callback connection's task, for every adapter:
//! one [`Session`] (which makes every decision) and one [`Transport`] (the
//! runtime's socket and timer). Each round:
//!
//! - write: the session's chunks in one vectored write (until the socket is
//!   full or the output is gone), then the write-side shutdown once due;
//! - read: into a buffer the session lends only while the connection reads
//!   (an idle connection holds none);
//! - timer: until the session's deadline (a [`Deadline`] on crest-driver's
//!   timer thread, whatever the runtime);
//! - commands from `Conn` handles (the session's inbox waker).
//!
//! It sleeps when a round made no progress, after registering every waker
//! (socket, timer, inbox), and yields after [`BUDGET`] busy rounds.
//!
//! The adapters wrap it in their `Task` future; it is a hand-written loop
//! rather than an `async fn` with `select!`, so the task stores only this
//! struct: no futures of pending branches, no I/O slice arrays (those live on
//! the stack during a poll).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::stream::Transport;
use crate::timer::Deadline;
use crate::{wire, Session};

/// Rounds of the loop before a busy connection yields to other tasks.
const BUDGET: u32 = 32;

/// A connection's task state: a session and its transport.
#[derive(Debug)]
pub struct Driver<T> {
    /// The connection's session.
    pub session: Session,
    io: T,
    timer: Deadline,
}

impl<T: Transport> Driver<T> {
    /// A driver for `session` over `io` (wrapped in the transport).
    pub fn new(session: Session, io: T::Io) -> Self {
        Self { session, io: T::new(io), timer: Deadline::default() }
    }

    /// Runs the loop until `done(session)` holds (`Ready`) or the socket is
    /// finished (`Ready`: drop the driver), or nothing can progress
    /// (`Pending`, every waker registered).
    pub fn drive(&mut self, cx: &mut Context<'_>, done: fn(&Session) -> bool) -> Poll<()> {
        let (s, io, timer) = (&mut self.session, &mut self.io, &mut self.timer);
        for _ in 0..BUDGET {
            if let Poll::Ready(Err(e)) = wire::poll_write_with(s, |iov| io.poll_write_chunks(cx, iov)) {
                s.io_error(e);
            }
            if s.wants_shutdown() {
                s.shutdown_polled(io.poll_shutdown(cx));
            }
            if s.is_finished() || done(s) {
                return Poll::Ready(());
            }
            let mut progress = false;
            if s.wants_read() {
                progress = true;
                match io.poll_read_buf(cx, s.read_buf()) {
                    Poll::Ready(Ok(0)) => s.receive_eof(),
                    Poll::Ready(Ok(_)) => s.received(Instant::now()),
                    Poll::Ready(Err(e)) => s.io_error(e),
                    Poll::Pending => {
                        progress = false;
                        s.read_blocked();
                    }
                }
            }
            let fired = timer.poll(cx, s.poll_timeout());
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

/// One callback connection's task: its [`Driver`] as a `Future` that moves
/// the connection's bytes until it is finished, then drops the socket. The
/// adapters name it `Task` over their transport; spawn it on the runtime
/// whose I/O the transport uses.
#[derive(Debug)]
#[must_use = "a connection's task does nothing unless spawned or awaited"]
pub struct Task<T>(Driver<T>);

impl<T: Transport> Task<T> {
    /// The task of `driver`.
    pub fn new(driver: Driver<T>) -> Self {
        Self(driver)
    }
}

impl<T: Transport> Future for Task<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.drive(cx, |_| false)
    }
}
