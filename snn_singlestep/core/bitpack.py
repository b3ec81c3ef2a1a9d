r"""Spikes saved for backward as bits: 1 bit per 0/1 value instead of a float.

The layer after a spiking neuron (``Linear``, ``Conv``, ``MaxPool``) saves its input, the
spikes, for its own backward: a float tensor of 0s and 1s. Inside :func:`spike_bits`
every tensor that autograd saves and that is a spike tensor made by one of our neurons
(registered by :func:`~snn_singlestep.core.fused.fire` while the context is active, and
not modified since) is stored packed, 8 spikes per byte, and unpacked exactly when the
backward needs it; every other saved tensor is kept as it is. Gradients are bitwise those
of the unpacked graph (the 0/1 values come back exactly).

Packing (:class:`BitPacker`), for spikes :math:`s_0 … s_{n-1} \in \{0, 1\}` padded with
zeros to a multiple of 8, byte :math:`k` of the result is

.. math::

    p_k = \sum_{i=0}^{7} s_{8k+i}\, 2^{i}

computed on 64-bit words (8 spike bytes each, little-endian) by three shift-or steps;
unpacking runs the three steps backwards with masks.

Why not SpikingJelly's ``memopt.compress.BitSpikeCompressor``: it does the same job, but
this module is framework-neutral core code, which must not import SpikingJelly (layering
rule). Any object with its ``compress(tensor) -> payload`` / ``decompress(payload) ->
tensor`` interface can be passed as ``compressor=`` — SpikingJelly's included.
"""

from __future__ import annotations

import sys
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import Tensor

__all__ = ["BitPacker", "spike_bits"]

_MASKS_OUT = (0x0000000F0000000F, 0x0003000300030003, 0x0101010101010101)


class BitPacker:
    """Packs a tensor of 0s and 1s into 1 bit per element and back (equations: module doc).

    Examples:
        >>> packer = BitPacker()
        >>> s = torch.tensor([[1., 0., 1.], [0., 0., 1.]])
        >>> payload = packer.compress(s)
        >>> payload[0]
        tensor([37], dtype=torch.uint8)
        >>> torch.equal(packer.decompress(payload), s)
        True
    """

    def compress(self, t: Tensor) -> tuple[Tensor, torch.dtype, torch.Size]:
        n = t.numel()
        padded = -(-n // 8) * 8
        buf = torch.zeros(padded, dtype=torch.uint8, device=t.device)
        buf[:n].copy_(t.reshape(-1))  # 1.0 -> 1, 0.0 -> 0
        if sys.byteorder != "little" or padded == 0:
            shifts = torch.arange(8, dtype=torch.uint8, device=t.device)
            packed = (buf.view(-1, 8) << shifts).sum(1, dtype=torch.int16).to(torch.uint8)
            return packed, t.dtype, t.shape
        w = buf.view(torch.int64)  # byte i of a word is spike 8k + i (0 or 1)
        w = w | (w >> 7)
        w = w | (w >> 14)
        w = w | (w >> 28)  # bits 0..7 of word k: spikes 8k..8k+7
        return w.to(torch.uint8), t.dtype, t.shape

    def decompress(self, payload: tuple[Tensor, torch.dtype, torch.Size]) -> Tensor:
        packed, dtype, shape = payload
        n = shape.numel()
        if sys.byteorder != "little" or packed.numel() == 0:
            shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
            flat = ((packed.unsqueeze(1) >> shifts) & 1).reshape(-1)
        else:
            w = packed.to(torch.int64)
            for shift, mask in zip((28, 14, 7), _MASKS_OUT):
                w = (w | (w << shift)) & mask
            flat = w.view(torch.uint8)
        return flat[:n].to(dtype).reshape(shape)


class _Registry:
    """The spike tensors made inside one :func:`spike_bits` context, by storage address."""

    def __init__(self) -> None:
        self.spikes: dict[int, tuple[weakref.ref, int]] = {}

    def add(self, spikes: Tensor) -> None:
        self.spikes[spikes.data_ptr()] = (weakref.ref(spikes), spikes._version)

    def holds(self, t: Tensor) -> bool:
        entry = self.spikes.get(t.data_ptr())
        if entry is None:
            return False
        spikes = entry[0]()
        return (
            spikes is not None
            and t.dtype == spikes.dtype
            and t.numel() == spikes.numel()
            and t.is_contiguous()
            and t._version == entry[1]  # unchanged since it was made: still 0/1
        )


_local = threading.local()


def register_spikes(spikes: Tensor) -> Tensor:
    """Mark ``spikes`` (0/1 values) as packable in the active :func:`spike_bits` contexts."""
    for registry in getattr(_local, "stack", ()):
        registry.add(spikes)
    return spikes


def active() -> bool:
    """True inside a :func:`spike_bits` context (of this thread)."""
    return bool(getattr(_local, "stack", None))


@contextmanager
def spike_bits(compressor: Optional[object] = None) -> Iterator[None]:
    """Within this context, spikes saved for backward are stored as bits.

    Run the forward inside it; the backward may run inside or after it. Applies to the
    spikes of our single-step neurons (``S2Cell``, ``S2Neuron``, ``S2Node`` with 0/1
    spikes) that the following layers save. Uses ``torch.autograd.graph.saved_tensors_hooks``,
    so it takes the place of any such hooks active around it.

    Args:
        compressor: object with ``compress(tensor)`` and ``decompress(payload)``; default
            :class:`BitPacker`. SpikingJelly's
            ``spikingjelly.activation_based.memopt.compress.BitSpikeCompressor()`` works too.

    Examples:
        >>> from torch import nn
        >>> from snn_singlestep.core import S2Cell
        >>> net = nn.Sequential(nn.Linear(4, 8), S2Cell(0.0), nn.Linear(8, 2))
        >>> with spike_bits():
        ...     loss = net(torch.randn(3, 4)).sum()
        >>> loss.backward()
    """
    packer = BitPacker() if compressor is None else compressor
    registry = _Registry()
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []

    def pack(t: Tensor) -> object:
        if registry.holds(t):
            return _Packed(packer.compress(t))
        return t

    def unpack(saved: object) -> Tensor:
        if isinstance(saved, _Packed):
            return packer.decompress(saved.payload)
        return saved

    stack.append(registry)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield
    finally:
        stack.remove(registry)


class _Packed:
    """A packed spike tensor inside the graph (distinguishes it from a saved tensor)."""

    __slots__ = ("payload",)

    def __init__(self, payload: object) -> None:
        self.payload = payload
