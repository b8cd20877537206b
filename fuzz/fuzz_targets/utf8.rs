// Invariant: `crest_proto::utf8::Validator` fed any bytes in any split
// (fuzzed pieces, whole, byte by byte) accepts exactly when
// `std::str::from_utf8` accepts the concatenation; after every piece it has
// failed exactly when the prefix so far can no longer become UTF-8 (fail
// fast, never early) and is complete exactly when the prefix is UTF-8.
//
// Input: [n][n piece sizes][bytes...], n taken mod 8.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::codec::utf8(data));
