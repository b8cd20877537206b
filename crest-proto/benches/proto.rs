//! `cargo bench -p crest-proto`: the sans-IO core's data path, with the
//! ratios the project's targets are stated in, measured in the same run.
//!
//! A small harness of our own rather than criterion: the targets compare
//! cases with each other (masking vs `memcpy` of the same buffer, receive vs
//! `memcpy`), so the output is one table with those ratios. Each case runs
//! a warm-up, then 15 samples; the median sample is reported.
//!
//! Receive cases consume their input (unmasking is in place), so every
//! iteration gets its own freshly filled buffer, prepared before the clock
//! starts; the `memcpy` baseline copies out of the same kind of buffers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crest_proto::deflate::DeflateConfig;
use crest_proto::{Accept, BytesMut, ClientRequest, Config, Connection, Event, Message};

/// Samples per case (`BENCH_SAMPLES`, default 15; 1 for a quick look or
/// under `valgrind --tool=callgrind`, whose instruction counts do not
/// depend on the machine's load).
fn samples() -> usize {
    std::env::var("BENCH_SAMPLES").ok().and_then(|s| s.parse().ok()).unwrap_or(15)
}

/// Median seconds per iteration of `f`, run in samples of `iters` iterations;
/// `setup` prepares each iteration's input outside the timed region.
fn measure<T>(iters: usize, mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> f64 {
    let n = samples();
    let mut samples = Vec::with_capacity(n);
    for sample in 0..=n {
        let inputs: Vec<T> = (0..iters).map(|_| setup()).collect();
        let start = Instant::now();
        for input in inputs {
            f(input);
        }
        let elapsed = start.elapsed();
        if sample > 0 {
            samples.push(elapsed.as_secs_f64() / iters as f64);
        }
    }
    samples.sort_by(f64::total_cmp);
    samples[n / 2]
}

fn open_server() -> Connection {
    let now = Instant::now();
    let config = Config { max_message_size: 1 << 30, max_frame_size: 1 << 30, ..Config::default() };
    let mut s = Connection::server(config, now);
    s.receive(
        now,
        b"GET / HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    while let Some(e) = s.poll_event() {
        if matches!(e, Event::Request(_)) {
            s.accept(Accept::new()).unwrap();
        }
    }
    let mut sink = Vec::new();
    s.poll_transmit(&mut sink);
    s
}

/// What a client sends: `count` messages of `size` bytes in frames of at most `frame` bytes.
fn client_wire(text: bool, size: usize, count: usize, frame: usize) -> Vec<u8> {
    let now = Instant::now();
    let config = Config { max_send_frame_size: frame, rng_seed: Some(1), ..Config::default() };
    let mut c = Connection::open(crest_proto::Role::Client, config, now);
    let _ = c.poll_event();
    let payload = "a".repeat(size);
    for _ in 0..count {
        let m = if text { Message::text(payload.clone()) } else { Message::binary(payload.clone().into_bytes()) };
        c.send(m).unwrap();
    }
    let mut wire = Vec::new();
    c.poll_transmit(&mut wire);
    wire
}

/// An open client and server that negotiated permessage-deflate.
fn deflate_pair(deflate: DeflateConfig) -> (Connection, Connection) {
    let now = Instant::now();
    let config = Config { max_message_size: 1 << 30, max_frame_size: 1 << 30, rng_seed: Some(5), ..Config::default() }
        .with_deflate(deflate);
    let mut client = Connection::client(ClientRequest::new("b", "/"), config.clone(), now).unwrap();
    let mut server = Connection::server(config, now);
    let mut wire = Vec::new();
    client.poll_transmit(&mut wire);
    server.receive(now, &wire);
    while let Some(e) = server.poll_event() {
        if matches!(e, Event::Request(_)) {
            server.accept(Accept::new()).unwrap();
        }
    }
    wire.clear();
    server.poll_transmit(&mut wire);
    assert!(String::from_utf8_lossy(&wire).contains("permessage-deflate"));
    client.receive(now, &wire);
    while client.poll_event().is_some() {}
    (client, server)
}

/// `count` different JSON messages of about 1 KiB, like a stream of events.
fn json_messages(count: usize) -> Vec<String> {
    (0..count)
        .map(|m| {
            let mut s = String::from("[");
            let mut i = 0;
            while s.len() < 1000 {
                let id = m * 1000 + i;
                s.push_str(&format!(
                    r#"{{"id":{id},"user":"user{}","score":{},"active":{}}},"#,
                    id * 7919 % 10007,
                    id * 31 % 997,
                    id.is_multiple_of(3)
                ));
                i += 1;
            }
            s.truncate(1023);
            s.push(']');
            s
        })
        .collect()
}

/// `count` different texts of 64 KiB: words from a small vocabulary, in a
/// pseudo-random order, so that they compress about as well as prose.
fn prose_messages(count: usize) -> Vec<String> {
    const WORDS: [&str; 32] = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
        "but",
        "have",
        "an",
        "had",
        "they",
        "websocket",
        "compression",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..count)
        .map(|_| {
            let mut s = String::with_capacity(64 << 10);
            while s.len() < (64 << 10) - 16 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(WORDS[(state % 32) as usize]);
                s.push(if state.is_multiple_of(11) { '.' } else { ' ' });
            }
            s.truncate(64 << 10);
            s
        })
        .collect()
}

