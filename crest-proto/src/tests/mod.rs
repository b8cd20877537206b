//! Scenario tests: a client and a server `Connection` wired through memory
//! on a fake clock, plus raw-byte attacks on a server.

mod deflate;
mod fuzz_regressions;
mod pair;
mod props;
mod scenarios;
