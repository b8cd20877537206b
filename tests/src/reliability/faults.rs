//! Faults: slow readers, abrupt drops, unanswered Closes, close correctness
//! under load, graceful shutdown with traffic.

use super::*;

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
