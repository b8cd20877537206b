#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target in fuzz/ and runs each for a
# bounded time with the dictionary and a scratch copy of its seed corpus
# (checked-in corpora are never modified). Exits non-zero if any target
# crashes, leaks, hangs or runs out of memory; prints one summary line per
# target. See fuzz/README.md.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_TARGETS    space-separated targets to run (default: all)
#   FUZZ_TOOLCHAIN  rustup toolchain (default nightly)
#   FUZZ_SANITIZER  address (default), leak or none
#   FUZZ_TARGET_DIR cargo target dir (default fuzz/target)
#   FUZZ_WORKDIR    keep scratch corpora and logs here (default: a temp dir, removed)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    # libFuzzer reads -max_total_time=0 as "no limit".
    echo "fuzz-smoke: FUZZ_SECONDS must be a positive number of seconds, not '$seconds'" >&2
    exit 2
fi
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
sanitizer="${FUZZ_SANITIZER:-address}"
dict="$root/fuzz/dict/websocket.dict"
# The fuzz crate is its own workspace; keep its instrumented builds out of
# the main target dir even when CI exports CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
# Release build with debug assertions and overflow checks, the sanitizer
# chosen; `build` and `run` must get the same flags or `run` rebuilds.
flags=(--debug-assertions --sanitizer "$sanitizer")

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "fuzz-smoke: toolchain '$toolchain' is not installed (rustup toolchain list)" >&2
    exit 1
fi
if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo "+$toolchain" install cargo-fuzz --locked
fi
echo "fuzz-smoke: $(cargo "+$toolchain" --version), $(cargo "+$toolchain" fuzz --version)"

if [[ -n "${FUZZ_WORKDIR:-}" ]]; then
    work="$FUZZ_WORKDIR"
    mkdir -p "$work"
else
    work="$(mktemp -d -t crest-fuzz.XXXXXX)"
    trap 'rm -rf "$work"' EXIT
fi

start=$(date +%s)
echo "fuzz-smoke: building all targets"
cargo "+$toolchain" fuzz build "${flags[@]}"
built=$(date +%s)

read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo "+$toolchain" fuzz list | tr '\n' ' ')}"

# The last value libFuzzer printed for `key`: a final `stat::` line, or a
# field of the last status line (`#N DONE cov: ... ft: ...`).
final_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }
field() { { grep -E '^#[0-9]+' "$2" || true; } | tail -n 1 | sed -n "s/.* $1: \([^ ]*\).*/\1/p"; }

summary=()
failed=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    log="$work/$t.log"
    mkdir -p "$corpus"
    if [[ -d "fuzz/corpus/$t" ]]; then
        cp -R "fuzz/corpus/$t/." "$corpus/"
    fi
    seeds=$(find "$corpus" -type f | wc -l)
    echo "fuzz-smoke: $t for ${seconds}s ($seeds seeds)"
    t0=$(date +%s)
    set +e
    cargo "+$toolchain" fuzz run "${flags[@]}" "$t" "$corpus" -- \
        -dict="$dict" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    took=$(( $(date +%s) - t0 ))
    status=ok
    if [[ $rc -ne 0 ]]; then
        status="FAILED(exit $rc)"
        failed+=("$t")
        echo "---- $t: $log ----" >&2
        if grep -q "panicked at" "$log"; then
            grep -A 12 "panicked at" "$log" | head -n 40 >&2
        else
            grep -v "^ *#[0-9]* 0x" "$log" | tail -n 40 >&2
        fi
        artifact=$({ grep -o "Test unit written to [^ ]*" "$log" || true; } | tail -n 1 | sed 's/Test unit written to //')
        if [[ -n "$artifact" ]]; then
            echo "fuzz-smoke: $t crashed on $artifact" >&2
            echo "  reproduce: cargo +$toolchain fuzz run $t $artifact" >&2
        fi
    fi
    line=$(printf '%-19s %-8s runs=%-9s exec/s=%-7s cov=%-5s ft=%-6s corpus=%-5s new=%-5s rss=%sMB time=%ss' \
        "$t" "$status" "$(final_stat number_of_executed_units "$log")" "$(final_stat average_exec_per_sec "$log")" \
        "$(field cov "$log")" "$(field ft "$log")" "$(find "$corpus" -type f | wc -l)" \
        "$(final_stat new_units_added "$log")" "$(final_stat peak_rss_mb "$log")" "$took")
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz-smoke summary (${seconds}s per target, build $(( built - start ))s, total $(( $(date +%s) - start ))s):"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz-smoke: FAILED: ${failed[*]} (crash files under fuzz/artifacts/<target>/; see fuzz/README.md)" >&2
    exit 1
fi
echo "fuzz-smoke: all ${#targets[@]} targets ran clean"
