//! Scenario tests: a client and a server `Connection` wired through memory
//! on a fake clock, plus raw-byte attacks on a server.

mod pair;
mod props;
mod scenarios;
