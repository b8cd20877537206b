//! Runs every case of an Autobahn|TestSuite fuzzingserver as a client,
//! echoing every message, then asks it to write its reports.
//!
//! ```sh
//! cargo run --release -p crest-tokio --example autobahn_client -- ws://127.0.0.1:9001 [agent]
//! ```

use crest_examples::autobahn::{case_count, echo_client, run_cases, Cases, CASE_TIMEOUT};
use crest_tokio::Connect;
use futures_util::StreamExt;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let cases = Cases::from_args(std::env::args().skip(1), "crest-tokio");

        // The Stream API: one text message with the number of cases.
        let mut ws = crest_tokio::connect(&cases.count_url()).await?;
        let count = case_count(ws.next().await)?;
        drop(ws);

        // The callback API: echo everything until the server closes.
        run_cases(&cases, count, |url| async move { echo_until_closed(&url).await }).await
    })
}

/// Connects an echoing client; returns once its connection ended, socket
/// included: the connection's task is awaited here rather than spawned, so
/// that the fuzzingserver has seen the TCP connection close (and recorded the
/// case) before the next one starts.
async fn echo_until_closed(url: &str) -> Result<(), Error> {
    let (client, _closed) = echo_client();
    let (tx, task) = tokio::sync::oneshot::channel();
    let _conn = client.connect_with(url, move |t| drop(tx.send(t))).await?;
    tokio::time::timeout(CASE_TIMEOUT, task.await?).await?;
    Ok(())
}
