//! `loadgen`: the WebSocket echo load generator of the side-by-side benchmark.
//!
//! Echo mode (default): opens `--conns` connections, then every connection
//! keeps `--pipeline K` messages of `--size` bytes in flight (K = 1 is a closed
//! loop like uWebSockets' `load_test`: send, wait for the verified echo, send
//! the next). After `--warmup` seconds it counts verified echoes for
//! `--duration` seconds and prints one `key=value` line:
//!
//! ```text
//! msgs=… secs=… msgs_per_sec=… loadgen_cpu=… [server_cpu_s=… server_cpu_us_per_msg=…]
//! ```
//!
//! `loadgen_cpu` is this process's CPU time over the window divided by the
//! window (1.0 = one core saturated). With `--server-pid PID` the server's
//! CPU time (utime+stime from `/proc/PID/stat`) over the same window is
//! reported too.
//!
//! Idle mode (`--idle N`): opens N connections, completes the handshake on
//! each, prints `idle_ready conns=N secs=…`, then holds them without sending
//! anything until a line (or EOF) arrives on stdin or `--hold` seconds pass.
//!
//! The client side is hand-written on raw tokio TCP sockets (see the crate
//! docs): frames are pre-encoded once and each echo is verified by comparing
//! the received bytes with the precomputed server frame. Runs on a tokio
//! current-thread runtime; pin it with `taskset`.

use std::io::{self, BufRead, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_bench::{client_frame, clk_tck, connect_ws, cpu_ticks, cpu_totals, payload, server_frame, CpuTotals};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Verified echoes received, all connections.
static MSGS: AtomicU64 = AtomicU64::new(0);

struct Opts {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    pipeline: usize,
    duration: f64,
    warmup: f64,
    text: bool,
    server_pid: Option<u32>,
    idle: Option<usize>,
    hold: f64,
    connect_concurrency: usize,
}

const USAGE: &str = "usage: loadgen --addr HOST:PORT [--conns N] [--size BYTES] [--pipeline K] \
[--duration SECS] [--warmup SECS] [--text|--binary] [--server-pid PID] \
[--idle N [--hold SECS]] [--connect-concurrency N]";

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:9001".parse().unwrap(),
        conns: 1,
        size: 16,
        pipeline: 1,
        duration: 3.0,
        warmup: 1.0,
        text: false,
        server_pid: None,
        idle: None,
        hold: 120.0,
        connect_concurrency: 128,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("bad value for {name}: {v:?}"))
        }
        match a.as_str() {
            "--addr" => o.addr = num("--addr", val("--addr")?)?,
            "--conns" => o.conns = num("--conns", val("--conns")?)?,
            "--size" => o.size = num("--size", val("--size")?)?,
            "--pipeline" => o.pipeline = num("--pipeline", val("--pipeline")?)?,
            "--duration" => o.duration = num("--duration", val("--duration")?)?,
            "--warmup" => o.warmup = num("--warmup", val("--warmup")?)?,
            "--text" => o.text = true,
            "--binary" => o.text = false,
            "--server-pid" => o.server_pid = Some(num("--server-pid", val("--server-pid")?)?),
            "--idle" => o.idle = Some(num("--idle", val("--idle")?)?),
            "--hold" => o.hold = num("--hold", val("--hold")?)?,
            "--connect-concurrency" => {
                o.connect_concurrency = num("--connect-concurrency", val("--connect-concurrency")?)?
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    // Everything is bounded: no unbounded runs, no absurd fan-out.
    if o.conns == 0 || o.conns > 50_000 || o.pipeline == 0 || o.pipeline > 4096 {
        return Err("--conns must be 1..=50000 and --pipeline 1..=4096".into());
    }
    if !(o.duration > 0.0 && o.duration <= 600.0 && o.warmup >= 0.0 && o.warmup <= 60.0) {
        return Err("--duration must be in (0, 600] and --warmup in [0, 60]".into());
    }
    if o.size > 64 << 20 || o.idle.is_some_and(|n| n == 0 || n > 50_000) {
        return Err("--size must be <= 64 MiB and --idle 1..=50000".into());
    }
    o.hold = o.hold.clamp(0.0, 3600.0);
    o.connect_concurrency = o.connect_concurrency.clamp(1, 1024);
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    crest_bench::raise_nofile();
    // Hard stop whatever happens (a stuck server, a lost wake-up): the run is
    // bounded in time even if something below never completes.
    let limit = o.warmup + o.duration + o.hold.max(0.0) * f64::from(u8::from(o.idle.is_some())) + 120.0;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(limit));
        eprintln!("loadgen: watchdog fired after {limit:.0} s, exiting");
        std::process::exit(3);
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("build tokio runtime");
    let r = match o.idle {
        Some(n) => rt.block_on(idle(&o, n)).map(|conns| {
            // Keep the sockets open (the runtime need not run for that) until
            // told to stop or the hold time is over.
            let hold = o.hold;
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(hold));
                std::process::exit(0);
            });
            let mut line = String::new();
            let _ = io::stdin().lock().read_line(&mut line);
            drop(conns);
        }),
        None => rt.block_on(echo(&o)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens `n` WebSocket connections, at most `--connect-concurrency` at a time.
async fn connect_all(o: &Opts, n: usize) -> io::Result<Vec<(TcpStream, Vec<u8>)>> {
    let sem = Arc::new(Semaphore::new(o.connect_concurrency));
    let addr = o.addr;
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let sem = sem.clone();
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore closed");
                connect_ws(addr, Duration::from_secs(30)).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.await.map_err(io::Error::other)?;
        out.push(r.map_err(|e| io::Error::new(e.kind(), format!("connection {i}: {e}")))?);
    }
    Ok(out)
}

