"""Timing helpers shared by the benchmark scripts (interleaved rounds, best-of)."""

from __future__ import annotations

import time
from typing import Callable, Mapping

import torch


def interleaved_best(
    fns: Mapping[str, Callable[[], object]], *, rounds: int = 10, inner: int = 5, warmup: int = 3
) -> dict[str, float]:
    """Best time per call of each function, measured round-robin so that load on a shared
    machine hits every contender alike. Returns seconds per call."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = min(best[name], (time.perf_counter() - start) / inner)
    return best


def saved_tensor_bytes(step: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for backward during one call of ``step``
    (the activation memory of a training step, the part that grows with T). Tensors
    saved twice (same storage) are counted once."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())
