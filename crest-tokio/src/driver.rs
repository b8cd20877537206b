//! The per-connection task: crest-driver's [`Driver`](crest_driver::Driver)
//! loop over a `TcpStream` ([`Socket`]: `poll_read_buf`, vectored writes,
//! a tokio timer), as a `Future` to spawn.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::time::Sleep;

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
