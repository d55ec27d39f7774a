"""Write the example dataset: 512 points on two interleaved spirals, as CSV.

    python make_data.py data/spirals.csv

The bytes are the same on every machine (a fixed seed, values rounded to 6 decimals), so the
DVC pointer committed beside them (examples/data/spirals.csv.dvc) pins exactly this file.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/spirals.csv")
    rng = random.Random(1234)
    rows = ["x,y,label"]
    for _ in range(512):
        turn = rng.uniform(0, 3 * math.pi)
        label = rng.randrange(2)
        sign = 1 if label else -1
        x = (turn * math.cos(turn) * sign + rng.gauss(0, 0.3)) / (3 * math.pi)
        y = (turn * math.sin(turn) * sign + rng.gauss(0, 0.3)) / (3 * math.pi)
        rows.append(f"{x:.6f},{y:.6f},{label}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
