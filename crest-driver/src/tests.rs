//! Session tests without sockets: a server `Session` and a crest-proto
//! client `Connection` wired through memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crest_proto::{ClientRequest, Connection, Event};

use crate::wire::Transmit;
use crate::*;

/// A server session and an in-memory client.
struct Pair {
    session: Session,
    client: Connection,
    now: Instant,
    /// Bytes the server wrote that the client has not been given.
    wire: Vec<u8>,
}

impl Pair {
    fn new(router: &Arc<Router>, request: ClientRequest) -> Self {
        let now = Instant::now();
        let mut pair = Self {
            session: Session::accept(router, "127.0.0.1:40000".parse().unwrap(), now),
            client: Connection::client(request, Config::default(), now).unwrap(),
            now,
            wire: Vec::new(),
        };
        pair.deliver_to_server();
        pair.deliver_to_client();
        pair
    }

    fn deliver_to_server(&mut self) {
        let mut bytes = Vec::new();
        self.client.poll_transmit(&mut bytes);
        if !bytes.is_empty() {
            self.session.read_buf().extend_from_slice(&bytes);
            self.session.received(self.now);
        }
        self.session.handle_commands(|| self.now);
    }

    /// Moves the server's output to the client; returns the client's events.
    fn deliver_to_client(&mut self) -> Vec<Event> {
        self.session.handle_commands(|| self.now);
        while self.session.wants_write() {
            let mut iov = [std::io::IoSlice::new(&[]); 16];
            let n = self.session.io_slices(&mut iov);
            let len: usize = iov[..n].iter().map(|s| s.len()).sum();
            iov[..n].iter().for_each(|s| self.wire.extend_from_slice(s));
            self.session.transmitted(len);
        }
        self.client.receive(self.now, &std::mem::take(&mut self.wire));
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

fn router_with(ws: &WebSocketServer) -> Arc<Router> {
    let mut router = Router::new();
    router.route("/ws", ws).page("/", "<p>page</p>");
    Arc::new(router)
}

/// Records callbacks as strings.
fn recorder(ws: &WebSocketServer) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    ws.on_connect(move |c| l.lock().unwrap().push(format!("connect {}", c.path())));
    let l = log.clone();
    ws.on_message(move |_, m| l.lock().unwrap().push(format!("text {m}")));
    let l = log.clone();
    ws.on_binary(move |_, b| l.lock().unwrap().push(format!("binary {}", b.len())));
    let l = log.clone();
    ws.on_error(move |_, e| l.lock().unwrap().push(format!("error {e}")));
    let l = log.clone();
    ws.on_close(move |_, code, reason| l.lock().unwrap().push(format!("close {code} {reason}")));
    log
}

fn taken(log: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn normal_closure_calls_only_on_close() {
    let ws = WebSocketServer::new();
    let log = recorder(&ws);
    let mut p = Pair::new(&router_with(&ws), ClientRequest::new("h", "/ws"));
    assert_eq!(taken(&log), ["connect /ws"]);
    p.client.send(Message::text("hi")).unwrap();
    p.client.close(p.now, CloseCode::NORMAL, "bye").unwrap();
    p.deliver_to_server();
    assert_eq!(taken(&log), ["text hi", "close 1000 bye"]);
    assert_eq!(ws.connection_count(), 0);
    p.deliver_to_client();
    assert!(p.client.is_closed());
}

#[test]
fn protocol_error_calls_on_error_then_on_close_once() {
    let ws = WebSocketServer::new();
    let log = recorder(&ws);
    let mut p = Pair::new(&router_with(&ws), ClientRequest::new("h", "/ws"));
    taken(&log);
    // An unmasked frame from a client.
    p.session.read_buf().extend_from_slice(&[0x82, 0x01, 0xFF]);
    p.session.received(p.now);
    let log = taken(&log);
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].starts_with("error ") && log[0].contains("unmasked"), "{log:?}");
    assert_eq!(log[1], "close 1002 ");
    // Nothing more, whatever happens next.
    p.session.receive_eof();
    drop(p);
    assert!(recorder_is_quiet(&ws));
}

fn recorder_is_quiet(ws: &WebSocketServer) -> bool {
    ws.connection_count() == 0
}

