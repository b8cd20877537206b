//! Security features: the pre-upgrade hook, allowed origins, limits the
//! peer cannot lift, the connection limit.

use super::*;

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
