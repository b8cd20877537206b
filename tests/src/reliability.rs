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

// ----- bad input: handshakes -----

/// A ClientHello's first bytes, as a TLS client sends them to a plain port.
const TLS_CLIENT_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\
    \x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x20\x00\x13\x01";

/// Malformed upgrades: each gets its status, then the server closes the
/// connection; the bystander is served throughout.
pub async fn bad_handshakes<R: Runtime>() -> Report {
    let mut st = Stage::new::<R>(Settings::default(), handshake_config()).await;
    let head = upgrade_head("/ws", "");
    let many: String = (0..100).map(|i| format!("X-Many-{i}: {i}\r\n")).collect();
    // (what, bytes, statuses allowed, a header the answer must carry)
    type Try<'a> = (&'a str, Vec<u8>, &'a [u16], Option<&'a str>);
    let tries: Vec<Try> = vec![
        (
            "Sec-WebSocket-Version: 8",
            head.replace("Version: 13", "Version: 8").into(),
            &[426],
            Some("Sec-WebSocket-Version: 13\r\n"),
        ),
        (
            "no Sec-WebSocket-Version",
            head.replace("Sec-WebSocket-Version: 13\r\n", "").into(),
            &[426],
            Some("Sec-WebSocket-Version: 13\r\n"),
        ),
        ("no Sec-WebSocket-Key", head.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "").into(), &[400], None),
        ("Sec-WebSocket-Key not base64 of 16 bytes", head.replace(KEY, "c2hvcnQ=").into(), &[400], None),
        ("POST instead of GET", head.replacen("GET", "POST", 1).into(), &[405, 400], None),
        ("100 header lines (limit 64)", upgrade_head("/ws", &many).into(), &[431, 400], None),
        ("garbage bytes", b"\x00\xff\xfe\x01 garbage \x7f\r\n\r\n".to_vec(), &[400], None),
        ("TLS ClientHello to the plain port", TLS_CLIENT_HELLO.to_vec(), &[400], None),
    ];
    let mut report = Report::default();
    for (tried, bytes, expected, header) in tries {
        let (mut tcp, response) = raw_request(st.addr(), &bytes).await;
        let code = status(&response);
        assert!(expected.contains(&code), "{tried}: expected {expected:?}, got {response:?}");
        if let Some(h) = header {
            assert!(response.contains(h), "{tried}: no {h:?} in {response:?}");
        }
        read_to_end(&mut tcp).await; // the server closes the connection
        st.bystander_served().await;
        report.row(tried, format!("`{}`, connection closed; bystander served", status_line(&response)));
    }
    st.finish().await;
    report
}

/// A request head that never ends: answered with 431 as soon as the limit
/// is passed, while the peer is still sending.
pub async fn oversized_head_is_refused_before_its_end<R: Runtime>() -> Report {
    const CAP: usize = 64 << 20;
    let mut st = Stage::new::<R>(Settings::default(), handshake_config()).await;
    let limit = Config::default().max_handshake_size;
    let before = memory_kib().0;
    let tcp = raw_connect(st.addr()).await;
    let answered = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    let write = async {
        let mut w = &tcp;
        let _ = w.write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\nX-Pad: ").await;
        let chunk = vec![b'a'; 64 * 1024];
        while !answered.load(Ordering::Acquire) && written.load(Ordering::Relaxed) < CAP {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
            written.fetch_add(chunk.len(), Ordering::Relaxed);
            // Let the reader look for the answer (a socket that is always
            // writable would never make this future wait).
            futures_lite::future::yield_now().await;
        }
    };
    let read = async {
        let mut r = &tcp;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        answered.store(true, Ordering::Release);
        String::from_utf8_lossy(&head).into_owned()
    };
    let ((), response) = within(futures_lite::future::zip(write, read)).await;
    let at = written.load(Ordering::Relaxed);
    assert!(matches!(status(&response), 431 | 400), "{response:?}");
    assert!(at < CAP, "the server waited for {} of head before answering", mib(at));
    let mut tcp = tcp;
    read_to_end(&mut tcp).await;
    st.bystander_served().await;
    let grew = memory_kib().0.saturating_sub(before);
    st.finish().await;
    let mut report = Report::default();
    report.row(
        format!("a request head that never ends (limit {} KiB), sent as fast as possible", limit / 1024),
        format!(
            "`{}` while the peer was still sending ({} written by then); process RSS +{grew} KiB; bystander served",
            status_line(&response),
            mib(at)
        ),
    );
    report
}

/// A request sent one byte every 10 ms: dropped by the handshake timeout.
pub async fn dribbled_request_is_dropped<R: Runtime>() -> Report {
    let mut st = Stage::new::<R>(Settings::default(), handshake_config()).await;
    let head = upgrade_head("/ws", "");
    let tcp = raw_connect(st.addr()).await;
    let start = Instant::now();
    let done = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let dribble = async {
        let mut w = &tcp;
        for b in head.as_bytes() {
            if done.load(Ordering::Acquire) || w.write_all(&[*b]).await.is_err() {
                break;
            }
            sent.fetch_add(1, Ordering::Relaxed);
            async_io::Timer::after(Duration::from_millis(10)).await;
        }
    };
    let read = async {
        let mut r = &tcp;
        let mut all = Vec::new();
        let _ = r.read_to_end(&mut all).await;
        done.store(true, Ordering::Release);
        (all, start.elapsed())
    };
    let ((), (answer, after)) = within(futures_lite::future::zip(dribble, read)).await;
    let sent = sent.load(Ordering::Relaxed);
    assert!(!answer.starts_with(b"HTTP/1.1 101"), "upgraded a dribbled request");
    assert!(sent < head.len(), "the whole request went through ({sent} bytes)");
    // The server's clock starts at its accept, a little before ours.
    assert!(after + Duration::from_millis(100) >= HANDSHAKE_TIMEOUT, "dropped after {after:?}, before the timeout");
    assert!(after < HANDSHAKE_TIMEOUT + Duration::from_secs(3), "dropped only after {after:?}");
    st.bystander_served().await;
    st.finish().await;
    let answer = String::from_utf8_lossy(&answer);
    let answer = if answer.is_empty() { "nothing".to_owned() } else { format!("`{}`", status_line(&answer)) };
    let mut report = Report::default();
    report.row(
        format!("a {}-byte request sent one byte per 10 ms (handshake timeout {HANDSHAKE_TIMEOUT:?})", head.len()),
        format!("answered {answer} and dropped after {after:.2?} ({sent} bytes sent); bystander served"),
    );
    report
}

