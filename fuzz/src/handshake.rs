//! `handshake_request` and `handshake_response`: the HTTP side of the opening
//! handshake, through the public `Connection` API.

use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use crest_proto::{
    accept_key, Accept, ClientRequest, CloseCode, CloseFrame, Config, Connection, Error, Event, HandshakeError,
    Request, Response, Role, SendError, State,
};

use crate::stream::{check_events, check_output, Transcript};
use crate::{
    client_request, drain, flags, has_head_end, may_start_request, response_status, stream_config, SAMPLE_ACCEPT,
};

/// The `handshake_request` target body: `data` as a raw request head, then
/// as the description of a request our own client generates.
pub fn request(data: &[u8]) {
    raw_request(data);
    generated_request(data);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn abnormal() -> Event {
    Event::Closed(CloseFrame::new(CloseCode::ABNORMAL, ""))
}

/// Any bytes: need more (no blank line yet, within the limit), a parsed
/// request, or a handshake error answered with its own HTTP status.
fn raw_request(data: &[u8]) {
    let config = stream_config(0);
    let limit = config.max_handshake_size;
    let now = Instant::now();
    let mut server = Connection::server(config, now);
    server.receive(now, data);
    let events = drain(&mut server);
    let mut out = Vec::new();
    server.poll_transmit(&mut out);
    let need_more = !has_head_end(data) && data.len() <= limit && may_start_request(data);
    assert_eq!(events.is_empty(), need_more, "need more, or an answer: {events:?}");
    match events.as_slice() {
        [] => {
            assert_eq!(server.state(), State::Connecting);
            assert!(out.is_empty(), "output before the head is complete");
            assert_eq!(server.buffered_len(), data.len());
        }
        [Event::Request(request)] => {
            check_request(request);
            if request.is_websocket() {
                server.accept(Accept::new()).expect("accepting a WebSocket request");
                let after = drain(&mut server);
                assert_eq!(after.first(), Some(&Event::Open));
                server.poll_transmit(&mut out);
                assert_eq!(response_status(&out), Some(101));
                let key = request.header("sec-websocket-key").expect("a WebSocket request has a key").trim_ascii();
                let line = format!("\r\nSec-WebSocket-Accept: {}\r\n", accept_key(key.as_bytes()));
                assert!(contains(&out, &line), "101 without the right accept value");
            } else {
                assert_eq!(server.accept(Accept::new()), Err(SendError::NotWebSocket));
                server.respond(Response::new(200).body("plain")).expect("responding to a pending request");
                assert_eq!(drain(&mut server), [abnormal()]);
                server.poll_transmit(&mut out);
                assert_eq!(response_status(&out), Some(200));
            }
        }
        [Event::Error(Error::Handshake(e)), closed] => {
            assert_eq!(closed, &abnormal());
            assert_eq!(response_status(&out), Some(e.status()), "status for {e:?}");
            assert!(contains(&out, "\r\nConnection: close\r\n"));
            match e {
                HandshakeError::UnsupportedVersion(_) => {
                    assert!(contains(&out, "\r\nSec-WebSocket-Version: 13\r\n"));
                }
                HandshakeError::MethodNotAllowed(_) => assert!(contains(&out, "\r\nAllow: GET\r\n")),
                HandshakeError::HeadTooLarge { .. } => assert!(data.len() > limit),
                HandshakeError::Http("not an HTTP request") => assert!(!may_start_request(data)),
                _ => {}
            }
            assert!(server.is_finished());
        }
        other => panic!("unexpected events for a request head: {other:?}"),
    }
}

/// What the server reports of a request agrees with itself.
fn check_request(r: &Request) {
    match r.query() {
        Some(q) => assert_eq!(r.uri(), format!("{}?{q}", r.path())),
        None => assert_eq!(r.uri(), r.path()),
    }
    if r.is_websocket() {
        assert_eq!(r.method(), "GET");
        for p in r.protocols() {
            assert!(!p.is_empty() && !p.contains(',') && p.trim_ascii() == p, "{p:?}");
        }
    } else {
        assert!(r.protocols().is_empty() && r.extensions().is_empty());
    }
}

/// A request our client generator builds from fuzzer-chosen parts.
#[derive(Debug, Arbitrary)]
struct Generated {
    host: String,
    resource: String,
    protocols: Vec<String>,
    headers: Vec<(HeaderName, String)>,
    key: [u8; 16],
}

#[derive(Debug, Arbitrary)]
enum HeaderName {
    Origin,
    Authorization,
    Cookie,
    UserAgent,
    Extensions,
    Other(String),
}

impl HeaderName {
    fn as_str(&self) -> &str {
        match self {
            Self::Origin => "Origin",
            Self::Authorization => "Authorization",
            Self::Cookie => "Cookie",
            Self::UserAgent => "User-Agent",
            Self::Extensions => "Sec-WebSocket-Extensions",
            Self::Other(s) => s,
        }
    }
}

/// Headers the generator writes itself; the same name added again by the
/// caller is caller misuse that the generator does not reject (yet).
const OWN_HEADERS: [&str; 3] = ["sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol"];

/// Whatever request our client generator agrees to produce, our server
/// parses as a WebSocket upgrade with the same target, host, subprotocols
/// and headers; its 101 then opens the client.
fn generated_request(data: &[u8]) {
    let Ok(mut g) = Generated::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    g.protocols.truncate(4);
    g.headers.truncate(8);
    g.headers.retain(|(n, _)| !OWN_HEADERS.iter().any(|o| n.as_str().eq_ignore_ascii_case(o)));
    let mut request = ClientRequest::new(g.host.clone(), g.resource.clone()).key(g.key);
    for p in &g.protocols {
        request = request.protocol(p.clone());
    }
    for (n, v) in &g.headers {
        request = request.header(n.as_str(), v.clone());
    }
    let config = Config { rng_seed: Some(1), ..Config::default() };
    let now = Instant::now();
    let Ok(mut client) = Connection::client(request, config.clone(), now) else {
        return; // refused by the generator: nothing was produced
    };
    let mut wire = Vec::new();
    client.poll_transmit(&mut wire);
    assert!(wire.len() <= config.max_handshake_size, "a 16 KiB request from a short input");
    let mut server = Connection::server(config, now);
    server.receive(now, &wire);
    let events = drain(&mut server);
    let [Event::Request(r)] = events.as_slice() else {
        panic!("our server refused our client's request {:?}: {events:?}", String::from_utf8_lossy(&wire));
    };
    assert!(r.is_websocket());
    assert_eq!(r.method(), "GET");
    assert_eq!(r.uri(), g.resource);
    assert_eq!(r.host(), Some(g.host.trim_ascii()));
    assert_eq!(r.protocols(), g.protocols, "subprotocols offered");
    for (n, v) in &g.headers {
        assert!(
            r.headers().any(|(name, value)| name == n.as_str() && value.trim_ascii() == v.as_bytes().trim_ascii()),
            "header {:?}: {v:?} lost",
            n.as_str()
        );
    }
    let chosen = g.protocols.first().cloned();
    let mut accept = Accept::new();
    if let Some(p) = &chosen {
        accept = accept.protocol(p.clone());
    }
    server.accept(accept).expect("accepting our own client's request");
    assert_eq!(drain(&mut server), [Event::Open]);
    let mut answer = Vec::new();
    server.poll_transmit(&mut answer);
    client.receive(now, &answer);
    assert_eq!(drain(&mut client), [Event::Open], "our client refused our server's 101");
    assert_eq!(client.protocol(), chosen.as_deref());
}

/// The `handshake_response` target body: any bytes as the server's answer to
/// the sample request (which offers `chat`, `superchat` and `x-fuzz`).
pub fn response(data: &[u8]) {
    let config = stream_config(flags::EXTENSION);
    let now = Instant::now();
    let mut client = Connection::client(client_request(), config.clone(), now).expect("the sample request is valid");
    let mut request = Vec::new();
    client.poll_transmit(&mut request);
    client.receive(now, data);
    let events = drain(&mut client);
    let mut output = Vec::new();
    client.poll_transmit(&mut output);
    let need_more = !has_head_end(data) && data.len() <= config.max_handshake_size;
    assert_eq!(events.is_empty(), need_more, "need more, or an answer: {events:?}");
    match events.first() {
        None => {
            assert_eq!(client.state(), State::Connecting);
            assert!(output.is_empty());
            assert_eq!(client.buffered_len(), data.len());
        }
        Some(Event::Open) => {
            assert!(contains(data, SAMPLE_ACCEPT), "opened without our accept value");
            assert_eq!(client.response_header("sec-websocket-accept").map(str::trim_ascii), Some(SAMPLE_ACCEPT));
            assert!(matches!(client.protocol(), None | Some("chat" | "superchat")));
            // Bytes after the head are frames: the stream invariants hold.
            let t = Transcript { events, output };
            check_events(Role::Client, &config, &t.events);
            check_output(Role::Client, &config, &t);
        }
        Some(Event::Error(Error::Handshake(e))) => {
            assert_eq!(events, [Event::Error(e.clone().into()), abnormal()]);
            assert!([400, 405, 426, 431].contains(&e.status()));
            assert!(output.is_empty(), "a client answers a bad response with nothing");
            if let HandshakeError::HeadTooLarge { .. } = e {
                assert!(data.len() > config.max_handshake_size);
            }
            assert!(client.is_finished());
        }
        Some(other) => panic!("unexpected first event for a response head: {other:?}"),
    }
}
