//! The per-connection task: crest-driver's [`Driver`](crest_driver::Driver)
//! loop over a `TcpStream` ([`Socket`]: `poll_read_buf`, vectored writes,
//! crest-driver's [`Deadline`](crest_driver::timer::Deadline) timer), as a
//! `Future` to spawn.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

use crate::stream::Socket;

/// A connection's loop: a session and its socket.
pub(crate) type Driver = crest_driver::Driver<Socket<TcpStream>>;

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
