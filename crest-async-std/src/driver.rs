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
}

impl Transport for TcpSocket {
    type Io = Async<TcpStream>;

    fn new(io: Async<TcpStream>) -> Self {
        Self { io, readable: false }
    }

    fn get_ref(&self) -> &Async<TcpStream> {
        &self.io
    }

    /// A read that did not fill the spare capacity most likely drained the
    /// socket: the next read waits for readiness instead of trying first
    /// (which would cost a `recv` that fails with `EAGAIN`).
    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        loop {
            if !self.readable {
                ready!(self.io.poll_readable(cx))?;
                self.readable = true;
            }
            match recv(self.io.get_ref(), buf) {
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