// ----- bad input: frames -----

fn with_first(mut frame: Vec<u8>, set: u8, clear: u8) -> Vec<u8> {
    frame[0] = (frame[0] | set) & !clear;
    frame
}

/// A masked frame header announcing `len` bytes (mask key 0), without payload.
fn header_only(opcode: u8, len: u64) -> Vec<u8> {
    let mut f = vec![0x80 | opcode, 0x80 | 127];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f
}

/// Frame-level violations, each on a fresh connection: the close code on the
/// wire, `on_error` then `on_close` once with that code, the bystander served.
pub async fn bad_frames<R: Runtime>() -> Report {
    const LIMIT_BYTES: usize = 64 * 1024;
    let settings = Settings::default().max_message_size(LIMIT_BYTES);
    let mut st = Stage::new::<R>(settings, Config::default()).await;
    let close = |code: u16, reason: &[u8]| client_frame(8, &[&code.to_be_bytes()[..], reason].concat());
    let mut split_utf8 = with_first(client_frame(1, b"ab\xF0\x9F"), 0, 0x80);
    split_utf8.extend(with_first(client_frame(0, b"\x98("), 0, 0x80)); // the final fragment is never sent
    let mut grow = with_first(client_frame(2, &[1; 16]), 0, 0x80);
    for _ in 0..(2 * LIMIT_BYTES / 16) {
        grow.extend(with_first(client_frame(0, &[1; 16]), 0, 0x80));
    }
    let mut tries: Vec<(String, Vec<u8>, u16)> = vec![
        ("unmasked client frame".into(), vec![0x82, 0x01, 0x00], 1002),
        ("reserved data opcode 0x3".into(), client_frame(0x3, b"x"), 1002),
        ("reserved control opcode 0xB".into(), client_frame(0xB, b""), 1002),
        ("RSV1 set, no extension negotiated".into(), with_first(client_frame(2, b"x"), 0x40, 0), 1002),
        ("RSV2 and RSV3 set".into(), with_first(client_frame(2, b"x"), 0x30, 0), 1002),
        ("Ping of 126 bytes".into(), client_frame(9, &[0; 126]), 1002),
        ("fragmented Ping (FIN clear)".into(), with_first(client_frame(9, b"x"), 0, 0x80), 1002),
        ("continuation frame without a start".into(), client_frame(0, b"x"), 1002),
        ("invalid UTF-8 in a text frame".into(), client_frame(1, b"ok \xff\xfe"), 1007),
        ("invalid UTF-8 split across two fragments, the last fragment never sent".into(), split_utf8, 1007),
        ("Close with a 1-byte body".into(), client_frame(8, &[3]), 1002),
        ("invalid UTF-8 in a Close reason".into(), close(1000, b"\xc3\x28"), 1007),
        ("frame header announcing 2^63-1 bytes (no payload sent)".into(), header_only(2, (1 << 63) - 1), 1009),
        (format!("a message growing past its limit ({} KiB) in 16-byte fragments", LIMIT_BYTES / 1024), grow, 1009),
    ];
    const INVALID_CODES: [u16; 10] = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535];
    for code in INVALID_CODES {
        tries.push((format!("Close with invalid code {code}"), close(code, b""), 1002));
    }
    let mut report = Report::default();
    let mut invalid_codes = Vec::new();
    for (tried, bytes, expected) in tries {
        let before = memory_kib().0;
        let (mut tcp, id) = st.raw_client().await;
        let _ = within(tcp.write_all(&bytes)).await; // the server may stop reading early
        let out = read_until_close(&mut tcp).await;
        let (code, _) = close_in(&out).unwrap_or_else(|| panic!("{tried}: no Close frame in {out:?}"));
        assert_eq!(code, expected, "{tried}");
        let error = st.error_then_close(id, expected).await;
        if expected == 1009 {
            // Refused on the header: the size it saw is at most one fragment past the limit.
            if let Some(size) = error.split("message of ").nth(1).and_then(|s| s.split(' ').next()) {
                let size: usize = size.parse().unwrap();
                assert!(size <= LIMIT_BYTES + 16 || size == (1 << 63) - 1, "{error}");
            }
        }
        read_to_end(&mut tcp).await;
        let grew = memory_kib().0.saturating_sub(before);
        st.bystander_served().await;
        let memory = if expected == 1009 { format!("; process RSS +{grew} KiB") } else { String::new() };
        if tried.starts_with("Close with invalid code") {
            invalid_codes.push((code, error));
            continue;
        }
        report.row(tried, format!("close {code} (\"{error}\"), on_error then on_close({code}) once{memory}"));
    }
    assert_eq!(invalid_codes.len(), INVALID_CODES.len());
    assert!(invalid_codes.iter().all(|(code, _)| *code == 1002));
    report.row(
        format!("Close with an invalid code: {INVALID_CODES:?}"),
        format!(
            "close 1002 for each (e.g. \"{}\"), on_error then on_close(1002) once",
            invalid_codes.last().map_or("", |(_, e)| e.as_str())
        ),
    );
    st.finish().await;
    report
}

// ----- bad input: floods -----

