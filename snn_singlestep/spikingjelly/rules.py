r"""Collapse multi-step SpikingJelly 2.0 nets (model zoo included) to single-step (T=1) nets.

Neurons are replaced by subclasses of :class:`~snn_singlestep.spikingjelly.S2Node` that
compute the *first time step of the source node from its reset state* with the source's
own arithmetic, then fire with the S² surrogate: :math:`s = H(h_1 - V_{th})`. The initial
membrane is :math:`v_0 = V_{reset}` (0 when ``v_reset=None``), as ``BaseNode`` registers it.
Each rule function below (``_if``, ``_lif``, …) states the source's first-step charge
:math:`h_1` (SpikingJelly 2.0.0 code, ``_ops/*/reference.py``) in its docstring: that docstring
is the one place the equation is written; reports show it and ``docs/collapse.md`` renders the
table from :func:`~snn_singlestep.list_rules`.

Every :math:`h_1` is an affine function of :math:`x` (``KLIFNode``: of :math:`x` through a
ReLU, which does not move the threshold for :math:`V_{th} > 0`), so the converted forward
equals the source's first step spike for spike, including the tie :math:`h_1 = V_{th}`
(SpikingJelly fires on equality too). ``NonSpikingIFNode``/``NonSpikingLIFNode`` readouts
become :class:`CollapsedNonSpikingNode` returning :math:`v_1` (:math:`x`, or :math:`x/\tau`).

Containers: ``SeqToANNContainer``, ``MultiStepContainer``, ``TLastSeqToANNContainer``,
``TLastMultiStepContainer`` become :class:`SingleStepSequential` with the same children
(same ``state_dict`` keys). Stateful layers (``layer.Dropout``, ``SynapseFilter``,
``Delay``, recurrent containers, …) are reset before every call (:func:`reset_each_call`),
so each call is their first step; multi-step-only layers get a time axis of size 1 around
their call (:func:`add_time_axis`). Models whose forward is written for ``[T, B, ...]``
(``MSResNet``, ``Spikformer``, ``SpikeDrivenTransformer``, ``QKFormer``, ``MASNN``,
``MaxFormer``) keep step mode ``'m'`` and run with ``T = 1``. Nets whose forward is the
user's own (SpikingJelly's example CSNN) keep every module's step mode, so they are called as
before (with ``net.T = 1``). Everything else is set to step mode ``'s'``. The reset cache is
invalidated.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from spikingjelly.activation_based import base, functional, layer, neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import Tensor, nn

from ..core import registry
from ..core.registry import RuleContext
from ..core.functional import s2_neuron_step
from ..core.noise import noise_kwargs
from ..core import validate
from ..errors import ConfigError, ConversionError
from .node import S2Node
from .surrogate import ReducedS2

__all__ = [
    "CollapsedCUBALIFNode",
    "CollapsedEIFNode",
    "CollapsedIFNode",
    "CollapsedIzhikevichNode",
    "CollapsedKLIFNode",
    "CollapsedLIFNode",
    "CollapsedNode",
    "CollapsedNonSpikingNode",
    "CollapsedParametricLIFNode",
    "CollapsedQIFNode",
    "CollapsedSimpleLIFNode",
    "SingleStepSequential",
    "add_time_axis",
    "reset_each_call",
]


# --- single-step nodes ----------------------------------------------------------------


class CollapsedNode(S2Node):
    r"""Base of the converted SpikingJelly neurons: :math:`s = H(h_1(x) - V_{th})`.

    Subclasses define :meth:`membrane`, the first-step charge :math:`h_1(x)` of their
    source neuron. Steps are independent (no state between calls), in step mode ``'s'``
    (``[N, *]``) and ``'m'`` (``[T, N, *]``, each step its own first step). After threshold
    calibration the threshold is the buffer ``v_threshold_calibrated`` (per layer or per
    channel) instead of the float ``v_threshold``.

    Args:
        v_threshold: :math:`V_{th}`. v_reset: the source's ``v_reset`` (sets :math:`v_0`).
        surrogate_function: default :class:`~snn_singlestep.spikingjelly.ReducedS2`.
        step_mode: ``'s'`` or ``'m'``. store_v_seq: record :math:`h_1` in ``v_seq``.
        source: name of the source class (shown in ``repr``).
        noise_std: (keyword-only) membrane noise as in :class:`S2Node`: in ``train()``
            mode :math:`\sigma\varepsilon` is added to :math:`h_1` before the threshold
            (``v_seq`` records the noiseless :math:`h_1`); ``eval()`` is the exact,
            deterministic first step. :meth:`membrane` is always noiseless (calibration).
    """

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: Optional[float] = 0.0,
        surrogate_function: Optional[Callable[[Tensor], Tensor]] = None,
        step_mode: str = "s",
        store_v_seq: bool = False,
        source: str = "",
        *,
        noise_std=0.0,
    ) -> None:
        super().__init__(
            v_threshold=float(v_threshold),
            v_reset=None if v_reset is None else float(v_reset),
            surrogate_function=surrogate_function,
            detach_reset=False,
            step_mode=step_mode,
            store_v_seq=store_v_seq,
            noise_std=noise_std,
        )
        self.source = source

    @property
    def v_init(self) -> float:
        """:math:`v_0`: ``v_reset``, or 0 when ``v_reset`` is None."""
        return 0.0 if self.v_reset is None else self.v_reset

    def membrane(self, x: Tensor) -> Tensor:
        """The first-step charge :math:`h_1(x)` of the source neuron."""
        raise NotImplementedError

    def get_threshold(self):
        """The threshold in use: the calibrated buffer if any, else ``v_threshold``."""
        calibrated = self._buffers.get("v_threshold_calibrated")
        return self.v_threshold if calibrated is None else calibrated

    def set_threshold(self, value: Tensor) -> None:
        """Store a calibrated threshold (a tensor broadcastable to the input)."""
        if "v_threshold_calibrated" in self._buffers:
            self._buffers["v_threshold_calibrated"] = value.detach().clone()
        else:
            self.register_buffer("v_threshold_calibrated", value.detach().clone())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A calibrated net's state_dict loads into a freshly collapsed (uncalibrated) copy.
        key = prefix + "v_threshold_calibrated"
        if key in state_dict and "v_threshold_calibrated" not in self._buffers:
            self.set_threshold(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _step(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(spike, h_1)``: the first step, with membrane noise on :math:`h_1` in train mode."""

        h = self.membrane(x)
        noise = noise_kwargs(getattr(self, "noise", None), self.training, h)
        spike, _ = s2_neuron_step(h, self.get_threshold(), self.surrogate_function, **noise)
        return spike.to(x.dtype), h

    def single_step_forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        spike, h = self._step(x)
        if self.store_v_seq:
            self._append_v_seq(h)
        return spike

    def multi_step_forward(self, x_seq: Tensor, *args, **kwargs) -> Tensor:
        spike, h = self._step(x_seq)
        if self.store_v_seq:
            self.v_seq = h
        return spike

    def single_step_functional_forward(self, inputs, states, **kwargs):
        return (self._step(inputs[0])[0],), tuple(states)

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        return (self._step(inputs[0])[0],), tuple(states)

    def extra_repr(self) -> str:
        src = f"source={self.source}, " if self.source else ""
        calibrated = self._buffers.get("v_threshold_calibrated")
        theta = (
            f"v_threshold={self.v_threshold}"
            if calibrated is None
            else f"v_threshold_calibrated=tensor{tuple(calibrated.shape)}"
        )
        return f"{src}{theta}, v_reset={self.v_reset}, step_mode={self.step_mode}"


