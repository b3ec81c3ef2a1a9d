"""``S2Node``: the single-step neuron as a SpikingJelly 2.0 ``BaseNode``."""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from spikingjelly.activation_based import neuron
from torch import Tensor

from ..core import registry
from ..core.validate import (
    STEP_MODES,
    choice,
    flag,
    real_number,
    spike_function,
    threshold_tensor,
)
from ..core.modules import neuron_spikes
from ..core.ifconvert import MAPPINGS, if_conversion_params, if_drive, if_step
from ..core.noise import MembraneNoise, as_membrane_noise
from ..errors import ConfigError
from .surrogate import ReducedS2

__all__ = ["ConvertedIFNode", "S2Node"]


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
        noise_std: (keyword-only) Gaussian noise :math:`\sigma` on the membrane before
            the threshold, in ``train()`` mode only (noise-based training: a number, a
            schedule or a :class:`~snn_singlestep.core.noise.MembraneNoise`; see
            :mod:`~snn_singlestep.core.noise`). In ``'m'`` mode every step draws its own.

    Examples:
        >>> import torch
        >>> from spikingjelly.activation_based import functional, layer
        >>> net = torch.nn.Sequential(layer.Linear(4, 3), S2Node())
        >>> functional.set_step_mode(net, "m")
        >>> net(torch.ones(2, 5, 4)).shape
        torch.Size([2, 5, 3])
        >>> S2Node(noise_std=0.4).noise
        MembraneNoise(std=0.4)
    """

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: Optional[float] = 0.0,
        surrogate_function: Optional[Callable[[Tensor], Tensor]] = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        *,
        noise_std: Union[float, MembraneNoise, Callable[[int], float]] = 0.0,
    ) -> None:
        v_threshold = real_number("v_threshold", v_threshold)
        if v_reset is not None:
            v_reset = real_number("v_reset", v_reset)
        flag("detach_reset", detach_reset)
        flag("store_v_seq", store_v_seq)
        choice("step_mode", step_mode, STEP_MODES)
        noise = as_membrane_noise(noise_std)
        if spike_function("surrogate_function", surrogate_function) is None:
            surrogate_function = ReducedS2()
        super().__init__(
            v_threshold, v_reset, surrogate_function, detach_reset, step_mode, store_v_seq
        )
        self.noise = noise

    def _fire(self, x: Tensor) -> Tensor:
        sg = self.surrogate_function
        params = (sg.alpha, sg.beta) if type(sg) is ReducedS2 and sg.spiking else None
        return neuron_spikes(
            x, self.v_threshold, sg, getattr(self, "noise", None), self.training,
            name="S2Node input", params=params,
        )

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


class ConvertedIFNode(neuron.BaseNode):
    r"""The T=N integrate-and-fire node that replaces an :class:`S2Node` (SpikingJelly 2.0).

    Built by :func:`snn_singlestep.to_multistep`. A stateful node: in step mode ``'s'``
    one call is one time step; in ``'m'`` the input is ``[T, N, *]``; the membrane
    ``v`` is a SpikingJelly memory, restored by ``functional.reset_net``. Equations and
    the mapping of the single-step threshold :math:`\theta` and training noise
    :math:`\sigma` are those of :mod:`snn_singlestep.core.noise`
    (:func:`~snn_singlestep.core.ifconvert.if_step`): drive :math:`aI + b`, threshold
    ``v_threshold = 1.0``, reset by subtraction (``v_reset=None``), initial and reset
    value of ``v`` :math:`c`.

    Args:
        threshold: :math:`\theta` of the replaced node (float or tensor; kept in the
            non-persistent buffer ``single_step_threshold``).
        noise_std: its training :math:`\sigma`. mapping: ``"matched"`` or ``"plain"``.
        surrogate_function: surrogate for :math:`u - 1` (default
            :class:`~snn_singlestep.spikingjelly.ReducedS2`).
        step_mode: ``'s'`` or ``'m'``. store_v_seq: as in ``BaseNode``.

    Examples:
        >>> import torch
        >>> from spikingjelly.activation_based import functional
        >>> node = ConvertedIFNode(1.0, noise_std=0.4, step_mode="m")
        >>> node(torch.full((4, 1), 1.2)).flatten().tolist()
        [1.0, 0.0, 1.0, 1.0]
        >>> functional.reset_net(node); node.v
        0.5
    """

    def __init__(
        self,
        threshold=1.0,
        *,
        noise_std: float = 0.0,
        mapping: str = "matched",
        surrogate_function: Optional[Callable[[Tensor], Tensor]] = None,
        step_mode: str = "s",
        store_v_seq: bool = False,
    ) -> None:
        theta = threshold_tensor(threshold)
        if mapping not in MAPPINGS:
            raise ConfigError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
        noise_std = real_number("noise_std", noise_std)
        _, _, v_init = if_conversion_params(theta, noise_std, mapping)
        flag("store_v_seq", store_v_seq)
        choice("step_mode", step_mode, STEP_MODES)
        if spike_function("surrogate_function", surrogate_function) is None:
            surrogate_function = ReducedS2()
        super().__init__(1.0, None, surrogate_function, False, step_mode, store_v_seq)
        self.register_buffer("single_step_threshold", theta, persistent=False)
        self.noise_std = noise_std
        self.mapping = mapping
        self.v_init = float(v_init)
        self._memories["v"] = self.v_init
        self.set_reset_value("v", self.v_init)

    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v = states[0]
        if not isinstance(v, Tensor) or v.shape != x.shape:
            v = torch.full_like(x, self.v_init)
        elif v.dtype != x.dtype or v.device != x.device:
            v = v.to(dtype=x.dtype, device=x.device)
        return (v, *states[1:])

    def single_step_functional_forward(self, inputs, states, **kwargs):
        x, v = inputs[0], states[0]
        drive = if_drive(x, self.single_step_threshold, self.noise_std, self.mapping).to(x.dtype)
        spike, v = if_step(drive, v, self.surrogate_function)
        return (spike,), (v, *states[1:])

    def extra_repr(self) -> str:
        theta = self.single_step_threshold
        shown = f"{theta.item():.4g}" if theta.numel() == 1 else f"tensor{tuple(theta.shape)}"
        return (
            f"threshold={shown}, noise_std={self.noise_std}, mapping={self.mapping!r}, "
            f"step_mode={self.step_mode}"
        )


# --- registry ------------------------------------------------------------------------------


def _build_if(source: torch.nn.Module, *, noise_std: float, mapping: str) -> ConvertedIFNode:
    """The SpikingJelly IF node standing for the single-step neuron ``source`` at T=N."""
    theta = registry.threshold_of(source)
    return ConvertedIFNode(
        theta.detach() if isinstance(theta, Tensor) else float(theta),
        noise_std=noise_std,
        mapping=mapping,
        surrogate_function=registry.spike_fn_of(source),
        step_mode=source.step_mode if isinstance(source, S2Node) else "s",
    )


def _if_refusal(source: torch.nn.Module, target: str) -> Optional[str]:
    if isinstance(registry.threshold_of(source), torch.nn.Parameter):
        return "a learnable threshold is kept by framework='torch' or 'snntorch' only"
    return None


_FIRING_METHODS = ("_fire", "single_step_forward", "multi_step_forward", "forward")

registry.register_neuron(
    registry.NeuronKind(
        S2Node,
        "spikingjelly",
        "single-step",
        S2Node,
        threshold_attr="v_threshold",
        spike_fn_attr="surrogate_function",
        firing_methods=_FIRING_METHODS,
    )
)
registry.register_neuron(
    registry.NeuronKind(
        ConvertedIFNode,
        "spikingjelly",
        "if",
        lambda: ConvertedIFNode(noise_std=0.4),
        threshold_attr="single_step_threshold",
        spike_fn_attr="surrogate_function",
        multistep_refusal=_if_refusal,
        build_if=_build_if,
        reset=ConvertedIFNode.reset,
    )
)
