#!/usr/bin/env bash
# Builds Kiln's libFuzzer targets (Sources/Fuzz) with -sanitize=fuzzer,address and runs each for a
# bounded time from its seed corpus (Tests/Fuzz/corpus/<target>). A crash, a hang (-timeout) or a
# wild allocation (-rss_limit_mb / -malloc_limit_mb) is a finding: the input is saved under
# .fuzz/findings/<target>/ and the script fails. New inputs the fuzzer finds go to .fuzz/corpus
# (git-ignored), so the committed seeds stay small.
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   which targets (default: all five)
#   FUZZ_OPTIONAL  1: a toolchain without libFuzzer is reported loudly and skipped (make test);
#                  otherwise it is an error (make fuzz)
#   FUZZ_SANITIZE  the -sanitize= list (default fuzzer,address)
#   FUZZ_FLAGS     more libFuzzer flags, e.g. "-fork=1 -ignore_crashes=1" to keep going after a finding
set -uo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"FuzzGraphDef FuzzGraphDefText FuzzNPY FuzzCheckpoint FuzzTFRecord"}
SANITIZE=${FUZZ_SANITIZE:-fuzzer,address}
SCRATCH=.build-fuzz
WORK=.fuzz

banner() { printf '\n*** %s ***\n\n' "$*" >&2; }

# libFuzzer ships in the Swift toolchain's compiler-rt (Linux toolchains from swift.org have it).
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v "$SWIFT")")")")
if ! ls "$toolchain"/lib/clang/*/lib/*/libclang_rt.fuzzer*.a >/dev/null 2>&1 \
    && ! ls "$toolchain"/lib/swift/clang/lib/*/libclang_rt.fuzzer*.a >/dev/null 2>&1; then
    banner "FUZZING SKIPPED: the Swift toolchain at $toolchain has no libFuzzer (libclang_rt.fuzzer); install a swift.org toolchain to run the fuzzers"
    [ "${FUZZ_OPTIONAL:-0}" = 1 ] && exit 0
    exit 1
fi

mkdir -p "$WORK"
build_log="$WORK/build.log"
for t in $TARGETS; do
    echo "fuzz: building $t (-sanitize=$SANITIZE, $SCRATCH)"
    if ! KILN_FUZZ=1 "$SWIFT" build --scratch-path "$SCRATCH" -Xswiftc "-sanitize=$SANITIZE" --product "$t" >"$build_log" 2>&1; then
        grep -v "Cannot export local symbol" "$build_log" | tail -30 >&2
        banner "FUZZING FAILED: $t did not build (log: $build_log)"
        exit 1
    fi
done
bin=$(KILN_FUZZ=1 "$SWIFT" build --scratch-path "$SCRATCH" --show-bin-path)

# ASan: aborts on the first error so libFuzzer saves the input; leak checks are off because
# Kiln's caches (compiled kernels, op registry) live for the whole process by design.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=0:handle_abort=1}
# The Swift runtime's backtracer would catch the trap first; libFuzzer must see it to save the input.
export SWIFT_BACKTRACE=enable=no

failed=0
summary=""
for t in $TARGETS; do
    seeds="Tests/Fuzz/corpus/$t"
    corpus="$WORK/corpus/$t"
    findings="$WORK/findings/$t"
    mkdir -p "$corpus" "$findings"
    log="$WORK/$t.log"
    echo "fuzz: running $t for ${SECONDS_EACH}s (log: $log)"
    # -timeout: one input taking longer is a hang; -rss_limit_mb/-malloc_limit_mb: memory blowups
    # are findings, not OOM kills of the machine.
    "$bin/$t" "$corpus" "$seeds" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=4096 \
        -malloc_limit_mb=2048 -max_len=16384 -print_final_stats=1 -artifact_prefix="$findings/" ${FUZZ_FLAGS:-} >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -z "$runs" ] && runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
    found=$(ls "$findings" 2>/dev/null | wc -l)
    line="$t: ${runs:-0} executions in ${SECONDS_EACH}s, $found finding(s) in $findings"
    if [ $rc -ne 0 ]; then
        failed=1
        line="$line -- FAILED (exit $rc)"
        grep -E "^(==[0-9]+==ERROR|SUMMARY|Fatal error|.*Fatal error:|ERROR: libFuzzer)" "$log" | head -5 >&2
    fi
    summary="$summary$line"$'\n'
done
printf '\nfuzz summary:\n%s' "$summary"
if [ $failed -ne 0 ]; then
    banner "FUZZING FOUND PROBLEMS: reproduce one with $bin/<target> <finding file>"
    exit 1
fi
