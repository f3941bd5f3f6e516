#!/bin/bash
# The official-schedule comparison of docs/classifier.md: Li et al.'s staged schedule
# (--stages 5:50,1:500) recorded on the first N_TEST test images, then every rule that fits in that
# recording replayed over the same (t, eps) errors, and a markdown table on stdout.
#
#   tools/official_table.sh RUNS_DIR [N_TEST] [WORKERS]          (FULL_GRID=1: also the 500-grid)
#
# RUNS_DIR/test-staged: --stages 5:50,1:500 --noise-by timestep --save-errors, seed 0, 2,750 U-Net
# passes per image: all 10 classes on the 50 stage-one timesteps (11, 31, ..., 991, the 50-point
# sub-grid of the 500-point grid: `--timesteps grid:500 --n-timesteps 50`), the 5 survivors on all
# 500. Every class has the stage-one timesteps, so the 50-grid and the t-test and leader-gap rules
# on it (`--timesteps grid:500 --max-scores 50`) replay exactly, with no U-Net calls.
# FULL_GRID=1 adds RUNS_DIR/test-grid500 (--n-timesteps 500 --reuse test-staged: the 2,250 passes
# per image the staged run did not make): then the table is replayed over the full grid, its first
# row (the paired reference) is the full grid, and the rules also run on all 500 timesteps
# (`--max-scores 500`). To stop the staged recording early and still add the grid: stop its
# workers, then run with N_TEST = the number of images finished (a complete prefix) and FULL_GRID=1.
# CHUNK=K advances the two recordings together, K images at a time (staged, then its grid), so a
# session that ends mid-way leaves a complete prefix of both; SEQUENTIAL=1 runs the shard processes
# one after another (one core) instead of side by side. DIFFCLASS=PATH picks the binary (copy it
# out of .build first when rebuilding while a recording runs). To extend a finished table to more
# images, rerun with a larger N_TEST: the shards resume where they stopped.
# Each recording runs as WORKERS (2) shard processes of one thread (faster than threads here),
# merged with `diffclass merge`; everything resumes: rerun the script after an interruption, or stop
# the workers and run it with N_TEST unchanged and STOP_EARLY=1 to tabulate the images finished so
# far (the longest prefix of image indices both shards completed). Cost on the 2-core machine of
# 2026-11-29 (Emerald Rapids, OpenBLAS Cooperlake kernels): ~250 passes/s with 2 workers, so
# about 11 s per image for the staged run and 9 s more for the 500-grid.
# Calibration: tau of models/fashion-mnist/calibration.json (first 200 training images, grid 50).
set -euo pipefail
RUNS=${1:?usage: tools/official_table.sh RUNS_DIR [N_TEST] [WORKERS]}
N_TEST=${2:-2000}
WORKERS=${3:-2}
B=${DIFFCLASS:-.build/release/diffclass}
M=models/fashion-mnist
CAL=(--calibration "$M/calibration.json")
REC="--model $M --dataset fashion-mnist --split test --noise-by timestep --save-errors --threads 1"
mkdir -p "$RUNS"

# record NAME LIMIT FLAGS...: the first LIMIT images into the shard folders RUNS/NAME-sI (resumed).
# The WORKERS shards run side by side, or one after another with SEQUENTIAL=1 (one core).
record() {
    local name=$1 limit=$2; shift 2
    local pids=()
    for ((i = 0; i < WORKERS; i++)); do
        # shellcheck disable=SC2086
        $B eval $REC --limit "$limit" "$@" --shard "$i/$WORKERS" --out "$RUNS/$name-s$i" >> "$RUNS/$name-s$i.log" 2>&1 &
        if [ "${SEQUENTIAL:-0}" = 1 ]; then wait "$!"; else pids+=($!); fi
    done
    for p in "${pids[@]}"; do wait "$p"; done
}

# merged NAME: RUNS/NAME merged from the shard folders RUNS/NAME-sI.
merged() {
    local name=$1
    rm -rf "$RUNS/$name" "$RUNS/$name-prefix"
    local parts=()
    for ((i = 0; i < WORKERS; i++)); do parts+=("$RUNS/$name-s$i"); done
    # Merge copies cut to the first N_TEST images, or to the longest complete prefix of indices
    # 0, 1, 2, ... of an interrupted recording (the shard folders stay as they are, to resume).
    python3 - "$N_TEST" "$RUNS/$name-prefix" "${parts[@]}" <<'PY'
import json, os, shutil, sys
limit, dest, parts = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
done = set()
for p in parts:
    done |= {json.loads(l)["index"] for l in open(p + "/results.jsonl")}
n = 0
while n in done and n < limit: n += 1
for k, p in enumerate(parts):
    shutil.copytree(p, f"{dest}/{k}")
    keep = [l for l in open(p + "/results.jsonl") if json.loads(l)["index"] < n]
    open(f"{dest}/{k}/results.jsonl", "w").writelines(keep)
if n < len(done):
    print(f"{parts[0]}...: tabulating the first {n} of the {len(done)} images done", file=sys.stderr)
PY
    local copies=()
    for ((i = 0; i < WORKERS; i++)); do copies+=("$RUNS/$name-prefix/$i"); done
    $B merge "${copies[@]}" --out "$RUNS/$name" > /dev/null
    rm -rf "$RUNS/$name-prefix"
}

