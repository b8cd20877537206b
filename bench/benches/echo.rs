//! `cargo bench -p crest-bench --bench echo`: the side-by-side echo benchmark.
//!
//! Builds the release binaries it needs, then for every row runs every server
//! in turn (the `echo` example of crest-tokio and of crest-async-std, each
//! copied to a name of its own, and the three `peer_echo` servers; a fresh
//! process pinned to CPU 0 per row, the order rotated from row to row),
//! drives it with `loadgen` pinned to CPU 1, measures the server's CPU time
//! from `/proc/PID/stat`, runs the idle-memory test
//! on a fresh server process, runs the broadcast test, and prints markdown
//! tables. See `bench/README.md`.
//!
//! Knobs (environment): `CREST_BENCH_DURATION` (measured seconds per row,
//! default 3), `CREST_BENCH_WARMUP` (default 1), `CREST_BENCH_IDLE_CONNS`
//! (default 10000), `CREST_BENCH_BROADCAST_CONNS` (default 10000),
//! `CREST_BENCH_ONLY` (comma-separated server names to run, e.g.
//! `crest,tokio-tungstenite`; `crest` selects both crest columns),
//! `CREST_BENCH_SKIP` (comma-separated parts to skip: `echo`, `idle`,
//! `broadcast`), `CREST_BENCH_NICE` (niceness for the
//! servers and load generators, e.g. `-10` on a shared machine),
//! `CREST_BENCH_RETRIES` (default 1) and `CREST_BENCH_RETRY_BUDGET` (seconds,
//! default 60): a row during which other processes used ≥ 5% of a core is
//! run again, keeping the least disturbed attempt, while the budget lasts;
//! `CREST_BENCH_ROUNDS` (default 1): measure every row that many times per
//! server and report the median.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// CPU the servers are pinned to.
const SERVER_CPU: &str = "0";
/// CPU the load generators are pinned to.
const LOADGEN_CPU: &str = "1";
/// Loadgen CPU share from which a row is flagged as possibly loadgen-bound.
const LOADGEN_SATURATED: f64 = 0.9;
/// CPU share of unrelated processes from which a row is flagged as disturbed.
const OTHER_NOISE: f64 = 0.05;

/// One table row: how loadgen drives the server.
#[derive(Clone, Copy)]
struct Row {
    conns: usize,
    size: usize,
    pipeline: usize,
}

impl Row {
    fn label(&self) -> String {
        let mode =
            if self.pipeline == 1 { "closed loop".to_string() } else { format!("pipelined ×{}", self.pipeline) };
        format!("{mode}, {} conn × {}", self.conns, human_size(self.size))
    }
}

fn human_size(b: usize) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// crest's columns: the name and the package whose `echo` example runs.
const CREST_ADAPTERS: [(&str, &str); 2] = [("crest-tokio", "crest-tokio"), ("crest-async-std", "crest-async-std")];

/// Whether `CREST_BENCH_ONLY`'s entry `only` selects the server `name`:
/// equal names, and `crest` selects every crest column.
fn selects(only: &str, name: &str) -> bool {
    only == name || (only == "crest" && name.starts_with("crest"))
}

/// A server under test: its name and the command (without the address).
struct Server {
    name: &'static str,
    cmd: Vec<String>,
}

#[derive(Clone, Default)]
struct RowResult {
    msgs_per_sec: f64,
    server_us_per_msg: f64,
    server_cpu: f64,
    loadgen_cpu: f64,
    other_cpu: f64,
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // target too but without it, and must not start a 3-minute benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("echo bench: not run (use `cargo bench -p crest-bench --bench echo`)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
}

