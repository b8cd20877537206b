//! The per-connection task: crest-driver's [`Driver`](crest_driver::Driver)
//! loop over an `Async<TcpStream>` ([`TcpSocket`]: readiness from async-io's
//! reactor, non-blocking `recv`s, vectored writes; deadlines on crest-driver's
//! timer thread), as a `Future` to spawn. Everything here is async-io and
//! futures-io, so the task runs on async-std and on smol alike.

use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_io::Async;
use bytes::BytesMut;
use crest_driver::Transport;
use futures_io::AsyncWrite;

/// A connection's loop: a session and its socket.
pub(crate) type Driver = crest_driver::Driver<TcpSocket>;

/// One connection's task, for [`App::spawn_with`](crate::App::spawn_with) and
/// [`Connect::connect_with`](crate::Connect::connect_with): a `Future` that
/// moves the connection's bytes until it is finished. Spawn it on any
/// executor (async-std, smol, `async_executor::Executor`, ...): it only
/// needs async-io's reactor, which runs wherever it is polled.
pub type Task = crest_driver::Task<TcpSocket>;

/// The callback connections' [`Transport`]: an `Async<TcpStream>` read with
/// `recv` straight into the buffer's spare capacity.
#[derive(Debug)]
pub struct TcpSocket {
    io: Async<TcpStream>,
    /// The reactor reported the socket readable and no read found it drained
    /// since: read again without asking the reactor (each question re-arms
    /// async-io's one-shot registration: an `epoll_ctl`).
    readable: bool,
    guess: Guess,
}

/// Whether to yield once and read again before asking the reactor, once a
/// read drained the socket.
///
/// async-io registers interest in a socket one-shot: every wait for
/// readability costs an `epoll_ctl` to re-arm it (tokio's edge-triggered
/// registration costs nothing per wait). When the server is busy, a
/// request-response peer's next message has usually arrived by the time
/// the executor has run the other ready tasks; so instead of waiting, the
/// task goes to the back of the run queue (a self-wake, no syscall) and
/// reads again when it comes round. A read that finds data saved the
/// `epoll_ctl` and the reactor's event; one that finds nothing cost a
/// `recv` (about what the `epoll_ctl` costs) and the task then waits as
/// usual. Guesses that miss back off exponentially (up to one guess per 64
/// waits), so a quiet or latency-bound connection pays for almost none.
#[derive(Debug, Default)]
struct Guess {
    /// The task yielded instead of waiting: the next read is the guess.
    yielded: bool,
    /// Waits to make before guessing again.
    skip: u8,
    /// `skip` after the next miss (doubling, up to [`Guess::MAX_SKIP`]).
    backoff: u8,
}

/// What to do when the socket is not known to be readable.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Wake the task and return `Pending` (read again when re-polled).
    Yield,
    /// Read now: the task yielded and was re-polled.
    Read,
    /// Wait for the reactor.
    Wait,
}

impl Guess {
    const MAX_SKIP: u8 = 64;

    fn next(&mut self) -> Next {
        if std::mem::take(&mut self.yielded) {
            Next::Read
        } else if self.skip > 0 {
            self.skip -= 1;
            Next::Wait
        } else {
            self.yielded = true;
            Next::Yield
        }
    }

    /// The guessed read found data (`true`) or nothing.
    fn outcome(&mut self, hit: bool) {
        if hit {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(1, Self::MAX_SKIP);
            self.skip = self.backoff;
        }
    }
}

impl Transport for TcpSocket {
    type Io = Async<TcpStream>;

    fn new(io: Async<TcpStream>) -> Self {
        Self { io, readable: false, guess: Guess::default() }
    }

    fn get_ref(&self) -> &Async<TcpStream> {
        &self.io
    }

    /// A read that did not fill the spare capacity most likely drained the
    /// socket: the next read waits for readiness instead of trying first
    /// (which would cost a `recv` that fails with `EAGAIN`), unless `Guess`
    /// says to yield and read again first.
    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        loop {
            let mut guessed = false;
            if !self.readable {
                match self.guess.next() {
                    Next::Yield => {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Next::Read => guessed = true,
                    Next::Wait => ready!(self.io.poll_readable(cx))?,
                }
                self.readable = true;
            }
            let read = recv(self.io.get_ref(), buf);
            if guessed {
                self.guess.outcome(read.is_ok());
            }
            match read {
                Ok((n, full)) => {
                    self.readable = full;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(&mut self, cx: &mut Context<'_>, iov: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, iov)
    }

    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.get_ref().shutdown(Shutdown::Write))
    }
}

/// One non-blocking `recv` into `buf`'s spare capacity; returns the count and
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

#[cfg(test)]
mod tests {
    use super::{Guess, Next};

    /// The guesses a run of outcomes leads to: `true` = the guessed read
    /// found data. Returns how many waits came between the guesses.
    fn waits_between(outcomes: &[bool]) -> Vec<usize> {
        let mut g = Guess::default();
        let mut waits = Vec::new();
        for &hit in outcomes {
            let mut n = 0;
            while g.next() == Next::Wait {
                n += 1;
            }
            waits.push(n);
            assert_eq!(g.next(), Next::Read, "a yield is followed by the guessed read");
            g.outcome(hit);
        }
        waits
    }

    #[test]
    fn hits_keep_guessing_at_every_wait() {
        assert_eq!(waits_between(&[true; 5]), [0; 5]);
    }

    #[test]
    fn misses_back_off_exponentially_up_to_one_guess_per_64_waits() {
        assert_eq!(waits_between(&[false; 9]), [0, 1, 2, 4, 8, 16, 32, 64, 64]);
    }

    #[test]
    fn a_hit_ends_the_back_off() {
        assert_eq!(waits_between(&[false, false, false, true, false, true, true]), [0, 1, 2, 4, 0, 1, 0]);
    }
}
