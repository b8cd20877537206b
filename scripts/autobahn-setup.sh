#!/usr/bin/env bash
# Install Autobahn|Testsuite (`wstest`, Python 2.7 only) into a virtualenv.
#
#   scripts/autobahn-setup.sh        -> prints the absolute path of wstest on stdout
#
# Idempotent: when the virtualenv already holds exactly the pinned set below
# and `wstest -a` runs, it returns in well under a second. A missing or broken
# virtualenv (e.g. its interpreter vanished) is rebuilt. All progress output
# goes to stderr; stdout carries only the wstest path.
#
# Environment:
#   CREST_AUTOBAHN_VENV  virtualenv location (default $HOME/.cache/crest/autobahn-venv)
#   CREST_PYTHON2        a Python 2.7 interpreter to use instead of pyenv's
#   PYENV_ROOT           where pyenv lives (default: `pyenv root`, $HOME/.pyenv, /root/.pyenv)
set -euo pipefail

HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
VENV="${CREST_AUTOBAHN_VENV:-$HOME/.cache/crest/autobahn-venv}"
VIRTUALENV_VERSION="16.7.12" # last "legacy" virtualenv: no deps, runs on and creates 2.7 envs
PIP_VERSION="20.3.4"         # last pip supporting Python 2.7

# Exact set that installs and imports on CPython 2.7.18 (found by trying; it is
# what autobahntestsuite 25.10.1's own == pins resolve to). Keep sorted.
PINS=(
  "Automat==22.10.0"
  "Jinja2==2.11.3"
  "MarkupSafe==1.1.1"
  "PyHamcrest==1.10.1"
  "Twisted==19.10.0"
  "Werkzeug==1.0.1"
  "argparse==1.4.0"
  "attrs==21.4.0"
  "autobahn==0.10.9"
  "autobahntestsuite==25.10.1"
  "cffi==1.15.1"
  "constantly==15.1.0"
  "cryptography==3.3.2"
  "enum34==1.1.10"
  "hyperlink==21.0.0"
  "idna==2.10"
  "incremental==16.10.1"
  "ipaddress==1.0.23"
  "klein==17.10.0"
  "linecache2==1.0.0"
  "pyOpenSSL==19.1.0"
  "pyasn1-modules==0.3.0"
  "pyasn1==0.5.1"
  "pycparser==2.21"
  "service-identity==18.1.0"
  "setuptools==44.0.0"
  "six==1.16.0"
  "traceback2==1.4.0"
  "txaio==2.1.0"
  "typing==3.10.0.0"
  "ujson==2.0.3"
  "unittest2==1.1.0"
  "wsaccel==0.6.6"
  "zope.interface==4.6.0"
)
# Build-time deps of wsaccel (sdist only; pyproject: Cython~=3.0.0, setuptools>=35.0.2),
# applied through PIP_CONSTRAINT, which pip's isolated build env inherits.
BUILD_PINS=(
  "Cython==3.0.12"
  "wheel==0.37.1"
)

log() { printf 'autobahn-setup: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STAMP="$VENV/.crest-autobahn-pins"
WANT_STAMP="$(printf '%s\n' "virtualenv==$VIRTUALENV_VERSION" "pip==$PIP_VERSION" "${PINS[@]}" "${BUILD_PINS[@]}")"

venv_ok() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/wstest" ] && [ -f "$STAMP" ] &&
    [ "$(cat "$STAMP")" = "$WANT_STAMP" ] &&
    "$VENV/bin/wstest" -a >/dev/null 2>&1
}

# Fast path: nothing to do.
if venv_ok; then
  echo "$VENV/bin/wstest"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"

# Serialise concurrent setups (bounded wait).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$VENV.lock"
  flock -w 900 9 || die "timed out waiting for lock $VENV.lock"
  if venv_ok; then
    echo "$VENV/bin/wstest"
    exit 0
  fi
fi

is_py27() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1; }

