//! The behaviour of the callback server on real loopback sockets, checked
//! with tokio-tungstenite (an independent implementation) and raw TCP peers.
//! Every wait is bounded (`common::within`); nothing sleeps to wait for the
//! server.

mod common;

#[path = "../examples/chat/chat.rs"]
mod chat;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use crest_tokio::{Accept, App, Error, Response, Settings, WebSocketServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as TCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use tokio_tungstenite::tungstenite::Message as TMessage;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON {text:?}: {e}"))
}

// ----- the product page's chat -----

#[tokio::test]
async fn welcome_message_on_connect() {
    let server = serve_ws(&chat::chat_server()).await;
    let mut alice = peer(&server.url("/ws")).await;
    assert_eq!(next_text(&mut alice).await, chat::WELCOME);
    assert_eq!(json(chat::WELCOME), json!({"type": "welcome", "message": "Connected!"}));
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn chat_flow_join_message_leave_reach_the_others() {
    let server = serve_ws(&chat::chat_server()).await;
    let mut alice = peer(&server.url("/ws")).await;
    let mut bob = peer(&server.url("/ws")).await;
    next_text(&mut alice).await; // welcome
    next_text(&mut bob).await;

    send_text(&mut alice, r#"{"type":"join","username":"Alice"}"#).await;
    let join = json!({"type": "join", "user": "Alice"});
    assert_eq!(json(&next_text(&mut alice).await), join);
    assert_eq!(json(&next_text(&mut bob).await), join);

    send_text(&mut bob, r#"{"type":"join","username":"Bob"}"#).await;
    assert_eq!(json(&next_text(&mut alice).await)["user"], "Bob");
    next_text(&mut bob).await;

    // Whatever people type arrives intact, as valid JSON.
    let tricky = r#"quotes " and \ backslashes, <b>bold</b>, emoji 😀, {"json": 1}"#;
    send_text(&mut alice, &json!({"type": "message", "text": tricky}).to_string()).await;
    let expected = json!({"type": "message", "user": "Alice", "text": tricky});
    assert_eq!(json(&next_text(&mut bob).await), expected);
    assert_eq!(json(&next_text(&mut alice).await), expected);

    // Not JSON: the message as received.
    send_text(&mut bob, "plain \"text\"").await;
    let expected = json!({"type": "message", "user": "Bob", "text": "plain \"text\""});
    assert_eq!(json(&next_text(&mut alice).await), expected);
    next_text(&mut bob).await;

    within(alice.close(None)).await.unwrap();
    assert_eq!(json(&next_text(&mut bob).await), json!({"type": "leave", "user": "Alice"}));
    drop((alice, bob));
    server.stop().await;
}

// ----- broadcast -----

#[tokio::test]
async fn broadcast_reaches_every_client_exactly_once_in_order() {
    const CLIENTS: usize = 40;
    const MESSAGES: usize = 25;
    let ws = WebSocketServer::new();
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let mut peers = Vec::new();
    for _ in 0..CLIENTS {
        peers.push(peer(&server.url("/ws")).await);
        assert!(matches!(next_ev(&mut events).await, Ev::Connect(_)));
    }
    assert_eq!(ws.connection_count(), CLIENTS);
    for i in 0..MESSAGES {
        assert_eq!(ws.broadcast(format!("text {i}")), CLIENTS);
        assert_eq!(ws.broadcast_binary(vec![i as u8; 1000]), CLIENTS);
    }
    for p in &mut peers {
        for i in 0..MESSAGES {
            assert_eq!(next_text(p).await, format!("text {i}"));
            assert_eq!(next_msg(p).await, TMessage::binary(vec![i as u8; 1000]));
        }
    }
    // The variant skipping one connection.
    let skipped = ws.connections().into_iter().next().unwrap();
    assert_eq!(ws.broadcast_except(&skipped, "not for you"), CLIENTS - 1);
    let mut got = 0;
    for p in &mut peers {
        // Every peer gets either the message or, the skipped one, nothing
        // before the marker that follows.
        ws.connections().iter().for_each(|c| drop(c.send("marker")));
        match next_text(p).await.as_str() {
            "not for you" => {
                got += 1;
                assert_eq!(next_text(p).await, "marker");
            }
            "marker" => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(got, CLIENTS - 1);
    drop(peers);
    server.stop().await;
}

// ----- sizes -----

const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 16 << 20];

async fn echo_server() -> (WebSocketServer, Server) {
    let ws = WebSocketServer::new();
    ws.on_message(|conn, text| drop(conn.send(text)));
    ws.on_binary(|conn, data| drop(conn.send_binary(data)));
    let server = serve_ws(&ws).await;
    (ws, server)
}

#[tokio::test]
async fn text_and_binary_of_every_size_round_trip() {
    let (_ws, server) = echo_server().await;
    let mut p = peer(&server.url("/ws")).await;
    for size in SIZES {
        let text: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        within(p.send(TMessage::text(text.clone()))).await.unwrap();
        assert_eq!(next_text(&mut p).await.len(), size);
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        within(p.send(TMessage::binary(data.clone()))).await.unwrap();
        match next_msg(&mut p).await {
            TMessage::Binary(b) => assert!(b == data, "binary of {size} bytes differs"),
            other => panic!("{other:?}"),
        }
    }
    drop(p);
    server.stop().await;
}

// ----- ping / pong -----

#[tokio::test]
async fn ping_is_answered_and_server_pings_reach_the_client() {
    let ws = WebSocketServer::new();
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    within(p.send(TMessage::Ping(b"are you there"[..].into()))).await.unwrap();
    match within(p.next()).await.unwrap().unwrap() {
        TMessage::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("{other:?}"),
    }
    let Ev::Connect(id) = next_ev(&mut events).await else { panic!() };
    let conn = ws.connections().into_iter().find(|c| c.id().get() == id).unwrap();
    conn.ping(&b"from server"[..]).unwrap();
    match within(p.next()).await.unwrap().unwrap() {
        TMessage::Ping(payload) => assert_eq!(&payload[..], b"from server"),
        other => panic!("{other:?}"),
    }
    drop(p);
    server.stop().await;
}

// ----- closing -----

#[tokio::test]
async fn client_initiated_close_reports_code_and_reason() {
    let ws = WebSocketServer::new();
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    let Ev::Connect(id) = next_ev(&mut events).await else { panic!() };
    let frame = TCloseFrame { code: TCode::from(4000), reason: "bye now".into() };
    within(p.close(Some(frame))).await.unwrap();
    assert_eq!(next_close(&mut p).await.0, 4000, "the server echoes the code");
    assert_eq!(next_ev(&mut events).await, Ev::Close(id, 4000, "bye now".into()));
    assert!(within(p.next()).await.is_none());
    assert_eq!(ws.connection_count(), 0);
    drop(p);
    server.stop().await;
}

#[tokio::test]
async fn server_initiated_close_sends_code_and_reason() {
    let ws = WebSocketServer::new();
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    let Ev::Connect(id) = next_ev(&mut events).await else { panic!() };
    let conn = ws.connections().pop().unwrap();
    conn.send("last words").unwrap();
    conn.close(4001, "server says bye").unwrap();
    assert!(!conn.is_open());
    assert!(matches!(conn.send("too late"), Err(Error::Closed)));
    assert_eq!(next_text(&mut p).await, "last words");
    assert_eq!(finish_close(&mut p).await, (4001, "server says bye".into()));
    // tungstenite echoes the code; the handshake completes on both sides.
    match next_ev(&mut events).await {
        Ev::Close(i, 4001, _) => assert_eq!(i, id),
        other => panic!("{other:?}"),
    }
    drop(p);
    server.stop().await;
}

#[tokio::test]
async fn protocol_violation_calls_on_error_then_on_close_and_sends_1002() {
    let ws = WebSocketServer::new();
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let mut tcp = raw_ws(server.addr, "/ws").await;
    let Ev::Connect(id) = next_ev(&mut events).await else { panic!() };
    // An unmasked frame from a client (RFC 6455 §5.1).
    within(tcp.write_all(&[0x81, 0x02, b'h', b'i'])).await.unwrap();
    assert!(matches!(next_ev(&mut events).await, Ev::Error(i, e) if i == id && e.contains("unmasked")));
    assert_eq!(next_ev(&mut events).await, Ev::Close(id, 1002, String::new()));
    let rest = read_to_end(&mut tcp).await;
    assert_eq!(rest, [0x88, 0x02, 0x03, 0xEA], "close frame 1002, then EOF");
    server.stop().await;
}

#[tokio::test]
async fn transport_eof_without_close_reports_1006_and_no_error() {
    let ws = WebSocketServer::new();
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let tcp = raw_ws(server.addr, "/ws").await;
    let Ev::Connect(id) = next_ev(&mut events).await else { panic!() };
    drop(tcp);
    assert_eq!(next_ev(&mut events).await, Ev::Close(id, 1006, String::new()));
    server.stop().await;
}

// ----- authentication hook and origins -----

#[tokio::test]
async fn auth_hook_rejects_with_401_and_accepts_with_a_subprotocol() {
    let ws = WebSocketServer::new();
    ws.on_upgrade(|req, _peer| {
        if req.header("authorization") != Some("Bearer good") {
            return Err(Response::new(401).header("WWW-Authenticate", "Bearer").body("who are you?"));
        }
        let accept = Accept::new().header("X-Hello", "yes");
        match req.protocols().iter().any(|p| p == "chat.v2") {
            true => Ok(accept.protocol("chat.v2")),
            false => Ok(accept),
        }
    });
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    ws.on_connect(move |conn| {
        let _ = tx.send((
            conn.protocol().map(String::from),
            conn.header("authorization").map(String::from),
            conn.path().to_owned(),
            conn.query().map(String::from),
        ));
    });
    let server = serve_ws(&ws).await;

    // Rejected: no credentials.
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    assert!(head.contains("WWW-Authenticate: Bearer\r\n") && head.ends_with("who are you?"));
    let err = within(tokio_tungstenite::connect_async(server.url("/ws"))).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 401),
        other => panic!("{other:?}"),
    }

    // Accepted, with the subprotocol the client offered.
    let mut req = server.url("/ws?room=7").into_client_request().unwrap();
    req.headers_mut().insert("Authorization", "Bearer good".parse().unwrap());
    req.headers_mut().insert("Sec-WebSocket-Protocol", "chat.v1, chat.v2".parse().unwrap());
    let (_p, response) = within(tokio_tungstenite::connect_async(req)).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
    assert_eq!(response.headers()["x-hello"], "yes");
    let (protocol, auth, path, query) = within(seen.recv()).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("chat.v2"));
    assert_eq!(auth.as_deref(), Some("Bearer good"));
    assert_eq!((path.as_str(), query.as_deref()), ("/ws", Some("room=7")));
    drop(_p);
    server.stop().await;
}

#[tokio::test]
async fn origin_check_refuses_other_sites() {
    let ws = WebSocketServer::with_settings(Settings::default().allow_origin("https://chat.example"));
    let server = serve_ws(&ws).await;
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "Origin: https://evil.example\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "Origin: https://chat.example\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "non-browser clients send no Origin: {head}");
    server.stop().await;
}

// ----- routing -----

#[tokio::test]
async fn pages_404_426_and_websocket_routes() {
    let ws = WebSocketServer::new();
    let mut app = App::new();
    app.route("/ws", &ws).page("/", "<h1>hi</h1>");
    let server = serve(app).await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    let (mut tcp, head) = raw_request(server.addr, &get("/")).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("text/html"), "{head}");
    let mut body = head.split("\r\n\r\n").nth(1).unwrap().as_bytes().to_vec();
    body.extend(read_to_end(&mut tcp).await);
    assert_eq!(body, b"<h1>hi</h1>");
    let (_, head) = raw_request(server.addr, &get("/ws")).await;
    assert!(head.starts_with("HTTP/1.1 426 ") && head.contains("Upgrade: websocket"), "{head}");
    let (_, head) = raw_request(server.addr, &get("/nope")).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (_, head) = raw_request(server.addr, &upgrade_head("/nope", "")).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (_, head) = raw_request(server.addr, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    server.stop().await;
}

#[tokio::test]
async fn max_connections_answers_503() {
    let ws = WebSocketServer::with_settings(Settings::default().max_connections(2));
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let a = peer(&server.url("/ws")).await;
    let _b = peer(&server.url("/ws")).await;
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    // The slot comes back once the server saw the first connection end.
    drop(a);
    while !matches!(next_ev(&mut events).await, Ev::Close(..)) {}
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    drop(_b);
    server.stop().await;
}

// ----- liveness and limits -----

#[tokio::test]
async fn heartbeat_closes_a_silent_peer_but_not_a_live_one() {
    let settings = Settings::default().heartbeat(Duration::from_millis(100), Duration::from_millis(400));
    let ws = WebSocketServer::with_settings(settings);
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;

    // A live peer: tungstenite answers Pings while it is being read.
    let mut live = peer(&server.url("/ws")).await;
    let Ev::Connect(live_id) = next_ev(&mut events).await else { panic!() };
    // A silent peer: completes the handshake, then never reads nor answers.
    let mut silent = raw_ws(server.addr, "/ws").await;
    let Ev::Connect(silent_id) = next_ev(&mut events).await else { panic!() };

    let reader = tokio::spawn(async move {
        // Keeps reading (so Pongs go out) until the server is stopped.
        while let Some(Ok(m)) = live.next().await {
            if let TMessage::Close(_) = m {
                break;
            }
        }
    });
    match next_ev(&mut events).await {
        Ev::Error(id, e) => assert!(id == silent_id && e.contains("idle"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next_ev(&mut events).await, Ev::Close(silent_id, 1001, String::new()));
    let bytes = read_to_end(&mut silent).await;
    assert!(bytes.starts_with(&[0x89, 0x00]), "pings were sent: {bytes:?}");
    assert!(bytes.ends_with(&[0x88, 0x02, 0x03, 0xE9]), "then close 1001: {bytes:?}");
    assert_eq!(ws.connection_count(), 1, "the live peer stays");
    assert!(ws.connections()[0].id().get() == live_id);
    server.stop().await;
    within(reader).await.unwrap();
}

#[tokio::test]
async fn slow_consumer_is_dropped_without_hurting_the_others() {
    const MESSAGE: usize = 64 * 1024;
    const COUNT: usize = 200; // 12.5 MiB: far past socket buffers and the limit
    let ws = WebSocketServer::with_settings(Settings::default().max_queued_bytes(1 << 20));
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let mut fast = peer(&server.url("/ws")).await;
    let Ev::Connect(fast_id) = next_ev(&mut events).await else { panic!() };
    let _slow = raw_ws(server.addr, "/ws").await; // never reads
    let Ev::Connect(slow_id) = next_ev(&mut events).await else { panic!() };

    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let reader = tokio::spawn(async move {
        while counter.load(Ordering::Relaxed) < COUNT {
            match fast.next().await {
                Some(Ok(TMessage::Binary(b))) => {
                    assert_eq!(b.len(), MESSAGE);
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("{other:?}"),
            }
        }
        fast
    });
    let payload = crest_tokio::Bytes::from(vec![7u8; MESSAGE]);
    for _ in 0..COUNT {
        ws.broadcast_binary(payload.clone());
        // Let the connections' tasks write, as a real producer would.
        tokio::task::yield_now().await;
        while ws.connections().iter().any(|c| c.id().get() == fast_id && c.queued_bytes() > 4 * MESSAGE) {
            tokio::task::yield_now().await;
        }
    }
    match next_ev(&mut events).await {
        Ev::Error(id, e) => assert!(id == slow_id && e.contains("slow consumer"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next_ev(&mut events).await, Ev::Close(slow_id, 1006, String::new()));
    let _fast = within(reader).await.unwrap();
    assert_eq!(received.load(Ordering::Relaxed), COUNT, "the fast client got everything");
    assert_eq!(ws.connection_count(), 1);
    drop((_fast, _slow));
    server.stop().await;
}

#[tokio::test]
async fn message_over_the_limit_closes_with_1009() {
    let ws = WebSocketServer::with_settings(Settings::default().max_message_size(1000));
    let mut events = record(&ws);
    let server = serve_ws(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    let Ev::Connect(id) = next_ev(&mut events).await else { panic!() };
    within(p.send(TMessage::binary(vec![0u8; 1001]))).await.unwrap();
    assert!(matches!(next_ev(&mut events).await, Ev::Error(i, _) if i == id));
    assert_eq!(next_ev(&mut events).await, Ev::Close(id, 1009, String::new()));
    assert_eq!(next_close(&mut p).await.0, 1009);
    drop(p);
    server.stop().await;
}

// ----- shutdown -----

#[tokio::test]
async fn graceful_shutdown_closes_everyone_with_1001_and_drains() {
    let ws = chat::chat_server();
    let closes = Arc::new(AtomicUsize::new(0));
    let server = serve_ws(&ws).await;
    let mut peers = Vec::new();
    for _ in 0..5 {
        let mut p = peer(&server.url("/ws")).await;
        next_text(&mut p).await; // welcome: on_connect ran
        peers.push(p);
    }
    let counter = closes.clone();
    ws.on_close(move |_, code, _| {
        assert_eq!(code.0, 1001);
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let readers: Vec<_> =
        peers.into_iter().map(|mut p| tokio::spawn(async move { finish_close(&mut p).await })).collect();
    server.stop().await; // returns only when every connection is drained
    for r in readers {
        assert_eq!(within(r).await.unwrap(), (1001, "server shutting down".into()));
    }
    assert_eq!(closes.load(Ordering::SeqCst), 5);
    assert_eq!(ws.connection_count(), 0);
}

// ----- handles -----

#[tokio::test]
async fn handles_work_from_other_threads_and_fail_cleanly_after_close() {
    let (ws, server) = echo_server().await;
    let mut p = peer(&server.url("/ws")).await;
    send_text(&mut p, "echo").await;
    assert_eq!(next_text(&mut p).await, "echo"); // the server has it open
    let conn = ws.connections().pop().unwrap();
    let c = conn.clone();
    std::thread::spawn(move || c.send("from a thread").unwrap()).join().unwrap();
    assert_eq!(next_text(&mut p).await, "from a thread");
    assert_eq!(conn.peer_addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_eq!(conn.id().to_string(), conn.id().get().to_string());
    within(p.close(None)).await.unwrap();
    while within(p.next()).await.is_some() {}
    drop(p);
    server.stop().await;
    assert!(!conn.is_open());
    assert!(matches!(conn.send("x"), Err(Error::Closed)));
    assert!(matches!(conn.send_binary(vec![1]), Err(Error::Closed)));
    assert!(matches!(conn.close(1000, ""), Err(Error::Closed)));
}

#[tokio::test]
async fn panicking_callback_closes_with_1011_and_the_server_goes_on() {
    let ws = WebSocketServer::new();
    ws.on_message(|conn, text| {
        if &*text == "boom" {
            panic!("callback bug");
        }
        let _ = conn.send(text);
    });
    let server = serve_ws(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    send_text(&mut p, "boom").await;
    assert_eq!(next_close(&mut p).await, (1011, "internal error".into()));
    let mut q = peer(&server.url("/ws")).await;
    send_text(&mut q, "still here").await;
    assert_eq!(next_text(&mut q).await, "still here");
    drop((p, q));
    server.stop().await;
}

#[tokio::test]
async fn raw_upgrade_then_frames_in_the_same_packet() {
    let (_ws, server) = echo_server().await;
    let mut tcp = within(tokio::net::TcpStream::connect(server.addr)).await.unwrap();
    let mut bytes = upgrade_head("/ws", "").into_bytes();
    bytes.extend(client_frame(1, b"early"));
    bytes.extend(client_frame(8, &1000u16.to_be_bytes()));
    within(tcp.write_all(&bytes)).await.unwrap();
    let all = read_to_end(&mut tcp).await;
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(all.ends_with(b"\x81\x05early\x88\x02\x03\xe8"), "{all:?}");
    let mut rest = [0u8; 1];
    assert_eq!(within(tcp.read(&mut rest)).await.unwrap_or(0), 0);
    server.stop().await;
}
