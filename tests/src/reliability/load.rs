//! Load: 10,000 concurrent connections, the clients in a child process.

use super::*;

// ----- 10,000 connections (clients in a child process) -----

static CLIENTS: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();

/// How to start the client process of [`ten_thousand_connections`]: a
/// program and the arguments before its own (the test target passes the
/// `reliability-clients` binary; the report binary, itself with
/// `--clients`).
pub fn set_clients_command(program: impl Into<PathBuf>, args: &[&str]) {
    let _ = CLIENTS.set((program.into(), args.iter().map(|a| (*a).to_owned()).collect()));
}

/// The connections of [`ten_thousand_connections`].
pub const CONNECTIONS: usize = 10_000;
/// Messages each of them sends (and gets back).
pub const MESSAGES: usize = 10;

/// Raises this process's soft limit of open files to its hard limit;
/// returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// 10,000 concurrent connections (clients in a child process, so each
/// process holds ~10,000 descriptors), each echoing 10 messages: every one
/// accounted for, in order, none lost or duplicated.
pub async fn ten_thousand_connections<R: Runtime>() -> Report {
    let _heavy = heavy().await;
    let limit = raise_fd_limit();
    assert!(
        limit >= CONNECTIONS as u64 + 200,
        "{CONNECTIONS} connections need {} open files per process; the hard limit is {limit} (raise it: ulimit -Hn)",
        CONNECTIONS + 200
    );
    let (program, args) = CLIENTS.get().cloned().expect("set_clients_command was not called");
    let ws = WebSocketServer::new();
    let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]);
    let c = counts.clone();
    ws.on_connect(move |_| {
        c[0].fetch_add(1, Ordering::Relaxed);
    });
    let c = counts.clone();
    ws.on_message(move |conn, text| {
        c[1].fetch_add(1, Ordering::Relaxed);
        let _ = conn.send(text);
    });
    let c = counts.clone();
    ws.on_close(move |_, code, _| {
        if code.0 == 1000 {
            c[2].fetch_add(1, Ordering::Relaxed);
        }
    });
    let server = serve_ws::<R>(&ws).await;
    let before = memory_kib().0;
    let start = Instant::now();
    let mut child = Command::new(&program)
        .args(&args)
        .args([server.addr.to_string(), CONNECTIONS.to_string(), MESSAGES.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = async_channel::unbounded();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send_blocking(line);
        }
    });
    let next_line = || async { within(lines.recv()).await.expect("the client process ended early") };
    let line = next_line().await;
    assert_eq!(line, format!("connected {CONNECTIONS}"), "client process: {line}");
    let connected = start.elapsed();
    let live = server.shutdown.clone();
    eventually("every connection is registered", || ws.connection_count() == CONNECTIONS).await;
    let held = memory_kib().0.saturating_sub(before);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    let line = next_line().await;
    let expected = format!("done received={} in_order=true", CONNECTIONS * MESSAGES);
    assert_eq!(line, expected, "client process: {line}");
    let exchanged = start.elapsed() - connected;
    assert!(child.wait().unwrap().success());
    eventually("every connection has ended", || live.live() == 0).await;
    assert_eq!(ws.connection_count(), 0);
    assert_eq!(counts[0].load(Ordering::Relaxed), CONNECTIONS);
    assert_eq!(counts[1].load(Ordering::Relaxed), CONNECTIONS * MESSAGES, "every message reached the server once");
    assert_eq!(counts[2].load(Ordering::Relaxed), CONNECTIONS, "every connection closed with 1000");
    server.stop().await;
    let mut report = Report::default();
    report.row(
        format!(
            "{CONNECTIONS} concurrent connections (clients in a child process), each sending {MESSAGES} messages and \
             reading the echoes, then closing"
        ),
        format!(
            "{CONNECTIONS} held at once (connected in {connected:.2?}, server RSS +{:.1} MiB, {} B per connection); \
             {} messages each way in {exchanged:.2?}, none lost, duplicated or reordered; all closed with 1000",
            held as f64 / 1024.0,
            held * 1024 / CONNECTIONS as u64,
            CONNECTIONS * MESSAGES
        ),
    );
    report
}

/// The client process of [`ten_thousand_connections`]: `ADDR CONNECTIONS
/// MESSAGES`. Connects every client (at most 256 handshakes in flight),
/// prints `connected N`, waits for a line on stdin, then every client sends
/// its messages and checks their echoes; prints `done received=N
/// in_order=true`, closes every connection and exits.
pub fn clients_main(args: &[String]) {
    let [addr, n, messages] = args else { panic!("usage: ADDR CONNECTIONS MESSAGES") };
    let (addr, n, messages): (SocketAddr, usize, usize) =
        (addr.parse().unwrap(), n.parse().unwrap(), messages.parse().unwrap());
    raise_fd_limit();
    smol::block_on(async {
        let (tokens, permits) = async_channel::bounded(256);
        let mut clients = Vec::new();
        for _ in 0..n {
            tokens.send(()).await.unwrap();
            let permits = permits.clone();
            clients.push(smol::spawn(async move {
                let tcp = raw_ws(addr, "/ws").await;
                permits.recv().await.unwrap();
                tcp
            }));
        }
        let mut conns = Vec::new();
        for c in clients {
            conns.push(c.await);
        }
        println!("connected {}", conns.len());
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        let exchanges: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut tcp)| {
                smol::spawn(async move {
                    let frames: Vec<Vec<u8>> =
                        (0..messages).map(|m| format!("client {i} message {m}").into_bytes()).collect();
                    let out: Vec<u8> = frames.iter().flat_map(|f| client_frame(1, f)).collect();
                    raw_write(&mut tcp, &out).await;
                    let expected: usize = frames.iter().map(|f| 2 + f.len()).sum();
                    let mut echo = vec![0u8; expected];
                    within(tcp.read_exact(&mut echo)).await.unwrap();
                    let got = server_frames(&echo);
                    let in_order =
                        got.len() == messages && got.iter().zip(&frames).all(|((b0, p), f)| *b0 == 0x81 && p == f);
                    raw_write(&mut tcp, &client_frame(8, &1000u16.to_be_bytes())).await;
                    let rest = read_to_end(&mut tcp).await;
                    assert_eq!(close_in(&rest).map(|c| c.0), Some(1000));
                    (got.len(), in_order)
                })
            })
            .collect();
        let (mut received, mut in_order) = (0, true);
        for e in exchanges {
            let (n, ok) = e.await;
            received += n;
            in_order &= ok;
        }
        println!("done received={received} in_order={in_order}");
    });
}
