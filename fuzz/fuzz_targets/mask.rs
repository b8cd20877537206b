// Invariant: the fast `apply_mask` equals the byte-at-a-time
// `apply_mask_reference` (RFC 6455 §5.3) for every length, offset and
// alignment: the whole payload at any offset, every length up to 64 at each
// key phase, every tail of the first 16 starts; masking in two pieces equals
// masking at once, and masking twice is the identity.
//
// Input: [key: 4][offset: 8][cut: 2][payload...].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::codec::mask(data));
