#!/usr/bin/env bash
# conv2d speed against PyTorch CPU on this machine, in one run: for each thread count, PyTorch
# (torch.set_num_threads) then the engine (Engine.threads), 3x3 pad 1 stride 1 at batch 64.
# Usage: tools/conv_bench.sh            (THREADS="1 2" REPS=10 by default; EXTRA=1 adds the shapes
#        of the other paths: stride 2, 3 input channels, 1x1)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-1 2}
reps=${REPS:-10}
swift build -c release --build-tests >/dev/null
log=$(mktemp)
for t in $threads; do
  python3 tools/torch_conv_bench.py --threads "$t" --reps "$reps" ${EXTRA:+--extra} | tee -a "$log"
  CONV_BENCH=1 CONV_BENCH_EXTRA="${EXTRA:-0}" CONV_BENCH_THREADS="$t" CONV_BENCH_REPS="$reps" \
    swift test -c release --skip-build --filter ConvolutionBenchmark 2>&1 | grep '^swift' | tee -a "$log"
done
python3 - "$log" <<'PY'
import re, sys
rows, sgemm, line_of = {}, {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"(torch|swift) threads=(\d+) sgemm 2048\^3 ([\d.]+)", line)
    if m: sgemm[int(m[2])] = float(m[3]); continue
    m = re.match(r"(torch|swift) threads=(\d+) (\S+).*?fwd +([\d.]+) ms.*fwd\+bwd +([\d.]+) ms", line)
    if m:
        rows.setdefault((int(m[2]), m[3]), {})[m[1]] = (float(m[4]), float(m[5]))
        line_of[(int(m[2]), m[3])] = line
print("\n| threads | shape (k s p) | fwd ms swift / torch | fwd ratio | fwd GFLOP/s (% of sgemm) | fwd+bwd ms swift / torch | fwd+bwd ratio |")
print("|---|---|---|---|---|---|---|")
for (t, shape), r in sorted(rows.items()):
    if "swift" not in r or "torch" not in r: continue
    (sf, sb), (tf, tb) = r["swift"], r["torch"]
    n, c, h, w = map(int, re.findall(r"\d+", shape)[:4]); o = int(shape.split("->")[1])
    k, s, p = map(int, re.search(r"k(\d+) s(\d+) p(\d+)", line_of[(t, shape)]).groups())
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    gf = 2.0 * n * o * ho * wo * c * k * k / (sf * 1e-3) / 1e9
    pct = f" ({100 * gf / sgemm[t]:.0f}%)" if t in sgemm else ""
    ksp = re.search(r"(k\d+ s\d+ p\d+)", line_of[(t, shape)])[1]
    print(f"| {t} | {shape} {ksp} | {sf:.2f} / {tf:.2f} | {tf / sf:.2f}x | {gf:.0f}{pct} | {sb:.2f} / {tb:.2f} | {tb / sb:.2f}x |")
PY
rm -f "$log"