#[test]
fn replies_to_a_message_go_out_before_the_close_a_later_bad_frame_causes() {
    let ws = WebSocketServer::new();
    ws.on_message(|conn, m| drop(conn.send(m)));
    let mut p = Pair::new(&router_with(&ws), ClientRequest::new("h", "/ws"));
    p.client.send(Message::text("first")).unwrap();
    let mut bytes = Vec::new();
    p.client.poll_transmit(&mut bytes);
    bytes.extend_from_slice(&[0x81, 0x00]); // unmasked: a violation, same read
    p.session.read_buf().extend_from_slice(&bytes);
    p.session.received(p.now);
    let events = p.deliver_to_client();
    assert!(matches!(&events[0], Event::Text(t) if t == "first"), "{events:?}");
    assert!(matches!(events.last(), Some(Event::Closed(f)) if f.code == CloseCode::PROTOCOL_ERROR));
}

#[test]
fn rejected_upgrades_never_call_on_connect_or_on_close() {
    let ws = WebSocketServer::new();
    let log = recorder(&ws);
    ws.on_upgrade(|req, _| match req.query() {
        Some("token=ok") => Ok(Accept::new()),
        _ => Err(Response::new(401).body("no")),
    });
    let router = router_with(&ws);
    let mut p = Pair::new(&router, ClientRequest::new("h", "/ws?token=bad"));
    assert!(matches!(p.deliver_to_client().as_slice(), [] | [Event::Error(_), ..]) || p.client.is_closed());
    assert!(p.session.wants_shutdown() || p.session.is_finished());
    assert_eq!(taken(&log), Vec::<String>::new());
    let _ok = Pair::new(&router, ClientRequest::new("h", "/ws?token=ok"));
    assert_eq!(taken(&log), ["connect /ws"]);
}

