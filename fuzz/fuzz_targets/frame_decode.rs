// Invariant: any bytes given to `FrameHeader::decode` yield a header, "need
// more" (only before 14 bytes) or a protocol error (close code 1002), never a
// panic. A header is decided by its own bytes (every shorter prefix needs
// more), re-encodes to bytes that decode the same (the same bytes when its
// length is minimally encoded), and its errors are final. Lengths are never
// trusted before the limit check: an open `Connection` given just a header
// announcing more than `max_frame_size`/`max_message_size` fails with 1009
// at once, holding no more than the header.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::codec::frame_decode(data));
