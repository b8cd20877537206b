// Invariant: a client `Connection` (the RFC 6455 sample request, offering
// `chat`, `superchat` and, by flag, `x-fuzz`) fed any bytes as the server's
// never panics, and yields the same events and output whether the bytes
// arrive whole or in any chunks. Events are well formed (Open once, then
// messages within the limits, text always UTF-8; after an Error only Closed;
// Closed last; nothing after it); memory held stays within the configured
// limits; output never exceeds 3 bytes per byte received; the output is
// masked frames only: one Pong per Ping and the Close the events imply.
//
// Input: [flags][chunk seed][server bytes...]; see `crest_fuzz::flags`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::stream::client_stream(data));
