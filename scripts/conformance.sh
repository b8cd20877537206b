#!/usr/bin/env bash
# Runs the Autobahn|Testsuite against every testee, strictly: every case OK
# (INFORMATIONAL only where the suite marks it), nothing NON-STRICT, FAILED or
# UNIMPLEMENTED.
#   scripts/conformance.sh                                  # every testee, every case (1.* to 13.*)
#   AUTOBAHN_COMPRESSION=crest-tokio scripts/conformance.sh # 12.*/13.* only for crest-tokio (what .ci/run does)
#   AUTOBAHN_COMPRESSION=none scripts/conformance.sh        # no 12.*/13.* (compression) anywhere: ~15 s a testee
#   AUTOBAHN_EXCLUDE='9.*' scripts/conformance.sh           # this exclusion for every testee instead
# AUTOBAHN_COMPRESSION: all (default), none, or the testees (crest-proto,
# crest-tokio, crest-async-std; comma-separated) that run 12.* and 13.*.
# The suite's Python side needs about 9 minutes for 12.*/13.* per testee; an
# adapter's server and client runs go side by side. Ports: AUTOBAHN_PORT
# (default 9001) for servers, +1 for clients, +2 for blocking_echo.
# AUTOBAHN_TIMEOUT bounds each run (seconds, default 2400). Reports land in
# reports/<testee>/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
COMPRESSION="${AUTOBAHN_COMPRESSION:-all}"
PORT="${AUTOBAHN_PORT:-9001}"
bin="$CARGO_TARGET_DIR/release/examples"
scripts/autobahn-setup.sh >/dev/null

# The cases a testee (crate) skips.
exclude() {
    if [[ -n "${AUTOBAHN_EXCLUDE+set}" ]]; then
        echo "$AUTOBAHN_EXCLUDE"
    elif [[ "$COMPRESSION" == all || ",$COMPRESSION," == *",$1,"* ]]; then
        echo ""
    else
        echo "12.*,13.*"
    fi
}

# Bound on one testee's run: 12.*/13.* alone take ~9 min on an idle machine,
# and an adapter's two runs share the CPU.
TIMEOUT="${AUTOBAHN_TIMEOUT:-2400}"

status=0
# --timeout goes before the `--`: everything after it is the testee's command line.
run() { python3 scripts/autobahn.py "$1" --timeout "$TIMEOUT" "${@:2}" || status=1; }

# crest-proto alone, on blocking std::net sockets.
cargo build --release -p crest-proto --example blocking_echo
run fuzzingclient --agent blocking_echo --port $((PORT + 2)) --exclude "$(exclude crest-proto)" \
    --outdir reports/blocking_echo -- "$bin/blocking_echo" "127.0.0.1:$((PORT + 2))"

# Adapters: server (echo) and client (autobahn_client) modes, side by side.
for crate in crest-tokio crest-async-std; do
    [ -f "$crate/examples/echo.rs" ] || continue
    # Built per crate: the example names are the same in both adapters.
    cargo build --release -p "$crate" --example echo --example autobahn_client
    skip="$(exclude "$crate")"
    python3 scripts/autobahn.py fuzzingclient --agent "$crate" --port "$PORT" --exclude "$skip" --timeout "$TIMEOUT" \
        --outdir "reports/$crate-server" -- "$bin/echo" "127.0.0.1:$PORT" &
    server=$! # its exit status is collected below
    run fuzzingserver --agent "$crate" --port $((PORT + 1)) --exclude "$skip" \
        --outdir "reports/$crate-client" -- "$bin/autobahn_client" "ws://127.0.0.1:$((PORT + 1))"
    wait "$server" || status=1
done
exit $status
