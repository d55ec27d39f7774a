"""A small, real training job: fit y = 3x - 1 with gradient descent, in plain Python.

    python train.py --lr 0.05 --epochs 30

Run it under gitexp to record the code, config, environment and output of every run:

    gitexp run --seed 0 -- python train.py --lr 0.05
"""

from __future__ import annotations

import argparse
import math
import os
import random


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()

    rng = random.Random(int(os.environ.get("GITEXP_SEED", "0")))
    xs = [rng.uniform(-1, 1) for _ in range(args.samples)]
    ys = [3 * x - 1 + rng.gauss(0, 0.1) for x in xs]
    w, b = 0.0, 0.0
    for epoch in range(args.epochs):
        grad_w = grad_b = loss = 0.0
        for x, y in zip(xs, ys, strict=True):
            error = w * x + b - y
            loss += error * error / len(xs)
            grad_w += 2 * error * x / len(xs)
            grad_b += 2 * error / len(xs)
        w, b = w - args.lr * grad_w, b - args.lr * grad_b
        print(f"epoch {epoch:3d}  loss {loss:.5f}  w {w:+.3f}  b {b:+.3f}")
        if not math.isfinite(loss) or loss > 1e6:
            print("loss diverged: lower --lr", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
