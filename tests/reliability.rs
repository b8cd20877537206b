//! The reliability suite (issue #6): every scenario of
//! `crest_tests::reliability` as a `#[test]` on crest-tokio (`tokio::*`) and
//! crest-async-std (`async_std::*`, and `smol::*` for all but the
//! 10,000-connection case). Each scenario asserts its expected outcomes; the
//! README's table comes from the same functions
//! (`cargo run --release -p crest-tests --bin reliability-report`).
//!
//! Requirement: the 10,000-connection case needs a hard limit of at least
//! 10,200 open files (`ulimit -Hn`); it raises the soft limit itself and
//! puts the clients in a child process (`reliability-clients`).

use crest_tests::reliability;

fn setup() {
    reliability::set_clients_command(env!("CARGO_BIN_EXE_reliability-clients"), &[]);
    // Scenarios running in parallel hold a few thousand sockets at times.
    reliability::raise_fd_limit();
}

macro_rules! on {
    ($module:ident, $rt:ty, $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    super::setup();
                    let report = <$rt as crest_tests::Runtime>::block_on(Box::pin(crest_tests::reliability::$name::<$rt>()));
                    assert!(!report.rows.is_empty());
                }
            )*
        }
    };
}

macro_rules! reliability {
    ($($name:ident),* $(,)?; heavy: $($heavy:ident),* $(,)?) => {
        on!(tokio, crest_tests::Tokio, $($name,)* $($heavy),*);
        on!(async_std, crest_tests::AsyncStd, $($name,)* $($heavy),*);
        on!(smol, crest_tests::Smol, $($name),*);

        #[test]
        fn every_scenario_is_a_test() {
            let listed: Vec<&str> = reliability::cases::<crest_tests::Tokio>().iter().map(|c| c.name).collect();
            let mut tested = vec![$(stringify!($name),)* $(stringify!($heavy)),*];
            let mut sorted = listed.clone();
            sorted.sort_unstable();
            tested.sort_unstable();
            assert_eq!(sorted, tested);
        }
    };
}

reliability!(
    bad_handshakes,
    oversized_head_is_refused_before_its_end,
    dribbled_request_is_dropped,
    bad_frames,
    ping_flood_without_reading,
    thousands_of_tiny_frames_in_one_read,
    silent_peers_are_dropped,
    slow_reader_during_broadcast,
    abrupt_drops_by_the_thousand,
    close_never_answered,
    close_under_load,
    graceful_shutdown_with_traffic,
    auth_hook_cannot_be_bypassed,
    origin_check,
    limits_the_peer_cannot_lift,
    max_connections;
    heavy: ten_thousand_connections,
);