fn run() -> Result<(), String> {
    let started = Instant::now();
    let duration = env_f64("CREST_BENCH_DURATION", 3.0).clamp(0.5, 60.0);
    let warmup = env_f64("CREST_BENCH_WARMUP", 1.0).clamp(0.0, 10.0);
    let idle_conns = env_f64("CREST_BENCH_IDLE_CONNS", 10_000.0).clamp(1.0, 30_000.0) as usize;
    let bcast_conns = env_f64("CREST_BENCH_BROADCAST_CONNS", 10_000.0).clamp(1.0, 30_000.0) as usize;
    let only = env_list("CREST_BENCH_ONLY");
    let retries = env_f64("CREST_BENCH_RETRIES", 1.0).clamp(0.0, 10.0) as usize;
    let rounds = env_f64("CREST_BENCH_ROUNDS", 1.0).clamp(1.0, 9.0) as usize;
    let retry_budget = env_f64("CREST_BENCH_RETRY_BUDGET", 60.0).clamp(0.0, 3600.0);
    let skip = env_list("CREST_BENCH_SKIP").unwrap_or_default();
    let skipped = |part: &str| skip.iter().any(|s| s == part);

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no workspace root")?.to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = target_dir(&cargo, &root)?;
    let release = target.join("release");
    eprintln!("echo bench: workspace {}, target dir {}", root.display(), target.display());

    // 1. Build what is needed.
    cargo_build(&cargo, &root, &target, &["--release", "-p", "crest-bench", "--bins"])?;
    let mut notes = Vec::new();
    let metadata = cargo_metadata(&cargo, &root)?;
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| selects(n, name)));
    // Each adapter's `echo` example lands at the same path
    // (`release/examples/echo`): copy each build to a name of its own.
    let mut crest_built = Vec::new();
    for (name, package) in CREST_ADAPTERS {
        if !wanted(name) {
            continue;
        }
        if !metadata.contains(&format!("\"name\":\"{package}\"")) {
            notes.push(format!("{name}: package `{package}` is not in the workspace yet; column skipped."));
            continue;
        }
        let built =
            cargo_build(&cargo, &root, &target, &["--release", "-p", package, "--example", "echo"]).and_then(|()| {
                let examples = release.join("examples");
                let copy = examples.join(format!("{package}-echo"));
                std::fs::copy(examples.join("echo"), &copy).map_err(|e| format!("copying the example: {e}"))?;
                Ok(copy)
            });
        match built {
            Ok(path) => crest_built.push(Server { name, cmd: vec![path.to_string_lossy().into_owned()] }),
            Err(e) => notes.push(format!("{name}: building `{package}` example `echo` failed ({e}); column skipped.")),
        }
    }

    // Anything else running on this machine distorts every number.
    if let Some(busy) = machine_busy(Duration::from_secs(1)) {
        if busy >= OTHER_NOISE {
            notes.push(format!(
                "Before the run, other processes were using {:.0}% of a core: the machine is not quiet.",
                busy * 100.0
            ));
            eprintln!("echo bench: WARNING: the machine is busy ({:.0}% of a core in use)", busy * 100.0);
        }
    }

    // 2. Pinning and file-descriptor limits.
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pin = ncpu >= 2 && Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success());
    if !pin {
        notes.push(format!(
            "NOT pinned (taskset missing or {ncpu} CPU): server and loadgen share CPUs; numbers are not comparable."
        ));
    }
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let need = idle_conns.max(bcast_conns) as u64 + 100;
    if nofile < need {
        notes.push(format!("RLIMIT_NOFILE is {nofile} (< {need}): the idle-memory and broadcast tests may fail."));
    }

    let bin = |name: &str| release.join(name).to_string_lossy().into_owned();
    let mut servers = crest_built;
    for (name, imp) in [
        ("tokio-tungstenite", "tungstenite"),
        ("fastwebsockets", "fastwebsockets"),
        ("tokio-websockets", "tokio-websockets"),
    ] {
        servers.push(Server { name, cmd: vec![bin("peer_echo"), imp.to_string()] });
    }
    if let Some(only) = &only {
        servers.retain(|s| only.iter().any(|o| selects(o, s.name)));
    }
    if servers.is_empty() {
        return Err("no server selected".into());
    }
    let loadgen = bin("loadgen");

    let mut rows = Vec::new();
    for pipeline in [1, 16] {
        for (conns, size) in [(1, 16), (100, 16), (100, 1024), (10, 64 << 10), (1, 1 << 20)] {
            rows.push(Row { conns, size, pipeline });
        }
    }

    // 3. Echo rows, interleaved: each row runs every server in turn (a fresh
    // server process per row, the order rotated from row to row), so that a
    // drift in the machine's speed (clock frequency, other tenants) falls on
    // every server alike rather than on whichever runs its rows last. With
    // CREST_BENCH_ROUNDS > 1 every row is measured that many times per
    // server and the median (by server CPU per message) is reported.
    let retry_deadline = Instant::now() + Duration::from_secs_f64(retry_budget);
    let mut results: HashMap<(usize, &str), Result<RowResult, String>> = HashMap::new();
    if !skipped("echo") {
        for (i, row) in rows.iter().enumerate() {
            let mut runs: HashMap<&str, Vec<RowResult>> = HashMap::new();
            let mut errors: HashMap<&str, String> = HashMap::new();
            for round in 0..rounds {
                for k in 0..servers.len() {
                    let s = &servers[(i + round + k) % servers.len()];
                    let mut srv = start_server(s, pin)?;
                    match measure_row(&loadgen, pin, &mut srv, s.name, *row, warmup, duration, retries, retry_deadline)
                    {
                        Ok(r) => runs.entry(s.name).or_default().push(r),
                        Err(e) => {
                            errors.insert(s.name, e);
                        }
                    }
                    srv.stop();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            for s in &servers {
                let r = match (runs.remove(s.name), errors.remove(s.name)) {
                    (Some(mut v), _) if !v.is_empty() => {
                        v.sort_by(|a, b| a.server_us_per_msg.total_cmp(&b.server_us_per_msg));
                        let mid = v.len() / 2;
                        Ok(v.swap_remove(mid))
                    }
                    (_, Some(e)) => Err(e),
                    _ => Err("no result".into()),
                };
                results.insert((i, s.name), r);
            }
        }
    }

    // 4. Idle memory: a fresh process per server.
    let mut idle: HashMap<&str, Result<(u64, u64), String>> = HashMap::new();
    if !skipped("idle") {
        for s in &servers {
            eprint!("echo bench: {:<18} idle memory, {idle_conns} connections ", s.name);
            let r = start_server(s, pin).and_then(|mut srv| {
                let r = idle_memory(&loadgen, pin, &srv, idle_conns);
                srv.stop();
                r
            });
            match &r {
                Ok((before, after)) => {
                    eprintln!("RSS {:.1} → {:.1} MiB", *before as f64 / 1048576.0, *after as f64 / 1048576.0)
                }
                Err(e) => eprintln!("FAILED: {e}"),
            }
            idle.insert(s.name, r);
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    // 5. Broadcast: the same relay on tokio-tungstenite and on crest.
    let mut bcast: Vec<(&str, Result<KeyValues, String>)> = Vec::new();
    for (name, serve) in [("crest-tokio", "crest"), ("tokio-tungstenite", "tungstenite")] {
        if skipped("broadcast") || !wanted(name) {
            continue;
        }
        let s = Server { name, cmd: vec![bin("broadcast"), "serve".into(), serve.into()] };
        eprint!("echo bench: {:<18} broadcast 1 KiB to {bcast_conns} connections ", s.name);
        let r = start_server(&s, pin).and_then(|mut srv| {
            let pid = srv.pid().to_string();
            let conns = bcast_conns.to_string();
            let addr = srv.addr.to_string();
            let args = [
                "client",
                "--addr",
                &addr,
                "--conns",
                &conns,
                "--size",
                "1024",
                "--rounds",
                "10",
                "--server-pid",
                &pid,
            ];
            let r = run_tool(&bin("broadcast"), &args, pin, Duration::from_secs(300));
            srv.stop();
            r.map(|line| parse_kv(&line))
        });
        match &r {
            Ok(kv) => eprintln!("median {} ms", kv.get("median_ms").map_or("?", |v| v.as_str())),
            Err(e) => eprintln!("FAILED: {e}"),
        }
        bcast.push((s.name, r));
    }

    // 6. Report.
    let names: Vec<&str> = servers.iter().map(|s| s.name).collect();
    let mut out = String::new();
    writeln!(out, "\n## crest echo benchmark\n").unwrap();
    writeln!(out, "{}\n", environment(&root, duration, warmup, pin)).unwrap();
    for n in &notes {
        writeln!(out, "> {n}").unwrap();
    }
    if !notes.is_empty() {
        writeln!(out).unwrap();
    }
    if !skipped("echo") {
        let table = |title: &str, f: &dyn Fn(&RowResult) -> String| {
            let mut t =
                format!("### {title}\n\n| row | {} |\n|---|{}\n", names.join(" | "), "---:|".repeat(names.len()));
            for (i, row) in rows.iter().enumerate() {
                let cells: Vec<String> = names
                    .iter()
                    .map(|n| match results.get(&(i, *n)) {
                        Some(Ok(r)) => f(r),
                        Some(Err(_)) => "error".into(),
                        None => "–".into(),
                    })
                    .collect();
                writeln!(t, "| {} | {} |", row.label(), cells.join(" | ")).unwrap();
            }
            t
        };
        let noise = |r: &RowResult| if r.other_cpu >= OTHER_NOISE { " †" } else { "" };
        out +=
            &table("Throughput (messages/s, higher is better)", &|r| format!("{}{}", group(r.msgs_per_sec), noise(r)));
        out += "\n";
        out += &table("Server CPU per message (µs, lower is better)", &|r| {
            format!("{:.2}{}", r.server_us_per_msg, noise(r))
        });
        out += "\n";
        out += &table("CPU during the row: server / loadgen (100% = one core)", &|r| {
            let flag = if r.loadgen_cpu >= LOADGEN_SATURATED { " ⚠" } else { "" };
            format!("{:.0}% / {:.0}%{flag}", r.server_cpu * 100.0, r.loadgen_cpu * 100.0)
        });
        writeln!(
            out,
            "\n⚠ = loadgen used ≥ {:.0}% of its core: that row may be limited by the load generator, \
             not the server (see bench/README.md).\n",
            LOADGEN_SATURATED * 100.0
        )
        .unwrap();
        let worst = results.values().filter_map(|r| r.as_ref().ok()).map(|r| r.other_cpu).fold(0.0, f64::max);
        if worst >= OTHER_NOISE {
            writeln!(
                out,
                "† = other processes used ≥ {:.0}% of a core during that row (worst row: {:.0}%): its throughput \
                 is disturbed; re-run on a quiet machine.\n",
                OTHER_NOISE * 100.0,
                worst * 100.0
            )
            .unwrap();
        }
        let errors: Vec<String> = names
            .iter()
            .flat_map(|n| (0..rows.len()).map(move |i| (i, *n)))
            .filter_map(|(i, n)| match results.get(&(i, n)) {
                Some(Err(e)) => Some(format!("- {n}, {}: {e}", rows[i].label())),
                _ => None,
            })
            .collect();
        if !errors.is_empty() {
            writeln!(out, "Errors:\n{}\n", errors.join("\n")).unwrap();
        }
    }
    if !skipped("idle") {
        writeln!(out, "### Idle memory ({idle_conns} connections after the handshake)\n").unwrap();
        writeln!(out, "| metric | {} |\n|---|{}", names.join(" | "), "---:|".repeat(names.len())).unwrap();
        let cell = |n: &str, f: &dyn Fn(u64, u64) -> String| match idle.get(n) {
            Some(Ok((b, a))) => f(*b, *a),
            Some(Err(_)) => "error".into(),
            None => "–".into(),
        };
        let per_conn: Vec<String> =
            names.iter().map(|n| cell(n, &|b, a| group(a.saturating_sub(b) as f64 / idle_conns as f64))).collect();
        let rss: Vec<String> = names
            .iter()
            .map(|n| cell(n, &|b, a| format!("{:.1} → {:.1}", b as f64 / 1048576.0, a as f64 / 1048576.0)))
            .collect();
        writeln!(out, "| server RSS bytes per idle connection | {} |", per_conn.join(" | ")).unwrap();
        writeln!(out, "| server RSS before → after (MiB) | {} |", rss.join(" | ")).unwrap();
        for n in &names {
            if let Some(Err(e)) = idle.get(n) {
                writeln!(out, "\nError ({n}): {e}").unwrap();
            }
        }
        out += "\n";
    }
    if !bcast.is_empty() {
        writeln!(out, "### Broadcast: one 1 KiB message to {bcast_conns} connected clients (10 rounds)\n").unwrap();
        let bnames: Vec<&str> = bcast.iter().map(|(n, _)| *n).collect();
        writeln!(out, "| metric | {} |\n|---|{}", bnames.join(" | "), "---:|".repeat(bnames.len())).unwrap();
        for (label, key) in [
            ("time until every client has it, median (ms)", "median_ms"),
            ("min (ms)", "min_ms"),
            ("max (ms)", "max_ms"),
            ("server CPU per broadcast (ms)", "server_cpu_ms_per_broadcast"),
        ] {
            let cells: Vec<String> = bcast
                .iter()
                .map(|(_, r)| match r {
                    Ok(kv) => kv.get(key).cloned().unwrap_or_else(|| "?".into()),
                    Err(_) => "error".into(),
                })
                .collect();
            writeln!(out, "| {label} | {} |", cells.join(" | ")).unwrap();
        }
        for (n, r) in &bcast {
            if let Err(e) = r {
                writeln!(out, "\nError ({n}): {e}").unwrap();
            }
        }
        out += "\n";
    }
    writeln!(out, "Total bench time: {:.0} s.", started.elapsed().as_secs_f64()).unwrap();
    print!("{out}");
    std::io::stdout().flush().map_err(|e| e.to_string())
}

/// `12345678.9` → `12,345,679`.
fn group(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn target_dir(cargo: &str, root: &Path) -> Result<PathBuf, String> {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        let t = PathBuf::from(t);
        return Ok(if t.is_absolute() { t } else { std::env::current_dir().map_err(|e| e.to_string())?.join(t) });
    }
    let meta = cargo_metadata(cargo, root)?;
    let key = "\"target_directory\":\"";
    let start = meta.find(key).ok_or("cargo metadata: no target_directory")? + key.len();
    let end = meta[start..].find('"').ok_or("cargo metadata: bad target_directory")? + start;
    Ok(PathBuf::from(meta[start..end].replace("\\\\", "\\")))
}

fn cargo_metadata(cargo: &str, root: &Path) -> Result<String, String> {
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err("cargo metadata failed".into());
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

fn cargo_build(cargo: &str, root: &Path, target: &Path, args: &[&str]) -> Result<(), String> {
    eprintln!("echo bench: cargo build {}", args.join(" "));
    let status = Command::new(cargo)
        .arg("build")
        .args(args)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build {} failed ({status})", args.join(" ")))
    }
}

fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

/// `[nice -n N] [taskset -c CPU] program`: both exec, so the child's PID is
/// the program's.
fn pinned(program: &str, cpu: &str, pin: bool) -> Command {
    let mut argv: Vec<String> = Vec::new();
    if let Some(n) = nice() {
        argv.extend(["nice".into(), "-n".into(), n.to_string()]);
    }
    if pin {
        argv.extend(["taskset".into(), "-c".into(), cpu.into()]);
    }
    argv.push(program.into());
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// `CREST_BENCH_NICE`: niceness for servers and load generators (e.g. `-10`
/// on a machine shared with other work); unset = inherit.
fn nice() -> Option<i32> {
    std::env::var("CREST_BENCH_NICE").ok().and_then(|v| v.trim().parse().ok())
}

/// A running server; killed (by PID) on drop.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    /// `taskset` execs the server, so the child's PID is the server's.
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start_server(s: &Server, pin: bool) -> Result<Running, String> {
    let addr = free_port()?;
    let mut cmd = pinned(&s.cmd[0], SERVER_CPU, pin);
    cmd.args(&s.cmd[1..]).arg(addr.to_string()).stdin(Stdio::null()).stdout(Stdio::null());
    let child = cmd.spawn().map_err(|e| format!("start {}: {e}", s.name))?;
    let mut r = Running { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Let the server finish the probe connection before measuring.
            std::thread::sleep(Duration::from_millis(100));
            return Ok(r);
        }
        if !r.alive() {
            return Err(format!("{} exited before listening on {addr}", s.name));
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not listen on {addr} within 10 s", s.name));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a pinned tool to completion (bounded by `limit`) and returns its
/// last stdout line.
fn run_tool(program: &str, args: &[&str], pin: bool, limit: Duration) -> Result<String, String> {
    let mut child = pinned(program, LOADGEN_CPU, pin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {program}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} ran longer than {limit:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{} ({})", String::from_utf8_lossy(&out.stderr).trim(), out.status));
    }
    stdout.lines().last().map(str::to_string).ok_or_else(|| "no output".into())
}

/// `key=value` pairs of a tool's output line.
type KeyValues = HashMap<String, String>;

fn parse_kv(line: &str) -> KeyValues {
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn run_row(loadgen: &str, pin: bool, srv: &Running, row: Row, warmup: f64, duration: f64) -> Result<RowResult, String> {
    let (addr, conns, size, pipeline) =
        (srv.addr.to_string(), row.conns.to_string(), row.size.to_string(), row.pipeline.to_string());
    let (pid, warmup_s, duration_s) = (srv.pid().to_string(), warmup.to_string(), duration.to_string());
    let args = [
        "--addr",
        &addr,
        "--conns",
        &conns,
        "--size",
        &size,
        "--pipeline",
        &pipeline,
        "--binary",
        "--warmup",
        &warmup_s,
        "--duration",
        &duration_s,
        "--server-pid",
        &pid,
    ];
    let limit = Duration::from_secs_f64(warmup + duration + 60.0);
    let kv = parse_kv(&run_tool(loadgen, &args, pin, limit)?);
    let get = |k: &str| -> Result<f64, String> {
        kv.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| format!("loadgen output lacks {k}"))
    };
    Ok(RowResult {
        msgs_per_sec: get("msgs_per_sec")?,
        server_us_per_msg: get("server_cpu_us_per_msg")?,
        server_cpu: get("server_cpu")?,
        loadgen_cpu: get("loadgen_cpu")?,
        other_cpu: get("other_cpu")?,
    })
}

/// Server RSS (bytes) before and after `n` idle connections are open.
fn idle_memory(loadgen: &str, pin: bool, srv: &Running, n: usize) -> Result<(u64, u64), String> {
    let pid = srv.pid();
    let before = crest_bench::vm_rss_bytes(pid).map_err(|e| e.to_string())?;
    let (addr, n_s) = (srv.addr.to_string(), n.to_string());
    let mut child = pinned(loadgen, LOADGEN_CPU, pin)
        .args(["--addr", &addr, "--idle", &n_s, "--hold", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start loadgen: {e}"))?;
    // loadgen's own watchdog bounds this read.
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
    let ready = line.starts_with("idle_ready");
    let after = if ready {
        // The client saw every 101; give the server a moment to finish
        // whatever it does right after writing it.
        std::thread::sleep(Duration::from_millis(1000));
        crest_bench::vm_rss_bytes(pid).map_err(|e| e.to_string())
    } else {
        Err("loadgen did not report idle_ready".to_string())
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"\n");
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let after = after.map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr).trim()))?;
    Ok((before, after))
}

/// One row against one running server, run again while other processes
/// disturbed it (keeping the least disturbed attempt) and the retry budget
/// lasts.
#[allow(clippy::too_many_arguments)]
fn measure_row(
    loadgen: &str,
    pin: bool,
    srv: &mut Running,
    name: &str,
    row: Row,
    warmup: f64,
    duration: f64,
    retries: usize,
    retry_deadline: Instant,
) -> Result<RowResult, String> {
    let mut attempt = 0;
    let mut best: Option<RowResult> = None;
    loop {
        eprint!("echo bench: {:<18} {:<36} ", name, row.label());
        let r = run_row(loadgen, pin, srv, row, warmup, duration);
        match &r {
            Ok(r) => eprintln!(
                "{:>10.0} msg/s {:>8.2} µs/msg  server {:>3.0}% loadgen {:>3.0}% other {:>3.0}%",
                r.msgs_per_sec,
                r.server_us_per_msg,
                r.server_cpu * 100.0,
                r.loadgen_cpu * 100.0,
                r.other_cpu * 100.0,
            ),
            Err(e) => eprintln!("FAILED: {e}"),
        }
        // Disturbed by other processes: try again while the retry budget
        // lasts, and keep the least disturbed attempt.
        let disturbed = r.as_ref().is_ok_and(|r| r.other_cpu >= OTHER_NOISE);
        if !disturbed || attempt >= retries || Instant::now() > retry_deadline || !srv.alive() {
            return match (r, best) {
                (Ok(r), Some(b)) => Ok(least_disturbed(r, b)),
                (Err(_), Some(b)) => Ok(b),
                (r, None) => r,
            };
        }
        attempt += 1;
        best = Some(match (r, best.take()) {
            (Ok(r), Some(b)) => least_disturbed(r, b),
            (Ok(r), None) => r,
            (Err(_), Some(b)) => b,
            (Err(_), None) => unreachable!("a disturbed row has a result"),
        });
        eprintln!("echo bench: (other processes were busy; retry {attempt}/{retries})");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn least_disturbed(a: RowResult, b: RowResult) -> RowResult {
    if a.other_cpu <= b.other_cpu {
        a
    } else {
        b
    }
}

/// Machine-wide CPU in use (fraction of one core) over `window`.
fn machine_busy(window: Duration) -> Option<f64> {
    let a = crest_bench::cpu_totals().ok()?;
    std::thread::sleep(window);
    let b = crest_bench::cpu_totals().ok()?;
    let ticks = (b.task + b.irq) - (a.task + a.irq);
    Some(ticks as f64 / crest_bench::clk_tck() as f64 / window.as_secs_f64())
}

/// One line about the machine and the library versions in Cargo.lock.
fn environment(root: &Path, duration: f64, warmup: f64, pin: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let version = |name: &str| {
        let key = format!("name = \"{name}\"\nversion = \"");
        lock.find(&key)
            .map(|i| lock[i + key.len()..].split('"').next().unwrap_or("?").to_string())
            .unwrap_or_else(|| "?".into())
    };
    let libs = ["tokio", "tokio-tungstenite", "fastwebsockets", "hyper", "tokio-websockets"]
        .map(|n| format!("{n} {}", version(n)))
        .join(", ");
    format!(
        "{cpu}, Linux {}, {} CPUs; server on CPU {SERVER_CPU}, loadgen on CPU {LOADGEN_CPU}{}; \
         binary messages; {warmup} s warm-up + {duration} s measured per row. {libs}.",
        kernel.trim(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if pin { "" } else { " (NOT pinned)" },
    )
}