struct Row {
    name: String,
    per_iter: f64,
    bytes: usize,
    messages: usize,
    note: String,
}

fn fmt_time(s: f64) -> String {
    if s < 1e-6 {
        format!("{:.1} ns", s * 1e9)
    } else if s < 1e-3 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.3} ms", s * 1e3)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects rows by substring.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut rows: Vec<Row> = Vec::new();
    let mib = 1 << 20;

    // --- masking vs memcpy, 1 MiB ---
    if wanted("mask") {
        let src = vec![0x5Au8; mib];
        let mut dst = vec![0u8; mib];
        let memcpy_1m = measure(
            200,
            || (),
            |_| {
                dst.copy_from_slice(black_box(&src));
                black_box(&mut dst);
            },
        );
        let mut buf = vec![0x5Au8; mib];
        let mask_1m = measure(
            200,
            || (),
            |_| {
                crest_proto::apply_mask(black_box(&mut buf), [1, 2, 3, 4], 0);
            },
        );
        let mask_ref = measure(
            20,
            || (),
            |_| {
                crest_proto::apply_mask_reference(black_box(&mut buf), [1, 2, 3, 4], 0);
            },
        );
        rows.push(Row {
            name: "memcpy 1 MiB".into(),
            per_iter: memcpy_1m,
            bytes: mib,
            messages: 0,
            note: String::new(),
        });
        rows.push(Row {
            name: "mask 1 MiB in place".into(),
            per_iter: mask_1m,
            bytes: mib,
            messages: 0,
            note: format!("{:.2}x memcpy speed (target >= 1.3x)", memcpy_1m / mask_1m),
        });
        rows.push(Row {
            name: "mask 1 MiB, byte-at-a-time reference".into(),
            per_iter: mask_ref,
            bytes: mib,
            messages: 0,
            note: format!("fast path is {:.1}x faster", mask_ref / mask_1m),
        });
    }

    // --- receive: decode + unmask + UTF-8 + reassemble ---
    let cases: &[(&str, bool, usize, usize, usize)] = &[
        ("text 16 B", true, 16, 10_000, usize::MAX),
        ("binary 16 B", false, 16, 10_000, usize::MAX),
        ("text 1 KiB", true, 1024, 1000, usize::MAX),
        ("binary 1 KiB", false, 1024, 1000, usize::MAX),
        ("text 64 KiB", true, 64 << 10, 16, usize::MAX),
        ("binary 64 KiB", false, 64 << 10, 16, usize::MAX),
        ("text 1 MiB", true, mib, 1, usize::MAX),
        ("binary 1 MiB", false, mib, 1, usize::MAX),
        ("binary 1 MiB in 64 KiB fragments", false, mib, 1, 64 << 10),
        ("text 1 MiB in 64 KiB fragments", true, mib, 1, 64 << 10),
    ];
    let mut memcpy_same = 0.0;
    for &(name, text, size, count, frame) in cases {
        let name = format!("receive {name}");
        if !wanted(&name) {
            continue;
        }
        let wire = client_wire(text, size, count, frame);
        let iters = (64 * mib / wire.len()).clamp(4, 200);
        let mut server = open_server();
        let per_iter = measure(
            iters,
            || BytesMut::from(&wire[..]),
            |input| {
                server.receive_bytes(Instant::now(), input);
                let mut n = 0;
                while let Some(e) = server.poll_event() {
                    black_box(&e);
                    n += 1;
                }
                assert_eq!(n, count);
            },
        );
        let mut note = String::new();
        if size == mib && count == 1 {
            let mut dst = vec![0u8; wire.len()];
            memcpy_same = measure(
                iters,
                || BytesMut::from(&wire[..]),
                |input| {
                    dst.copy_from_slice(&input);
                    black_box(&mut dst);
                },
            );
            note = format!(
                "{:.2}x the time of memcpy of the same buffer ({})",
                per_iter / memcpy_same,
                fmt_time(memcpy_same)
            );
            if !text && frame == usize::MAX {
                note.push_str(" (target <= 1.2x)");
            }
        }
        if size == 16 {
            note = format!("{:.1} M messages/s (target >= 50 M/s)", count as f64 / per_iter / 1e6);
        }
        rows.push(Row { name, per_iter, bytes: size * count, messages: count, note });
    }
    let _ = memcpy_same;

    // --- what Text's one `unsafe` (from_utf8_unchecked in text.rs) saves ---
    if wanted("second UTF-8") {
        let text = "κόσμε ascii and more ".repeat(mib / 24).into_bytes();
        let per_iter = measure(
            100,
            || (),
            |_| {
                black_box(std::str::from_utf8(black_box(&text)).is_ok());
            },
        );
        rows.push(Row {
            name: "second UTF-8 check of 1 MiB (avoided by Text's unchecked deref)".into(),
            per_iter,
            bytes: text.len(),
            messages: 0,
            note: "what every &str access would cost without text.rs's one unsafe block".into(),
        });
    }

    // --- in-memory echo: receive every message of a buffer, encode each reply ---
    for &(size, count) in &[(16usize, 10_000usize), (1024, 1000)] {
        let name = format!("echo {size} B text (receive + send + poll_transmit)");
        if !wanted(&name) {
            continue;
        }
        let wire = client_wire(true, size, count, usize::MAX);
        let mut server = open_server();
        let mut out = Vec::with_capacity(wire.len() * 2);
        let per_iter = measure(
            100,
            || BytesMut::from(&wire[..]),
            |input| {
                server.receive_bytes(Instant::now(), input);
                while let Some(e) = server.poll_event() {
                    if let Event::Text(t) = e {
                        server.send(Message::Text(t)).unwrap();
                    }
                }
                out.clear();
                server.poll_transmit(&mut out);
                black_box(&out);
            },
        );
        let per_msg = per_iter / count as f64;
        let note = if size == 16 {
            format!("{:.1} ns per message (target < 20 ns)", per_msg * 1e9)
        } else {
            format!("{:.1} ns per message", per_msg * 1e9)
        };
        rows.push(Row { name, per_iter, bytes: size * count, messages: count, note });
    }

    // --- reply by reply, as crest-driver writes: one message in, its reply taken as `Bytes` and dropped ---
    for reuse in [false, true] {
        let api = if reuse { "poll_transmit_bytes_in" } else { "poll_transmit_bytes" };
        let name = format!("echo 16 B text reply by reply ({api})");
        if !wanted(&name) {
            continue;
        }
        let count = 1000;
        let wire = client_wire(true, 16, count, usize::MAX);
        let frame_len = wire.len() / count;
        let mut server = open_server();
        let mut small = BytesMut::new();
        let per_iter = measure(
            100,
            || BytesMut::from(&wire[..]),
            |mut input| {
                let now = Instant::now();
                while !input.is_empty() {
                    let one = input.split_to(frame_len.min(input.len()));
                    server.receive_bytes(now, one);
                    while let Some(e) = server.poll_event() {
                        if let Event::Text(t) = e {
                            server.send(Message::Text(t)).unwrap();
                        }
                    }
                    if reuse {
                        while let Some(chunk) = server.poll_transmit_bytes_in(&mut small) {
                            black_box(chunk);
                        }
                    } else {
                        while let Some(chunk) = server.poll_transmit_bytes() {
                            black_box(chunk);
                        }
                    }
                }
            },
        );
        let per_msg = per_iter / count as f64;
        let note = format!("{:.1} ns per message", per_msg * 1e9);
        rows.push(Row { name, per_iter, bytes: 16 * count, messages: count, note });
    }

    // --- encode only ---
    for &(role, size, count) in
        &[("server", 16usize, 10_000usize), ("server", 64 << 10, 16), ("client", 16, 10_000), ("client", 64 << 10, 16)]
    {
        let name = format!("encode {role} {size} B binary");
        if !wanted(&name) {
            continue;
        }
        let r = if role == "server" { crest_proto::Role::Server } else { crest_proto::Role::Client };
        let mut conn = Connection::open(r, Config { rng_seed: Some(3), ..Config::default() }, Instant::now());
        let _ = conn.poll_event();
        let payload = crest_proto::Payload::from(vec![7u8; size]);
        let mut out = Vec::with_capacity((size + 14) * count);
        let per_iter = measure(
            50,
            || (),
            |_| {
                for _ in 0..count {
                    conn.send(Message::Binary(payload.clone())).unwrap();
                }
                out.clear();
                conn.poll_transmit(&mut out);
                black_box(&out);
            },
        );
        let note = format!("{:.1} ns per message", per_iter / count as f64 * 1e9);
        rows.push(Row { name, per_iter, bytes: size * count, messages: count, note });
    }

    // --- permessage-deflate: compress + frame, receive + inflate ---
    let deflate_cases: [(&str, Vec<String>, bool, u32); 4] = [
        ("1 KiB JSON", json_messages(200), false, 6),
        ("1 KiB JSON, level 1", json_messages(200), false, 1),
        ("1 KiB JSON, no context takeover", json_messages(200), true, 6),
        ("64 KiB text", prose_messages(4), false, 6),
    ];
    for (data, messages, reset, level) in deflate_cases {
        let (send, receive) = (format!("deflate send {data}"), format!("deflate receive {data}"));
        if !wanted(&send) && !wanted(&receive) {
            continue;
        }
        let deflate = DeflateConfig {
            level,
            server_no_context_takeover: reset,
            client_no_context_takeover: reset,
            ..DeflateConfig::default()
        };
        let bytes: usize = messages.iter().map(String::len).sum();
        let count = messages.len();
        if wanted(&send) {
            // Server side: compress and frame each message, take the output.
            let (_, mut server) = deflate_pair(deflate.clone());
            let mut out = Vec::with_capacity(bytes);
            let mut wire_len = 0;
            let per_iter = measure(
                10,
                || (),
                |_| {
                    for m in &messages {
                        server.send(Message::text(m.as_str())).unwrap();
                    }
                    out.clear();
                    server.poll_transmit(&mut out);
                    wire_len = out.len();
                    black_box(&out);
                },
            );
            let note = format!(
                "ratio {:.2} ({bytes} B -> {wire_len} B on the wire), {:.0} MB/s of text",
                bytes as f64 / wire_len as f64,
                bytes as f64 / per_iter / 1e6
            );
            rows.push(Row { name: send, per_iter, bytes, messages: count, note });
        }
        if wanted(&receive) {
            // What a client sends (masked, compressed), received by a server:
            // unmask, inflate, validate UTF-8.
            let (mut client, mut server) = deflate_pair(deflate);
            for m in &messages {
                client.send(Message::text(m.as_str())).unwrap();
            }
            let mut wire = Vec::new();
            client.poll_transmit(&mut wire);
            let per_iter = measure(
                10,
                || BytesMut::from(&wire[..]),
                |input| {
                    server.receive_bytes(Instant::now(), input);
                    let mut n = 0;
                    while let Some(e) = server.poll_event() {
                        assert!(matches!(e, Event::Text(_)), "{e:?}");
                        black_box(&e);
                        n += 1;
                    }
                    assert_eq!(n, count);
                },
            );
            let note = format!(
                "ratio {:.2} ({} B on the wire), {:.0} MB/s of text",
                bytes as f64 / wire.len() as f64,
                wire.len(),
                bytes as f64 / per_iter / 1e6
            );
            rows.push(Row { name: receive, per_iter, bytes, messages: count, note });
        }
    }

    println!("\n| case | time per iteration | throughput | messages/s | notes |");
    println!("|---|---:|---:|---:|---|");
    for r in &rows {
        let gbps = r.bytes as f64 / r.per_iter / 1e9;
        let msgs = if r.messages > 0 { format!("{:.2} M", r.messages as f64 / r.per_iter / 1e6) } else { "-".into() };
        println!("| {} | {} | {:.2} GB/s | {} | {} |", r.name, fmt_time(r.per_iter), gbps, msgs, r.note);
    }
    let _ = Duration::ZERO;
}
