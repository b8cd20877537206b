//! The product page's chat application, on tokio.
//!
//! ```sh
//! cargo run -p crest-tokio --example chat
//! ```
//!
//! Then open <http://localhost:8000/> in a few browser tabs (`?name=Bob` to
//! pick a name). The WebSocket endpoint is `ws://localhost:8000/ws`. Ctrl-C
//! closes every connection with 1001 (going away) and exits. The chat itself
//! (callbacks and page) is `crest_examples::chat`, which every adapter's
//! chat example runs.

use crest_examples::chat;
use crest_tokio::App;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let mut app = App::new();
    app.route("/ws", &chat::chat_server()).page("/", chat::PAGE);

    println!("Chat on http://localhost:8000/ (WebSocket at ws://localhost:8000/ws); Ctrl-C to stop");
    app.run("0.0.0.0", 8000).await
}
