// Invariant: structured messages (text, binary, Pings and Pongs, any close
// code and reason) encoded by one role are decoded by the other as the same
// messages, in order, delivered in any chunks. Two encoders: `send` /
// `send_encoded` / `close` on a connection that went through the opening
// handshake (fragmenting at a fuzzed `max_send_frame_size`, with the `x-fuzz`
// extension or without), and hand-cut frames with fuzzed fragment sizes and
// control frames interleaved between fragments (masked when the client
// sends). The receiver answers each Ping with its Pong in order and echoes
// the Close (or fails with 1002 on a code that may not be sent), and the
// echo completes the sender's closing handshake.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::roundtrip::roundtrip(data));
