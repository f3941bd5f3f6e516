#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of Fuzzing/Package.swift (see docs/reliability.md).
#
#   Fuzzing/fuzz.sh build                 the sanitizer build (Fuzzing/.build; the main build is untouched)
#   Fuzzing/fuzz.sh smoke [RUNS]          every target over its seed corpus, RUNS executions each
#                                      (default 2000): the step `make test` runs
#   Fuzzing/fuzz.sh run [SECONDS] [TARGET...]
#                                      each target (default: all) for SECONDS (default 60), one after
#                                      another, nice'd; prints a table of executions, time, findings
#
# Inputs libFuzzer finds interesting go to Fuzzing/.work/corpus/TARGET (kept between runs, not
# committed); the committed seeds in Fuzzing/corpus/TARGET are only read. A crash, sanitizer report,
# leak, timeout (FUZZ_TIMEOUT s per input, default 10) or out-of-memory (FUZZ_RSS_MB, default 2048)
# stops a target, saves the input as Fuzzing/.work/artifacts/TARGET-*, and makes the script fail.
# FUZZ_SMOKE=0 skips the smoke step; toolchains without libFuzzer (Xcode's) skip it with a note.
set -euo pipefail
cd "$(dirname "$0")"
SWIFT=${SWIFT:-swift}
WORK=.work
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
BIN=.build/release

targets() { (cd Sources && ls -d fuzz-* | sort); }

has_libfuzzer() {
    local swiftc
    swiftc=$(command -v swiftc || true)
    [ -n "$swiftc" ] || return 1
    swiftc=$(readlink -f "$swiftc")
    compgen -G "$(dirname "$swiftc")/../lib/clang/*/lib/*/libclang_rt.fuzzer*" >/dev/null \
        || compgen -G "$(dirname "$swiftc")/../lib/swift/clang/lib/*/libclang_rt.fuzzer*" >/dev/null
}

# `--sanitize fuzzer` tells SwiftPM that libFuzzer supplies `main` (it then links the executables
# without an entry point of their own). Not `--sanitize fuzzer --sanitize address`: SwiftPM passes
# those to swiftc as two -sanitize flags and swiftc keeps only the last, so the Swift code would
# get no coverage instrumentation; one combined flag, given after SwiftPM's, does both.
build() {
    nice -n 10 "$SWIFT" build -c release --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address
}

# run_target TARGET FLAGS...: runs one target over its seeds and working corpus; prints
# "TARGET RUNS SECONDS RESULT" on the last line.
run_target() {
    local t=$1; shift
    mkdir -p "$WORK/corpus/$t" "$WORK/artifacts" "$WORK/logs"
    local log="$WORK/logs/$t.log" start end status=0
    start=$(date +%s.%N)
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0} \
        nice -n 10 "$BIN/$t" -detect_leaks=1 -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -print_final_stats=1 \
        -artifact_prefix="$WORK/artifacts/$t-" "$@" "$WORK/corpus/$t" "corpus/$t" >"$log" 2>&1 || status=$?
    end=$(date +%s.%N)
    local runs
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    [ -n "$runs" ] || runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]\+' | tail -1 || true)
    local result=ok
    if [ $status -ne 0 ]; then
        result=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-zA-Z-]+|fuzz check failed|Fatal error|deadly signal|SUMMARY: [A-Za-z]+: [a-z-]+' "$log" | head -1 || true)
        [ -n "$result" ] || result="exit $status"
        result="FAIL ($result; see Fuzzing/$log)"
    fi
    printf '%s %s %.1f %s\n' "$t" "${runs:-?}" "$(awk "BEGIN { print $end - $start }")" "$result"
    [ $status -eq 0 ]
}

report() {
    printf '%-24s %12s %9s  %s\n' target executions seconds result
    local failed=0 line
    for t in "$@"; do
        if line=$(run_target "$t" "${FLAGS[@]}"); then :; else failed=1; fi
        set -- $line
        printf '%-24s %12s %9s  %s\n' "$1" "$2" "$3" "${*:4}"
    done
    return $failed
}

case "${1:-}" in
    build) build ;;
    smoke)
        if [ "${FUZZ_SMOKE:-1}" = 0 ]; then echo "fuzz smoke: skipped (FUZZ_SMOKE=0)"; exit 0; fi
        if ! has_libfuzzer; then echo "fuzz smoke: skipped (this Swift toolchain ships no libFuzzer)"; exit 0; fi
        build
        FLAGS=(-runs="${2:-2000}")
        mapfile -t all < <(targets)
        report "${all[@]}"
        ;;
    run)
        has_libfuzzer || { echo "fuzz: this Swift toolchain ships no libFuzzer" >&2; exit 1; }
        build
        FLAGS=(-max_total_time="${2:-60}")
        shift $(( $# >= 2 ? 2 : 1 ))
        if [ $# -gt 0 ]; then chosen=("$@"); else mapfile -t chosen < <(targets); fi
        report "${chosen[@]}"
        ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
esac
