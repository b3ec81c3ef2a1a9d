"""Record firing rates of the spiking layers of a net with forward hooks."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .core import validate
from .core.registry import is_spiking

__all__ = ["FiringRateMonitor"]


class FiringRateMonitor:
    """Context manager: mean firing rate (spikes per neuron per call) of each spiking layer.

    Spikes (non-zero outputs) are counted over every element of every output while the
    monitor is active (time steps included for multi-step nets), so a rate is the fraction
    of outputs that spike.

    Args:
        model: the net to watch; every spiking submodule (ours, snnTorch's and SpikingJelly's neurons:
            :func:`~snn_singlestep.core.registry.is_spiking`)
            is hooked, under its dotted name.

    Examples:
        >>> import torch
        >>> from snn_singlestep import S2Cell
        >>> net = torch.nn.Sequential(torch.nn.Identity(), S2Cell(threshold=0.5))
        >>> with FiringRateMonitor(net) as monitor:
        ...     _ = net(torch.tensor([0.2, 0.7, 0.9, 0.1]))
        >>> monitor.rates()
        {'1': 0.5}
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = validate.module("model", model)
        self._handles: list = []
        self._spikes: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._neurons: dict[str, int] = {}

    def __enter__(self) -> "FiringRateMonitor":
        for name, module in self.model.named_modules():
            if is_spiking(module):
                self._spikes.setdefault(name, 0)
                self._counts.setdefault(name, 0)
                self._neurons.setdefault(name, 0)
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def record(module: nn.Module, inputs, output) -> None:
            # snnTorch neurons may return (spk, mem); graded spikes count as one spike.
            spikes: Optional[Tensor] = output[0] if isinstance(output, tuple) else output
            if isinstance(spikes, Tensor):
                self._spikes[name] += int(torch.count_nonzero(spikes.detach()))
                self._counts[name] += spikes.numel()
                self._neurons[name] = spikes[0].numel() if spikes.ndim > 1 else 1

        return record

    def rates(self) -> dict[str, float]:
        """Firing rate per hooked layer (layers that never ran are left out)."""
        return {n: self._spikes[n] / c for n, c in self._counts.items() if c}

    def layers(self) -> list[dict]:
        """One dict per hooked layer that ran: ``layer`` (dotted path), ``neurons`` (per
        sample), ``spikes`` (total count) and ``rate``."""
        return [
            {"layer": n, "neurons": self._neurons[n], "spikes": self._spikes[n],
             "rate": self._spikes[n] / c}
            for n, c in self._counts.items() if c
        ]

    def overall(self) -> float:
        """Spikes over outputs, all layers together (0.0 before any forward pass)."""
        total = sum(self._counts.values())
        return sum(self._spikes.values()) / total if total else 0.0

    def reset(self) -> None:
        """Forget the spikes counted so far."""
        for name in self._spikes:
            self._spikes[name], self._counts[name] = 0, 0