find_python2() {
  local cand roots=() r v
  if [ -n "${CREST_PYTHON2:-}" ]; then
    is_py27 "$CREST_PYTHON2" || die "CREST_PYTHON2=$CREST_PYTHON2 is not a Python 2.7 interpreter"
    echo "$CREST_PYTHON2"
    return
  fi
  [ -n "${PYENV_ROOT:-}" ] && roots+=("$PYENV_ROOT")
  if command -v pyenv >/dev/null 2>&1; then
    r="$(pyenv root 2>/dev/null || true)"
    [ -n "$r" ] && roots+=("$r")
  fi
  roots+=("$HOME/.pyenv" "/root/.pyenv")
  for r in "${roots[@]}"; do
    for v in "$r/versions/2.7.18" "$r"/versions/2.7.*; do
      cand="$v/bin/python2.7"
      if is_py27 "$cand"; then echo "$cand"; return; fi
    done
  done
  cand="$(command -v python2.7 || true)"
  if [ -n "$cand" ] && is_py27 "$cand"; then echo "$cand"; return; fi
  die "no Python 2.7 found (looked in \$PYENV_ROOT, pyenv root, ~/.pyenv, /root/.pyenv, PATH); set CREST_PYTHON2"
}

PY2="$(find_python2)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
log "using Python 2.7 at $PY2"

# A venv whose interpreter no longer runs (or is not 2.7) is rebuilt.
if [ -e "$VENV" ] && ! is_py27 "$VENV/bin/python"; then
  if [ -z "$(ls -A "$VENV" 2>/dev/null)" ] || [ -f "$VENV/bin/activate" ] || [ -f "$STAMP" ]; then
    log "virtualenv at $VENV is broken; recreating"
    rm -rf "$VENV"
  else
    die "$VENV exists but does not look like a virtualenv; refusing to delete it"
  fi
fi

if [ ! -e "$VENV" ]; then
  # Bootstrap virtualenv into a private --target dir so the pyenv interpreter
  # itself is left untouched.
  BOOT="$(dirname "$VENV")/virtualenv-$VIRTUALENV_VERSION-py27"
  if ! PYTHONPATH="$BOOT" "$PY2" -c 'import virtualenv, sys; sys.exit(0 if virtualenv.__version__ == "'"$VIRTUALENV_VERSION"'" else 1)' >/dev/null 2>&1; then
    "$PY2" -m pip --version >/dev/null 2>&1 || die "$PY2 has no pip (try: $PY2 -m ensurepip)"
    log "installing virtualenv==$VIRTUALENV_VERSION into $BOOT"
    rm -rf "$BOOT"
    if ! "$PY2" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
      --target "$BOOT" "virtualenv==$VIRTUALENV_VERSION" >"$BOOT.log" 2>&1; then
      cat "$BOOT.log" >&2
      die "installing virtualenv failed"
    fi
  fi
  log "creating virtualenv $VENV"
  PYTHONPATH="$BOOT" "$PY2" -m virtualenv --no-download -p "$PY2" "$VENV" >&2
  is_py27 "$VENV/bin/python" || die "virtualenv creation failed at $VENV"
fi

VPIP=("$VENV/bin/python" -m pip)

if ! "${VPIP[@]}" --version 2>/dev/null | grep -q "^pip $PIP_VERSION "; then
  log "installing pip==$PIP_VERSION"
  "${VPIP[@]}" install --no-input --progress-bar off -q "pip==$PIP_VERSION" >&2
fi

# wsaccel is built from source: needs a C compiler.
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 ||
  log "WARNING: no C compiler found; building wsaccel will fail (apt-get install gcc)"

log "installing autobahntestsuite with pinned dependencies (takes ~20-60 s the first time)"
PIPLOG="$VENV/.crest-pip-install.log"
printf '%s\n' "${PINS[@]}" "${BUILD_PINS[@]}" >"$VENV/.crest-constraints.txt"
if ! PIP_CONSTRAINT="$VENV/.crest-constraints.txt" "${VPIP[@]}" install --no-input --progress-bar off -q "${PINS[@]}" >"$PIPLOG" 2>&1; then
  cat "$PIPLOG" >&2
  die "pip install failed (log: $PIPLOG)"
fi
# Show anything noteworthy except pip's Python 2.7 end-of-life banner.
grep -v -e 'DEPRECATION: Python 2.7' "$PIPLOG" >&2 || true
"${VPIP[@]}" check >&2 || die "pip check failed in $VENV"

"$VENV/bin/python" -c 'import autobahntestsuite, autobahn, twisted, wsaccel' ||
  die "autobahntestsuite does not import in $VENV"
"$VENV/bin/wstest" -a >&2 || die "'wstest -a' failed"
"$VENV/bin/wstest" --help >/dev/null 2>&1 || die "'wstest --help' failed"

printf '%s\n' "$WANT_STAMP" >"$STAMP"
log "ok"
echo "$VENV/bin/wstest"
