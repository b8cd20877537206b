//! `broadcast`: fan-out benchmark, one message to many connected clients.
//!
//! ```text
//! broadcast serve tungstenite|crest <addr>
//! broadcast client --addr A [--conns 10000] [--size 1024] [--rounds 10] [--server-pid PID]
//! ```
//!
//! `serve tungstenite` is tokio-tungstenite's chat-server example
//! (`examples/server.rs`) on a current-thread runtime, minus the printing:
//! every peer has an unbounded channel whose receiver is `forward`ed into the
//! peer's sink, and a message received from one peer is `clone()`d into the
//! channel of every other peer.
//!
//! `client` opens `--conns` receiving connections plus one trigger connection
//! (hand-written client, as in `loadgen`). Each round the trigger sends one
//! `--size`-byte binary message; the round's time runs from just before that
//! write until every receiver has read and verified the complete echoed frame.
//! Prints one `key=value` line with min/median/max milliseconds per broadcast
//! and, with `--server-pid`, the server's CPU milliseconds per broadcast.
//!
//! `serve crest` is the same chat relay on crest-tokio: `on_binary` calls
//! `broadcast_binary_except`, which encodes the frame once and hands every
//! other connection a reference to the same bytes.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_bench::{client_frame, clk_tck, connect_ws, cpu_ticks, payload, server_frame, OP_BINARY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    crest_bench::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("build tokio runtime");
    let r = match args.first().map(String::as_str) {
        Some("serve") if args.len() == 3 && matches!(args[1].as_str(), "tungstenite" | "crest") => {
            match args[2].parse() {
                Ok(addr) if args[1] == "crest" => rt.block_on(crest_server(addr)),
                Ok(addr) => rt.block_on(tungstenite_server(addr)),
                Err(e) => Err(io::Error::other(format!("bad address: {e}"))),
            }
        }
        Some("client") => match ClientOpts::parse(&args[1..]) {
            Ok(o) => {
                let limit = 120.0 + o.rounds as f64 * 30.0;
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs_f64(limit));
                    eprintln!("broadcast: watchdog fired after {limit:.0} s, exiting");
                    std::process::exit(3);
                });
                rt.block_on(client(o))
            }
            Err(e) => Err(io::Error::other(e)),
        },
        _ => {
            eprintln!(
                "usage: broadcast serve tungstenite|crest <addr>\n       broadcast client --addr A \
                 [--conns N] [--size BYTES] [--rounds R] [--server-pid PID]"
            );
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broadcast: {e}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------ tokio-tungstenite side

mod tung {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use futures_channel::mpsc::{unbounded, UnboundedSender};
    use futures_util::{future, pin_mut, StreamExt, TryStreamExt};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::protocol::Message;

    type Tx = UnboundedSender<Message>;
    pub(crate) type PeerMap = Arc<Mutex<HashMap<SocketAddr, Tx>>>;

    pub(crate) async fn handle_connection(peer_map: PeerMap, raw_stream: TcpStream, addr: SocketAddr) {
        let Ok(ws_stream) = tokio_tungstenite::accept_async(raw_stream).await else {
            return;
        };
        let (tx, rx) = unbounded();
        peer_map.lock().unwrap().insert(addr, tx);

        let (outgoing, incoming) = ws_stream.split();
        let broadcast_incoming = incoming.try_for_each(|msg| {
            if msg.is_text() || msg.is_binary() {
                let peers = peer_map.lock().unwrap();
                let recipients = peers.iter().filter(|(peer_addr, _)| peer_addr != &&addr);
                for (_, recp) in recipients {
                    let _ = recp.unbounded_send(msg.clone());
                }
            }
            future::ok(())
        });
        let receive_from_others = rx.map(Ok).forward(outgoing);

        pin_mut!(broadcast_incoming, receive_from_others);
        future::select(broadcast_incoming, receive_from_others).await;
        peer_map.lock().unwrap().remove(&addr);
    }
}

async fn tungstenite_server(addr: SocketAddr) -> io::Result<()> {
    let state = tung::PeerMap::default();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(tung::handle_connection(state.clone(), stream, peer));
            }
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

// ------------------------------------------------------------------ crest side

async fn crest_server(addr: SocketAddr) -> io::Result<()> {
    let ws = crest_tokio::WebSocketServer::new();
    let hub = ws.clone();
    ws.on_binary(move |conn, data| {
        hub.broadcast_binary_except(conn, data);
    });
    let hub = ws.clone();
    ws.on_message(move |conn, text| {
        hub.broadcast_except(conn, text);
    });
    let mut app = crest_tokio::App::new();
    app.fallback(&ws);
    app.serve(tokio::net::TcpListener::bind(addr).await?).await
}

// ----------------------------------------------------------------- the client

struct ClientOpts {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    rounds: usize,
    server_pid: Option<u32>,
}

impl ClientOpts {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = ClientOpts {
            addr: "127.0.0.1:9001".parse().unwrap(),
            conns: 10_000,
            size: 1024,
            rounds: 10,
            server_pid: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
            let bad = || format!("bad value for {a}: {v:?}");
            match a.as_str() {
                "--addr" => o.addr = v.parse().map_err(|_| bad())?,
                "--conns" => o.conns = v.parse().map_err(|_| bad())?,
                "--size" => o.size = v.parse().map_err(|_| bad())?,
                "--rounds" => o.rounds = v.parse().map_err(|_| bad())?,
                "--server-pid" => o.server_pid = Some(v.parse().map_err(|_| bad())?),
                _ => return Err(format!("unknown argument {a:?}")),
            }
        }
        if o.conns == 0 || o.conns > 50_000 || o.rounds == 0 || o.rounds > 1000 || o.size > 1 << 20 {
            return Err("--conns 1..=50000, --rounds 1..=1000, --size <= 1 MiB".into());
        }
        Ok(o)
    }
}

