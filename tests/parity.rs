//! The parity suite: every behaviour of the callback server, client and
//! `Stream + Sink` type, written once as `async fn scenario<R: Runtime>()`
//! and run on every runtime (`tokio::*` on crest-tokio, `async_std::*` and
//! `smol::*` on crest-async-std) by the `parity!` list at the end.
//!
//! The peers are independent (async-tungstenite) or raw TCP; every wait is
//! bounded (`within`); nothing sleeps to wait for a server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crest_driver::{
    Accept, Bytes, CloseCode, DeflateConfig, Error, Message, Response, Settings, WebSocketClient, WebSocketServer,
};
use crest_tests::tungstenite::client::IntoClientRequest;
use crest_tests::tungstenite::protocol::frame::coding::CloseCode as TCode;
use crest_tests::tungstenite::protocol::CloseFrame as TCloseFrame;
use crest_tests::tungstenite::Message as TMessage;
use crest_tests::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON {text:?}: {e}"))
}

// ----- the product page's chat -----

async fn welcome_message_on_connect<R: Runtime>() {
    let server = serve_ws::<R>(&crest_examples::chat::chat_server()).await;
    let mut alice = peer(&server.url("/ws")).await;
    assert_eq!(next_text(&mut alice).await, crest_examples::chat::WELCOME);
    assert_eq!(json(crest_examples::chat::WELCOME), json!({"type": "welcome", "message": "Connected!"}));
    drop(alice);
    server.stop().await;
}

async fn chat_flow_join_message_leave_reach_the_others<R: Runtime>() {
    let server = serve_ws::<R>(&crest_examples::chat::chat_server()).await;
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
    drop(bob);
    server.stop().await;
}

