//! [`App`]: binds a listener, routes requests, spawns one task per
//! connection, shuts down gracefully.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_driver::{Router, Session};
use tokio::net::TcpListener;

use crate::driver::{Driver, Task};

/// An application: WebSocket endpoints and pages by path, on one listener.
///
/// ```no_run
/// use crest_tokio::{App, WebSocketServer};
///
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
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
///     app.run("0.0.0.0", 8000).await // until Ctrl-C, then close 1001 and drain
/// }
/// ```
#[derive(Debug, Default)]
pub struct App {
    router: Router,
}

impl App {
    /// An app with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    crest_driver::app_routing_methods!();

    /// Binds `host:port` and serves until Ctrl-C (or SIGTERM, or the
    /// shutdown handle), then shuts down gracefully.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn run(self, host: &str, port: u16) -> io::Result<()> {
        let listener = TcpListener::bind((host, port)).await?;
        tracing::info!("listening on {}", listener.local_addr()?);
        let shutdown = self.shutdown_handle();
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            shutdown.trigger();
        });
        let result = self.serve(listener).await;
        signals.abort();
        result
    }

    /// Like [`run`](Self::run), on a new multi-threaded tokio runtime:
    /// for a `main` that is not async.
    ///
    /// # Errors
    /// When the runtime cannot start or the address cannot be bound.
    pub fn run_blocking(self, host: &str, port: u16) -> io::Result<()> {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(self.run(host, port))
    }

    /// Serves connections from `listener` until the shutdown handle is
    /// triggered, then waits until every connection is drained. Must run
    /// inside a tokio runtime (connections are spawned tasks).
    ///
    /// # Errors
    /// None so far: accept errors (e.g. too many open files) are logged and
    /// retried.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        let router = Arc::new(self.router);
        let shutdown = router.shutdown().clone();
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.triggered() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Latency over batching: each send is written when ready.
                    let _ = stream.set_nodelay(true);
                    let session = Session::accept(&router, peer, Instant::now());
                    tokio::spawn(Task::new(Driver::new(session, stream)));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    crest_driver::timer::sleep_until(Instant::now() + Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        shutdown.drain().await;
        Ok(())
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
