//! Echoes every text and binary message, on any path.
//!
//! ```sh
//! cargo run --release -p crest-tokio --example echo -- 127.0.0.1:9001
//! ```
//!
//! Used by the Autobahn fuzzingclient and by the benchmarks: one
//! current-thread runtime (one core) with only its I/O driver (crest's
//! deadlines run on crest-driver's timer thread, so tokio's time driver
//! would only add its work to every wake-up), `TCP_NODELAY` on every
//! socket, no logging on the data path.

use crest_examples::echo;
use crest_tokio::App;

fn main() -> std::io::Result<()> {
    let (host, port) = echo::host_port(std::env::args().nth(1), "127.0.0.1:9001")?;

    let mut app = App::new();
    app.fallback(&echo::echo_server());
    tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(app.run(&host, port))
}
