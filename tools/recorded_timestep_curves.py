#!/usr/bin/env python3
"""The paper's two timestep curves from a recorded run (`diffclass eval --save-errors`, a fixed grid):
accuracy from each single grid timestep, and accuracy from k random grid timesteps (shared noise,
5 random subsets per image, numpy seed 0). No U-Net calls. Usage:
    python3 tools/recorded_timestep_curves.py RUN
"""
import json
import sys

import numpy as np

run = sys.argv[1] if len(sys.argv) > 1 else "runs/strategies/test-grid50"
errors, labels = [], []
for line in open(run + "/results.jsonl"):
    r = json.loads(line)
    order = np.argsort(r["probe_timesteps"])
    errors.append(np.array(r["probe_errors"], dtype=float)[:, order])
    labels.append(r["label"])
    ts = np.sort(r["probe_timesteps"])
E, L = np.array(errors), np.array(labels)
K, P = E.shape[1], E.shape[2]
single = (E.argmin(1) == L[:, None]).mean(0)
print("single timestep accuracy (t: %):", " ".join(f"{t}:{100 * a:.0f}" for t, a in zip(ts, single)))
print(f"best single timestep: t = {ts[single.argmax()]}, {100 * single.max():.1f}%")
rng = np.random.default_rng(0)
for k in [1, 2, 5, 10, 20, P]:
    accs = []
    for _ in range(5):
        idx = np.array([rng.choice(P, k, replace=False) for _ in range(len(L))])
        M = np.take_along_axis(E, idx[:, None, :].repeat(K, 1), 2).mean(2)
        accs.append((M.argmin(1) == L).mean())
    print(f"{k:3d} random grid timesteps, shared noise: {100 * np.mean(accs):.2f}%")