/// The page's chat with our own client: what the browser script does.
async fn chat_with_our_callback_client<R: Runtime>() {
    let server = serve_ws::<R>(&crest_examples::chat::chat_server()).await;
    let (tx, rx) = async_channel::unbounded();
    let client = WebSocketClient::new();
    client.on_connect(|conn| drop(conn.send(r#"{"type":"join","username":"Carol"}"#)));
    client.on_message(move |_conn, text| drop(tx.try_send(text.to_string())));
    let conn = within(R::connect(&client, &server.url("/ws"))).await.unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), crest_examples::chat::WELCOME);
    assert_eq!(json(&within(rx.recv()).await.unwrap()), json!({"type": "join", "user": "Carol"}));
    conn.send(r#"{"type":"message","text":"hi <all>"}"#).unwrap();
    let expected = json!({"type": "message", "user": "Carol", "text": "hi <all>"});
    assert_eq!(json(&within(rx.recv()).await.unwrap()), expected);
    server.stop().await;
    assert!(!conn.is_open());
}

// ----- broadcast -----

async fn broadcast_reaches_every_client_exactly_once_in_order<R: Runtime>() {
    const CLIENTS: usize = 40;
    const MESSAGES: usize = 25;
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut peers = Vec::new();
    for _ in 0..CLIENTS {
        peers.push(peer(&server.url("/ws")).await);
        next_connect(&events).await;
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
    // The variants skipping one connection.
    let skipped = ws.connections().into_iter().next().unwrap();
    assert_eq!(ws.broadcast_except(&skipped, "not for you"), CLIENTS - 1);
    assert_eq!(ws.broadcast_binary_except(&skipped, &b"nor this"[..]), CLIENTS - 1);
    ws.connections().iter().for_each(|c| drop(c.send("marker")));
    let mut got = 0;
    for p in &mut peers {
        // Every peer gets both messages, or (the skipped one) only the marker.
        match next_msg(p).await {
            TMessage::Text(t) if t.as_str() == "not for you" => {
                got += 1;
                assert_eq!(next_msg(p).await, TMessage::binary(&b"nor this"[..]));
                assert_eq!(next_text(p).await, "marker");
            }
            TMessage::Text(t) if t.as_str() == "marker" => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, CLIENTS - 1);
    drop(peers);
    server.stop().await;
}

// ----- permessage-deflate -----

/// JSON-like text that deflate shrinks severalfold.
fn compressible(n: usize) -> String {
    (0..n).map(|i| format!("{{\"id\":{i},\"user\":\"u{}\",\"ok\":{}}},", i % 97, i % 3 == 0)).collect()
}

async fn deflate_echo_and_compressed_broadcast<R: Runtime>() {
    // Without server context takeover a broadcast is compressed once (the
    // sharing itself is checked in crest-proto), here over real sockets.
    let deflate = DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() };
    let ws = WebSocketServer::with_settings(Settings::default().deflate(deflate));
    ws.on_message(|conn, text| drop(conn.send(text)));
    let (on_connect, connected) = async_channel::unbounded();
    ws.on_connect(move |_conn| {
        let _ = on_connect.try_send(());
    });
    let server = serve_ws::<R>(&ws).await;

    // Our callback clients, offering deflate: echo, then broadcasts.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = async_channel::unbounded();
        let client = WebSocketClient::new();
        client.deflate(DeflateConfig::default());
        client.on_message(move |_conn, text| drop(tx.try_send(text.to_string())));
        let conn = within(R::connect(&client, &server.url("/ws"))).await.unwrap();
        clients.push((conn, rx));
    }
    let text = compressible(2000);
    for (conn, rx) in &clients {
        conn.send(text.as_str()).unwrap();
        assert_eq!(within(rx.recv()).await.unwrap(), text);
    }

    // A raw client sees the negotiation and the compressed frame itself.
    let (mut raw, head) =
        raw_request(server.addr, &upgrade_head("/ws", "Sec-WebSocket-Extensions: permessage-deflate\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"), "{head}");
    for _ in 0..4 {
        within(connected.recv()).await.unwrap();
    }
    assert_eq!(ws.broadcast(text.as_str()), 4);
    for (_, rx) in &clients {
        assert_eq!(within(rx.recv()).await.unwrap(), text);
    }
    let mut frame = Vec::new();
    while frame.len() < 4 || frame.len() < 4 + usize::from(u16::from_be_bytes([frame[2], frame[3]])) {
        let mut chunk = [0u8; 4096];
        let n = within(futures_lite::AsyncReadExt::read(&mut raw, &mut chunk)).await.unwrap();
        assert!(n > 0, "EOF after {} bytes", frame.len());
        frame.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(frame[0], 0xC1, "FIN | RSV1 | text");
    assert_eq!(frame[1], 126, "a 16-bit length");
    let compressed = usize::from(u16::from_be_bytes([frame[2], frame[3]]));
    assert!(compressed * 4 < text.len(), "{} bytes compressed to {compressed}", text.len());
    drop(raw);
    server.stop().await;
}

// ----- sizes -----

const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 16 << 20];

async fn text_and_binary_of_every_size_round_trip<R: Runtime>() {
    let (_ws, server) = echo_server::<R>().await;
    let mut p = peer(&server.url("/ws")).await;
    for size in SIZES {
        let text: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        within(p.send(TMessage::text(text.clone()))).await.unwrap();
        assert!(next_text(&mut p).await == text, "text of {size} bytes differs");
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

/// The same sizes from our callback client to a tungstenite server.
async fn our_callback_client_against_a_tungstenite_server<R: Runtime>() {
    let addr = tungstenite_echo_server::<R>();
    let (tx, rx) = async_channel::unbounded();
    let client = WebSocketClient::new();
    let t = tx.clone();
    client.on_connect(move |conn| {
        let _ = t.try_send(format!("connect {}", conn.path()));
        conn.send("hello").unwrap();
    });
    let t = tx.clone();
    client.on_message(move |_conn, text| drop(t.try_send(format!("text {}", text.len()))));
    let t = tx.clone();
    client.on_binary(move |_conn, data| drop(t.try_send(format!("binary {}", data.len()))));
    client.on_close(move |_conn, code, reason| drop(tx.try_send(format!("close {code} {reason}"))));
    let conn = within(R::connect(&client, &format!("ws://{addr}/echo"))).await.unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), "connect /echo");
    assert_eq!(within(rx.recv()).await.unwrap(), "text 5");
    for size in SIZES {
        conn.send_binary(vec![1u8; size]).unwrap();
        assert_eq!(within(rx.recv()).await.unwrap(), format!("binary {size}"));
        conn.send("x".repeat(size)).unwrap();
        assert_eq!(within(rx.recv()).await.unwrap(), format!("text {size}"));
    }
    conn.close(1000, "done").unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), "close 1000 done");
    assert!(!conn.is_open());
}

// ----- ping / pong -----

