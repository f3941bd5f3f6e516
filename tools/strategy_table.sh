#!/bin/bash
# The strategy comparison of docs/classifier.md ("Measured on the shipped model"): one recorded
# fixed-grid run per split, then every strategy replayed over the same (t, eps) errors.
#
#   tools/strategy_table.sh RUNS_DIR [N_TEST] [N_TRAIN]
#
# Records (U-Net calls: N x 500 each; ~0.6 images/s on 2 cores here):
#   RUNS_DIR/train-grid50  the first N_TRAIN (200) training images (held out: tau is fitted here)
#   RUNS_DIR/test-grid50   the first N_TEST (2000) test images
# both with --n-timesteps 50 --noise-by timestep --save-errors (seed 1 for train, 0 for test).
# Reruns resume the records and redo the replays (seconds). Prints a markdown table.
set -euo pipefail
RUNS=${1:?usage: tools/strategy_table.sh RUNS_DIR [N_TEST] [N_TRAIN]}
N_TEST=${2:-2000}
N_TRAIN=${3:-200}
B=${DIFFCLASS:-.build/release/diffclass}
M=models/fashion-mnist
REC="--n-timesteps 50 --noise-by timestep --save-errors"
$B eval --model $M --dataset fashion-mnist --split train --limit "$N_TRAIN" $REC --seed 1 --out "$RUNS/train-grid50" >/dev/null
$B eval --model $M --dataset fashion-mnist --split test --limit "$N_TEST" $REC --out "$RUNS/test-grid50" >/dev/null
$B calibrate --run "$RUNS/train-grid50" --out "$RUNS/cal-grid50.json" >/dev/null

declare -a NAMES FLAGS
add() { NAMES+=("$1"); FLAGS+=("$2"); }
add "fixed grid, 50 timesteps (the recorded run)" "--n-timesteps 50"
add "fixed grid, 25 timesteps (every other one of the 50)" "--timesteps $(seq -s, 30 40 990)"
add "fixed grid, 10 timesteps" "--n-timesteps 10"
add "official staged shape on the 50 grid (--stages 5:5,1:50)" "--stages 5:5,1:50"
add "make demo's stages (--stages 5:10,1:50)" "--stages 5:10,1:50"
add "Clark & Jaini t-test, published setting (min 20, p 2e-3)" "--ttest --timesteps grid --max-scores 50"
add "t-test re-tuned on train (min 5, p 0.05)" "--ttest --timesteps grid --max-scores 50 --min-scores 5 --p-value 0.05"
add "leader-gap (ours, defaults: min 5, Z 2)" "--leader-gap"
add "leader-gap, Z 1.5" "--leader-gap --gap 1.5"
add "leader-gap, Z 2.5" "--leader-gap --gap 2.5"
add "leader-gap, Z 3" "--leader-gap --gap 3"

echo "| strategy | accuracy ± s.e. | vs the 50 grid (paired s.e.) | U-Net calls / image | NLL | ECE |"
echo "|---|---|---|---|---|---|"
for i in "${!NAMES[@]}"; do
    out="$RUNS/replay-$i"
    rm -rf "$out"
    # shellcheck disable=SC2086
    $B replay --run "$RUNS/test-grid50" ${FLAGS[$i]} --calibration "$RUNS/cal-grid50.json" --out "$out" >/dev/null
    python3 tools/table_row.py "$out" "${NAMES[$i]}" "$RUNS/replay-0"
done
echo
echo "n = $(wc -l < "$RUNS/test-grid50/results.jsonl") test images; tau $(python3 -c "import json;print(round(json.load(open('$RUNS/cal-grid50.json'))['tau']))") fitted on $N_TRAIN training images (grid 50)."
