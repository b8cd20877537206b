//! The product page's chat application.
//!
//! ```sh
//! cargo run -p crest-tokio --example chat
//! ```
//!
//! Then open <http://localhost:8000/> in a few browser tabs (`?name=Bob` to
//! pick a name). The WebSocket endpoint is `ws://localhost:8000/ws`. Ctrl-C
//! closes every connection with 1001 (going away) and exits.

mod chat;

use crest_tokio::App;

/// The chat page: the product page's client-side JavaScript plus a minimal UI.
const PAGE: &str = include_str!("index.html");

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let mut app = App::new();
    let ws = chat::chat_server();
    app.route("/ws", &ws);
    app.page("/", PAGE);

    println!("Chat on http://localhost:8000/ (WebSocket at ws://localhost:8000/ws); Ctrl-C to stop");
    app.run("0.0.0.0", 8000).await
}
