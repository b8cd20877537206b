//! Properties: chunking invariance and encode/decode round trips.

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;

use super::pair::*;
use crate::{Config, Connection, Event, Message};

/// Feeds `input` to a fresh server in the given pieces; returns events and output.
fn run_server(input: &[u8], cuts: &[usize]) -> (Vec<Event>, Vec<u8>) {
    let now = Instant::now();
    let mut server = Connection::server(Config { max_message_size: 4096, ..seeded() }, now);
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.sort_unstable();
    cuts.push(input.len());
    for end in cuts {
        server.receive(now, &input[start..end]);
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
        if input.len() < 400 {
            let every: Vec<usize> = (0..input.len()).collect();
            prop_assert_eq!(&run_server(&input, &every), &whole);
        }
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