# With CHUNK=K (and FULL_GRID=1) the two recordings advance together, K images at a time, so a
# recording stopped at any moment leaves few staged images without their grid.
if [ "${STOP_EARLY:-0}" != 1 ]; then
    step=$N_TEST
    [ "${CHUNK:-0}" -gt 0 ] && step=$CHUNK
    # Start at the chunk the last recording (the grid's, with FULL_GRID) stopped in.
    last=test-staged
    [ "${FULL_GRID:-0}" = 1 ] && last=test-grid500
    done_min=$N_TEST
    for ((i = 0; i < WORKERS; i++)); do
        d=0
        [ -f "$RUNS/$last-s$i/results.jsonl" ] && d=$(($(wc -l < "$RUNS/$last-s$i/results.jsonl") * WORKERS))
        ((d < done_min)) && done_min=$d
    done
    first=$((done_min / step * step))
    ((first < step)) && first=$step
    for ((upto = first; ; upto += step)); do
        ((upto > N_TEST)) && upto=$N_TEST
        record test-staged "$upto" --stages 5:50,1:500
        if [ "${FULL_GRID:-0}" = 1 ]; then
            merged test-staged   # the grid reuses the merged staged errors
            record test-grid500 "$upto" --n-timesteps 500 --reuse "$RUNS/test-staged"
        fi
        ((upto == N_TEST)) && break
    done
fi
merged test-staged
SRC="$RUNS/test-staged"
if [ "${FULL_GRID:-0}" = 1 ]; then
    merged test-grid500
    SRC="$RUNS/test-grid500"
fi

declare -a NAMES FLAGS
add() { NAMES+=("$1"); FLAGS+=("$2"); }
# The first row is the reference of the paired column: the full grid when it was recorded.
[ "${FULL_GRID:-0}" = 1 ] && add "full grid, 500 timesteps" "--n-timesteps 500"
add "official staged (--stages 5:50,1:500)" "--stages 5:50,1:500"
add "stage one alone: 50-grid 11, 31, ..., 991" "--timesteps grid:500 --n-timesteps 50"
add "25 of them (11, 51, ..., 971)" "--timesteps $(seq -s, 11 40 971)"
add "10 of them (11, 111, ..., 911)" "--timesteps $(seq -s, 11 100 911)"
if [ "${FULL_GRID:-0}" = 1 ]; then
    add "Clark & Jaini t-test, published setting (min 20, p 2e-3), 500 grid" "--ttest --timesteps grid --max-scores 500"
    add "t-test re-tuned on train (min 5, p 0.05), 500 grid" "--ttest --timesteps grid --max-scores 500 --min-scores 5 --p-value 0.05"
    add "leader-gap (ours, min 5, Z 2), 500 grid" "--leader-gap --timesteps grid --max-scores 500"
    add "leader-gap, Z 2.5, 500 grid" "--leader-gap --timesteps grid --max-scores 500 --gap 2.5"
    add "leader-gap, Z 3, 500 grid" "--leader-gap --timesteps grid --max-scores 500 --gap 3"
fi
add "Clark & Jaini t-test, published setting (min 20, p 2e-3), stage-one grid" "--ttest --timesteps grid:500 --max-scores 50"
add "t-test re-tuned on train (min 5, p 0.05), stage-one grid" "--ttest --timesteps grid:500 --max-scores 50 --min-scores 5 --p-value 0.05"
add "leader-gap (ours, defaults: min 5, Z 2), stage-one grid" "--leader-gap --timesteps grid:500 --max-scores 50"
add "leader-gap, Z 2.5, stage-one grid" "--leader-gap --timesteps grid:500 --max-scores 50 --gap 2.5"
add "leader-gap, Z 3, stage-one grid" "--leader-gap --timesteps grid:500 --max-scores 50 --gap 3"
STAGED_ROW=0
[ "${FULL_GRID:-0}" = 1 ] && STAGED_ROW=1

: > "$RUNS/rows.tsv"
REF=$([ "${FULL_GRID:-0}" = 1 ] && echo "the full grid" || echo "official staged")
echo "| strategy | accuracy ± s.e. | vs $REF (paired s.e.) | U-Net calls / image | NLL | ECE |"
echo "|---|---|---|---|---|---|"
for i in "${!NAMES[@]}"; do
    printf '%s\t%s\n' "$i" "${NAMES[$i]}" >> "$RUNS/rows.tsv"
    out="$RUNS/replay-$i"
    rm -rf "$out"
    # shellcheck disable=SC2086
    $B replay --run "$SRC" ${FLAGS[$i]} "${CAL[@]}" --out "$out" > /dev/null
    python3 tools/table_row.py "$out" "${NAMES[$i]}" "$RUNS/replay-0"
done
# The staged replay must reproduce the online staged run (same predictions and calls).
python3 - "$RUNS/test-staged" "$RUNS/replay-$STAGED_ROW" <<'PY'
import json, sys
a = {r["index"]: r for r in map(json.loads, open(sys.argv[1] + "/results.jsonl"))}
b = {r["index"]: r for r in map(json.loads, open(sys.argv[2] + "/results.jsonl"))}
same = sum(a[i]["prediction"] == b[i]["prediction"] and a[i]["calls"] == b[i]["calls"] for i in a)
print(f"\nonline staged run vs its replay: {same} of {len(a)} images with the same prediction and calls")
PY
echo "n = $(wc -l < "$SRC/results.jsonl") test images (the first ones), seed 0; tau from $M/calibration.json."
# Per-image outcomes of every row (small enough to commit; tools/official_outcomes.py table
# recomputes this table from it, also joined with the CSV of other images).
python3 tools/official_outcomes.py export "$RUNS" "$RUNS/outcomes.csv"
echo "per-image outcomes: $RUNS/outcomes.csv"
