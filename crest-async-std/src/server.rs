//! [`App`]: binds a listener, routes requests, spawns one task per
//! connection, shuts down gracefully.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use crest_driver::{Router, Session};
use futures_lite::future;

use crate::driver::{Driver, Task};

/// How an [`App`] starts its connections' tasks.
type Spawner = dyn Fn(Task) + Send + Sync;

/// An application: WebSocket endpoints and pages by path, on one listener.
///
/// ```no_run
/// use crest_async_std::{App, WebSocketServer};
///
/// fn main() -> std::io::Result<()> {
///     let ws = WebSocketServer::new();
///     ws.on_connect(|conn| {
///         println!("Client connected: {}", conn.id());
///         let _ = conn.send(r#"{"type":"welcome","message":"Connected!"}"#);
///     });
///     let all = ws.clone();
///     ws.on_message(move |_conn, message| {
///         println!("Received: {message}");
///         all.broadcast(message);
///     });
///     ws.on_close(|conn, _code, _reason| println!("Client disconnected: {}", conn.id()));
///
///     let mut app = App::new();
///     app.route("/ws", &ws);
///     app.run_blocking("0.0.0.0", 8000) // until Ctrl-C, then close 1001 and drain
/// }
/// ```
///
/// On smol, spawn the connections on smol's executor (everything else is
/// the same; `smol::block_on` drives the reactor):
///
/// ```no_run
/// use crest_async_std::{App, WebSocketServer};
///
/// fn main() -> std::io::Result<()> {
///     let ws = WebSocketServer::new();
///     ws.on_message(|conn, message| drop(conn.send(message)));
///     let mut app = App::new();
///     app.route("/ws", &ws).spawn_with(|task| smol::spawn(task).detach());
///     smol::block_on(app.run("0.0.0.0", 8000))
/// }
/// ```
#[derive(Default)]
pub struct App {
    router: Router,
    spawner: Option<Arc<Spawner>>,
}

impl App {
    /// An app with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    crest_driver::app_routing_methods!();

    /// Starts each connection's [`Task`] with `spawn` instead of
    /// `async_std::task::spawn`: e.g. `|task| smol::spawn(task).detach()`,
    /// or an `async_executor::Executor` of your own.
    pub fn spawn_with(&mut self, spawn: impl Fn(Task) + Send + Sync + 'static) -> &mut Self {
        self.spawner = Some(Arc::new(spawn));
        self
    }

    /// Binds `host:port` and serves until Ctrl-C (or SIGTERM, or the
    /// shutdown handle), then shuts down gracefully.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn run(self, host: &str, port: u16) -> io::Result<()> {
        let listener = bind(host, port)?;
        tracing::info!("listening on {}", listener.local_addr()?);
        let shutdown = self.shutdown_handle();
        let signals = async move {
            wait_for_signal().await;
            shutdown.trigger();
            future::pending().await // `serve` goes on draining
        };
        future::or(self.serve(listener), signals).await
    }

    /// Like [`run`](Self::run), blocking the current thread on async-std's
    /// executor: for a `main` that is not async.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn run_blocking(self, host: &str, port: u16) -> io::Result<()> {
        async_std::task::block_on(self.run(host, port))
    }

    /// Serves connections from `listener` until the shutdown handle is
    /// triggered, then waits until every connection is drained. Connections
    /// are spawned with `async_std::task::spawn`, or as set by
    /// [`spawn_with`](Self::spawn_with).
    ///
    /// # Errors
    /// When the listener cannot be registered with the reactor. Accept errors
    /// (e.g. too many open files) are logged and retried.
    pub async fn serve(self, listener: impl IntoListener) -> io::Result<()> {
        let listener = listener.into_listener()?;
        let spawn = self.spawner.unwrap_or_else(|| Arc::new(|task| drop(async_std::task::spawn(task))));
        let router = Arc::new(self.router);
        let shutdown = router.shutdown().clone();
        loop {
            let triggered = async {
                shutdown.triggered().await;
                None
            };
            let Some(accepted) = future::or(triggered, async { Some(listener.accept().await) }).await else {
                break;
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Latency over batching: each send is written when ready.
                    let _ = stream.get_ref().set_nodelay(true);
                    let session = Session::accept(&router, peer, Instant::now());
                    spawn(Task::new(Driver::new(session, stream)));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    async_io::Timer::after(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        shutdown.drain().await;
        Ok(())
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App").field("router", &self.router).field("custom_spawn", &self.spawner.is_some()).finish()
    }
}

/// A TCP listener [`App::serve`] takes: `async_std::net::TcpListener`,
/// async-io's `Async<std::net::TcpListener>` (also `smol::Async`), or a bound
/// `std::net::TcpListener`.
pub trait IntoListener {
    /// The listener, registered with async-io's reactor.
    ///
    /// # Errors
    /// When it cannot be made non-blocking or registered.
    fn into_listener(self) -> io::Result<Async<TcpListener>>;
}

impl IntoListener for Async<TcpListener> {
    fn into_listener(self) -> io::Result<Async<TcpListener>> {
        Ok(self)
    }
}

impl IntoListener for TcpListener {
    fn into_listener(self) -> io::Result<Async<TcpListener>> {
        Async::new(self)
    }
}

impl IntoListener for async_std::net::TcpListener {
    fn into_listener(self) -> io::Result<Async<TcpListener>> {
        Async::new(TcpListener::try_from(self)?)
    }
}

/// Most connections the kernel completes and queues before `accept` takes
/// them; as in tokio's `TcpListener::bind`. Beyond it a burst of connects is
/// dropped and retried by the clients a second or more later (std's
/// `TcpListener::bind` uses 128, which a burst of a few hundred overflows).
const BACKLOG: i32 = 1024;

/// Binds the first address `host:port` resolves to that can be bound
/// (address reuse on, as std sets it), listening with [`BACKLOG`].
fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let mut last = None;
    for addr in std::net::ToSocketAddrs::to_socket_addrs(&(host, port))? {
        let bound = Socket::new(Domain::for_address(addr), Type::STREAM, None).and_then(|socket| {
            #[cfg(unix)]
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(BACKLOG)?;
            Ok(TcpListener::from(socket))
        });
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
}

/// Resolves on Ctrl-C or SIGTERM (never, if signals cannot be watched).
async fn wait_for_signal() {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;

    #[cfg(unix)]
    let signals = Signals::new([Signal::Int, Signal::Term]);
    #[cfg(not(unix))]
    let signals = Signals::new([Signal::Int]);
    match signals {
        Ok(mut signals) => drop(signals.next().await),
        Err(e) => {
            tracing::warn!("cannot watch for Ctrl-C: {e}");
            future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    /// A burst of connects larger than std's backlog (128) completes without
    /// anyone accepting: the kernel queues them all.
    #[test]
    fn bind_queues_a_burst_of_connects() {
        let listener = super::bind("127.0.0.1", 0).unwrap();
        let addr = listener.local_addr().unwrap();
        let queued: Vec<TcpStream> = (0..300)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connect {i} was not queued: {e}"))
            })
            .collect();
        assert_eq!(queued.len(), 300);
    }
}
