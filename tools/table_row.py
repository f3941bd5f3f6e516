#!/usr/bin/env python3
"""One markdown row of a strategy table: accuracy with its standard error, the paired difference to
a reference run on the same images, mean U-Net calls, NLL and ECE (15 equal-width bins) of the
run's probabilities. Used by tools/strategy_table.sh and tools/official_table.sh.

    python3 tools/table_row.py RUN NAME REFERENCE_RUN
"""
import json
import math
import sys


def main():
    out, name, ref = sys.argv[1], sys.argv[2], sys.argv[3]
    s = json.load(open(out + "/summary.json"))
    recs = [json.loads(l) for l in open(out + "/results.jsonl")]
    nll = sum(-math.log(max(r["probabilities"][r["label"]], 1e-300)) for r in recs) / len(recs)
    bins = [[0, 0.0, 0.0] for _ in range(15)]
    for r in recs:
        p = r["probabilities"]
        k = max(range(len(p)), key=lambda i: (p[i], -i))
        conf = p[k]
        b = min(14, max(0, math.ceil(conf * 15) - 1))
        bins[b][0] += 1
        bins[b][1] += conf
        bins[b][2] += (k == r["label"])
    ece = sum(abs(c - a) for n, c, a in bins if n) / len(recs)
    base = {r["index"]: r["prediction"] == r["label"] for r in map(json.loads, open(ref + "/results.jsonl"))}
    d = [(r["prediction"] == r["label"]) - base[r["index"]] for r in recs]
    m = sum(d) / len(d)
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / max(len(d) - 1, 1))
    delta = f"{100 * m:+.2f} ± {100 * sd / math.sqrt(len(d)):.2f}"
    print(f"| {name} | {100 * s['accuracy']:.2f}% ± {100 * s['accuracy_stderr']:.2f} | {delta} | "
          f"{s['mean_calls']:.1f} | {nll:.3f} | {ece:.3f} |")


if __name__ == "__main__":
    main()
