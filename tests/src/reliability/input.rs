//! Bad input: malformed handshakes, frame-level violations, floods.

use super::*;

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
