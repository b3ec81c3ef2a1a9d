"""``S2Node``: the single-step neuron as a SpikingJelly 2.0 ``BaseNode``."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from spikingjelly.activation_based import neuron
from torch import Tensor

from ..core._validate import flag, real_number
from ..core.functional import s2_neuron_step
from ..errors import ConfigError
from .surrogate import ReducedS2

__all__ = ["S2Node"]


class S2Node(neuron.BaseNode):
    r"""Single-step (T=1) spiking neuron of S²NN for SpikingJelly 2.0.

    Every step is complete in itself: :math:`v = x,\ s = H(v - V_{th})` from a zero
    membrane (equations in :func:`~snn_singlestep.core.functional.s2_neuron_step`). In
    step mode ``'s'`` the input is ``[N, *]``; in ``'m'`` it is ``[T, N, *]`` and each of
    the T steps is computed independently (one vectorised call, no loop). The node
    keeps no membrane between calls: ``node.v`` stays at its reset value, and
    ``functional.reset_net`` is accepted but has nothing to clear. With
    ``store_v_seq=True`` the membranes of the steps are recorded in ``node.v_seq``.

    Args:
        v_threshold: threshold :math:`V_{th}` (a finite float).
        v_reset: accepted for compatibility with ``BaseNode``; no effect at T=1.
        surrogate_function: maps :math:`v - V_{th}` to spikes; default
            :class:`~snn_singlestep.spikingjelly.ReducedS2`.
        detach_reset: accepted for compatibility; no effect (there is no reset).
        step_mode: ``'s'`` or ``'m'``.
        store_v_seq: record the membranes in ``self.v_seq``.

    Example:
        >>> import torch
        >>> from spikingjelly.activation_based import functional, layer
        >>> net = torch.nn.Sequential(layer.Linear(4, 3), S2Node())
        >>> functional.set_step_mode(net, "m")
        >>> net(torch.ones(2, 5, 4)).shape
        torch.Size([2, 5, 3])
    """

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: Optional[float] = 0.0,
        surrogate_function: Optional[Callable[[Tensor], Tensor]] = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
    ) -> None:
        v_threshold = real_number("v_threshold", v_threshold)
        if v_reset is not None:
            v_reset = real_number("v_reset", v_reset)
        flag("detach_reset", detach_reset)
        flag("store_v_seq", store_v_seq)
        if step_mode not in ("s", "m"):
            raise ConfigError(f"step_mode must be 's' or 'm', got {step_mode!r}")
        if surrogate_function is None:
            surrogate_function = ReducedS2()
        elif not callable(surrogate_function):
            raise ConfigError(f"surrogate_function must be callable, got {surrogate_function!r}")
        super().__init__(
            v_threshold, v_reset, surrogate_function, detach_reset, step_mode, store_v_seq
        )

    def _fire(self, x: Tensor) -> Tensor:
        spike, _ = s2_neuron_step(x, self.v_threshold, self.surrogate_function)
        return spike.to(x.dtype)

    def single_step_functional_forward(self, inputs, states, **kwargs):
        return (self._fire(inputs[0]),), tuple(states)

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        # Steps are independent, so the whole [T, N, *] sequence is one elementwise call.
        return (self._fire(inputs[0]),), tuple(states)

    def single_step_forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        spike = self._fire(x)
        if self.store_v_seq:
            self._append_v_seq(x)
        return spike

    def multi_step_forward(self, x_seq: Tensor, *args, **kwargs) -> Tensor:
        if self.store_v_seq:
            self.v_seq = x_seq
        return self._fire(x_seq)

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}, step_mode={self.step_mode}"