async fn client(o: ClientOpts) -> io::Result<()> {
    let body = payload(o.size, false);
    let frame = client_frame(OP_BINARY, &body);
    let expected: Arc<[u8]> = server_frame(OP_BINARY, &body).into();

    // Receivers first, at most 128 handshakes in flight.
    let sem = Arc::new(Semaphore::new(128));
    let handles: Vec<_> = (0..o.conns)
        .map(|_| {
            let sem = sem.clone();
            let addr = o.addr;
            tokio::spawn(async move {
                let _p = sem.acquire_owned().await.expect("semaphore");
                connect_ws(addr, Duration::from_secs(30)).await
            })
        })
        .collect();
    let mut receivers = Vec::with_capacity(o.conns);
    for h in handles {
        let (s, leftover) = h.await.map_err(io::Error::other)??;
        if !leftover.is_empty() {
            return Err(io::Error::other("data right after the handshake"));
        }
        receivers.push(s);
    }
    let (mut trigger, _) = connect_ws(o.addr, Duration::from_secs(30)).await?;
    // Let the server finish registering the last peers (it does so after
    // writing the 101).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let done = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(Notify::new());
    let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel::<io::Error>();
    let n = o.conns;
    for mut s in receivers {
        let (expected, done, all_done, err_tx) = (expected.clone(), done.clone(), all_done.clone(), err_tx.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; expected.len() + 4096];
            loop {
                let mut got = 0;
                while got < expected.len() {
                    match s.read(&mut buf[got..]).await {
                        Ok(0) => {
                            let _ = err_tx.send(io::Error::other("server closed a receiver"));
                            return;
                        }
                        Ok(k) => got += k,
                        Err(e) => {
                            let _ = err_tx.send(e);
                            return;
                        }
                    }
                }
                if buf[..got] != *expected {
                    let _ = err_tx.send(io::Error::other("broadcast frame mismatch"));
                    return;
                }
                if done.fetch_add(1, Relaxed) + 1 == n {
                    all_done.notify_one();
                }
            }
        });
    }
    drop(err_tx);

    let mut times = Vec::with_capacity(o.rounds);
    let tck = clk_tck() as f64;
    let cpu0 = match o.server_pid {
        Some(p) => Some(cpu_ticks(&p.to_string())?),
        None => None,
    };
    for round in 0..o.rounds {
        done.store(0, Relaxed);
        let t = Instant::now();
        trigger.write_all(&frame).await?;
        tokio::select! {
            _ = all_done.notified() => {}
            Some(e) = err_rx.recv() => return Err(e),
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                return Err(io::Error::other(format!(
                    "round {round}: only {} of {n} receivers got the message in 30 s",
                    done.load(Relaxed)
                )));
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
        // Let every connection go quiet between rounds.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = match (o.server_pid, cpu0) {
        (Some(p), Some(c0)) => Some((cpu_ticks(&p.to_string())? - c0) as f64 / tck),
        _ => None,
    };
    times.sort_by(f64::total_cmp);
    let mut line = format!(
        "conns={n} size={} rounds={} min_ms={:.2} median_ms={:.2} max_ms={:.2}",
        o.size,
        o.rounds,
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    if let Some(c) = cpu {
        line += &format!(" server_cpu_ms_per_broadcast={:.2}", c * 1e3 / o.rounds as f64);
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
