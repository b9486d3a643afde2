#!/usr/bin/env bash
# Times `kiln compile` artifacts beside Session.run of the same graph and batch on this machine
# (release build), and prints their sizes and compile times:
#  - the golden frozen MLP (Tests/RuntimeTests/Fixtures/golden/frozen/frozen_mlp.pb), batch
#    $BATCH (default 64): the artifact in a C loop (scripts/aot-bench.c) and `kiln bench` on the graph;
#  - the digits CNN (batch 64): Examples/Digits trains it (a few seconds), exports it and times
#    Session.run of the batch; then the artifact in a C loop.
# THREADS=N runs both on N threads (KILN_THREADS for the session, NAME_set_threads for the artifact).
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
CC=${CC:-cc}
BATCH=${BATCH:-64}
RUNS=${RUNS:-2000}
OUT=.build/aot-bench
[ -n "${THREADS:-}" ] && export KILN_THREADS=$THREADS
$SWIFT build -c release --product kiln >/dev/null
KILN="$($SWIFT build -c release --show-bin-path)/kiln"
rm -rf "$OUT" && mkdir -p "$OUT"

# One artifact: compile (printing files, sizes, time), link the timing loop with cc alone, run it.
bench_artifact() {  # NAME DIR KILN-ARGS...
    local name=$1 dir=$2; shift 2
    "$KILN" compile "$@" --name "$name" --out "$dir"
    local up; up=$(echo "$name" | tr a-z A-Z)
    $CC -O2 -o "$dir/bench" -I "$dir" -DHEADER="\"$name.h\"" -DNAME="$name" -DUP="$up" scripts/aot-bench.c \
        "$dir/$name.o" $(ls "$dir"/*.a 2>/dev/null) -lm -lpthread
}

echo "== frozen MLP, batch $BATCH"
FROZEN=Tests/RuntimeTests/Fixtures/golden/frozen/frozen_mlp.pb
bench_artifact mlp "$OUT/mlp" "$FROZEN" --feed "x:0=float32[$BATCH,784]" --fetch probs:0
"$OUT/mlp/bench" --npy "$OUT/x.npy"
"$OUT/mlp/bench" "$RUNS"
"$KILN" bench "$FROZEN" --feed "x:0=$OUT/x.npy" --fetch probs:0 | grep -E "^method|^workload|frozen_mlp"

echo "== digits CNN, batch 64"
$SWIFT build -c release --product Digits >/dev/null
"$($SWIFT build -c release --show-bin-path)/Digits" --export "$OUT/digits-model" | grep -E "^session|test_accuracy"
bench_artifact digits "$OUT/digits" "$OUT/digits-model/digits.meta" --checkpoint "$OUT/digits-model/digits" \
    --feed 'images=float32[64,8,8,1]' --fetch eval_logits
"$OUT/digits/bench" "$RUNS"
