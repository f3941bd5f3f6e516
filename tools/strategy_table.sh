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
    python3 - "$out" "${NAMES[$i]}" "$RUNS/replay-0" <<'PY'
import json, math, sys
out, name, ref = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(out + "/summary.json"))
recs = [json.loads(l) for l in open(out + "/results.jsonl")]
nll = sum(-math.log(max(r["probabilities"][r["label"]], 1e-300)) for r in recs) / len(recs)
bins = [[0, 0.0, 0.0] for _ in range(15)]
for r in recs:
    p = r["probabilities"]; k = max(range(len(p)), key=lambda i: (p[i], -i)); conf = p[k]
    b = min(14, max(0, math.ceil(conf * 15) - 1))
    bins[b][0] += 1; bins[b][1] += conf; bins[b][2] += (k == r["label"])
ece = sum(abs(c - a) for n, c, a in bins if n) / len(recs)
base = {r["index"]: r["prediction"] == r["label"] for r in map(json.loads, open(ref + "/results.jsonl"))}
d = [(r["prediction"] == r["label"]) - base[r["index"]] for r in recs]
m = sum(d) / len(d); sd = math.sqrt(sum((x - m) ** 2 for x in d) / max(len(d) - 1, 1))
delta = f"{100*m:+.2f} ± {100*sd/math.sqrt(len(d)):.2f}"
print(f"| {name} | {100*s['accuracy']:.2f}% ± {100*s['accuracy_stderr']:.2f} | {delta} | {s['mean_calls']:.1f} | {nll:.3f} | {ece:.3f} |")
PY
done
echo
echo "n = $(wc -l < "$RUNS/test-grid50/results.jsonl") test images; tau $(python3 -c "import json;print(round(json.load(open('$RUNS/cal-grid50.json'))['tau']))") fitted on $N_TRAIN training images (grid 50)."
