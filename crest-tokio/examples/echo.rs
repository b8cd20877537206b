//! Echoes every text and binary message, on any path.
//!
//! ```sh
//! cargo run --release -p crest-tokio --example echo -- 127.0.0.1:9001
//! ```
//!
//! Used by the Autobahn fuzzingclient and by the benchmarks: one
//! current-thread runtime (one core), `TCP_NODELAY` on every socket, message
//! limits raised for the Autobahn cases, no logging on the data path.

use crest_tokio::{App, Settings, WebSocketServer};

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| std::io::Error::other(format!("expected HOST:PORT, got {addr:?}")))?;

    let ws = WebSocketServer::with_settings(Settings::default().max_connections(1 << 20));
    ws.on_message(|conn, message| {
        let _ = conn.send(message);
    });
    ws.on_binary(|conn, data| {
        let _ = conn.send_binary(data);
    });

    let mut app = App::new();
    app.fallback(&ws);
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(app.run(&host, port))
}