/// A client sending Pings as fast as it can and never reading: the server
/// stops reading it once its Pongs queue up (bounded), the others go on.
pub async fn ping_flood_without_reading<R: Runtime>() -> Report {
    const CAP: usize = 128 << 20;
    let mut st = Stage::new::<R>(Settings::default(), Config::default()).await;
    let (tcp, id) = st.raw_client().await;
    let conn = registered(&st.ws, id).await;
    let batch: Vec<u8> = client_frame(9, &[7; 125]).repeat(512);
    let (mut sent, mut peak, mut stalled) = (0usize, 0usize, false);
    let mut w = &tcp;
    while sent < CAP {
        let write = async { Some(w.write_all(&batch).await.is_ok()) };
        let stall = async {
            async_io::Timer::after(Duration::from_millis(500)).await;
            None
        };
        peak = peak.max(conn.queued_bytes());
        match futures_lite::future::or(write, stall).await {
            Some(true) => sent += batch.len(),
            Some(false) => panic!("the server dropped the ping flooder"),
            None => {
                stalled = true;
                break;
            }
        }
    }
    peak = peak.max(conn.queued_bytes());
    // Reading pauses beyond READ_PAUSE unsent bytes; one read (its buffer
    // asks for READ_MAX, `BytesMut` may round the block up to twice that)
    // can add the Pongs of that many bytes of Pings.
    let bound = crest_driver::wire::READ_PAUSE + 2 * crest_driver::wire::READ_MAX + 64 * 1024;
    assert!(stalled, "the server read {} of Pings it could not answer", mib(sent));
    assert!(peak <= bound, "{peak} bytes of Pongs queued (bound {bound})");
    st.bystander_served().await;
    drop(tcp);
    assert!(matches!(st.next_of(id).await, Ev::Error(..) | Ev::Close(_, 1006, _)));
    st.finish().await;
    let mut report = Report::default();
    report.row(
        "a client sending 125-byte Pings as fast as it can, never reading",
        format!(
            "the server stopped reading it after {} of Pings; its queued Pongs peaked at {} KiB (bound {} KiB); \
             bystander served",
            mib(sent),
            peak / 1024,
            bound / 1024
        ),
    );
    report
}

/// 10,000 one-byte frames in one write: every one echoed, in order.
pub async fn thousands_of_tiny_frames_in_one_read<R: Runtime>() -> Report {
    const FRAMES: usize = 10_000;
    let mut st = Stage::new::<R>(Settings::default(), Config::default()).await;
    let (mut tcp, id) = st.raw_client().await;
    let bytes: Vec<u8> = (0..FRAMES).flat_map(|i| client_frame(2, &[i as u8])).collect();
    let start = Instant::now();
    raw_write(&mut tcp, &bytes).await;
    let mut echo = vec![0u8; FRAMES * 3];
    within(tcp.read_exact(&mut echo)).await.unwrap();
    let took = start.elapsed();
    let expected: Vec<u8> = (0..FRAMES).flat_map(|i| [0x82, 1, i as u8]).collect();
    assert!(echo == expected, "the echoes differ");
    for _ in 0..FRAMES {
        assert_eq!(st.next_of(id).await, Ev::Binary(id, 1));
    }
    drop(tcp);
    assert_eq!(st.next_of(id).await, Ev::Close(id, 1006, String::new()));
    st.finish().await;
    let mut report = Report::default();
    report.row(
        format!("{FRAMES} one-byte frames ({} KiB) in one write", bytes.len() / 1024),
        format!("all {FRAMES} delivered to on_binary and echoed in order in {took:.2?}"),
    );
    report
}

/// Peers that connect and never speak: all dropped by the handshake timeout.
pub async fn silent_peers_are_dropped<R: Runtime>() -> Report {
    const PEERS: usize = 200;
    let mut st = Stage::new::<R>(Settings::default(), handshake_config()).await;
    let start = Instant::now();
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        peers.push(raw_connect(st.addr()).await);
    }
    let ends = futures_util::future::join_all(peers.iter().map(|tcp| async move {
        let mut all = Vec::new();
        let mut r = tcp;
        let _ = within(r.read_to_end(&mut all)).await;
        (all.len(), start.elapsed())
    }))
    .await;
    assert!(ends.iter().all(|(n, _)| *n == 0), "a silent peer got an answer");
    let first = ends.iter().map(|e| e.1).min().unwrap();
    let last = ends.iter().map(|e| e.1).max().unwrap();
    assert!(first >= HANDSHAKE_TIMEOUT, "dropped after {first:?}");
    assert!(last < HANDSHAKE_TIMEOUT + Duration::from_secs(5), "dropped only after {last:?}");
    st.bystander_served().await;
    st.finish().await;
    let mut report = Report::default();
    report.row(
        format!("{PEERS} peers that connect and never send a byte"),
        format!("all dropped between {first:.2?} and {last:.2?} (timeout {HANDSHAKE_TIMEOUT:?}); bystander served"),
    );
    report
}

// ----- faults and load -----

