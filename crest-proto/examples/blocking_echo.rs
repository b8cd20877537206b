//! An echo server on blocking `std::net` sockets, a thread per connection,
//! using crest-proto alone: the protocol core needs no async runtime.
//!
//! ```text
//! cargo run --release -p crest-proto --example blocking_echo -- 127.0.0.1:9003
//! ```
//!
//! Echoes every text and binary message on any path; answers plain HTTP
//! requests with 426. Accepts permessage-deflate (RFC 7692) when offered. This is the testee of the Autobahn conformance run.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crest_proto::deflate::DeflateConfig;
use crest_proto::{Accept, Config, Connection, Event, Message, Response};

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9003".to_owned());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("blocking_echo listening on ws://{}", listener.local_addr()?);
    // One configuration shared by every connection.
    let config = Arc::new(Config::default().with_deflate(DeflateConfig::default()));
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let config = config.clone();
                thread::spawn(move || {
                    if let Err(e) = serve(stream, config) {
                        eprintln!("connection ended with an I/O error: {e}");
                    }
                });
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
    Ok(())
}

/// Drives one connection: the whole event loop of an embedder.
fn serve(mut stream: TcpStream, config: Arc<Config>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = Connection::server(config, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        // Events first: answer requests, echo messages.
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request(req) if req.is_websocket() => {
                    conn.accept(Accept::new()).map_err(io::Error::other)?;
                }
                Event::Request(_) => {
                    let reply = Response::new(426).header("Upgrade", "websocket").body("WebSocket endpoint\n");
                    conn.respond(reply).map_err(io::Error::other)?;
                }
                Event::Text(text) => {
                    // Err only once a Close was seen; nothing is left to echo then.
                    let _ = conn.send(Message::Text(text));
                }
                Event::Binary(data) => {
                    let _ = conn.send(Message::Binary(data));
                }
                Event::Error(e) => eprintln!("peer error: {e}"),
                Event::Open | Event::Ping(_) | Event::Pong(_) | Event::Closed(_) => {}
            }
        }
        // Then everything queued: 101, echoes, pongs, close frames.
        conn.poll_transmit(&mut out);
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if conn.is_finished() {
            // RFC 6455 §7.1.1: the server closes the TCP connection first.
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        // Sleep in read() until data arrives or the next deadline passes.
        let wait = conn.poll_timeout().map(|at| at.saturating_duration_since(Instant::now()));
        stream.set_read_timeout(wait.map(|d| d.max(Duration::from_millis(1))))?;
        match stream.read(&mut buf) {
            Ok(0) => conn.receive_eof(),
            Ok(n) => conn.receive(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                conn.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
