// Invariant: any bytes as the server's answer to a client's request (the
// RFC 6455 sample, offering `chat`, `superchat` and the `x-fuzz` extension)
// give exactly one of: "need more" (no blank line yet and within the limit:
// no event, no output), Open (only for a response carrying our accept value;
// the subprotocol is one we offered; bytes after the head then obey the
// stream invariants), or a `HandshakeError` with its status, then Closed, and
// nothing sent. Never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::handshake::response(data));
