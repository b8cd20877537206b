//! Echoes every text and binary message, on any path.
//!
//! ```sh
//! cargo run --release -p crest-async-std --example echo -- 127.0.0.1:9002
//! ```
//!
//! Used by the Autobahn fuzzingclient and by the benchmarks. Like
//! crest-tokio's echo on a current-thread runtime, everything runs on one
//! thread: one `async_executor::Executor` (smol's) driven by
//! `async_io::block_on`, which also runs the reactor, so a readiness event
//! and the task it wakes never cross threads.

use crest_async_std::App;
use crest_examples::echo;

fn main() -> std::io::Result<()> {
    let (host, port) = echo::host_port(std::env::args().nth(1), "127.0.0.1:9002")?;

    // The executor lives as long as the process: connection tasks borrow it.
    let executor: &'static smol::Executor<'static> = Box::leak(Box::default());
    let mut app = App::new();
    app.fallback(&echo::echo_server()).spawn_with(|task| executor.spawn(task).detach());
    // The app (accept loop, signals) is a task too: `Executor::run` polls
    // the future it is given on every wake-up of any task, and polling the
    // accept loop and the signal stream costs two failed syscalls each time.
    let app = executor.spawn(async move { app.run(&host, port).await });
    smol::block_on(executor.run(app))
}
