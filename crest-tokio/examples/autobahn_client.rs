//! Runs every case of an Autobahn|TestSuite fuzzingserver as a client,
//! echoing every message, then asks it to write its reports.
//!
//! ```sh
//! cargo run --release -p crest-tokio --example autobahn_client -- ws://127.0.0.1:9001 [agent]
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crest_tokio::{Connect, Message, WebSocketClient};
use futures_util::StreamExt;
use tokio::sync::oneshot;

/// Bound on one case (the slowest Autobahn cases take a few seconds).
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "crest-tokio".into());

    // The Stream API: one text message with the number of cases.
    let mut ws = crest_tokio::connect(&format!("{base}/getCaseCount")).await?;
    let count: u32 = match ws.next().await {
        Some(Ok(Message::Text(text))) => text.trim().parse()?,
        other => return Err(format!("getCaseCount answered {other:?}").into()),
    };
    drop(ws);
    println!("{count} cases");

    // The callback API: echo everything until the server closes.
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        if let Err(e) = echo_until_closed(&url).await {
            println!("case {case}: {e}");
        }
    }

    echo_until_closed(&format!("{base}/updateReports?agent={agent}")).await?;
    println!("reports updated for agent {agent}");
    Ok(())
}

/// Connects with callbacks that echo text and binary messages; returns
/// once the connection closed.
async fn echo_until_closed(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = WebSocketClient::new();
    client.on_message(|conn, text| {
        let _ = conn.send(text);
    });
    client.on_binary(|conn, data| {
        let _ = conn.send_binary(data);
    });
    let (closed, on_closed) = oneshot::channel();
    let closed = Arc::new(Mutex::new(Some(closed)));
    client.on_close(move |_conn, _code, _reason| {
        if let Some(tx) = closed.lock().unwrap().take() {
            let _ = tx.send(());
        }
    });
    let _conn = client.connect(url).await?;
    tokio::time::timeout(CASE_TIMEOUT, on_closed).await??;
    Ok(())
}
