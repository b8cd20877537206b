// Invariant: a server `Connection` (handshake included; every WebSocket
// request accepted, plain ones answered 404) fed any bytes never panics, and
// yields the same events and output whether the bytes arrive whole or in any
// chunks (through `receive`, or zero-copy `receive_bytes` / `input_buffer`). Events are well
// formed: Request, then Open, then messages within the limits (text always
// UTF-8); after an Error only Closed; Closed last; nothing after it. Memory
// held stays within the configured (small) limits: an HTTP head while
// connecting, one frame plus one fragmented message when open, nothing when
// closed; output never exceeds 3 bytes per byte received plus one head. The
// output is a valid response with the right status, then unmasked frames:
// one Pong per Ping, and the Close the events imply.
//
// Input: [flags][chunk seed][client bytes...]; see `crest_fuzz::flags`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::stream::server_stream(data));
