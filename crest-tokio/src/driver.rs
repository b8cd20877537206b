//! The per-connection task: crest-driver's [`Driver`](crest_driver::Driver)
//! loop over a `TcpStream` ([`Socket`]: `poll_read_buf`, vectored writes,
//! crest-driver's [`Deadline`](crest_driver::timer::Deadline) timer), as a
//! `Future` to spawn.

use tokio::net::TcpStream;

use crate::stream::Socket;

/// A connection's loop: a session and its socket.
pub(crate) type Driver = crest_driver::Driver<Socket<TcpStream>>;

/// One connection's task, for [`Connect::connect_with`](crate::Connect::connect_with):
/// a `Future` that moves the connection's bytes until it is finished, then
/// drops the socket. Spawn it on the tokio runtime, or await it.
pub type Task = crest_driver::Task<Socket<TcpStream>>;
