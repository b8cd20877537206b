//! `peer_echo <impl> <addr>`: an echo server built on another Rust WebSocket
//! library, for the side-by-side benchmark against crest.
//!
//! `<impl>` is one of `tungstenite`, `fastwebsockets`, `tokio-websockets`.
//! Every server runs on a tokio current-thread runtime, accepts any number of
//! connections, and echoes every text and binary message back with the same
//! opcode. Each one is written the way the library's own echo example does it,
//! with the library's default configuration; all three defaults already allow
//! messages and frames far larger than the 1 MiB the benchmark sends:
//!
//! * tokio-tungstenite: `accept_async`, then `split()` and
//!   `read.try_filter(text || binary).forward(write)` (its `echo-server.rs`).
//!   Defaults: max message 64 MiB, max frame 16 MiB.
//! * fastwebsockets: hyper 1 `http1` connection `.with_upgrades()`,
//!   `upgrade::upgrade`, `FragmentCollector`, `read_frame`/`write_frame`,
//!   handler run `unconstrained` (its `echo_server.rs`). Default max message
//!   64 MiB.
//! * tokio-websockets: `ServerBuilder::new().accept(stream)`, then
//!   `while let Some(msg) = ws.next() { if text || binary { ws.send(msg) } }`
//!   (its `autobahn_server.rs`/`echo_server.rs`). Defaults: max payload
//!   64 MiB, outgoing frame size 4 MiB (so a 1 MiB echo is one frame).
//!
//! Nothing is printed on the normal path; connection errors (the load
//! generator simply drops its sockets at the end) are ignored.

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::{TcpListener, TcpStream};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: peer_echo <tungstenite|fastwebsockets|tokio-websockets> <addr>");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match args[2].parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("peer_echo: bad address {:?}: {e}", args[2]);
            return ExitCode::from(2);
        }
    };
    let serve: fn(TcpStream) = match args[1].as_str() {
        "tungstenite" => tungstenite_conn,
        "fastwebsockets" => fastwebsockets_conn,
        "tokio-websockets" => tokio_websockets_conn,
        other => {
            eprintln!("peer_echo: unknown impl {other:?}");
            return ExitCode::from(2);
        }
    };
    // The idle-memory test holds 10,000 connections open.
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("build tokio runtime");
    rt.block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("peer_echo: bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    serve(stream);
                }
                // EMFILE and friends: back off briefly instead of spinning.
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
}

// ---------------------------------------------------------------- tungstenite

fn tungstenite_conn(stream: TcpStream) {
    use futures_util::{future, StreamExt, TryStreamExt};
    tokio::spawn(async move {
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (write, read) = ws.split();
        let _ = read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary())).forward(write).await;
    });
}

// ------------------------------------------------------------- fastwebsockets

mod fws {
    use bytes::Bytes;
    use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
    use http_body_util::Empty;
    use hyper::body::Incoming;
    use hyper::{Request, Response};

    pub(crate) async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
        let mut ws = FragmentCollector::new(fut.await?);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) async fn server_upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::spawn(async move {
            let _ = tokio::task::unconstrained(handle_client(fut)).await;
        });
        Ok(response)
    }
}

fn fastwebsockets_conn(stream: TcpStream) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    tokio::spawn(async move {
        let io = hyper_util::rt::TokioIo::new(stream);
        let _ = http1::Builder::new().serve_connection(io, service_fn(fws::server_upgrade)).with_upgrades().await;
    });
}

// ----------------------------------------------------------- tokio-websockets

fn tokio_websockets_conn(stream: TcpStream) {
    use futures_util::{SinkExt, StreamExt};
    tokio::spawn(async move {
        let Ok((_request, mut ws)) = tokio_websockets::ServerBuilder::new().accept(stream).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
}
