//! Runs every reliability scenario on crest-tokio and crest-async-std and
//! prints the README's table: what was tried, and what happened on each
//! adapter (the same scenario functions as the `reliability` tests, with
//! the same assertions; a failed one shows as FAILED and the exit code is 1).
//!
//! `cargo run --release -p crest-tests --bin reliability-report [NAME_FILTER]`

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crest_tests::memory_kib;
use crest_tests::reliability::{cases, clients_main, set_clients_command, Case, Report};
use crest_tests::{AsyncStd, Tokio};

fn run(case: &Case) -> (Result<Report, String>, f64) {
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(case.run)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    });
    (result, start.elapsed().as_secs_f64())
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--clients") {
        return clients_main(&args[1..]);
    }
    crest_tests::reliability::raise_fd_limit();
    let exe = std::env::current_exe().expect("own path");
    set_clients_command(exe, &["--clients"]);
    let filter = args.first().cloned().unwrap_or_default();
    let mut failed = false;
    println!("| section | what was tried | crest-tokio | crest-async-std |");
    println!("|---|---|---|---|");
    for (tokio, async_std) in cases::<Tokio>().iter().zip(cases::<AsyncStd>()) {
        if !tokio.name.contains(&filter) {
            continue;
        }
        eprintln!("running {} ...", tokio.name);
        let (a, ta) = run(tokio);
        let (b, tb) = run(&async_std);
        eprintln!("  {:.1} s on crest-tokio, {:.1} s on crest-async-std", ta, tb);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                for (ra, rb) in a.rows.iter().zip(&b.rows) {
                    println!(
                        "| {} | {} | {} | {} |",
                        tokio.group,
                        cell(&ra.tried),
                        cell(&ra.happened),
                        cell(&rb.happened)
                    );
                }
            }
            (a, b) => {
                failed = true;
                let show = |r: Result<Report, String>| match r {
                    Ok(_) => "passed".to_owned(),
                    Err(e) => format!("**FAILED**: {}", cell(&e)),
                };
                println!("| {} | `{}` | {} | {} |", tokio.group, tokio.name, show(a), show(b));
            }
        }
    }
    let (_, peak) = memory_kib();
    println!();
    println!(
        "Peak resident memory of the process running all of the above (servers, peers): {:.0} MiB.",
        peak as f64 / 1024.0
    );
    if failed {
        std::process::exit(1);
    }
}
