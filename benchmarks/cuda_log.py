"""Logging a CUDA loss every step (DESIGN.md §8): steps per second of an MLP training loop
that logs nothing, that logs `float(loss)` (what W&B and MLflow take), and that logs the
loss tensor through `run.log` (gitexp keeps it on the device). Small, medium and large
models; medians over repeats, as ratios to the loop that logs nothing. Budget: ≤ 0.5 % fewer
steps per second for gitexp.

`torch.cuda.set_sync_debug_mode("error")` is on around every `run.log` call of the gitexp
loop, so a synchronisation inside it would stop the benchmark with an error: the proof that
there is none.

    make bench        # or: .venv/bin/python benchmarks/cuda_log.py [--quick]

Needs a CUDA device; without one it says so and stops (exit 0). bench.py reports it as row 2.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = {"small": (256, 2), "medium": (2048, 4), "large": (8192, 4)}  # width, layers
MODES = ("no logging", "log(float(loss))", "gitexp log(loss)")


def _model(torch: Any, width: int, layers: int) -> Any:
    blocks = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, width), torch.nn.GELU()]
    return torch.nn.Sequential(*blocks, torch.nn.Linear(width, 1)).cuda()


def _steps_per_s(torch: Any, mode: str, width: int, layers: int, steps: int) -> float:
    import gitexp

    torch.manual_seed(0)
    model = _model(torch, width, layers)
    optim = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = torch.randn(512, width, device="cuda")
    y = torch.randn(512, 1, device="cuda")
    run = gitexp.init(config={"width": width, "layers": layers}) if mode != MODES[0] else None
    for warm in range(2):  # the second pass is timed
        torch.cuda.synchronize()
        start = time.perf_counter()
        for step in range(steps):
            optim.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optim.step()
            if mode == MODES[1]:
                assert run is not None
                run.log({"loss": float(loss)}, step=warm * steps + step)
            elif mode == MODES[2]:
                assert run is not None
                torch.cuda.set_sync_debug_mode("error")
                run.log({"loss": loss}, step=warm * steps + step)
                torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    if run is not None:
        run.finish()
    return steps / elapsed


def _child(mode: str, size: str, steps: int) -> None:
    import torch

    width, layers = SIZES[size]
    print(_steps_per_s(torch, mode, width, layers, steps))


def no_cuda() -> str | None:
    """Why this machine cannot run the benchmark, or None when it can (asks torch in a child
    process: importing it here would cost the caller seconds)."""
    if not Path("/dev/nvidiactl").exists() and shutil.which("nvidia-smi") is None:
        return "no CUDA device on this machine"
    check = "import torch; print(torch.cuda.is_available())"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    if done.stdout.strip() != "True":
        return "torch sees no CUDA device" if done.returncode == 0 else "torch is not installed"
    return None


def measure(steps: int, repeats: int) -> tuple[str, dict[str, dict[str, list[float]]]]:
    """The device, and steps per second for each model size and mode, `repeats` fresh
    processes each, interleaved so that the machine's drift hits every mode alike."""
    found: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b",
                        "commit", "-q", "--allow-empty", "-m", "bench"], check=True)  # fmt: skip
        for size in SIZES:
            for _ in range(repeats):
                for mode in MODES:
                    child = [sys.executable, __file__, "--child", mode, size, str(steps)]
                    out = subprocess.run(child, cwd=repo, capture_output=True, text=True)
                    if out.returncode != 0:
                        raise RuntimeError(f"{mode} on {size} failed: {out.stderr.strip()[-300:]}")
                    found.setdefault(size, {}).setdefault(mode, []).append(float(out.stdout))
    name = [sys.executable, "-c", "import torch; print(torch.cuda.get_device_name())"]
    device = subprocess.run(name, capture_output=True, text=True).stdout.strip()
    return device, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SIZE", "STEPS"))
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return
    missing = no_cuda()
    if missing:
        print(f"cuda_log: {missing}; run it on a GPU machine")
        return
    steps, repeats = (200, 3) if args.quick else (1000, 5)
    device, found = measure(steps, repeats)
    print(f"{device}, {steps} steps, median of {repeats} fresh processes")
    print(f"{'model':8} {'mode':20} {'steps/s':>10} {'vs none':>9}")
    for size, modes in found.items():
        base = statistics.median(modes[MODES[0]])
        for mode, samples in modes.items():
            median = statistics.median(samples)
            print(f"{size:8} {mode:20} {median:10.1f} {median / base - 1:+9.2%}")


if __name__ == "__main__":
    main()
