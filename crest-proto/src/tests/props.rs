//! Properties: chunking invariance and encode/decode round trips.

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;

use super::pair::*;
use crate::{Config, Connection, Event, Message};

/// How `run_server` hands each piece of input over.
#[derive(Debug, Clone, Copy)]
enum Feed {
    /// `receive(&[u8])`.
    Slice,
    /// `receive_bytes`, the pieces split off one buffer.
    Bytes,
    /// Appended to `input_buffer(reserve)`, then `receive_appended`.
    InPlace { reserve: usize },
}

/// Feeds `input` to a fresh server in the given pieces; returns events and output.
fn run_server(input: &[u8], cuts: &[usize]) -> (Vec<Event>, Vec<u8>) {
    run_server_with(input, cuts, Feed::Slice)
}

fn run_server_with(input: &[u8], cuts: &[usize], feed: Feed) -> (Vec<Event>, Vec<u8>) {
    let now = Instant::now();
    let mut server = Connection::server(Config { max_message_size: 4096, ..seeded() }, now);
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.sort_unstable();
    cuts.push(input.len());
    let mut block = bytes::BytesMut::from(input);
    for end in cuts {
        let piece = &input[start..end];
        match feed {
            Feed::Slice => server.receive(now, piece),
            Feed::Bytes => server.receive_bytes(now, block.split_to(piece.len())),
            Feed::InPlace { reserve } => {
                let before = spare(server.input_buffer(0));
                let want = reserve.min(server.frame_remaining());
                let room = spare(server.input_buffer(reserve));
                // Room for the rest of the frame (as asked), and never more
                // than that unless it was already there.
                assert!(room >= want, "room {room} < {want}");
                assert!(room == before || room == want, "room {room}: before {before}, asked {want}");
                server.input_buffer(reserve).extend_from_slice(piece);
                server.receive_appended(now, piece.len());
            }
        }
        start = end;
        while let Some(e) = server.poll_event() {
            if matches!(e, Event::Request(_)) {
                let _ = server.accept(crate::Accept::new());
            }
            events.push(e);
        }
        server.poll_transmit(&mut out);
    }
    (events, out)
}

fn spare(buf: &mut bytes::BytesMut) -> usize {
    buf.capacity() - buf.len()
}

/// Frames a client might send, valid or not.
fn client_frames() -> impl Strategy<Value = Vec<u8>> {
    let one = (
        any::<bool>(),
        prop_oneof![Just(0u8), Just(1), Just(2), Just(8), Just(9), Just(10), Just(3)],
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..40), "\\PC{0,20}".prop_map(String::into_bytes),],
    )
        .prop_map(|(fin, op, payload)| {
            let payload = if op == 8 { vec![3, 232] } else { payload };
            client_frame(fin || op >= 8, op, &payload)
        });
    proptest::collection::vec(one, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_split_yields_the_same_events_and_output(frames in client_frames(),
                                                   cuts in proptest::collection::vec(0usize..600, 0..8),
                                                   junk in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut input = REQUEST.as_bytes().to_vec();
        input.extend(frames);
        input.extend(junk);
        let whole = run_server(&input, &[]);
        prop_assert_eq!(&run_server(&input, &cuts), &whole);
        prop_assert_eq!(&run_server_with(&input, &cuts, Feed::Bytes), &whole);
        for reserve in [0, 3, usize::MAX] {
            prop_assert_eq!(&run_server_with(&input, &cuts, Feed::InPlace { reserve }), &whole);
        }
        if input.len() < 400 {
            let every: Vec<usize> = (0..input.len()).collect();
            prop_assert_eq!(&run_server(&input, &every), &whole);
        }
    }

    /// Large frames (extended lengths, masked and unmasked text across the
    /// pieces) read into the input buffer at random split points, with any
    /// reservation, give the same events as whole input and `receive_bytes`.
    #[test]
    fn reading_into_the_input_buffer_yields_the_same_events(
        sizes in proptest::collection::vec((0usize..3000, any::<bool>(), any::<bool>()), 1..6),
        cuts in proptest::collection::vec(0usize..12_000, 0..12),
        reserve in prop_oneof![Just(usize::MAX), 0usize..4000],
    ) {
        let mut input = REQUEST.as_bytes().to_vec();
        for (i, &(n, text, fin)) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|j| if text { b'a' + (j % 26) as u8 } else { (i + j) as u8 }).collect();
            let opcode = if text { 1 } else { 2 };
            // A non-final frame followed by its continuation.
            if fin {
                input.extend(client_frame(true, opcode, &payload));
            } else {
                let (a, b) = payload.split_at(n / 2);
                input.extend(client_frame(false, opcode, a));
                input.extend(client_frame(true, 0, b));
            }
        }
        let whole = run_server(&input, &[]);
        prop_assert_eq!(whole.0.len(), sizes.len() + 2, "request, open and one event per message");
        prop_assert_eq!(&run_server_with(&input, &cuts, Feed::Bytes), &whole);
        prop_assert_eq!(&run_server_with(&input, &cuts, Feed::InPlace { reserve }), &whole);
    }

    #[test]
    fn encode_then_decode_is_the_identity(
        messages in proptest::collection::vec(prop_oneof![
            "\\PC{0,300}".prop_map(Message::text),
            proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Message::binary),
            proptest::collection::vec(any::<u8>(), 0..125).prop_map(|p| Message::Ping(p.into())),
        ], 0..10),
        frame_size in 1usize..2000,
    ) {
        let config = Config { max_send_frame_size: frame_size, auto_pong: false, ..seeded() };
        let mut p = Pair::with_configs(config.clone(), config);
        let expected: Vec<Event> = messages.iter().map(|m| match m.clone() {
            Message::Text(t) => Event::Text(t),
            Message::Binary(b) => Event::Binary(b),
            Message::Ping(b) => Event::Ping(b),
            Message::Pong(b) => Event::Pong(b),
        }).collect();
        for m in &messages {
            p.client.send(m.clone()).unwrap();
            p.server.send(m.clone()).unwrap();
        }
        p.deliver_to_server();
        p.deliver_to_client();
        prop_assert_eq!(drain(&mut p.server), expected.clone());
        prop_assert_eq!(drain(&mut p.client), expected);
    }

    #[test]
    fn any_bytes_after_open_end_in_events_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut server = open_server(Config { max_message_size: 256, max_frame_size: 128, ..seeded() });
        server.receive(Instant::now(), &bytes);
        let events = drain(&mut server);
        if let Some(pos) = events.iter().position(|e| matches!(e, Event::Closed(_))) {
            prop_assert_eq!(pos, events.len() - 1, "Closed is the last event");
        }
        let _ = Bytes::new();
    }
}
