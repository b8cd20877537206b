//! The reliability suite (issue #6): the servers attacked the way abusers
//! and real failures do, on real loopback sockets.
//!
//! Every scenario is an `async fn name<R: Runtime>() -> Report`: it asserts
//! the expected outcome of each thing it tries (status lines and close codes
//! on the wire, callbacks and counters in the server) and returns a row per
//! thing tried, built from what it observed. The same functions back the
//! `reliability` test target (`tests/reliability.rs`, one `#[test]` per
//! scenario and runtime) and the README's table
//! (`cargo run --release -p crest-tests --bin reliability-report`).
//!
//! Leaks are checked through the app's own accounting: `Shutdown::live()`
//! counts sessions (one per connection task, removed when the task drops
//! it) and `WebSocketServer::connection_count()` the registry; both must
//! come back to what they were. A panic inside a connection's task would
//! drop its session without `on_close`, so "`on_close` exactly once per
//! opened connection" also rules panics out.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message as TMessage;
use crest_driver::{Bytes, Config, Conn, Response, Settings, WebSocketClient, WebSocketServer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_util::StreamExt;

use crate::*;

mod faults;
mod input;
mod load;
mod security;

pub use faults::*;
pub use input::*;
pub use load::*;
pub use security::*;

/// One thing a scenario tried and what happened.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was tried.
    pub tried: String,
    /// What happened (observed, and asserted against the expected outcome).
    pub happened: String,
}

/// What a scenario did: its rows, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// One per thing tried.
    pub rows: Vec<Row>,
}

impl Report {
    fn row(&mut self, tried: impl Into<String>, happened: impl Into<String>) {
        self.rows.push(Row { tried: tried.into(), happened: happened.into() });
    }
}

/// A scenario, runnable on a runtime (its future boxed: scenario futures are
/// large, and some executors' `block_on` would move them on a test thread's
/// small stack).
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The scenario's function name (and test name).
    pub name: &'static str,
    /// The section it belongs to.
    pub group: &'static str,
    /// Runs it to completion on the runtime it was listed for.
    pub run: fn() -> Report,
}

macro_rules! cases {
    ($($group:literal: [$($name:ident),* $(,)?]),* $(,)?) => {
        /// Every scenario, in report order, runnable on `R`.
        pub fn cases<R: Runtime>() -> Vec<Case> {
            vec![$($(Case { name: stringify!($name), group: $group, run: || R::block_on(Box::pin($name::<R>())) },)*)*]
        }
    };
}

cases! {
    "bad input: handshakes": [bad_handshakes, oversized_head_is_refused_before_its_end, dribbled_request_is_dropped],
    "bad input: frames": [bad_frames],
    "bad input: floods": [ping_flood_without_reading, thousands_of_tiny_frames_in_one_read, silent_peers_are_dropped],
    "faults and load": [
        slow_reader_during_broadcast,
        abrupt_drops_by_the_thousand,
        close_never_answered,
        ten_thousand_connections,
        close_under_load,
        graceful_shutdown_with_traffic,
    ],
    "security": [auth_hook_cannot_be_bypassed, origin_check, limits_the_peer_cannot_lift, max_connections],
}

/// The opening-handshake timeout of the scenarios that wait for it.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);

/// The heaviest scenarios (thousands of sockets, throughput) take this
/// token so that they never overlap when tests run in parallel: two 10,000
/// connection servers at once would not fit in 20,000 file descriptors.
async fn heavy() -> impl Drop {
    static TOKEN: LazyLock<(async_channel::Sender<()>, async_channel::Receiver<()>)> = LazyLock::new(|| {
        let (tx, rx) = async_channel::bounded(1);
        tx.try_send(()).unwrap();
        (tx, rx)
    });
    struct Token;
    impl Drop for Token {
        fn drop(&mut self) {
            let _ = TOKEN.0.try_send(());
        }
    }
    // Bounded by the longest heavy scenario times the ones queued before.
    futures_lite::future::or(async { TOKEN.1.recv().await.unwrap() }, async {
        async_io::Timer::after(LIMIT * 6).await;
        panic!("timed out waiting for the other heavy scenarios");
    })
    .await;
    Token
}

// ----- the stage: an echo server, its events, and a bystander -----

/// An echo server recording its callbacks, with one well-behaved client
/// (the bystander) that must keep being served whatever the others do.
struct Stage {
    ws: WebSocketServer,
    server: Server,
    events: Events,
    bystander: Peer,
    bystander_id: u64,
    checks: usize,
    closed: HashMap<u64, u16>,
}

