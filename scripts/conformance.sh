#!/usr/bin/env bash
# Runs the Autobahn|Testsuite against every testee, strictly: every case OK
# (INFORMATIONAL only where the suite marks it), nothing NON-STRICT/FAILED.
#   scripts/conformance.sh            # all testees, cases * except 12.*, 13.*
#   AUTOBAHN_EXCLUDE='' scripts/conformance.sh   # include compression cases
# Reports land in reports/<testee>/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
EXCLUDE="${AUTOBAHN_EXCLUDE-12.*,13.*}"
bin="$CARGO_TARGET_DIR/release/examples"
scripts/autobahn-setup.sh >/dev/null

status=0
run() { python3 scripts/autobahn.py "$@" || status=1; }

# crest-proto alone, on blocking std::net sockets.
cargo build --release -p crest-proto --example blocking_echo
run fuzzingclient --agent blocking_echo --port 9003 --exclude "$EXCLUDE" \
    --outdir reports/blocking_echo -- "$bin/blocking_echo" 127.0.0.1:9003

# Adapters: server (echo) and client (autobahn_client) modes, when present.
for crate in crest-tokio crest-async-std; do
    [ -f "$crate/examples/echo.rs" ] || continue
    cargo build --release -p "$crate" --example echo --example autobahn_client
    run fuzzingclient --agent "$crate" --port 9001 --exclude "$EXCLUDE" \
        --outdir "reports/$crate-server" -- "$bin/echo" 127.0.0.1:9001
    # Built per crate: the example names are the same in both adapters.
    run fuzzingserver --agent "$crate" --port 9001 --exclude "$EXCLUDE" \
        --outdir "reports/$crate-client" -- "$bin/autobahn_client" ws://127.0.0.1:9001
done
exit $status
