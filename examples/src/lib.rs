//! The runtime-neutral part of the examples that every adapter ships with
//! the same command lines (`chat`, `echo`, `autobahn_client`): callbacks on
//! `crest_driver` types, which both `crest-tokio` and `crest-async-std`
//! re-export. Each adapter's example keeps only its runtime: bind, spawn,
//! connect, wait.
//!
//! - [`chat`]: the product page's chat application and its page;
//! - [`echo`]: the echo server of Autobahn and the benchmarks;
//! - [`autobahn`]: the cases of an Autobahn fuzzingserver, run as a client.

pub mod autobahn;
pub mod chat;
pub mod echo;
