"""Train a small PyTorch classifier on two interleaved spirals, on the CPU, in seconds.

    python train_torch.py --lr 0.03 --epochs 60            # records one run
    gitexp run --seed 0 -- python train_torch.py --lr 0.03  # the same, launched by gitexp

Every step's loss and every epoch's accuracy go to the run's metrics; the best and the last
weights are saved as checkpoints, kept in the DVC cache (set up with `gitexp init`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

import gitexp
from gitexp.torch import save_checkpoint


def load(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset from the CSV examples/make_data.py writes (and DVC pins)."""
    rows = [line.split(",") for line in Path(path).read_text().splitlines()[1:]]
    xy = torch.tensor([[float(x), float(y)] for x, y, _ in rows])
    return xy, torch.tensor([int(label) for _, _, label in rows])


def spirals(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset: fixed (its own generator), so that only the seed changes between runs."""
    data = torch.Generator().manual_seed(1234)
    turn = torch.rand(points, generator=data) * 3 * math.pi
    label = torch.randint(0, 2, (points,), generator=data)
    sign = label.float() * 2 - 1
    xy = torch.stack([turn * torch.cos(turn) * sign, turn * torch.sin(turn) * sign], dim=1)
    xy += torch.randn(points, 2, generator=data) * 0.3
    return xy / (3 * math.pi), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=None, help="default: gitexp run --seed")
    parser.add_argument("--dataset", help="a CSV from make_data.py; default: generated here")
    args = parser.parse_args()

    config = {key: value for key, value in vars(args).items() if key != "seed"}
    data = [args.dataset] if args.dataset else None
    with gitexp.init(config=config, seed=args.seed, tags=["torch"], data=data) as run:
        xs, ys = load(args.dataset) if args.dataset else spirals(512)
        model = nn.Sequential(
            nn.Linear(2, args.hidden), nn.Tanh(), nn.Linear(args.hidden, args.hidden),
            nn.Tanh(), nn.Linear(args.hidden, 2),
        )  # fmt: skip
        optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
        loss_fn = nn.CrossEntropyLoss()
        step, best = 0, 0.0
        for epoch in range(args.epochs):
            order = torch.randperm(len(xs))  # seeded: the same order for the same seed
            for start in range(0, len(xs), args.batch):
                batch = order[start : start + args.batch]
                loss = loss_fn(model(xs[batch]), ys[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                run.log({"train/loss": loss.item()}, step=step)
                step += 1
            with torch.no_grad():
                accuracy = (model(xs).argmax(dim=1) == ys).float().mean().item()
            run.log({"train/accuracy": accuracy, "epoch": epoch}, step=step)
            if epoch % 10 == 0 or epoch == args.epochs - 1:
                print(f"epoch {epoch:3d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")
            if accuracy >= best:
                best = accuracy
                save_checkpoint(model.state_dict(), run.dir / "best.pt", role="best",
                                step=step, metrics={"train/accuracy": accuracy})  # fmt: skip
        save_checkpoint(model.state_dict(), run.dir / "last.pt", role="last", step=step)


if __name__ == "__main__":
    main()
