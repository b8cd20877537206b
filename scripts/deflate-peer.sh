#!/usr/bin/env bash
# permessage-deflate against an independent peer: Python's `websockets`
# (zlib underneath) talks compressed to every crest testee.
#   scripts/deflate-peer.sh
# Servers: blocking_echo (crest-proto alone), the crest-tokio and
# crest-async-std echo examples. Clients: both adapters' autobahn_client
# examples. See scripts/deflate_peer.py for what is checked.
#
# Installs websockets into a virtualenv (default
# $HOME/.cache/crest/deflate-peer-venv, or $CREST_DEFLATE_VENV); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
VENV="${CREST_DEFLATE_VENV:-$HOME/.cache/crest/deflate-peer-venv}"
WEBSOCKETS_VERSION="15.0.1"

if ! "$VENV/bin/python" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "deflate-peer: installing websockets $WEBSOCKETS_VERSION into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION"
fi
py="$VENV/bin/python"
bin="$CARGO_TARGET_DIR/release/examples"

cargo build --release -p crest-proto --example blocking_echo
"$py" scripts/deflate_peer.py client -- "$bin/blocking_echo" '{addr}'
for crate in crest-tokio crest-async-std; do
    # Built per crate: the example names are the same in both adapters.
    cargo build --release -p "$crate" --example echo --example autobahn_client
    "$py" scripts/deflate_peer.py client -- "$bin/echo" '{addr}'
    "$py" scripts/deflate_peer.py server -- "$bin/autobahn_client" '{url}' "$crate"
done
echo "deflate-peer: all testees passed"
