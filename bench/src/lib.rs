//! Shared pieces of the crest side-by-side benchmark: the hand-written
//! WebSocket client side used by the load generators (handshake, pre-encoded
//! frames) and small `/proc` readers used to account server CPU and memory.
//!
//! The client side is deliberately not a WebSocket implementation: it writes
//! one fixed upgrade request, checks for `101`, and afterwards only writes
//! pre-encoded masked frames and compares what comes back byte for byte with
//! the exact server frame it expects. That keeps the load generator's cost per
//! message at "one write, one read, one memcmp".

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixed `Sec-WebSocket-Key` every connection sends (RFC 6455 §1.3's
/// sample nonce). Its accept value is [`WS_ACCEPT`].
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`WS_KEY`].
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The fixed masking key of every client frame.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const OP_BINARY: u8 = 0x2;

/// The HTTP/1.1 upgrade request for `addr`.
pub fn upgrade_request(addr: SocketAddr) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Connects to `addr`, performs the opening handshake and returns the stream
/// (with `TCP_NODELAY` set) plus any bytes that arrived after the response
/// head. Fails if the status is not `101` or it all takes longer than
/// `timeout`.
pub async fn connect_ws(addr: SocketAddr, timeout: Duration) -> io::Result<(TcpStream, Vec<u8>)> {
    match tokio::time::timeout(timeout, connect_ws_inner(addr)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "handshake timed out")),
    }
}

async fn connect_ws_inner(addr: SocketAddr) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&upgrade_request(addr)).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed during handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let ok = buf.starts_with(b"HTTP/1.1 101") && find(&buf[..end], WS_ACCEPT.as_bytes()).is_some();
            if !ok {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return Err(io::Error::other(format!("handshake refused: {head:?}")));
            }
            return Ok((s, buf.split_off(end + 4)));
        }
        if buf.len() > 16 * 1024 {
            return Err(io::Error::other("handshake response head too long"));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A deterministic payload of `size` bytes: printable ASCII for text (valid
/// UTF-8), pseudo-random bytes for binary.
pub fn payload(size: usize, text: bool) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..size)
        .map(|i| {
            if text {
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[i % 62]
            } else {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }
        })
        .collect()
}

fn frame_head(out: &mut Vec<u8>, opcode: u8, len: usize, masked: bool) {
    let m = if masked { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// The complete masked client frame (FIN set, minimal length encoding,
/// [`MASK`]) carrying `payload`.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    frame_head(&mut out, opcode, payload.len(), true);
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
    out
}

/// The exact frame a conforming server sends back when it echoes `payload`
/// as one message: FIN set, same opcode, unmasked, minimal length encoding.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    frame_head(&mut out, opcode, payload.len(), false);
    out.extend_from_slice(payload);
    out
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft
/// limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// Clock ticks per second for `/proc/*/stat` (`getconf CLK_TCK`, else 100).
pub fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` of process `pid` (all its threads) in clock ticks, from
/// `/proc/PID/stat`; `pid` may be `"self"`.
pub fn cpu_ticks(pid: &str) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: fields are counted
    // after the last ')'. utime and stime are fields 14 and 15 (1-based);
    // after the ')' the first field is field 3 (state).
    let rest = &stat[stat.rfind(')').ok_or_else(|| io::Error::other("bad stat"))? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let parse = |i: usize| -> io::Result<u64> {
        f.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| io::Error::other("bad stat field"))
    };
    Ok(parse(11)? + parse(12)?)
}

/// Machine-wide CPU time from the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTotals {
    /// user + nice + system: time spent running processes (any process).
    pub task: u64,
    /// irq + softirq: interrupt work (most of the loopback TCP receive path
    /// runs as softirq inside the sender's `write`). Without
    /// `CONFIG_IRQ_TIME_ACCOUNTING` this time is also part of the interrupted
    /// process's own CPU time; with it, it is charged to no process.
    pub irq: u64,
    /// steal: time the hypervisor gave this VM's CPUs to someone else.
    pub steal: u64,
}

/// Reads [`CpuTotals`] from `/proc/stat`.
pub fn cpu_totals() -> io::Result<CpuTotals> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line =
        stat.lines().next().filter(|l| l.starts_with("cpu ")).ok_or_else(|| io::Error::other("bad /proc/stat"))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Ok(CpuTotals { task: at(0) + at(1) + at(2), irq: at(5) + at(6), steal: at(7) })
}

/// `VmRSS` of process `pid` in bytes, from `/proc/PID/status`.
pub fn vm_rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(server_frame(OP_TEXT, b"hi"), b"\x81\x02hi");
        let c = client_frame(OP_BINARY, b"hi");
        assert_eq!(&c[..6], &[0x82, 0x82, 0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&c[6..], &[b'h' ^ 0x37, b'i' ^ 0xfa]);
        let big = vec![0u8; 70_000];
        assert_eq!(&server_frame(OP_BINARY, &big)[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(&server_frame(OP_BINARY, &big[..300])[..4], &[0x82, 126, 1, 44]);
        assert!(std::str::from_utf8(&payload(1000, true)).is_ok());
    }

    #[test]
    fn accept_key() {
        // Guard against typos in the constants: the RFC's own example pair.
        assert_eq!(WS_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(WS_ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn proc_readers() {
        assert!(cpu_ticks("self").is_ok());
        assert!(vm_rss_bytes(std::process::id()).unwrap() > 0);
    }
}
