// Invariant: any bytes as an HTTP request head give exactly one of: "need
// more" (no blank line yet and within `max_handshake_size`: no event, no
// output), a parsed `Request` (a WebSocket upgrade, whose 101 carries the
// right Sec-WebSocket-Accept, or a plain request the caller can answer), or
// a `HandshakeError` whose HTTP status (400/405/426/431) is the status of the
// response queued, followed by Closed. Never a panic.
//
// The same bytes, read by `arbitrary`, describe a request for our own client
// generator (host, target, subprotocols, headers, key): whatever request
// `Connection::client` agrees to produce, our server parses as a WebSocket
// upgrade with the same parts, and its 101 opens that client.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::handshake::request(data));