/// The HTTP status a plain request gets from the router.
fn status_of(router: &Arc<Router>, head: &str) -> String {
    let mut s = Session::accept(router, "127.0.0.1:1".parse().unwrap(), Instant::now());
    s.read_buf().extend_from_slice(head.as_bytes());
    s.received(Instant::now());
    let mut out = Vec::new();
    while s.wants_write() {
        let mut iov = [std::io::IoSlice::new(&[]); 4];
        let n = s.io_slices(&mut iov);
        let len: usize = iov[..n].iter().map(|x| x.len()).sum();
        iov[..n].iter().for_each(|x| out.extend_from_slice(x));
        s.transmitted(len);
    }
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn routing_pages_404_405_426() {
    let ws = WebSocketServer::new();
    let router = router_with(&ws);
    assert_eq!(status_of(&router, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), "HTTP/1.1 200 OK");
    assert_eq!(status_of(&router, "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"), "HTTP/1.1 200 OK");
    assert_eq!(status_of(&router, "POST / HTTP/1.1\r\nHost: h\r\n\r\n"), "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(status_of(&router, "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n"), "HTTP/1.1 426 Upgrade Required");
    assert_eq!(status_of(&router, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"), "HTTP/1.1 404 Not Found");
}

#[test]
fn origin_and_connection_limits() {
    let ws = WebSocketServer::with_settings(Settings::default().allow_origin("https://a.example").max_connections(1));
    let router = router_with(&ws);
    let evil = ClientRequest::new("h", "/ws").header("Origin", "https://b.example");
    let mut p = Pair::new(&router, evil);
    assert!(!p.session.has_opened());
    assert!(p.client.is_closed());
    let good = ClientRequest::new("h", "/ws").header("Origin", "https://a.example");
    let p1 = Pair::new(&router, good.clone());
    assert!(p1.session.has_opened());
    let p2 = Pair::new(&router, good.clone());
    assert!(!p2.session.has_opened(), "over max_connections");
    drop(p1); // a dropped session releases its slot (and calls on_close)
    let p3 = Pair::new(&router, good);
    assert!(p3.session.has_opened());
    p.deliver_to_client();
}

#[test]
fn slow_consumer_is_disconnected_with_error_then_close() {
    let ws = WebSocketServer::with_settings(Settings::default().max_queued_bytes(1000));
    let log = recorder(&ws);
    let mut p = Pair::new(&router_with(&ws), ClientRequest::new("h", "/ws"));
    taken(&log);
    let conn = ws.connections().pop().unwrap();
    conn.send_binary(vec![0u8; 900]).unwrap();
    p.session.handle_commands(|| p.now); // queued, not written: the peer is not reading
    assert!(matches!(conn.send_binary(vec![0u8; 200]), Err(Error::QueueFull { limit: 1000, .. })));
    assert_eq!(ws.broadcast("x"), 0, "a connection being dropped gets no broadcast");
    p.session.handle_commands(|| p.now);
    let log = taken(&log);
    assert!(log[0].starts_with("error slow consumer"), "{log:?}");
    assert_eq!(log[1], "close 1006 ");
    assert!(p.session.is_finished());
}

#[test]
fn shutdown_closes_open_connections_with_1001_and_drops_handshakes() {
    let ws = WebSocketServer::new();
    let log = recorder(&ws);
    let router = router_with(&ws);
    let mut p = Pair::new(&router, ClientRequest::new("h", "/ws"));
    let mut half = Session::accept(&router, "127.0.0.1:2".parse().unwrap(), Instant::now());
    taken(&log);
    assert_eq!(router.shutdown().live(), 2);
    router.shutdown().trigger();
    assert!(half.handle_commands(Instant::now) && half.is_finished());
    drop(half);
    let events = p.deliver_to_client();
    assert!(events.iter().any(|e| matches!(e, Event::Closed(f) if f.code == CloseCode::GOING_AWAY)), "{events:?}");
    p.deliver_to_server(); // the client's close reply
    assert_eq!(taken(&log), ["close 1001 "]);
    assert!(Session::accept(&router, "127.0.0.1:3".parse().unwrap(), Instant::now()).is_finished());
    drop(p);
    assert_eq!(router.shutdown().live(), 0);
}

#[test]
fn heartbeat_times_out_a_silent_peer() {
    let ws =
        WebSocketServer::with_settings(Settings::default().heartbeat(Duration::from_secs(1), Duration::from_secs(3)));
    let log = recorder(&ws);
    let mut p = Pair::new(&router_with(&ws), ClientRequest::new("h", "/ws"));
    taken(&log);
    let mut pings = 0;
    for _ in 0..10 {
        let Some(at) = p.session.poll_timeout() else { break };
        p.now = at;
        p.session.handle_timeout(at);
        pings += p.deliver_to_client().iter().filter(|e| matches!(e, Event::Ping(_))).count();
    }
    assert!(pings >= 2, "{pings}");
    let log = taken(&log);
    assert!(log[0].starts_with("error ") && log[0].contains("idle"), "{log:?}");
    assert_eq!(log[1], "close 1001 ");
}

#[test]
fn dropping_an_open_session_still_calls_on_close() {
    let ws = WebSocketServer::new();
    let log = recorder(&ws);
    let p = Pair::new(&router_with(&ws), ClientRequest::new("h", "/ws"));
    drop(p);
    assert_eq!(taken(&log), ["connect /ws", "close 1006 "]);
    assert_eq!(ws.connection_count(), 0);
}

#[test]
fn idle_sessions_stay_small() {
    // The per-connection task holds a Session: its size decides the task's
    // allocation class (see `wire::Buffers`). Grow it only knowingly.
    assert!(std::mem::size_of::<Session>() <= 496, "{}", std::mem::size_of::<Session>());
}

#[test]
fn replies_reuse_one_output_block() {
    // Each reply is written straight from the connection's coalescing
    // buffer, which keeps its capacity: every reply starts at the same
    // address (no copy, no allocation per reply).
    let ws = WebSocketServer::new();
    ws.on_message(|conn, m| drop(conn.send(m)));
    let mut p = Pair::new(&router_with(&ws), ClientRequest::new("h", "/ws"));
    let mut starts = Vec::new();
    for i in 0..4 {
        p.client.send(Message::text(format!("reply {i}"))).unwrap();
        p.deliver_to_server();
        p.session.handle_commands(|| p.now);
        assert!(p.session.wants_write());
        let mut iov = [std::io::IoSlice::new(&[]); 4];
        let n = p.session.io_slices(&mut iov);
        assert_eq!(n, 1, "one chunk");
        starts.push((iov[0].as_ptr() as usize, iov[0].len()));
        p.wire.extend_from_slice(&iov[0]);
        let len = iov[0].len();
        p.session.transmitted(len);
        let events = p.deliver_to_client();
        assert!(matches!(&events[..], [Event::Text(t)] if *t == *format!("reply {i}")), "{events:?}");
    }
    assert!(starts.windows(2).all(|w| w[0].0 == w[1].0), "every reply from the same buffer: {starts:?}");
}
