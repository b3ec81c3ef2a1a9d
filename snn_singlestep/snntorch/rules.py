r"""Collapse multi-step snnTorch nets to single-step (T=1) nets.

Every rule replaces a neuron by a subclass of :class:`~snn_singlestep.snntorch.S2Neuron`
(so a ``snntorch.Leaky`` as far as ``snntorch.utils.reset`` is concerned) that computes the
*first time step of the source neuron from its reset state* and fires with the S²
surrogate. The converted neuron keeps the source's call signature, return values and
``state_dict`` keys, so the surrounding forward code and existing checkpoints keep working;
the hidden state it returns is that of the first step, and state passed in is ignored.

Each rule function below (``_leaky``, ``_synaptic``, …) states in its docstring the source's
first time step (snnTorch 1.0.0 code, all states zero, :math:`\theta \ge 0`, so the reset term
of the first step is 0): that docstring is the one place the equation is written; reports show
it and ``docs/collapse.md`` renders the table from :func:`~snn_singlestep.list_rules`. The spike
is :math:`s_1 = H(v_1 - \theta)\cdot g` (:math:`g` = ``graded_spikes_factor``). With
``reset_delay=False`` the returned membrane is reset after the spike
(:math:`v_1 - s\,\theta` or :math:`v_1 - s\,v_1`), as in the source. ``state_quant`` is applied
where the source applies it (to the state, and again inside ``fire``).

Not convertible (ConversionError): ``Alpha`` cannot spike on its first step
(:math:`v_1 = \tau_\alpha(I + (-I)) = 0`) — converted only in calibrated mode, with the
documented rule :math:`v_1 := I`; ``DeltaLeaky`` fires on :math:`|I| \ge \delta`, two
thresholds; ``SLSTM``/``SConv2dLSTM`` (LSTM cell), ``AssociativeLeaky`` (product of two
projections of the input) and ``LeakyParallel`` are not thresholds on a linear function of
one input; negative thresholds (the source fires on its reset state).

Tie rule: snnTorch fires on :math:`v > \theta`, the converted neurons on
:math:`v \ge \theta` (the package rule); they differ only when :math:`v = \theta` exactly.
"""

from __future__ import annotations

from typing import Callable, Optional

import snntorch
import snntorch.utils
import torch
from snntorch._neurons.leakyparallel import LeakyParallel
from snntorch._neurons.neurons import SpikingNeuron
from torch import Tensor, nn

from ..core import registry
from ..core.functional import s2_neuron_step, squeeze_time
from ..core.noise import noise_kwargs
from ..core.surrogate import S2Surrogate
from ..errors import ConversionError, ShapeError
from .neuron import (
    S2Neuron,
    _check_mem,
    graded_spike_gain,
    neuron_export_refusal,
    neuron_multistep_refusal,
)

__all__ = [
    "CollapsedAlpha",
    "CollapsedLapicque",
    "CollapsedLeaky",
    "CollapsedRLeaky",
    "CollapsedRSynaptic",
    "CollapsedStateLeaky",
    "CollapsedSynaptic",
]


def _is_param(t) -> bool:
    return isinstance(t, nn.Parameter)


def _tensor_copy(t):
    return t.detach().clone() if isinstance(t, Tensor) else t


def _move_like(new: nn.Module, src: nn.Module) -> nn.Module:
    """Put ``new`` on the device of ``src``'s tensors (a meta-device net stays on meta)."""
    for t in list(src.parameters(recurse=False)) + list(src.buffers(recurse=False)):
        if t.device != torch.device("cpu"):
            return new.to(t.device)
        break
    return new


