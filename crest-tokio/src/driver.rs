//! The per-connection task: one loop moving bytes between a `TcpStream` and
//! a [`Session`], which makes every decision.
//!
//! - read: `poll_read_buf` into a buffer lent by the session only while the
//!   connection reads (an idle connection holds no read buffer);
//! - write: the session's chunks in one vectored write;
//! - sleep: until the session's deadline (a boxed `Sleep`, allocated only
//!   while a deadline exists);
//! - wake: on commands from `Conn` handles (the session's inbox waker).
//!
//! It is a hand-written future rather than an `async fn` with `select!`, so
//! the task stores only this struct: no futures of pending branches, no I/O
//! slice arrays (those live on the stack during a poll).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crest_driver::{wire, Session};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Iterations of the loop before yielding to other tasks.
const BUDGET: u32 = 32;

/// A connection's task: a session and its socket.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) session: Session,
    stream: TcpStream,
    timer: Timer,
}

impl Driver {
    pub(crate) fn new(session: Session, stream: TcpStream) -> Self {
        Self { session, stream, timer: Timer::default() }
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
                s.shutdown_polled(Pin::new(&mut self.stream).poll_shutdown(cx));
            }
            if s.is_finished() || done(s) {
                return Poll::Ready(());
            }
            let mut progress = false;
            if s.wants_read() {
                // `poll_read`, unlike `try_read`, clears readiness after a
                // short read (on epoll that shows the socket buffer was
                // drained), which saves the EAGAIN read that would otherwise
                // follow every message. The read buffer comes from the
                // session's per-thread pool and goes back when the socket has
                // nothing: an idle connection holds none.
                progress = true;
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, s.read_buf()) {
                    Poll::Ready(Ok(0)) => s.receive_eof(),
                    Poll::Ready(Ok(_)) => s.received(Instant::now()),
                    Poll::Ready(Err(e)) => s.io_error(e),
                    Poll::Pending => {
                        progress = false;
                        s.read_blocked();
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

/// One connection's task, for [`Connect::connect_with`](crate::Connect::connect_with):
/// a `Future` that moves the connection's bytes until it is finished, then
/// drops the socket. Spawn it on the tokio runtime, or await it.
#[derive(Debug)]
#[must_use = "a connection's task does nothing unless spawned or awaited"]
pub struct Task(pub(crate) Driver);

impl Future for Task {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.drive(cx, |_| false)
    }
}

/// A deadline timer that holds memory only while armed.
#[derive(Debug, Default)]
pub(crate) struct Timer(Option<Pin<Box<Sleep>>>);

impl Timer {
    /// Arms (or disarms) the timer for `deadline`; `true` if it has passed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, deadline: Option<Instant>) -> bool {
        let Some(deadline) = deadline else {
            self.0 = None;
            return false;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let sleep = self.0.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}
