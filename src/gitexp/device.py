"""Tensors logged as metrics, read without making the training wait (DESIGN.md §6).

`float(loss)` on a CUDA tensor waits for the GPU to finish everything queued before it: 3 to
6 % of the steps of a medium model, every step. Here `log` keeps each 0-d tensor as it is
(detached, on its device). A batch of them is copied to pinned host memory in one
non-blocking copy per dtype, with a CUDA event recorded behind it, on the stream that made
them: when BATCH values are waiting, in `log`, and at every flush of the metrics (each
second, on the flusher's thread). A flush reads the batches whose event has completed
(`Event.query()`, which never waits); `drain`, at finish, waits for the rest. No call made
while training synchronises the device.

Values are what `.item()` gives: each tensor is copied in its own dtype (exact), then made a
Python float, as the writer makes every value. CPU tensors take the same path, read as soon
as they are copied, so the whole of it runs and is tested on any machine.

What a hard crash can lose is what it loses of any metric: the last second or so of
logging, and a copy still in flight. Memory is bounded: past CAP values not yet read, `add`
waits for the oldest batches (the device has fallen that far behind).

torch is imported only here, and only once a tensor has been logged: the script has
imported it already.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

BATCH = 256
CAP = 16384


class Pending:
    """A logged tensor's value, once the copy that carries it has landed."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float | None = None


def is_tensor(value: Any) -> bool:
    """A torch tensor, told without importing torch (numbers and arrays have no `is_cuda`)."""
    return hasattr(value, "is_cuda") and hasattr(value, "detach")


class _Landing:
    """One batch in flight: host copies grouped by dtype, and the event behind them."""

    def __init__(self, groups: list[tuple[list[Pending], Any]], event: Any) -> None:
        self.groups = groups
        self.event = event

    def ready(self, wait: bool) -> bool:
        if self.event is None:
            return True
        if wait:
            self.event.synchronize()
            return True
        return bool(self.event.query())

    def land(self) -> None:
        for slots, host in self.groups:
            for slot, value in zip(slots, host.tolist(), strict=True):
                slot.value = float(value)


class DeviceValues:
    """The tensors logged and not yet read, in the order they were logged."""

    def __init__(self, batch: int = BATCH, cap: int = CAP) -> None:
        self.batch, self.cap = batch, cap
        self._tensors: list[Any] = []
        self._slots: list[Pending] = []
        self._stream: Any = None  # the CUDA stream the open batch's tensors came from
        self._flight: deque[_Landing] = deque()
        self._in_flight = 0  # values copied or being copied, not yet read
        self._lock = threading.Lock()  # `add` on the training thread, `poll` on the flusher's

    def add(self, tensor: Any) -> Pending:
        """Keep a 0-d tensor; its value lands in the returned slot."""
        slot = Pending()
        stream = None
        if tensor.is_cuda:  # copied later on the stream that computes it, maybe elsewhere
            import torch

            stream = torch.cuda.current_stream(tensor.device)
        with self._lock:
            if self._tensors and stream is not None and stream != self._stream:
                self._launch()  # one batch, one stream
            if stream is not None:
                self._stream = stream
            self._tensors.append(tensor.detach())
            self._slots.append(slot)
            if len(self._tensors) >= self.batch:
                self._launch()
            if self._in_flight + len(self._tensors) > self.cap:  # the device fell far behind
                self._poll(wait=True)
        return slot

    @property
    def waiting(self) -> int:
        """How many logged values are not read yet."""
        return self._in_flight + len(self._tensors)

    def _launch(self) -> None:
        """Start copying the open batch to the host, one copy per dtype, none waited for."""
        import torch

        tensors, slots, stream = self._tensors, self._slots, self._stream
        self._tensors, self._slots, self._stream = [], [], None
        if stream is not None:
            with torch.cuda.stream(stream):
                self._copy(torch, tensors, slots)
        else:
            self._copy(torch, tensors, slots)

    def _copy(self, torch: Any, tensors: list[Any], slots: list[Pending]) -> None:
        grouped: dict[tuple[Any, Any], list[int]] = {}
        for i, tensor in enumerate(tensors):
            grouped.setdefault((tensor.device, tensor.dtype), []).append(i)
        groups, on_device = [], False
        for (device, dtype), members in grouped.items():
            stacked = torch.stack([tensors[i] for i in members])
            if device.type == "cuda":
                host = torch.empty(stacked.shape, dtype=dtype, pin_memory=True)
                host.copy_(stacked, non_blocking=True)
                on_device = True
            elif device.type == "cpu":
                host = stacked
            else:  # another accelerator: no event to wait on without waiting; read it now
                host = stacked.cpu()
            groups.append(([slots[i] for i in members], host))
        event = None
        if on_device:
            event = torch.cuda.Event()
            event.record()
        self._flight.append(_Landing(groups, event))
        self._in_flight += len(tensors)

    def _poll(self, wait: bool) -> None:
        while self._flight and self._flight[0].ready(wait):
            landing = self._flight.popleft()
            landing.land()
            self._in_flight -= sum(len(slots) for slots, _ in landing.groups)

    def poll(self) -> None:
        """Start copying what waits, and read every batch whose copy has landed, oldest
        first; never waits (the flusher's turn, each second)."""
        with self._lock:
            if self._tensors:
                self._launch()
            self._poll(wait=False)

    def drain(self) -> None:
        """Copy and read everything logged (at finish): the one place that waits."""
        with self._lock:
            if self._tensors:
                self._launch()
            self._poll(wait=True)