class CollapsedIFNode(CollapsedNode):
    r"""First step of an integrate-and-fire node (equation: its rule, docs/collapse.md).

    Used for ``IFNode``, ``LIFNode(decay_input=False)``, ``ComplementaryLIFNode``,
    ``HalfThresholdIFNode`` (:math:`v_0 = V_{th}/2`) and ``SimpleIFNode`` (:math:`v_0 = 0`).

    Args:
        v_init: :math:`v_0`; None means ``v_reset`` (0 when ``v_reset`` is None).
        others: as :class:`CollapsedNode`.

    Examples:
        >>> import torch
        >>> from spikingjelly.activation_based import neuron
        >>> src = neuron.IFNode(v_reset=0.25)
        >>> node = CollapsedIFNode(v_reset=0.25)
        >>> x = torch.tensor([0.5, 0.75, 1.0])
        >>> node(x), src(x)
        (tensor([0., 1., 1.]), tensor([0., 1., 1.]))
    """

    def __init__(self, *args, v_init: Optional[float] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._v_init = None if v_init is None else float(v_init)

    @property
    def v_init(self) -> float:
        if self._v_init is not None:
            return self._v_init
        return 0.0 if self.v_reset is None else self.v_reset

    def membrane(self, x: Tensor) -> Tensor:
        v0 = self.v_init
        return x if v0 == 0.0 else x + v0


class CollapsedLIFNode(CollapsedNode):
    r"""First step of ``LIFNode`` (equation: its rule, docs/collapse.md).

    From SpikingJelly's charge :math:`h = v + (x - (v - v_r))/\tau` with :math:`v = v_0 = v_r`.

    Examples:
        >>> import torch
        >>> from spikingjelly.activation_based import neuron
        >>> src, node = neuron.LIFNode(tau=2.0), CollapsedLIFNode(tau=2.0)
        >>> x = torch.tensor([1.0, 2.0, 3.0])
        >>> node(x), src(x)
        (tensor([0., 1., 1.]), tensor([0., 1., 1.]))
    """

    def __init__(self, *args, tau: float = 2.0, decay_input: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tau = float(tau)
        self.decay_input = bool(decay_input)

    def membrane(self, x: Tensor) -> Tensor:
        h = x / self.tau if self.decay_input else x
        v0 = self.v_init
        return h if v0 == 0.0 else h + v0

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}, decay_input={self.decay_input}"


class CollapsedSimpleLIFNode(CollapsedNode):
    r"""First step of ``SimpleLIFNode`` (equation: its rule, docs/collapse.md).

    The membrane starts at 0 and charges towards ``v_reset``.
    """

    def __init__(self, *args, tau: float = 2.0, decay_input: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tau = float(tau)
        self.decay_input = bool(decay_input)

    def membrane(self, x: Tensor) -> Tensor:
        r = self.v_reset
        if self.decay_input:
            return (x if r == 0.0 else (r - 0.0) + x) / self.tau
        return x + (0.0 + (r - 0.0) / self.tau)


class CollapsedParametricLIFNode(CollapsedNode):
    r"""First step of ``ParametricLIFNode`` (equation: its rule, docs/collapse.md).

    Keeps the learnable parameter ``w`` (same ``state_dict`` key; :math:`1/\tau = \sigma(w)`),
    which gets a gradient through :math:`x\,\sigma(w)` when ``decay_input=True``.
    """

    def __init__(self, *args, init_w: float = 0.0, decay_input: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.decay_input = bool(decay_input)
        self.w = nn.Parameter(torch.as_tensor(float(init_w)))

    def membrane(self, x: Tensor) -> Tensor:
        h = x * self.w.sigmoid() if self.decay_input else x
        v0 = self.v_init
        return h if v0 == 0.0 else h + v0

    def extra_repr(self) -> str:
        with torch.no_grad():
            tau = (
                1.0 / float(self.w.float().sigmoid()) if self.w.device.type != "meta" else math.nan
            )
        return super().extra_repr() + f", tau={tau:.4g}, decay_input={self.decay_input}"


class CollapsedKLIFNode(CollapsedLIFNode):
    r"""First step of ``KLIFNode``, ``k`` learnable (equation: its rule, docs/collapse.md)."""

    def __init__(self, *args, scale_reset: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale_reset = scale_reset
        self.k = nn.Parameter(torch.as_tensor(1.0))

    def membrane(self, x: Tensor) -> Tensor:
        r = 0.0 if self.v_reset is None else self.v_reset
        v = torch.full_like(x, self.v_init)
        if self.decay_input:
            h = v + (x - (v - r)) / self.tau
        else:
            h = v - (v - r) / self.tau + x
        return torch.relu(self.k * h)


class _FullStateNode(CollapsedNode):
    """Evaluates the source's charge elementwise on a full initial-state tensor (exact)."""

    def _v(self, x: Tensor) -> Tensor:
        return torch.full_like(x, self.v_init)


class CollapsedQIFNode(_FullStateNode):
    r"""First step of ``QIFNode`` (equation: its rule, docs/collapse.md).
    """

    def __init__(self, *args, tau=2.0, v_c=0.8, a0=1.0, v_rest=0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tau, self.v_c, self.a0, self.v_rest = float(tau), float(v_c), float(a0), float(v_rest)

    def membrane(self, x: Tensor) -> Tensor:
        v = self._v(x)
        return v + (x + self.a0 * (v - self.v_rest) * (v - self.v_c)) / self.tau


class CollapsedEIFNode(_FullStateNode):
    r"""First step of ``EIFNode`` (equation: its rule, docs/collapse.md).
    """

    def __init__(self, *args, tau=2.0, delta_T=1.0, theta_rh=0.8, v_rest=0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tau, self.delta_T = float(tau), float(delta_T)
        self.theta_rh, self.v_rest = float(theta_rh), float(v_rest)

    def membrane(self, x: Tensor) -> Tensor:
        v = self._v(x)
        expo = self.delta_T * torch.exp((v - self.theta_rh) / self.delta_T)
        return v + (x + self.v_rest - v + expo) / self.tau


class CollapsedIzhikevichNode(_FullStateNode):
    r"""First step of ``IzhikevichNode`` (equation: its rule, docs/collapse.md).
    """

    def __init__(self, *args, tau=2.0, v_c=0.8, a0=1.0, v_rest=-0.1, w_rest=0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tau, self.v_c, self.a0 = float(tau), float(v_c), float(a0)
        self.v_rest, self.w_rest = float(v_rest), float(w_rest)

    def membrane(self, x: Tensor) -> Tensor:
        v = self._v(x)
        w = torch.full_like(x, self.w_rest)
        return v + (x + self.a0 * (v - self.v_rest) * (v - self.v_c) - w) / self.tau


class CollapsedCUBALIFNode(_FullStateNode):
    r"""First step of ``CUBALIFNode`` (equation: its rule, docs/collapse.md)."""

    def __init__(self, *args, c_decay=0.5, v_decay=0.75, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.c_decay, self.v_decay = float(c_decay), float(v_decay)

    def membrane(self, x: Tensor) -> Tensor:
        if self.v_init == 0.0:
            return x
        return self._v(x) * self.v_decay + x


class CollapsedNonSpikingNode(nn.Module, base.StepModule):
    r"""First step of a ``NonSpikingIFNode`` / ``NonSpikingLIFNode`` readout (no spikes).

    Returns :math:`v_1 = x` (IF) or :math:`v_1 = x/\tau` (LIF): at T=1 every ``decode``
    (``max-mem``, ``mean-mem``, ``last_mem``, …) gives :math:`v_1`, and ``decode=None`` (a
    list of T membranes) gives the single membrane without the list.
    """

    def __init__(
        self, tau: Optional[float] = None, decode: Optional[str] = None, step_mode: str = "s"
    ) -> None:
        super().__init__()
        self.tau = None if tau is None else float(tau)
        self.decode = decode
        self.step_mode = step_mode

    def forward(self, x: Tensor) -> Tensor:
        v = torch.full_like(x, 0.0)  # the readout starts at 0 (every step is a first step)
        return v + x if self.tau is None else v + (x - v) / self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau}, decode={self.decode}, step_mode={self.step_mode}"


# --- containers and layers ------------------------------------------------------------


class SingleStepSequential(nn.Sequential):
    """A SpikingJelly multi-step container run single-step: plain ``nn.Sequential.forward``.

    Replaces ``SeqToANNContainer``, ``MultiStepContainer``, ``TLastSeqToANNContainer`` and
    ``TLastMultiStepContainer``. At T=1 each of them applies its children to the one
    ``[B, ...]`` frame; the children (and their ``state_dict`` keys) are kept.
    """

    def __init__(self, *args, source: str = "") -> None:
        super().__init__(*args)
        self.source = source

    def extra_repr(self) -> str:
        return f"source={self.source}" if self.source else ""


class _ResetBeforeCall:
    """Forward pre-hook: ``module.reset()`` before every call (picklable)."""

    def __call__(self, module: nn.Module, args: tuple) -> None:
        module.reset()

    def __repr__(self) -> str:
        return "_ResetBeforeCall()"


class _AddTimeAxis:
    """Pre-hook (``x -> x.unsqueeze(0)``) and forward hook (``y -> y[0]``) for one module."""

    def __init__(self, post: bool) -> None:
        self.post = post

    def __call__(self, module: nn.Module, args: tuple, output=None):
        if not self.post:
            return tuple(a.unsqueeze(0) if isinstance(a, Tensor) else a for a in args)
        if isinstance(output, Tensor):
            return output[0]
        if isinstance(output, (tuple, list)):
            return type(output)(o[0] if isinstance(o, Tensor) else o for o in output)
        return output

    def __repr__(self) -> str:
        return f"_AddTimeAxis(post={self.post})"


def _has_hook(module: nn.Module, kind: type) -> bool:
    hooks = list(module._forward_pre_hooks.values()) + list(module._forward_hooks.values())
    return any(isinstance(h, kind) for h in hooks)


def _check_rule_args(module: nn.Module, ctx: Optional[RuleContext]) -> None:
    """The arguments of a public rule: a module, and None or a RuleContext."""
    validate.module("module", module)
    if ctx is not None and not isinstance(ctx, RuleContext):
        raise ConfigError(
            f"ctx must be a RuleContext (what collapse passes a rule) or None, got "
            f"{type(ctx).__name__}"
        )


def reset_each_call(module: nn.Module, ctx=None) -> nn.Module:
    """Stateful layer: reset before every call, so each call is its first step.

    A rule for :func:`snn_singlestep.register_rule`: the module keeps its class and
    ``state_dict`` keys and gets a forward pre-hook calling ``module.reset()``. For
    ``layer.Dropout`` this draws a fresh mask per call, as ``nn.Dropout`` does.
    """
    _check_rule_args(module, ctx)
    if not _has_hook(module, _ResetBeforeCall):
        module.register_forward_pre_hook(_ResetBeforeCall())
    return module


def add_time_axis(module: nn.Module, ctx=None) -> nn.Module:
    """Multi-step-only layer in a single-step net: call it on ``x.unsqueeze(0)``, return ``y[0]``.

    A rule for :func:`snn_singlestep.register_rule` (in place, class and keys kept): the
    layer sees the ``[1, B, ...]`` sequence it was written for and the net sees ``[B, ...]``.
    Inside a time-structured model (step mode ``'m'``) the module is left as it is.
    """
    _check_rule_args(module, ctx)
    if ctx is not None:
        if ctx.step_mode == "m":
            return module
        ctx.set_step_mode("m")  # its children see the [1, B, ...] sequence
    if not _has_hook(module, _AddTimeAxis):
        module.register_forward_pre_hook(_AddTimeAxis(post=False))
        module.register_forward_hook(_AddTimeAxis(post=True))
    return module


def _attention_steps(m: nn.Module) -> int:
    """The T a temporal attention layer was built for (its MLP takes T inputs)."""
    if isinstance(m, layer.TemporalWiseAttention):
        return m.sharedMLP[0].in_features
    ta = getattr(m, "ta", None)  # MultiDimensionalAttention(use_temporal=True)
    return 1 if ta is None else ta.sharedMLP[0].in_channels


def _temporal_attention(m: nn.Module, ctx) -> nn.Module:
    """Built for T=1: called on x.unsqueeze(0), returns y[0].
    Built for T > 1: refused (weights sized by T)."""
    steps = _attention_steps(m)
    if steps != 1:
        raise ConversionError(
            f"{type(m).__name__} attends over T={steps} time steps with weights sized by T; "
            "it has no single-step form (rebuild it with T=1, or without temporal attention)"
        )
    return add_time_axis(m, ctx)


# --- rules ----------------------------------------------------------------------------


def _surrogate(ctx):
    return ctx.make_surrogate(ReducedS2)


def _common(m: nn.Module, ctx) -> dict:
    return {
        "v_threshold": m.v_threshold,
        "v_reset": m.v_reset,
        "surrogate_function": _surrogate(ctx),
        "step_mode": ctx.step_mode,
        "store_v_seq": bool(getattr(m, "store_v_seq", False)),
        "source": type(m).__name__,
    }


def _check_float_threshold(m: nn.Module) -> None:
    if not isinstance(m.v_threshold, (int, float)) or isinstance(m.v_threshold, bool):
        raise ConversionError(
            f"v_threshold must be a float to convert {type(m).__name__}, got {m.v_threshold!r}"
        )


def _finish(new: nn.Module, m: nn.Module) -> nn.Module:
    new.train(m.training)
    for t in list(m.parameters(recurse=False)):
        if t.device.type != "cpu" or t.dtype != torch.float32:
            return new.to(device=t.device, dtype=t.dtype)
    return new


def _if(m: nn.Module, ctx: RuleContext) -> CollapsedIFNode:
    """h₁ = v₀ + x (v₀ = v_reset, or 0 if None). Exact."""
    _check_float_threshold(m)
    return _finish(CollapsedIFNode(**_common(m, ctx)), m)


def _lif(m: nn.Module, ctx: RuleContext) -> CollapsedLIFNode:
    """h₁ = v₀ + x/τ (decay_input) or v₀ + x. Exact."""
    _check_float_threshold(m)
    return _finish(CollapsedLIFNode(**_common(m, ctx), tau=m.tau, decay_input=m.decay_input), m)


def _online_lif(m: nn.Module, ctx: RuleContext) -> CollapsedLIFNode:
    """As LIFNode; at T=1 the OTTT trace equals the spike, the node returns spikes only.
    Exact forward."""
    ctx.note(f"{type(m).__name__}: online (trace) gradient replaced by plain backprop at T=1")
    return _lif(m, ctx)


def _plif(m: nn.Module, ctx: RuleContext) -> CollapsedParametricLIFNode:
    """h₁ = v₀ + x·σ(w) (decay_input) or v₀ + x; w kept learnable. Exact."""
    _check_float_threshold(m)
    new = CollapsedParametricLIFNode(**_common(m, ctx), decay_input=m.decay_input)
    new.w = m.w  # same parameter object: learnable, same key
    if not m.decay_input:
        ctx.note("decay_input=False: w does not enter the first step (zero gradient)")
    return _finish(new, m)


def _klif(m: nn.Module, ctx: RuleContext) -> CollapsedKLIFNode:
    """h₁ = ReLU(k·h₁ᴸᴵᶠ); k kept learnable. Exact."""
    _check_float_threshold(m)
    if m.v_threshold <= 0:
        raise ConversionError("KLIFNode with v_threshold <= 0 fires on ReLU(.) = 0; not supported")
    new = CollapsedKLIFNode(
        **_common(m, ctx), tau=m.tau, decay_input=m.decay_input, scale_reset=m.scale_reset
    )
    new.k = m.k
    return _finish(new, m)


def _qif(m: nn.Module, ctx: RuleContext) -> CollapsedQIFNode:
    """h₁ = v₀ + (x + a₀(v₀ − v_rest)(v₀ − v_c))/τ. Exact."""
    _check_float_threshold(m)
    return _finish(
        CollapsedQIFNode(**_common(m, ctx), tau=m.tau, v_c=m.v_c, a0=m.a0, v_rest=m.v_rest), m
    )


def _eif(m: nn.Module, ctx: RuleContext) -> CollapsedEIFNode:
    """h₁ = v₀ + (x + v_rest − v₀ + Δ_T·exp((v₀ − θ_rh)/Δ_T))/τ. Exact."""
    _check_float_threshold(m)
    return _finish(
        CollapsedEIFNode(
            **_common(m, ctx), tau=m.tau, delta_T=m.delta_T, theta_rh=m.theta_rh, v_rest=m.v_rest
        ),
        m,
    )


def _izhikevich(m: nn.Module, ctx: RuleContext) -> CollapsedIzhikevichNode:
    """h₁ = v₀ + (x + a₀(v₀ − v_rest)(v₀ − v_c) − w_rest)/τ. Exact."""
    _check_float_threshold(m)
    return _finish(
        CollapsedIzhikevichNode(
            **_common(m, ctx), tau=m.tau, v_c=m.v_c, a0=m.a0, v_rest=m.v_rest, w_rest=m.w_rest
        ),
        m,
    )


def _cubalif(m: nn.Module, ctx: RuleContext) -> CollapsedCUBALIFNode:
    """c₁ = x, h₁ = v₀·d_v + c₁. Exact."""
    _check_float_threshold(m)
    return _finish(CollapsedCUBALIFNode(**_common(m, ctx), c_decay=m.c_decay, v_decay=m.v_decay), m)


def _clif(m: nn.Module, ctx: RuleContext) -> CollapsedIFNode:
    """h₁ = 0 − 0/τ + x = x (the complementary state only shapes later resets). Exact."""
    _check_float_threshold(m)
    kw = _common(m, ctx)
    kw["store_v_seq"] = False
    return _finish(CollapsedIFNode(**kw, v_init=0.0), m)


def _half_threshold_if(m: nn.Module, ctx: RuleContext) -> CollapsedIFNode:
    """h₁ = V_th/2 + x (the node starts half-way to threshold). Exact."""
    _check_float_threshold(m)
    return _finish(CollapsedIFNode(**_common(m, ctx), v_init=m.v_threshold / 2.0), m)


def _simple_if(m: nn.Module, ctx: RuleContext) -> CollapsedIFNode:
    """h₁ = 0 + x (SimpleBaseNode starts at v = 0). Exact."""
    kw = _common(m, ctx)
    kw["store_v_seq"] = False
    return _finish(CollapsedIFNode(**kw, v_init=0.0), m)


def _simple_lif(m: nn.Module, ctx: RuleContext) -> CollapsedSimpleLIFNode:
    """h₁ = (V_reset + x)/τ (decay_input) or V_reset/τ + x (starts at v = 0). Exact."""
    kw = _common(m, ctx)
    kw["store_v_seq"] = False
    return _finish(CollapsedSimpleLIFNode(**kw, tau=m.tau, decay_input=m.decay_input), m)


def _non_spiking(tau_attr: Optional[str]):
    def rule(m: nn.Module, ctx: RuleContext) -> CollapsedNonSpikingNode:
        if ctx.step_mode == "m":
            return m  # inside a time-structured model: runs as it is with T=1
        return CollapsedNonSpikingNode(
            tau=None if tau_attr is None else getattr(m, tau_attr), decode=m.decode
        )

    rule.__doc__ = (
        "readout v₁ = x" if tau_attr is None else "readout v₁ = x/τ"
    ) + " (every decode gives v₁ at T=1; decode=None returns v₁, not [v₁]). Exact."
    return rule


def _single_step_container(m: nn.Module, ctx: RuleContext) -> SingleStepSequential:
    """Same children run as nn.Sequential on [B, ...] (keys unchanged). Exact."""
    if ctx.step_mode == "m":
        return m  # inside a time-structured model it handles [1, B, ...] as it is
    new = SingleStepSequential(source=type(m).__name__)
    for name, child in m._modules.items():
        new.add_module(name, child)
    new.train(m.training)
    return new


def _time_axis_model(m, ctx):
    """Forward written for [T, B, ...]: keeps step mode 'm' with T = 1
    (input [B, ...] or [1, B, ...]). Exact."""
    m.T = 1
    ctx.set_step_mode("m")
    ctx.note(f"{type(m).__name__} builds [T, B, ...] itself: kept in step mode 'm' with T=1")
    return m


_STATEFUL_NOTE = "stateful layer: reset before every call (each call is its first step). Exact."
_MULTISTEP_NOTE = "multi-step-only layer: called on x.unsqueeze(0), returns y[0]. Exact."
_TERNARY = "emits ternary spikes (-1, 0, +1): two thresholds, not one"


def _register_rules() -> None:
    """The SpikingJelly rule table: neurons, refusals, containers and layers."""
    fw = "spikingjelly"
    registry.register_rule(S2Node, registry.keep_rule, kind="keep", framework=fw, inherit=True)
    neurons = {
        neuron.IFNode: _if,
        neuron.LIFNode: _lif,
        neuron.OTTTLIFNode: _online_lif,
        neuron.SLTTLIFNode: _online_lif,
        neuron.ParametricLIFNode: _plif,
        neuron.QIFNode: _qif,
        neuron.EIFNode: _eif,
        neuron.IzhikevichNode: _izhikevich,
        neuron.KLIFNode: _klif,
        neuron.CUBALIFNode: _cubalif,
        neuron.ComplementaryLIFNode: _clif,
        neuron.HalfThresholdIFNode: _half_threshold_if,
        neuron.SimpleIFNode: _simple_if,
        neuron.SimpleLIFNode: _simple_lif,
    }
    registry.register_rules(neurons, framework=fw)
    refusals = {
        neuron.TernaryIFNode: _TERNARY,
        neuron.TernaryLIFNode: _TERNARY,
        neuron.ILIFNode: "emits multi-level spike counts (0..N), not binary spikes",
        neuron.LIAFNode: "outputs an analog activation act(v), not spikes",
        neuron.MPBNLIFNode: "normalises the membrane with BatchNorm over the batch before "
        "firing: not a per-sample threshold on a linear function of the input in training",
    }
    refuse = {cls: registry.refuse_rule(f"{cls.__name__} {why}") for cls, why in refusals.items()}
    registry.register_rules(refuse, kind="refuse", framework=fw)
    # (classes, rule, kind, note): containers and layers, edited in place or wrapped
    groups = (
        ((neuron.NonSpikingIFNode,), _non_spiking(None), "layer", ""),
        ((neuron.NonSpikingLIFNode,), _non_spiking("tau"), "layer", ""),
        (
            (
                layer.SeqToANNContainer,
                layer.MultiStepContainer,
                layer.TLastSeqToANNContainer,
                layer.TLastMultiStepContainer,
            ),
            _single_step_container,
            "container",
            "",
        ),
        (
            (
                layer.Dropout,
                layer.Dropout2d,
                layer.DropConnectLinear,
                layer.SynapseFilter,
                layer.Delay,
                layer.NeuNorm,
                layer.ElementWiseRecurrentContainer,
                layer.LinearRecurrentContainer,
            ),
            reset_each_call,
            "layer",
            _STATEFUL_NOTE,
        ),
        (
            (layer.TemporalWiseAttention, layer.MultiDimensionalAttention),
            _temporal_attention,
            "layer",
            "",
        ),
        (
            (
                layer.SpikeCountToBinary,
                layer.TemporalBinSum,
                layer.ThresholdDependentBatchNorm1d,
                layer.ThresholdDependentBatchNorm2d,
                layer.ThresholdDependentBatchNorm3d,
                layer.TemporalEffectiveBatchNorm1d,
                layer.TemporalEffectiveBatchNorm2d,
                layer.TemporalEffectiveBatchNorm3d,
            ),
            add_time_axis,
            "layer",
            _MULTISTEP_NOTE,
        ),
    )
    for classes, fn, kind, note in groups:
        for cls in classes:
            registry.register_rule(cls, fn, kind=kind, framework=fw, note=note)


_register_rules()
_MODEL_RULES_DONE = []


def _ensure_model_rules() -> None:
    """Register the model-zoo rules on first use (importing the zoo costs ~40 ms)."""
    if _MODEL_RULES_DONE:
        return
    from spikingjelly.activation_based.model import (
        masnn,
        maxformer,
        ms_resnet,
        qkformer,
        spike_driven_transformer,
        spikformer,
    )

    for cls in (
        ms_resnet.MSResNet,
        spikformer.Spikformer,
        spike_driven_transformer.SpikeDrivenTransformer,
        qkformer.QKFormer,
        masnn.MASNN,
        maxformer.MaxFormer,
    ):
        registry.register_rule(cls, _time_axis_model, kind="model", framework="spikingjelly")
    _MODEL_RULES_DONE.append(True)


# --- framework hooks ------------------------------------------------------------------

_NEURON_PACKAGE = "spikingjelly.activation_based.neuron"


def _is_spiking(m: nn.Module) -> bool:
    return isinstance(m, (neuron.BaseNode, neuron.SimpleBaseNode)) or type(m).__module__.startswith(
        _NEURON_PACKAGE
    )


def _unknown_reason(m: nn.Module, step_mode: str) -> Optional[str]:
    name = type(m).__name__
    hint = f"register one with snn_singlestep.register_rule({name}, fn)"
    if _is_spiking(m) or isinstance(m, neuron.NonSpikingBaseNode):
        return (
            f"unknown SpikingJelly neuron {name}: its first step is not known to the "
            f"converter (no collapse rule); {hint}"
        )
    if isinstance(m, base.MemoryModule):
        return (
            f"stateful SpikingJelly module {name} with no collapse rule (its state would carry "
            f"over between calls); {hint}, e.g. snn_singlestep.spikingjelly.reset_each_call"
        )
    if step_mode == "s" and isinstance(m, base.StepModule):
        try:
            modes = tuple(m.supported_step_mode())
        except Exception:
            modes = ()
        if modes and "s" not in modes:
            return (
                f"multi-step-only module {name} (supports step modes {modes}) in a single-step "
                f"net; {hint}, e.g. snn_singlestep.spikingjelly.add_time_axis, or collapse with "
                "step_mode='m'"
            )
    return None


def _step_mode_of(m: nn.Module) -> Optional[str]:
    """The step mode a SpikingJelly module runs in as set by its user (multi-step-only
    modules and containers: ``'m'``); None for modules without step mode."""
    if not isinstance(m, base.StepModule):
        return None
    try:
        modes = tuple(m.supported_step_mode())
    except Exception:
        modes = ()
    if modes == ("m",):
        return "m"
    try:
        mode = m.step_mode
    except AttributeError:  # a step module whose mode was never set
        return None
    return mode if mode in ("s", "m") else None


def _finalize(net: nn.Module, walk) -> None:
    """Set every module's step mode: the one the walk chose ('s', 'm' inside time-structured
    models, or the module's own for nets with their own forward)."""

    def visit(m: nn.Module, mode: str) -> None:
        mode = walk.step_modes.get(id(m), mode)
        if hasattr(m, "step_mode") and not isinstance(m, (neuron.NonSpikingBaseNode,)):
            supported = m.supported_step_mode() if isinstance(m, base.StepModule) else ("s", "m")
            if mode in supported:
                m.step_mode = mode
        for child in m.children():
            visit(child, mode)

    visit(net, walk.step_modes.get(id(net), "s"))
    functional.invalidate_reset_cache(net)
    functional.reset_net(net)


_INPUT_NDIM = ((nn.Conv1d, 3), (nn.Conv2d, 4), (nn.Conv3d, 5))


def _default_input_ndim(net: nn.Module) -> Optional[int]:
    """ndim of a ``[B, ...]`` input, from the first convolution (registration order)."""
    for m in net.modules():
        for cls, ndim in _INPUT_NDIM:
            if isinstance(m, cls):
                return ndim
        if isinstance(m, (nn.Linear, nn.Flatten, nn.RNNBase)):
            return None
    return None


def _run_steps(net: nn.Module, x: Tensor, T: int) -> None:
    """Reference run from the reset state: ``net.T = T`` for models that build their own
    ``[T, B, ...]`` (zoo models, and users' nets with an int ``T`` and their own forward),
    ``x`` repeated T times in step mode ``'m'``, T calls in ``'s'``."""
    functional.reset_net(net)
    if _builds_own_sequence(net) or _own_forward_with_T(net):
        old, net.T = net.T, T
        try:
            net(x)
        finally:
            net.T = old
    elif any(getattr(m, "step_mode", "s") == "m" for m in net.modules()):
        net(x.unsqueeze(0).repeat(T, *([1] * x.ndim)))
    else:
        for _ in range(T):
            net(x)
    functional.reset_net(net)


def _builds_own_sequence(net: nn.Module) -> bool:
    """A model-zoo model whose forward turns ``[B, ...]`` into ``[T, B, ...]`` itself."""
    return isinstance(getattr(net, "T", None), int) and callable(getattr(net, "_to_sequence", None))


_LIBRARY_PACKAGES = ("torch", "spikingjelly", __name__.split(".")[0])


def _own_forward_with_T(net: nn.Module) -> bool:
    """A user's net with an int ``T`` and its own forward (SpikingJelly's examples): it
    builds ``[T, B, ...]`` from ``[B, ...]`` itself (``x.unsqueeze(0).repeat(self.T, ...)``)
    or loops ``for t in range(self.T)``."""
    if not isinstance(getattr(net, "T", None), int) or isinstance(net, nn.Sequential):
        return False
    owner = next((k for k in type(net).__mro__ if "forward" in vars(k)), nn.Module)
    return owner.__module__.split(".")[0] not in _LIBRARY_PACKAGES


def _time_major(m: nn.Module, x: Optional[Tensor]) -> bool:
    return getattr(m, "step_mode", None) == "m" or _builds_own_sequence(m)


_DROPOUT = tuple(getattr(layer, n) for n in ("Dropout", "Dropout2d") if hasattr(layer, n))


def _stateful_reason(m: nn.Module) -> Optional[str]:
    if isinstance(m, base.MemoryModule) and not isinstance(m, _DROPOUT):
        memories = getattr(m, "_memories", None)
        if memories:
            return "a SpikingJelly module with state (memories " + ", ".join(sorted(memories)) + ")"
    return None


def _set_step_mode(net: nn.Module, step_mode: str) -> None:
    if any(isinstance(m, base.StepModule) for m in net.modules()):
        functional.set_step_mode(net, step_mode)


def _step_native(net: nn.Module) -> bool:
    """An ``nn.Sequential`` (nested ones included) of SpikingJelly step modules only."""
    if not isinstance(net, nn.Sequential):
        return False
    return all(
        _step_native(child)
        if isinstance(child, nn.Sequential)
        else isinstance(child, base.StepModule)
        for child in net.children()
    )


def _is_heaviside(fn) -> bool:
    # Every SpikingJelly surrogate fires with its heaviside (x >= 0) when spiking=True.
    spiking = bool(getattr(fn, "spiking", False))
    return isinstance(fn, sj_surrogate.SurrogateFunctionBase) and spiking


registry.register_framework(
    registry.Framework(
        name="spikingjelly",
        entry_point="snn_singlestep.spikingjelly.collapse",
        is_spiking=_is_spiking,
        owns=lambda m: type(m).__module__.split(".")[0] == "spikingjelly",
        stateful_reason=_stateful_reason,
        unknown_reason=_unknown_reason,
        finalize=_finalize,
        default_input_ndim=_default_input_ndim,
        load_rules=_ensure_model_rules,
        reset=lambda net: functional.reset_net(net),
        run_steps=_run_steps,
        time_major=_time_major,
        step_modes=True,
        set_step_mode=_set_step_mode,
        step_mode_of=_step_mode_of,
        modules_replaced=lambda net: functional.invalidate_reset_cache(net),
        step_native=_step_native,
        is_heaviside=_is_heaviside,
    )
)


for _cls in (
    CollapsedIFNode,
    CollapsedLIFNode,
    CollapsedSimpleLIFNode,
    CollapsedParametricLIFNode,
    CollapsedKLIFNode,
    CollapsedQIFNode,
    CollapsedEIFNode,
    CollapsedIzhikevichNode,
    CollapsedCUBALIFNode,
):
    registry.register_neuron(
        registry.NeuronKind(
            _cls,
            "spikingjelly",
            "collapsed",
            _cls,
            threshold_attr="v_threshold",
            spike_fn_attr="surrogate_function",
            firing_methods=("_step", "single_step_forward", "multi_step_forward", "forward"),
        )
    )
