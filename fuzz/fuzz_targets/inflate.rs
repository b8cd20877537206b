// Invariant: permessage-deflate's decoder (RFC 7692) never panics on any
// compressed message, never returns more than the message-size limit (a bomb
// fails with MessageTooLarge, 1009, after allocating at most the limit),
// fails anything else with a 1002 error and recovers; and what our
// compressor produces (any window 8-15, level 0-7, with or without context
// takeover) the peer's decoder and an independent flate2 inflater give back
// exactly, at a limit of exactly its length and not one byte below.
//
// Input: [flags][limit: u16 LE] then messages [len: u16 LE][bytes...]; see
// src/inflate.rs for the flag bits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crest_fuzz::inflate::inflate(data));
