//! The echo server: every text and binary message goes back as it came, on
//! any path. Used by the Autobahn fuzzingclient and by the benchmarks.
//!
//! ```
//! let (host, port) = crest_examples::echo::host_port(Some("127.0.0.1:9002".into()), "127.0.0.1:9001").unwrap();
//! assert_eq!((host.as_str(), port), ("127.0.0.1", 9002));
//! let ws = crest_examples::echo::echo_server();
//! assert_eq!(ws.settings().max_connections, 1 << 20);
//! ```

use std::io;

use crest_driver::{DeflateConfig, Settings, WebSocketServer};

/// A server echoing text and binary messages, with room for the benchmarks'
/// connection counts; route it as the app's fallback (any path). Accepts
/// permessage-deflate from clients that offer it (the benchmark clients do
/// not, so they measure plain frames).
pub fn echo_server() -> WebSocketServer {
    let settings = Settings::default().max_connections(1 << 20).deflate(DeflateConfig::default());
    let ws = WebSocketServer::with_settings(settings);
    ws.on_message(|conn, message| {
        let _ = conn.send(message);
    });
    ws.on_binary(|conn, data| {
        let _ = conn.send_binary(data);
    });
    ws
}

/// `HOST:PORT` from the command line (`arg`, else `default`).
///
/// # Errors
/// When it is not `HOST:PORT`.
pub fn host_port(arg: Option<String>, default: &str) -> io::Result<(String, u16)> {
    let addr = arg.unwrap_or_else(|| default.into());
    addr.rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| io::Error::other(format!("expected HOST:PORT, got {addr:?}")))
}