async fn idle(o: &Opts, n: usize) -> io::Result<Vec<TcpStream>> {
    let t = Instant::now();
    let conns = connect_all(o, n).await?;
    let secs = t.elapsed().as_secs_f64();
    let mut streams = Vec::with_capacity(n);
    for (s, leftover) in conns {
        if !leftover.is_empty() {
            return Err(io::Error::other("server sent data right after the handshake"));
        }
        streams.push(s);
    }
    let mut out = io::stdout().lock();
    writeln!(out, "idle_ready conns={n} secs={secs:.3}")?;
    out.flush()?;
    Ok(streams)
}

/// CPU ticks of self and (optionally) the server at one instant.
struct Snap {
    at: Instant,
    msgs: u64,
    own: u64,
    server: Option<u64>,
    machine: CpuTotals,
}

fn snap(server_pid: Option<u32>) -> io::Result<Snap> {
    Ok(Snap {
        msgs: MSGS.load(Relaxed),
        at: Instant::now(),
        own: cpu_ticks("self")?,
        machine: cpu_totals()?,
        server: match server_pid {
            Some(p) => Some(cpu_ticks(&p.to_string())?),
            None => None,
        },
    })
}

async fn echo(o: &Opts) -> io::Result<()> {
    let opcode = if o.text { crest_bench::OP_TEXT } else { crest_bench::OP_BINARY };
    let body = payload(o.size, o.text);
    let frame = client_frame(opcode, &body);
    let expected = server_frame(opcode, &body);
    drop(body);

    let conns = connect_all(o, o.conns).await?;
    let (frame, expected): (Arc<[u8]>, Arc<[u8]>) = (frame.into(), expected.into());
    // Pipelined mode writes up to K frames with one syscall from this buffer.
    let frames: Arc<[u8]> = frame.repeat(o.pipeline).into();
    // Pipelined mode verifies each read with one memcmp against the expected
    // frame repeated past the read buffer's length.
    let read_buf = PIPE_READ_BUF.max(expected.len());
    let expected_rep: Arc<[u8]> =
        if o.pipeline > 1 { expected.repeat(read_buf / expected.len() + 2).into() } else { expected.clone() };

    let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel::<io::Error>();
    for (s, leftover) in conns {
        if !leftover.is_empty() {
            return Err(io::Error::other("server sent data right after the handshake"));
        }
        let err_tx = err_tx.clone();
        let (frame, expected) = (frame.clone(), expected.clone());
        if o.pipeline == 1 {
            tokio::spawn(async move {
                if let Err(e) = closed_loop(s, &frame, &expected).await {
                    let _ = err_tx.send(e);
                }
            });
        } else {
            let (frames, expected_rep) = (frames.clone(), expected_rep.clone());
            let k = o.pipeline;
            let elen = expected.len();
            tokio::spawn(async move {
                if let Err(e) = pipelined(s, k, &frames, &expected_rep, elen, read_buf).await {
                    let _ = err_tx.send(e);
                }
            });
        }
    }
    drop(err_tx);

    // Any connection failure (mismatch, EOF, reset) fails the whole run.
    let timed = async {
        tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
        let a = snap(o.server_pid)?;
        tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
        let b = snap(o.server_pid)?;
        Ok::<_, io::Error>((a, b))
    };
    let (a, b) = tokio::select! {
        r = timed => r?,
        Some(e) = err_rx.recv() => return Err(e),
    };
    let msgs = b.msgs - a.msgs;
    let secs = (b.at - a.at).as_secs_f64();
    let tck = clk_tck() as f64;
    let mut line = format!(
        "msgs={msgs} secs={secs:.3} msgs_per_sec={:.0} loadgen_cpu={:.3}",
        msgs as f64 / secs,
        (b.own - a.own) as f64 / tck / secs,
    );
    let server_ticks = match (a.server, b.server) {
        (Some(sa), Some(sb)) => {
            let cpu = (sb - sa) as f64 / tck;
            line += &format!(
                " server_cpu_s={cpu:.3} server_cpu={:.3} server_cpu_us_per_msg={:.3}",
                cpu / secs,
                if msgs > 0 { cpu * 1e6 / msgs as f64 } else { f64::NAN },
            );
            sb - sa
        }
        _ => 0,
    };
    // Machine-wide: interrupt time, steal, and the CPU time of everything
    // that is neither us nor the server (all busy time minus ours; without
    // CONFIG_IRQ_TIME_ACCOUNTING the interrupt work done inside our syscalls
    // is part of our own process time, so it is subtracted with it).
    let (ma, mb) = (a.machine, b.machine);
    let busy = (mb.task + mb.irq) - (ma.task + ma.irq);
    let other = busy.saturating_sub((b.own - a.own) + server_ticks);
    line += &format!(
        " irq_cpu={:.3} steal_cpu={:.3} other_cpu={:.3}",
        (mb.irq - ma.irq) as f64 / tck / secs,
        (mb.steal - ma.steal) as f64 / tck / secs,
        other as f64 / tck / secs,
    );
    if msgs == 0 {
        return Err(io::Error::other(format!("no echo completed in the window: {line}")));
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
    // Returning drops the runtime, which drops every connection.
}

/// Read buffer of the pipelined reader.
const PIPE_READ_BUF: usize = 256 * 1024;
/// From this frame size on, the pipelined writer writes one frame per call.
const LARGE_FRAME: usize = 256 * 1024;
/// Slack past the expected frame in the closed-loop read buffer: a read that
/// returns less than the buffer tells tokio the socket is drained, so the
/// next read waits for readiness instead of first failing with EAGAIN.
const SLACK: usize = 4096;

fn mismatch(got: &[u8], want: &[u8]) -> io::Error {
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    io::Error::other(format!(
        "echo mismatch at byte {at}: got {:02x?}, want {:02x?}",
        &got[at..(at + 16).min(got.len())],
        &want[at..(at + 16).min(want.len())]
    ))
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")
}

async fn closed_loop(mut s: TcpStream, frame: &[u8], expected: &[u8]) -> io::Result<()> {
    let mut buf = vec![0u8; expected.len() + SLACK];
    loop {
        s.write_all(frame).await?;
        let mut got = 0;
        while got < expected.len() {
            let n = s.read(&mut buf[got..]).await?;
            if n == 0 {
                return Err(eof());
            }
            got += n;
        }
        if buf[..got] != *expected {
            return Err(mismatch(&buf[..got], expected));
        }
        MSGS.fetch_add(1, Relaxed);
    }
}

async fn pipelined(
    s: TcpStream,
    k: usize,
    frames: &[u8],
    expected_rep: &[u8],
    elen: usize,
    read_buf: usize,
) -> io::Result<()> {
    let flen = frames.len() / k;
    let (mut r, mut w) = s.into_split();
    // One permit per message that may be sent; the reader returns a permit
    // for every verified echo, so exactly K are in flight in steady state.
    let credits = Arc::new(Semaphore::new(k));
    let writer_credits = credits.clone();
    let frames: Arc<[u8]> = frames.into();
    let writer = tokio::spawn(async move {
        loop {
            writer_credits.acquire().await.map_err(io::Error::other)?.forget();
            let mut n = 1;
            let more = writer_credits.available_permits();
            if more > 0 {
                writer_credits.try_acquire_many(more as u32).map_err(io::Error::other)?.forget();
                n += more;
            }
            if flen >= LARGE_FRAME {
                // Large frames: write the same copy n times so the source
                // stays in cache (the kernel's copy from a cold 16 MiB buffer
                // was a fifth of loadgen's CPU at 1 MiB).
                for _ in 0..n {
                    w.write_all(&frames[..flen]).await?;
                }
            } else {
                w.write_all(&frames[..n * flen]).await?;
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), io::Error>(())
    });
    let _abort = AbortOnDrop(writer.abort_handle());
    let mut buf = vec![0u8; read_buf];
    let mut pos = 0; // offset inside the current expected frame
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Err(if writer.is_finished() {
                match writer.await {
                    Ok(Err(e)) => e,
                    _ => eof(),
                }
            } else {
                eof()
            });
        }
        if buf[..n] != expected_rep[pos..pos + n] {
            return Err(mismatch(&buf[..n], &expected_rep[pos..pos + n]));
        }
        let done = (pos + n) / elen;
        pos = (pos + n) % elen;
        if done > 0 {
            if done > k - credits.available_permits() {
                return Err(io::Error::other("more echoes than messages sent"));
            }
            MSGS.fetch_add(done as u64, Relaxed);
            credits.add_permits(done);
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