async fn ping_is_answered_and_server_pings_reach_the_client<R: Runtime>() {
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    within(p.send(TMessage::Ping(b"are you there"[..].into()))).await.unwrap();
    match within(p.next()).await.unwrap().unwrap() {
        TMessage::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("{other:?}"),
    }
    let id = next_connect(&events).await;
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

async fn client_initiated_close_reports_code_and_reason<R: Runtime>() {
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    let id = next_connect(&events).await;
    let frame = TCloseFrame { code: TCode::from(4000), reason: "bye now".into() };
    within(p.close(Some(frame))).await.unwrap();
    assert_eq!(next_close(&mut p).await.0, 4000, "the server echoes the code");
    assert_eq!(next_ev(&events).await, Ev::Close(id, 4000, "bye now".into()));
    assert!(within(p.next()).await.is_none());
    assert_eq!(ws.connection_count(), 0);
    server.stop().await;
}

async fn server_initiated_close_sends_code_and_reason<R: Runtime>() {
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    let id = next_connect(&events).await;
    let conn = ws.connections().pop().unwrap();
    conn.send("last words").unwrap();
    conn.close(4001, "server says bye").unwrap();
    assert!(!conn.is_open());
    assert!(matches!(conn.send("too late"), Err(Error::Closed)));
    assert_eq!(next_text(&mut p).await, "last words");
    assert_eq!(finish_close(&mut p).await, (4001, "server says bye".into()));
    // tungstenite echoes the code; the handshake completes on both sides.
    match next_ev(&events).await {
        Ev::Close(i, 4001, _) => assert_eq!(i, id),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

/// Both close directions between our client and our server.
async fn close_both_directions_between_our_client_and_server<R: Runtime>() {
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    for client_closes in [true, false] {
        let (tx, rx) = async_channel::unbounded();
        let client = WebSocketClient::new();
        client.on_close(move |_conn, code, reason| drop(tx.try_send((code.0, reason.to_owned()))));
        let conn = within(R::connect(&client, &server.url("/ws"))).await.unwrap();
        let id = next_connect(&events).await;
        if client_closes {
            conn.close(4100, "client leaves").unwrap();
            assert_eq!(next_ev(&events).await, Ev::Close(id, 4100, "client leaves".into()));
            // The client reports the server's echo: the code, no reason.
            assert_eq!(within(rx.recv()).await.unwrap(), (4100, String::new()));
        } else {
            ws.connections()[0].close(4200, "go").unwrap();
            assert_eq!(within(rx.recv()).await.unwrap(), (4200, "go".into()));
            assert_eq!(next_ev(&events).await, Ev::Close(id, 4200, String::new()), "the client's echo");
        }
        assert!(!conn.is_open());
    }
    server.stop().await;
}

async fn protocol_violation_calls_on_error_then_on_close_and_sends_1002<R: Runtime>() {
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut tcp = raw_ws(server.addr, "/ws").await;
    let id = next_connect(&events).await;
    // An unmasked frame from a client (RFC 6455 §5.1).
    raw_write(&mut tcp, &[0x81, 0x02, b'h', b'i']).await;
    assert!(matches!(next_ev(&events).await, Ev::Error(i, e) if i == id && e.contains("unmasked")));
    assert_eq!(next_ev(&events).await, Ev::Close(id, 1002, String::new()));
    let rest = read_to_end(&mut tcp).await;
    assert_eq!(rest, [0x88, 0x02, 0x03, 0xEA], "close frame 1002, then EOF");
    server.stop().await;
}

async fn transport_eof_without_close_reports_1006_and_no_error<R: Runtime>() {
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let tcp = raw_ws(server.addr, "/ws").await;
    let id = next_connect(&events).await;
    drop(tcp);
    assert_eq!(next_ev(&events).await, Ev::Close(id, 1006, String::new()));
    server.stop().await;
}

// ----- authentication hook and origins -----

async fn auth_hook_rejects_with_401_and_accepts_with_a_subprotocol<R: Runtime>() {
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
    let (tx, seen) = async_channel::unbounded();
    ws.on_connect(move |conn| {
        let _ = tx.try_send((
            conn.protocol().map(String::from),
            conn.header("authorization").map(String::from),
            conn.path().to_owned(),
            conn.query().map(String::from),
        ));
    });
    let server = serve_ws::<R>(&ws).await;

    // Rejected: no credentials.
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    assert!(head.contains("WWW-Authenticate: Bearer\r\n") && head.ends_with("who are you?"), "{head}");
    match within(try_peer(server.url("/ws"))).await {
        Err(crest_tests::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("{:?}", other.map(|(_, r)| r)),
    }

    // Accepted, with the subprotocol the client offered.
    let mut req = server.url("/ws?room=7").into_client_request().unwrap();
    req.headers_mut().insert("Authorization", "Bearer good".parse().unwrap());
    req.headers_mut().insert("Sec-WebSocket-Protocol", "chat.v1, chat.v2".parse().unwrap());
    let (p, response) = within(try_peer(req)).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
    assert_eq!(response.headers()["x-hello"], "yes");
    let (protocol, auth, path, query) = within(seen.recv()).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("chat.v2"));
    assert_eq!(auth.as_deref(), Some("Bearer good"));
    assert_eq!((path.as_str(), query.as_deref()), ("/ws", Some("room=7")));
    drop(p);

    // Our client: offered subprotocol and header, and the refusal typed.
    let client = WebSocketClient::new();
    client.protocol("chat.v2").header("Authorization", "Bearer good");
    let conn = within(R::connect(&client, &server.url("/ws"))).await.unwrap();
    assert_eq!(conn.protocol(), Some("chat.v2"));
    within(seen.recv()).await.unwrap();
    match within(R::connect(&WebSocketClient::new(), &server.url("/ws"))).await {
        Err(Error::Protocol(e)) => assert!(e.to_string().contains("401"), "{e}"),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

async fn origin_check_refuses_other_sites<R: Runtime>() {
    let ws = WebSocketServer::with_settings(Settings::default().allow_origin("https://chat.example"));
    let server = serve_ws::<R>(&ws).await;
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "Origin: https://evil.example\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "Origin: https://chat.example\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "non-browser clients send no Origin: {head}");
    server.stop().await;
}

// ----- routing and limits -----

async fn pages_404_405_426_and_websocket_routes<R: Runtime>() {
    let ws = WebSocketServer::new();
    let server = R::serve(AppSpec::new().route("/ws", &ws).page("/", "<h1>hi</h1>")).await;
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

async fn max_connections_answers_503<R: Runtime>() {
    let ws = WebSocketServer::with_settings(Settings::default().max_connections(2));
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let a = peer(&server.url("/ws")).await;
    let b = peer(&server.url("/ws")).await;
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    // The slot comes back once the server saw the first connection end.
    drop(a);
    while !matches!(next_ev(&events).await, Ev::Close(..)) {}
    let (_, head) = raw_request(server.addr, &upgrade_head("/ws", "")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    drop(b);
    server.stop().await;
}

async fn message_over_the_limit_closes_with_1009<R: Runtime>() {
    let ws = WebSocketServer::with_settings(Settings::default().max_message_size(1000));
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    let id = next_connect(&events).await;
    within(p.send(TMessage::binary(vec![0u8; 1001]))).await.unwrap();
    assert!(matches!(next_ev(&events).await, Ev::Error(i, _) if i == id));
    assert_eq!(next_ev(&events).await, Ev::Close(id, 1009, String::new()));
    assert_eq!(next_close(&mut p).await.0, 1009);
    drop(p);
    server.stop().await;
}

// ----- liveness -----

async fn heartbeat_closes_a_silent_peer_but_not_a_live_one<R: Runtime>() {
    let settings = Settings::default().heartbeat(Duration::from_millis(100), Duration::from_millis(400));
    let ws = WebSocketServer::with_settings(settings);
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;

    // A live peer: tungstenite answers Pings while it is being read.
    let mut live = peer(&server.url("/ws")).await;
    let live_id = next_connect(&events).await;
    // A silent peer: completes the handshake, then never reads nor answers.
    let mut silent = raw_ws(server.addr, "/ws").await;
    let silent_id = next_connect(&events).await;

    let reader = R::spawn(async move {
        // Keeps reading (so Pongs go out) until the server is stopped.
        while let Some(Ok(m)) = live.next().await {
            if let TMessage::Close(_) = m {
                break;
            }
        }
    });
    match next_ev(&events).await {
        Ev::Error(id, e) => assert!(id == silent_id && e.contains("idle"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next_ev(&events).await, Ev::Close(silent_id, 1001, String::new()));
    let bytes = read_to_end(&mut silent).await;
    assert!(bytes.starts_with(&[0x89, 0x00]), "pings were sent: {bytes:?}");
    assert!(bytes.ends_with(&[0x88, 0x02, 0x03, 0xE9]), "then close 1001: {bytes:?}");
    assert_eq!(ws.connection_count(), 1, "the live peer stays");
    assert!(ws.connections()[0].id().get() == live_id);
    server.stop().await;
    within(reader).await;
}

async fn slow_consumer_is_dropped_without_hurting_the_others<R: Runtime>() {
    const MESSAGE: usize = 64 * 1024;
    const COUNT: usize = 200; // 12.5 MiB: far past socket buffers and the limit
    let ws = WebSocketServer::with_settings(Settings::default().max_queued_bytes(1 << 20));
    let events = record(&ws);
    let server = serve_ws::<R>(&ws).await;
    let mut fast = peer(&server.url("/ws")).await;
    let fast_id = next_connect(&events).await;
    let slow = raw_ws(server.addr, "/ws").await; // never reads
    let slow_id = next_connect(&events).await;

    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let reader = R::spawn(async move {
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
    let payload = Bytes::from(vec![7u8; MESSAGE]);
    within(async {
        for _ in 0..COUNT {
            ws.broadcast_binary(payload.clone());
            // Let the connections' tasks write, as a real producer would.
            futures_lite::future::yield_now().await;
            while ws.connections().iter().any(|c| c.id().get() == fast_id && c.queued_bytes() > 4 * MESSAGE) {
                futures_lite::future::yield_now().await;
            }
        }
    })
    .await;
    match next_ev(&events).await {
        Ev::Error(id, e) => assert!(id == slow_id && e.contains("slow consumer"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next_ev(&events).await, Ev::Close(slow_id, 1006, String::new()));
    let fast = within(reader).await;
    assert_eq!(received.load(Ordering::Relaxed), COUNT, "the fast client got everything");
    assert_eq!(ws.connection_count(), 1);
    drop((fast, slow));
    server.stop().await;
}

// ----- shutdown -----

async fn graceful_shutdown_closes_everyone_with_1001_and_drains<R: Runtime>() {
    let ws = crest_examples::chat::chat_server();
    let closes = Arc::new(AtomicUsize::new(0));
    let server = serve_ws::<R>(&ws).await;
    let mut peers = Vec::new();
    for _ in 0..5 {
        let mut p = peer(&server.url("/ws")).await;
        next_text(&mut p).await; // welcome: on_connect ran
        peers.push(p);
    }
    // Our own client too: its on_close sees the server's 1001.
    let (tx, client_closed) = async_channel::unbounded();
    let client = WebSocketClient::new();
    client.on_close(move |_conn, code, reason| drop(tx.try_send((code.0, reason.to_owned()))));
    let ours = within(R::connect(&client, &server.url("/ws"))).await.unwrap();
    let counter = closes.clone();
    ws.on_close(move |_, code, _| {
        assert_eq!(code.0, 1001);
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let readers: Vec<_> = peers.into_iter().map(|mut p| R::spawn(async move { finish_close(&mut p).await })).collect();
    server.stop().await; // returns only when every connection is drained
    for r in readers {
        assert_eq!(within(r).await, (1001, "server shutting down".into()));
    }
    assert_eq!(within(client_closed.recv()).await.unwrap(), (1001, "server shutting down".into()));
    assert!(!ours.is_open());
    assert_eq!(closes.load(Ordering::SeqCst), 6);
    assert_eq!(ws.connection_count(), 0);
}

// ----- handles -----

async fn handles_work_from_other_threads_and_fail_cleanly_after_close<R: Runtime>() {
    let (ws, server) = echo_server::<R>().await;
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
    server.stop().await;
    assert!(!conn.is_open());
    assert!(matches!(conn.send("x"), Err(Error::Closed)));
    assert!(matches!(conn.send_binary(vec![1]), Err(Error::Closed)));
    assert!(matches!(conn.close(1000, ""), Err(Error::Closed)));
}

async fn panicking_callback_closes_with_1011_and_the_server_goes_on<R: Runtime>() {
    let ws = WebSocketServer::new();
    ws.on_message(|conn, text| {
        if &*text == "boom" {
            panic!("callback bug (expected by this test)");
        }
        let _ = conn.send(text);
    });
    let server = serve_ws::<R>(&ws).await;
    let mut p = peer(&server.url("/ws")).await;
    send_text(&mut p, "boom").await;
    assert_eq!(next_close(&mut p).await, (1011, "internal error".into()));
    let mut q = peer(&server.url("/ws")).await;
    send_text(&mut q, "still here").await;
    assert_eq!(next_text(&mut q).await, "still here");
    drop((p, q));
    server.stop().await;
}

async fn raw_upgrade_then_frames_in_the_same_packet<R: Runtime>() {
    let (_ws, server) = echo_server::<R>().await;
    let mut bytes = upgrade_head("/ws", "").into_bytes();
    bytes.extend(client_frame(1, b"early"));
    bytes.extend(client_frame(8, &1000u16.to_be_bytes()));
    let mut tcp = raw_connect(server.addr).await;
    raw_write(&mut tcp, &bytes).await;
    let all = read_to_end(&mut tcp).await;
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(all.ends_with(b"\x81\x05early\x88\x02\x03\xe8"), "{all:?}");
    server.stop().await;
}

// ----- client errors and the Stream + Sink type -----

async fn connect_errors_are_typed<R: Runtime>() {
    let client = WebSocketClient::new();
    assert!(matches!(R::connect(&client, "wss://localhost/").await, Err(Error::TlsRequired)));
    assert!(matches!(R::connect(&client, "http://localhost/").await, Err(Error::Uri(_))));
    // A server that refuses the upgrade.
    let ws = WebSocketServer::new();
    ws.on_upgrade(|_, _| Err(Response::new(403)));
    let server = serve_ws::<R>(&ws).await;
    match within(R::connect(&client, &server.url("/ws"))).await {
        Err(Error::Protocol(e)) => assert!(e.to_string().contains("403"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", closed.local_addr().unwrap());
    drop(closed);
    assert!(matches!(within(R::connect(&client, &url)).await, Err(Error::Io(_))));
    server.stop().await;
}

async fn our_stream_client_against_a_tungstenite_server<R: Runtime>() {
    let addr = tungstenite_echo_server::<R>();
    let mut ws = within(R::connect_stream(&WebSocketClient::new(), &format!("ws://{addr}/"))).await.unwrap();
    for i in 0..10 {
        within(ws.send(Message::text(format!("message {i}")))).await.unwrap();
    }
    within(ws.send(Message::binary(vec![9u8; 100_000]))).await.unwrap();
    for i in 0..10 {
        match within(ws.next()).await {
            Some(Ok(Message::Text(t))) => assert_eq!(t, format!("message {i}").as_str()),
            other => panic!("{other:?}"),
        }
    }
    match within(ws.next()).await {
        Some(Ok(Message::Binary(b))) => assert_eq!(b.len(), 100_000),
        other => panic!("{other:?}"),
    }
    within(ws.close()).await.unwrap();
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
}

async fn stream_type_on_both_ends_over_a_raw_socket<R: Runtime>() {
    // WebSocket<S> over the runtime's TCP stream on both sides, one
    // accepting, one connecting.
    let (addr, server) = R::stream_echo_server().await;
    let mut ws = within(R::stream_client(addr, "/stream")).await.unwrap();
    within(ws.send(Message::text("ping?"))).await.unwrap();
    assert!(matches!(within(ws.next()).await, Some(Ok(Message::Text(t))) if t == "ping?"));
    within(ws.send(Message::binary(vec![3u8; 1 << 20]))).await.unwrap();
    assert!(matches!(within(ws.next()).await, Some(Ok(Message::Binary(b))) if b.len() == 1 << 20));
    within(ws.close()).await.unwrap();
    let closed = within(server).await.unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL);
}

async fn stream_client_against_our_server<R: Runtime>() {
    let (_ws, server) = echo_server::<R>().await;
    let mut ws = within(R::connect_stream(&WebSocketClient::new(), &server.url("/ws"))).await.unwrap();
    within(ws.send(Message::text("round"))).await.unwrap();
    assert!(matches!(within(ws.next()).await, Some(Ok(Message::Text(t))) if t == "round"));
    within(ws.close()).await.unwrap();
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
    server.stop().await;
}

async fn stream_client_with_a_subprotocol_headers_and_compression<R: Runtime>() {
    // `Connect::connect_stream`: the Stream + Sink client carries the
    // client's subprotocol, headers and permessage-deflate offer.
    let ws = WebSocketServer::with_settings(Settings::default().deflate(DeflateConfig::default()));
    ws.on_upgrade(|req, _peer| match req.header("authorization") {
        Some("Bearer good") if req.protocols().iter().any(|p| p == "chat.v2") => Ok(Accept::new().protocol("chat.v2")),
        _ => Err(Response::new(401)),
    });
    let (tx, seen) = async_channel::unbounded();
    ws.on_connect(move |conn| drop(tx.try_send(conn.header("sec-websocket-extensions").map(String::from))));
    ws.on_message(|conn, text| drop(conn.send(text)));
    let server = serve_ws::<R>(&ws).await;
    let client = WebSocketClient::new();
    client.protocol("chat.v2").header("Authorization", "Bearer good");
    client.deflate(DeflateConfig::default());
    let mut stream = within(R::connect_stream(&client, &server.url("/ws"))).await.unwrap();
    assert_eq!(stream.protocol(), Some("chat.v2"));
    let offer = within(seen.recv()).await.unwrap().expect("no Sec-WebSocket-Extensions offer");
    assert!(offer.starts_with("permessage-deflate"), "{offer}");
    let text = compressible(2000);
    within(stream.send(Message::text(text.as_str()))).await.unwrap();
    assert!(matches!(within(stream.next()).await, Some(Ok(Message::Text(t))) if t == text.as_str()));
    within(stream.close()).await.unwrap();
    // Without the header the same client options are refused before the upgrade.
    let refused = WebSocketClient::new();
    refused.protocol("chat.v2");
    assert!(within(R::connect_stream(&refused, &server.url("/ws"))).await.is_err());
    server.stop().await;
}

async fn tungstenite_client_and_our_client_talk_through_our_server<R: Runtime>() {
    // Both independent implementations in one conversation, via broadcast.
    let ws = WebSocketServer::new();
    let all = ws.clone();
    ws.on_message(move |_conn, text| {
        all.broadcast(text);
    });
    let (opened, on_open) = async_channel::unbounded();
    ws.on_connect(move |_| {
        let _ = opened.try_send(());
    });
    let server = serve_ws::<R>(&ws).await;
    let mut theirs = peer(&server.url("/ws")).await;
    let (tx, rx) = async_channel::unbounded();
    let client = WebSocketClient::new();
    client.on_message(move |_conn, text| drop(tx.try_send(text.to_string())));
    let ours = within(R::connect(&client, &server.url("/ws"))).await.unwrap();
    // Both are connected once on_connect ran twice.
    within(on_open.recv()).await.unwrap();
    within(on_open.recv()).await.unwrap();
    send_text(&mut theirs, "from tungstenite").await;
    assert_eq!(within(rx.recv()).await.unwrap(), "from tungstenite");
    assert_eq!(next_text(&mut theirs).await, "from tungstenite");
    ours.send("from crest").unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), "from crest");
    assert_eq!(next_text(&mut theirs).await, "from crest");
    within(theirs.send(TMessage::Close(None))).await.unwrap();
    server.stop().await;
}

parity!(
    welcome_message_on_connect,
    chat_flow_join_message_leave_reach_the_others,
    chat_with_our_callback_client,
    broadcast_reaches_every_client_exactly_once_in_order,
    text_and_binary_of_every_size_round_trip,
    our_callback_client_against_a_tungstenite_server,
    ping_is_answered_and_server_pings_reach_the_client,
    client_initiated_close_reports_code_and_reason,
    server_initiated_close_sends_code_and_reason,
    close_both_directions_between_our_client_and_server,
    protocol_violation_calls_on_error_then_on_close_and_sends_1002,
    transport_eof_without_close_reports_1006_and_no_error,
    auth_hook_rejects_with_401_and_accepts_with_a_subprotocol,
    origin_check_refuses_other_sites,
    pages_404_405_426_and_websocket_routes,
    max_connections_answers_503,
    message_over_the_limit_closes_with_1009,
    heartbeat_closes_a_silent_peer_but_not_a_live_one,
    slow_consumer_is_dropped_without_hurting_the_others,
    graceful_shutdown_closes_everyone_with_1001_and_drains,
    handles_work_from_other_threads_and_fail_cleanly_after_close,
    panicking_callback_closes_with_1011_and_the_server_goes_on,
    raw_upgrade_then_frames_in_the_same_packet,
    connect_errors_are_typed,
    our_stream_client_against_a_tungstenite_server,
    stream_type_on_both_ends_over_a_raw_socket,
    stream_client_against_our_server,
    stream_client_with_a_subprotocol_headers_and_compression,
    tungstenite_client_and_our_client_talk_through_our_server,
    deflate_echo_and_compressed_broadcast,
);
