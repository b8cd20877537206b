//! Smoke test of the benchmark tools: every peer server echoes what loadgen
//! sends (closed loop and pipelined, text and binary, all three length
//! encodings), holds idle connections, and the broadcast pair works. A few
//! seconds in all; loopback only.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn start(program: &str, args: &[&str]) -> (Killed, SocketAddr) {
    let addr = free_addr();
    let child = Command::new(program).args(args).arg(addr.to_string()).stdout(Stdio::null()).spawn().unwrap();
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{program} {args:?} did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

fn kv(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        .parse()
        .unwrap()
}

fn loadgen(addr: SocketAddr, pid: u32, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--addr", &addr.to_string(), "--warmup", "0.1", "--duration", "0.3"])
        .args(["--server-pid", &pid.to_string()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "loadgen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn peer_servers_echo_under_loadgen() {
    for imp in ["tungstenite", "fastwebsockets", "tokio-websockets"] {
        let (srv, addr) = start(env!("CARGO_BIN_EXE_peer_echo"), &[imp]);
        for args in [
            &["--conns", "2", "--size", "100", "--text"][..],
            &["--conns", "3", "--size", "1000", "--pipeline", "4", "--binary"][..],
            &["--conns", "2", "--size", "70000", "--pipeline", "3", "--text"][..],
            &["--conns", "1", "--size", "0"][..],
        ] {
            let line = loadgen(addr, srv.0.id(), args);
            assert!(kv(&line, "msgs") > 0.0, "{imp} {args:?}: {line}");
            assert!(kv(&line, "server_cpu_us_per_msg") >= 0.0, "{imp} {args:?}: {line}");
        }
        // Idle mode: connections open, handshakes complete, released on stdin.
        let mut idle = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--addr", &addr.to_string(), "--idle", "200", "--hold", "30"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(idle.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("idle_ready conns=200"), "{imp}: {line:?}");
        idle.stdin.take().unwrap().write_all(b"\n").unwrap();
        assert!(idle.wait().unwrap().success());
    }
}

#[test]
fn broadcast_reaches_every_client() {
    let exe = env!("CARGO_BIN_EXE_broadcast");
    let (srv, addr) = start(exe, &["serve", "tungstenite"]);
    let out = Command::new(exe)
        .args(["client", "--addr", &addr.to_string(), "--conns", "50", "--rounds", "3"])
        .args(["--server-pid", &srv.0.id().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(kv(&stdout, "median_ms") > 0.0, "{stdout}");
}