/// One client stops reading while the server broadcasts 64 KiB messages:
/// the documented slow-consumer policy applies (`QueueFull`, then dropped
/// with 1006), its queue never passes the limit, and the others receive
/// everything, at about the speed they had without it.
pub async fn slow_reader_during_broadcast<R: Runtime>() -> Report {
    const MESSAGE: usize = 64 * 1024;
    const ROUND: usize = 100;
    const MAX_ROUNDS: usize = 400; // 25 MiB: far past any socket buffers
    const FAST: usize = 4;
    const QUEUE: usize = 1 << 20;
    let _heavy = heavy().await;
    let ws = WebSocketServer::with_settings(Settings::default().max_queued_bytes(QUEUE));
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..FAST {
        let mut p = peer(&server.url("/ws")).await;
        next_connect(&events).await;
        let counter = received.clone();
        readers.push(R::spawn(async move {
            loop {
                match p.next().await {
                    Some(Ok(TMessage::Binary(b))) => assert_eq!(b.len(), MESSAGE),
                    Some(Ok(TMessage::Text(t))) if t.as_str() == "end" => return p,
                    other => panic!("{other:?}"),
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let payload = Bytes::from(vec![7u8; MESSAGE]);
    // Broadcasts `ROUND` messages (or, with a slow peer, until it is dropped
    // and `ROUND` more), paced by the fast readers as a producer would be;
    // returns the messages sent, the time the readers took to get them and
    // the slow peer's peak queue.
    let broadcast = |slow: Option<Conn>| {
        let (ws, payload, received) = (ws.clone(), payload.clone(), received.clone());
        async move {
            let start = Instant::now();
            let first = received.load(Ordering::Relaxed);
            let (mut sent, mut peak, mut until) = (0, 0, ROUND);
            let slow_id = slow.as_ref().map(Conn::id);
            while sent < until {
                ws.broadcast_binary(payload.clone());
                sent += 1;
                futures_lite::future::yield_now().await;
                while ws.connections().iter().any(|c| c.queued_bytes() > 4 * MESSAGE && Some(c.id()) != slow_id) {
                    futures_lite::future::yield_now().await;
                }
                if let Some(s) = &slow {
                    peak = peak.max(s.queued_bytes());
                    if s.is_open() {
                        assert!(sent < MAX_ROUNDS, "the non-reader was never dropped");
                        until = sent + ROUND;
                    }
                }
            }
            let target = first + sent * FAST;
            let waiting = Instant::now();
            while received.load(Ordering::Relaxed) < target {
                assert!(waiting.elapsed() < LIMIT, "the readers got {} of {target}", received.load(Ordering::Relaxed));
                async_io::Timer::after(Duration::from_millis(1)).await;
            }
            (sent, start.elapsed(), peak)
        }
    };
    let (sent_alone, alone, _) = within(broadcast(None)).await;
    let slow_tcp = raw_ws(server.addr, "/ws").await; // never reads
    socket2::SockRef::from(slow_tcp.get_ref()).set_recv_buffer_size(4096).unwrap();
    let slow_id = next_connect(&events).await;
    let slow = registered(&ws, slow_id).await;
    let (sent_slow, with_slow, peak) = within(broadcast(Some(slow))).await;
    match next_ev(&events).await {
        Ev::Error(id, e) => assert!(id == slow_id && e.contains("slow consumer"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next_ev(&events).await, Ev::Close(slow_id, 1006, String::new()));
    assert_eq!(ws.broadcast("end"), FAST);
    for r in readers {
        drop(within(r).await);
    }
    let total = sent_alone + sent_slow;
    assert_eq!(received.load(Ordering::Relaxed), total * FAST, "the readers got everything");
    assert!(peak <= QUEUE, "the slow peer's queue reached {peak} bytes (limit {QUEUE})");
    let rate = |n: usize, d: Duration| (n * FAST * MESSAGE) as f64 / d.as_secs_f64() / f64::from(1 << 20);
    let (r_alone, r_slow) = (rate(sent_alone, alone), rate(sent_slow, with_slow));
    // Loose (a shared 2-core machine): a server that waited for the slow
    // socket would stall the readers outright.
    assert!(r_slow * 10.0 >= r_alone, "the readers slowed from {r_alone:.0} to {r_slow:.0} MiB/s");
    drop(slow_tcp);
    let live = server.shutdown.clone();
    eventually("every connection is gone", || live.live() == 0).await;
    server.stop().await;
    let mut report = Report::default();
    report.row(
        format!(
            "broadcasts of 64 KiB to {FAST} reading clients, then again with one more client that never reads \
             (queue limit {} KiB)",
            QUEUE / 1024
        ),
        format!(
            "the non-reader's queue peaked at {} KiB, then QueueFull and on_close(1006) as documented; the readers \
             got all {} messages: {r_alone:.0} MiB/s in all without the non-reader, {r_slow:.0} MiB/s with it",
            peak / 1024,
            total * FAST
        ),
    );
    report
}

/// Connections dropped abruptly, 250 of each kind at once: no entry, task
/// or slot leaked, `on_close(1006)` exactly once per opened connection.
pub async fn abrupt_drops_by_the_thousand<R: Runtime>() -> Report {
    const BATCH: usize = 250;
    let _heavy = heavy().await;
    let ws = WebSocketServer::with_settings(Settings::default().max_connections(BATCH));
    let closes = Arc::new(Mutex::new(HashMap::<u64, Vec<u16>>::new()));
    let opened = Arc::new(AtomicUsize::new(0));
    let o = opened.clone();
    ws.on_connect(move |conn| {
        o.fetch_add(1, Ordering::Relaxed);
        if conn.path() == "/closing" {
            let _ = conn.close(1000, "bye");
        }
    });
    let c = closes.clone();
    ws.on_close(move |conn, code, _| c.lock().unwrap().entry(conn.id().get()).or_default().push(code.0));
    let server = R::serve(AppSpec::new().route("/ws", &ws).route("/closing", &ws)).await;
    let addr = server.addr;
    let before = memory_kib().0;
    let start = Instant::now();
    let head = upgrade_head("/ws", "");
    let live = server.shutdown.clone();
    // Each batch fills the connection limit: the next starts once it is gone.
    let gone = || eventually("the batch's tasks have ended", || live.live() == 0);

    // Mid-handshake: half a request, then gone.
    let half = &head.as_bytes()[..head.len() / 2];
    futures_util::future::join_all((0..BATCH).map(|_| async move {
        let mut tcp = raw_connect(addr).await;
        raw_write(&mut tcp, half).await;
    }))
    .await;
    gone().await;
    // Mid-frame: half of a 100-byte frame.
    let frame = client_frame(2, &[5; 100]);
    let frame = &frame[..50];
    futures_util::future::join_all((0..BATCH).map(|_| async move {
        let mut tcp = raw_ws(addr, "/ws").await;
        raw_write(&mut tcp, frame).await;
    }))
    .await;
    gone().await;
    // Mid-close: the server's Close arrives, the peer leaves without answering.
    futures_util::future::join_all((0..BATCH).map(|_| async move {
        let (mut tcp, mut out) = raw_exchange(addr, upgrade_head("/closing", "")).await;
        assert!(out.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&out));
        let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        out.drain(..end);
        if close_in(&out).is_none() {
            out.extend(read_until_close(&mut tcp).await);
        }
        assert_eq!(close_in(&out).map(|c| c.0), Some(1000));
    }))
    .await;
    gone().await;
    // Reset: SO_LINGER 0, then close (an RST instead of a FIN).
    futures_util::future::join_all((0..BATCH).map(|_| async move {
        let mut tcp = raw_ws(addr, "/ws").await;
        raw_write(&mut tcp, &frame[..3]).await;
        socket2::SockRef::from(tcp.get_ref()).set_linger(Some(Duration::ZERO)).unwrap();
    }))
    .await;
    gone().await;

    let took = start.elapsed();
    assert_eq!(ws.connection_count(), 0);
    let opened = opened.load(Ordering::Relaxed);
    assert_eq!(opened, 3 * BATCH, "the half-handshakes never open, the others all do");
    let closes = std::mem::take(&mut *closes.lock().unwrap());
    assert_eq!(closes.len(), opened, "on_close for every opened connection");
    assert!(closes.values().all(|codes| codes == &[1006]), "on_close exactly once with 1006");
    // No slot leaked: a full batch fits again.
    let again = futures_util::future::join_all((0..BATCH).map(|_| raw_ws(addr, "/ws"))).await;
    assert_eq!(again.len(), BATCH);
    eventually("a full batch is open again", || ws.connection_count() == BATCH).await;
    drop(again);
    eventually("the last batch has ended", || live.live() == 0).await;
    let grew = memory_kib().0.saturating_sub(before);
    server.stop().await;
    let mut report = Report::default();
    report.row(
        format!(
            "{} connections dropped abruptly, {BATCH} at once of each: mid-handshake, mid-frame, mid-close (after \
             the server's Close), by RST",
            4 * BATCH
        ),
        format!(
            "all gone in {took:.2?}: 0 sessions and 0 registry entries left, on_close(1006) exactly once for each of \
             the {opened} opened, none for the half-handshakes; then {BATCH} new connections fit the limit of \
             {BATCH} (no slot leaked); process RSS +{grew} KiB"
        ),
    );
    report
}

/// Peers that get the server's Close and neither answer it nor close TCP
/// (a half-dead client): dropped when `close_timeout` passes, with
/// `on_error` (timeout) then `on_close(1006)`, nothing left behind.
pub async fn close_never_answered<R: Runtime>() -> Report {
    const PEERS: usize = 50;
    const TIMEOUT: Duration = Duration::from_millis(300);
    let config = Config { close_timeout: Some(TIMEOUT), ..Config::default() };
    let mut st = Stage::new::<R>(Settings::default().config(config), Config::default()).await;
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let (tcp, id) = st.raw_client().await;
        registered(&st.ws, id).await.close(1000, "bye").unwrap();
        peers.push((tcp, id));
    }
    let start = Instant::now();
    for (tcp, _) in &mut peers {
        let out = read_to_end(tcp).await; // the Close, then the server's EOF: never answered
        assert_eq!(close_in(&out).map(|c| c.0), Some(1000));
    }
    let took = start.elapsed();
    let ids: Vec<u64> = peers.iter().map(|(_, id)| *id).collect();
    let mut error = String::new();
    for (id, evs) in st.events_of(&ids, 2).await {
        match &evs[..] {
            [Ev::Error(_, e), Ev::Close(_, 1006, _)] if e.contains("timed out") => error.clone_from(e),
            other => panic!("connection {id}: {other:?}"),
        }
    }
    assert!(took >= TIMEOUT - Duration::from_millis(50), "dropped after {took:?}");
    st.bystander_served().await;
    drop(peers);
    st.finish().await;
    let mut report = Report::default();
    report.row(
        format!(
            "{PEERS} peers that get the server's Close and neither answer nor close TCP (close timeout {TIMEOUT:?})"
        ),
        format!("all dropped within {took:.2?}: \"{error}\", then on_close(1006) once each; bystander served"),
    );
    report
}

// ----- 10,000 connections (clients in a child process) -----

static CLIENTS: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();

/// How to start the client process of [`ten_thousand_connections`]: a
/// program and the arguments before its own (the test target passes the
/// `reliability-clients` binary; the report binary, itself with
/// `--clients`).
pub fn set_clients_command(program: impl Into<PathBuf>, args: &[&str]) {
    let _ = CLIENTS.set((program.into(), args.iter().map(|a| (*a).to_owned()).collect()));
}

/// The connections of [`ten_thousand_connections`].
pub const CONNECTIONS: usize = 10_000;
/// Messages each of them sends (and gets back).
pub const MESSAGES: usize = 10;

/// Raises this process's soft limit of open files to its hard limit;
/// returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// 10,000 concurrent connections (clients in a child process, so each
/// process holds ~10,000 descriptors), each echoing 10 messages: every one
/// accounted for, in order, none lost or duplicated.
pub async fn ten_thousand_connections<R: Runtime>() -> Report {
    let _heavy = heavy().await;
    let limit = raise_fd_limit();
    assert!(
        limit >= CONNECTIONS as u64 + 200,
        "{CONNECTIONS} connections need {} open files per process; the hard limit is {limit} (raise it: ulimit -Hn)",
        CONNECTIONS + 200
    );
    let (program, args) = CLIENTS.get().cloned().expect("set_clients_command was not called");
    let ws = WebSocketServer::new();
    let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]);
    let c = counts.clone();
    ws.on_connect(move |_| {
        c[0].fetch_add(1, Ordering::Relaxed);
    });
    let c = counts.clone();
    ws.on_message(move |conn, text| {
        c[1].fetch_add(1, Ordering::Relaxed);
        let _ = conn.send(text);
    });
    let c = counts.clone();
    ws.on_close(move |_, code, _| {
        if code.0 == 1000 {
            c[2].fetch_add(1, Ordering::Relaxed);
        }
    });
    let server = serve_ws::<R>(&ws).await;
    let before = memory_kib().0;
    let start = Instant::now();
    let mut child = Command::new(&program)
        .args(&args)
        .args([server.addr.to_string(), CONNECTIONS.to_string(), MESSAGES.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = async_channel::unbounded();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send_blocking(line);
        }
    });
    let next_line = || async { within(lines.recv()).await.expect("the client process ended early") };
    let line = next_line().await;
    assert_eq!(line, format!("connected {CONNECTIONS}"), "client process: {line}");
    let connected = start.elapsed();
    let live = server.shutdown.clone();
    eventually("every connection is registered", || ws.connection_count() == CONNECTIONS).await;
    let held = memory_kib().0.saturating_sub(before);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    let line = next_line().await;
    let expected = format!("done received={} in_order=true", CONNECTIONS * MESSAGES);
    assert_eq!(line, expected, "client process: {line}");
    let exchanged = start.elapsed() - connected;
    assert!(child.wait().unwrap().success());
    eventually("every connection has ended", || live.live() == 0).await;
    assert_eq!(ws.connection_count(), 0);
    assert_eq!(counts[0].load(Ordering::Relaxed), CONNECTIONS);
    assert_eq!(counts[1].load(Ordering::Relaxed), CONNECTIONS * MESSAGES, "every message reached the server once");
    assert_eq!(counts[2].load(Ordering::Relaxed), CONNECTIONS, "every connection closed with 1000");
    server.stop().await;
    let mut report = Report::default();
    report.row(
        format!(
            "{CONNECTIONS} concurrent connections (clients in a child process), each sending {MESSAGES} messages and \
             reading the echoes, then closing"
        ),
        format!(
            "{CONNECTIONS} held at once (connected in {connected:.2?}, server RSS +{:.1} MiB, {} B per connection); \
             {} messages each way in {exchanged:.2?}, none lost, duplicated or reordered; all closed with 1000",
            held as f64 / 1024.0,
            held * 1024 / CONNECTIONS as u64,
            CONNECTIONS * MESSAGES
        ),
    );
    report
}

/// The client process of [`ten_thousand_connections`]: `ADDR CONNECTIONS
/// MESSAGES`. Connects every client (at most 256 handshakes in flight),
/// prints `connected N`, waits for a line on stdin, then every client sends
/// its messages and checks their echoes; prints `done received=N
/// in_order=true`, closes every connection and exits.
pub fn clients_main(args: &[String]) {
    let [addr, n, messages] = args else { panic!("usage: ADDR CONNECTIONS MESSAGES") };
    let (addr, n, messages): (SocketAddr, usize, usize) =
        (addr.parse().unwrap(), n.parse().unwrap(), messages.parse().unwrap());
    raise_fd_limit();
    smol::block_on(async {
        let (tokens, permits) = async_channel::bounded(256);
        let mut clients = Vec::new();
        for _ in 0..n {
            tokens.send(()).await.unwrap();
            let permits = permits.clone();
            clients.push(smol::spawn(async move {
                let tcp = raw_ws(addr, "/ws").await;
                permits.recv().await.unwrap();
                tcp
            }));
        }
        let mut conns = Vec::new();
        for c in clients {
            conns.push(c.await);
        }
        println!("connected {}", conns.len());
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        let exchanges: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut tcp)| {
                smol::spawn(async move {
                    let frames: Vec<Vec<u8>> =
                        (0..messages).map(|m| format!("client {i} message {m}").into_bytes()).collect();
                    let out: Vec<u8> = frames.iter().flat_map(|f| client_frame(1, f)).collect();
                    raw_write(&mut tcp, &out).await;
                    let expected: usize = frames.iter().map(|f| 2 + f.len()).sum();
                    let mut echo = vec![0u8; expected];
                    within(tcp.read_exact(&mut echo)).await.unwrap();
                    let got = server_frames(&echo);
                    let in_order =
                        got.len() == messages && got.iter().zip(&frames).all(|((b0, p), f)| *b0 == 0x81 && p == f);
                    raw_write(&mut tcp, &client_frame(8, &1000u16.to_be_bytes())).await;
                    let rest = read_to_end(&mut tcp).await;
                    assert_eq!(close_in(&rest).map(|c| c.0), Some(1000));
                    (got.len(), in_order)
                })
            })
            .collect();
        let (mut received, mut in_order) = (0, true);
        for e in exchanges {
            let (n, ok) = e.await;
            received += n;
            in_order &= ok;
        }
        println!("done received={received} in_order={in_order}");
    });
}

// ----- close correctness -----

/// Messages queued before `close()` arrive before the Close frame; Closes
/// started by both sides at once end cleanly on both.
pub async fn close_under_load<R: Runtime>() -> Report {
    const CLIENTS: usize = 50;
    const QUEUED: usize = 1000;
    let ws = WebSocketServer::new();
    ws.on_message(|conn, text| match &*text {
        "burst" => {
            for i in 0..QUEUED {
                let _ = conn.send(format!("{i}"));
            }
            let _ = conn.close(1000, "after the burst");
        }
        "close now" => drop(conn.close(1000, "server")),
        _ => {}
    });
    let errors = Arc::new(AtomicUsize::new(0));
    let e = errors.clone();
    ws.on_error(move |_, _| {
        e.fetch_add(1, Ordering::Relaxed);
    });
    let closes = Arc::new(Mutex::new(HashMap::<u64, Vec<u16>>::new()));
    let c = closes.clone();
    ws.on_close(move |conn, code, _| c.lock().unwrap().entry(conn.id().get()).or_default().push(code.0));
    let server = serve_ws::<R>(&ws).await;
    let url = server.url("/ws");
    let mut report = Report::default();

    // 1. A burst then close(), on 50 connections at once.
    let results = futures_util::future::join_all((0..CLIENTS).map(|_| async {
        let mut p = peer(&url).await;
        send_text(&mut p, "burst").await;
        for i in 0..QUEUED {
            assert_eq!(next_text(&mut p).await, format!("{i}"), "message {i} before the Close");
        }
        finish_close(&mut p).await
    }))
    .await;
    assert!(results.iter().all(|r| *r == (1000, "after the burst".to_owned())));
    report.row(
        format!("{CLIENTS} connections at once: the server queues {QUEUED} messages, then calls close()"),
        format!("each client got all {QUEUED} messages in order, then Close 1000 ({} messages)", CLIENTS * QUEUED),
    );

    // 2. Both sides close at once: the client's Close is in the same packet
    //    as the message that makes the server close.
    let addr = server.addr;
    let outs = futures_util::future::join_all((0..CLIENTS).map(|_| async move {
        let mut tcp = raw_ws(addr, "/ws").await;
        let mut bytes = client_frame(1, b"close now");
        bytes.extend(client_frame(8, &[&1000u16.to_be_bytes()[..], b"client"].concat()));
        raw_write(&mut tcp, &bytes).await;
        let out = read_to_end(&mut tcp).await; // the server's Close, then its EOF
        close_in(&out)
    }))
    .await;
    assert!(outs.iter().all(|c| *c == Some((1000, b"server".to_vec()))), "{outs:?}");
    // 3. The same with our client: both call close() in on_connect.
    let (tx, client_closes) = async_channel::unbounded();
    let client = WebSocketClient::new();
    client.on_connect(|conn| drop(conn.close(1000, "client")));
    client.on_close(move |_, code, _| {
        let _ = tx.try_send(code.0);
    });
    let both = WebSocketServer::new();
    both.on_connect(|conn| drop(conn.close(1000, "server")));
    let e = errors.clone();
    both.on_error(move |_, _| {
        e.fetch_add(1, Ordering::Relaxed);
    });
    let c = closes.clone();
    both.on_close(move |conn, code, _| c.lock().unwrap().entry(conn.id().get()).or_default().push(code.0));
    let server2 = serve_ws::<R>(&both).await;
    for _ in 0..CLIENTS {
        let conn = within(R::connect(&client, &server2.url("/ws"))).await.unwrap();
        assert_eq!(within(client_closes.recv()).await.unwrap(), 1000);
        drop(conn);
    }
    let (live, live2) = (server.shutdown.clone(), server2.shutdown.clone());
    eventually("every connection has ended", || live.live() == 0 && live2.live() == 0).await;
    assert!(client_closes.try_recv().is_err(), "the client's on_close ran more than once");
    assert_eq!(errors.load(Ordering::Relaxed), 0, "on_error during a clean close");
    let closes = std::mem::take(&mut *closes.lock().unwrap());
    assert_eq!(closes.len(), 3 * CLIENTS);
    assert!(closes.values().all(|c| c == &[1000]), "on_close once with 1000: {closes:?}");
    report.row(
        format!("{CLIENTS} raw clients and {CLIENTS} crest clients close at the same moment as the server"),
        "both ends got the other's Close 1000 and EOF; on_close once with 1000 on both sides, no on_error",
    );
    server.stop().await;
    server2.stop().await;
    report
}

/// Shutdown while the server streams to 20 clients: each gets every
/// message `send` accepted before the shutdown began, then Close 1001.
pub async fn graceful_shutdown_with_traffic<R: Runtime>() -> Report {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 300;
    let ws = WebSocketServer::new();
    ws.on_connect(|conn| drop(conn.send(format!("id {}", conn.id()))));
    let server = serve_ws::<R>(&ws).await;
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let mut p = peer(&server.url("/ws")).await;
        let id: u64 = next_text(&mut p).await.strip_prefix("id ").unwrap().parse().unwrap();
        readers.push((
            id,
            R::spawn(async move {
                let mut n = 0usize;
                loop {
                    match p.next().await {
                        Some(Ok(TMessage::Text(t))) => {
                            assert_eq!(t.as_str(), n.to_string(), "message lost or out of order");
                            n += 1;
                        }
                        Some(Ok(TMessage::Close(f))) => {
                            let code = f.map_or(1005, |f| u16::from(f.code));
                            while let Some(Ok(_)) = p.next().await {}
                            return (n, code);
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }),
        ));
    }
    eventually("every client is registered", || ws.connection_count() == CLIENTS).await;
    let conns = ws.connections();
    let mut accepted: HashMap<u64, usize> = HashMap::new();
    for round in 0..ROUNDS {
        for c in &conns {
            if c.send(format!("{round}")).is_ok() {
                *accepted.entry(c.id().get()).or_default() += 1;
            }
        }
        futures_lite::future::yield_now().await;
    }
    let before_shutdown = accepted.clone();
    let stop = server.stop();
    // Sends racing the shutdown: accepted or refused, never half-done.
    let mut late = 0;
    for c in &conns {
        late += usize::from(c.send(format!("{ROUNDS}")).is_ok());
    }
    within(stop).await;
    let mut total = 0;
    for (id, r) in readers {
        let (n, code) = within(r).await;
        assert_eq!(code, 1001);
        assert!(
            n >= before_shutdown[&id],
            "client {id} got {n} of {} accepted before the shutdown",
            before_shutdown[&id]
        );
        total += n;
    }
    assert_eq!(ws.connection_count(), 0);
    let mut report = Report::default();
    report.row(
        format!("shutdown while streaming {ROUNDS} messages to each of {CLIENTS} clients"),
        format!(
            "every client got Close 1001 after all messages accepted before the shutdown ({total} delivered, \
             {late} of {CLIENTS} sends racing the shutdown accepted and delivered); stop() returned once drained"
        ),
    );
    report
}

// ----- security -----

/// The pre-upgrade hook decides before anything else happens: frames and a
/// second request pipelined after a rejected request are never processed.
pub async fn auth_hook_cannot_be_bypassed<R: Runtime>() -> Report {
    const TRIES: usize = 100;
    let ws = WebSocketServer::new();
    let hooked = Arc::new(AtomicUsize::new(0));
    let h = hooked.clone();
    ws.on_upgrade(move |req, _| {
        h.fetch_add(1, Ordering::Relaxed);
        match req.header("authorization") {
            Some("Bearer good") => Ok(crest_driver::Accept::new()),
            _ => Err(Response::new(401)),
        }
    });
    let events = record_with(&ws, true);
    let server = serve_ws::<R>(&ws).await;
    let mut attack = upgrade_head("/ws", "").into_bytes();
    for i in 0..10 {
        attack.extend(client_frame(1, format!("frame {i}").as_bytes()));
    }
    attack.extend(upgrade_head("/ws", "Authorization: Bearer good\r\n").into_bytes()); // a second request
    attack.extend(client_frame(1, b"smuggled"));
    let addr = server.addr;
    let answers = futures_util::future::join_all((0..TRIES).map(|_| async {
        let mut tcp = raw_connect(addr).await;
        raw_write(&mut tcp, &attack).await;
        String::from_utf8_lossy(&read_to_end(&mut tcp).await).into_owned()
    }))
    .await;
    for a in &answers {
        assert!(a.starts_with("HTTP/1.1 401 "), "{a}");
        assert_eq!(a.matches("HTTP/1.1").count(), 1, "the pipelined request was answered: {a}");
    }
    assert_eq!(hooked.load(Ordering::Relaxed), TRIES, "the hook ran once per connection");
    assert!(events.try_recv().is_err(), "a callback ran for a rejected connection");
    // The accepted case, pipelined the same way: frames processed after the accept.
    let mut ok = upgrade_head("/ws", "Authorization: Bearer good\r\n").into_bytes();
    ok.extend(client_frame(1, b"hello"));
    let mut tcp = raw_connect(addr).await;
    raw_write(&mut tcp, &ok).await;
    let id = next_connect(&events).await;
    assert_eq!(next_ev(&events).await, Ev::Text(id, "hello".into()));
    let mut echo = Vec::new();
    while !echo.ends_with(b"\x81\x05hello") {
        let mut chunk = [0u8; 1024];
        let n = within(tcp.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "no echo");
        echo.extend_from_slice(&chunk[..n]);
    }
    drop(tcp);
    assert_eq!(next_ev(&events).await, Ev::Close(id, 1006, String::new()));
    server.stop().await;
    let mut report = Report::default();
    report.row(
        format!("{TRIES} unauthenticated upgrades, each pipelined with 10 frames and a second, authenticated request"),
        "each answered `HTTP/1.1 401 Unauthorized` once and closed: the hook ran 100 times, no callback ran, the \
         pipelined frames and request were never processed; an authenticated request's pipelined frame arrived \
         after on_connect",
    );
    report
}

/// The allowed-origins check: 403 for every other origin, however dressed up.
pub async fn origin_check<R: Runtime>() -> Report {
    let ws = WebSocketServer::with_settings(Settings::default().allow_origin("https://chat.example"));
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut report = Report::default();
    let tries = [
        ("https://evil.example", 403),
        ("null", 403),
        ("https://chat.example.evil.example", 403),
        ("https://chat.example:8443", 403),
        ("http://chat.example", 403),
        ("https://CHAT.example", 101),
        ("https://chat.example", 101),
    ];
    for (origin, expected) in tries {
        let mut head = upgrade_head("/ws", &format!("Origin: {origin}\r\n")).into_bytes();
        head.extend(client_frame(1, b"pipelined"));
        let (tcp, response) = raw_request(server.addr, &head).await;
        assert_eq!(status(&response), expected, "{origin}: {response}");
        if expected == 101 {
            let id = next_connect(&events).await;
            assert_eq!(next_ev(&events).await, Ev::Text(id, "pipelined".into()));
            drop(tcp);
            assert_eq!(next_ev(&events).await, Ev::Close(id, 1006, String::new()));
        }
        report
            .row(format!("Origin: {origin} (allowed: https://chat.example)"), format!("`{}`", status_line(&response)));
    }
    let (tcp, response) = raw_request(server.addr, upgrade_head("/ws", "")).await;
    assert_eq!(status(&response), 101);
    let id = next_connect(&events).await;
    drop(tcp);
    assert_eq!(next_ev(&events).await, Ev::Close(id, 1006, String::new()));
    report.row("no Origin (a non-browser client)", format!("`{}`, as documented", status_line(&response)));
    assert!(events.try_recv().is_err(), "a callback ran for a refused origin");
    server.stop().await;
    report
}

/// Limits the server set hold whatever the peer offers or announces.
pub async fn limits_the_peer_cannot_lift<R: Runtime>() -> Report {
    const MAX: usize = 64 * 1024;
    let mut st = Stage::new::<R>(Settings::default().max_message_size(MAX), Config::default()).await;
    let mut report = Report::default();

    // An extension offer the server does not have: not accepted, and RSV1 stays a violation.
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_max_window_bits=15\r\n";
    let (mut tcp, response) = raw_request(st.addr(), upgrade_head("/ws", offer)).await;
    assert_eq!(status(&response), 101);
    assert!(!response.to_ascii_lowercase().contains("sec-websocket-extensions"), "{response}");
    let id = st.next_connect().await;
    raw_write(&mut tcp, &with_first(client_frame(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00"), 0x40, 0)).await;
    assert_eq!(close_in(&read_until_close(&mut tcp).await).map(|c| c.0), Some(1002));
    st.error_then_close(id, 1002).await;
    read_to_end(&mut tcp).await; // the server closes (no lingering for our EOF)
    drop(tcp);
    report.row(
        "offering permessage-deflate (not enabled), then sending a compressed (RSV1) frame",
        "101 without Sec-WebSocket-Extensions, then close 1002 for the RSV1 frame",
    );

    // One byte over the limit, announced in the header: refused before the payload.
    let (mut tcp, id) = st.raw_client().await;
    let mut header = client_frame(2, &vec![0; MAX + 1]);
    header.truncate(header.len() - (MAX + 1));
    raw_write(&mut tcp, &header).await;
    assert_eq!(close_in(&read_until_close(&mut tcp).await).map(|c| c.0), Some(1009));
    st.error_then_close(id, 1009).await;
    read_to_end(&mut tcp).await;
    drop(tcp);
    report.row(
        format!("a frame header announcing {} bytes (limit {MAX}), payload never sent", MAX + 1),
        "close 1009 on the header alone",
    );

    // Pings the peer cannot enlarge, and a Pong nobody asked for changes nothing.
    let (mut tcp, id) = st.raw_client().await;
    raw_write(&mut tcp, &client_frame(10, b"unsolicited")).await;
    raw_write(&mut tcp, &client_frame(1, b"after the pong")).await;
    let mut echo = vec![0u8; 16];
    within(tcp.read_exact(&mut echo)).await.unwrap();
    assert_eq!(&echo, b"\x81\x0eafter the pong");
    assert_eq!(st.next_of(id).await, Ev::Text(id, "after the pong".into()));
    drop(tcp);
    assert_eq!(st.next_of(id).await, Ev::Close(id, 1006, String::new()));
    report.row("an unsolicited Pong, then a message", "Pong ignored (RFC 6455 §5.5.3), the message echoed");
    st.bystander_served().await;
    st.finish().await;
    report
}

/// The maximum-connections setting: excess upgrades get 503 and are closed,
/// the connections already open are unaffected.
pub async fn max_connections<R: Runtime>() -> Report {
    const MAX: usize = 20;
    const EXCESS: usize = 50;
    let ws = WebSocketServer::with_settings(Settings::default().max_connections(MAX));
    let events = record_with(&ws, true);
    let server = serve_ws::<R>(&ws).await;
    let mut peers = Vec::new();
    for _ in 0..MAX {
        peers.push(peer(&server.url("/ws")).await);
        next_connect(&events).await;
    }
    let addr = server.addr;
    let refused = futures_util::future::join_all((0..EXCESS).map(|_| async move {
        let (mut tcp, response) = raw_request(addr, upgrade_head("/ws", "")).await;
        read_to_end(&mut tcp).await;
        response
    }))
    .await;
    assert!(refused.iter().all(|r| r.starts_with("HTTP/1.1 503 ")), "{refused:?}");
    eventually("the open ones are all registered", || ws.connection_count() == MAX).await;
    for (i, p) in peers.iter_mut().enumerate() {
        send_text(p, &format!("still {i}")).await;
        assert_eq!(next_text(p).await, format!("still {i}"));
    }
    drop(peers.pop());
    while !matches!(next_ev(&events).await, Ev::Close(..)) {}
    let (_, response) = raw_request(addr, upgrade_head("/ws", "")).await;
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    drop(peers);
    server.stop().await;
    let mut report = Report::default();
    report.row(
        format!("{EXCESS} upgrades at once on top of {MAX} open connections (limit {MAX})"),
        format!(
            "each of the {EXCESS} answered `{}` and closed; the {MAX} open ones all echoed; after one left, the next \
             upgrade got 101",
            status_line(&refused[0])
        ),
    );
    report
}
