//! Our client against tokio-tungstenite's server, and our `Stream + Sink`
//! type against both servers.

mod common;

use common::*;
use crest_tokio::{
    ClientRequest, CloseCode, Config, Connect, Message, Role, WebSocket, WebSocketClient, WebSocketServer,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as TMessage;

/// A tokio-tungstenite echo server; returns its address.
async fn tungstenite_echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn our_callback_client_against_a_tungstenite_server() {
    let addr = tungstenite_echo_server().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = WebSocketClient::new();
    let t = tx.clone();
    client.on_connect(move |conn| {
        let _ = t.send(format!("connect {}", conn.path()));
        conn.send("hello").unwrap();
    });
    let t = tx.clone();
    client.on_message(move |_conn, text| drop(t.send(format!("text {text}"))));
    let t = tx.clone();
    client.on_binary(move |_conn, data| drop(t.send(format!("binary {}", data.len()))));
    client.on_close(move |_conn, code, reason| drop(tx.send(format!("close {code} {reason}"))));
    let conn = within(client.connect(&format!("ws://{addr}/echo"))).await.unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), "connect /echo");
    assert_eq!(within(rx.recv()).await.unwrap(), "text hello");
    for size in [0, 125, 126, 65535, 65536, 1 << 20] {
        conn.send_binary(vec![1u8; size]).unwrap();
        assert_eq!(within(rx.recv()).await.unwrap(), format!("binary {size}"));
    }
    conn.close(1000, "done").unwrap();
    assert_eq!(within(rx.recv()).await.unwrap(), "close 1000 done");
    assert!(!conn.is_open());
}

#[tokio::test]
async fn our_stream_client_against_a_tungstenite_server() {
    let addr = tungstenite_echo_server().await;
    let mut ws = within(crest_tokio::connect(&format!("ws://{addr}/"))).await.unwrap();
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

#[tokio::test]
async fn connect_errors_are_typed() {
    let client = WebSocketClient::new();
    assert!(matches!(client.connect("wss://localhost/").await, Err(crest_tokio::Error::TlsRequired)));
    assert!(matches!(client.connect("http://localhost/").await, Err(crest_tokio::Error::Uri(_))));
    // A server that refuses the upgrade.
    let ws = WebSocketServer::new();
    ws.on_upgrade(|_, _| Err(crest_tokio::Response::new(403)));
    let server = serve_ws(&ws).await;
    match within(client.connect(&server.url("/ws"))).await {
        Err(crest_tokio::Error::Protocol(e)) => assert!(e.to_string().contains("403"), "{e}"),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn stream_type_on_both_ends_over_a_raw_socket() {
    // WebSocket<S> works over any AsyncRead + AsyncWrite: here a TcpStream
    // on both sides, one accepting, one connecting.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = WebSocket::accept(tcp, Config::default()).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Text(_) | Message::Binary(_)) {
                ws.send(m).await.unwrap();
            }
        }
        ws.close_frame().cloned()
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = ClientRequest::new(addr.to_string(), "/stream");
    let mut ws = within(WebSocket::client(tcp, request, Config::default())).await.unwrap();
    within(ws.send(Message::text("ping?"))).await.unwrap();
    assert!(matches!(within(ws.next()).await, Some(Ok(Message::Text(t))) if t == "ping?"));
    within(ws.close()).await.unwrap();
    let closed = within(server).await.unwrap().unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL);
    let _ = Role::Client;
}

#[tokio::test]
async fn tungstenite_client_and_our_client_talk_through_our_server() {
    // Both independent implementations in one conversation, via broadcast.
    let ws = WebSocketServer::new();
    let all = ws.clone();
    ws.on_message(move |_conn, text| {
        all.broadcast(text);
    });
    let (opened, mut on_open) = mpsc::unbounded_channel();
    ws.on_connect(move |_| {
        let _ = opened.send(());
    });
    let server = serve_ws(&ws).await;
    let mut theirs = peer(&server.url("/ws")).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = WebSocketClient::new();
    client.on_message(move |_conn, text| drop(tx.send(text.to_string())));
    let ours = within(client.connect(&server.url("/ws"))).await.unwrap();
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
    drop(theirs);
    server.stop().await;
}
