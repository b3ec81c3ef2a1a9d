r"""Turn a trained single-step (T=1) net into a multi-step (T=N) net with the same weights.

:func:`to_multistep` replaces every single-step neuron (``S2Cell``, ``S2Neuron``,
``S2Node``) by a stateful integrate-and-fire neuron with reset by subtraction whose
threshold and input scale come from the single-step threshold :math:`\theta` and the
training noise :math:`\sigma` (the mapping is documented, with its equations, in
:mod:`snn_singlestep.core.ifconvert`). Every other module (``Linear``, ``BatchNorm``, a
non-spiking readout, …) is kept as it is and runs once per time step, so the result is
the same function of the input at :math:`N = 1` and an average of :math:`N` spike
frames at :math:`N > 1`. The input is repeated or rate-coded; the output is the mean
over time of what the net returns at each step (for a membrane readout, the mean
membrane).

The returned :class:`MultiStepNet` runs the whole thing (``y = conv(x)``) and keeps the
converted net as ``conv.net``, runnable with each framework's usual multi-step idiom:

* SpikingJelly: ``functional.set_step_mode(conv.net, "m")``,
  ``conv.net(x_seq).mean(0)``, ``functional.reset_net(conv.net)``;
* snnTorch: ``snntorch.utils.reset(conv.net)`` then a loop over time steps;
* plain PyTorch: call ``conv.reset()``, then the net once per time step.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from ..core import registry
from ..core.ifconvert import MAPPINGS
from ..core.nettools import copy_net
from ..core.noise import current_noise_std
from ..core.validate import (
    STEP_MODES,
    choice,
    flag,
    non_negative,
    optional_seed,
    positive_int,
)
from ..core.validate import (
    module as as_module,
)
from ..errors import ConfigError, ConversionError, SingleStepWarning

__all__ = [
    "ENCODINGS",
    "FLAVOURS",
    "MultiStepNet",
    "to_multistep",
]

#: Values of ``encoding=``: ``"repeat"`` feeds the input at every step; ``"rate"`` feeds
#: Bernoulli spikes with probability ``clamp(x, 0, 1)``.
ENCODINGS = ("repeat", "rate")
#: Values of ``framework=``: which framework's IF neuron replaces each single-step neuron
#: (``"auto"``: the one of the neuron's own framework).
FLAVOURS = ("auto", "torch", "snntorch", "spikingjelly")
#: Values of ``step_mode=``: ``"auto"`` or one of SpikingJelly's step modes.
STEP_MODE_CHOICES = ("auto", *STEP_MODES)
OUTPUTS = ("mean", "sequence")


def _mean_or_stack(outputs: list, how: str):
    first = outputs[0]
    if isinstance(first, Tensor):
        stacked = torch.stack(outputs)
        return stacked.mean(0) if how == "mean" else stacked
    if isinstance(first, (tuple, list)):
        return type(first)(_mean_or_stack(list(parts), how) for parts in zip(*outputs))
    raise ConversionError(
        f"the net returned {type(first).__name__}; to_multistep averages tensors and "
        "tuples/lists of tensors only"
    )


class MultiStepNet(nn.Module):
    r"""A converted net run for :math:`T` steps: encode, step :math:`T` times, average.

    Built by :func:`to_multistep` (see there for the arguments). ``forward(x)`` takes
    what the single-step net took (``[B, ...]``), resets every converted neuron,
    encodes ``x`` into ``[T, B, ...]`` and returns the mean over time of the net's
    outputs (``output="mean"``) or their stack ``[T, B, ...]`` (``"sequence"``). In
    step mode ``'m'`` the net is called once on the ``[T, B, ...]`` sequence
    (SpikingJelly); in ``'s'`` it is called once per step.

    Attributes:
        net: the converted net (``state_dict`` keys are those of the single-step net,
            under the prefix ``net.``).
        T: number of time steps. encoding, output, step_mode: as chosen.
    """

    def __init__(
        self,
        net: nn.Module,
        T: int,
        *,
        encoding: str = "repeat",
        output: str = "mean",
        step_mode: str = "s",
        seed: Optional[int] = None,
    ) -> None:
        as_module("net", net)
        positive_int("T", T, what="time steps")
        choice("encoding", encoding, ENCODINGS)
        choice("output", output, OUTPUTS)
        choice("step_mode", step_mode, STEP_MODES)
        optional_seed("seed", seed)
        _check_seed_is_used(seed, encoding)
        super().__init__()
        self.net = net
        self.T = T
        self.encoding = encoding
        self.output = output
        self.step_mode = step_mode
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        for fw in registry.frameworks():
            fw.set_step_mode(net, step_mode)

    def reset(self) -> None:
        """Put every converted neuron back to its initial membrane."""
        for m in self.net.modules():
            kind = registry.neuron_kind(m)
            if kind is not None and kind.role == "if":
                kind.reset(m)

    def encode(self, x: Tensor) -> Tensor:
        r"""``[T, B, ...]`` input sequence: ``x`` repeated, or Bernoulli(clamp(x, 0, 1)) spikes."""
        seq = x.unsqueeze(0).expand(self.T, *x.shape)
        if self.encoding == "repeat":
            return seq
        if bool(((x < 0) | (x > 1)).any()):
            warnings.warn(
                "encoding='rate' takes input in [0, 1] as firing probabilities; values "
                "outside were clamped. Rescale the input or use encoding='repeat'.",
                SingleStepWarning,
                stacklevel=3,
            )
        generator = None
        if self.seed is not None:
            key = str(x.device)
            if key not in self._generators:
                self._generators[key] = torch.Generator(device=x.device).manual_seed(self.seed)
            generator = self._generators[key]
        return torch.bernoulli(seq.clamp(0, 1), generator=generator).to(x.dtype)

    def forward(self, x: Tensor):
        self.reset()
        seq = self.encode(x)
        if self.step_mode == "m":
            return _reduce_time(self.net(seq), self.output)
        return _mean_or_stack([self.net(seq[t]) for t in range(self.T)], self.output)

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, encoding={self.encoding!r}, output={self.output!r}, "
            f"step_mode={self.step_mode!r}"
        )


def _reduce_time(out, how: str):
    if isinstance(out, Tensor):
        return out.mean(0) if how == "mean" else out
    if isinstance(out, (tuple, list)):
        return type(out)(_reduce_time(part, how) for part in out)
    raise ConversionError(
        f"the net returned {type(out).__name__}; to_multistep averages tensors and "
        "tuples/lists of tensors only"
    )


# --- entry points -----------------------------------------------------------------------


def _check_seed_is_used(seed: Optional[int], encoding: str) -> None:
    if seed is not None and encoding != "rate":
        raise ConfigError(
            f"seed is only used with encoding='rate' (encoding={encoding!r} draws no random "
            "numbers); drop it or set encoding='rate'"
        )


def to_multistep(
    net: nn.Module,
    T: int,
    *,
    encoding: str = "repeat",
    mapping: str = "matched",
    noise_std: Optional[float] = None,
    framework: str = "auto",
    step_mode: str = "auto",
    output: str = "mean",
    seed: Optional[int] = None,
    inplace: bool = False,
) -> MultiStepNet:
    r"""Convert a trained single-step net into a T-step net of IF neurons (same weights).

    Each ``S2Cell`` / ``S2Neuron`` / ``S2Node`` becomes an integrate-and-fire neuron
    with reset by subtraction (:class:`~snn_singlestep.core.ifconvert.ConvertedIF`,
    :class:`~snn_singlestep.snntorch.neuron.ConvertedIFNeuron`,
    :class:`~snn_singlestep.spikingjelly.node.ConvertedIFNode`); with
    ``mapping="matched"`` its input is :math:`(I - \theta)/w + 1/2`,
    :math:`w = \sigma\sqrt{2\pi}`, threshold 1, initial membrane 1/2, so that its rate
    follows the expected output :math:`\Phi((I-\theta)/\sigma)` of the noisy neuron the net
    was trained with (equations and the ``"plain"`` mapping: :mod:`snn_singlestep.core.ifconvert`).
    At ``T=1`` the result computes exactly what the single-step net computes in
    ``eval()`` mode.

    Args:
        net: a trained single-step net (not modified unless ``inplace``).
        T: number of time steps, an int >= 1.
        encoding: ``"repeat"`` (the input at every step) or ``"rate"`` (Bernoulli
            spikes with probability ``clamp(x, 0, 1)``).
        mapping: ``"matched"`` (default; needs σ > 0) or ``"plain"`` (IF neuron with the
            same threshold on the same current).
        noise_std: σ to assume for every neuron instead of the one it trained with
            (its current ``noise.std``); lets ``"matched"`` convert a net trained
            without noise.
        framework: which framework's IF neuron to build: ``"auto"`` (each neuron's own),
            ``"torch"``, ``"snntorch"`` or ``"spikingjelly"``.
        step_mode: ``"auto"`` (``'m'`` when the net is an ``nn.Sequential`` of
            SpikingJelly modules only, else ``'s'``), ``'s'`` (one call per step) or
            ``'m'`` (one call on ``[T, B, ...]``, SpikingJelly nets).
        output: ``"mean"`` over time (default) or ``"sequence"`` (``[T, B, ...]``).
        seed: seed of the rate encoder's generator (None: torch's global generator).
        inplace: convert ``net`` itself instead of a deep copy.

    Returns:
        A :class:`MultiStepNet` in ``eval()`` mode; its ``.net`` is the converted net.

    Raises:
        ConfigError: ``T`` not an int >= 1; an unknown option; ``noise_std < 0``, or
            ``noise_std`` with ``mapping="plain"``, or ``seed`` with ``encoding="repeat"``
            (where they would be ignored).
        ConversionError: ``net`` contains no single-step neuron; it contains modules
            that cannot be converted (multi-step neurons, subclasses of our neurons,
            ``S2Neuron(inhibition=True)``, …) or, with ``mapping="matched"``, neurons
            trained without noise; the message lists their dotted paths.

    Examples:
        >>> import torch
        >>> from snn_singlestep import S2Cell
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), S2Cell(noise_std=0.4),
        ...                           torch.nn.Linear(8, 3))
        >>> conv = to_multistep(net, T=4)
        >>> conv(torch.rand(2, 4)).shape
        torch.Size([2, 3])
        >>> x = torch.rand(5, 4)
        >>> torch.equal(to_multistep(net, T=1)(x), net.eval()(x))
        True
    """
    T = positive_int("T", T, what="time steps")
    choice("encoding", encoding, ENCODINGS)
    choice("mapping", mapping, MAPPINGS)
    choice("framework", framework, FLAVOURS)
    choice("step_mode", step_mode, STEP_MODE_CHOICES)
    choice("output", output, OUTPUTS)
    flag("inplace", inplace)
    optional_seed("seed", seed)
    _check_seed_is_used(seed, encoding)
    if noise_std is not None:
        noise_std = non_negative("noise_std", noise_std, hint="0 turns the noise off")
        if mapping == "plain":
            raise ConfigError(
                "noise_std is only used with mapping='matched' (the plain IF neuron ignores σ); "
                "drop it or set mapping='matched'"
            )
    if not isinstance(net, nn.Module):
        raise ConversionError(f"to_multistep expects an nn.Module, got {type(net).__name__}")
    targets = {k.framework: k for k in registry.neuron_kinds(role="if")}
    work = net if inplace else copy_net(net)

    found: list[str] = []
    problems: list[str] = []
    noiseless: list[str] = []
    flavours: set[str] = set()
    plan: list[tuple[Optional[nn.Module], str, nn.Module, str, float]] = []
    for path, module in work.named_modules():
        where = path or "<net>"
        kind = registry.neuron_kind(module)
        if kind is not None and kind.role == "single-step" and kind.cls is type(module):
            flavour = kind.framework if framework == "auto" else framework
            target = targets.get(flavour)
            reason = (
                f"no IF neuron of framework {flavour!r} is registered"
                if target is None
                else kind.multistep_refusal(module, flavour)
                or target.multistep_refusal(module, flavour)
            )
            if reason:
                problems.append(f"{where} ({type(module).__name__}): {reason}")
                continue
            sigma = current_noise_std(module) if noise_std is None else noise_std
            if mapping == "matched" and sigma <= 0:
                noiseless.append(where)
                continue
            found.append(where)
            flavours.add(flavour)
            parent_path, _, name = path.rpartition(".")
            parent = work.get_submodule(parent_path) if path else None
            plan.append((parent, name, module, target, sigma))
        elif kind is not None and kind.role == "if":
            problems.append(f"{where} ({type(module).__name__}): already multi-step")
        elif kind is not None:
            problems.append(
                f"{where} ({type(module).__qualname__}): a subclass of "
                f"{kind.cls.__name__} whose step may differ; convert it "
                "by hand or give it a to_multistep rule"
            )
        else:
            reason = registry.stateful_reason(module)
            if reason and reason != "a recurrent torch layer":
                problems.append(
                    f"{where} ({type(module).__qualname__}): {reason} (its state is not "
                    "managed by to_multistep)"
                )
    if noiseless:
        problems.append(
            "with mapping='matched' these neurons need a training noise_std > 0 but have "
            f"none: {', '.join(noiseless)}; pass noise_std=<sigma to assume> or "
            "mapping='plain'"
        )
    if problems:
        raise ConversionError("to_multistep cannot convert:\n  " + "\n  ".join(problems))
    if not found:
        raise ConversionError(
            f"{type(net).__name__} contains no single-step neuron (S2Cell, S2Neuron or "
            "S2Node): nothing to convert to T steps"
        )
    for parent, name, module, target, sigma in plan:
        new = target.build_if(module, noise_std=sigma, mapping=mapping)
        if parent is None:
            work = new
        else:
            setattr(parent, name, new)
    for fw in registry.frameworks():
        fw.modules_replaced(work)

    stepping = {fw.name: fw for fw in registry.frameworks() if fw.step_modes}
    if step_mode == "auto":
        native = len(flavours) == 1 and flavours <= set(stepping)
        step_mode = "m" if native and stepping[next(iter(flavours))].step_native(work) else "s"
    if step_mode == "m" and not (len(flavours) == 1 and flavours <= set(stepping)):
        raise ConfigError(
            "step_mode='m' needs every neuron converted to the nodes of one framework with "
            f"step modes (framework={' or '.join(map(repr, stepping)) or '?'}); this net "
            f"has {sorted(flavours)}"
        )
    return MultiStepNet(
        work, T, encoding=encoding, output=output, step_mode=step_mode, seed=seed
    ).eval()
