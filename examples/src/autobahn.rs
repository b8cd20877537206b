//! Running the cases of an Autobahn|TestSuite fuzzingserver as a client:
//! the URLs, the case count, and an echoing [`WebSocketClient`] that tells
//! when its connection closed. The adapter's example connects and waits.
//!
//! ```
//! use crest_examples::autobahn::Cases;
//!
//! let cases = Cases::from_args(["ws://127.0.0.1:9001".to_string()].into_iter(), "crest-tokio");
//! assert_eq!(cases.count_url(), "ws://127.0.0.1:9001/getCaseCount");
//! let urls: Vec<String> = cases.case_urls(2).collect();
//! assert_eq!(urls[1], "ws://127.0.0.1:9001/runCase?case=2&agent=crest-tokio");
//! assert_eq!(cases.report_url(), "ws://127.0.0.1:9001/updateReports?agent=crest-tokio");
//! ```

use std::future::Future;
use std::time::Duration;

use crest_driver::{DeflateConfig, Message, WebSocketClient};

/// Bound on one case (the slowest Autobahn cases take a few seconds).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the fuzzingserver is and which agent name to report under.
#[derive(Debug, Clone)]
pub struct Cases {
    base: String,
    agent: String,
}

impl Cases {
    /// From the command line: `[BASE_URL] [AGENT]` (default
    /// `ws://127.0.0.1:9001` and `agent`).
    pub fn from_args(mut args: impl Iterator<Item = String>, agent: &str) -> Self {
        let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
        Self { base, agent: args.next().unwrap_or_else(|| agent.into()) }
    }

    /// The agent name.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The URL that answers with the number of cases (one text message).
    pub fn count_url(&self) -> String {
        format!("{}/getCaseCount", self.base)
    }

    /// The URL of every case.
    pub fn case_urls(&self, count: u32) -> impl Iterator<Item = String> + '_ {
        (1..=count).map(|case| format!("{}/runCase?case={case}&agent={}", self.base, self.agent))
    }

    /// The URL that makes the fuzzingserver write its reports.
    pub fn report_url(&self) -> String {
        format!("{}/updateReports?agent={}", self.base, self.agent)
    }
}

/// Runs cases `1..=count` with `echo_until_closed(url)` (printing a case's
/// error and going on), then the report URL (whose error is returned).
///
/// # Errors
/// When the fuzzingserver's reports could not be updated.
pub async fn run_cases<F, E>(cases: &Cases, count: u32, mut echo_until_closed: impl FnMut(String) -> F) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    println!("{count} cases");
    for url in cases.case_urls(count) {
        if let Err(e) = echo_until_closed(url.clone()).await {
            println!("{url}: {e}");
        }
    }
    echo_until_closed(cases.report_url()).await?;
    println!("reports updated for agent {}", cases.agent());
    Ok(())
}

/// The case count from the first message of [`Cases::count_url`].
///
/// # Errors
/// When that was not a number.
pub fn case_count<E: std::fmt::Debug>(first: Option<Result<Message, E>>) -> Result<u32, String> {
    match first {
        Some(Ok(Message::Text(text))) => text.trim().parse().map_err(|e| format!("case count {text:?}: {e}")),
        other => Err(format!("getCaseCount answered {other:?}")),
    }
}

/// A client that echoes text and binary messages, offering permessage-deflate
/// (the fuzzingserver accepts it in cases 12.* and 13.*), and the receiver
/// that gets one `()` when its connection closed.
pub fn echo_client() -> (WebSocketClient, async_channel::Receiver<()>) {
    let client = WebSocketClient::new();
    client.deflate(DeflateConfig::default());
    client.on_message(|conn, text| {
        let _ = conn.send(text);
    });
    client.on_binary(|conn, data| {
        let _ = conn.send_binary(data);
    });
    let (closed, on_closed) = async_channel::bounded(1);
    client.on_close(move |_conn, _code, _reason| {
        let _ = closed.try_send(());
    });
    (client, on_closed)
}
