"""System metrics of a run under `gitexp run`: CPU, memory and GPUs, sampled by the wrapper.

A thread of the `gitexp run` process samples every INTERVAL_S seconds, never the training
process itself: the host's CPU and memory use and the resident memory of the command's
process tree (psutil, which DVC already brings), and each GPU's utilisation and memory
(NVML through nvidia-ml-py, loaded only where an NVIDIA driver is present). Rows go to their
own stream in the run's folder, in metrics.tsv's format, their step the whole seconds since
the run started; the record's metrics.tsv gets them after the training's own rows.

A sample that cannot be taken (no psutil, no NVML, a GPU gone) is left out, silently: system
metrics never stop or slow a run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

STREAM = "system.tsv"
INTERVAL_S = 5.0
_MB = 1024 * 1024
_NVIDIA = Path("/proc/driver/nvidia/version")
_FIRST_S = 1.0  # the sampling starts this long after the command


class Sampler:
    """Samples the host and the command's process tree until stopped."""

    def __init__(self, folder: Path, pid: int, started: float, interval: float = INTERVAL_S):
        self.path = folder / STREAM
        self.pid, self.started, self.interval = pid, started, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gitexp-system", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval)

    def _loop(self) -> None:
        # A command over within the first second is sampled never: it neither loads psutil
        # nor NVML, which would hold up its record by as long as it ran.
        if self._stop.wait(min(self.interval, _FIRST_S)):
            return
        try:
            import psutil  # type: ignore[import-untyped, unused-ignore]
        except ImportError:
            psutil = None
        gpus = _Gpus() if _NVIDIA.exists() else None
        if psutil is not None:
            psutil.cpu_percent(interval=None)  # the first reading only starts the count
        while not self._stop.wait(self.interval):
            values: dict[str, float] = {}
            if psutil is not None:
                values.update(_host(psutil, self.pid))
            if gpus is not None:
                values.update(gpus.sample())
            if values:
                self._write(values)
        if gpus is not None:
            gpus.close()

    def _write(self, values: dict[str, float]) -> None:
        now = time.time()
        prefix = f"{int(now - self.started)}\t{now - self.started:.3f}\t"
        lines = "".join(f"{prefix}{name}\t{value!r}\n" for name, value in sorted(values.items()))
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(lines)
        except OSError:
            self._stop.set()  # the run's folder is gone or full: the run says so, not us


def _host(psutil: Any, pid: int) -> dict[str, float]:
    values = {
        "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
        "system/memory_percent": float(psutil.virtual_memory().percent),
    }
    try:
        top = psutil.Process(pid)
        tree = [top, *top.children(recursive=True)]
        rss = 0
        for process in tree:
            try:
                rss += process.memory_info().rss
            except psutil.Error:
                continue  # ended between the listing and the reading
        values["system/process_rss_mb"] = round(rss / _MB, 1)
    except psutil.Error:
        pass  # the command has ended
    return values


class _Gpus:
    """Each NVIDIA GPU's utilisation and memory, through NVML."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        try:
            import pynvml  # type: ignore[import-not-found, import-untyped, unused-ignore]

            pynvml.nvmlInit()
            self.nvml: Any = pynvml
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            count = pynvml.nvmlDeviceGetCount()
            indices = [int(i) for i in visible.split(",") if i.strip().isdigit()] if visible else \
                list(range(count))  # fmt: skip
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices if i < count]
        except Exception:  # no binding, no driver, no device: no GPU metrics
            self.handles = []

    def sample(self) -> dict[str, float]:
        values = {}
        for index, handle in enumerate(self.handles):
            try:
                used = self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle).used
            except Exception:
                continue
            values[f"system/gpu{index}/utilization_percent"] = float(used)
            values[f"system/gpu{index}/memory_used_mb"] = round(memory / _MB, 1)
        return values

    def close(self) -> None:
        if self.handles:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