class CollapsedLeaky(S2Neuron):
    r"""First time step of an snnTorch ``Leaky`` from its reset state, as a single-step neuron.

    Fires with the S² surrogate (equation: its rule, docs/collapse.md). Same arguments,
    return values and ``state_dict`` keys as ``Leaky``; ``mem`` passed in is ignored (every
    call is the first step). Built by :func:`~snn_singlestep.collapse`; construct it like
    ``S2Neuron``.

    Membrane noise (``noise``, set by ``noise_std=`` or
    :func:`~snn_singlestep.core.noise.set_noise_std`) works as in ``S2Neuron``: in
    ``train()`` mode :math:`\sigma\varepsilon` is added to :math:`v_1` before the threshold
    (and the returned ``mem`` includes it); in ``eval()`` mode the neuron is the exact,
    deterministic first step. :meth:`membrane` is always noiseless (calibration).
    """

    def _fire_noisy(self, v: Tensor) -> tuple[Tensor, Tensor, bool]:
        r"""``(binary_spike, v_fired, noisy)``: :math:`H(v + \sigma\varepsilon - \theta)`.

        The noise is drawn as ``S2Neuron.forward`` draws it (train mode only); ``v_fired`` is
        the membrane compared with the threshold (``v`` itself without noise).
        """
        noise = noise_kwargs(getattr(self, "noise", None), self.training, v)
        binary, v_fired = s2_neuron_step(v, self.threshold, self.spike_grad, **noise)
        return binary, v_fired, bool(noise)

    def _membrane(self, input_: Tensor) -> Tensor:
        return input_

    def _first_step(
        self, input_: Tensor, reset_delay: Optional[bool] = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(spk, binary_spk, mem_returned)`` of the first step."""
        v = self._membrane(input_)
        if self.state_quant:
            v = self.state_quant(v)
        if self.inhibition:
            _, v_fired, noisy = self._fire_noisy(v)
            if noisy:
                v = v_fired  # as S2Neuron: inhibition compares the noisy membrane
            spk = self.fire_inhibition(v.size(0), v)
            binary = spk
        else:
            vq = self.state_quant(v) if self.state_quant else v  # snnTorch's fire() quantizes again
            binary, v_fired, noisy = self._fire_noisy(vq)
            if noisy:
                v = v_fired  # the returned membrane includes the noise, as S2Neuron's does
            spk = binary * self.graded_spikes_factor
        mem = v
        if reset_delay is None:
            reset_delay = getattr(self, "reset_delay", True)
        if not reset_delay:
            do_reset = spk / self.graded_spikes_factor
            if self.reset_mechanism_val == 0:
                mem = v - do_reset * self.threshold
            elif self.reset_mechanism_val == 1:
                mem = v - do_reset * v
        return spk.to(input_.dtype), binary, mem

    def membrane(self, input_: Tensor) -> Tensor:
        """The first-step membrane :math:`v_1` that is compared with the threshold."""
        v = self._membrane(input_)
        if self.state_quant:
            v = self.state_quant(self.state_quant(v))
        return v

    def get_threshold(self) -> Tensor:
        """The threshold compared with :meth:`membrane`."""
        return self.threshold

    def set_threshold(self, value: Tensor) -> None:
        """Replace the threshold (calibration); a learnable threshold stays learnable."""
        value = value.detach().clone().to(self.threshold.dtype)
        if isinstance(self.threshold, nn.Parameter):
            self.threshold = nn.Parameter(value, requires_grad=self.threshold.requires_grad)
        else:
            self.threshold = value

    def forward(self, input_: Tensor, mem: Optional[Tensor] = None):
        _check_mem(self, mem)
        spk, _, mem_out = self._first_step(input_)
        if self.output or not self.init_hidden:
            return spk, mem_out
        return spk


class CollapsedLapicque(CollapsedLeaky):
    r"""First step of ``snntorch.Lapicque`` (equation: its rule, docs/collapse.md).

    Keeps the buffers ``R``, ``C`` and ``time_step`` of the source (same ``state_dict``
    keys) and computes :math:`v_1` with the source's own expression.
    """

    def _membrane(self, input_: Tensor) -> Tensor:
        return input_ * self.R * (1 / (self.R * self.C)) * self.time_step


class CollapsedSynaptic(CollapsedLeaky):
    r"""First step of ``snntorch.Synaptic`` (equation: its rule, docs/collapse.md).

    Returns ``(spk, syn, mem)`` like ``Synaptic`` (or ``spk`` with ``init_hidden=True``);
    keeps the ``alpha`` buffer/parameter. ``reset_mem`` / ``init_synaptic`` return zero
    states for loops written for ``Synaptic``.
    """

    def _syn(self, input_: Tensor) -> Tensor:
        return input_

    def forward(self, input_: Tensor, syn: Optional[Tensor] = None, mem: Optional[Tensor] = None):
        if self.init_hidden and (mem is not None or syn is not None):
            raise TypeError(
                "`mem` or `syn` should not be passed as an argument while `init_hidden=True`"
            )
        syn_out = self._syn(input_)
        if self.state_quant:
            syn_out = self.state_quant(syn_out)
        spk, _, mem_out = self._first_step(input_)
        if self.output or not self.init_hidden:
            return spk, syn_out, mem_out
        return spk

    def _membrane(self, input_: Tensor) -> Tensor:
        return self._syn(input_)

    def reset_mem(self):
        self.mem = torch.zeros_like(self.mem, device=self.mem.device)
        return self.mem, self.mem

    def init_synaptic(self):
        return self.reset_mem()


def _recurrent_at_zero(recurrent: nn.Module, like: Tensor) -> Optional[Tensor]:
    """``recurrent(zeros_like(like))`` without the matmul: the bias term, or None for 0."""
    if isinstance(recurrent, nn.Linear):
        return recurrent.bias
    if isinstance(recurrent, nn.Conv2d) and recurrent.padding_mode == "zeros":
        return None if recurrent.bias is None else recurrent.bias[:, None, None]
    if type(recurrent).__name__ == "RecurrentOneToOne":
        return None
    return recurrent(torch.zeros_like(like))


class CollapsedRLeaky(CollapsedLeaky):
    r"""First step of ``snntorch.RLeaky`` (equation: its rule, docs/collapse.md).

    :math:`V(0)` is the bias of the recurrent ``Linear``/``Conv2d`` (0 for one-to-one
    recurrence), so the recurrent bias stays learnable. Keeps the ``recurrent`` module and
    ``V`` (same ``state_dict`` keys). Returns ``(spk, mem)`` or ``spk``.
    """

    def _membrane(self, input_: Tensor) -> Tensor:
        bias = _recurrent_at_zero(self.recurrent, input_)
        return input_ if bias is None else input_ + bias

    def forward(self, input_: Tensor, spk: Optional[Tensor] = None, mem: Optional[Tensor] = None):
        if self.init_hidden and (mem is not None or spk is not None):
            raise TypeError("When `init_hidden=True`,RLeaky expects 1 input argument.")
        spk_out, _, mem_out = self._first_step(input_)
        if self.output or not self.init_hidden:
            return spk_out, mem_out
        return spk_out

    def reset_mem(self):
        self.mem = torch.zeros_like(self.mem, device=self.mem.device)
        return self.mem, self.mem

    def init_rleaky(self):
        return self.reset_mem()


class CollapsedRSynaptic(CollapsedRLeaky):
    r"""First step of ``snntorch.RSynaptic`` (equation: its rule, docs/collapse.md).

    ``reset_delay`` does not change the returned membrane, as in ``RSynaptic`` (whose
    delayed-reset branch edits a local copy). Returns ``(spk, syn, mem)`` or ``spk``.
    """

    def forward(
        self,
        input_: Tensor,
        spk: Optional[Tensor] = None,
        syn: Optional[Tensor] = None,
        mem: Optional[Tensor] = None,
    ):
        if self.init_hidden and (spk is not None or syn is not None or mem is not None):
            raise TypeError("When `init_hidden=True`, RSynaptic expects 1 input argument.")
        syn_out = self._membrane(input_)
        if self.state_quant:
            syn_out = self.state_quant(syn_out)
        spk_out, _, mem_out = self._first_step(input_, reset_delay=True)
        if self.output or not self.init_hidden:
            return spk_out, syn_out, mem_out
        return spk_out

    def reset_mem(self):
        self.mem = torch.zeros_like(self.mem, device=self.mem.device)
        return self.mem, self.mem, self.mem

    def init_rsynaptic(self):
        return self.reset_mem()


class CollapsedAlpha(CollapsedSynaptic):
    r"""``snntorch.Alpha`` in calibrated mode only, by the rule :math:`v_1 := I`.

    ``Alpha``'s own first step cannot spike (:math:`v_1 = \tau_\alpha(I - I) = 0`), so no
    exact conversion exists; this rule treats the excitatory current as the membrane and
    relies on threshold calibration. Returns ``(spk, syn_exc, syn_inh, mem)`` with
    :math:`syn_{exc} = I`, :math:`syn_{inh} = -I`, :math:`mem = v_1`.
    """

    def forward(self, input_, syn_exc=None, syn_inh=None, mem=None):
        if self.init_hidden and (mem is not None or syn_exc is not None or syn_inh is not None):
            raise TypeError("When `init_hidden=True`, Alpha expects 1 input argument.")
        spk, _, mem_out = self._first_step(input_)
        if self.output or not self.init_hidden:
            return spk, input_, -input_, mem_out
        return spk


class CollapsedStateLeaky(CollapsedLeaky):
    r"""First step of ``snntorch.StateLeaky`` / ``LinearLeaky``.

    The source convolves the input over time with :math:`e^{-t/\tau}`; its first step is
    :math:`v_1 = e^{0} I = I` (after the ``linear`` layer for ``LinearLeaky``), and the spike
    is ``fire(v_1) * g``, i.e. :math:`H(v_1 - \theta)\,g^2` as in the source. Input is
    ``[1, B, C]`` (the source's layout, kept in the output) or ``[B, C]``; ``T > 1`` raises
    :class:`~snn_singlestep.errors.ShapeError`. Returns ``(spk, mem)``, or ``mem`` when the
    source had ``output=False``. ``tau`` is kept (it gets no gradient at T=1). Membrane
    noise as in :class:`CollapsedLeaky` (none with ``output=False``: there is no threshold).
    """

    def _membrane(self, input_: Tensor) -> Tensor:
        linear = self._modules.get("linear")
        return input_ if linear is None else linear(input_)

    def forward(self, input_: Tensor):
        if input_.ndim == 3:
            if input_.shape[0] != 1:
                squeeze_time(input_, sample_ndim=2)  # raises the single-step ShapeError
        elif input_.ndim != 2:
            raise ShapeError(
                f"{type(self).__name__} takes [1, B, C] or [B, C] input, got shape "
                f"{tuple(input_.shape)}"
            )
        mem = self._membrane(input_)
        if self.state_quant:
            mem = self.state_quant(mem)
        if not self.output:
            return mem  # no threshold, so no membrane noise either
        vq = self.state_quant(mem) if self.state_quant else mem
        binary, v_fired, noisy = self._fire_noisy(vq)
        if noisy:
            mem = v_fired
        spk = binary * self.graded_spikes_factor
        spk = (spk * self.graded_spikes_factor).to(input_.dtype)
        return spk, mem

    def membrane(self, input_: Tensor) -> Tensor:
        v = self._membrane(input_)
        if self.state_quant:
            v = self.state_quant(self.state_quant(v))
        return v


# --- rules ----------------------------------------------------------------------------


def _check_threshold(m: nn.Module) -> None:
    theta = m.threshold
    if theta.device.type != "meta" and bool((theta.detach() < 0).any()):
        raise ConversionError(
            f"threshold < 0 ({theta.detach().flatten()[:4].tolist()}): the source neuron fires "
            "on its reset state (0 > threshold) and subtracts the threshold on its first "
            "step; only thresholds >= 0 are supported"
        )


def _build(cls: type, m: nn.Module, ctx, *, beta=None) -> S2Neuron:
    """A ``cls`` (an S2Neuron subclass) with ``m``'s settings and buffers."""
    _check_threshold(m)
    learn_beta = _is_param(getattr(m, "beta", None))
    if isinstance(m, snntorch.StateLeaky):
        learn_beta = _is_param(getattr(m, "tau", None))
    if learn_beta:
        ctx.note("learn_beta dropped: beta (tau) gets no gradient on the first step")
    if getattr(m, "surrogate_disable", False):
        ctx.note("surrogate_disable=True kept: spikes have no gradient")
    new = cls(
        beta=1.0 if beta is None else beta,
        threshold=_tensor_copy(m.threshold),
        spike_grad=None if ctx.surrogate is None else ctx.make_surrogate(S2Surrogate),
        surrogate_disable=bool(getattr(m, "surrogate_disable", False)),
        init_hidden=bool(getattr(m, "init_hidden", False)),
        inhibition=bool(getattr(m, "inhibition", False)),
        learn_threshold=_is_param(m.threshold),
        reset_mechanism=m.reset_mechanism if hasattr(m, "_reset_mechanism") else "subtract",
        state_quant=getattr(m, "state_quant", False),
        output=bool(getattr(m, "output", False)),
        graded_spikes_factor=_tensor_copy(m.graded_spikes_factor),
        learn_graded_spikes_factor=_is_param(m.graded_spikes_factor),
        reset_delay=bool(getattr(m, "reset_delay", True)),
    )
    if _is_param(m.threshold):
        new.threshold = nn.Parameter(
            m.threshold.detach().clone(), requires_grad=m.threshold.requires_grad
        )
    if "beta" in m._buffers or "beta" in m._parameters:
        new._parameters.pop("beta", None)
        new.register_buffer("beta", _tensor_copy(m._buffers.get("beta", m._parameters.get("beta"))))
    new.train(m.training)
    return _move_like(new, m)


def _copy_state(new: nn.Module, m: nn.Module, names) -> None:
    """Carry tensors ``names`` over from ``m`` (parameters stay parameters)."""
    for name in names:
        if name in m._parameters:
            new._buffers.pop(name, None)
            new.register_parameter(name, m._parameters[name])
        elif name in m._buffers and m._buffers[name] is not None:
            new.register_buffer(
                name, m._buffers[name], persistent=name not in m._non_persistent_buffers_set
            )


def _leaky(m: snntorch.Leaky, ctx) -> CollapsedLeaky:
    r"""v₁ = I (βU₀ = 0, reset R·θ = 0); s₁ = H(v₁ − θ)·g. Exact."""
    return _build(CollapsedLeaky, m, ctx)


def _synaptic(m: snntorch.Synaptic, ctx) -> CollapsedSynaptic:
    r"""syn₁ = I, v₁ = syn₁ (αsyn₀ = βU₀ = 0). Exact; alpha kept."""
    new = _build(CollapsedSynaptic, m, ctx)
    _copy_state(new, m, ["alpha"])
    return new


def _lapicque(m: snntorch.Lapicque, ctx) -> CollapsedLapicque:
    r"""v₁ = I·R·(1/(RC))·Δt (the decay term multiplies U₀ = 0). Exact; R, C, time_step kept."""
    new = _build(CollapsedLapicque, m, ctx)
    _copy_state(new, m, ["time_step", "R", "C"])
    return new


def _recurrent(cls):
    def rule(m: nn.Module, ctx: registry.RuleContext):
        new = _build(cls, m, ctx)
        names = ["V"] if ("V" in m._parameters or "V" in m._buffers) else []
        _copy_state(new, m, names + (["alpha"] if cls is CollapsedRSynaptic else []))
        new.recurrent = m.recurrent
        new.all_to_all = m.all_to_all
        return new

    rule.__annotations__["return"] = cls  # the class it builds (docs/collapse.md reads it)
    return rule


_rleaky = _recurrent(CollapsedRLeaky)
_rleaky.__doc__ = "v₁ = I + V(0) (spk₀ = 0; V(0) = recurrent bias). Exact; recurrent kept."
_rsynaptic = _recurrent(CollapsedRSynaptic)
_rsynaptic.__doc__ = "syn₁ = I + V(0), v₁ = syn₁. Exact; recurrent and alpha kept."


def _state_leaky(m: snntorch.StateLeaky, ctx) -> CollapsedStateLeaky:
    r"""v₁ = e⁰·I = I (LinearLeaky: after its linear layer); s₁ = H(v₁ − θ)·g². Exact."""
    new = _build(
        CollapsedStateLeaky, m, ctx, beta=_tensor_copy(m._buffers.get("beta", torch.tensor(0.0)))
    )
    _copy_state(new, m, ["tau"])
    if "tau" in m._parameters:  # no gradient at T=1: keep the value, drop learnability
        new._parameters.pop("tau")
        new.register_buffer("tau", m.tau.detach().clone())
    if "linear" in m._modules:
        new.linear = m.linear
    if not m.output:
        ctx.note("output=False: returns the membrane v₁ only (no spikes)")
    return new


def _alpha(m: snntorch.Alpha, ctx) -> CollapsedAlpha:
    r"""Refused in exact mode: Alpha cannot spike on its first step (v₁ = τ_α(I − I) = 0).
    Calibrated mode: v₁ := I."""
    if ctx.mode == "exact":
        raise ConversionError(
            "snntorch.Alpha cannot spike on its first time step: from its reset state "
            "syn_exc = I, syn_inh = -I and mem = tau_alpha * (syn_exc + syn_inh) = 0 < threshold, "
            "so the exact single-step net would be silent. Use mode='calibrated' (documented "
            "rule mem := I, thresholds set from data) or register your own rule"
        )
    ctx.note("Alpha converted by the calibrated-mode rule v₁ := I (not its first step, which is 0)")
    new = _build(CollapsedAlpha, m, ctx)
    _copy_state(new, m, ["alpha"])
    return new


def _not_a_threshold(what: str) -> str:
    return f"{what}: its first step is not a threshold on a linear function of its input"


def _register_rules() -> None:
    """The snnTorch rule table: neuron rules, then documented refusals."""
    fw = "snntorch"
    registry.register_rule(S2Neuron, registry.keep_rule, kind="keep", framework=fw, inherit=True)
    neurons = {
        snntorch.Leaky: _leaky,
        snntorch.Synaptic: _synaptic,
        snntorch.Lapicque: _lapicque,
        snntorch.RLeaky: _rleaky,
        snntorch.RSynaptic: _rsynaptic,
        snntorch.StateLeaky: _state_leaky,
        snntorch.LinearLeaky: _state_leaky,
    }
    registry.register_rules(neurons, framework=fw)
    registry.register_rule(snntorch.Alpha, _alpha, framework=fw, exact=False)
    refusals = {
        snntorch.DeltaLeaky: "snntorch.DeltaLeaky fires on |Δmem| >= delta_threshold: its first "
        "step is H(|I| - δ), two thresholds on the input, not one",
        snntorch.SLSTM: _not_a_threshold(
            "snntorch.SLSTM is an LSTM cell (mem = o·tanh(c), nonlinear in the input)"
        ),
        snntorch.SConv2dLSTM: _not_a_threshold(
            "snntorch.SConv2dLSTM is a convolutional LSTM cell (nonlinear in the input)"
        ),
        snntorch.AssociativeLeaky: _not_a_threshold(
            "snntorch.AssociativeLeaky is an associative memory (outer product of two "
            "projections of the input, quadratic)"
        ),
        LeakyParallel: _not_a_threshold(
            "snntorch.LeakyParallel is an nn.RNN layer with built-in weights over a [T, B, F] "
            "sequence; rebuild it as nn.Linear + S2Neuron"
        ),
    }
    refuse = {cls: registry.refuse_rule(reason) for cls, reason in refusals.items()}
    registry.register_rules(refuse, kind="refuse", framework=fw)


_register_rules()


def _unknown_reason(m: nn.Module, step_mode: str) -> Optional[str]:
    if isinstance(m, (SpikingNeuron, LeakyParallel)):
        return (
            f"unknown snnTorch neuron {type(m).__name__}: no collapse rule; register one with "
            f"snn_singlestep.register_rule({type(m).__name__}, fn)"
        )
    return None


def _run_steps(net: nn.Module, x: Tensor, T: int) -> None:
    """Reference run: reset, call ``net(x)`` T times (``init_hidden=True`` nets), reset."""
    snntorch.utils.reset(net)
    for _ in range(T):
        net(x)
    snntorch.utils.reset(net)


def _time_major(m: nn.Module, x: Optional[Tensor]) -> bool:
    if isinstance(m, snntorch.StateLeaky):
        return True
    return isinstance(m, CollapsedStateLeaky) and x is not None and x.ndim == 3


def _stateful_reason(m: nn.Module) -> Optional[str]:
    if isinstance(m, (SpikingNeuron, LeakyParallel)):
        return "a stateful snnTorch neuron"
    return None


registry.register_framework(
    registry.Framework(
        name="snntorch",
        entry_point="snn_singlestep.snntorch.collapse",
        is_spiking=lambda m: isinstance(m, (SpikingNeuron, LeakyParallel)),
        owns=lambda m: type(m).__module__.split(".")[0] == "snntorch",
        stateful_reason=_stateful_reason,
        unknown_reason=_unknown_reason,
        reset=lambda net: snntorch.utils.reset(net),
        run_steps=_run_steps,
        time_major=_time_major,
    )
)


def _collapsed(source: Callable[[], nn.Module], mode: str = "exact") -> Callable[[], nn.Module]:
    """An example collapsed neuron: the rule applied to a fresh ``source()`` neuron."""

    def build() -> nn.Module:
        m = source()
        return registry.get_rule(type(m))(m, registry.RuleContext("", mode, "s", None))

    return build


_EXAMPLES = {
    CollapsedLeaky: _collapsed(lambda: snntorch.Leaky(beta=0.9, init_hidden=True)),
    CollapsedLapicque: _collapsed(lambda: snntorch.Lapicque(beta=0.9, init_hidden=True)),
    CollapsedSynaptic: _collapsed(lambda: snntorch.Synaptic(0.8, 0.9, init_hidden=True)),
    CollapsedRLeaky: _collapsed(lambda: snntorch.RLeaky(0.9, linear_features=4, init_hidden=True)),
    CollapsedRSynaptic: _collapsed(
        lambda: snntorch.RSynaptic(0.8, 0.9, linear_features=4, init_hidden=True)
    ),
    CollapsedAlpha: _collapsed(lambda: snntorch.Alpha(0.9, 0.8, init_hidden=True), "calibrated"),
    CollapsedStateLeaky: _collapsed(lambda: snntorch.StateLeaky(0.9, channels=4)),
}

for _cls, _build_example in _EXAMPLES.items():
    registry.register_neuron(
        registry.NeuronKind(
            _cls,
            "snntorch",
            "collapsed",
            _build_example,
            spike_fn_attr="spike_grad",
            export_refusal=neuron_export_refusal,
            spike_gain=graded_spike_gain,
            multistep_refusal=neuron_multistep_refusal,
        )
    )
