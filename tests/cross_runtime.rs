//! Cross-runtime pairs: a client of one adapter against a server of the
//! other, each on its own runtime (an async-std client against a tokio
//! server and the reverse; smol against tokio and the reverse). The test
//! body runs on the client's runtime; the server's tasks on the server's.

use std::time::Duration;

use crest_driver::{CloseCode, Message, WebSocketClient, WebSocketServer};
use crest_tests::*;
use futures_util::{SinkExt, StreamExt};

const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 16 << 20];

/// C's callback client against S's echo server: text and binary of every size.
async fn callback_client_echo_of_every_size<S: Runtime, C: Runtime>() {
    let (_ws, server) = echo_server::<S>().await;
    let (tx, rx) = async_channel::unbounded();
    let client = WebSocketClient::new();
    let t = tx.clone();
    client.on_message(move |_conn, text| drop(t.try_send(Message::Text(text))));
    client.on_binary(move |_conn, data| drop(tx.try_send(Message::Binary(data))));
    let conn = within(C::connect(&client, &server.url("/ws"))).await.unwrap();
    for size in SIZES {
        let text: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        conn.send(text.clone()).unwrap();
        match within(rx.recv()).await.unwrap() {
            Message::Text(t) => assert!(*t == *text, "{} -> {}: text of {size} bytes differs", C::NAME, S::NAME),
            other => panic!("{other:?}"),
        }
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        conn.send_binary(data.clone()).unwrap();
        match within(rx.recv()).await.unwrap() {
            Message::Binary(b) => assert!(*b == *data, "{} -> {}: binary of {size} bytes differs", C::NAME, S::NAME),
            other => panic!("{other:?}"),
        }
    }
    conn.close(1000, "done").unwrap();
    server.stop().await;
}

/// Broadcast from S's server reaches C's clients; close codes and reasons
/// travel both ways; S's graceful shutdown closes C's last client with 1001.
async fn broadcast_close_codes_and_shutdown<S: Runtime, C: Runtime>() {
    let ws = WebSocketServer::new();
    let events = record(&ws);
    let server = serve_ws::<S>(&ws).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = async_channel::unbounded();
        let client = WebSocketClient::new();
        let t = tx.clone();
        client.on_message(move |_conn, text| drop(t.try_send(format!("text {text}"))));
        client.on_close(move |_conn, code, reason| drop(tx.try_send(format!("close {code} {reason}"))));
        let conn = within(C::connect(&client, &server.url("/ws"))).await.unwrap();
        let id = next_connect(&events).await;
        clients.push((id, conn, rx));
    }
    assert_eq!(ws.broadcast("to all"), 3);
    for (_, _, rx) in &clients {
        assert_eq!(within(rx.recv()).await.unwrap(), "text to all");
    }

    // Client-initiated close, with a code and a reason.
    let (id, conn, rx) = clients.remove(0);
    conn.close(4000, "client bye").unwrap();
    assert_eq!(next_ev(&events).await, Ev::Close(id, 4000, "client bye".into()));
    // The client reports the server's echo: the code, no reason.
    assert_eq!(within(rx.recv()).await.unwrap(), "close 4000 ");

    // Server-initiated close.
    let (id, conn, rx) = clients.remove(0);
    let handle = ws.connections().into_iter().find(|c| c.id().get() == id).unwrap();
    handle.close(4001, "server bye").unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), "close 4001 server bye");
    // The server reports the client's echo: the code, no reason.
    assert_eq!(next_ev(&events).await, Ev::Close(id, 4001, String::new()));
    assert!(!conn.is_open());

    // Graceful shutdown.
    let (id, conn, rx) = clients.remove(0);
    server.stop().await;
    assert_eq!(within(rx.recv()).await.unwrap(), "close 1001 server shutting down");
    assert_eq!(next_ev(&events).await, Ev::Close(id, 1001, String::new()), "the client's echo");
    assert!(!conn.is_open());
}

/// C's `Stream + Sink` client against S's callback server.
async fn stream_client_against_the_other_server<S: Runtime, C: Runtime>() {
    let (_ws, server) = echo_server::<S>().await;
    let mut ws = within(C::connect_stream(&WebSocketClient::new(), &server.url("/ws"))).await.unwrap();
    for i in 0..20 {
        within(ws.send(Message::text(format!("m{i}")))).await.unwrap();
    }
    for i in 0..20 {
        assert!(matches!(within(ws.next()).await, Some(Ok(Message::Text(t))) if t == format!("m{i}").as_str()));
    }
    within(ws.close()).await.unwrap();
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
    server.stop().await;
}

/// C's `WebSocket::client` against S's `WebSocket::accept`.
async fn stream_types_talk_to_each_other<S: Runtime, C: Runtime>() {
    let (addr, server) = S::stream_echo_server().await;
    let mut ws = within(C::stream_client(addr, "/pair")).await.unwrap();
    within(ws.send(Message::binary(vec![5u8; 300_000]))).await.unwrap();
    assert!(matches!(within(ws.next()).await, Some(Ok(Message::Binary(b))) if b.len() == 300_000));
    within(ws.close()).await.unwrap();
    assert_eq!(within(server).await.map(|f| f.code), Some(CloseCode::NORMAL));
}

/// A heartbeat on S's server keeps C's live client open (C answers Pings).
async fn heartbeat_pings_are_answered_across_runtimes<S: Runtime, C: Runtime>() {
    let settings = crest_driver::Settings::default().heartbeat(Duration::from_millis(50), Duration::from_millis(300));
    let ws = WebSocketServer::with_settings(settings);
    ws.on_message(|conn, text| drop(conn.send(text)));
    let server = serve_ws::<S>(&ws).await;
    let (tx, rx) = async_channel::unbounded();
    let client = WebSocketClient::new();
    client.on_message(move |_conn, text| drop(tx.try_send(text.to_string())));
    let conn = within(C::connect(&client, &server.url("/ws"))).await.unwrap();
    // Well past the idle timeout, the connection is still open and echoing.
    async_io::Timer::after(Duration::from_millis(900)).await;
    conn.send("still here").unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), "still here");
    assert_eq!(ws.connection_count(), 1);
    server.stop().await;
}

/// Instantiates each `scenario::<Server, Client>` for every pair of runtimes.
macro_rules! pairs {
    ($($name:ident),* $(,)?) => {
        pairs!(@pair async_std_client_tokio_server, Tokio, AsyncStd, $($name),*);
        pairs!(@pair tokio_client_async_std_server, AsyncStd, Tokio, $($name),*);
        pairs!(@pair smol_client_tokio_server, Tokio, Smol, $($name),*);
        pairs!(@pair tokio_client_smol_server, Smol, Tokio, $($name),*);
    };
    (@pair $module:ident, $server:ident, $client:ident, $($name:ident),*) => {
        mod $module {
            use crest_tests::{$server, $client};
            $(
                #[test]
                fn $name() {
                    crest_tests::run::<$client, _>(super::$name::<$server, $client>());
                }
            )*
        }
    };
}

pairs!(
    callback_client_echo_of_every_size,
    broadcast_close_codes_and_shutdown,
    stream_client_against_the_other_server,
    stream_types_talk_to_each_other,
    heartbeat_pings_are_answered_across_runtimes,
);
