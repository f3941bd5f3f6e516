#!/usr/bin/env python3
"""Per-image outcomes of the official-schedule table (tools/official_table.sh), as a small CSV that
can be committed, and the table recomputed from one or more such CSVs (e.g. images 0-749 from one
session and 750-1999 from another; an image in two files must agree).

    python3 tools/official_outcomes.py export RUNS_DIR OUT.csv    # RUNS_DIR/rows.tsv + replay-K/
    python3 tools/official_outcomes.py table A.csv [B.csv ...]     # markdown table on stdout

One row per image: index, label, then per strategy K (named in the header as K:name):
prediction, calls, probability of the label, probability of the most probable class and whether
that class is the label (for NLL and the 15-bin ECE, as tools/table_row.py computes them).
The paired column compares each strategy with the first one (the full grid, or the official staged
schedule when the full grid was not recorded).
"""
import csv
import json
import math
import sys


def export(runs, out):
    rows = [line.rstrip("\n").split("\t", 1) for line in open(f"{runs}/rows.tsv") if line.strip()]
    per = []
    for k, _ in rows:
        recs = {r["index"]: r for r in map(json.loads, open(f"{runs}/replay-{k}/results.jsonl"))}
        per.append(recs)
    indices = sorted(per[0])
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        header = ["index", "label"]
        for k, name in rows:
            header += [f"{k}:{name}:prediction", f"{k}:calls", f"{k}:p_label", f"{k}:p_max", f"{k}:argmax_correct"]
        w.writerow(header)
        for i in indices:
            label = per[0][i]["label"]
            line = [i, label]
            for recs in per:
                r = recs[i]
                assert r["label"] == label, f"image {i}: labels differ between runs"
                p = r["probabilities"]
                top = max(range(len(p)), key=lambda c: (p[c], -c))
                line += [r["prediction"], r["calls"], f"{p[label]:.6g}", f"{p[top]:.6g}", int(top == label)]
            w.writerow(line)


def table(paths):
    names, images = None, {}
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            these = [h.split(":", 1)[1].rsplit(":", 1)[0] for h in header[2::5]]
            if names is None:
                names = these
            elif names != these:
                sys.exit(f"{path}: other strategies than {paths[0]}")
            for row in reader:
                i = int(row[0])
                if i in images and images[i] != row:
                    sys.exit(f"{path}: image {i} differs from an earlier file")
                images[i] = row
    n = len(images)
    print(f"| strategy | accuracy ± s.e. | vs {names[0]} (paired s.e.) | U-Net calls / image | NLL | ECE |")
    print("|---|---|---|---|---|---|")
    base = [int(r[2]) == int(r[1]) for r in images.values()]
    for s, name in enumerate(names):
        o = 2 + 5 * s
        correct = [int(r[o]) == int(r[1]) for r in images.values()]
        acc = sum(correct) / n
        se = math.sqrt(acc * (1 - acc) / n)
        d = [a - b for a, b in zip(correct, base)]
        m = sum(d) / n
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / max(n - 1, 1))
        calls = sum(float(r[o + 1]) for r in images.values()) / n
        nll = sum(-math.log(max(float(r[o + 2]), 1e-300)) for r in images.values()) / n
        bins = [[0, 0.0, 0.0] for _ in range(15)]
        for r in images.values():
            conf = float(r[o + 3])
            b = min(14, max(0, math.ceil(conf * 15) - 1))
            bins[b][0] += 1
            bins[b][1] += conf
            bins[b][2] += int(r[o + 4])
        ece = sum(abs(c - a) for cnt, c, a in bins if cnt) / n
        print(f"| {name} | {100 * acc:.2f}% ± {100 * se:.2f} | {100 * m:+.2f} ± {100 * sd / math.sqrt(n):.2f} | "
              f"{calls:.1f} | {nll:.3f} | {ece:.3f} |")
    print(f"\nn = {n} images (indices {min(images)}-{max(images)})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        table(sys.argv[2:])
    else:
        sys.exit(__doc__)
