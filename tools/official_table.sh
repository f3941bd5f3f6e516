#!/bin/bash
# The official-schedule comparison of docs/classifier.md: Li et al.'s staged schedule
# (--stages 5:50,1:500) and the full 500-timestep grid behind it on the first N_TEST test images,
# then every rule on that grid replayed over the same (t, eps) errors.
#
#   tools/official_table.sh RUNS_DIR [N_TEST] [WORKERS]
#
# U-Net passes (about 470 per second with 2 workers on this 2-core machine):
#   RUNS_DIR/test-staged   --stages 5:50,1:500: 2,750 per image (all 10 classes on the 50
#                          stage-one timesteps, the 5 survivors on all 500)
#   RUNS_DIR/test-grid500  --n-timesteps 500 --reuse test-staged: the 2,250 per image the staged
#                          run did not score (the 5 pruned classes on 450 timesteps)
# both --noise-by timestep --save-errors, seed 0, each run as WORKERS (2) shard processes of one
# thread (faster than threads here) merged with `diffclass merge`. Everything resumes: rerun the
# script after an interruption. Then replays (seconds) and a markdown table on stdout.
# Calibration: tau of RUNS_DIR/cal-grid50.json if present (tools/strategy_table.sh fits it on the
# first 200 training images), else tau 1.
set -euo pipefail
RUNS=${1:?usage: tools/official_table.sh RUNS_DIR [N_TEST] [WORKERS]}
N_TEST=${2:-2000}
WORKERS=${3:-2}
B=${DIFFCLASS:-.build/release/diffclass}
M=models/fashion-mnist
REC="--model $M --dataset fashion-mnist --split test --limit $N_TEST --noise-by timestep --save-errors --threads 1"
mkdir -p "$RUNS"

# sharded NAME FLAGS...: RUNS/NAME from WORKERS shard folders RUNS/NAME-sI (resumed if present).
sharded() {
    local name=$1; shift
    local pids=()
    for ((i = 0; i < WORKERS; i++)); do
        # shellcheck disable=SC2086
        $B eval $REC "$@" --shard "$i/$WORKERS" --out "$RUNS/$name-s$i" >> "$RUNS/$name-s$i.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    rm -rf "$RUNS/$name"
    local parts=()
    for ((i = 0; i < WORKERS; i++)); do parts+=("$RUNS/$name-s$i"); done
    $B merge "${parts[@]}" --out "$RUNS/$name" > /dev/null
}

sharded test-staged --stages 5:50,1:500
sharded test-grid500 --n-timesteps 500 --reuse "$RUNS/test-staged"

CAL=()
[ -f "$RUNS/cal-grid50.json" ] && CAL=(--calibration "$RUNS/cal-grid50.json")
declare -a NAMES FLAGS
add() { NAMES+=("$1"); FLAGS+=("$2"); }
add "full grid, 500 timesteps" "--n-timesteps 500"
add "official staged (--stages 5:50,1:500)" "--stages 5:50,1:500"
add "stage one alone: grid of 50 (11, 31, ..., 991)" "--timesteps $(seq -s, 11 20 991)"
add "Clark & Jaini t-test, published setting (min 20, p 2e-3)" "--ttest --timesteps grid --max-scores 500"
add "t-test re-tuned on train (min 5, p 0.05)" "--ttest --timesteps grid --max-scores 500 --min-scores 5 --p-value 0.05"
add "leader-gap (ours, min 5, Z 2)" "--leader-gap --max-scores 500"
add "leader-gap, Z 2.5" "--leader-gap --max-scores 500 --gap 2.5"
add "leader-gap, Z 3" "--leader-gap --max-scores 500 --gap 3"

echo "| strategy | accuracy ± s.e. | vs the full grid (paired s.e.) | U-Net calls / image | NLL | ECE |"
echo "|---|---|---|---|---|---|"
for i in "${!NAMES[@]}"; do
    out="$RUNS/replay500-$i"
    rm -rf "$out"
    # shellcheck disable=SC2086
    $B replay --run "$RUNS/test-grid500" ${FLAGS[$i]} "${CAL[@]}" --out "$out" > /dev/null
    python3 tools/table_row.py "$out" "${NAMES[$i]}" "$RUNS/replay500-0"
done
# The staged replay must reproduce the online staged run (same predictions; errors to rounding).
python3 - "$RUNS/test-staged" "$RUNS/replay500-1" <<'PY'
import json, sys
a = {r["index"]: r for r in map(json.loads, open(sys.argv[1] + "/results.jsonl"))}
b = {r["index"]: r for r in map(json.loads, open(sys.argv[2] + "/results.jsonl"))}
same = sum(a[i]["prediction"] == b[i]["prediction"] and a[i]["calls"] == b[i]["calls"] for i in a)
print(f"\nonline staged run vs its replay over the full grid: {same} of {len(a)} images with the same prediction and calls")
PY
echo "n = $(wc -l < "$RUNS/test-grid500/results.jsonl") test images, seed 0; ${CAL[*]:-tau 1}."
