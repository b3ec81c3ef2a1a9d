"""``S2Neuron``: the single-step neuron as a drop-in for ``snntorch.Leaky``."""

from __future__ import annotations

from typing import Callable, Optional, Union

import snntorch
import torch
from torch import Tensor

from ..core import registry
from ..core.validate import (
    flags,
    real_number,
    real_or_tensor,
    spike_function,
    tensor,
    threshold_tensor,
)
from ..core.functional import s2_neuron_step
from ..core.fused import check_float_input, fire
from ..core.modules import check_loaded_threshold
from ..core.ifconvert import MAPPINGS, if_conversion_params, if_drive, if_step
from ..core.noise import MembraneNoise, as_membrane_noise, noise_kwargs
from ..core.surrogate import S2Surrogate, heaviside
from ..errors import ConfigError

__all__ = ["ConvertedIFNeuron", "S2Neuron", "add_time_dim"]

_RESET_MECHANISMS = ("subtract", "zero", "none")


class _ExactThreshold:
    """Mixin for ``snntorch.Leaky`` subclasses: keep a float threshold exact and finite.

    snnTorch stores a float threshold as float32; we keep it exact (float64, 0-d) so float64
    inputs tie exactly at ``v == threshold``, as S2Node and s2_spike do. A state_dict with a
    NaN/inf threshold is refused, as the constructor refuses one.
    """

    def _threshold_buffer(self, threshold, learn_threshold):
        super()._threshold_buffer(threshold_tensor(threshold), learn_threshold)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # the constructor refuses a NaN/inf threshold; so does loading (snnTorch: "threshold")
        check_loaded_threshold(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _tracing() -> bool:
    """True while torch.compile, torch.export, jit or fx trace the forward (values unknown)."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    fx = torch.fx._symbolic_trace
    fx_tracing = getattr(fx, "is_fx_symbolic_tracing", None) or fx.is_fx_tracing
    return (
        torch.compiler.is_compiling() or exporting() or torch.jit.is_tracing() or fx_tracing()
    )


def _is_unit_gain(neuron: torch.nn.Module, gain: object) -> bool:
    """True when multiplying 0/1 spikes by ``gain`` changes nothing: a 0-d tensor equal to 1
    that needs no gradient. Cached per gain tensor (kept referenced, so its id cannot be
    reused) and its in-place version, so the value is read (a device sync) only once."""
    cached = neuron.__dict__.get("_unit_gain_cache")  # first: a hit skips the checks below
    if cached is not None and cached[0] is gain and cached[1] == gain._version:
        return cached[2] and not gain.requires_grad
    if not isinstance(gain, Tensor) or gain.requires_grad or gain.dim() != 0 or _tracing():
        return False
    unit = bool(gain == 1)
    neuron.__dict__["_unit_gain_cache"] = (gain, gain._version, unit)
    return unit


def _check_mem(neuron: snntorch.Leaky, mem: Optional[Tensor]) -> None:
    """snnTorch's rule: no ``mem`` argument with ``init_hidden=True`` (its own message)."""
    if neuron.init_hidden and mem is not None:
        raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")


class S2Neuron(_ExactThreshold, snntorch.Leaky):
    r"""Single-step (T=1) spiking neuron of S²NN, a subclass of :class:`snntorch.Leaky`.

    Each call is one complete time step from a zero membrane,
    :math:`v = I,\ s = H(v - \theta)` (see
    :func:`~snn_singlestep.core.functional.s2_neuron_step`): nothing is carried from one
    call to the next, so the output depends on the current input only. The backward pass
    uses the S² surrogate (:class:`~snn_singlestep.core.surrogate.S2Surrogate`) unless
    ``spike_grad`` says otherwise. A membrane exactly at threshold spikes.

    Every argument of ``snntorch.Leaky`` is accepted in the same position, so replacing
    ``snn.Leaky(beta=0.9, ...)`` by ``S2Neuron(beta=0.9, ...)`` just works, and a
    ``Leaky`` state_dict loads. What each means at T=1:

    - ``beta``, ``reset_mechanism``, ``reset_delay``: accepted, stored, no effect (there
      is no previous membrane to decay and no later step to reset).
    - ``learn_beta=True``: raises, since β can get no gradient at T=1.
    - ``threshold``, ``learn_threshold``, ``graded_spikes_factor``,
      ``learn_graded_spikes_factor``, ``inhibition``, ``state_quant``,
      ``surrogate_disable``, ``init_hidden``, ``output``: as in ``Leaky``.
    - ``spike_grad=None`` means the S² surrogate (``Leaky`` would pick atan).
    - ``noise_std`` (keyword-only, ours): Gaussian noise :math:`\sigma` on the membrane
      before the threshold, in ``train()`` mode only (noise-based training; a number,
      a schedule or a :class:`~snn_singlestep.core.noise.MembraneNoise`; see
      :mod:`~snn_singlestep.core.noise`). The returned ``mem`` then includes the noise.

    Return values follow ``Leaky``: ``(spk, mem)``, or ``spk`` alone when
    ``init_hidden=True`` and ``output=False``. ``mem`` is the membrane of this step,
    :math:`v = I`; use it as the readout of the last layer, where spikes tie too often
    at T=1. A ``mem`` argument passed by a tutorial-style loop is accepted and ignored.
    Spikes and membrane keep the input's dtype.

    Examples:
        >>> import torch, torch.nn as nn
        >>> from snn_singlestep import S2Neuron
        >>> net = nn.Sequential(nn.Linear(4, 3), S2Neuron(init_hidden=True))
        >>> net(torch.ones(2, 4)).shape
        torch.Size([2, 3])
        >>> lif = S2Neuron(beta=0.9)
        >>> spk, mem = lif(torch.tensor([0.5, 1.5]))
        >>> spk
        tensor([0., 1.])
        >>> S2Neuron(noise_std=0.4).noise
        MembraneNoise(std=0.4)
    """

    def __init__(
        self,
        beta: Union[float, Tensor] = 1.0,
        threshold: Union[float, Tensor] = 1.0,
        spike_grad: Optional[Callable[[Tensor], Tensor]] = None,
        surrogate_disable: bool = False,
        init_hidden: bool = False,
        inhibition: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        state_quant: Union[bool, Callable[[Tensor], Tensor]] = False,
        output: bool = False,
        graded_spikes_factor: Union[float, Tensor] = 1.0,
        learn_graded_spikes_factor: bool = False,
        reset_delay: bool = True,
        *,
        noise_std: Union[float, MembraneNoise, Callable[[int], float]] = 0.0,
    ) -> None:
        # Validate everything before Leaky.__init__: snnTorch appends the instance to a
        # global list first, and a half-built neuron there breaks every later reset.
        beta = real_or_tensor("beta", beta)
        threshold = real_or_tensor("threshold", threshold)
        graded_spikes_factor = real_or_tensor(
            "graded_spikes_factor", graded_spikes_factor, one=True
        )
        flags(
            surrogate_disable=surrogate_disable,
            init_hidden=init_hidden,
            inhibition=inhibition,
            learn_beta=learn_beta,
            learn_threshold=learn_threshold,
            output=output,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
            reset_delay=reset_delay,
        )
        if learn_beta:
            raise ConfigError(
                "learn_beta=True cannot hold in S2Neuron: a single-step neuron has no "
                "previous membrane for beta to decay, so beta gets no gradient. Drop "
                "learn_beta (beta is accepted and ignored)."
            )
        if reset_mechanism not in _RESET_MECHANISMS:
            raise ConfigError(
                f"reset_mechanism must be one of {_RESET_MECHANISMS}, got {reset_mechanism!r}"
            )
        spike_grad = spike_function("spike_grad", spike_grad)
        if state_quant is not False and (not callable(state_quant) or isinstance(state_quant, type)):
            raise ConfigError(f"state_quant must be False or callable, got {state_quant!r}")
        noise = as_membrane_noise(noise_std)
        if spike_grad is None:
            spike_grad = S2Surrogate()
        super().__init__(
            beta,
            threshold,
            spike_grad,
            surrogate_disable,
            init_hidden,
            inhibition,
            learn_beta,
            learn_threshold,
            reset_mechanism,
            state_quant,
            output,
            graded_spikes_factor,
            learn_graded_spikes_factor,
            reset_delay,
        )
        if surrogate_disable:
            # Leaky's bypass fires on ``>`` and returns float32; keep our tie rule and dtype.
            self.spike_grad = heaviside
        self.noise = noise

    def forward(self, input_: Tensor, mem: Optional[Tensor] = None):
        if mem is not None:
            _check_mem(self, mem)
        check_float_input(input_, "S2Neuron input")
        noise = getattr(self, "noise", None)
        if not (self.state_quant or self.inhibition or (noise is not None and self.training)):
            # the common case, without noise: H(v - θ) through the fused paths (one
            # comparison when no graph is needed), bit for bit what the general path gives
            spk = fire(input_, self.threshold, self.spike_grad)
            gain = self.graded_spikes_factor
            if not _is_unit_gain(self, gain):
                spk = spk * gain
            if not isinstance(spk, Tensor) or spk.dtype != input_.dtype:  # (or an fx Proxy)
                spk = spk.to(input_.dtype)
            if self.output or not self.init_hidden:
                return spk, input_
            return spk
        v = self.state_quant(input_) if self.state_quant else input_
        noise = noise_kwargs(noise, self.training, v)
        if self.inhibition:
            if noise:
                _, v = s2_neuron_step(v, self.threshold, self.spike_grad, **noise)
            spk = self.fire_inhibition(v.size(0), v)
        else:
            spk, v = s2_neuron_step(v, self.threshold, self.spike_grad, **noise)
            spk = spk * self.graded_spikes_factor
        spk = spk.to(input_.dtype)
        if self.output or not self.init_hidden:
            return spk, v
        return spk


class ConvertedIFNeuron(_ExactThreshold, snntorch.Leaky):
    r"""The T=N integrate-and-fire neuron that replaces an :class:`S2Neuron`, as a ``Leaky``.

    Built by :func:`snn_singlestep.to_multistep`. One call is one time step; the membrane
    is kept between calls (``Leaky``'s ``mem``) until ``reset_mem()`` or
    ``snntorch.utils.reset``. Equations, and the mapping of the single-step threshold
    :math:`\theta` and training noise :math:`\sigma` onto the IF neuron, are those of
    :mod:`snn_singlestep.core.ifconvert` (:func:`~snn_singlestep.core.ifconvert.if_step`): drive
    :math:`aI + b`, threshold 1, reset by subtracting 1, initial membrane :math:`c`.

    ``threshold`` is :math:`\theta` of the replaced neuron (same buffer or parameter,
    same ``state_dict`` key). The membrane returned (and accepted as ``mem``) is the IF
    membrane :math:`u` in units of its threshold 1; internally ``self.mem`` holds
    :math:`u - c`, so that snnTorch's zero reset is the initial state :math:`c`.

    Args:
        threshold: :math:`\theta`. spike_grad: surrogate for :math:`u - 1` (default S²).
        noise_std: :math:`\sigma` of the replaced neuron. mapping: ``"matched"`` or
            ``"plain"``. init_hidden, output, graded_spikes_factor, learn_threshold,
            learn_graded_spikes_factor: as in ``Leaky``.

    Examples:
        >>> neuron = ConvertedIFNeuron(threshold=1.0, noise_std=0.4, init_hidden=True)
        >>> [neuron(torch.tensor([1.2])).item() for _ in range(4)]
        [1.0, 0.0, 1.0, 1.0]
    """

    def __init__(
        self,
        threshold: Union[float, Tensor] = 1.0,
        spike_grad: Optional[Callable[[Tensor], Tensor]] = None,
        *,
        noise_std: float = 0.0,
        mapping: str = "matched",
        init_hidden: bool = False,
        output: bool = False,
        graded_spikes_factor: Union[float, Tensor] = 1.0,
        learn_threshold: bool = False,
        learn_graded_spikes_factor: bool = False,
    ) -> None:
        threshold = real_or_tensor("threshold", threshold)
        graded_spikes_factor = real_or_tensor(
            "graded_spikes_factor", graded_spikes_factor, one=True
        )
        flags(
            init_hidden=init_hidden,
            output=output,
            learn_threshold=learn_threshold,
            learn_graded_spikes_factor=learn_graded_spikes_factor,
        )
        if mapping not in MAPPINGS:
            raise ConfigError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
        noise_std = real_number("noise_std", noise_std)
        _, _, v_init = if_conversion_params(threshold_tensor(threshold), noise_std, mapping)
        spike_grad = spike_function("spike_grad", spike_grad)
        super().__init__(
            1.0,
            threshold,
            S2Surrogate() if spike_grad is None else spike_grad,
            False,
            init_hidden,
            False,
            False,
            learn_threshold,
            "subtract",
            False,
            output,
            graded_spikes_factor,
            learn_graded_spikes_factor,
            True,
        )
        self.noise_std = noise_std
        self.mapping = mapping
        self.v_init = v_init

    def forward(self, input_: Tensor, mem: Optional[Tensor] = None):
        _check_mem(self, mem)
        if mem is not None:
            offset = mem - self.v_init
        elif self.mem.shape != input_.shape:
            offset = torch.zeros_like(input_)
        else:
            offset = self.mem
        drive = if_drive(input_, self.threshold, self.noise_std, self.mapping).to(input_.dtype)
        spk, u = if_step(drive, offset + self.v_init, self.spike_grad)
        self.mem = u - self.v_init
        spk = (spk * self.graded_spikes_factor).to(input_.dtype)
        if self.output or not self.init_hidden:
            return spk, u
        return spk

    def extra_repr(self) -> str:
        return f"noise_std={self.noise_std}, mapping={self.mapping!r}"


def add_time_dim(x: Tensor) -> Tensor:
    """Return ``x`` as a one-step sequence ``[1, B, ...]`` for ``snntorch.functional``.

    snnTorch's losses and accuracy functions expect ``[T, B, C]``. Note that
    ``mse_count_loss(correct_rate=0.8)`` builds an all-zero target at T=1 (it truncates
    ``0.8 * T`` to an int): use ``correct_rate=1.0`` or ``ce_rate_loss`` /
    ``ce_count_loss`` with single-step nets.

    Examples:
        >>> import torch
        >>> import snntorch.functional as SF
        >>> spk = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> float(SF.accuracy_rate(add_time_dim(spk), torch.tensor([0, 1])))
        1.0
    """
    return tensor("x", x).unsqueeze(0)


# --- registry ------------------------------------------------------------------------------


def neuron_export_refusal(m: S2Neuron) -> Optional[str]:
    """Why an :class:`S2Neuron` has no exported form (NIR / ONNX), or None."""
    if m.inhibition:
        return "it uses inhibition (only the strongest neuron fires); no exported node does"
    if m.state_quant:
        return "it quantizes its state (state_quant); no exported node does"
    return None


def graded_spike_gain(m: S2Neuron) -> Optional[Tensor]:
    """``graded_spikes_factor`` as a tensor, or None when spikes are 0/1."""
    gain = m.graded_spikes_factor
    gain = gain if isinstance(gain, Tensor) else torch.tensor(float(gain))
    return None if bool((gain == 1).all()) else gain.detach()


def neuron_multistep_refusal(m: S2Neuron, target: str) -> Optional[str]:
    """Why ``to_multistep(framework=target)`` cannot replace ``m``, or None."""
    if m.inhibition:
        return "inhibition=True has no T=N counterpart here"
    if m.state_quant:
        return "state_quant is not supported by the T=N neuron"
    if target != "snntorch":
        if not m.init_hidden or m.output:
            return (
                f"it returns (spk, mem), which only framework='snntorch' keeps "
                f"(asked for framework={target!r})"
            )
        gsf = m.graded_spikes_factor
        if isinstance(gsf, torch.nn.Parameter) or float(gsf) != 1.0:
            return f"graded_spikes_factor is kept by framework='snntorch' only (asked {target!r})"
    return None


def _build_if(source: torch.nn.Module, *, noise_std: float, mapping: str) -> ConvertedIFNeuron:
    """The snnTorch IF neuron standing for the single-step neuron ``source`` at T=N."""
    theta = registry.threshold_of(source)
    leaky = isinstance(source, S2Neuron)
    theta_t = theta if isinstance(theta, Tensor) else torch.tensor(float(theta), dtype=torch.float64)
    new = ConvertedIFNeuron(
        theta_t.detach(),
        registry.spike_fn_of(source),
        noise_std=noise_std,
        mapping=mapping,
        init_hidden=source.init_hidden if leaky else True,
        output=source.output if leaky else False,
        graded_spikes_factor=source.graded_spikes_factor.detach().clone() if leaky else 1.0,
        learn_threshold=isinstance(theta, torch.nn.Parameter),
        learn_graded_spikes_factor=leaky
        and isinstance(source.graded_spikes_factor, torch.nn.Parameter),
    )
    if leaky and isinstance(source.beta, Tensor):
        new.beta = source.beta.detach().clone()  # unused (IF: no leak); keeps the state_dict
    if isinstance(theta, torch.nn.Parameter):
        new.threshold = theta  # the same Parameter object in the (copied) net
    return new


registry.register_neuron(
    registry.NeuronKind(
        S2Neuron,
        "snntorch",
        "single-step",
        lambda: S2Neuron(init_hidden=True),
        spike_fn_attr="spike_grad",
        export_refusal=neuron_export_refusal,
        spike_gain=graded_spike_gain,
        multistep_refusal=neuron_multistep_refusal,
    )
)
registry.register_neuron(
    registry.NeuronKind(
        ConvertedIFNeuron,
        "snntorch",
        "if",
        lambda: ConvertedIFNeuron(noise_std=0.4, init_hidden=True),
        spike_fn_attr="spike_grad",
        build_if=_build_if,
        reset=ConvertedIFNeuron.reset_mem,
    )
)