impl Stage {
    async fn new<R: Runtime>(settings: Settings, config: Config) -> Self {
        let ws = WebSocketServer::with_settings(settings);
        let events = record_with(&ws, true);
        let server = R::serve(AppSpec::new().route("/ws", &ws).config(config)).await;
        let bystander = peer(&server.url("/ws")).await;
        let bystander_id = next_connect(&events).await;
        Self { ws, server, events, bystander, bystander_id, checks: 0, closed: HashMap::new() }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The bystander still gets its echo.
    async fn bystander_served(&mut self) {
        self.checks += 1;
        let text = format!("still here {}", self.checks);
        send_text(&mut self.bystander, &text).await;
        assert_eq!(next_text(&mut self.bystander).await, text, "the bystander was not served");
    }

    /// The next event of connection `id` (the bystander's echoes are skipped);
    /// a second `on_close` of one connection fails the test.
    async fn next_of(&mut self, id: u64) -> Ev {
        loop {
            let ev = next_ev(&self.events).await;
            self.check(&ev);
            match &ev {
                Ev::Text(i, _) | Ev::Binary(i, _) if *i == self.bystander_id => {}
                Ev::Connect(i) | Ev::Text(i, _) | Ev::Binary(i, _) | Ev::Error(i, _) | Ev::Close(i, ..) if *i == id => {
                    return ev
                }
                other => panic!("unexpected event {other:?} while waiting for connection {id}"),
            }
        }
    }

    fn check(&mut self, ev: &Ev) {
        if let Ev::Close(id, code, _) = ev {
            assert!(self.closed.insert(*id, *code).is_none(), "on_close twice for {id}");
        }
        if let Ev::Connect(id) | Ev::Text(id, _) | Ev::Binary(id, _) | Ev::Error(id, _) = ev {
            assert!(!self.closed.contains_key(id), "{ev:?} after on_close");
        }
    }

    /// The next `n` events of each of `ids`, whatever their interleaving.
    async fn events_of(&mut self, ids: &[u64], n: usize) -> HashMap<u64, Vec<Ev>> {
        let mut seen: HashMap<u64, Vec<Ev>> = ids.iter().map(|id| (*id, Vec::new())).collect();
        while seen.values().any(|evs| evs.len() < n) {
            let ev = next_ev(&self.events).await;
            self.check(&ev);
            let id = match &ev {
                Ev::Text(i, _) | Ev::Binary(i, _) if *i == self.bystander_id => continue,
                Ev::Connect(i) | Ev::Text(i, _) | Ev::Binary(i, _) | Ev::Error(i, _) | Ev::Close(i, ..) => *i,
            };
            match seen.get_mut(&id) {
                Some(evs) if evs.len() < n => evs.push(ev),
                _ => panic!("unexpected event {ev:?}"),
            }
        }
        seen
    }

    /// The next `on_connect`.
    async fn next_connect(&mut self) -> u64 {
        loop {
            let ev = next_ev(&self.events).await;
            self.check(&ev);
            match ev {
                Ev::Connect(id) => return id,
                Ev::Text(i, _) | Ev::Binary(i, _) if i == self.bystander_id => {}
                other => panic!("expected on_connect, got {other:?}"),
            }
        }
    }

    /// A raw client after its upgrade, and its id.
    async fn raw_client(&mut self) -> (Raw, u64) {
        let tcp = raw_ws(self.addr(), "/ws").await;
        let id = self.next_connect().await;
        (tcp, id)
    }

    /// `on_error` (its message) then `on_close` with `code`, for `id`.
    async fn error_then_close(&mut self, id: u64, code: u16) -> String {
        let message = match self.next_of(id).await {
            Ev::Error(_, e) => e,
            other => panic!("expected on_error, got {other:?}"),
        };
        match self.next_of(id).await {
            Ev::Close(_, c, _) => assert_eq!(c, code, "on_close code after {message}"),
            other => panic!("expected on_close, got {other:?}"),
        }
        message
    }

    /// Everything is back to the bystander alone: one registered connection,
    /// one live session; no `on_close` owed or repeated. Then stops.
    async fn finish(mut self) {
        let live = self.server.shutdown.clone();
        eventually("only the bystander is left", || live.live() == 1).await;
        assert_eq!(self.ws.connection_count(), 1);
        self.bystander_served().await;
        while let Ok(ev) = self.events.try_recv() {
            self.check(&ev);
        }
        drop(self.bystander);
        self.server.stop().await;
    }
}

/// The handle of connection `id` (registered right after its `on_connect`).
async fn registered(ws: &WebSocketServer, id: u64) -> Conn {
    let mut found = None;
    eventually("the connection is registered", || {
        found = ws.connections().into_iter().find(|c| c.id().get() == id);
        found.is_some()
    })
    .await;
    found.unwrap()
}

fn status_line(head: &str) -> &str {
    head.lines().next().unwrap_or("")
}

fn status(head: &str) -> u16 {
    status_line(head).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn handshake_config() -> Config {
    Config { handshake_timeout: Some(HANDSHAKE_TIMEOUT), ..Config::default() }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// `frame` with bits of its first byte (FIN, RSV, opcode) set and cleared.
fn with_first(mut frame: Vec<u8>, set: u8, clear: u8) -> Vec<u8> {
    frame[0] = (frame[0] | set) & !clear;
    frame
}
